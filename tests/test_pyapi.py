"""The Python API (python/rprof) and `rprof env` (issue 11, items 1 and 4): with
RPROF_START=paused, samples only inside `with rprof.profile():` blocks and decorated
functions, held to the CPU time each region measured in the same run; marks in the
report; the error without the library; `pip install ./python`; `rprof run` and
`rprof env` making `import rprof` work."""
import json
import os
import re
import shutil
import subprocess

import pytest

from harness import (OWN, PROFILE_HZ, REPO, RPROF, SHIM, cpu_share, file_lines, interpreters,
                     profiled, report_json, require)

PACKAGE = REPO / "python"
WORKLOAD = OWN / "pyapi_regions.py"


def regions():
    """{region name: line number} from the workload's `# region:NAME` comments."""
    out = {}
    for n, line in enumerate(WORKLOAD.read_text().splitlines(), 1):
        m = re.search(r"# region:(\w+)$", line)
        if m:
            out[m[1]] = n
    return out


def check_regions(data, stdout):
    """The profile against the CPU time the run measured for each region: >90 % of the
    sampled CPU on the lines inside blocks and decorated functions, each hot line outside
    them (which took as much CPU as the inside ones) under 2 %, and each inside line's share
    of the inside time within 5 points of its measured share."""
    truth = json.loads(stdout.strip().splitlines()[-1])
    lines = file_lines(data, WORKLOAD)
    where = regions()
    share = {name: cpu_share(lines.get(n)) for name, n in where.items()}
    inside = {k: v for k, v in share.items() if k.startswith("in_")}
    outside = {k: v for k, v in share.items() if k.startswith("out_")}
    assert len(inside) == 6 and len(outside) == 3, where
    assert sum(inside.values()) > 90, f"inside the regions: {inside}, outside: {outside}"
    for name, pct in outside.items():
        assert pct < 2, f"{name} ran unprofiled but has {pct:.1f}% of the samples ({share})"
    truth_in = sum(truth[k] for k in inside)
    got_in = sum(inside.values())
    for name, pct in inside.items():
        want = 100 * truth[name] / truth_in
        assert abs(100 * pct / got_in - want) < 5, \
            f"{name}: {100 * pct / got_in:.1f}% of the profiled time, measured {want:.1f}% ({share}, {truth})"
    return share


@pytest.mark.parametrize("python", interpreters())
def test_paused_start_records_only_the_regions(tmp_path, python, record_property):
    prof = profiled([python, WORKLOAD], tmp_path, RPROF_START="paused", RPROF_CPU_HZ=PROFILE_HZ,
                    RPROF_MODE="cpu", PYTHONPATH=str(PACKAGE))
    share = check_regions(prof.data, prof.proc.stdout)
    record_property("rprof", f"pyapi regions {os.path.basename(python)}: "
                    + ", ".join(f"{k} {v:.1f}%" for k, v in share.items()))
    marks = [m["label"] for m in prof.data["rprof"]["program_marks"]]
    assert marks == ["threads start"], marks
    assert re.search(r"^\s+[\d.]+ s\s+threads start$", prof.text, re.M), prof.text


