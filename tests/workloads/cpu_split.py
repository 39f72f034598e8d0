#!/usr/bin/env python3
# cpu_split.py -- rprof test workload: CPU split between two pure-Python lines.
# ~1-1.5 s unprofiled; the shares below are the design figures, `--check` measures them
# on this machine (each function alone, time.process_time, median of 3).
# Native share of both lines ~0%: no C call lasts more than a microsecond.
# The run alternates the two parts in 10 rounds, so that a change in the machine's speed
# during the run (other load on a shared host) hits both lines alike.  A normal run also
# prints the shares it measured itself (tests hold its profile to those).
# TRUTH line=20 cpu=70 kind=python
# TRUTH line=26 cpu=30 kind=python
import sys

from _check import Meter, check

N_A, N_B, ROUNDS = 11_000_000, 3_000_000, 10


def part_a(n):
    acc = 0
    for i in range(n): acc = (acc * 33 + i) % 1_000_003      # HOT-A
    return acc


def part_b(n):
    s = 0
    for i in range(n): s += len(str(i))                      # HOT-B
    return s


def main():
    meter = Meter(__file__)
    a = b = 0
    for _ in range(ROUNDS):
        a += meter.part("HOT-A", part_a, N_A // ROUNDS)
        b += meter.part("HOT-B", part_b, N_B // ROUNDS)
    print("cpu_split", a, b)
    meter.report()


if __name__ == "__main__":
    if "--check" in sys.argv:
        check(__file__, [("HOT-A", lambda: part_a(N_A)), ("HOT-B", lambda: part_b(N_B))])
    else:
        main()
