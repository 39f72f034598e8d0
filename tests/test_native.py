"""Plain C programs (no Python) under the shim, sampling at 1000 Hz (the malloc family
is always interposed): same output as without it, single- and multi-threaded, and no
crash or hang over repeated 4-thread runs."""
import os
import re
import subprocess
from pathlib import Path

import pytest

from harness import NATIVE, NO_SHARED, OWN, PROFILE_HZ, SHARED, SHIM, build_c, other_stderr, profiled, report, run_profiled

SOURCES = [pytest.param(OWN / "alloc_api.c", id="own-alloc_api"),
           pytest.param(SHARED / "native_alloc.c", id="shared-native_alloc", marks=NO_SHARED)]
# 4 threads at 1/10 of the work, through each program's own divisor argument.
STRESS_ARGS = {"alloc_api": ["4", "10"], "native_alloc": ["4", "run", "10"]}


@pytest.fixture(scope="session")
def build(tmp_path_factory):
    cache = {}

    def get(source):
        if source not in cache:
            exe = tmp_path_factory.mktemp("build") / source.stem
            subprocess.run(["gcc", "-O2", "-g", "-pthread", "-fno-omit-frame-pointer", "-o", exe, source],
                           check=True, timeout=120)
            cache[source] = exe
        return cache[source]
    return get


def unprofiled(argv):
    plain = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0, plain.stderr
    return plain


def assert_like_unprofiled(argv, plain, tmp_path):
    """argv under the shim, 60 s at most: exit 0, the unprofiled run's stdout, and its
    stderr plus only the shim's closing line.  Removes the trace it wrote."""
    proc, trace = run_profiled(argv, tmp_path, timeout=60, RPROF_CPU_HZ=PROFILE_HZ)
    assert proc.returncode == 0, f"exit {proc.returncode} under the shim: {proc.stderr}"
    assert proc.stdout == plain.stdout
    assert other_stderr(proc.stderr) == plain.stderr.splitlines()
    trace.unlink()


@pytest.mark.parametrize("threads", ["1", "4"])
@pytest.mark.parametrize("source", SOURCES)
def test_native_output_unchanged(source, threads, build, tmp_path):
    """The full work, 1 and 4 threads."""
    argv = [build(source), threads]
    assert_like_unprofiled(argv, unprofiled(argv), tmp_path)


@pytest.mark.parametrize("source", SOURCES)
def test_native_threads_repeated(source, build, tmp_path):
    """20 runs with 4 threads, 60 s each at most.  To keep the suite within its time
    budget these run 1/10 of the work (the program's own divisor argument); the
    full-work runs are in test_native_output_unchanged."""
    argv = [build(source), *STRESS_ARGS[source.stem]]
    plain = unprofiled(argv)
    for _ in range(20):
        assert_like_unprofiled(argv, plain, tmp_path)


def test_dlopened_library_named(tmp_path):
    """A library of our own, built with -g and dlopen'ed after start (the writer never had
    it mapped): its two hot functions named from its symbol table, their lines from its
    DWARF, with shares within 5 points of the truth the program measured in the run."""
    lib = build_c("dl_hot", "-shared", "-fPIC")
    exe = build_c("dl_main")
    prof = profiled([exe, lib], tmp_path, RPROF_CPU_HZ=PROFILE_HZ)
    truth = {m[1]: float(m[2]) for m in re.finditer(r"^share (\w+) ([\d.]+)$", prof.proc.stdout, re.M)}
    assert set(truth) == {"hot_a", "hot_b"}, prof.proc.stdout
    src = NATIVE / "dl_hot.c"
    entry = prof.data["files"].get(str(src))
    assert entry, f"no {src} among {list(prof.data['files'])}"
    funcs = {rec["line"]: rec for rec in entry["functions"]}
    for name, want in truth.items():
        assert name in funcs, f"{name} not named: {sorted(funcs)}"
        got = funcs[name]["n_cpu_percent_c"] + funcs[name]["n_cpu_percent_python"] + funcs[name]["n_sys_percent"]
        assert abs(got - want) <= 5, (name, got, want)
    # Each hot loop's line, from the DWARF.
    lines = {rec["lineno"] for rec in entry["lines"] if rec["n_cpu_percent_c"] > 5}
    marked = {no for no, text in enumerate(src.read_text().splitlines(), 1) if "// HOT-" in text}
    assert lines == marked, (lines, marked)


