#!/usr/bin/env python3
# library_lines.py -- rprof test workload: the program's own lines calling pure-Python
# standard-library modules (difflib, copy), whose time and memory a report charges to
# these lines by default and to the library's own lines with --profile-all.
# ~1 s unprofiled.  A normal run prints the CPU share of each calling line as measured in
# the run (thread CPU time, tests/workloads/_check.py's Meter): the tests' truth.
#   HOT-DIFF: difflib.SequenceMatcher, all of its time in difflib.py
#   HOT-COPY: copy.deepcopy of a list of lists: its time and memory in copy.py
# With `numpy`, instead: np.ones of 48 MiB, 5 times (numpy's own Python wrapper, then C).
import copy
import difflib
import sys

from _check import Meter

ROUNDS = 6


def diff(a, b, n):
    r = 0.0
    for _ in range(n):
        r += difflib.SequenceMatcher(None, a, b).ratio()           # HOT-DIFF
    return r


def deep(tree, n):
    kept = []
    for _ in range(n):
        kept.append(copy.deepcopy(tree))                           # HOT-COPY
        if len(kept) > 4:
            kept.pop(0)
    return len(kept)


def ones(n):
    import numpy as np
    total = 0.0
    for _ in range(n):
        total += np.ones(6 << 20).sum()                            # HOT-ONES
    return total


def main():
    meter = Meter(__file__)
    if sys.argv[1:] == ["numpy"]:
        print("library_lines numpy", meter.part("HOT-ONES", ones, 5))
        meter.report()
        return
    a = [str(i * 7 % 1000) for i in range(600)]
    b = [str(i * 11 % 1000) for i in range(600)]
    tree = [[float(j) for j in range(40)] for _ in range(3000)]
    r = k = 0
    for _ in range(ROUNDS):
        r += meter.part("HOT-DIFF", diff, a, b, 40)
        k += meter.part("HOT-COPY", deep, tree, 3)
    print("library_lines", round(r, 3), k)
    meter.report()


if __name__ == "__main__":
    main()
