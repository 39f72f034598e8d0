"""The Python API's acceptance workload (tests/test_pyapi.py), run with RPROF_START=paused:
hot loops outside any profile() block and inside blocks, a nested block, a decorated
function, and two threads whose blocks overlap (recording must last until the last one
ends). Each loop's line carries a `# region:NAME` comment; the CPU time each loop took,
measured here with the thread's CPU clock, is printed as JSON at the end (the truth)."""
import json
import sys
import threading
import time

import rprof

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 0.4
cpu = {}


def measured(name, seconds, loop):
    t0 = time.thread_time()
    loop(seconds)
    cpu[name] = cpu.get(name, 0.0) + time.thread_time() - t0


def until(seconds):
    return time.thread_time() + seconds


def outside_before(s):
    x, end = 0, until(s)
    while time.thread_time() < end: x += 1  # region:out_before


def in_block(s):
    x, end = 0, until(s)
    while time.thread_time() < end: x += 1  # region:in_block


def in_nested(s):
    x, end = 0, until(s)
    while time.thread_time() < end: x += 1  # region:in_nested


def in_block_after_nested(s):
    x, end = 0, until(s)
    while time.thread_time() < end: x += 1  # region:in_after_nested


def outside_between(s):
    x, end = 0, until(s)
    while time.thread_time() < end: x += 1  # region:out_between


@rprof.profile
def decorated(s):
    x, end = 0, until(s)
    while time.thread_time() < end: x += 1  # region:in_decorated


def thread_short(s):
    with rprof.profile():
        measured("in_thread_short", s, lambda s: _short(s))


def _short(s):
    x, end = 0, until(s)
    while time.thread_time() < end: x += 1  # region:in_thread_short


def thread_long(s):
    with rprof.profile():
        measured("in_thread_long", s, lambda s: _long(s))


def _long(s):
    x, end = 0, until(s)
    while time.thread_time() < end: x += 1  # region:in_thread_long


def outside_after(s):
    x, end = 0, until(s)
    while time.thread_time() < end: x += 1  # region:out_after


def main():
    s = SECONDS
    measured("out_before", s, outside_before)
    with rprof.profile():
        measured("in_block", s, in_block)
        with rprof.profile():
            measured("in_nested", s / 2, in_nested)
        measured("in_after_nested", s / 2, in_block_after_nested)
    measured("out_between", s, outside_between)
    measured("in_decorated", s, decorated)
    rprof.mark("threads start")
    threads = [threading.Thread(target=thread_short, args=(s / 2,)),
               threading.Thread(target=thread_long, args=(s,))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    measured("out_after", s, outside_after)
    print(json.dumps(cpu))


if __name__ == "__main__":
    main()