def test_cxx_functions_are_named_demangled(tmp_path):
    """A C++ program built with -g: its member function and template instance are named
    demangled, with their file and their shares within 5 points of the truth the program
    measured in the run; no mangled name is left among the program's own functions."""
    src = NATIVE / "cxx_names.cpp"
    exe = tmp_path / "cxx_names"
    subprocess.run(["g++", "-O2", "-g", "-fno-omit-frame-pointer", "-o", exe, src], check=True, timeout=120)
    prof = profiled([exe], tmp_path, RPROF_CPU_HZ=PROFILE_HZ)
    truth = {m[1]: float(m[2]) for m in re.finditer(r"^share (\w+) ([\d.]+)$", prof.proc.stdout, re.M)}
    entry = prof.data["files"].get(str(src))
    assert entry, f"no {src} among {list(prof.data['files'])}"
    funcs = {rec["line"]: rec for rec in entry["functions"]}
    assert not [f for f in funcs if f.startswith("_Z")], sorted(funcs)
    for name, want in (("ns::Worker::spin(int)", truth["spin"]), ("long ns::scaled<long>(int)", truth["scaled"])):
        assert name in funcs, f"{name} not named: {sorted(funcs)}"
        got = funcs[name]["n_cpu_percent_c"] + funcs[name]["n_cpu_percent_python"] + funcs[name]["n_sys_percent"]
        assert abs(got - want) <= 5, (name, got, want)
    assert "ns::Worker::spin(int)" in prof.text, prof.text


def test_time_in_the_c_librarys_allocator_goes_to_its_caller(tmp_path):
    """A C program whose churn() spends most of its time inside glibc's malloc and free
    (built without frame pointers): at the default memory mode that time is charged to
    churn()'s line and function, its share within 5 points of what the program measured
    in the run (with or without rprof's own hooks' time, which the report keeps apart), and
    no line of malloc.c is charged."""
    exe = build_c("alloc_caller")
    prof = profiled([exe], tmp_path, RPROF_CPU_HZ=PROFILE_HZ)
    truth = {m[1]: float(m[2]) for m in re.finditer(r"^share (\w+) ([\d.]+)$", prof.proc.stdout, re.M)}
    src = NATIVE / "alloc_caller.c"
    entry = prof.data["files"].get(str(src))
    assert entry, f"no {src} among {list(prof.data['files'])}"
    funcs = {rec["line"]: rec for rec in entry["functions"]}
    # The report keeps the time in rprof's own hooks apart (charged to no line) and gives
    # shares of the rest; the program's measurement includes it, all of it in churn()
    # (spin() calls nothing). The hooks' time is itself an estimate from samples, so each
    # share is held between the truth with the estimated hooks' time taken out and the
    # truth as measured, 5 points either side.
    r = prof.data["rprof"]
    cpu, hooks = r["cpu_time_sec"], r["profiler_overhead_sec"]
    without = {"churn": (truth["churn"] / 100 * (cpu + hooks) - hooks) / cpu * 100,
               "spin": truth["spin"] / 100 * (cpu + hooks) / cpu * 100}
    for name in ("churn", "spin"):
        assert name in funcs, sorted(funcs)
        got = funcs[name]["n_cpu_percent_c"] + funcs[name]["n_cpu_percent_python"] + funcs[name]["n_sys_percent"]
        lo, hi = sorted((without[name], truth[name]))
        assert lo - 5 <= got <= hi + 5, (name, got, without, truth, r)
    charged_malloc = [f for f in prof.data["files"] if f.endswith("malloc.c")]
    assert not charged_malloc, charged_malloc


# Allocators preloaded after rprof (the shim forwards to them), built without frame
# pointers as glibc is; scripts/test-env.sh installs them.
FOREIGN = {"jemalloc": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
           "tcmalloc": "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4"}


@pytest.mark.parametrize("mode,allocator,first", [("cpu", None, False), ("full", None, False),
                                                  ("cpu", "jemalloc", False), ("cpu", "tcmalloc", False),
                                                  ("full", "jemalloc", True)])
