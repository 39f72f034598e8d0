#!/usr/bin/env python3
# mem_alloc.py -- rprof test workload: one line that keeps memory, one that churns it,
# one that leaks it, one that only computes (in the spirit of ../shared's alloc_heavy.py,
# with other object kinds). ~1 s unprofiled, single thread, deterministic.
# MB = 10^6 bytes.  The figures below are the design's; `--check` measures them with
# tracemalloc on the interpreter that runs it and prints `memtruth ...` lines, which
# tests/memory_truth.py parses (and cross-checks against these MEMTRUTH lines).
# MEMTRUTH line=30 role=keep   ~82 MB live from the line's execution to the exit: 2.5 M
#          floats (24 B each, pymalloc: 60 MB) + the list's item array (~22 MB), grown by
#          realloc; the ints range() yields are freed as the line goes.
# MEMTRUTH line=35 role=churn  ~640 MB allocated, ~0 kept: 800 executions of
#          tuple(range(...)) of 20 000 ints: 20 000 x 32 B (sizeof(PyLongObject)) +
#          the tuple (16 B GC header + 24 B + 8 B per item) = ~800 040 B each, freed by
#          the next execution.
# MEMTRUTH line=40 role=leak   80 MB kept, +1 MB (bytes(1_000_000), PyObject_Calloc)
#          per round, one round per 10 churn executions, from the first round to the last.
# Line 44 computes: ~290 MB of transient ints (j and acc + j), freed at once; nothing kept.
import sys

N_KEEP = 2_500_000
ROUNDS = 80
CHURN_PER_ROUND = 10
CHURN_N = 20_000
LEAK_BYTES = 1_000_000
N_CPU = 60_000
LEAKED = []


def build_keep(n):
    keep = [float(i) for i in range(n)]                       # MEM-KEEP
    return keep


def churn(base, k):
    for j in range(k): tmp = tuple(range(base + j, base + j + CHURN_N))  # MEM-CHURN
    return tmp


def leak(i):
    LEAKED.append(bytes(LEAK_BYTES))                          # MEM-LEAK


def compute(n, acc):
    for j in range(n): acc = (acc + j) & 0x7F                 # MEM-CPU
    return acc


def main(stop_midway):
    keep = build_keep(N_KEEP)
    acc = 0
    for it in range(ROUNDS):
        if stop_midway and it == ROUNDS // 2:
            # --stop-midway: halfway through its leak the run stops itself (SIGSTOP) until
            # whoever started it resumes it: tests/test_memory.py's stopped-run leak test.
            import os, signal
            os.kill(os.getpid(), signal.SIGSTOP)
        churn((it + 1) * 1000, CHURN_PER_ROUND)   # ints from 1000 up: none of the cached small ints
        leak(it)
        acc = compute(N_CPU, acc)
    print("mem_alloc", len(keep), len(LEAKED), acc)


def check():
    """Each role's bytes, measured with tracemalloc (which sees every allocation of the
    interpreter's allocator domains, by requested size):
      keep:  traced memory after build_keep() (the line's peak, held to the exit);
      churn: one execution's allocation (the previous tuple already dropped, so
             nothing is freed during it but transients of a few dozen bytes) times the
             number of executions;
      leak:  traced memory added by the run's leak() calls."""
    from _check import marker_line
    import tracemalloc
    tracemalloc.start()
    t0 = tracemalloc.get_traced_memory()[0]
    keep = build_keep(N_KEEP)
    keep_bytes = tracemalloc.get_traced_memory()[0] - t0
    t0 = tracemalloc.get_traced_memory()[0]
    last = churn(1000, 1)
    one = tracemalloc.get_traced_memory()[0] - t0
    assert len(last) == CHURN_N
    t0 = tracemalloc.get_traced_memory()[0]
    for it in range(ROUNDS):
        leak(it)
    leak_bytes = tracemalloc.get_traced_memory()[0] - t0
    tracemalloc.stop()
    del keep
    print(f"memtruth line={marker_line(__file__, 'MEM-KEEP')} role=keep bytes={keep_bytes}")
    print(f"memtruth line={marker_line(__file__, 'MEM-CHURN')} role=churn bytes={one * ROUNDS * CHURN_PER_ROUND}"
          f" per_execution={one} executions={ROUNDS * CHURN_PER_ROUND}")
    print(f"memtruth line={marker_line(__file__, 'MEM-LEAK')} role=leak bytes={leak_bytes}")


if __name__ == "__main__":
    check() if "--check" in sys.argv else main("--stop-midway" in sys.argv)
