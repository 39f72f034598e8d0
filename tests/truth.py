#!/usr/bin/env python3
"""Ground truth of the accuracy workloads: which lines are hot, their share of CPU, and
whether their time is Python or native.

Two header styles are read:
  * our workloads (tests/workloads/): `# TRUTH line=17 cpu=70 kind=python [thread=NAME]`;
  * the shared ones (../shared/workloads/): prose, e.g.
      `#     line 29 `for i in range(n): s += str(i)`   ~75% of CPU  (Python)`;
    a share may be a range (`CPU ~2-3%`: its middle), and a line whose header states
    no kind has kind None (its CPU share is truth, its native fraction unknown).
The header's shares are approximate; the shares used as truth are the ones the
workload measures with the interpreter under test: in the profiled run itself when the
workload prints them there (ours do), else in a separate `--check` run.  The kind (and
so the expected native fraction of a line) comes from the header.  Anything that cannot
be parsed or that disagrees with the file raises TruthError: a silently empty truth
would make every accuracy test pass.

    python3 tests/truth.py WORKLOAD [PYTHON]    prints the header and measured truth
"""
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass, replace
from typing import Optional


class TruthError(Exception):
    pass


@dataclass(frozen=True)
class HotLine:
    lineno: int
    header_pct: float            # share of total CPU stated by the header
    kind: Optional[str]          # "python", "native", or None: the header does not say
    native_pct: Optional[float]  # share of this line's own CPU that is native (None: unknown)
    thread: Optional[str] = None
    measured_pct: Optional[float] = None   # share measured (None: not measured)
    measured_by: str = "--check"           # "--check", or "in-run" (the profiled run)

    @property
    def pct(self):
        """The share the profile is held to: measured when the workload measures the line."""
        return self.header_pct if self.measured_pct is None else self.measured_pct


def header_comment(path):
    """The leading comment block, as (line number, text after '#') pairs."""
    out = []
    for no, line in enumerate(open(path), 1):
        if not line.startswith("#"):
            break
        out.append((no, line[1:].rstrip("\n")))
    return out


def parse_header(path):
    header = header_comment(path)
    tagged = [text for _, text in header if text.startswith(" TRUTH ")]
    lines = parse_tagged(path, tagged) if tagged else parse_prose(path, header)
    if not lines:
        raise TruthError(f"{path}: no ground-truth lines found in the header")
    if len({h.lineno for h in lines}) != len(lines):
        raise TruthError(f"{path}: a line appears twice in the ground truth")
    return lines


def parse_tagged(path, tagged):
    lines = []
    for text in tagged:
        fields = dict(f.split("=", 1) for f in text.split()[1:] if "=" in f)
        try:
            kind = fields["kind"]
            if kind not in ("python", "native"):
                raise ValueError(kind)
            lines.append(HotLine(int(fields["line"]), float(fields["cpu"]), kind,
                                 100.0 if kind == "native" else 0.0, fields.get("thread")))
        except (KeyError, ValueError) as e:
            raise TruthError(f"{path}: bad TRUTH line {text.strip()!r}: {e!r}") from None
    return lines


ENTRY = re.compile(r"^(\s+)line (\d+)\b(.*)$")
MARKER = re.compile(r"^\s*(LINE \w+)\b")
SHARE = re.compile(r"~(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?%")   # ~NN% or a range, ~NN-MM%
LINE_KIND = re.compile(r"~(\d+)% of (?:it )?(native|python)\b", re.I)
PAREN_KIND = re.compile(r"\((python|native)\)", re.I)
WORD_KIND = re.compile(r"\b(?:pure (?P<python>Python)|all in (?P<native>C|native)\b)", re.I)
HEADER_KIND = re.compile(r"\ball (?:CPU is|of it) (python|native)\b", re.I)
THREAD = re.compile(r'\(thread "([^"]+)"\)')


def parse_prose(path, header):
    """Entries are `line NN ...` comment lines plus their deeper-indented continuation
    lines; each must be anchored to its line (check_anchor) and give a `~NN%` share.  Its kind is its own (`~NN% of it native`, `(Python)`, `pure Python`,
    `all in C`), else the header's `all CPU is X`, else None."""
    source = open(path).read().splitlines()
    whole = " ".join(text for _, text in header)
    default_kind = HEADER_KIND.search(whole)
    entries, cur = [], None
    for _, text in header:
        m = ENTRY.match(text)
        if m:
            cur = [int(m.group(2)), len(m.group(1)), m.group(3)]
            entries.append(cur)
        elif cur and text.strip() and len(text) - len(text.lstrip()) > cur[1]:
            cur[2] += " " + text.strip()
        else:
            cur = None
    lines = []
    for lineno, _, body in entries:
        where = f"{path}: header entry for line {lineno}"
        check_anchor(where, body, source[lineno - 1] if lineno <= len(source) else "past the end of the file")
        body = re.sub(r"`[^`]*`", "", body)
        share = SHARE.search(body)
        if not share:
            raise TruthError(f"{where}: no ~NN% share in {body!r}")
        pct = statistics.mean(float(g) for g in share.groups() if g)
        thread = THREAD.search(body)
        lines.append(HotLine(lineno, pct, *line_kind(body, default_kind), thread and thread.group(1)))
    return lines


