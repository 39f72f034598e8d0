"""The ground-truth reader: the shared workloads' prose headers, ours, and loud failure
on anything it cannot read (a silently empty truth would pass every accuracy test)."""
import subprocess
import sys

import pytest

import truth
from harness import OWN, SHARED, NO_SHARED

# (lineno, header share, kind, native share of the line, thread), as the headers say.
SHARED_HEADERS = {
    "cpu_python.py": [(29, 75, "python", 0, None), (36, 25, "python", 0, None)],
    "native_split.py": [(30, 50, "native", 100, None), (36, 50, "python", 0, None)],
    "threads.py": [(26, 50, "python", 0, "w-fib"), (32, 30, "python", 0, "w-str"),
                   (38, 20, "python", 0, "w-dict"), (50, 0, "python", 0, None)],
    # LINE B's quote paraphrases its code (`base` for `rounds_base + j`): its marker anchors it;
    # lines 36 and 46 state no kind; line 46's share is a range, ~2-3%.
    "alloc_heavy.py": [(36, 10, None, None, None), (41, 31, "native", 100, None),
                       (46, 2.5, None, None, None), (50, 56, "python", 0, None)],
}


def summary(lines):
    return [(h.lineno, h.header_pct, h.kind, h.native_pct, h.thread) for h in lines]


@NO_SHARED
@pytest.mark.parametrize("name", SHARED_HEADERS)
def test_shared_headers(name):
    assert summary(truth.parse_header(SHARED / name)) == SHARED_HEADERS[name]


@pytest.mark.parametrize("name", ["cpu_split.py", "native_mix.py", "threads3.py"])
def test_own_headers(name):
    lines = truth.parse_header(OWN / name)
    assert sum(h.header_pct for h in lines) == 100


PROSE = """\
#!/usr/bin/env python3
# GROUND TRUTH (verify with --check)
#   All CPU is Python (interpreter) time, except where a line says otherwise.
#     line 10 `x = sum(range(10))`      ~60% of CPU
#     line 11 `y = sorted(range(10))`   ~40% of CPU, ~100% of
#            it NATIVE (only ~2 Python bytecodes)
#   everything else (line 12) < 1%.
import sys

x = sum(range(10))
y = sorted(range(10))
if "--check" in sys.argv:
    print("  line10(a)  wall-share 60.0%  cpu-share 61.0%")
    print("  line11(b)  wall-share 40.0%  cpu-share 39.0%")
"""


def write(tmp_path, text):
    path = tmp_path / "workload.py"
    path.write_text(text)
    return path


def test_prose_header_and_check(tmp_path):
    path = write(tmp_path, PROSE)
    assert summary(truth.parse_header(path)) == [(10, 60, "python", 0, None), (11, 40, "native", 100, None)]
    assert [(h.lineno, h.measured_pct) for h in truth.ground_truth(path, sys.executable)] == [(10, 61), (11, 39)]


def test_in_run_shares_win_over_check(tmp_path):
    """A profiled run that printed its own shares is held to those; --check is not run
    (the file's --check here would say 61/39)."""
    path = write(tmp_path, PROSE)
    out = "result 42\nin-run total cpu 1.0s\n  line10(a)  cpu-share 58.5%\n  line11(b)  cpu-share 41.5%\n"
    assert [(h.lineno, h.measured_pct, h.measured_by) for h in truth.ground_truth(path, sys.executable, out)] \
        == [(10, 58.5, "in-run"), (11, 41.5, "in-run")]
    with pytest.raises(truth.TruthError):
        truth.ground_truth(path, sys.executable, out.replace("line11(b)", "line12(b)"))


@pytest.mark.parametrize(("old", "new"), [
    ("line 11 `y", "line 10 `y"),                   # line number that does not hold the quoted code
    ("~60% of CPU", "most of the CPU"),             # no share
    ("`x = sum(range(10))`", "x = sum(range(10))"),  # no quoted code
    ("#     line", "#     Line"),                   # no entries at all
], ids=["wrong-line", "no-share", "no-code", "no-entries"])
def test_unreadable_prose_header_fails(tmp_path, old, new):
    assert old in PROSE
    with pytest.raises(truth.TruthError):
        truth.parse_header(write(tmp_path, PROSE.replace(old, new)))


