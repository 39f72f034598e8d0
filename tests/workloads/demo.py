#!/usr/bin/env python3
# demo.py -- the program `make demo` profiles: a few lines with different costs.
#   line 16: pure-Python loop (interpreter time)
#   line 21: zlib.compress, nearly all native time inside libz
#   line 25: allocation: ~100 MB of bytes objects written by memset, freed on return
import random
import zlib

N_LOOP, K_COMPRESS, N_BLOCKS = 6_000_000, 4, 400
DATA = random.Random(1).randbytes(2 << 20).translate(bytes(i % 16 for i in range(256)))


def python_loop(n):
    acc = 0
    for i in range(n):
        acc = (acc * 33 + i) % 1_000_003
    return acc


def native_call(k):
    return sum(len(zlib.compress(DATA, 6)) for _ in range(k))


def allocate(n):
    blocks = [b"x" * 250_000 for _ in range(n)]
    return sum(len(b) for b in blocks)


if __name__ == "__main__":
    print("demo", python_loop(N_LOOP), native_call(K_COMPRESS), allocate(N_BLOCKS))
