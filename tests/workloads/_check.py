"""`--check` mode shared by the workloads in this directory.

Measures the ground truth the way ../shared/workloads do: each hot part runs alone,
timed with time.process_time, the parts interleaved `reps` times.  Each part's median
CPU time is printed as a share of the whole run's CPU, `  lineNN(marker)  cpu-share
XX.X%`, where NN is the line carrying `# MARKER`: the whole run being the parts plus
what the process spent before them (interpreter start-up, imports, set-up), which a
normal run spends too and a profile counts.  That is ~3% of these ~1.5 s workloads
with an interpreter whose site-packages run code at start-up.
tests/truth.py parses this output and cross-checks NN against the file's TRUTH lines.

`Meter` measures the same shares inside a normal run (each part on its own thread's CPU
clock, the whole on the process's), so that a profiled run carries its own truth: a
separate --check run on a shared machine can see other load than the profiled run did.
"""
import threading
import time


def marker_line(path, marker):
    lines = [no for no, text in enumerate(open(path), 1) if text.rstrip().endswith("# " + marker)]
    if len(lines) != 1:
        raise SystemExit(f"{path}: marker {marker!r} found on lines {lines}, expected exactly one")
    return lines[0]


def share_line(label, seconds, total):
    """One `  lineNN(name)  cpu-share XX.X%` line, the form tests/truth.py reads."""
    return f"  {label:24s} cpu-share {100 * seconds / total:5.1f}%"


def print_shares(path, total, cpu):
    """cpu: {marker: seconds}; prints each as a share of `total` CPU seconds."""
    for marker, seconds in cpu.items():
        print(share_line(f"line{marker_line(path, marker)}({marker})", seconds, total))


class Meter:
    """Times the parts of a normal run; `report` prints their shares as --check does."""

    def __init__(self, path):
        self.path, self.cpu, self.lock = path, {}, threading.Lock()

    def part(self, marker, run, *args):
        c0 = time.thread_time()
        result = run(*args)
        with self.lock:
            self.cpu[marker] = self.cpu.get(marker, 0.0) + time.thread_time() - c0
        return result

    def report(self):
        total = time.process_time()
        print(f"in-run total cpu {total:.3f}s")
        print_shares(self.path, total, self.cpu)


def check(path, parts, reps=3):
    """parts: [(marker, zero-argument callable running that part)]"""
    before = time.process_time()
    cpu = {marker: [] for marker, _ in parts}
    for _ in range(reps):
        for marker, run in parts:
            c0 = time.process_time()
            run()
            cpu[marker].append(time.process_time() - c0)
    med = {m: sorted(v)[len(v) // 2] for m, v in cpu.items()}
    total = before + sum(med.values())
    print(f"total cpu {total:.3f}s, of which {before:.3f}s before the parts")
    print_shares(path, total, med)
