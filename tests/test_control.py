"""Control of a run from the program itself (issue 11): the C API in include/rprof.h over a
librprof.so the program links (no LD_PRELOAD), RPROF_START=paused, RPROF_TOGGLE_SIGNAL,
RPROF_MAX_MB, and an embedded CPython. The C sources are tests/native/control_*.c; each
test compiles its own, and compares the profile with the CPU times the program measured
in the same run."""
import os
import re
import subprocess
from pathlib import Path

from browser import Browser
from harness import NATIVE, PROFILE_HZ, RELEASE, REPO, SHIM, file_lines, report, report_json, require, run_profiled, shim_env

INCLUDE = REPO / "include"
PYENV_PYTHON = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions/3.11.7/bin"


def compile_c(tmp_path, source, *flags, compiler="gcc", link_rprof=True):
    """tests/native/SOURCE built into tmp_path; linked with librprof.so (-lrprof, its rpath)
    unless told not to. --no-as-needed: the link must load the library even where the
    program calls nothing in it (the toolchain's default drops such a library)."""
    require(SHIM)
    exe = tmp_path / Path(source).stem
    lib = ["-Wl,--no-as-needed", f"-L{RELEASE}", "-lrprof", f"-Wl,-rpath,{RELEASE}", "-Wl,--as-needed"] if link_rprof else []
    subprocess.run([compiler, "-O2", "-g", "-fno-omit-frame-pointer", "-pthread", f"-I{INCLUDE}", "-o", exe,
                    NATIVE / source, *lib, *flags], check=True, timeout=120)
    return exe


def linked_env(tmp_path, **extra):
    """A linked program's environment: the shim's settings, no LD_PRELOAD."""
    env = shim_env(tmp_path, **extra)
    del env["LD_PRELOAD"]
    return env


def run(argv, tmp_path, env, timeout=120):
    proc = subprocess.run([str(a) for a in argv], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}: {proc.stdout}{proc.stderr}"
    return proc


def functions(data):
    """{native function name: its share of the sampled CPU, %} over every file."""
    out = {}
    for entry in data["files"].values():
        for f in entry["functions"]:
            out[f["line"]] = out.get(f["line"], 0) + f["n_cpu_percent_c"] + f["n_cpu_percent_python"] + f["n_sys_percent"]
    return out


def truth(stdout, pattern):
    m = re.search(pattern, stdout)
    assert m, f"no {pattern!r} in {stdout!r}"
    return [float(g) for g in m.groups()]


def test_linked_program_profiles_only_its_marked_region(tmp_path):
    """control_region.c links librprof.so, starts paused, moves its trace with
    rprof_set_output, and records only between rprof_start and rprof_stop: more than 80% of
    the samples in inside_region, under 2% in the parts around it, which took as much CPU
    (measured by the program) as the region itself. Its marks are on the timeline."""
    exe = compile_c(tmp_path, "control_region.c")
    chosen = tmp_path / "chosen.trace"
    proc = run([exe, chosen, "0.8", "0.6"], tmp_path, linked_env(tmp_path, RPROF_START="paused", RPROF_CPU_HZ=PROFILE_HZ))
    codes = dict(re.findall(r"^(\w+) (-?\d+)$", proc.stdout, re.M))
    assert codes == {"set_output": "0", "mark": "0", "start": "0", "stop": "0", "late_set_output": "-1",
                     "flush": "0"}, proc.stdout
    assert re.search(r"^version \d+\.\d+\.\d+$", proc.stdout, re.M), proc.stdout
    outside, inside = truth(proc.stdout, r"cpu outside ([\d.]+) inside ([\d.]+)")
    assert outside >= 0.7 and inside >= 0.5, proc.stdout
    # rprof_set_output moved the trace: nothing at RPROF_OUTPUT's path.
    assert chosen.exists() and not list(tmp_path.glob("rprof-*.trace")), list(tmp_path.iterdir())
    data = report_json(chosen)
    shares = functions(data)
    assert shares.get("inside_region", 0) > 80, shares
    assert shares.get("outside_before", 0) + shares.get("outside_after", 0) < 2, shares
    # The CPU the samples stand for is the region's, not the run's.
    sampled = data["rprof"]["cpu_time_sec"]
    assert abs(sampled - inside) <= 0.25 * inside, (sampled, inside, outside)
    marks = data["rprof"]["program_marks"]
    assert [m["label"] for m in marks] == ["region-start", "region-end"], marks
    assert marks[0]["t_sec"] < marks[1]["t_sec"], marks
    text = report(chosen)
    assert text.returncode == 0, text.stderr
    section = text.stdout[text.stdout.index("Marks (rprof_mark)"):]
    assert section.count("^") == 2 and "region-start" in section and "region-end" in section, section
    html = tmp_path / "page.html"
    r = report(chosen, "--html", "-o", str(html))
    assert r.returncode == 0, r.stderr
    b = Browser()
    try:
        b.open(html)
        texts = b.js("[...document.querySelectorAll('#marks-timeline text')].map((t) => t.textContent)")
        assert [t.split(" (")[0] for t in texts] == ["region-start", "region-end"], texts
        assert b.js("document.querySelectorAll('#marks-timeline .mark').length") == 2
        assert b.errors == [], f"console errors: {b.errors}"
    finally:
        b.close()


