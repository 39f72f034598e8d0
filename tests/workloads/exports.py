#!/usr/bin/env python3
# exports.py -- rprof test workload for the exports (pprof, folded stacks, speedscope) and
# for `rprof-report diff`: a three-level call chain outer -> middle -> leaf whose leaf line
# is the hottest, a membership test in a list or (--set) in a set, a line doing --work
# rounds of work, and a line allocating --keep MiB that stay live to the exit.
# The run measures each part itself (thread CPU time) and prints it as JSON on its last
# line: the tests hold the profile, and the diff of two runs, to those figures.
import json
import sys
import time

LEAF_N, LOOKUP_N, HAY, WORK_N = 6_000_000, 8_000, 4_000, 2_000_000


def leaf(n):
    acc = 0
    for i in range(n): acc = (acc * 31 + i) % 1_000_003          # LEAF
    return acc


def middle(n):
    return leaf(n)                                                 # MIDDLE


def outer(n):
    return middle(n)                                               # OUTER


def lookups(hay, n):
    found = 0
    for i in range(n): found += (i * 7) in hay                     # LOOKUP
    return found


def work(n):
    s = 0
    for i in range(n): s += i * i % 7                              # WORK
    return s


def allocate(mib):
    return [bytearray(1 << 20) for _ in range(mib)]                # ALLOC


def main(args):
    rounds = int(args[args.index("--work") + 1]) if "--work" in args else 1
    keep_mib = int(args[args.index("--keep") + 1]) if "--keep" in args else 8
    hay = list(range(HAY))
    if "--set" in args:
        hay = set(hay)
    cpu = {}

    def part(marker, fn, *a):
        c0 = time.thread_time()
        result = fn(*a)
        cpu[marker] = cpu.get(marker, 0.0) + time.thread_time() - c0
        return result

    part("LEAF", outer, LEAF_N)
    part("LOOKUP", lookups, hay, LOOKUP_N)
    part("WORK", work, WORK_N * rounds)
    kept = part("ALLOC", allocate, keep_mib)
    print(json.dumps({"cpu": cpu, "keep_mib": keep_mib, "kept": len(kept)}))
    return kept


if __name__ == "__main__":
    KEPT = main(sys.argv[1:])  # live to the exit
