"""rprof inside programs that end badly, exec, daemonise, reap, run out of memory or
disk, or share a directory with someone hostile: the program behaves as without rprof,
what was recorded reaches the trace, and nothing is written where it should not be."""
import os
import resource
import shutil
import signal
import stat
import subprocess
import time

import pytest

from harness import PYTHONS, build_c, report, report_json, shim_env

PY = PYTHONS["pyenv-3.11.7"]
HZ = "1000"        # capped by the kernel tick; what matters is the same rate for every ending
CPU_MS = "120"
RUNS = 20


def samples(trace):
    return report_json(trace)["rprof"]["samples"]


def cpu_kept(trace):
    """The CPU time a trace's samples stand for, in ms. Not their count: at 1000 Hz asked,
    a loaded machine's timer ticks land on a program that shares its core unevenly, and
    one run of ending.c's 120 ms kept 7 samples where another kept 29, each standing
    for the time since the one before (118 and 120 ms)."""
    return 1e3 * report_json(trace)["rprof"]["cpu_time_sec"]


def run_ending(tmp_path, how, i):
    """One run of tests/native/ending.c ending `how`; returns (returncode, traces)."""
    out = tmp_path / f"{how}-{i}"
    out.mkdir()
    exe = build_c("ending")
    proc = subprocess.run([exe, how, CPU_MS], cwd=out, capture_output=True, timeout=60,
                          env=shim_env(out, RPROF_CPU_HZ=HZ, RPROF_OUTPUT=str(out / "rprof.trace")))
    # The writer may still be draining after the program is gone (a crash, a kill).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(p.name.startswith(".") for p in out.iterdir()):
        time.sleep(0.05)
    time.sleep(0.2)
    return proc.returncode, sorted(out.glob("rprof*.trace"))


