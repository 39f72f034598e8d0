"""Programs with timers and signal handlers of their own keep their behaviour under rprof
(issue 11, item 5). rprof samples on a real-time signal of its own (the first free one
from SIGRTMIN+2, shim/src/sys/signals.rs) driven by per-thread POSIX timers, owns SIGSEGV and
SIGBUS for its stack walker's fault guard, and stands in for the default action of the
quiet-ending signals (SIGALRM, SIGTERM, ...; shim/src/ending.rs). Each program here runs
plain and profiled in the same test, and what it prints (tick counts, which depend on the
time it measured itself) is held to the same rule in both runs."""
import re
import signal
import subprocess

import pytest

from harness import OWN, RPROF, build_c, interpreters, report, require, run_profiled, shim_env

PERIOD_MS = 20  # the programs' own timers: a multiple of the 4 ms kernel tick


def plain(argv, tmp_path, timeout=60):
    return subprocess.run([str(a) for a in argv], cwd=tmp_path, capture_output=True, text=True,
                          timeout=timeout)


def both(argv, tmp_path, timeout=60):
    """The program's run without and with the shim (which must have sampled it)."""
    p = plain(argv, tmp_path, timeout)
    q, trace = run_profiled(argv, tmp_path, timeout=timeout)
    return p, q, trace


def assert_ticks(out, what):
    """`ticks N cpu_ms|wall_ms M`: one tick per period of the time the program measured
    over its own timer's life, within 12 % (the kernel checks CPU timers at its ticks, and a
    loaded machine was seen to give 8 % more ticks than CPU time measured, unprofiled)."""
    m = re.fullmatch(r"ticks (\d+) (cpu_ms|wall_ms) (\d+)\n", out)
    assert m, f"{what}: unexpected output {out!r}"
    ticks, ms = int(m[1]), int(m[3])
    expected = ms / PERIOD_MS
    assert abs(ticks - expected) <= max(2, 0.12 * expected), \
        f"{what}: {ticks} ticks in {ms} ms, expected {expected:.0f} (one per {PERIOD_MS} ms)"


@pytest.fixture(scope="module")
def coexist():
    return build_c("coexist")


@pytest.mark.parametrize("mode", ["timer-prof", "timer-alrm", "timer-rt"])
def test_c_timers_keep_their_rate(coexist, tmp_path, mode):
    """timer_create with SIGEV_SIGNAL (SIGPROF on the process CPU clock, SIGALRM on the
    monotonic clock, and SIGRTMIN+2, the signal rprof itself samples on, whose handler rprof
    chains to) with the program's own handler: every expiry reaches it, profiled or not."""
    p, q, trace = both([coexist, mode], tmp_path)
    assert p.returncode == 0 and q.returncode == 0, (p.stderr, q.stderr)
    assert_ticks(p.stdout, f"{mode} plain")
    assert_ticks(q.stdout, f"{mode} under rprof")
    assert trace.stat().st_size > 0


@pytest.mark.parametrize("mode,expect", [
    ("rt", "rt ok 31 of 31\n"),
    ("query", "before default\nafter ours\nraised ticks 1\n"),
    ("segv", "recovered 3\n"),
    ("sigwait-usr1", "timed out yes\nwaited 20\n"),
])
def test_c_signal_handling_is_unchanged(coexist, tmp_path, mode, expect):
    """Handlers on every real-time signal (values intact), sigaction's view of the sampling
    signal (the default until the program sets its own), a SIGSEGV handler that recovers
    with siglongjmp (rprof's fault guard chains to it), sigtimedwait on a blocked signal."""
    p = plain([coexist, mode], tmp_path)
    assert (p.returncode, p.stdout) == (0, expect), p.stderr
    q = subprocess.run([str(coexist), mode], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60, env=shim_env(tmp_path))
    assert (q.returncode, q.stdout) == (0, expect), q.stderr