def test_time_in_the_c_library_goes_to_its_caller_by_its_cfi(mode, allocator, first, tmp_path):
    """A C program whose copy() spends most of its time in glibc's memcpy (a leaf that
    leaves rbp alone: a frame-pointer walk finds the caller's caller) and churn() in its
    malloc and free (no frame pointers), profiled CPU-only (no wrapper frame to walk from)
    and in full mode, and with jemalloc or tcmalloc after rprof (CPU-only: no wrapper
    frame either) or before it (the program calls it directly): the allocator is unwound
    the same way. The samples are stepped out by the CFI, so each
    function gets its share within 5 points of what the program measured in the run (with
    or without rprof's own hooks' time, as above), main() (where a frame-pointer walk from
    inside memcpy lands) next to nothing, and nothing is charged to the C library."""
    exe = build_c("libc_caller")
    env = {"RPROF_CPU_HZ": PROFILE_HZ}
    if mode == "cpu":
        env["RPROF_MODE"] = "cpu"
    if allocator:
        if not os.path.exists(FOREIGN[allocator]):
            pytest.fail(f"{FOREIGN[allocator]} is missing: run scripts/test-env.sh")
        env["LD_PRELOAD"] = f"{FOREIGN[allocator]} {SHIM}" if first else f"{SHIM} {FOREIGN[allocator]}"
    prof = profiled([exe], tmp_path, **env)
    truth = {m[1]: float(m[2]) for m in re.finditer(r"^share (\w+) ([\d.]+)$", prof.proc.stdout, re.M)}
    assert set(truth) == {"copy", "churn", "spin"}, prof.proc.stdout
    entry = prof.data["files"].get(str(NATIVE / "libc_caller.c"))
    assert entry, f"no libc_caller.c among {list(prof.data['files'])}"
    funcs = {rec["line"]: rec for rec in entry["functions"]}
    r = prof.data["rprof"]
    cpu, hooks = r["cpu_time_sec"], r["profiler_overhead_sec"]
    for name in ("copy", "churn", "spin"):
        assert name in funcs, sorted(funcs)
        got = funcs[name]["n_cpu_percent_c"] + funcs[name]["n_cpu_percent_python"] + funcs[name]["n_sys_percent"]
        # rprof's hooks' time is nearly all churn()'s (its malloc and free; copy()'s few
        # hundred memcpy calls a second hardly show).
        hooked = name == "churn"
        without = (truth[name] / 100 * (cpu + hooks) - hooked * hooks) / cpu * 100
        lo, hi = sorted((without, truth[name]))
        assert lo - 5 <= got <= hi + 5, (mode, allocator, first, name, got, without, truth, r)
    main = funcs.get("main")
    main_share = main["n_cpu_percent_c"] + main["n_sys_percent"] if main else 0
    assert main_share < 2, (mode, allocator, first, main, truth)
    charged_libc = [f for f in prof.data["files"] if f.endswith(("malloc.c", ".S")) or "libc.so" in f]
    assert not charged_libc, charged_libc


def _libc_debug_file():
    """The build-id debug file of the C library the tests' programs link, if installed."""
    notes = subprocess.run(["readelf", "-n", "/lib/x86_64-linux-gnu/libc.so.6"], capture_output=True, text=True)
    m = re.search(r"Build ID: ([0-9a-f]+)", notes.stdout)
    path = m and Path(f"/usr/lib/debug/.build-id/{m[1][:2]}/{m[1][2:]}.debug")
    return path if path and path.is_file() else None


def test_c_library_frames_have_their_lines_from_its_debug_file(tmp_path):
    """A program sorting with the C library's qsort: with libc6-dbg installed, the library's
    frames (glibc's msort.c) carry file:line in the stacks, which the report reads from the
    build-id debug file (the writer records the PC's address; it does not inflate that
    file's DWARF). Without it the frames are named by function and module alone."""
    debug = _libc_debug_file()
    if debug is None:
        pytest.skip("no build-id debug file for the C library (libc6-dbg)")
    exe = build_c("libc_lines")
    prof = profiled([exe], tmp_path, RPROF_CPU_HZ=PROFILE_HZ)
    folded = tmp_path / "folded.txt"
    assert report(prof.trace, "--collapsed", folded).returncode == 0
    frames = [f for line in folded.read_text().splitlines() for f in line.rsplit(" ", 1)[0].split(";")]
    msort = [f for f in frames if f.startswith("msort")]
    assert msort, frames[:20]
    assert all(re.fullmatch(r"msort\S* \(\./stdlib/msort\.c:\d+\)", f) for f in msort), set(msort)