@pytest.fixture(scope="module")
def normal_exit_cpu(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exit")
    kept = []
    for i in range(RUNS):
        rc, traces = run_ending(tmp, "exit", i)
        assert rc == 0 and len(traces) == 1, (rc, traces)
        kept.append(cpu_kept(traces[0]))
    return kept


# Endings where no code of the process runs (SIGKILL; SIGSEGV at its default action) lose
# the time since the thread's last sample, and on a loaded machine the kernel's CPU timer
# may have taken none for 100 ms and more (it checks the timer only at a tick that finds
# the thread running): beside 4 busy loops on 2 cores, a bare program's 1 ms timer fired
# 0 to 10 times in 120 ms of its CPU. The
# other endings take a last sample (`sampler::last_sample`), so keep all of it.
TAIL_LOST = ("rawsegv", "kill")


@pytest.mark.parametrize("how,rc", [("_exit", 0), ("segv", 3), ("rawsegv", -signal.SIGSEGV),
                                    ("abort", -signal.SIGABRT), ("kill", -signal.SIGKILL)])
def test_every_ending_keeps_its_samples(how, rc, tmp_path, normal_exit_cpu):
    """A process that _exits, crashes or is killed ~120 ms of CPU after start keeps what
    it recorded, measured as the CPU time its samples stand for against normal exits':
    over 20 runs at least 95%, and no run under 80% (the writer used to read the dying
    process's /proc/PID/maps, take it for an exec, and write nothing); where the time
    since the last sample is lost by nature (TAIL_LOST), half over the 20 runs."""
    kept = []
    for i in range(RUNS):
        got_rc, traces = run_ending(tmp_path, how, i)
        assert got_rc == rc
        assert len(traces) == 1, traces
        kept.append(cpu_kept(traces[0]))
        meta = report_json(traces[0])["rprof"]
        assert meta["killed"] is (how in ("rawsegv", "abort", "kill")), (how, meta)
    normal = sum(normal_exit_cpu) / RUNS
    if how in TAIL_LOST:
        assert sum(kept) >= 0.5 * sum(normal_exit_cpu), (kept, normal_exit_cpu)
    else:
        assert sum(kept) >= 0.95 * sum(normal_exit_cpu), (kept, normal_exit_cpu)
        assert min(kept) >= 0.8 * normal, (kept, normal)


def test_exec_keeps_both_images(tmp_path, normal_exit_cpu):
    """exec: the first image's trace stays (ended as an exec, not killed), and the new
    image, same pid and same path, writes its own beside it."""
    normal = sum(normal_exit_cpu) / RUNS
    for i in range(5):
        rc, traces = run_ending(tmp_path, "exec", i)
        assert rc == 0
        assert len(traces) == 2, traces
        texts = {}
        for t in traces:
            meta = report_json(t)["rprof"]
            assert meta["killed"] is False, (t, meta)
            assert cpu_kept(t) >= 0.8 * normal, (t, meta, normal)
            text = report(t).stdout
            texts[text.split("\n")[0].split()[-2]] = text      # "Program  PATH HOW MS"
        assert set(texts) == {"exec", "exit"}, list(texts)
        assert "exec'd another program" in texts["exec"]
        assert "exec'd another program" not in texts["exit"]


def test_a_starved_run_keeps_its_last_stretch(tmp_path):
    """A run that shares its core with 3 busy loops (all pinned to one core) gets few
    timer signals: the kernel checks a CPU-clock timer only at a tick that finds the
    thread running. Each of 5 runs of ending.c (120 ms of CPU, then exit or _exit) still
    keeps at least 90% of its CPU time: what the timer left unsampled at the end is the
    shim's last sample (without it, this test failed in 2 of 3 tries)."""
    core = min(os.sched_getaffinity(0))
    pin = lambda: os.sched_setaffinity(0, {core})      # noqa: E731
    busy = [subprocess.Popen(["sh", "-c", "while :; do :; done"], preexec_fn=pin) for _ in range(3)]
    try:
        kept = []
        for i, how in enumerate(("exit", "_exit", "exit", "_exit", "exit")):
            out = tmp_path / f"{how}-{i}"
            out.mkdir()
            proc = subprocess.run([build_c("ending"), how, CPU_MS], cwd=out, capture_output=True, timeout=60,
                                  preexec_fn=pin, env=shim_env(out, RPROF_CPU_HZ=HZ, RPROF_OUTPUT=str(out / "rprof.trace")))
            assert proc.returncode == 0, proc.stderr
            kept.append((how, cpu_kept(out / "rprof.trace"), samples(out / "rprof.trace")))
    finally:
        for b in busy:
            b.kill()
            b.wait()
    assert all(ms >= 0.9 * float(CPU_MS) for _, ms, _ in kept), kept


DAEMON = r"""
import os, sys
os.closerange(3, 1024)                       # a daemon closes every descriptor ...
logs = [os.open(f"log{i}", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) for i in range(8)]
pid = os.fork()                              # ... reopens some, and forks a worker
if pid == 0:
    for fd in logs:
        os.write(fd, b"child\n")
    os._exit(0)
_, status = os.waitpid(pid, 0)
for fd in logs:
    os.write(fd, b"parent\n")
print(os.waitstatus_to_exitcode(status))
"""


def test_daemon_descriptors_are_never_closed(tmp_path):
    """After closing every descriptor and reopening files that get the numbers of rprof's
    old pipe, the forked child's log writes must succeed (rprof used to close its old
    pipe's number in every fork child: EBADF)."""
    proc = subprocess.run([PY, "-c", DAEMON], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env=shim_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0", proc.stderr
    for i in range(8):
        assert (tmp_path / f"log{i}").read_text() == "child\nparent\n", i


SUBREAPER = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(36, 1, 0, 0, 0) == 0       # PR_SET_CHILD_SUBREAPER, as an init would be
mine = set()
for i in range(10):
    pid = os.fork()
    if pid == 0:
        grandchild = os.fork()               # a worker's own worker, orphaned onto us
        if grandchild == 0:
            sum(range(200_000))
            os._exit(0)
        sum(range(200_000))
        os._exit(0)                          # workers end as multiprocessing's do
    mine.add(pid)
time.sleep(1.0)
seen = set()
deadline = time.time() + 5
while time.time() < deadline:
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if pid == 0:
        time.sleep(0.05)
        continue
    seen.add(pid)
print(len(mine), len(seen - mine), len(mine - seen))
"""


def test_a_subreaper_reaps_only_its_own(tmp_path):
    """A subreaper (a container init, PID 1) that forks workers which _exit must reap its
    workers and their orphaned children, 20 processes, and nothing else: rprof's writers
    used to outlive the workers and land on it (30 unexpected children seen)."""
    plain = subprocess.run([PY, "-c", SUBREAPER], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    proc = subprocess.run([PY, "-c", SUBREAPER], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env=shim_env(tmp_path))
    assert plain.returncode == 0 and proc.returncode == 0, proc.stderr
    workers, unexpected, missing = map(int, proc.stdout.split())
    p_workers, p_unexpected, _ = map(int, plain.stdout.split())
    assert (workers, missing) == (10, 0)
    assert unexpected == p_unexpected == 10, (proc.stdout, plain.stdout)   # the orphaned grandchildren


def test_captured_stderr_stays_the_programs(tmp_path):
    """Without RPROF_LOG, a profiled process whose stderr is not a terminal prints
    nothing into it: a child's captured stderr stays empty, as without rprof."""
    code = ("import subprocess, sys; "
            "r = subprocess.run([sys.executable, '-c', 'sum(range(10**6))'], capture_output=True); "
            "print(repr(r.stderr))")
    env = shim_env(tmp_path)
    del env["RPROF_LOG"]
    proc = subprocess.run([PY, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0
    assert proc.stdout.strip() == "b''", proc.stdout
    assert proc.stderr == "", proc.stderr
    assert len(list(tmp_path.glob("rprof-*.trace"))) == 2


def test_bad_setting_is_in_the_trace(tmp_path):
    """A warning the shim gives reaches the report even when stderr showed nothing."""
    env = shim_env(tmp_path, RPROF_CPU_HZ="banana")
    del env["RPROF_LOG"]
    proc = subprocess.run([PY, "-c", "sum(range(10**6))"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0 and proc.stderr == ""
    (trace,) = tmp_path.glob("rprof-*.trace")
    assert "RPROF_CPU_HZ" in report(trace).stdout


def test_symlinks_and_foreign_files_are_left_alone(tmp_path):
    """A symbolic link planted at the output path (a sticky shared directory's attack),
    or a file that is not an rprof trace: left untouched, the trace goes to a new name
    beside it, mode 0600 whatever the umask; an earlier trace at the path is replaced."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.chmod(victim, 0o644)
    link = tmp_path / "out.trace"
    link.symlink_to(victim)
    foreign = tmp_path / "other.trace"
    foreign.write_text("my notes\n")
    old_umask = os.umask(0)
    try:
        for target in (link, foreign):
            proc = subprocess.run([PY, "-c", "sum(range(10**6))"], cwd=tmp_path, capture_output=True, text=True,
                                  timeout=60, env=shim_env(tmp_path, RPROF_OUTPUT=str(target)))
            assert proc.returncode == 0, proc.stderr
            assert "left untouched" in proc.stderr, proc.stderr
            new = target.with_name(target.stem + ".1.trace")
            assert new.exists(), list(tmp_path.iterdir())
            assert stat.S_IMODE(new.stat().st_mode) == 0o600
            assert samples(new) > 0
        assert victim.read_text() == "precious\n" and link.is_symlink()
        assert foreign.read_text() == "my notes\n"
        # An earlier trace (idle) is replaced in place.
        again = foreign.with_name("other.1.trace")
        before = again.stat().st_ino
        proc = subprocess.run([PY, "-c", "sum(range(10**6))"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=60, env=shim_env(tmp_path, RPROF_OUTPUT=str(again)))
        assert proc.returncode == 0 and f"wrote {again} " in proc.stderr, proc.stderr
        assert again.stat().st_ino != before and samples(again) > 0
        assert not list(tmp_path.glob(".*.tmp"))
    finally:
        os.umask(old_umask)


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs: a disk that fills. Needs root (the test machine and CI run as root)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


FILL = "import time\nt = time.process_time(); x = []\nwhile time.process_time() - t < 1.5: x.append(str(len(x)) * 10); x = x[-1000:]\nprint('ok')"


def test_a_full_disk_is_said_and_the_trace_stays_readable(small_disk, tmp_path):
    out = small_disk / "t.trace"
    proc = subprocess.run([PY, "-c", FILL], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env=shim_env(tmp_path, RPROF_OUTPUT=str(out), RPROF_CPU_HZ=HZ))
    assert (proc.returncode, proc.stdout) == (0, "ok\n"), proc.stderr
    assert "No space left on device" in proc.stderr and "rprof: wrote" not in proc.stderr, proc.stderr
    out = shutil.copy(out, tmp_path / "t.trace")        # the report's JSON would not fit beside it
    rep = report(out)
    assert rep.returncode == 0, rep.stderr
    assert "stops early: No space left on device" in rep.stdout, rep.stdout
    assert "was killed (or crashed)" not in rep.stdout
    meta = report_json(out)["rprof"]
    assert meta["killed"] is False and meta["samples"] > 0 and meta["damage"] == [], meta


def test_a_deleted_trace_is_said(tmp_path):
    out = tmp_path / "t.trace"
    proc = subprocess.Popen([PY, "-c", "import time; time.sleep(1.0)"], cwd=tmp_path, stderr=subprocess.PIPE,
                            text=True, env=shim_env(tmp_path, RPROF_OUTPUT=str(out)))
    deadline = time.monotonic() + 10
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    out.unlink()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "was deleted during the run" in err and "rprof: wrote" not in err, err


@pytest.mark.parametrize("limit_mb", [20, 40, 80, 150, 300])
def test_address_space_limits(limit_mb, tmp_path):
    """Under `ulimit -v`, wherever plain Python starts, it starts under rprof too, with the
    same output, and rprof either profiles or says in one line why not: never Rust's
    allocation-failure text, never an abort, and any trace it leaves is readable."""
    code = "import json; print(sum(range(10**6)))"

    def limited():
        lim = limit_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))

    plain = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60, preexec_fn=limited)
    if plain.returncode != 0:
        pytest.skip(f"plain Python does not start under {limit_mb} MB either")
    proc = subprocess.run([PY, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          preexec_fn=limited, env=shim_env(tmp_path))
    assert (proc.returncode, proc.stdout) == (0, plain.stdout), proc.stderr
    lines = proc.stderr.splitlines()
    assert all(line.startswith("rprof: ") for line in lines), proc.stderr
    assert len(lines) == 1, proc.stderr
    for trace in tmp_path.glob("rprof-*.trace"):
        assert report(trace).returncode == 0


def test_storm_is_identical_with_and_without_rprof(tmp_path):
    """8 threads allocating mixed sizes with realloc chains, aligned allocations and
    cross-thread frees, a fork from the multithreaded parent and a signal storm: the same
    output with and without rprof, 20 runs (make stress runs it longer)."""
    exe = build_c("storm")
    plain = subprocess.run([exe, "3000"], capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0, plain.stderr
    want = sorted(plain.stdout.splitlines())
    for i in range(RUNS):
        out = tmp_path / str(i)
        out.mkdir()
        proc = subprocess.run([exe, "3000"], cwd=out, capture_output=True, text=True, timeout=60,
                              env=shim_env(out, RPROF_CPU_HZ=HZ))
        assert proc.returncode == 0, proc.stderr
        assert sorted(proc.stdout.splitlines()) == want, i
        for trace in out.glob("rprof-*.trace"):
            assert report(trace).returncode == 0


def test_pthread_create_out_of_memory_gets_eagain(tmp_path):
    """With the heap exhausted, pthread_create fails with EAGAIN as without rprof; the
    wrapper used to abort the program ("memory allocation of 16 bytes failed")."""
    exe = build_c("thread_oom")
    plain = subprocess.run([exe], capture_output=True, text=True, timeout=60)
    proc = subprocess.run([exe], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=shim_env(tmp_path))
    assert plain.stdout == "oom: EAGAIN\nafter: 0 ran\n", plain
    assert (proc.returncode, proc.stdout) == (plain.returncode, plain.stdout), proc.stderr
    assert "memory allocation" not in proc.stderr
