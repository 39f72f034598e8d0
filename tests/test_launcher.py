"""`rprof run` behaves like the program it runs: the program's output stays the program's,
signals sent to rprof reach the program (once), rprof exits with the program's status,
and what rprof says about the traces is true."""
import os
import pty
import re
import select
import signal
import subprocess
import time

import pytest

from harness import OWN, PYTHONS, RPROF, SHIM, build_c, require

PY = PYTHONS["pyenv-3.11.7"]


def rprof_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPROF_")}
    env.update(extra)
    return env


def test_stdout_is_byte_identical(tmp_path):
    """`rprof run -- python -m json.tool x.json > out`: out holds the program's output and
    nothing else; the report is on stderr."""
    require(RPROF, SHIM)
    src = tmp_path / "x.json"
    src.write_text('{"b": [1, 2, {"c": "d"}], "a": 3.5}')
    argv = [PY, "-m", "json.tool", "--sort-keys", src]
    plain = subprocess.run(argv, capture_output=True, timeout=60)
    profiled = subprocess.run([RPROF, "run", "--", *argv], cwd=tmp_path, capture_output=True, timeout=60,
                              env=rprof_env())
    assert profiled.returncode == plain.returncode == 0, profiled.stderr
    assert profiled.stdout == plain.stdout
    assert b"Trace: " in profiled.stderr or b"nothing to report" in profiled.stderr, profiled.stderr


# Waits for a signal; its handler prints what arrived and exits with a status of its own.
# Short sleeps: a signal arriving just before a long sleep starts would wait for its end
# (CPython runs handlers between bytecodes).
CATCHER = """
import signal, sys, time
def on(sig, frame):
    print("got", signal.Signals(sig).name, flush=True)
    sys.exit(40 + sig)
for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGQUIT, signal.SIGINT):
    signal.signal(s, on)
print("ready", flush=True)
for _ in range(3000):
    time.sleep(0.02)
sys.exit(1)
"""


def start_ready(argv, **kw):
    """Starts argv in a session of its own (so that whatever it leaves behind can be
    killed), once it printed `ready`."""
    proc = subprocess.Popen([*map(str, argv)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kw)
    assert proc.stdout.readline() == "ready\n"
    return proc


def finish(proc):
    """(stdout, stderr) once proc ended; anything of its session still running is killed
    (rprof used to die of a signal and leave the program running, holding the pipes)."""
    try:
        proc.wait(timeout=30)
        time.sleep(0.1)
    finally:
        kill_session(proc.pid)
    return proc.communicate(timeout=30)


def kill_session(sid):
    """Kills every process of session `sid` (the program runs in a group of its own)."""
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and os.getsid(int(d)) == sid:
                os.kill(int(d), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                                 signal.SIGUSR2])
def test_signals_sent_to_rprof_reach_the_program(sig, tmp_path):
    """kill -SIG of rprof: the program's own handler runs (once), and rprof exits with the
    status the program chose."""
    require(RPROF, SHIM)
    proc = start_ready([RPROF, "run", "--", PY, "-c", CATCHER], cwd=tmp_path, env=rprof_env())
    os.kill(proc.pid, sig)
    out, err = finish(proc)
    assert proc.returncode == 40 + sig, err
    assert out == f"got {signal.Signals(sig).name}\n", out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_rprofs_group_reaches_the_program_once(sig, tmp_path):
    """kill -SIG -PGID of the group rprof leads (a shell's job, a supervisor stopping it):
    the program gets the signal once, not the group's copy and rprof's forwarded one."""
    require(RPROF, SHIM)
    proc = start_ready([RPROF, "run", "--", build_c("sig_count")], cwd=tmp_path, env=rprof_env())
    assert os.getpgid(proc.pid) == proc.pid
    os.killpg(proc.pid, sig)
    out, err = finish(proc)
    assert out == "signals 1\n", (out, err)
    assert proc.returncode == 9, err


def test_death_by_signal_is_128_plus_n(tmp_path):
    """A program that dies of SIGTERM (default action): rprof exits 128+15, as a shell
    reports it, and the report does not call the program killed without warning."""
    require(RPROF, SHIM)
    proc = start_ready([RPROF, "run", "--", PY, "-c", "import time; print('ready', flush=True); time.sleep(60)"],
                       cwd=tmp_path, env=rprof_env())
    os.kill(proc.pid, signal.SIGTERM)
    _, err = finish(proc)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "was ended by SIGTERM (15)" in err and "killed (or crashed)" not in err, err


