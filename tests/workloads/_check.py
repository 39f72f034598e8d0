"""`--check` mode shared by the workloads in this directory.

Measures the ground truth the way ../shared/workloads do: each hot part runs alone,
timed with time.process_time, the parts interleaved `reps` times.  Each part's median
CPU time is printed as a share of the whole run's CPU, `  lineNN(marker)  cpu-share
XX.X%`, where NN is the line carrying `# MARKER`: the whole run being the parts plus
what the process spent before them (interpreter start-up, imports, set-up), which a
normal run spends too and a profile counts.  That is ~3% of these ~1.5 s workloads
with an interpreter whose site-packages run code at start-up.
tests/truth.py parses this output and cross-checks NN against the file's TRUTH lines.
"""
import time


def marker_line(path, marker):
    lines = [no for no, text in enumerate(open(path), 1) if text.rstrip().endswith("# " + marker)]
    if len(lines) != 1:
        raise SystemExit(f"{path}: marker {marker!r} found on lines {lines}, expected exactly one")
    return lines[0]


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
    for marker, _ in parts:
        label = f"line{marker_line(path, marker)}({marker})"
        print(f"  {label:24s} cpu-share {100 * med[marker] / total:5.1f}%")
