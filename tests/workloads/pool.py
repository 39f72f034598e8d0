#!/usr/bin/env python3
# pool.py -- rprof test workload: a multiprocessing.Pool job, start method `sys.argv[1]`
# (fork, spawn or forkserver; default fork). The parent runs one pure-Python line (HOT-PARENT)
# while 2 workers run another (HOT-CHILD) over 8 tasks; ~1 s of CPU in all unprofiled.
# With `terminate` as `sys.argv[2]` the pool ends with Pool.terminate() while both workers
# are busy with one more task (so SIGTERM ends them) instead of close() and join(); the
# few ms those tasks run are not in the shares printed. `sys.argv[3]`, when given, scales
# the work (the shares stay): rprof's fixed cost per process weighs less in a longer run.
# The run measures its own truth: each task times its hot part on its thread's CPU clock
# and the parent its own; the whole run's CPU is the parent's, plus its reaped children's
# (os.times, once the pool is joined), plus what the processes it does not reap have used
# by then (/proc/PID/stat: the resource tracker, the forkserver, and the forkserver's
# workers, read while they idle before the pool ends). It prints each
# part's share of that whole, and `pool-pids parent=P workers=A,B ...` for the tests.
# TRUTH line=29 cpu=18 kind=python
# TRUTH line=35 cpu=60 kind=python
import multiprocessing
import os
import sys
import time

from _check import print_shares

N_PARENT, N_CHILD, TASKS = 2_500_000, 900_000, 8


def parent_part(n):
    acc = 0
    for i in range(n): acc = (acc * 33 + i) % 1_000_003      # HOT-PARENT
    return acc


def child_part(n):
    acc = 0
    for i in range(n): acc = (acc * 31 + i) % 1_000_033      # HOT-CHILD
    return acc


def task(n):
    c0 = time.thread_time()
    acc = child_part(n)
    return os.getpid(), time.thread_time() - c0, acc


def spin_until_terminated(_):
    STARTED.put(os.getpid())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pass


def worker_init(started):
    global STARTED
    STARTED = started
    started.put(os.getpid())


def cpu_of(pid):
    """CPU seconds a live process has used (utime + stime), 0 when it is gone."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def helpers():
    """Pids of the processes the parent started but does not reap before it exits."""
    from multiprocessing import forkserver, resource_tracker
    pids = [getattr(resource_tracker._resource_tracker, "_pid", None),
            getattr(forkserver._forkserver, "_forkserver_pid", None)]
    return [p for p in pids if p]


def main(method, ending, scale):
    ctx = multiprocessing.get_context(method)
    started = ctx.SimpleQueue()
    pool = ctx.Pool(2, initializer=worker_init, initargs=(started,))
    # Both workers run before the tasks are given out, so that each takes some.
    ready = {started.get(), started.get()}
    c0 = time.thread_time()
    acc = parent_part(N_PARENT * scale)
    parent_cpu = time.thread_time() - c0
    results = pool.map(task, [N_CHILD * scale] * TASKS, chunksize=1)
    workers = sorted({pid for pid, _, _ in results})
    assert set(workers) == ready, (workers, ready)
    # The forkserver, not the parent, reaps its workers.
    unreaped = sum(map(cpu_of, workers)) if method == "forkserver" else 0.0
    if ending == "terminate":
        pool.map_async(spin_until_terminated, range(2), chunksize=1)
        assert {started.get(), started.get()} == set(workers), "both workers are busy"
        pool.terminate()
    else:
        pool.close()
    pool.join()
    child_cpu = sum(cpu for _, cpu, _ in results)
    own, children = time.process_time(), os.times()
    unreaped += sum(map(cpu_of, helpers()))
    total = own + children.children_user + children.children_system + unreaped
    print("pool", method, acc, sum(a for _, _, a in results))
    print(f"pool-pids parent={os.getpid()} workers={','.join(map(str, workers))}")
    print(f"in-run total cpu {total:.3f}s")
    print_shares(__file__, total, {"HOT-PARENT": parent_cpu, "HOT-CHILD": child_cpu})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fork", sys.argv[2] if len(sys.argv) > 2 else "close",
         int(sys.argv[3]) if len(sys.argv) > 3 else 1)
