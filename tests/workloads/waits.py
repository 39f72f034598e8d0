"""Python's waits under a profiler's sampling signal.

  waits.py sigtimedwait   30 calls of signal.sigtimedwait over SIGUSR1 for 20 ms; then,
                          all signals blocked, calls over every signal until 30 have
                          timed out (at most 600 calls); prints the timeouts and the
                          signals received, the same in any correct run
  waits.py share          alternates burn() (CPU), time.sleep and select.select; prints
                          the measured share of each, to compare with a wall-clock profile
"""
import os
import select
import signal
import sys
import time


def sigtimedwait():
    # Python retries a wait that failed with EINTR; one retried past its deadline
    # returns a siginfo (of no signal) instead of None.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    wrong = sum(signal.sigtimedwait({signal.SIGUSR1}, 0.02) is not None for _ in range(30))
    print(f"SIGUSR1: {30 - wrong} timeouts, {wrong} other returns")
    every = signal.valid_signals()
    signal.pthread_sigmask(signal.SIG_BLOCK, every)
    timeouts = calls = 0
    received = set()
    while timeouts < 30 and calls < 600:
        calls += 1
        info = signal.sigtimedwait(every, 0.02)
        if info is None:
            timeouts += 1
        else:
            received.add(info.si_signo)
    print(f"all signals: {timeouts} timeouts, signals received {sorted(received)}")


def burn(ns):
    end = time.perf_counter_ns() + ns
    x = 0
    while time.perf_counter_ns() < end:
        x += 1  # LINE burn
    return x


def share():
    r, _w = os.pipe()
    spent = {"burn": 0, "sleep": 0, "select": 0}
    for _ in range(150):
        t0 = time.perf_counter_ns()
        burn(4_000_000)
        t1 = time.perf_counter_ns()
        time.sleep(0.003)  # LINE sleep
        t2 = time.perf_counter_ns()
        select.select([r], [], [], 0.003)  # LINE select
        t3 = time.perf_counter_ns()
        spent["burn"] += t1 - t0
        spent["sleep"] += t2 - t1
        spent["select"] += t3 - t2
    total = sum(spent.values())
    print("share " + " ".join(f"{k} {v / total:.3f}" for k, v in spent.items()))


if __name__ == "__main__":
    {"sigtimedwait": sigtimedwait, "share": share}[sys.argv[1]]()
