"""Process trees: every process of a run writes a trace of its own into the run's
directory, naming its parent, its command line and its run, and saying how it ended; the
helpers a command runs on its way (launcher scripts) leave none."""
import ast
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

import traces
import truth
from harness import OWN, PYTHONS, REPORT, RPROF, SHIM, cpu_share, file_lines, report, report_json, require, shim_env

PY = PYTHONS["pyenv-3.11.7"]
POOL = OWN / "pool.py"
SERVER = OWN / "prefork_server.py"
PYENV_SHIM = Path(PY).parents[3] / "shims" / "python3"


def rprof_env(**extra):
    """The caller's environment without RPROF_* settings of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPROF_")}
    env.update(extra)
    return env


def rprof_run(tmp_path, *argv, timeout=120, opts=(), **env):
    require(RPROF, SHIM)
    return subprocess.run([RPROF, "run", "--output-dir", tmp_path / "traces", *opts, "--", *map(str, argv)],
                          cwd=tmp_path, env=rprof_env(**env), capture_output=True, text=True, timeout=timeout)


def process_table(text):
    """{pid: (parent, row)} of the report's Processes table."""
    lines = text.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("Processes ("))
    at = next(i for i in range(at, len(lines)) if lines[i].split()[:2] == ["PID", "Parent"])
    rows = {}
    for ln in lines[at + 1:]:
        if not ln.strip():
            break
        pid, parent = ln.split()[:2]
        rows[int(pid)] = (int(parent), ln)
    return rows


def pool_pids(stdout):
    line = next(ln for ln in stdout.splitlines() if ln.startswith("pool-pids "))
    fields = dict(f.split("=") for f in line.split()[1:])
    return int(fields["parent"]), {int(p) for p in fields["workers"].split(",")}


def assert_not_reported_killed(trace):
    text = report(trace)
    assert text.returncode == 0, text.stderr
    assert "killed (or crashed)" not in text.stdout, text.stdout


@pytest.mark.parametrize("method,ending", [("fork", "close"), ("fork", "terminate"), ("spawn", "close"),
                                           ("forkserver", "terminate")])
