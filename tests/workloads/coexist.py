"""A Python program with timers and signal handlers of its own, for tests/test_coexist.py:
it must behave the same under rprof. Each mode prints what it saw.

  prof      setitimer(ITIMER_PROF, 20 ms) counted by its own SIGPROF handler while it burns
            1.5 s of CPU: "ticks N cpu_ms M"
  real      setitimer(ITIMER_REAL, 20 ms) and a SIGALRM handler over 1.5 s: "ticks N wall_ms M"
  rt        a handler on SIGRTMIN+2 (the first signal rprof's sampler would take), and the
            signal sent to itself 50 times: "rt 50"
  alarm     setitimer(ITIMER_REAL) with no handler: SIGALRM ends the process
"""
import os
import signal
import sys
import time

PERIOD = 0.02
ticks = 0


def count(sig, frame):
    global ticks
    ticks += 1


def burn(clock, seconds):
    end = clock() + seconds
    x = 0
    while clock() < end:
        for i in range(2000):
            x += i * i
    return x


def timer(which, sig, clock, what):
    signal.signal(sig, count)
    t0 = clock()
    signal.setitimer(which, PERIOD, PERIOD)
    burn(clock, 1.5)
    signal.setitimer(which, 0)
    print(f"ticks {ticks} {what} {(clock() - t0) * 1e3:.0f}")


def main(mode):
    if mode == "prof":
        timer(signal.ITIMER_PROF, signal.SIGPROF, time.process_time, "cpu_ms")
    elif mode == "real":
        timer(signal.ITIMER_REAL, signal.SIGALRM, time.monotonic, "wall_ms")
    elif mode == "rt":
        sig = signal.SIGRTMIN + 2
        signal.signal(sig, count)
        for _ in range(50):
            os.kill(os.getpid(), sig)
        print(f"rt {ticks}")
    elif mode == "alarm":
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        burn(time.monotonic, 10)
        print("survived")
    else:
        sys.exit(f"usage: {sys.argv[0]} prof|real|rt|alarm")


if __name__ == "__main__":
    main(sys.argv[1])
