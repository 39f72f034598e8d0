#!/usr/bin/env python3
"""The long soak behind `make stress`: runs each reliability scenario again and again
under the shim, beside the same program without it, until the time is up, and prints
scenarios run, iterations, crashes, hangs and records lost (all must be 0).

- crash: exit status or output differs from the unprofiled run's, or a trace the report
  cannot read;
- hang: a run past its time limit;
- records lost: samples the shim took but that are not in the trace (from each trace's
  End record);
- dropped: samples the shim could not queue (the queue was full: the writer had no CPU
  for a while); they are counted in the trace and the report says so, so they are shown
  apart, not lost.

Usage: scripts/stress.py [SECONDS] (default 600; STRESS_SECONDS also sets it)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from harness import PYTHONS, REPORT, SHIM, build_c  # noqa: E402

PY = PYTHONS["pyenv-3.11.7"]
LIMIT = 60

THREADS_PY = r"""
import threading, os
def work(k):
    data = []
    for i in range(20000):
        data.append(bytes(i % 4096))
        if len(data) > 500:
            data = data[250:]
    return len(data)
ts = [threading.Thread(target=work, args=(k,)) for k in range(6)]
[t.start() for t in ts]; [t.join() for t in ts]
pid = os.fork()
if pid == 0:
    work(0); os._exit(7)
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def scenarios():
    ending, storm = build_c("ending"), build_c("storm")
    out = [(f"ending-{how}", [ending, how, "60"]) for how in
           ("exit", "_exit", "segv", "rawsegv", "abort", "kill", "exec")]
    out.append(("storm", [storm, "3000"]))
    for name, py in PYTHONS.items():
        out.append((f"python-threads-fork-{name}", [py, "-c", THREADS_PY]))
    return out


def run(argv, cwd, env):
    try:
        p = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, timeout=LIMIT)
        return p.returncode, sorted(p.stdout.splitlines())
    except subprocess.TimeoutExpired:
        return "hang", None


def lost_in(trace):
    r = subprocess.run([str(REPORT), str(trace), "--json", "-o", "/dev/stdout"], capture_output=True,
                       text=True, timeout=LIMIT)
    if r.returncode != 0:
        return None
    meta = json.loads(r.stdout)["rprof"]
    if meta["samples_taken"] is None:
        return 0, 0
    written = meta["samples"] + meta["profiler_samples"]
    return max(0, meta["samples_taken"] - written), meta["dropped"] or 0


def main():
    seconds = float(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("STRESS_SECONDS", 600))
    for p in (SHIM, REPORT):
        if not p.exists():
            sys.exit(f"stress: {p} is missing (run make build)")
    plan = scenarios()
    stats = {name: {"iterations": 0, "crashes": 0, "hangs": 0, "lost": 0, "dropped": 0, "traces": 0} for name, _ in plan}
    base = {k: v for k, v in os.environ.items() if not k.startswith("RPROF_")}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name, argv in plan:
            if time.monotonic() >= deadline:
                break
            s = stats[name]
            with tempfile.TemporaryDirectory() as d:
                want = run(argv, d, base)
                env = dict(base, LD_PRELOAD=str(SHIM), RPROF_OUTPUT=f"{d}/rprof-%p.trace", RPROF_CPU_HZ="1000")
                got = run(argv, d, env)
                s["iterations"] += 1
                if got[0] == "hang":
                    s["hangs"] += 1
                    print(f"stress: {name}: hang", flush=True)
                    continue
                time.sleep(0.1)            # a crashed program's writer finishing its drain
                if got != want:
                    s["crashes"] += 1
                    print(f"stress: {name}: {got} != {want}", flush=True)
                for trace in Path(d).glob("rprof-*.trace"):
                    s["traces"] += 1
                    counts = lost_in(trace)
                    if counts is None:
                        s["crashes"] += 1
                        kept = Path(tempfile.gettempdir()) / f"stress-unreadable-{trace.name}"
                        shutil.copy(trace, kept)
                        print(f"stress: {name}: unreadable trace kept at {kept}", flush=True)
                    else:
                        s["lost"] += counts[0]
                        s["dropped"] += counts[1]
    cols = ("iterations", "traces", "crashes", "hangs", "lost", "dropped")
    print(f"\n{'scenario':34}" + "".join(f"{c:>11}" for c in cols))
    for name, s in stats.items():
        print(f"{name:34}" + "".join(f"{s[c]:>11}" for c in cols))
    total = {k: sum(s[k] for s in stats.values()) for k in cols}
    print(f"\nscenarios run: {len(stats)}, iterations: {total['iterations']}, crashes: {total['crashes']}, "
          f"hangs: {total['hangs']}, records lost: {total['lost']} (dropped, counted in the traces: "
          f"{total['dropped']})")
    sys.exit(1 if total["crashes"] or total["hangs"] or total["lost"] else 0)


if __name__ == "__main__":
    main()
