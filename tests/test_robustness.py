"""The shim under hostile conditions: SIGKILL mid-run, bad settings, an unwritable output."""
import os
import re
import resource
import signal
import subprocess
import time

import pytest

import truth
from harness import (DEFAULT_HZ, OWN, interpreters, other_stderr, report, report_json,
                     run_profiled, shim_env, the_trace)

CPU_SPLIT = OWN / "cpu_split.py"


def process_cpu(pid):
    """utime + stime of a live process, in seconds (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def results(stdout):
    """A workload's output without the CPU shares it measured itself (they vary by run)."""
    return [line for line in stdout.splitlines() if not truth.shares_in(line + "\n") and "in-run total" not in line]


@pytest.fixture(scope="session")
def plain_run():
    """Unprofiled runs, cached: what the program does without the shim."""
    cache = {}

    def get(*argv):
        if argv not in cache:
            cache[argv] = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120)
        return cache[argv]
    return get


@pytest.mark.parametrize("python", interpreters())
def test_sigkill_leaves_readable_trace(python, tmp_path):
    """Killed after ~1.5 s of CPU: the chunks the shim flushed (at least every ~100 ms;
    RPROF_FLUSH_MS=50 asks for more often) must make a readable trace whose sample count
    matches the CPU time done, marked as killed.  Default rate, which the kernel tick
    does not cap, so samples ~= CPU seconds x DEFAULT_HZ."""
    proc = subprocess.Popen([python, OWN / "spin.py"], cwd=tmp_path, env=shim_env(tmp_path, RPROF_FLUSH_MS="50"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while process_cpu(proc.pid) < 1.5:
            assert proc.poll() is None, f"spin.py exited early ({proc.returncode}): {proc.stderr.read()}"
            assert time.monotonic() < deadline, "spin.py did not reach 1.5 s of CPU within 30 s"
            time.sleep(0.05)
        time.sleep(0.3)                      # a few flush intervals past the 1.5 s
        cpu = process_cpu(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    trace = the_trace(tmp_path)
    text = report(trace)
    assert text.returncode == 0, f"rprof-report on a killed trace exited {text.returncode}: {text.stderr}"
    assert re.search(r"killed|truncated", text.stdout + text.stderr, re.I), text.stdout
    meta = report_json(trace)["rprof"]
    assert meta["killed"] is True, meta
    expected = cpu * DEFAULT_HZ
    assert 0.6 * expected <= meta["samples"] <= 1.2 * expected + 10, \
        f"{meta['samples']} samples for {cpu:.2f} s of CPU at {DEFAULT_HZ} Hz"


@pytest.mark.parametrize("python", interpreters())
def test_bad_rate_warns_once_and_uses_default(python, tmp_path, plain_run):
    """RPROF_CPU_HZ=banana: one warning line, the program's output unchanged, and a
    sample count that fits the default rate (1000 Hz, capped by the tick, would give
    ~2.5x as many)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc, trace = run_profiled([python, CPU_SPLIT], tmp_path, RPROF_CPU_HZ="banana")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    plain = plain_run(python, CPU_SPLIT)
    assert (proc.returncode, results(proc.stdout)) == (plain.returncode, results(plain.stdout))
    warnings = other_stderr(proc.stderr)
    assert len(warnings) == 1 and "RPROF_CPU_HZ" in warnings[0], proc.stderr
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    samples = report_json(trace)["rprof"]["samples"]
    assert 0.5 * cpu * DEFAULT_HZ <= samples <= 1.5 * cpu * DEFAULT_HZ, f"{samples} samples for {cpu:.2f} s of CPU"


EXIT_3 = "import sys; print(sum(i * i for i in range(2_000_000))); sys.exit(3)"


@pytest.mark.parametrize("python", interpreters())
def test_unwritable_output_only_warns(python, tmp_path, plain_run):
    plain = plain_run(python, "-c", EXIT_3)
    env = shim_env(tmp_path, RPROF_OUTPUT="/nonexistent/dir/x.trace")
    proc = subprocess.run([python, "-c", EXIT_3], env=env, capture_output=True, text=True, timeout=60)
    assert plain.returncode == 3
    assert (proc.returncode, proc.stdout) == (plain.returncode, plain.stdout)
    assert any("rprof" in line for line in proc.stderr.splitlines()), "no warning on stderr"
    assert not any(line.startswith("rprof: wrote") for line in proc.stderr.splitlines()), proc.stderr


CLOSE_AND_LINGER = """
import os, sys, time
r, w = os.pipe()
if os.fork() == 0:                       # the child (its own writer cloned at the fork): works,
    os.close(r)                          # closes its end of the pipe, then lingers
    sum(len(str(i)) for i in range(300_000))
    os.close(w)
    os.close(1)
    time.sleep(6)
    os._exit(0)
os.close(w)
t0 = time.monotonic()
os.read(r, 1)                            # EOF once no process holds the write end
print(f"child-pipe-eof {time.monotonic() - t0:.2f}", flush=True)
os.close(1)                              # our stdout: the test sees EOF unless someone else holds it
time.sleep(6)
os.wait()
"""


@pytest.mark.parametrize("python", interpreters())
def test_writer_holds_no_program_descriptor(python, tmp_path):
    """The writer processes (the program's and its fork child's) must not keep copies of
    the program's pipes: a parent waiting for EOF on a pipe its child closed (perf's
    start-up handshake hung this way) and a reader of the program's closed stdout must see
    EOF at once, not when the program and its writers exit ~6 s later."""
    proc = subprocess.Popen([python, "-c", CLOSE_AND_LINGER], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=shim_env(tmp_path, RPROF_OUTPUT=str(tmp_path / "t-%p.trace")))
    try:
        t0 = time.monotonic()
        out = proc.stdout.read().decode()        # returns at EOF on the program's stdout
        stdout_eof = time.monotonic() - t0
    finally:
        proc.wait(timeout=30)
    child_eof = float(re.search(r"child-pipe-eof (\S+)", out).group(1))
    assert child_eof < 3, f"the fork child's pipe reached EOF after {child_eof} s (held by a writer?)"
    assert stdout_eof < 4, f"the program's stdout reached EOF {stdout_eof:.2f} s in (held by a writer?)"
    assert proc.returncode == 0
