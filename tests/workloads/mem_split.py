#!/usr/bin/env python3
# mem_split.py -- rprof test workload: memory from Python's allocator vs plain malloc.
# ~0.3 s unprofiled, single thread.  MB = 10^6 bytes.
# SPLIT marker=PY-INTS   python  list(range(1_000_000)): 1 M ints of 32 B
#          (PyObject_Malloc, pymalloc) + an 8 MB item array (PyMem_Malloc, which pymalloc
#          hands on to malloc): ~40 MB, all through CPython's allocator domains.
# SPLIT marker=C-MALLOC  native  libc malloc(50 MB) called through ctypes, then memset:
#          C code allocating with plain malloc; the Python objects ctypes makes for the
#          call (the argument and the returned address) are a few dozen bytes.
# SPLIT marker=PY-BYTEARRAY python  bytearray(30 MB): C code (bytearray's __init__), but
#          its buffer comes from PyObject_Realloc -- CPython's allocator, like Scalene,
#          so Python memory, however large.
# `--check` runs each part under tracemalloc, which traces exactly the blocks allocated
# through CPython's allocator domains, and prints `split marker=M line=N traced=B
# total=T`: B bytes came through Python's allocator, of the T the part keeps.
import ctypes
import sys

N_INTS = 1_000_000
N_NATIVE = 50_000_000
N_BYTEARRAY = 30_000_000

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.free(libc.malloc(64))   # the first foreign call sets up ctypes' call machinery here


def py_ints():
    ints = list(range(N_INTS))                               # PY-INTS
    return ints


def c_malloc():
    addr = libc.malloc(N_NATIVE)                             # C-MALLOC
    ctypes.memset(addr, 7, N_NATIVE)
    return addr


def py_bytearray():
    buf = bytearray(N_BYTEARRAY)                             # PY-BYTEARRAY
    return buf


def main():
    ints = py_ints()
    addr = c_malloc()
    buf = py_bytearray()
    print("mem_split", len(ints), ctypes.string_at(addr + N_NATIVE - 1, 1), len(buf))
    libc.free(addr)


def check():
    from _check import marker_line
    import tracemalloc
    # total: the size of what the part keeps (its result): for the list, what
    # sys.getsizeof says of it and its ints (28 B per int: the 32 B blocks less padding).
    parts = [("PY-INTS", py_ints, None), ("C-MALLOC", c_malloc, N_NATIVE),
             ("PY-BYTEARRAY", py_bytearray, N_BYTEARRAY)]
    for marker, run, total in parts:
        tracemalloc.start()
        kept = run()
        traced = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        if total is None:
            total = sys.getsizeof(kept) + sum(map(sys.getsizeof, kept))
        print(f"split marker={marker} line={marker_line(__file__, marker)} traced={traced} total={total}")
        if marker == "C-MALLOC":
            libc.free(kept)


if __name__ == "__main__":
    check() if "--check" in sys.argv else main()