def check_anchor(where, body, actual):
    """An entry's line must be the code it describes: the line carries the marker the
    entry names (`line 41 LINE B ...` -> `# LINE B:` on line 41; its quote may then
    paraphrase the code), else it holds the entry's quoted code (`...` for elisions)."""
    if m := MARKER.match(body):
        if f"# {m.group(1)}:" not in actual:
            raise TruthError(f"{where}: names {m.group(1)}, but that line is {actual!r}")
        return
    code = re.findall(r"`([^`]+)`", body)
    if not code:
        raise TruthError(f"{where}: no `code` quoted")
    if not all(part.strip() in actual for part in code[0].split("...")):
        raise TruthError(f"{where}: quotes `{code[0]}`, but that line is {actual!r}")


def line_kind(body, default_kind):
    """(kind, native share of the line) an entry states, or the header's default, or
    (None, None) where neither says."""
    if m := LINE_KIND.search(body):
        kind = m.group(2).lower()
        return kind, float(m.group(1)) if kind == "native" else 100 - float(m.group(1))
    if m := WORD_KIND.search(body):
        kind = "python" if m.group("python") else "native"
    elif m := PAREN_KIND.search(body) or default_kind:
        kind = m.group(1).lower()
    else:
        return None, None
    return kind, 100.0 if kind == "native" else 0.0


# `  LABEL ... cpu-share NN%`; LABEL is a word (`line29(str)`, `w-fib`) or `line NN`.
CHECK_SHARE = re.compile(r"^\s+(line \d+\b|\S+)\s.*\bcpu-share\s+(\d+(?:\.\d+)?)%", re.M)


def shares_in(output):
    """The {label: cpu share} lines a workload printed (none: {}); `line NN` is read as
    `lineNN`."""
    return {label.replace(" ", ""): float(pct) for label, pct in CHECK_SHARE.findall(output)}


def measure(path, python, timeout=300):
    """Runs `python path --check`; returns its {label: cpu share}."""
    proc = subprocess.run([python, path, "--check"], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise TruthError(f"{python} {path} --check exited {proc.returncode}: {proc.stderr[-2000:]}")
    shares = shares_in(proc.stdout)
    if not shares:
        raise TruthError(f"{python} {path} --check printed no cpu-share lines:\n{proc.stdout}")
    return shares


def ground_truth(path, python, run_output=""):
    """The header's hot lines with the shares measured on this machine: those the profiled
    run printed (`run_output`, its stdout) when it printed any, else --check's.  A label
    names its line (`line29(...)`) or, for threads, its thread (`w-fib`)."""
    lines = parse_header(path)
    shares, by = shares_in(run_output), "in-run"
    if not shares:
        shares, by = measure(path, python), "--check"
    by_label = {f"line{h.lineno}": h for h in lines} | {h.thread: h for h in lines if h.thread}
    measured = {}
    for label, pct in shares.items():
        h = by_label.get(re.sub(r"\(.*", "", label))
        if h is None:
            raise TruthError(f"{path}: {by} measures {label!r}, which no header line names")
        measured[h.lineno] = pct
    for h in lines:
        if h.lineno not in measured and h.header_pct > 0:
            raise TruthError(f"{path}: {by} does not measure line {h.lineno} (header ~{h.header_pct}%)")
    return [replace(h, measured_pct=measured.get(h.lineno), measured_by=by) for h in lines]

if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.split("\n\n")[-1])
    for h in ground_truth(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else sys.executable):
        measured = "not measured" if h.measured_pct is None else f"{h.measured_pct:5.1f}%"
        kind = "kind not stated" if h.kind is None else f"{h.kind} (native {h.native_pct:.0f}% of the line)"
        print(f"line {h.lineno:4d}  header ~{h.header_pct:4.1f}%  {h.measured_by} {measured}  "
              f"{kind}{'  thread ' + h.thread if h.thread else ''}")