def test_stopped_keeps_frees_and_new_threads(tmp_path):
    """control_late.c allocates 64 MiB while recording, frees it all while stopped, creates
    a thread while stopped, then starts: nothing reads as live at exit (the frees were
    recorded), and the thread, armed while stopped, carries the samples after the start."""
    exe = compile_c(tmp_path, "control_late.c")
    proc, trace = run_profiled([exe, "0.4"], tmp_path, RPROF_CPU_HZ=PROFILE_HZ)
    assert proc.returncode == 0, proc.stderr
    assert "stop 0" in proc.stdout and "start 0" in proc.stdout, proc.stdout
    data = report_json(trace)
    mem = data["rprof"]["memory"]
    assert mem["malloc_mb"] >= 60, mem
    assert mem["kept_mb"] < 4 and mem["unmatched_frees"] == 0, mem
    assert functions(data).get("thread_hot", 0) > 60, functions(data)


def test_cxx_header_and_weak_use(tmp_path):
    """The header compiles as C++ (-Wall -Werror) and as strict C99; linked, the C++ program
    calls the API and checks its answers; built with RPROF_WEAK and not linked, the same
    source runs without the library at all, and preloaded it finds it."""
    strict = ["-Wall", "-Wextra", "-Werror"]
    linked = compile_c(tmp_path, "control_cxx.cpp", *strict, compiler="g++")
    proc = run([linked], tmp_path, linked_env(tmp_path))
    assert re.search(r"^version \S+ mark 0 flush 0 null_mark -1$", proc.stdout, re.M), proc.stdout
    weak_dir = tmp_path / "weak"
    weak_dir.mkdir()
    weak = compile_c(weak_dir, "control_cxx.cpp", "-DRPROF_WEAK", *strict, compiler="g++", link_rprof=False)
    needed = subprocess.run(["readelf", "-d", weak], capture_output=True, text=True, check=True).stdout
    assert "librprof" not in needed, needed
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPROF_") and k != "LD_PRELOAD"}
    proc = run([weak], weak_dir, env)
    assert proc.stdout == "rprof absent\n", proc.stdout
    # The same binary preloaded (as `rprof run` does): the weak references find the library.
    proc = run([weak], weak_dir, shim_env(weak_dir))
    assert re.search(r"^version \S+ mark 0 flush 0 null_mark -1$", proc.stdout, re.M), proc.stdout
    for std in ["c99", "c11"]:
        subprocess.run(["gcc", f"-std={std}", "-pedantic", *strict, f"-I{INCLUDE}", "-fsyntax-only", "-x", "c", "-"],
                       input="#include <rprof.h>\nint main(void) { return rprof_start() == 0 ? 0 : 1; }\n",
                       text=True, check=True, timeout=60)


def test_toggle_signal_records_only_the_on_windows(tmp_path):
    """control_toggle.c burns five equal phases of CPU, raising SIGUSR2 between them;
    started paused with RPROF_TOGGLE_SIGNAL=SIGUSR2, only on_1 and on_2 are recorded (about
    half each, as the program measured them equal), and the program's own SIGUSR2 handler
    still ran on each delivery (without it, the signal's default would have killed it)."""
    exe = compile_c(tmp_path, "control_toggle.c", link_rprof=False)
    proc, trace = run_profiled([exe, "0.3"], tmp_path, RPROF_START="paused", RPROF_TOGGLE_SIGNAL="SIGUSR2",
                               RPROF_CPU_HZ=PROFILE_HZ)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "delivered 4\n", proc.stdout
    shares = functions(report_json(trace))
    assert sum(shares.get(f, 0) for f in ["off_a", "off_b", "off_c"]) < 2, shares
    for on in ["on_1", "on_2"]:
        assert 35 <= shares.get(on, 0) <= 65, shares
    assert shares["on_1"] + shares["on_2"] > 90, shares


