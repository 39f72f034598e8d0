#!/usr/bin/env python3
"""rprof beside the profilers users would pick instead, on the same workloads, in one run.

For each workload (tests/workloads' cpu_split, native_mix, threads3, mem_alloc; ../shared/workloads'
cpu_python, native_split, threads, alloc_heavy when present; the C native_alloc) and each
profiler that can run it: interleaved pairs of runs, unprofiled then profiled (A B A B ...).
Per profiler and workload it reports the wall-time ratio (median, min, max over the pairs),
the peak-RSS ratio (largest process of the run's tree, from wait4), the output written per
second of profiled wall time, and, for the profilers whose output gives per-line CPU shares
(rprof, scalene, py-spy, austin), the error against the workload's measured ground truth
(tests/truth.py): |profile - truth| in percentage points, mean and max over its hot lines,
and, where a hot line is native and the profiler splits Python from native time (rprof,
scalene), the error of each hot line's native share;
on the memory workloads (alloc_heavy, mem_alloc), for the profilers that give per-line
memory (rprof full, scalene full, memray, memray native), their kept line's peak, churning
line's allocated bytes and leaking line against tests/memory_truth.py, from the first pair.
Then rprof-only figures: malloc+free pair cost with and without the shim, report
throughput on a large synthetic trace (50,000 stacks) with its peak RSS, the time, peak RSS
and size of that trace's HTML page and of the largest workload trace's (`--html`), report
start-up, GPU start-up without NVML (RPROF_GPU=off vs auto), trace size per CPU-minute,
trace size per hour of a steady service in full mode.
Writes the tables into BENCHMARKS.md between the bench markers and the overhead chart into
docs/bench-overhead.svg.

    python3 scripts/bench.py          3 pairs per workload and profiler (`make bench`)
    BENCH_QUICK=1 ...                 1 pair, a 50 MB synthetic trace (`make bench-quick`)
    BENCH_PAIRS=N                     N pairs
    BENCH_ONLY=cpu_split,py-spy       only workloads / profilers whose name holds one of these
    BENCH_PYTHON=/path/python3        the interpreter (default pyenv's 3.11.7; the peers run
                                      from .venv-bench/, a venv of it: scripts/bench-env.sh)
"""
import ctypes
import datetime
import json
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
import memory_truth  # noqa: E402  (tests/memory_truth.py: the memory workloads' ground truth)
import truth  # noqa: E402  (tests/truth.py: the workloads' ground truth)

SHIM = REPO / "target/release/librprof.so"
REPORT = REPO / "target/release/rprof-report"
VENV = REPO / ".venv-bench"
SHARED = Path(os.environ.get("RPROF_SHARED_WORKLOADS") or REPO.parent / "shared/workloads")
OWN = ["cpu_split.py", "native_mix.py", "threads3.py", "mem_alloc.py"]
SHARED_NAMES = ["cpu_python.py", "native_split.py", "threads.py", "alloc_heavy.py"]
C_WORKLOAD = "native_alloc.c"
C_ARGS = ["1", "run", "10"]           # 1/10 of the work: heaptrack is ~20x slower than plain
C_ARGS_HEAP = ["1", "run", "100"]     # tcmalloc's heap profiler records every call: ~500x
LIBDIR = Path("/usr/lib/x86_64-linux-gnu")
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
SVG = REPO / "docs/bench-overhead.svg"
TIMEOUT = 900
# The workloads whose hot lines are native or Python by construction: C code outside the
# interpreter (zlib, ctypes) or pure bytecode. alloc_heavy's "native-ish" line 41 is C code
# inside libpython (list(), range), which rprof counts as Python time (PC in the
# interpreter's text), so its split is a matter of definition, not of accuracy.
SPLIT_WORKLOADS = ("native_mix.py", "native_split.py")
MB = memory_truth.MB
# The memory workloads' truth (keep, churn and leak lines), and the profilers whose output
# gives per-line memory.
MEM_TRUTH = {"alloc_heavy.py": memory_truth.alloc_heavy, "mem_alloc.py": memory_truth.own_alloc}
MEM_PROFILERS = ("rprof full", "scalene full", "memray", "memray native")


# ---------------------------------------------------------------- profilers
# Each: name -> (applies to "py" / "c", argv builder (argv, outdir) -> (argv, extra env)).
def vbin(name):
    return str(VENV / "bin" / name)


def rprof(mode):
    def build(argv, out):
        env = {"LD_PRELOAD": str(SHIM), "RPROF_OUTPUT": str(out / "rprof-%p.trace")}
        if mode:
            env["RPROF_MODE"] = mode
        return argv, env
    return build


PROFILERS = {
    "rprof cpu": ("py c", rprof("cpu")),
    "rprof full": ("py c", rprof(None)),
    "scalene cpu": ("py", lambda a, o: ([vbin("scalene"), "run", "--cpu-only", "-o", str(o / "scalene.json"), a[1], "---", *a[2:]], {})),
    "scalene full": ("py", lambda a, o: ([vbin("scalene"), "run", "-o", str(o / "scalene.json"), a[1], "---", *a[2:]], {})),
    "memray": ("py", lambda a, o: ([vbin("memray"), "run", "-q", "-f", "-o", str(o / "memray.bin"), *a[1:]], {})),
    "memray native": ("py", lambda a, o: ([vbin("memray"), "run", "--native", "-q", "-f", "-o", str(o / "memray.bin"), *a[1:]], {})),
    "py-spy": ("py", lambda a, o: ([vbin("py-spy"), "record", "--format", "raw", "-o", str(o / "pyspy.txt"), "--", *a], {})),
    "austin": ("py", lambda a, o: ([vbin("austin"), "-s", "-o", str(o / "austin.txt"), *a], {})),
    "pyinstrument": ("py", lambda a, o: ([vbin("pyinstrument"), "-r", "json", "-o", str(o / "pyinstrument.json"), *a[1:]], {})),
    "cProfile": ("py", lambda a, o: ([a[0], "-m", "cProfile", "-o", str(o / "cprofile.out"), *a[1:]], {})),
    "heaptrack": ("c", lambda a, o: (["heaptrack", "-o", str(o / "heaptrack"), *a], {})),
    "gperftools cpu": ("c", lambda a, o: (a, {"LD_PRELOAD": str(LIBDIR / "libprofiler.so.0"), "CPUPROFILE": str(o / "cpu.prof")})),
    "gperftools heap": ("c", lambda a, o: (a, {"LD_PRELOAD": str(LIBDIR / "libtcmalloc.so.4"), "HEAPPROFILE": str(o / "heap")})),
}