def test_prose_line_without_kind(tmp_path):
    """A line whose entry and header state no kind keeps its share, with kind unknown."""
    path = write(tmp_path, PROSE.replace("  All CPU is Python (interpreter) time", ""))
    assert summary(truth.parse_header(path))[0] == (10, 60, None, None, None)


# alloc_heavy.py's style: entries anchored by the marker their code line carries (the
# quote may paraphrase), kinds in words or unstated, a share range, and --check's
# `line NN X: cpu-share` labels.
MARKED = """\
#!/usr/bin/env python3
# GROUND TRUTH
#   line 8 LINE A `a = list(range(1000))`   kept ~1 MB, CPU ~2-3%
#   line 9 LINE B `b = [i * 2 for i in a]`  pure Python, CPU ~60%
#   line 10 `c = sorted(b, reverse=True)`   CPU ~37% (all in C sort code)
import sys

a = list(range(2000))   # LINE A: paraphrased above
b = [i + i for i in a]  # LINE B: paraphrased above
c = sorted(b, reverse=True)
if "--check" in sys.argv:
    print("  line 8 A: cpu-share   2.0%")
    print("  line 9 B: cpu-share  60.5%")
    print("  line 10 C: cpu-share  37.5%")
"""


def test_marked_header_and_check(tmp_path):
    path = write(tmp_path, MARKED)
    assert summary(truth.parse_header(path)) == [(8, 2.5, None, None, None), (9, 60, "python", 0, None),
                                                 (10, 37, "native", 100, None)]
    assert [(h.lineno, h.measured_pct) for h in truth.ground_truth(path, sys.executable)] \
        == [(8, 2.0), (9, 60.5), (10, 37.5)]


def test_marker_missing_from_its_line_fails(tmp_path):
    with pytest.raises(truth.TruthError, match="names LINE B"):
        truth.parse_header(write(tmp_path, MARKED.replace("# LINE B: paraphrased above", "")))


@pytest.mark.parametrize(("old", "new"), [
    ("line11(b)", "line12(b)"),        # measures a line the header does not name
    ('    print("  line11', '    0 and print("  line11'),   # leaves a hot line unmeasured
    ("cpu-share", "share"),            # prints nothing parseable
], ids=["unknown-label", "unmeasured-line", "no-shares"])
def test_check_disagreeing_with_header_fails(tmp_path, old, new):
    assert old in PROSE
    with pytest.raises(truth.TruthError):
        truth.ground_truth(write(tmp_path, PROSE.replace(old, new)), sys.executable)


@pytest.mark.parametrize("bad", ["# TRUTH line=10 cpu=60", "# TRUTH line=10 cpu=sixty kind=python",
                                 "# TRUTH line=10 cpu=60 kind=rust"], ids=["no-kind", "bad-share", "bad-kind"])
def test_unreadable_truth_tag_fails(tmp_path, bad):
    with pytest.raises(truth.TruthError):
        truth.parse_header(write(tmp_path, bad + "\nx = 1\n"))


TWO_PARTS = """\
import time
def spin(s):
    end = time.thread_time() + s
    while time.thread_time() < end: pass
def a():
    spin(0.3)
def b():
    spin(0.1)
PARTS = (a, b)          # a reference taken at import time: it must be the timed one too
def main():
    for f in PARTS: f()
    a()
"""


def test_inrun_times_the_lines_functions(tmp_path):
    """tests/inrun.py: a() runs 0.6 s, b() 0.1 s, of ~0.7 s (+ start-up) in all."""
    path = write(tmp_path, TWO_PARTS)
    out = subprocess.run([sys.executable, OWN.parent / "inrun.py", path, "6,8"], capture_output=True,
                         text=True, check=True).stdout
    shares = truth.shares_in(out)
    assert list(shares) == ["line6(a)", "line8(b)"], out
    assert 75 < shares["line6(a)"] <= 86 and 12 < shares["line8(b)"] <= 15, out


@pytest.mark.parametrize(("lines", "why"), [("3,4", "share a function"), ("6,13", "not inside a top-level function")],
                         ids=["same-function", "outside-a-function"])
def test_inrun_refuses_lines_it_cannot_time_apart(tmp_path, lines, why):
    path = write(tmp_path, TWO_PARTS + "x = 1\n")
    proc = subprocess.run([sys.executable, OWN.parent / "inrun.py", path, lines], capture_output=True, text=True)
    assert proc.returncode != 0 and why in proc.stderr, proc
