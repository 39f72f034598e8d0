"""Paths, interpreters, workloads and the run-under-the-shim helpers the tests share."""
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RELEASE = REPO / "target" / "release"
SHIM, REPORT, RPROF = RELEASE / "librprof.so", RELEASE / "rprof-report", RELEASE / "rprof"
OWN = REPO / "tests" / "workloads"
SHARED = Path(os.environ.get("RPROF_SHARED_WORKLOADS") or REPO.parent / "shared" / "workloads")
NO_SHARED = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"no shared workloads at {SHARED} (a plain clone has none; set RPROF_SHARED_WORKLOADS)")

# Both must be present: one links libpython statically, the other as a shared library,
# and the shim has to find the interpreter's state in either.
_PYENV = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
PYTHONS = {"system-3.11": "/usr/bin/python3.11", "pyenv-3.11.7": str(_PYENV / "versions/3.11.7/bin/python3")}

PROFILE_HZ = "1000"   # more samples per second of test; the shim weights each by its CPU time
DEFAULT_HZ = 100      # the shim's default rate, below the kernel tick (250 Hz here) that caps it


def own(name):
    return pytest.param(OWN / name, id=f"own-{Path(name).stem}")


def shared(name):
    return pytest.param(SHARED / name, id=f"shared-{Path(name).stem}", marks=NO_SHARED)


ACCURACY = {
    "cpu": [own("cpu_split.py"), shared("cpu_python.py")],
    "native": [own("native_mix.py"), shared("native_split.py")],
    "threads": [own("threads3.py"), shared("threads.py")],
}


def cases(*kinds):
    """(workload, python) parameters.  Tests of one workload on one interpreter share an
    xdist group, so the profiled run and --check cached per worker happen only once."""
    return [pytest.param(w.values[0], py, id=f"{w.id}-{pyid}",
                         marks=[*w.marks, pytest.mark.xdist_group(f"{w.id}-{pyid}")])
            for kind in kinds for w in ACCURACY[kind] for pyid, py in PYTHONS.items()]


def interpreters():
    return [pytest.param(py, id=pyid) for pyid, py in PYTHONS.items()]


def require(*paths):
    for p in paths:
        if not os.path.exists(p):
            pytest.fail(f"{p} is missing (run `cargo build --release`)")


def shim_env(tmp_path, **extra):
    """The environment of a profiled run: the caller's, minus any RPROF_* setting of its
    own, with the trace going to tmp_path."""
    require(SHIM)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPROF_")}
    # RPROF_LOG=stderr: the shim's lines show as they would on a terminal (captured stderr
    # gets none by default). RPROF_GPU=off: no GPU here, and tests that count the shim's
    # lines would count its "GPU profiling off" info line; tests/test_gpu.py sets its own.
    env.update({"LD_PRELOAD": str(SHIM), "RPROF_OUTPUT": str(tmp_path / "rprof-%p.trace"), "RPROF_LOG": "stderr",
                "RPROF_GPU": "off", **extra})
    return env


def run_profiled(argv, tmp_path, timeout=120, **env):
    """Runs argv under the shim in tmp_path; returns the CompletedProcess and its trace."""
    proc = subprocess.run([str(a) for a in argv], cwd=tmp_path, env=shim_env(tmp_path, **env),
                          capture_output=True, text=True, timeout=timeout)
    return proc, the_trace(tmp_path)


def the_trace(tmp_path):
    traces = list(tmp_path.glob("rprof-*.trace"))
    assert len(traces) == 1, f"expected one trace in {tmp_path}, found {traces}"
    return traces[0]


def report(trace, *args):
    require(REPORT)
    return subprocess.run([str(REPORT), str(trace), *args], capture_output=True, text=True, timeout=120)


def report_json(trace):
    out = trace.with_suffix(".json")
    r = report(trace, "--json", "-o", str(out))
    assert r.returncode == 0, f"rprof-report --json failed ({r.returncode}): {r.stderr}"
    return json.loads(out.read_text())


def file_lines(data, path):
    """{lineno: line record} of `path` in a Scalene-style JSON profile."""
    keys = [k for k in data["files"] if os.path.realpath(k) == os.path.realpath(path)]
    assert len(keys) == 1, f"{path} not (or twice) among the profiled files {list(data['files'])}"
    return {rec["lineno"]: rec for rec in data["files"][keys[0]]["lines"]}


def cpu_share(rec):
    """A line's share of total sampled CPU; a line absent from the profile had none."""
    return 0.0 if rec is None else rec["n_cpu_percent_python"] + rec["n_cpu_percent_c"] + rec["n_sys_percent"]


def other_stderr(stderr):
    """stderr without the shim's closing `rprof: wrote PATH (N samples)` line."""
    return [line for line in stderr.splitlines() if not line.startswith("rprof: wrote ")]


def report_rows(text, source, lineno):
    """Rows of a text report that show `source`'s line `lineno`: its number and the
    start of its code (tables may truncate the rest)."""
    code = source.read_text().splitlines()[lineno - 1].split("#")[0].strip()[:24]
    return [row for row in text.splitlines() if code in row and re.search(rf"\b{lineno}\b", row)]


@dataclass
class Profile:
    """A workload's profiled run, reported."""
    proc: subprocess.CompletedProcess
    trace: Path
    data: dict       # rprof-report --json
    text: str        # rprof-report's text report


def profiled(argv, tmp_path, timeout=120, **env):
    """argv run under the shim (which must exit 0) and its trace reported (text and JSON)."""
    proc, trace = run_profiled(argv, tmp_path, timeout=timeout, **env)
    assert proc.returncode == 0, f"{argv} under the shim exited {proc.returncode}: {proc.stderr}"
    text = report(trace)
    assert text.returncode == 0, f"rprof-report {trace} exited {text.returncode}: {text.stderr}"
    return Profile(proc, trace, report_json(trace), text.stdout)


def cached(factory):
    """A per-worker cache of factory(workload, python); a failure is cached too, so the
    tests sharing it fail with it without redoing it."""
    cache = {}

    def get(workload, python):
        key = (workload, python)
        if key not in cache:
            try:
                cache[key] = factory(workload, python)
            except Exception as e:
                cache[key] = e
        if isinstance(cache[key], Exception):
            raise cache[key]
        return cache[key]
    return get


NATIVE = REPO / "tests" / "native"
BUILD = REPO / "tests" / "build"


def build_c(name, *flags):
    """tests/native/NAME.c compiled (once per change of the source) into tests/build/."""
    src = NATIVE / f"{name}.c"
    exe = BUILD / name
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        BUILD.mkdir(exist_ok=True)
        tmp = BUILD / f".{name}.{os.getpid()}"
        subprocess.run(["gcc", "-O2", "-g", "-pthread", "-fno-omit-frame-pointer", *flags, "-o", tmp, src],
                       check=True, timeout=120)
        os.replace(tmp, exe)
    return exe
