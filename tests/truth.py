#!/usr/bin/env python3
"""Ground truth of the accuracy workloads: which lines are hot, their share of CPU, and
whether their time is Python or native.

Two header styles are read:
  * our workloads (tests/workloads/): `# TRUTH line=17 cpu=70 kind=python [thread=NAME]`;
  * the shared ones (../shared/workloads/): prose, e.g.
      `#     line 29 `for i in range(n): s += str(i)`   ~75% of CPU  (Python)`.
The header's shares are approximate; the shares used as truth are the ones the
workload measures with the interpreter under test: in the profiled run itself when the
workload prints them there (ours do), else in a separate `--check` run.  The kind (and
so the expected native fraction of a line) comes from the header.  Anything that cannot
be parsed or that disagrees with the file raises TruthError: a silently empty truth
would make every accuracy test pass.

    python3 tests/truth.py WORKLOAD [PYTHON]    prints the header and measured truth
"""
import re
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
    kind: str                    # "python" or "native"
    native_pct: float            # share of this line's own CPU that is native
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
SHARE = re.compile(r"~(\d+(?:\.\d+)?)%")
LINE_KIND = re.compile(r"~(\d+)% of (?:it )?(native|python)\b", re.I)
PAREN_KIND = re.compile(r"\((python|native)\)", re.I)
HEADER_KIND = re.compile(r"\ball (?:CPU is|of it) (python|native)\b", re.I)
THREAD = re.compile(r'\(thread "([^"]+)"\)')


def parse_prose(path, header):
    """Entries are `line NN ...` comment lines plus their deeper-indented continuation
    lines; each must quote its code in backticks (checked against the file), give a
    `~NN%` share, and have a kind of its own or inherit the header's `all CPU is X`."""
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
        code = re.findall(r"`([^`]+)`", body)
        if not code:
            raise TruthError(f"{where}: no `code` quoted")
        actual = source[lineno - 1] if lineno <= len(source) else "past the end of the file"
        if not all(part.strip() in actual for part in code[0].split("...")):
            raise TruthError(f"{where}: quotes `{code[0]}`, but that line is {actual!r}")
        body = re.sub(r"`[^`]*`", "", body)
        share = SHARE.search(body)
        if not share:
            raise TruthError(f"{where}: no ~NN% share in {body!r}")
        if m := LINE_KIND.search(body):
            kind = m.group(2).lower()
            native = float(m.group(1)) if kind == "native" else 100 - float(m.group(1))
        elif m := PAREN_KIND.search(body) or default_kind:
            kind = m.group(1).lower()
            native = 100.0 if kind == "native" else 0.0
        else:
            raise TruthError(f"{where}: says neither Python nor native, nor does the header")
        thread = THREAD.search(body)
        lines.append(HotLine(lineno, float(share.group(1)), kind, native, thread and thread.group(1)))
    return lines


CHECK_SHARE = re.compile(r"^\s+(\S+)\s.*\bcpu-share\s+(\d+(?:\.\d+)?)%", re.M)


def shares_in(output):
    """The {label: cpu share} lines a workload printed (none: {})."""
    return {label: float(pct) for label, pct in CHECK_SHARE.findall(output)}


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
        print(f"line {h.lineno:4d}  header ~{h.header_pct:4.0f}%  --check {measured}  "
              f"{h.kind} (native {h.native_pct:.0f}% of the line){'  thread ' + h.thread if h.thread else ''}")
