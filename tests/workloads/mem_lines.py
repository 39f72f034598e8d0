#!/usr/bin/env python3
# mem_lines.py -- rprof's own memory workload (deterministic, single thread).
#
# GROUND TRUTH (bytes requested from CPython's allocators, CPython 3.11; `--check` measures
# the kept and leaked bytes with tracemalloc):
#   KEEP   `keep = [i * 3 for i in range(N_KEEP)]`: keeps N_KEEP ints (28 B each, made by
#          multiplication) plus the list's item array, until the program ends: its peak.
#   CHURN  `tmp = list(range(...))`, CHURN_ROUNDS times: each allocates 25 000 medium ints
#          (CPython 3.11 allocates those as sizeof(PyLongObject) = 32 B) and a 200 000 B
#          item array, freed by the next round: allocated 25 000 * 32 + 200 000 B per round,
#          net ~0.
#   LEAK   `LEAKED.append(bytes(LEAK_BYTES))`, LEAKS times, spread evenly over the run: a
#          leak of LEAKS * (LEAK_BYTES + 33) B.
#   PYINTS `ints = [i for i in range(1_000_000)]`: a million small ints, all from Python's
#          allocator (n_python_fraction ~1).
#   CBUF   `buf = libc.malloc(C_BYTES)`: a C call that allocates with malloc (native).
import ctypes
import sys

N_KEEP = 1_000_000
CHURN_ROUNDS = 400
LEAKS = 40
LEAK_BYTES = 1_000_000
C_BYTES = 50_000_000
LEAKED = []


def build_keep(n):
    keep = [i * 3 for i in range(n)]                          # KEEP
    return keep


def churn(base, k):
    for j in range(k):
        tmp = list(range(base + j, base + j + 25_000))          # CHURN
    return len(tmp)


def leak():
    LEAKED.append(bytes(LEAK_BYTES))                            # LEAK


def compute(n):
    acc = 0
    for j in range(n):
        acc = (acc * 31 + j) % 1_000_003
    return acc


def python_ints():
    ints = [i for i in range(1_000_000)]                        # PYINTS
    return len(ints)


def c_buffer(libc):
    buf = libc.malloc(C_BYTES)                                  # CBUF
    libc.memset(buf, 1, C_BYTES)
    return buf


def main():
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.memset.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t)
    libc.free.argtypes = (ctypes.c_void_p,)
    keep = build_keep(N_KEEP)
    n = python_ints()
    buf = c_buffer(libc)
    for it in range(LEAKS):
        churn(it * 1000, CHURN_ROUNDS // LEAKS)
        leak()
        compute(300_000)
    libc.free(buf)
    print("mem_lines", len(keep), n, len(LEAKED))


def check():
    import tracemalloc
    tracemalloc.start()
    keep = build_keep(N_KEEP)
    kept = tracemalloc.get_traced_memory()[0]
    del keep
    tracemalloc.stop()
    print(f"kept by KEEP: {kept} B")
    print(f"leaked by LEAK: {LEAKS * sys.getsizeof(bytes(LEAK_BYTES))} B")


if __name__ == "__main__":
    check() if "--check" in sys.argv else main()