def available(name):
    """None when the profiler can run here, else why not."""
    if name.startswith("rprof"):
        return None if SHIM.exists() else f"{SHIM} missing (make build)"
    if name == "cProfile":
        return None
    if name == "heaptrack":
        return None if shutil.which("heaptrack") else "heaptrack not installed"
    if name.startswith("gperftools"):
        lib = "libprofiler.so.0" if name.endswith("cpu") else "libtcmalloc.so.4"
        return None if (LIBDIR / lib).exists() else f"{lib} not installed"
    tool = name.split()[0]
    return None if Path(vbin(tool)).exists() else f"{vbin(tool)} missing (scripts/bench-env.sh)"


# ---------------------------------------------------------------- line shares
def rprof_json(out):
    """The run's `rprof-report --json` (made once), or None without exactly one trace."""
    js = out / "rprof.json"
    traces = sorted(out.glob("rprof-*.trace"))
    if not js.exists() and len(traces) == 1:
        subprocess.run([str(REPORT), str(traces[0]), "--json", "-o", str(js)], check=True, capture_output=True)
    return js if js.exists() else None


def rprof_shares(out, path):
    js = rprof_json(out)
    return scalene_shares_of(js, path) if js else None


def same_file(a, b):
    return os.path.realpath(a) == os.path.realpath(b)


def scalene_shares_of(js, path):
    data = json.loads(js.read_text())
    for key, f in data.get("files", {}).items():
        if same_file(key, path):
            return {r["lineno"]: r["n_cpu_percent_python"] + r["n_cpu_percent_c"] + r.get("n_sys_percent", 0)
                    for r in f["lines"]}
    return {}


def scalene_native_of(js, path):
    """{line: native share of the line's CPU, in %} from Scalene-shaped JSON (rprof's or
    Scalene's): n_cpu_percent_c over n_cpu_percent_python + n_cpu_percent_c."""
    data = json.loads(js.read_text())
    lines = next((f["lines"] for key, f in data.get("files", {}).items() if same_file(key, path)), [])
    return {r["lineno"]: 100 * r["n_cpu_percent_c"] / (r["n_cpu_percent_python"] + r["n_cpu_percent_c"])
            for r in lines if r["n_cpu_percent_python"] + r["n_cpu_percent_c"] > 0}


def native_split(profiler, out, path):
    """{line: native %} in this run's output, or None where the profiler does not split
    Python from native time (py-spy and austin at their defaults, memray, the tracers)."""
    if profiler.startswith("rprof"):
        js = rprof_json(out)
        return scalene_native_of(js, path) if js else None
    if profiler.startswith("scalene") and (out / "scalene.json").exists():
        return scalene_native_of(out / "scalene.json", path)
    return None


def collapsed_shares(lines, path, frame_re):
    """Collapsed stacks, `frame;frame;... count`: each stack's count goes to the innermost
    frame in `path`; a stack without one counts in the total only."""
    base, counts, total = os.path.basename(path), {}, 0
    for line in lines:
        stack, _, n = line.rstrip("\n").rpartition(" ")
        if not stack or not n.isdigit():
            continue
        total += int(n)
        for fr in reversed(stack.split(";")):
            m = frame_re.search(fr)
            if m and os.path.basename(m.group(1)) == base:
                counts[int(m.group(2))] = counts.get(int(m.group(2)), 0) + int(n)
                break
    return {k: 100 * v / total for k, v in counts.items()} if total else {}


PYSPY_FRAME = re.compile(r"\((.+):(\d+)\)$")            # `func (file.py:LINE)`
AUSTIN_FRAME = re.compile(r"^(.+):[^:]*:(\d+)$")         # `/path/file.py:func:LINE`


def shares(profiler, out, path):
    """{line: % of CPU} of `path` in this run's output, or None where the profiler gives none."""
    if profiler.startswith("rprof"):
        return rprof_shares(out, path)
    if profiler.startswith("scalene") and (out / "scalene.json").exists():
        return scalene_shares_of(out / "scalene.json", path)
    if profiler == "py-spy":
        return collapsed_shares(open(out / "pyspy.txt"), path, PYSPY_FRAME)
    if profiler == "austin":
        return collapsed_shares((l for l in open(out / "austin.txt") if not l.startswith("#")), path, AUSTIN_FRAME)
    return None


# ---------------------------------------------------------------- line memory
def scalene_memory_of(js, path):
    """(peak, allocated, leaks) from Scalene-shaped JSON (rprof's or Scalene's; MiB):
    n_peak_mb and n_malloc_mb of the workload's lines in bytes, and every line flagged
    in a file's `leaks` (`file:line` outside the workload), mapped to None."""
    data = json.loads(js.read_text())
    lines = next((f["lines"] for key, f in data["files"].items() if same_file(key, path)), [])
    leaks = {int(no) if same_file(key, path) else f"`{os.path.basename(key)}:{no}`": None
             for key, f in data["files"].items() for no in f.get("leaks", {})}
    return ({r["lineno"]: r["n_peak_mb"] * memory_truth.MIB for r in lines},
            {r["lineno"]: r["n_malloc_mb"] * memory_truth.MIB for r in lines}, leaks)


def memray_memory_of(capture, path):
    """(peak, allocated, unfreed) of the workload's lines in bytes (scripts/memray_lines.py,
    in the venv that has memray).  memray has no leak detector: `unfreed` is what its
    leaks view shows, the bytes each line left unfreed at exit."""
    got = subprocess.run([vbin("python"), str(REPO / "scripts/memray_lines.py"), str(capture), str(path)],
                         check=True, capture_output=True, text=True, timeout=TIMEOUT).stdout
    got = json.loads(got)
    return tuple({int(no): b for no, b in got[part].items()} for part in ("peak", "allocated", "unfreed"))


