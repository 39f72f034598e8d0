#!/usr/bin/env python3
# cpu_split.py -- rprof test workload: CPU split between two pure-Python lines.
# ~1.5 s unprofiled; the shares below are the design figures, `--check` measures them
# on this machine (each function alone, time.process_time, median of 3).
# Native share of both lines ~0%: no C call lasts more than a microsecond.
# TRUTH line=17 cpu=70 kind=python
# TRUTH line=23 cpu=30 kind=python
import sys

from _check import check

N_A, N_B = 11_000_000, 3_000_000


def part_a(n):
    acc = 0
    for i in range(n): acc = (acc * 33 + i) % 1_000_003      # HOT-A
    return acc


def part_b(n):
    s = 0
    for i in range(n): s += len(str(i))                      # HOT-B
    return s


def main():
    print("cpu_split", part_a(N_A), part_b(N_B))


if __name__ == "__main__":
    if "--check" in sys.argv:
        check(__file__, [("HOT-A", lambda: part_a(N_A)), ("HOT-B", lambda: part_b(N_B))])
    else:
        main()
