#!/usr/bin/env python3
# thread_names.py -- rprof test workload: Python threads named by threading, which
# CPython 3.8-3.13 does not pass on to the OS thread (/proc/.../comm says "python3").
# Threads, each burning CPU in turn (one at a time: the shares do not depend on how the
# GIL is handed over): "worker-a" (named by name=), a default-named Thread (its name is
# threading's own, "Thread-N (burn)" in 3.10+), and one that renames itself half-way (a
# report names a thread by its last name); the main thread burns too.  Each thread
# measures its own CPU time; the run prints {last name: cpu seconds} as JSON on its last
# line, so the test compares the report's thread table with truth measured in the run.
import json
import sys
import threading
import time

CPU = {}


def burn(seconds):
    """Spins for `seconds` of this thread's CPU time and adds it to the thread's count."""
    start = time.thread_time()
    x = 0
    while time.thread_time() - start < seconds:
        for i in range(2000): x += i * i % 7  # noqa: E701
    me = threading.current_thread()
    CPU[me] = CPU.get(me, 0.0) + time.thread_time() - start
    return x


def renamed(seconds):
    burn(seconds / 2)
    threading.current_thread().name = "renamed-b"
    # The sampler reads a running thread's name again once a second (wall time).
    time.sleep(1.1)
    burn(seconds / 2)


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    threads = [threading.Thread(target=burn, args=(0.5 * scale,), name="worker-a"),
               threading.Thread(target=burn, args=(0.3 * scale,)),
               threading.Thread(target=renamed, args=(0.4 * scale,), name="before-rename")]
    for t in threads:
        t.start()
        t.join()
    burn(0.2 * scale)
    print(json.dumps({"cpu": {t.name: s for t, s in CPU.items()}, "main": threading.main_thread().name,
                      "default": threads[1].name}))


if __name__ == "__main__":
    main()
