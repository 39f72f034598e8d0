#!/usr/bin/env python3
# threads3.py -- rprof test workload: three Python threads with different CPU shares.
# ~1.5 s unprofiled; the GIL serialises the workers (process CPU ~= wall, ~1 core).
# Shares of total process CPU are design figures; `--check` runs each worker function
# alone (no threads) and measures them on this machine; a normal run prints the shares
# it measured itself (each worker's thread CPU time).  All CPU is Python; the main
# thread only waits in join() (~0% CPU).
# TRUTH line=21 cpu=50 kind=python thread=t-fib
# TRUTH line=27 cpu=30 kind=python thread=t-str
# TRUTH line=33 cpu=20 kind=python thread=t-dict
import sys
import threading

from _check import Meter, check

N_FIB, N_STR, N_DICT = 12_000_000, 2_000_000, 2_000_000


def worker_fib(n):
    a, b = 0, 1
    for i in range(n): a, b = b, (a + b) % 1_000_007           # T-FIB
    return a


def worker_str(n):
    acc = 0
    for i in range(n): acc += len(str(i)[::-1])               # T-STR
    return acc


def worker_dict(n):
    d = {}
    for i in range(n): d[i % 512] = d.get(i % 512, 0) + 1    # T-DICT
    return len(d)


WORKERS = (("t-fib", worker_fib, N_FIB), ("t-str", worker_str, N_STR), ("t-dict", worker_dict, N_DICT))


MARKERS = {"t-fib": "T-FIB", "t-str": "T-STR", "t-dict": "T-DICT"}


def main():
    meter = Meter(__file__)
    results = {}
    threads = [threading.Thread(target=lambda f=f, n=n, name=name:
                                results.update({name: meter.part(MARKERS[name], f, n)}), name=name)
               for name, f, n in WORKERS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("threads3", sorted(results.items()))
    meter.report()


if __name__ == "__main__":
    if "--check" in sys.argv:
        check(__file__, [("T-FIB", lambda: worker_fib(N_FIB)), ("T-STR", lambda: worker_str(N_STR)),
                         ("T-DICT", lambda: worker_dict(N_DICT))])
    else:
        main()