def test_bad_control_settings_warn_once_each(tmp_path):
    """Bad values of the three settings: one warning line each, their defaults (recording
    from the start, no toggle, no cap), and the program's output unchanged."""
    exe = compile_c(tmp_path, "control_grow.c", link_rprof=False)
    plain = run([exe, "20000"], tmp_path, {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"})
    proc, trace = run_profiled([exe, "20000"], tmp_path, RPROF_START="later", RPROF_TOGGLE_SIGNAL="SIGKILL",
                               RPROF_MAX_MB="lots")
    assert proc.returncode == 0 and proc.stdout == plain.stdout, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    for name in ["RPROF_START", "RPROF_TOGGLE_SIGNAL", "RPROF_MAX_MB"]:
        assert sum(name in w for w in warnings) == 1, (name, warnings)
    assert len(warnings) == 3, warnings
    assert report_json(trace)["alloc_samples"] > 0


def test_max_mb_caps_the_trace(tmp_path):
    """control_grow.c at a 512-byte sampling mean writes several MiB of trace; with
    RPROF_MAX_MB=1 the trace stops below 1 MiB but for its small closing chunk (the native
    symbols and the mark), no lower than a flush window's chunk under it, says why in a
    mark the report shows, warns once, and the program's output is unchanged."""
    exe = compile_c(tmp_path, "control_grow.c", link_rprof=False)
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    plain = run([exe, "300000"], tmp_path, env)
    free_dir, capped_dir = tmp_path / "free", tmp_path / "capped"
    free_dir.mkdir()
    capped_dir.mkdir()
    proc, free = run_profiled([exe, "300000"], free_dir, RPROF_MEM_RATE="512")
    assert proc.returncode == 0 and proc.stdout == plain.stdout
    assert free.stat().st_size > 3 << 20, free.stat().st_size
    proc, capped = run_profiled([exe, "300000"], capped_dir, RPROF_MEM_RATE="512", RPROF_MAX_MB="1")
    assert proc.returncode == 0 and proc.stdout == plain.stdout, proc.stderr
    assert (1 << 20) - (512 << 10) <= capped.stat().st_size <= (1 << 20) + (64 << 10), capped.stat().st_size
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "RPROF_MAX_MB=1" in warnings[0], proc.stderr
    data = report_json(capped)
    assert "RPROF_MAX_MB=1 reached" in (data["rprof"]["stopped"] or ""), data["rprof"]["stopped"]
    assert not data["rprof"]["damage"], data["rprof"]["damage"]
    assert not [w for w in data["rprof"]["warnings"] if "never defined" in w], data["rprof"]["warnings"]


def test_embedded_cpython_python_lines_and_native_functions(tmp_path):
    """control_embed.c links librprof.so and libpython 3.11.7 (shared), runs a Python
    script with a hot line, then a hot C function of its own: both in one report, each
    with a share of the samples within 15 points of the CPU the program measured for it."""
    config = PYENV_PYTHON / "python3-config"
    require(config)
    cflags = subprocess.run([config, "--cflags", "--embed"], capture_output=True, text=True, check=True).stdout.split()
    ldflags = subprocess.run([config, "--ldflags", "--embed"], capture_output=True, text=True, check=True).stdout.split()
    exe = compile_c(tmp_path, "control_embed.c", *[f for f in cflags if not f.startswith("-O")], *ldflags)
    script = NATIVE / "control_embed.py"
    proc = run([exe, script, "0.5"], tmp_path, linked_env(tmp_path, RPROF_CPU_HZ=PROFILE_HZ))
    py, native = truth(proc.stdout, r"cpu python ([\d.]+) native ([\d.]+)")
    traces = list(tmp_path.glob("rprof-*.trace"))
    assert len(traces) == 1, traces
    data = report_json(traces[0])
    assert data["rprof"]["python_version"].startswith("3.11.7"), data["rprof"]["python_version"]
    hot = next(no for no, text in enumerate(script.read_text().splitlines(), 1) if "# HOT-PY" in text)
    line = file_lines(data, script)[hot]
    py_share = line["n_cpu_percent_python"] + line["n_cpu_percent_c"] + line["n_sys_percent"]
    native_share = functions(data).get("native_hot", 0)
    total = py + native
    assert abs(py_share - 100 * py / total) <= 15, (py_share, py, native)
    assert abs(native_share - 100 * native / total) <= 15, (native_share, py, native)
    assert [m["label"] for m in data["rprof"]["program_marks"]] == ["python-done"]
