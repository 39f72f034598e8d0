#!/usr/bin/env python3
# spin.py -- rprof test workload: one pure-Python CPU loop (SPIN line) that runs until
# killed, for the SIGKILL test; it stops by itself after `sys.argv[1]` CPU-seconds
# (default 60) so a test that fails to kill it cannot hang.
import sys
import time


def spin(limit):
    acc, deadline = 0, time.process_time() + limit
    while time.process_time() < deadline:
        for i in range(100_000): acc = (acc * 33 + i) % 1_000_003   # SPIN
    return acc


if __name__ == "__main__":
    print("spin", spin(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0))