# A program that counts its SIGINTs (it says "ready", waits for one, then half a second
# for more, prints the count and exits 9), run by `rprof run` on a new pty.
SIGINT_COUNTER = ("import signal, sys, time\nn = 0\ndef on(s, f):\n    global n\n    n += 1\n"
                  "signal.signal(signal.SIGINT, on)\nprint('ready', flush=True)\n"
                  "while not n: time.sleep(0.01)\ntime.sleep(0.5)\nprint('sigints', n, flush=True)\nsys.exit(9)\n")


def counter_in_a_terminal(tmp_path):
    """(pid of rprof run, the pty's fd) for SIGINT_COUNTER."""
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(tmp_path)
        os.execve(str(RPROF), [str(RPROF), "run", "--", PY, "-c", SIGINT_COUNTER], rprof_env())
    return pid, fd


def test_ctrl_c_in_a_terminal_reaches_the_program_once(tmp_path):
    """In a terminal, Ctrl-C goes to the whole foreground group, rprof and the program: the
    program gets exactly one SIGINT, as without rprof, and rprof returns its status."""
    require(RPROF, SHIM)
    pid, fd = counter_in_a_terminal(tmp_path)
    out = b""
    deadline = time.monotonic() + 60
    sent = False
    while time.monotonic() < deadline:
        if not sent and b"ready" in out:
            os.write(fd, b"\x03")          # the terminal's interrupt character
            sent = True
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    _, status = os.waitpid(pid, 0)
    assert sent, out
    assert b"sigints 1\r\n" in out, out
    assert os.waitstatus_to_exitcode(status) == 9, out


def test_ctrl_z_stops_the_job_and_continuing_it_resumes_the_program(tmp_path):
    """In a terminal, Ctrl-Z stops the program and rprof with it (the shell sees its job
    stopped); continued, the program runs on in the foreground: a Ctrl-C then reaches it
    once, and rprof returns its status."""
    require(RPROF, SHIM)
    pid, fd = counter_in_a_terminal(tmp_path)
    out = b""

    def read_until(want, timeout=60):
        nonlocal out
        deadline = time.monotonic() + timeout
        found = want.search if isinstance(want, re.Pattern) else (lambda o: want in o)
        while not found(out) and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    return
                if not chunk:
                    return
                out += chunk

    try:
        read_until(b"ready")
        assert b"ready" in out, out
        os.write(fd, b"\x1a")                # the terminal's suspend character
        _, status = os.waitpid(pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), (status, out)
        os.kill(pid, signal.SIGCONT)          # as `fg` does (rprof kept the terminal)
        time.sleep(0.3)
        os.write(fd, b"\x03")
        read_until(b"sigints")
        # The count's line whole (an earlier line's newline is no end of this one).
        read_until(re.compile(rb"sigints \d+\r?\n"), timeout=5)
        _, status = os.waitpid(pid, 0)
    finally:
        kill_session(pid)
    assert b"sigints 1\r\n" in out, out
    assert os.waitstatus_to_exitcode(status) == 9, out


def test_output_file_and_what_rprof_says_are_true(tmp_path):
    """`rprof run -o FILE`: the trace is FILE, every path rprof or the shim names exists,
    and no empty trace directory is left behind."""
    require(RPROF, SHIM)
    want = tmp_path / "mine.trace"
    proc = subprocess.run([RPROF, "run", "-o", want, "--", PY, OWN / "spin.py", "0.2"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env=rprof_env(RPROF_LOG="stderr"))
    assert proc.returncode == 0, proc.stderr
    assert want.is_file() and want.read_bytes()[:8] == b"RPROFTR\0"
    named = [line.split()[2] for line in proc.stderr.splitlines() if line.startswith("rprof: wrote ")]
    named += [line.split(": ", 1)[1] for line in proc.stderr.splitlines() if line.startswith("Trace: ")]
    assert named, proc.stderr
    for path in named:
        assert os.path.exists(path), (path, proc.stderr)
    assert not (tmp_path / "rprof-traces").exists()


def test_a_program_that_fails_to_start_gets_one_paragraph(tmp_path):
    """A missing script: the interpreter's own error, then one paragraph from rprof (no
    empty table), and the interpreter's status."""
    require(RPROF, SHIM)
    proc = subprocess.run([RPROF, "run", "--", PY, tmp_path / "missing.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env=rprof_env())
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    ours = proc.stderr.split("No such file or directory\n", 1)[1]
    assert "exited with status 2" in ours and "nothing to report" in ours, ours
    assert len(ours.strip().split("\n\n")) == 1 and "Line " not in ours and "Functions" not in ours, ours