def test_pool_processes_each_have_a_trace(method, ending, tmp_path):
    """A multiprocessing Pool under `rprof run`: the parent and both workers each leave a
    trace of the same run, the workers naming the process that started them (the parent,
    or the forkserver), and every trace says how its process ended: workers ended by
    Pool.terminate() by SIGTERM, and are not reported as killed."""
    proc = rprof_run(tmp_path, PY, POOL, method, ending, opts=["--hz", "1000", "--cpu-only", "--json",
                                                              tmp_path / "run.json"])
    assert proc.returncode == 0, proc.stderr
    # The run measured its own truth for the lines its header names.
    hot = truth.ground_truth(POOL, PY, proc.stdout)
    assert {h.lineno for h in hot} == {29, 35}
    parent, workers = pool_pids(proc.stdout)
    assert len(workers) == 2, proc.stdout
    by_pid = traces.read_all(tmp_path / "traces")
    assert {parent, *workers} <= set(by_pid), (sorted(by_pid), parent, workers)
    assert len({t.run for t in by_pid.values()}) == 1, [t.run for t in by_pid.values()]
    assert by_pid[parent].root and by_pid[parent].ending == ("exited", 0), by_pid[parent]
    helpers = set(by_pid) - {parent, *workers}
    # fork: nothing else; spawn: the resource tracker; forkserver: it and the forkserver.
    assert len(helpers) == {"fork": 0, "spawn": 1, "forkserver": 2}[method], [by_pid[p] for p in helpers]
    for pid in helpers:
        assert by_pid[pid].ppid == parent and by_pid[pid].ending == ("exited", 0), by_pid[pid]
    starter = parent if method != "forkserver" else next(p for p in helpers if "forkserver" in " ".join(by_pid[p].argv))
    want = ("signal", signal.SIGTERM) if ending == "terminate" else ("exited", 0)
    for pid in workers:
        t = by_pid[pid]
        assert not t.root and t.ppid == starter, t
        assert t.ending == want and t.end_record, t
        assert t.cpu_samples > 0, t
        if ending == "terminate":
            assert_not_reported_killed(t.path)
    if method == "spawn":
        assert all("spawn_main" in " ".join(by_pid[p].argv) for p in workers), [by_pid[p].argv for p in workers]
    # rprof run prints one report of the whole run, whose table lists every process with
    # its parent and how it ended.
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("Program ")], proc.stderr
    assert len([ln for ln in proc.stderr.splitlines() if ln.startswith("Program ")]) == 1, proc.stderr
    listed = process_table(proc.stderr)
    assert set(listed) == set(by_pid), proc.stderr
    assert listed[parent][0] == by_pid[parent].ppid, listed[parent]
    for pid in workers:
        assert listed[pid][0] == starter, listed[pid]
        assert ("ended by SIGTERM (15)" if ending == "terminate" else "exited with status 0") in listed[pid][1]
    merged = json.loads((tmp_path / "run.json").read_text())
    assert {(p["pid"], p["ppid"]) for p in merged["rprof"]["processes"]} == {(t.pid, t.ppid) for t in by_pid.values()}
    # Its totals are the sums of the per-process reports', its shares of the whole run's CPU.
    each = [report_json(t.path) for t in by_pid.values()]
    assert merged["rprof"]["samples"] == sum(e["rprof"]["samples"] for e in each)
    assert merged["rprof"]["cpu_time_sec"] == pytest.approx(sum(e["rprof"]["cpu_time_sec"] for e in each), rel=1e-9)
    # rprof-report of the run's directory is the same report.
    again = subprocess.run([REPORT, tmp_path / "traces", "--json"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["rprof"]["processes"] == merged["rprof"]["processes"]


def assert_shares_near_truth(merged, hot, stdout):
    """The merged report's shares of the hot lines are within 3 points of those measured
    in the run, of the whole run's CPU (the writers' included: each process reaps its own)."""
    lines = file_lines(merged, POOL)
    for h in hot:
        got = cpu_share(lines.get(h.lineno))
        assert abs(got - h.measured_pct) <= 3, (h.lineno, got, h.measured_pct, stdout)


@pytest.mark.parametrize("pyid", PYTHONS)
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_merged_shares(method, pyid, tmp_path):
    """fork and spawn Pools on each interpreter: the merged report lists the parent, both
    workers (and, with spawn, the resource tracker), and its shares of the hot lines are
    those the run measured. A spawned interpreter's start-up and every process's writer
    are in the run's CPU: rprof's own cost must stay small beside the program's."""
    py = PYTHONS[pyid]
    proc = rprof_run(tmp_path, py, POOL, method, "close", 4, opts=["--hz", "1000", "--cpu-only", "--json",
                                                                    tmp_path / "run.json"])
    assert proc.returncode == 0, proc.stderr
    merged = json.loads((tmp_path / "run.json").read_text())
    parent, workers = pool_pids(proc.stdout)
    listed = {p["pid"] for p in merged["rprof"]["processes"]}
    assert {parent, *workers} <= listed and len(listed) == {"fork": 3, "spawn": 4}[method], merged["rprof"]["processes"]
    assert_shares_near_truth(merged, truth.ground_truth(POOL, py, proc.stdout), proc.stdout)


def http_get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        return r.status, r.read()


def wait_for(path, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"exited {proc.returncode} before serving"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text().split()


def processes_with(marker):
    """Pids of live processes whose environment holds `marker` (zombies have none)."""
    found = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and marker.encode() in (d / "environ").read_bytes():
                found.append(int(d.name))
        except OSError:
            pass
    return found


def serve_and_stop(tmp_path, argv, marker):
    """Starts the server with `argv`, makes 12 requests, sends SIGTERM to the process
    started (rprof, or the server itself); returns (responses, returncode, stdout, stderr,
    pids of the run's processes still alive after it returned). Those are killed."""
    port_file = tmp_path / f"port-{marker}"
    with open(tmp_path / f"out-{marker}", "w+") as out, open(tmp_path / f"err-{marker}", "w+") as err:
        proc = subprocess.Popen([*map(str, argv), port_file, "3"], cwd=tmp_path, stdout=out, stderr=err, text=True,
                                env=rprof_env(RPROF_TEST_MARK=marker))
        try:
            port, *_ = wait_for(port_file, proc)
            responses = [http_get(port, f"/sum/{n}") for n in [200_000, 1, 0, 77_777] * 3]
            os.kill(proc.pid, signal.SIGTERM)
            rc = proc.wait(timeout=60)
            time.sleep(0.2)
        finally:
            left = processes_with(marker)
            for pid in left:
                os.kill(pid, signal.SIGKILL)
        out.seek(0)
        err.seek(0)
        return responses, rc, out.read(), err.read(), left


def test_prefork_server_stops_as_without_rprof(tmp_path):
    """A pre-fork HTTP server under `rprof run` answers exactly as without it; `kill -TERM`
    of rprof reaches the server, whose own handler stops its workers and exits 3; rprof
    exits 3 too and no process of the run stays behind. Each process's trace says how it
    ended: the server exited 3, its workers by SIGTERM."""
    require(RPROF, SHIM)
    plain = serve_and_stop(tmp_path, [PY, SERVER], f"rprof-plain-{os.getpid()}")
    assert plain[1] == 3 and plain[4] == [], plain
    tag = f"rprof-prefork-{os.getpid()}"
    profiled = serve_and_stop(tmp_path, [RPROF, "run", "--output-dir", tmp_path / "traces", "--", PY, SERVER], tag)
    assert profiled[1] == 3, profiled[3]
    assert profiled[0] == plain[0]
    assert profiled[2] == plain[2], (profiled[2], plain[2])
    assert profiled[4] == [], profiled[4]
    by_pid = traces.read_all(tmp_path / "traces")
    roots = [t for t in by_pid.values() if t.root]
    assert len(roots) == 1 and roots[0].ending == ("exited", 3), roots
    workers = [t for t in by_pid.values() if not t.root]
    assert len(workers) == 3, [t.path.name for t in workers]
    for t in workers:
        assert t.ppid == roots[0].pid and t.ending == ("signal", signal.SIGTERM) and t.end_record, t
    assert sum(t.cpu_samples for t in workers) > 0, workers
    assert "killed (or crashed)" not in profiled[3]
    # One report of the whole server: its table lists the server and its workers.
    assert len([ln for ln in profiled[3].splitlines() if ln.startswith("Program ")]) == 1, profiled[3]
    listed = process_table(profiled[3])
    assert set(listed) == set(by_pid), profiled[3]
    assert all(listed[t.pid][0] == roots[0].pid for t in workers), profiled[3]


def test_other_runs_in_a_directory_are_left_out(tmp_path):
    """Two runs' traces in one directory: rprof-report DIR reports the latest run, merged,
    and names the other run's traces as left out; naming traces picks the first one's run."""
    (tmp_path / "dir").mkdir()
    env = shim_env(tmp_path, RPROF_OUTPUT=str(tmp_path / "dir"))
    runs = []
    for _ in range(2):
        proc = subprocess.run([PY, "-c", FORKS], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        runs.append({t.pid: t for t in traces.read_all(tmp_path / "dir").values()
                     if all(t.pid not in r for r in runs)})
    assert [len(r) for r in runs] == [2, 2], runs
    first_trace = next(t.path for t in runs[0].values() if t.root)
    others = [t.path for t in [*runs[0].values(), *runs[1].values()] if t.path != first_trace]
    for mine, theirs, args in [(runs[1], runs[0], [tmp_path / "dir"]), (runs[0], runs[1], [first_trace, *others])]:
        r = subprocess.run([REPORT, *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert set(process_table(r.stdout)) == set(mine), r.stdout
        left = r.stdout.split("Left out (2 traces given, not in this report)")[1]
        assert all(str(t.path) in left for t in theirs.values()), left
        assert not any(str(t.path) in left for t in mine.values()), left


def test_pyenv_launcher_script_leaves_one_trace(tmp_path):
    """pyenv's `python3` is a bash script that execs bash scripts that fork helpers before
    the interpreter runs: only the interpreter's trace is left, and rprof prints nothing
    about the helpers."""
    require(PYENV_SHIM)
    proc = rprof_run(tmp_path, PYENV_SHIM, "-c", "print(sum(range(10**6)))", PYENV_VERSION="3.11.7")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{sum(range(10**6))}\n"
    found = sorted((tmp_path / "traces").glob("*.trace"))
    assert len(found) == 1, found
    info = traces.read(found[0])
    assert os.path.realpath(info.argv[0]) == os.path.realpath(PY) and info.ending == ("exited", 0), info
    assert "Other processes" not in proc.stderr, proc.stderr


FORKS = "import os\npid = os.fork()\nif pid == 0:\n    sum(range(10**6)); os._exit(7)\nos.waitpid(pid, 0)\n"


@pytest.mark.parametrize("output", ["dir/", "dir", "dir/t-%p.trace"])
def test_bare_preload_writes_a_tree_into_a_directory(output, tmp_path):
    """Without rprof run, RPROF_OUTPUT naming a directory (or a path with %p) puts every
    process's trace there, each with its parent and ending."""
    (tmp_path / "dir").mkdir()
    env = shim_env(tmp_path, RPROF_OUTPUT=str(tmp_path / output))
    proc = subprocess.run([PY, "-c", FORKS], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    by_pid = traces.read_all(tmp_path / "dir")
    assert len(by_pid) == 2, by_pid
    parent = next(t for t in by_pid.values() if t.root)
    child = next(t for t in by_pid.values() if not t.root)
    assert child.ppid == parent.pid and child.run == parent.run and child.run
    assert (parent.ending, child.ending) == (("exited", 0), ("exited", 7))
    assert not list(tmp_path.glob("*.trace"))


def test_follow_children_off(tmp_path):
    """RPROF_FOLLOW_CHILDREN=0: the child runs unprofiled, the parent's trace as usual."""
    proc = subprocess.run([PY, "-c", FORKS], cwd=tmp_path, env=shim_env(tmp_path, RPROF_FOLLOW_CHILDREN="0"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    found = list(tmp_path.glob("*.trace"))
    assert len(found) == 1 and traces.read(found[0]).root, found


ENDINGS = {
    # The C library's exit(), called from a thread other than the main one.
    "exit-from-thread": ("import ctypes, threading, time\n"
                         "threading.Thread(target=lambda: ctypes.CDLL(None).exit(5)).start()\ntime.sleep(30)\n",
                         5, ("exited", 5)),
    "_exit": ("import os; os._exit(4)", 4, ("exited", 4)),
    "sigterm": ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", -15, ("signal", 15)),
    "sigint": ("raise KeyboardInterrupt", -2, ("signal", 2)),
    "exec": ("import os; os.execv('/bin/sh', ['/bin/sh', '-c', 'exit 6'])", 6, ("exec", "/bin/sh -c exit 6")),
    # The writer reads the signal from the kernel after the fact: only while the dead
    # process is not yet reaped (about half the time when its parent waits for it).
    "sigkill": ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", -9, [("killed", 9), None]),
}


@pytest.mark.parametrize("how", ENDINGS)
def test_the_trace_says_how_the_process_ended(how, tmp_path):
    """exit() from another thread, _exit, SIGTERM, SIGINT, exec and SIGKILL: the process
    ends as without rprof (same status) and its trace says how (for SIGKILL, when the
    kernel still showed it); only SIGKILL leaves it without an end record."""
    code, rc, want = ENDINGS[how]
    proc = subprocess.run([PY, "-c", code], cwd=tmp_path, env=shim_env(tmp_path), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == rc, proc.stderr
    time.sleep(0.3)                      # a killed process's writer may still be draining
    infos = sorted((traces.read(p) for p in tmp_path.glob("*.trace")), key=lambda t: t.path.name)
    first = next(t for t in infos if os.path.realpath(t.argv[0]) == os.path.realpath(PY))
    assert first.ending in want if isinstance(want, list) else first.ending == want, first
    assert first.end_record is (how != "sigkill"), first
    if how == "sigterm":
        assert_not_reported_killed(first.path)


def test_helpers_on_the_way_leave_no_trace(tmp_path):
    """A Python fork that execs at once (subprocess with preexec_fn forks rather than
    vforks) and the short native programs it and a shell run leave no trace: only the
    program's own."""
    code = ("import subprocess\nsubprocess.run(['/bin/true'], preexec_fn=lambda: None)\n"
            "subprocess.run(['sh', '-c', 'ls > /dev/null; echo $(date) > /dev/null'])\n")
    proc = subprocess.run([PY, "-c", code], cwd=tmp_path, env=shim_env(tmp_path), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    found = sorted(tmp_path.glob("*.trace"))
    assert len(found) == 1 and traces.read(found[0]).root, found
    assert [line for line in proc.stderr.splitlines() if line.startswith("rprof: wrote ")] == [
        f"rprof: wrote {found[0]} ({traces.read(found[0]).cpu_samples} samples)"], proc.stderr


def test_an_exec_leaves_no_writer_behind(tmp_path):
    """A process that execs: the writer of the image before the exec, which finishes that
    image's trace, is reaped by the new image, not left a zombie child for as long as the
    new image runs. Its only child is its own writer; both images' traces are complete."""
    after = ("import os, time\n"
             "kids = [open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[0] + ' ' +"
             " open(f'/proc/{p}/comm').read().strip()\n"
             "        for p in open(f'/proc/{os.getpid()}/task/{os.getpid()}/children').read().split()]\n"
             "print('children', sorted(kids))\n")
    code = f"import os, sys\nos.execv(sys.executable, [sys.executable, '-c', {after!r}])\n"
    proc = subprocess.run([PY, "-c", code], cwd=tmp_path, env=shim_env(tmp_path), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    kids = ast.literal_eval(proc.stdout.removeprefix("children "))
    assert len(kids) == 1 and kids[0].split()[1] == "rprof-writer" and kids[0].split()[0] != "Z", proc.stdout
    endings = sorted(traces.read(p).ending[0] for p in tmp_path.glob("*.trace"))
    assert endings == ["exec", "exited"], endings
