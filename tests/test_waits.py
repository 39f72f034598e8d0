"""Waiting calls under wall-clock sampling (RPROF_CLOCK=wall, RPROF_CPU_HZ=1000, the timer
fires about every millisecond while a thread waits): no sleep, poll, select, epoll or
signal wait fails with EINTR or returns early, no program waiting on a full signal set
receives the sampling signal, and the profile still charges the waited time to the line
that waited."""
import re
import subprocess

import pytest

from harness import OWN, REPO, file_lines, interpreters, other_stderr, profiled, run_profiled

WAITS_C = REPO / "tests" / "native" / "waits.c"
WAITS_PY = OWN / "waits.py"
WALL = {"RPROF_CLOCK": "wall", "RPROF_CPU_HZ": "1000"}
# Each C line: "NAME calls N eintr E early R other O"; a correct run has E = R = O = 0.
CALL_LINE = re.compile(r"^(\S+)\s+calls\s+(\d+) eintr\s+(\d+) early\s+(\d+) other\s+(\d+)$")


@pytest.fixture(scope="session")
def waits_exe(tmp_path_factory):
    exe = tmp_path_factory.mktemp("build") / "waits"
    subprocess.run(["gcc", "-O2", "-g", "-pthread", "-fno-omit-frame-pointer", "-o", str(exe), str(WAITS_C)],
                   check=True, timeout=120)
    return exe


def plain(argv):
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{argv} exited {proc.returncode} without the shim: {proc.stderr}"
    return proc


def failures(stdout):
    """The calls of the C program's report that failed, came back early or received a
    signal they should not have."""
    rows = [CALL_LINE.match(line) for line in stdout.splitlines() if "calls" in line]
    assert rows and all(rows), f"unexpected output:\n{stdout}"
    return [m.group(0) for m in rows if any(int(m.group(i)) for i in (3, 4, 5))]


def samples(stderr):
    m = re.search(r"rprof: wrote \S+ \((\d+) samples", stderr)
    assert m, f"no closing line from the shim in:\n{stderr}"
    return int(m.group(1))


@pytest.mark.parametrize("threads", ["1", "4"])
@pytest.mark.parametrize("mode", ["sleeps", "sigwait"])
def test_c_waits_never_fail(mode, threads, waits_exe, tmp_path):
    """Every call of each kind (30 of 10 ms per thread, sleep(1) twice): none fails with
    EINTR, returns before its time (pause/sigsuspend: before their own signal) or, in a
    program that blocks every signal and waits on a full set, gets any signal but the
    SIGUSR2 its own timer sends; the output is the unprofiled run's. One thread is the
    main thread itself."""
    argv = [waits_exe, mode, threads]
    base = plain(argv)
    assert failures(base.stdout) == [], f"failures without the shim:\n{base.stdout}"
    proc, trace = run_profiled(argv, tmp_path, timeout=120, **WALL)
    assert proc.returncode == 0, f"exit {proc.returncode} under the shim: {proc.stderr}"
    assert failures(proc.stdout) == [], f"under the shim:\n{proc.stdout}"
    assert proc.stdout == base.stdout
    assert other_stderr(proc.stderr) == base.stderr.splitlines()
    if mode == "sleeps":
        # The timers did fire (the waits were sampled), or this proves nothing.
        assert samples(proc.stderr) > 100
    trace.unlink()


def test_c_cancelled_waits(waits_exe, tmp_path):
    """Threads cancelled inside nanosleep, poll and sigtimedwait (through the wrappers)
    end as cancelled, as without the shim."""
    argv = [waits_exe, "cancel"]
    base = plain(argv)
    proc, _ = run_profiled(argv, tmp_path, timeout=60, **WALL)
    assert proc.returncode == 0, f"exit {proc.returncode} under the shim: {proc.stderr}"
    assert proc.stdout == base.stdout
    assert base.stdout.count("cancelled") == 3


def marker_line(path, marker):
    lines = [no for no, text in enumerate(path.read_text().splitlines(), 1)
             if text.rstrip().endswith(marker)]
    assert len(lines) == 1, f"{path}: {marker!r} on lines {lines}"
    return lines[0]


def measured_shares(stdout):
    """{part: share} from the workload's `share NAME X NAME Y ...` line."""
    line = next(line for line in stdout.splitlines() if line.startswith("share "))
    words = line.split()[1:]
    return {k: float(v) for k, v in zip(words[::2], words[1::2])}


def assert_wall_shares(data, source, markers, measured, tol=0.10):
    """The wall-time share each waiting line has in the profile (its samples carry the
    time waited) within `tol` of the share of wall time measured around it."""
    lines = file_lines(data, source)
    bad = []
    for part, marker in markers.items():
        rec = lines.get(marker_line(source, marker))
        got = 0.0 if rec is None else (rec["n_cpu_percent_python"] + rec["n_cpu_percent_c"]
                                       + rec["n_sys_percent"]) / 100
        if abs(got - measured[part]) > tol:
            bad.append(f"{part}: profile {got:.3f}, measured {measured[part]:.3f}")
    assert not bad, "wall shares off the measured ones: " + "; ".join(bad)


def test_c_wall_share(waits_exe, tmp_path):
    """A C loop of 4 ms of CPU, a 3 ms nanosleep and a 3 ms poll: each waiting line's
    share of the wall-clock profile is its measured share of the run."""
    p = profiled([waits_exe, "share"], tmp_path, timeout=60, **WALL)
    assert_wall_shares(p.data, WAITS_C, {"nanosleep": "// LINE nanosleep", "poll": "// LINE poll"},
                       measured_shares(p.proc.stdout))


@pytest.mark.parametrize("python", interpreters())
def test_python_sigtimedwait(python, tmp_path):
    """signal.sigtimedwait over SIGUSR1 times out every time (Python's EINTR retry past
    the deadline returned a siginfo instead), and a loop over every signal with all of
    them blocked gets its 30 timeouts and no signal (it got only rprof's before, and never
    timed out)."""
    argv = [python, WAITS_PY, "sigtimedwait"]
    base = plain(argv)
    assert "SIGUSR1: 30 timeouts" in base.stdout and "all signals: 30 timeouts, signals received []" in base.stdout
    proc, _ = run_profiled(argv, tmp_path, timeout=60, **WALL)
    assert proc.returncode == 0, f"exit {proc.returncode} under the shim: {proc.stderr}"
    assert proc.stdout == base.stdout


@pytest.mark.parametrize("python", interpreters())
def test_python_wall_share(python, tmp_path):
    """time.sleep and select.select lines in a wall-clock profile: their measured shares."""
    p = profiled([python, WAITS_PY, "share"], tmp_path, timeout=60, **WALL)
    assert_wall_shares(p.data, WAITS_PY, {"sleep": "# LINE sleep", "select": "# LINE select"},
                       measured_shares(p.proc.stdout))
