#!/usr/bin/env python3
"""Overhead of the shim at its default settings: for each workload (ours, and
../shared's when present), interleaved pairs of runs, unprofiled then under the shim;
prints the median/min/max of the profiled/unprofiled wall-time ratio per workload and
writes the table into BENCHMARKS.md between the bench markers.

    python3 scripts/bench.py          5 pairs per workload (`make bench`)
    BENCH_QUICK=1 ...                 1 pair
    BENCH_PYTHON=/path/python3 ...    the interpreter for the Python workloads (python3's)
"""
import datetime
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHIM = REPO / "target/release/librprof.so"
SHARED = Path(os.environ.get("RPROF_SHARED_WORKLOADS") or REPO.parent / "shared/workloads")
OWN = ["cpu_split.py", "native_mix.py", "threads3.py", "demo.py", "alloc_api.c"]
SHARED_NAMES = ["cpu_python.py", "native_split.py", "threads.py", "alloc_heavy.py", "seed_techniques.py", "native_alloc.c"]
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def workloads(python, build_dir):
    found = [("own", REPO / "tests/workloads" / n) for n in OWN]
    if SHARED.is_dir():
        found += [("shared", SHARED / n) for n in SHARED_NAMES]
    for origin, path in found:
        if path.suffix == ".c":
            exe = build_dir / path.stem
            subprocess.run(["gcc", "-O2", "-g", "-pthread", "-fno-omit-frame-pointer", "-o", exe, path], check=True)
            yield f"{origin}/{path.name}", [str(exe)]
        else:
            yield f"{origin}/{path.name}", [python, str(path)]


def timed(argv, env):
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {proc.returncode}: {proc.stderr[-500:]}")
    return wall


def measure(argv, pairs, trace_dir):
    plain_env = {k: v for k, v in os.environ.items() if not k.startswith("RPROF_")}
    shim_env = dict(plain_env, LD_PRELOAD=str(SHIM), RPROF_OUTPUT=str(trace_dir / "bench-%p.trace"))
    plain, ratios = [], []
    for _ in range(pairs):
        plain.append(timed(argv, plain_env))
        ratios.append(timed(argv, shim_env) / plain[-1])
        for trace in trace_dir.glob("bench-*.trace"):
            trace.unlink()
    return statistics.median(plain), statistics.median(ratios), min(ratios), max(ratios)


def first_line(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True).stdout.splitlines()[0].strip()
    except (OSError, IndexError):
        return "unknown"


def environment(python, pairs):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
    commit = first_line(["git", "-C", str(REPO), "describe", "--always", "--dirty"])
    env = " ".join(f"{k}={os.environ[k]}" for k in ("BENCH_QUICK", "BENCH_PYTHON") if k in os.environ)
    command = " ".join(filter(None, [env, "python3 scripts/bench.py", *sys.argv[1:]]))
    return [
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC at commit {commit}"
        f" with `{command}`: {pairs} interleaved pair(s) per workload (unprofiled, then profiled with"
        " the shim at its default settings, no RPROF_* variable set); ratio = profiled / unprofiled"
        " wall time of a pair.",
        "",
        f"Machine: {cpu}, {os.cpu_count()} cores, Linux {platform.release()}, glibc {platform.libc_ver()[1]}."
        f" Python workloads: {first_line([python, '-VV'])} ({python})."
        f" {first_line(['rustc', '--version'])}; {first_line(['gcc', '--version'])}.",
    ]


def write_benchmarks(lines):
    path = REPO / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n\nWritten by `make bench` (scripts/bench.py).\n\n"
    if BEGIN not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    path.write_text(head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + rest.split(END, 1)[1])


def main():
    if not SHIM.exists():
        sys.exit(f"{SHIM} is missing: run `make build` first")
    pairs = 1 if os.environ.get("BENCH_QUICK") == "1" else 5
    # The interpreter itself, not a launcher such as pyenv's shim script, which would run
    # (and be profiled) on every call.
    python = os.environ.get("BENCH_PYTHON") or first_line(["python3", "-c", "import sys; print(sys.executable)"])
    header = ["| workload | unprofiled wall (median) | ratio median | min | max |", "|---|---|---|---|---|"]
    print("\n".join(header))
    rows, failed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, argv in workloads(python, tmp):
            try:
                plain, med, lo, hi = measure(argv, pairs, tmp)
                rows.append(f"| {name} | {plain:.2f} s | {med:.2f}x | {lo:.2f}x | {hi:.2f}x |")
            except RuntimeError as e:
                failed.append(name)
                rows.append(f"| {name} | failed: {e} | | | |".replace("\n", " "))
            print(rows[-1], flush=True)
    write_benchmarks([*environment(python, pairs), "", *header, *rows])
    print(f"wrote the table into {REPO / 'BENCHMARKS.md'}")
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