def test_c_one_shot_fault_handler_runs_once(coexist, tmp_path):
    """A SA_RESETHAND SIGSEGV handler that returns: the fault comes again and, the handler
    being spent, kills the process with SIGSEGV. rprof's own SIGSEGV handler is the one
    installed, so it must reset the program's action as the kernel would (it used to call
    the handler again for ever)."""
    p = plain([coexist, "resethand"], tmp_path)
    assert (p.returncode, p.stdout) == (-signal.SIGSEGV, "handled\n")
    q = subprocess.run([str(coexist), "resethand"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60, env=shim_env(tmp_path))
    assert (q.returncode, q.stdout[:100]) == (-signal.SIGSEGV, "handled\n")


@pytest.mark.parametrize("how", ["t", "i", "w"])
@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_c_sigwait_on_the_sampling_signal(coexist, tmp_path, how, clock):
    """A program that blocks rprof's sampling signal (SIGRTMIN+2 when free at start) and
    waits for it with sigtimedwait, sigwaitinfo or sigwait gets each of its own 20
    signals, as unprofiled; in wall mode, where rprof's timer expires on that signal while
    the program waits, a 100 ms wait for nothing still lasts its 100 ms."""
    want = "timed out yes\nwaited 20\n"
    p = plain([coexist, f"sigwait-rt-{how}"], tmp_path)
    assert (p.returncode, p.stdout) == (0, want)
    q = subprocess.run([str(coexist), f"sigwait-rt-{how}"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120, env=shim_env(tmp_path, RPROF_CLOCK=clock, RPROF_CPU_HZ="1000"))
    assert (q.returncode, q.stdout) == (0, want), q.stderr


PROG = OWN / "coexist.py"


@pytest.mark.parametrize("python", interpreters())
@pytest.mark.parametrize("mode", ["prof", "real"])
def test_python_itimers_keep_their_rate(tmp_path, python, mode):
    """signal.setitimer(ITIMER_PROF) with a SIGPROF handler, and ITIMER_REAL with a SIGALRM
    handler (rprof stands in for SIGALRM's default until the program sets one): the
    program's handler counts one tick per period of the time it measured, profiled or not,
    and rprof still samples the program."""
    p, q, trace = both([python, PROG, mode], tmp_path)
    assert p.returncode == 0 and q.returncode == 0, (p.stderr, q.stderr)
    assert_ticks(p.stdout, f"{mode} plain")
    assert_ticks(q.stdout, f"{mode} under rprof")
    r = report(trace)
    m = re.search(r"in (\d+) samples", r.stdout)
    assert m and int(m[1]) >= 50, f"rprof took too few samples of 1.5 s of work: {r.stdout[:400]}"


@pytest.mark.parametrize("python", interpreters())
def test_python_handler_on_the_sampling_signal(tmp_path, python):
    """A Python handler on SIGRTMIN+2 (rprof's sampling signal when it was free) gets each
    of the 50 signals the program sends itself: rprof passes on any that is not its timer's."""
    p, q, _ = both([python, PROG, "rt"], tmp_path)
    assert (p.returncode, p.stdout) == (0, "rt 50\n"), p.stderr
    assert (q.returncode, q.stdout) == (0, "rt 50\n"), q.stderr


@pytest.mark.parametrize("python", interpreters())
def test_python_alarm_without_handler_still_ends_it(tmp_path, python):
    """ITIMER_REAL with no handler: SIGALRM ends the program (status 128+14 from rprof run,
    as from a shell), and rprof's report says so."""
    require(RPROF)
    p = plain([python, PROG, "alarm"], tmp_path)
    assert p.returncode == -signal.SIGALRM and "survived" not in p.stdout
    q = subprocess.run([str(RPROF), "run", "--", python, str(PROG), "alarm"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert q.returncode == 128 + signal.SIGALRM, q.stderr
    assert "survived" not in q.stdout
    assert "SIGALRM" in q.stderr, q.stderr