def memory(profiler, out, path, t):
    """This run's memory figures for the workload's truth `t` (a memory_truth.AllocTruth)."""
    if profiler.startswith("memray"):
        peak, allocated, leaks = memray_memory_of(out / "memray.bin", path)
        # Found when the leaking line holds the most unfreed bytes; the other lines that
        # hold any (0.1 MB or more) are listed with them.
        found = bool(leaks) and max(leaks, key=leaks.get) == t.leak_line
        leaks = {no: b for no, b in leaks.items() if b >= 0.1 * MB}
    else:
        js = rprof_json(out) if profiler.startswith("rprof") else out / "scalene.json"
        if not (js and js.exists()):
            raise ValueError(f"{profiler} left no profile")
        peak, allocated, leaks = scalene_memory_of(js, path)
        found = t.leak_line in leaks
    return {"peak": peak.get(t.keep_line, 0), "allocated": allocated.get(t.churn_line, 0), "leak_found": found,
            "leak_bytes": leaks.get(t.leak_line), "others": {k: b for k, b in leaks.items() if k != t.leak_line}}


# ---------------------------------------------------------------- running
def run(argv, env, cwd):
    """Runs argv; returns its wall time in seconds."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"{shlex.join(argv)} ran past {TIMEOUT} s")
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        err = re.sub(r"\x1b\[[0-9;]*m", "", err).strip()
        raise RuntimeError(f"{shlex.join(argv)} exited {proc.returncode}: {err[-400:]}")
    return wall


def run_measured(argv, env, extra, cwd):
    """(wall s, peak RSS KiB, CPU s): /usr/bin/time reports the largest RSS of the run's
    process tree (its own and its waited-for children's), and their CPU time.  The
    profiler's variables (LD_PRELOAD...) are set by `env` under it, so that they reach
    the measured program only, not /usr/bin/time."""
    rfile = Path(cwd) / ".rusage"
    timer = Path("/usr/bin/time").exists()
    setenv = ["env", *(f"{k}={v}" for k, v in extra.items())] if extra else []
    full = ["/usr/bin/time", "-q", "-o", str(rfile), "-f", "%M %U %S", *setenv, *argv] if timer else argv
    wall = run(full, env if timer else dict(env, **extra), cwd)
    if timer:
        rss, user, sys_ = rfile.read_text().split()[-3:]
        rfile.unlink()
        return wall, int(rss), float(user) + float(sys_)
    return wall, None, None


# The largest trace an "rprof full" run wrote (its workload, path, size), kept for the
# HTML report's figures (rprof_figures).
LARGEST = {"name": None, "path": None, "size": 0}


def keep_if_largest(name, out, tmp):
    traces = sorted(out.glob("rprof-*.trace"), key=lambda t: t.stat().st_size)
    if traces and traces[-1].stat().st_size > LARGEST["size"]:
        LARGEST.update(name=name, path=tmp / "largest.trace", size=traces[-1].stat().st_size)
        shutil.copy(traces[-1], LARGEST["path"])


def out_size(out):
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and p.name not in ("rprof.json", ".rusage"))


def measure(name, argv, profs, pairs, tmp, truth_lines, mem_truth, path):
    """Interleaved pairs for each profiler; returns {profiler: result dict}.  Memory
    figures come from each profiler's first successful run."""
    plain_env = {k: v for k, v in os.environ.items() if not k.startswith("RPROF_") and k != "LD_PRELOAD"}
    res = {p: {"ratios": [], "rss": [], "kbps": [], "err": [], "split": [], "cpu_s": [], "bytes": [], "plain": [],
               "retries": 0} for p in profs}
    split_lines = [h for h in truth_lines or [] if h.kind] if path.name in SPLIT_WORKLOADS else []
    failed = {}
    for _ in range(pairs):
        for p in profs:
            if p in failed:
                continue
            out = tmp / "out"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            pargv, extra = PROFILERS[p][1](argv, out)
            args = C_ARGS_HEAP if p == "gperftools heap" else C_ARGS
            base = argv + args if path.suffix == ".c" else argv
            if path.suffix == ".c":
                pargv = pargv + args
            try:
                w0, r0, _ = run_measured(base, plain_env, {}, out.parent)
                for attempt in range(3):
                    try:
                        w1, r1, cpu = run_measured(pargv, plain_env, extra, out)
                        break
                    except RuntimeError as e:
                        # austin now and then fails to attach at start-up (its EPROC, exit 32)
                        # on a busy machine: a user would run it again, and so do we, counting it.
                        if attempt == 2 or p != "austin":
                            raise
                        res[p]["retries"] = res[p].get("retries", 0) + 1
                        print(f"  {p}: retrying after: {str(e)[-160:]}", flush=True)
                        shutil.rmtree(out)
                        out.mkdir()
                r = res[p]
                if p == "rprof full":
                    keep_if_largest(name, out, tmp)
                r["plain"].append(w0)
                r["ratios"].append(w1 / w0)
                if r0 and r1:
                    r["rss"].append(r1 / r0)
                size = out_size(out)
                r["bytes"].append(size)
                r["kbps"].append(size / 1024 / w1)
                if cpu:
                    r["cpu_s"].append(cpu)
                if truth_lines:
                    got = shares(p, out, path)
                    if got is not None:
                        r["err"].append([abs(got.get(h.lineno, 0.0) - h.pct) for h in truth_lines])
                    split = native_split(p, out, path) if split_lines else None
                    if split is not None:
                        # A hot line missing from the profile counts as all wrong.
                        r["split"].append([abs(split[h.lineno] - h.native_pct) if h.lineno in split else 100.0
                                           for h in split_lines])
                if mem_truth and p in MEM_PROFILERS and "mem" not in r:
                    try:
                        r["mem"] = memory(p, out, path, mem_truth)
                    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as e:
                        r["mem"] = {"error": str(e).replace("\n", " ")[:200]}
            except (RuntimeError, OSError, subprocess.CalledProcessError, ValueError) as e:
                failed[p] = str(e).replace("\n", " ")[:300]
    for p, why in failed.items():
        res[p]["failed"] = why
    return res


def workloads(python, build):
    found = [("own", REPO / "tests/workloads" / n) for n in OWN]
    if SHARED.is_dir():
        found += [("shared", SHARED / n) for n in SHARED_NAMES if (SHARED / n).exists()]
        if (SHARED / C_WORKLOAD).exists():
            found.append(("shared", SHARED / C_WORKLOAD))
    for origin, path in found:
        if path.suffix == ".c":
            exe = build / path.stem
            subprocess.run(["gcc", "-O2", "-g", "-pthread", "-fno-omit-frame-pointer", "-o", exe, path], check=True)
            yield f"{origin}/{path.name}", [str(exe)], path
        else:
            yield f"{origin}/{path.name}", [python, str(path)], path


# ---------------------------------------------------------------- rprof-only figures
def median_of(f, n):
    return statistics.median(f() for _ in range(n))


def rprof_figures(tmp, quick, lines, python, figs):
    reps = 1 if quick else 3
    exe = tmp / "malloc_pairs"
    subprocess.run(["gcc", "-O2", "-pthread", "-o", exe, REPO / "tests/native/malloc_pairs.c"], check=True)
    plain_env = {k: v for k, v in os.environ.items() if not k.startswith("RPROF_") and k != "LD_PRELOAD"}
    lines += ["### rprof alone", "",
              "malloc+free pair cost (`tests/native/malloc_pairs.c THREADS PAIRS`, 16-128 B blocks; its"
              " ns_per_pair = whole run's wall ns / pairs per thread, so 4 threads on 2 cores show about twice"
              f" the per-call cost; median of {reps}; the shim at its defaults, memory sampling on):", "",
              "| threads | pairs per thread | without the shim | with the shim | added per pair |", "|---|---|---|---|---|"]
    for threads in (1, 4):
        pairs = 20_000_000
        def ns(env):
            r = subprocess.run([str(exe), str(threads), str(pairs)], env=env, cwd=tmp, capture_output=True, text=True, check=True)
            return float(r.stdout.split("ns_per_pair")[1])
        a, b = [], []
        for _ in range(reps):
            a.append(ns(plain_env))
            b.append(ns(dict(plain_env, LD_PRELOAD=str(SHIM), RPROF_OUTPUT=str(tmp / "mp-%p.trace"))))
        a, b = statistics.median(a), statistics.median(b)
        lines.append(f"| {threads} | {pairs:,} | {a:.1f} ns | {b:.1f} ns | {b - a:+.1f} ns |")
        figs[f"pair_ns_{threads}"] = b - a
        print(lines[-1], flush=True)
    for t in tmp.glob("mp-*.trace"):
        t.unlink()

    # Trace size in full mode for a service that runs for hours: Alloc/Free records of
    # pymalloc-sized objects dominate it (issue 15's goal: 20 MB an hour).
    secs = 5 if quick else 20
    service = tmp / "service.trace"
    t0 = time.perf_counter()
    subprocess.run([python, str(REPO / "scripts/steady_service.py"), str(secs)], cwd=tmp, check=True,
                   env=dict(plain_env, LD_PRELOAD=str(SHIM), RPROF_OUTPUT=str(service)))
    wall = time.perf_counter() - t0
    mb = service.stat().st_size / 1e6
    lines += ["", f"Trace size in full mode (the defaults) for a steady service (`scripts/steady_service.py {secs}`:"
              " 2 threads, each building small dicts, strings and lists for 5 ms, then idle for 5 ms):"
              f" {mb:.2f} MB in {wall:.1f} s of wall time = **{mb / wall * 3600:.0f} MB per hour**.", ""]
    print(lines[-2], flush=True)
    figs["service_mb_h"] = mb / wall * 3600
    service.unlink()

    mb = 50 if quick else 200
    big = tmp / "big.trace"
    subprocess.run(["cargo", "run", "--quiet", "--release", "-p", "rprof-cli", "--example", "synth_trace", "--", str(big), str(mb)],
                   cwd=REPO, check=True, capture_output=True)
    size = big.stat().st_size / 1e6
    def report_time(trace):
        t0 = time.perf_counter()
        subprocess.run([str(REPORT), str(trace)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        return time.perf_counter() - t0
    big_s = median_of(lambda: report_time(big), reps)
    # One run each under /usr/bin/time for the peak RSS: the text report, and the HTML page.
    _, big_rss = report_measured(big, tmp, "-o", "/dev/null")
    html = tmp / "big.html"
    html_s, html_rss = report_measured(big, tmp, "--html", "-o", str(html))
    html_mb = html.stat().st_size / 1e6
    html.unlink()
    big.unlink()
    small = tmp / "small.trace"
    subprocess.run([sys.executable, "-c", "pass"], env=dict(plain_env, LD_PRELOAD=str(SHIM), RPROF_OUTPUT=str(small)),
                   check=True, capture_output=True)
    small_s = median_of(lambda: report_time(small), 5)
    lines += ["", f"`rprof-report` (text report to /dev/null, median of {reps}): {size:.0f} MB synthetic trace"
              f" (`synth_trace OUT {mb}`: 8 threads, 50,000 stacks, memory records on) in {big_s:.2f} s ="
              f" **{size / big_s:.0f} MB/s**; start-up on a {small.stat().st_size / 1024:.1f} KiB trace"
              f" (`python3 -c pass`, median of 5): **{small_s * 1000:.0f} ms**.",
              "", f"Peak RSS of that report: **{kib_mb(big_rss)}**; its HTML page (`--html`, the flame graph cut to"
              f" its 100,000 heaviest nodes) in **{html_s:.2f} s**, peak RSS {kib_mb(html_rss)}, {html_mb:.1f} MB"
              " (targets: under 2 s and 1 GB).", ""]
    print(*lines[-4:-1], sep="\n", flush=True)
    lines += gpu_startup(tmp, plain_env, 5 if quick else 15)
    print(*lines[-3:-1], sep="\n", flush=True)
    if LARGEST["path"]:
        page = tmp / "largest.html"
        s, rss = report_measured(LARGEST["path"], tmp, "--html", "-o", str(page))
        lines += [f"HTML report of the largest workload's trace ({LARGEST['name']}, `rprof full`,"
                  f" {LARGEST['size'] / 1e6:.1f} MB): generated in **{s:.2f} s** (peak RSS {kib_mb(rss)}),"
                  f" page **{page.stat().st_size / 1e3:.0f} KB**.", ""]
        print(lines[-2], flush=True)
        page.unlink()


def gpu_startup(tmp, plain_env, n):
    """Start-up cost of GPU profiling where there is no NVML: `python -c pass` unprofiled,
    under rprof with RPROF_GPU=off and with RPROF_GPU=auto (the default, which looks for
    libnvidia-ml.so.1), interleaved, median wall time of n rounds."""
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
        nvml = "this machine has an NVML library, so `auto` loads it"
    except OSError:
        nvml = "no NVML library on this machine, so `auto` finds none and says so in one info line"
    cmd = [sys.executable, "-c", "pass"]
    envs = {"unprofiled": plain_env,
            "RPROF_GPU=off": dict(plain_env, LD_PRELOAD=str(SHIM), RPROF_OUTPUT=str(tmp / "g-%p.trace"), RPROF_GPU="off"),
            "RPROF_GPU=auto": dict(plain_env, LD_PRELOAD=str(SHIM), RPROF_OUTPUT=str(tmp / "g-%p.trace"), RPROF_GPU="auto")}
    times = {k: [] for k in envs}
    for _ in range(n):
        for k, env in envs.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            times[k].append(time.perf_counter() - t0)
    for t in tmp.glob("g-*.trace"):
        t.unlink()
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    return [f"GPU start-up without NVML (`python3 -c pass`, {n} interleaved rounds, median wall; {nvml}):"
            f" unprofiled {med['unprofiled']:.1f} ms, rprof with `RPROF_GPU=off` {med['RPROF_GPU=off']:.1f} ms,"
            f" with `RPROF_GPU=auto` **{med['RPROF_GPU=auto']:.1f} ms** ({med['RPROF_GPU=auto'] - med['RPROF_GPU=off']:+.1f} ms"
            " for looking for NVML).", ""]


def report_measured(trace, tmp, *args):
    """(wall s, peak RSS KiB) of one rprof-report run, from /usr/bin/time."""
    rfile = tmp / ".report-rusage"
    subprocess.run(["/usr/bin/time", "-q", "-o", str(rfile), "-f", "%e %M", str(REPORT), str(trace), *args],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall, rss = rfile.read_text().split()[-2:]
    rfile.unlink()
    return float(wall), int(rss)


def kib_mb(kib):
    return f"{kib / 1024:.0f} MiB"


# ---------------------------------------------------------------- output
def first_line(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True).stdout.splitlines()[0].strip()
    except (OSError, IndexError):
        return "unknown"


def versions():
    out = []
    pip = VENV / "bin/python"
    if pip.exists():
        frozen = subprocess.run([str(pip), "-m", "pip", "freeze"], capture_output=True, text=True).stdout.lower()
        for pkg in ("scalene", "memray", "py-spy", "austin-dist", "pyinstrument"):
            m = re.search(rf"^{re.escape(pkg)}==(\S+)", frozen, re.M)
            out.append(f"{pkg} {m.group(1) if m else 'missing'}")
    for pkg in ("heaptrack", "libgoogle-perftools4"):
        v = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True, text=True).stdout
        out.append(f"{pkg} {v or 'missing'} (Debian)")
    return ", ".join(out)


def environment(python, pairs, took):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
    commit = first_line(["git", "-C", str(REPO), "describe", "--always", "--dirty"])
    env = " ".join(f"{k}={os.environ[k]}" for k in ("BENCH_QUICK", "BENCH_PAIRS", "BENCH_ONLY", "BENCH_PYTHON") if k in os.environ)
    command = " ".join(filter(None, [env, "python3 scripts/bench.py", *sys.argv[1:]]))
    return [
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC at commit {commit} with"
        f" `{command}` (`make bench`), which took {took / 60:.0f} min: {pairs} interleaved pair(s) per workload"
        " and profiler (unprofiled, then profiled; ratio = profiled / unprofiled of a pair), each profiler at"
        " its defaults apart from where its output goes.",
        "",
        f"Machine: {cpu}, {os.cpu_count()} cores (shared with other work while measured), Linux {platform.release()},"
        f" glibc {platform.libc_ver()[1]}. Python: {first_line([python, '-VV'])} ({python}; the peers run from"
        f" .venv-bench/, a venv of it). {first_line(['rustc', '--version'])}; {first_line(['gcc', '--version'])}.",
        "",
        f"Peers: {versions()}.",
    ]


def fmt_ratio(r):
    if "failed" in r and not r["ratios"]:
        return "failed"
    return f"{statistics.median(r['ratios']):.2f}x" if r["ratios"] else ""


def tables(results, profs_seen):
    main = ["### Overhead: wall-time ratio, median", "",
            "| workload | " + " | ".join(profs_seen) + " |", "|---|" + "---|" * len(profs_seen)]
    for wl, (plain, res) in results.items():
        main.append(f"| {wl} ({plain:.2f} s) | " + " | ".join(fmt_ratio(res[p]) if p in res else "–" for p in profs_seen) + " |")
    acc = error_table(results, profs_seen, "err", [
        "### CPU accuracy: error against ground truth, percentage points", "",
        "Mean over the workload's hot lines of |profile share − measured share| (max in brackets),"
        " averaged over the pairs' profiled runs; – where the profiler gives no line shares."])
    split = error_table(results, profs_seen, "split", [
        "### Python/native split: error against ground truth, percentage points", "",
        "On the workloads with a native hot line: per hot line, the native share of the line's own"
        " CPU time (native / (Python + native)) against the header's (100% for a line whose time is in"
        " C code, 0% for pure Python); mean over the lines (max in brackets), averaged over the runs."
        " py-spy and austin at their defaults, memray and the tracers do not split Python from native"
        " time."])
    detail = ["### All figures", "",
              "Wall ratio median [min–max]; peak RSS ratio (median; the largest process of the run's tree, so"
              " a profiler that runs beside the program counts itself or the program, whichever is larger);"
              " output written per second of profiled wall time.", "",
              "| workload | profiler | wall ratio | RSS ratio | output |", "|---|---|---|---|---|"]
    for wl, (_, res) in results.items():
        for p in profs_seen:
            if p not in res:
                continue
            r = res[p]
            if not r["ratios"]:
                detail.append(f"| {wl} | {p} | failed: {r.get('failed', '')} | | |")
                continue
            rss = f"{statistics.median(r['rss']):.2f}x" if r["rss"] else "?"
            kb = statistics.median(r["kbps"])
            note = f" (failed later: {r['failed'][:120]})" if "failed" in r else ""
            if r.get("retries"):
                note += f" ({r['retries']} failed start(s) retried)"
            detail.append(f"| {wl} | {p} | {statistics.median(r['ratios']):.2f}x [{min(r['ratios']):.2f}–{max(r['ratios']):.2f}]{note}"
                          f" | {rss} | {kb:.1f} KB/s |")
    return main, acc + ([""] if acc and split else []) + split, detail


def error_table(results, profs_seen, key, heading):
    """A workload × profiler table of the errors recorded under `key`: mean over the lines
    (max in brackets), averaged over the runs; empty when no profiler recorded any."""
    profs = [p for p in profs_seen if any(res.get(p, {}).get(key) for _, res in results.values())]
    if not profs:
        return []
    rows = [*heading, "", "| workload | " + " | ".join(profs) + " |", "|---|" + "---|" * len(profs)]
    for wl, (_, res) in results.items():
        cells = []
        for p in profs:
            errs = res.get(p, {}).get(key)
            if not errs:
                cells.append("–")
                continue
            mean = statistics.mean(statistics.mean(e) for e in errs)
            worst = statistics.mean(max(e) for e in errs)
            cells.append(f"{mean:.1f} ({worst:.1f})")
        if any(c != "–" for c in cells):
            rows.append(f"| {wl} | " + " | ".join(cells) + " |")
    return rows


def pct_off(got, want):
    return f"{got / MB:.1f} MB ({100 * (got - want) / want:+.1f}%)"


def mem_cells(m):
    """A profiler's memory row: kept peak, churn allocated, leak line, other lines."""
    t = m["truth"]
    if "error" in m:
        return [f"n/a: {m['error']}", "", "", ""]
    unfreed = lambda b: "" if b is None else f" ({b / MB:.1f} MB unfreed)"
    others = ", ".join(f"{k}{unfreed(b)}" for k, b in m["others"].items()) or "none"
    return [pct_off(m["peak"], t.keep_bytes), pct_off(m["allocated"], t.churn_bytes),
            ("yes" if m["leak_found"] else "no") + unfreed(m["leak_bytes"]), others]


def mem_table(results, mem_truths):
    rows = []
    for wl, t in mem_truths.items():
        rows.append(f"| {wl} | truth | line {t.keep_line}: {t.keep_bytes / MB:.1f} MB | line {t.churn_line}:"
                    f" {t.churn_bytes / MB:.1f} MB | line {t.leak_line}: {t.leak_bytes / MB:.1f} MB | none |")
        for p, r in results[wl][1].items():
            if p in MEM_PROFILERS:
                cells = mem_cells(dict(r["mem"], truth=t)) if "mem" in r else ["failed", "", "", ""]
                rows.append(f"| {wl} | {p} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return ["### Memory accuracy: against ground truth", "",
            "From each profiler's first profiled run, at its defaults: rprof samples allocations every"
            " 128 KiB on average (so a line's B bytes carry a sampling spread of about sqrt(128 KiB / B):"
            " 4% at 80 MB, 2.5% at 210 MB), Scalene by its own sampling threshold, memray records every"
            " malloc-level call but not pymalloc's objects, only its 1 MiB arenas. MB = 10^6 bytes."
            " Kept line: its peak (rprof, Scalene: `n_peak_mb`;"
            " memray: its bytes live at the run's high-water mark). Churning line: the bytes it"
            " allocated over the run (`n_malloc_mb`; memray: its allocation records' sizes). Leaking"
            " line: flagged in `leaks` (rprof, Scalene); memray has no leak detector, so: the line"
            " that holds the most bytes unfreed at exit (its `--leaks` view). Other lines: flagged"
            " as leaks elsewhere (memray: other lines holding 0.1 MB or more at exit).", "",
            "| workload | profiler | kept line: peak | churning line: allocated | leaking line found | other lines |",
            "|---|---|---|---|---|---|", *rows]


def trace_per_cpu_minute(results):
    sizes, cpus = [], []
    for wl, (_, res) in results.items():
        r = res.get("rprof cpu")
        if r and r["cpu_s"] and not wl.endswith(".c"):
            sizes += r["bytes"]
            cpus += r["cpu_s"]
    if not cpus:
        return []
    per_min = sum(sizes) / sum(cpus) * 60
    GOAL_FIGS["cpu_trace_kib_min"] = per_min / 1024
    return [f"Trace size in CPU-only mode (`RPROF_MODE=cpu`, 100 Hz), over the Python workloads above:"
            f" {sum(sizes) / 1024:.0f} KiB for {sum(cpus):.1f} CPU-s = **{per_min / 1024:.0f} KiB per CPU-minute**.", ""]


# ---------------------------------------------------------------- the speed issue's goals
# Figures other parts of the run measured, for `goals`.
GOAL_FIGS = {}
# rprof full runs per memory workload for the memory goal (each of them must be within 5 %).
MEM_RUNS = 5


def memory_runs(python, mem_workloads, tmp, n):
    """The kept line's peak error (%) in each of n runs of rprof full at its defaults, per
    memory workload ({name: (path, truth)}): the goal asks for every run, not a median."""
    errors = {}
    for name, (path, t) in mem_workloads.items():
        errs = errors[name] = []
        plain_env = {k: v for k, v in os.environ.items() if not k.startswith("RPROF_") and k != "LD_PRELOAD"}
        for _ in range(n):
            out = tmp / "memruns"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            argv, extra = PROFILERS["rprof full"][1]([python, str(path)], out)
            try:
                run_measured(argv, plain_env, extra, out)
                m = memory("rprof full", out, path, t)
            except (RuntimeError, OSError, subprocess.CalledProcessError, ValueError, KeyError) as e:
                print(f"{name}: memory run failed: {str(e)[:200]}", flush=True)
                continue
            errs.append(100 * (m["peak"] - t.keep_bytes) / t.keep_bytes)
        print(f"{name}: kept line peak error over {len(errs)} runs: {', '.join(f'{e:+.1f}%' for e in errs)}",
              flush=True)
    shutil.rmtree(tmp / "memruns", ignore_errors=True)
    return errors


def goals(results, mem_errors):
    """Each goal of the speed issue beside what this run measured, met or not."""
    def median_of_wl(p, pick):
        return {wl: statistics.median(res[p]["ratios"]) for wl, (_, res) in results.items()
                if pick(wl) and p in res and res[p]["ratios"]}
    is_py = lambda wl: wl.endswith(".py")
    rows = []
    def row(goal, target, got, met):
        verdict = "n/a" if met is None else ("met" if met else "**not met**")
        rows.append(f"| {goal} | {target} | {got} | {verdict} |")
    cpu = median_of_wl("rprof cpu", is_py)
    if cpu:
        worst = max(cpu, key=cpu.get)
        row("CPU-only, every Python workload", "≤ 1.02x", f"worst {cpu[worst]:.2f}x ({worst})",
            cpu[worst] <= 1.02)
    full = median_of_wl("rprof full", is_py)
    if full:
        m = statistics.median(full.values())
        row("full mode, median over the Python workloads", "≤ 1.05x", f"{m:.2f}x over {len(full)}", m <= 1.05)
    for wl_name, target in (("alloc_heavy.py", 1.08), ("native_alloc.c", 1.30)):
        got = median_of_wl("rprof full", lambda wl: wl.endswith("/" + wl_name))
        for wl, v in got.items():
            row(f"full mode, `{wl_name}`", f"≤ {target:.2f}x", f"{v:.2f}x", v <= target)
    if "pair_ns_1" in GOAL_FIGS:
        one = GOAL_FIGS["pair_ns_1"]
        row("malloc+free pair, 1 thread", "≤ +3 ns", f"{one:+.1f} ns", one <= 3)
    if "pair_ns_4" in GOAL_FIGS:
        # 4 threads on 2 cores: the whole run's wall per pair and thread is about twice
        # one call's cost, so "no worse per thread" is twice the 1-thread target.
        four = GOAL_FIGS["pair_ns_4"]
        row("malloc+free pair, 4 threads (2 cores: wall per pair and thread, ~2 calls' time)",
            "≤ +6 ns", f"{four:+.1f} ns", four <= 6)
    for wl, errs in mem_errors.items():
        if errs:
            worst = max(errs, key=abs)
            row(f"kept line's peak in each of {len(errs)} runs, `{wl}`", "within 5 %",
                ", ".join(f"{e:+.1f}%" for e in errs), abs(worst) <= 5)
    if "cpu_trace_kib_min" in GOAL_FIGS:
        v = GOAL_FIGS["cpu_trace_kib_min"]
        row("trace, CPU-only mode", "≤ 1 MB per CPU-minute", f"{v:.0f} KiB per CPU-minute", v * 1024 <= 1e6)
    if "service_mb_h" in GOAL_FIGS:
        v = GOAL_FIGS["service_mb_h"]
        row("trace, steady service in full mode", "≤ 20 MB per hour", f"{v:.0f} MB per hour", v <= 20)
    if not rows:
        return []
    return ["### The speed issue's goals", "",
            "Each goal beside this run's figure (ratios: medians of the interleaved pairs above).", "",
            "| goal | target | measured | verdict |", "|---|---|---|---|", *rows, ""]


def svg_chart(results, profs_seen):
    """Horizontal bars, one group per workload, log-scale overhead ratio."""
    colors = ["#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#9467bd",
              "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
    color = {p: colors[i % len(colors)] for i, p in enumerate(profs_seen)}
    rows = []
    for wl, (_, res) in results.items():
        rows.append(("head", wl, None))
        for p in profs_seen:
            r = res.get(p)
            if r and r["ratios"]:
                rows.append(("bar", p, statistics.median(r["ratios"])))
    top = max([v for k, _, v in rows if k == "bar"] + [2])
    hi = 10 ** math.ceil(math.log10(top))
    left, width, bh = 260, 560, 14
    x = lambda v: left + width * math.log10(max(v, 1)) / math.log10(hi)
    h = 40 + sum(bh + 4 if k == "bar" else 22 for k, _, _ in rows) + 20
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 80}" height="{h}" font-family="sans-serif" font-size="11">',
         f'<rect width="100%" height="100%" fill="white"/>',
         f'<text x="10" y="18" font-size="14" font-weight="bold">Profiler overhead: profiled / unprofiled wall time (median, log scale)</text>']
    ticks = [t for t in (1, 1.5, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000) if t <= hi]
    for t in ticks:
        o.append(f'<line x1="{x(t):.1f}" y1="30" x2="{x(t):.1f}" y2="{h - 20}" stroke="#ddd"/>'
                 f'<text x="{x(t):.1f}" y="{h - 6}" text-anchor="middle" fill="#555">{t}x</text>')
    y = 40
    for kind, label, v in rows:
        if kind == "head":
            o.append(f'<text x="10" y="{y + 14}" font-weight="bold">{label}</text>')
            y += 22
            continue
        bold = ' font-weight="bold"' if label.startswith("rprof") else ""
        o.append(f'<text x="{left - 6}" y="{y + 11}" text-anchor="end"{bold}>{label}</text>'
                 f'<rect x="{left}" y="{y}" width="{max(x(v) - left, 1):.1f}" height="{bh}" fill="{color[label]}"/>'
                 f'<text x="{x(v) + 4:.1f}" y="{y + 11}">{v:.2f}x</text>')
        y += bh + 4
    o.append("</svg>")
    SVG.parent.mkdir(exist_ok=True)
    SVG.write_text("\n".join(o) + "\n")


def write_benchmarks(lines):
    path = REPO / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n\nWritten by `make bench` (scripts/bench.py).\n\n"
    if BEGIN not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    path.write_text(head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + rest.split(END, 1)[1])


def main():
    t_start = time.time()
    if not SHIM.exists():
        sys.exit(f"{SHIM} is missing: run `make build` first")
    quick = os.environ.get("BENCH_QUICK") == "1"
    pairs = int(os.environ.get("BENCH_PAIRS") or (1 if quick else 3))
    only = [s for s in os.environ.get("BENCH_ONLY", "").split(",") if s]
    prof_only = [t for t in only if any(t in p for p in PROFILERS)]
    wl_only = [t for t in only if t not in prof_only]
    # The interpreter itself, not a launcher such as pyenv's shim script, which would run
    # (and be profiled) on every call.
    default_py = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions/3.11.7/bin/python3"
    python = os.environ.get("BENCH_PYTHON") or (str(default_py) if default_py.exists() else
                                                first_line(["python3", "-c", "import sys; print(sys.executable)"]))
    skipped = {p: why for p in PROFILERS if (why := available(p))}
    for p, why in skipped.items():
        print(f"skipping {p}: {why}", flush=True)
    results, failed, mem_truths, no_cpu_truth, mem_workloads = {}, [], {}, [], {}
    with tempfile.TemporaryDirectory(prefix="rprof-bench-") as tmp:
        tmp = Path(tmp)
        for name, argv, path in workloads(python, tmp):
            kind = "c" if path.suffix == ".c" else "py"
            profs = [p for p, (kinds, _) in PROFILERS.items() if kind in kinds.split() and p not in skipped]
            if wl_only and not any(t in name for t in wl_only):
                continue
            if prof_only:
                profs = [p for p in profs if any(t in p for t in prof_only)]
            if not profs:
                continue
            truth_lines = None
            if kind == "py":
                try:
                    truth_lines = [h for h in truth.ground_truth(str(path), python) if h.pct > 0]
                except truth.TruthError as e:
                    print(f"{name}: no ground truth ({e})", flush=True)
                    no_cpu_truth.append(f"{name} ({str(e).replace(str(path), path.name)})")
            mem_truth = None
            if path.name in MEM_TRUTH and any(p in MEM_PROFILERS for p in profs):
                try:
                    mem_truth = mem_truths[name] = MEM_TRUTH[path.name](path, python)
                    mem_workloads[name] = (path, mem_truth)
                except memory_truth.TruthError as e:
                    print(f"{name}: no memory truth ({e})", flush=True)
            print(f"{name}: {', '.join(profs)}", flush=True)
            res = measure(name, argv, profs, pairs, tmp, truth_lines, mem_truth, path)
            plains = [w for r in res.values() for w in r["plain"]]
            results[name] = (statistics.median(plains) if plains else float("nan"), res)
            for p, r in res.items():
                err = f"  err {statistics.mean(statistics.mean(e) for e in r['err']):.1f} pts" if r["err"] else ""
                if r["split"]:
                    err += f"  split err {statistics.mean(statistics.mean(e) for e in r['split']):.1f} pts"
                print(f"  {p:16s} {fmt_ratio(r):>8s}{err}  {r.get('failed', '')}", flush=True)
                if "mem" in r:
                    print(f"  {'':16s} memory: {' | '.join(mem_cells(dict(r['mem'], truth=mem_truth)))}", flush=True)
                if "failed" in r:
                    failed.append(f"{name} {p}")
        profs_seen = [p for p in PROFILERS if any(p in res for _, res in results.values())]
        main_t, acc_t, detail_t = tables(results, profs_seen)
        if acc_t and no_cpu_truth:
            acc_t += ["", "No CPU truth: " + "; ".join(no_cpu_truth) + "."]
        mem_t = mem_table(results, mem_truths)
        extra = []
        if not only:
            try:
                rprof_figures(tmp, quick, extra, python, GOAL_FIGS)
            except (subprocess.CalledProcessError, OSError) as e:
                extra += [f"rprof-only figures failed: {e}", ""]
                failed.append("rprof-only figures")
        extra += trace_per_cpu_minute(results)
        mem_errors = memory_runs(python, mem_workloads, tmp, 1 if quick else MEM_RUNS) if not only or any(
            "rprof full" in res for _, res in results.values()) else {}
        goal_t = goals(results, mem_errors)
    svg_chart(results, profs_seen)
    notes = [f"Not run: {p} ({why})." for p, why in skipped.items()]
    c_note = (f"`native_alloc.c` runs as `native_alloc {' '.join(C_ARGS)}` (1/10 of its work) for every profiler"
              f" but gperftools' heap profiler, which records every call and runs `native_alloc {' '.join(C_ARGS_HEAP)}`"
              " against an unprofiled run of the same size; the Python-only peers do not apply to it, and heaptrack"
              " and gperftools are run on it only.")
    lines = [*environment(python, pairs, time.time() - t_start), "", *notes, c_note, "",
             f"![overhead chart]({SVG.relative_to(REPO)})", "",
             *goal_t, *main_t, "", *acc_t, "", *mem_t, "", *extra, *detail_t]
    write_benchmarks(lines)
    print("\n".join(goal_t + main_t + [""] + acc_t + [""] + mem_t + [""] + extra))
    print(f"wrote {REPO / 'BENCHMARKS.md'} and {SVG} in {(time.time() - t_start) / 60:.1f} min")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)


if __name__ == "__main__":
    main()
