#!/usr/bin/env python3
# native_mix.py -- rprof test workload: a native line against a pure-Python line.
# ~1-1.5 s unprofiled; shares are design figures, `--check` measures them on this machine.
#   NATIVE-HOT: 6 zlib.compress calls of ~110 ms each, ~100% of the line's CPU inside libz.
#   PY-HOT: an interpreter loop, ~100% Python (no C call longer than ~100 ns).
#   Setting up the 2 MiB input buffer costs < 1%.
# The run alternates the two parts (one compress call per round), so that a change in the
# machine's speed during the run hits both lines alike.
# TRUTH line=26 cpu=50 kind=native
# TRUTH line=32 cpu=50 kind=python
import random
import sys
import zlib

from _check import check

K_COMPRESS, N_PY = 6, 7_000_000


def make_buffer():
    return random.Random(7).randbytes(2 << 20).translate(bytes(i % 16 for i in range(256)))


def native_part(buf, k):
    out = b""
    for _ in range(k): out = zlib.compress(buf, 6)          # NATIVE-HOT
    return len(out)


def python_part(n):
    acc = 0
    for i in range(n): acc = (acc * 33 + i) % 1_000_003     # PY-HOT
    return acc


def main():
    buf = make_buffer()
    a = b = 0
    for _ in range(K_COMPRESS):
        a += native_part(buf, 1)
        b += python_part(N_PY // K_COMPRESS)
    print("native_mix", a, b)


if __name__ == "__main__":
    if "--check" in sys.argv:
        buf = make_buffer()
        check(__file__, [("NATIVE-HOT", lambda: native_part(buf, K_COMPRESS)),
                         ("PY-HOT", lambda: python_part(N_PY))])
    else:
        main()