@pytest.mark.parametrize("python", interpreters())
def test_without_the_library_calls_name_the_fix(tmp_path, python):
    """Imported without librprof.so, the module imports; each call raises NotLoaded (an
    RprofError) whose message names `rprof run` and LD_PRELOAD."""
    code = """
import rprof
assert not rprof.available()
msgs = set()
def deco():
    @rprof.profile
    def f(): return 1
    f()
def block():
    with rprof.profile(): pass
for call in (rprof.start, rprof.stop, rprof.flush, rprof.version, lambda: rprof.mark("x"),
             lambda: rprof.set_output("x.trace"), deco, block):
    try:
        call()
    except rprof.NotLoaded as e:
        assert isinstance(e, rprof.RprofError)
        msgs.add(str(e))
    else:
        raise SystemExit(f"{call} did not raise")
assert len(msgs) == 1, msgs
print(msgs.pop())
"""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("RPROF_")}
    env["PYTHONPATH"] = str(PACKAGE)
    r = subprocess.run([python, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "rprof run" in r.stdout and "LD_PRELOAD=" in r.stdout and "librprof.so" in r.stdout, r.stdout


def test_rprof_run_makes_import_work(tmp_path):
    """`rprof run` puts python/ on PYTHONPATH (keeping the caller's), so the program imports
    the package from the repository and finds the preloaded library."""
    require(RPROF)
    env = dict(os.environ, PYTHONPATH="/nonexistent-keep-me")
    code = "import rprof, sys; print(rprof.__file__); print(rprof.available()); print(sys.path)"
    r = subprocess.run([str(RPROF), "run", "--report", str(tmp_path / "r.txt"), "--",
                        "/usr/bin/python3.11", "-c", code], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    path, avail, syspath = r.stdout.splitlines()
    assert os.path.realpath(path) == str((PACKAGE / "rprof" / "__init__.py").resolve())
    assert avail == "True"
    assert "/nonexistent-keep-me" in syspath


def test_pip_install_from_the_repository(tmp_path):
    """`pip install ./python` into a fresh venv, offline (the in-tree backend needs neither
    setuptools nor wheel); the installed package drives the preloaded library."""
    python = str(interpreters()[1].values[0])
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = subprocess.run([str(venv / "bin/pip"), "install", "--no-index", str(PACKAGE)],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    code = """
import rprof
print(rprof.__file__)
print(rprof.version())
with rprof.profile():
    rprof.mark("installed")
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("RPROF_")}
    env.update(LD_PRELOAD=str(SHIM), RPROF_START="paused", RPROF_OUTPUT=str(work / "t.trace"),
               RPROF_LOG="off", RPROF_GPU="off")
    r = subprocess.run([str(venv / "bin/python"), "-c", code], cwd=work, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    installed, version = r.stdout.splitlines()
    assert installed.startswith(str(venv)), installed
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert [m["label"] for m in report_json(work / "t.trace")["rprof"]["program_marks"]] == ["installed"]


@pytest.mark.parametrize("python", interpreters())
def test_rprof_env_in_a_shell_profiles_the_regions(tmp_path, python):
    """`eval "$(rprof env --start paused ...)"` in bash, then the workload: the trace goes
    to the path asked for (a quote, a space and %p in it), the rate is the one asked for, an
    LD_PRELOAD set before stays after rprof's, and only the regions are recorded."""
    require(RPROF)
    bash = shutil.which("bash")
    out = str(tmp_path / "it's a %p.trace")
    script = ('eval "$("$RPROF" env --start paused --hz 1000 --mode cpu -o "$OUT")" && '
              'echo "LD_PRELOAD=$LD_PRELOAD" >&2 && exec "$PY" "$WORKLOAD"')
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("RPROF_")}
    env.update(RPROF=str(RPROF), OUT=out, PY=python, WORKLOAD=str(WORKLOAD), RPROF_LOG="off",
               RPROF_GPU="off", LD_PRELOAD="libm.so.6")
    r = subprocess.run([bash, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0, r.stderr
    assert f"LD_PRELOAD={SHIM.resolve()}:libm.so.6" in r.stderr
    traces = list(tmp_path.glob("it's a *.trace"))
    assert len(traces) == 1, list(tmp_path.iterdir())
    data = report_json(traces[0])
    assert data["rprof"]["sample_hz"] == 1000
    check_regions(data, r.stdout)


def test_rprof_env_formats(tmp_path):
    """Every option becomes its variable in each format; bad values are refused."""
    require(RPROF)
    args = ["--start", "paused", "--toggle-signal", "usr2", "--max-mb", "64", "--hz", "250",
            "--mode", "cpu,memory", "--flush-ms", "50", "--no-children", "--wall", "-o", "/var/tmp/a %p.trace"]
    want = {"RPROF_START": "paused", "RPROF_TOGGLE_SIGNAL": "SIGUSR2", "RPROF_MAX_MB": "64",
            "RPROF_CPU_HZ": "250", "RPROF_MODE": "cpu,memory", "RPROF_FLUSH_MS": "50",
            "RPROF_FOLLOW_CHILDREN": "0", "RPROF_CLOCK": "wall"}
    shell = subprocess.run([str(RPROF), "env", *args], capture_output=True, text=True, timeout=30)
    assert shell.returncode == 0, shell.stderr
    # What bash makes of the lines is the test of their quoting.
    env = subprocess.run(["bash", "-c", f'{shell.stdout}\nenv -0'], capture_output=True, text=True,
                         env={"PATH": os.environ["PATH"]}, timeout=30).stdout
    got = dict(kv.split("=", 1) for kv in env.split("\0") if "=" in kv)
    assert {k: got.get(k) for k in want} == want
    assert got["RPROF_OUTPUT"] == "/var/tmp/a %p.trace"
    assert got["LD_PRELOAD"] == str(SHIM.resolve())
    assert got["PYTHONPATH"] == str(PACKAGE.resolve())
    unit = subprocess.run([str(RPROF), "env", "--format", "systemd", *args], capture_output=True,
                          text=True, timeout=30).stdout
    assert 'Environment="RPROF_OUTPUT=/var/tmp/a %%p.trace"' in unit
    for k, v in want.items():
        assert f'Environment="{k}={v}"' in unit
    docker = subprocess.run([str(RPROF), "env", "--format", "docker", "--lib", "/opt/r/librprof.so",
                             *args], capture_output=True, text=True, timeout=30).stdout
    assert 'ENV LD_PRELOAD="/opt/r/librprof.so${LD_PRELOAD:+:$LD_PRELOAD}"' in docker
    assert "PYTHONPATH" not in docker  # the image's package directory is not this machine's
    for bad in (["--toggle-signal", "SIGKILL"], ["--start", "later"], ["--mode", "disk"],
                ["--format", "docker", "--lib", "relative.so"]):
        r = subprocess.run([str(RPROF), "env", *bad], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and r.stdout == "", (bad, r.stdout)
