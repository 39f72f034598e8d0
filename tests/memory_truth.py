#!/usr/bin/env python3
"""Ground truth of the memory workloads (tests/test_memory.py).

Units: the workloads' headers and tracemalloc speak MB = 10^6 bytes; rprof's JSON, like
Scalene's, MiB = 2^20 bytes.  Everything here is in bytes; the tests convert.

  * alloc_heavy.py (../shared): the keeping, churning and leaking lines (LINE A, B, C)
    and their bytes.  A and C are measured with tracemalloc, the way its `--check`
    does, but without the rest of `--check` (which reruns all 2 GB of churn under
    tracemalloc: 60-85 s per interpreter here); B is derived from its constants.
  * mem_alloc.py (ours): the same three roles, from its own `--check`.
  * seed_techniques.py (../shared): bytes per instance of its two object-building
    lines, measured with tracemalloc.
  * mem_split.py (ours): per line, the bytes that came through CPython's allocator.
  * native_alloc.c (../shared), mem_native.c (ours): from their printed totals.

Anything that cannot be parsed, or that disagrees with the header, raises TruthError:
a silently wrong truth would let the tests pass or fail for the wrong reason.

    python3 tests/memory_truth.py WORKLOAD [PYTHON]    prints the truth of a Python workload
"""
import ast
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MB = 10**6
MIB = 2**20
# sizeof(PyLongObject) on 64-bit CPython 3.11 (ob_refcnt, ob_type, ob_size, one 30-bit
# digit: 28 B, padded to 32).  Medium ints (|v| < 2^30 outside the small-int cache) are
# allocated with exactly this size (_PyLong_FromMedium -> PyObject_Malloc(sizeof(PyLongObject))).
PYLONG_BYTES = 32
POINTER = 8


class TruthError(Exception):
    pass


@dataclass(frozen=True)
class AllocTruth:
    """The three memory roles of an alloc workload, in bytes, with their lines."""
    keep_line: int
    keep_bytes: int     # live from the line's end to the exit: the line's peak
    churn_line: int
    churn_bytes: int    # allocated over the run, freed again
    leak_line: int
    leak_bytes: int     # kept, growing steadily over the run
    how: str            # where the figures come from


def run_python(python, args, timeout=300):
    proc = subprocess.run([python, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise TruthError(f"{python} {' '.join(map(str, args))} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc.stdout


def constants(path):
    """The module's top-level NAME = <literal or arithmetic on earlier names> assignments."""
    values = {}
    for node in ast.parse(Path(path).read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = eval(compile(ast.Expression(node.value), str(path), "eval"),
                                                  {"__builtins__": {}}, dict(values))
            except Exception:
                pass
    return values


def marker_lines(path, pattern):
    """{key: line number} of the lines whose text matches `pattern` (one group: the key),
    each key on exactly one line."""
    found = {}
    for no, text in enumerate(Path(path).read_text().splitlines(), 1):
        if m := re.search(pattern, text):
            if m.group(1) in found:
                raise TruthError(f"{path}: {m.group(0)!r} on lines {found[m.group(1)]} and {no}")
            found[m.group(1)] = no
    return found


# Runs alloc_heavy's own functions under tracemalloc, as its --check does: traced
# memory right after build_keep() (--check prints it as "tracemalloc after line A:
# current X MB"), then what the run's ROUNDS leak() calls add (--check's "kept at exit"
# for line C).
_ALLOC_HEAVY_SNIPPET = """
import importlib.util, sys, tracemalloc
spec = importlib.util.spec_from_file_location("alloc_heavy", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
tracemalloc.start()
keep = m.build_keep(m.N_KEEP)
after_a = tracemalloc.get_traced_memory()[0]
for it in range(m.ROUNDS):
    m.leak(it)
print(after_a, tracemalloc.get_traced_memory()[0] - after_a)
"""


def alloc_heavy(path, python):
    src = Path(path).read_text()
    lines = src.splitlines()
    marks = marker_lines(path, r"# LINE ([A-D]):")
    header = {m.group(2): int(m.group(1)) for m in re.finditer(r"^#\s+line (\d+) LINE ([A-D])\b", src, re.M)}
    if set(marks) != set("ABCD") or header != marks:
        raise TruthError(f"{path}: header lines {header} and `# LINE X:` markers {marks} disagree")
    c = constants(path)
    # LINE B: `tmp = list(range(rounds_base + j, rounds_base + j + 25_000))`, run
    # ROUNDS x CHURN_PER_ROUND times.  The header says "~1.8 GB requested (~2.0 GB
    # counting pymalloc 32-byte size classes)"; on CPython 3.11 the ints list(range())
    # makes are medium ints (the bases run from 0 to 119,019 + 25,000: only a few
    # hundred of the first execution's fall in the small-int cache), allocated as
    # sizeof(PyLongObject) = 32 B each, so 32 B is what is requested from the allocator;
    # plus the list's item array, allocated at its exact length (list() presizes from
    # len(range)): 25,000 x 8 B = 200 kB.  Per execution 25,000 x 40 B = 1.0 MB; 2.0 GB
    # over the run.
    m = re.search(r"\blist\(range\((\w+) \+ (\w+), \1 \+ \2 \+ ([\d_]+)\)\)", lines[marks["B"] - 1])
    if not m:
        raise TruthError(f"{path}: line {marks['B']} is not the list(range(...)) churn: {lines[marks['B'] - 1]!r}")
    per_list = int(m.group(3).replace("_", ""))
    executions = c["ROUNDS"] * c["CHURN_PER_ROUND"]
    churn = executions * per_list * (PYLONG_BYTES + POINTER)
    if not re.search(r"alloc ~2\.0 GB", src) and not re.search(r"~2\.0 GB counting pymalloc", src):
        raise TruthError(f"{path}: the header no longer gives LINE B as ~2.0 GB")

    after_a, leaked = map(int, run_python(python, ["-c", _ALLOC_HEAVY_SNIPPET, path]).split())
    # The header's figures, to hold the measurement to: "tracemalloc: 210.3 MB" for A,
    # "alloc 100 MB, KEPT 100 MB" for C.
    stated_a = float(re.search(r"\(tracemalloc: ([\d.]+) MB", src).group(1)) * MB
    stated_c = float(re.search(r"LINE C .*\n#\s+alloc (\d+) MB, KEPT", src).group(1)) * MB
    if abs(after_a - stated_a) > 0.02 * stated_a or abs(leaked - stated_c) > 0.02 * stated_c:
        raise TruthError(f"{path}: tracemalloc measures {after_a / MB:.1f} MB after line A and {leaked / MB:.1f} MB "
                         f"leaked; the header says {stated_a / MB:.1f} and {stated_c / MB:.1f}")
    return AllocTruth(marks["A"], after_a, marks["B"], churn, marks["C"], leaked,
                      f"A, C: tracemalloc with {python}; B: {executions} x {per_list} x (32 + 8) B from the constants")


MEMTRUTH = re.compile(r"^memtruth line=(\d+) role=(\w+) bytes=(\d+)", re.M)
HEADER_MEMTRUTH = re.compile(r"^# MEMTRUTH line=(\d+) role=(\w+)\s+~?([\d.]+) MB", re.M)


def own_alloc(path, python):
    """mem_alloc.py: its --check's `memtruth` lines, which must name the lines and roles
    of its header's MEMTRUTH lines and agree with the header's MB within 5%."""
    measured = {role: (int(line), int(b)) for line, role, b in MEMTRUTH.findall(run_python(python, [path, "--check"]))}
    header = {role: (int(line), float(mb) * MB) for line, role, mb in HEADER_MEMTRUTH.findall(Path(path).read_text())}
    if set(measured) != {"keep", "churn", "leak"} or set(header) != set(measured):
        raise TruthError(f"{path}: roles measured {sorted(measured)}, in the header {sorted(header)}")
    for role, (line, b) in measured.items():
        if header[role][0] != line or abs(b - header[role][1]) > 0.05 * header[role][1]:
            raise TruthError(f"{path}: {role}: --check measures line {line}, {b / MB:.1f} MB; "
                             f"the header says line {header[role][0]}, {header[role][1] / MB:.1f} MB")
    return AllocTruth(*measured["keep"], *measured["churn"], *measured["leak"], f"{path.name} --check with {python}")


# seed_techniques' two object-building lines: the list of n objects each builds, as
# traced by tracemalloc (objects, their dicts' values or slots, the ints they hold, the
# list), with n the instance count TASKS gives them.
_SEED_SNIPPET = """
import importlib.util, sys, tracemalloc
spec = importlib.util.spec_from_file_location("seed", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
args = {name: a for name, _, a in m.TASKS}
tracemalloc.start()
for name, cls in (("objects_noslots", m.PointDict), ("objects_slots", m.PointSlots)):
    (n,) = args[name]
    before = tracemalloc.get_traced_memory()[0]
    pts = [cls(i, -i) for i in range(n)]
    print(name, getattr(m, name).__code__.co_firstlineno, n, tracemalloc.get_traced_memory()[0] - before)
    del pts
"""


@dataclass(frozen=True)
class ObjectsLine:
    function: str
    lineno: int         # the line building the list of objects
    instances: int
    bytes: int          # tracemalloc's bytes for the list and its objects


def seed_objects(path, python):
    out = {}
    lines = Path(path).read_text().splitlines()
    for name, first, n, b in (row.split() for row in run_python(python, ["-c", _SEED_SNIPPET, path]).splitlines()):
        lineno = int(first) + 1
        cls = "PointDict" if name == "objects_noslots" else "PointSlots"
        if f"[{cls}(i, -i) for i in range(n)]" not in lines[lineno - 1]:
            raise TruthError(f"{path}: line {lineno} of {name} is {lines[lineno - 1]!r}")
        out[name] = ObjectsLine(name, lineno, int(n), int(b))
    if set(out) != {"objects_noslots", "objects_slots"}:
        raise TruthError(f"{path}: measured {sorted(out)}")
    return out


SPLIT = re.compile(r"^split marker=(\S+) line=(\d+) traced=(\d+) total=(\d+)", re.M)


@dataclass(frozen=True)
class SplitLine:
    marker: str
    lineno: int
    traced: int         # bytes tracemalloc traced: through CPython's allocator domains
    total: int          # bytes the line keeps

    @property
    def python_share(self):
        return min(1.0, self.traced / self.total)


def split(path, python):
    out = {m: SplitLine(m, int(line), int(t), int(tot))
           for m, line, t, tot in SPLIT.findall(run_python(python, [path, "--check"]))}
    if set(out) != {"PY-INTS", "C-MALLOC", "PY-BYTEARRAY"}:
        raise TruthError(f"{path} --check: parts {sorted(out)}")
    return out


def glibc_usable(n):
    """malloc_usable_size of a heap (not mmap'd) block of n requested bytes on 64-bit
    glibc: the chunk holds n + an 8-byte size field, rounded up to 16, at least 32."""
    return max(32, (n + 8 + 15) & ~15) - 8


def native_alloc_truth(source, stdout):
    """native_alloc.c's two functions, in the usable bytes the shim counts.
    small_pairs: the bytes it prints are requested sizes 16..1024 B, multiples of 16,
    whose usable size is 8 B more: + 8 B x the pairs it prints (1.5%).
    grow_realloc: realloc counts growth, so a chain allocates its final block's size:
    calloc(1, 16), then realloc to sz + sz / 2 + 1 while sz < CHAIN_LIMIT; x chains.
    The program's printed realloc count checks the chain's length."""
    src = Path(source).read_text()
    m = re.search(r"small_pairs=(\d+) \(bytes (\d+)\) chains=(\d+) reallocs=(\d+)", stdout)
    if not m:
        raise TruthError(f"{source}: no totals in its output {stdout!r}")
    pairs, requested, chains, reallocs = map(int, m.groups())
    if "size_t sz = 16 + (size_t)(i & 63) * 16;" not in src:
        raise TruthError(f"{source}: small_pairs' sizes are no longer multiples of 16")
    if not all(s in src for s in ("size_t sz = 16;", "calloc(1, sz)", "while (sz < CHAIN_LIMIT)",
                                  "size_t nsz = sz + sz / 2 + 1;", "#define CHAIN_LIMIT (64 * 1024)")):
        raise TruthError(f"{source}: grow_realloc's chain is no longer calloc 16, +50% + 1 up to 64 KiB")
    sz, steps = 16, 0
    while sz < 64 * 1024:
        sz, steps = sz + sz // 2 + 1, steps + 1
    if steps * chains != reallocs:
        raise TruthError(f"{source}: {chains} chains of {steps} reallocs computed, {reallocs} printed")
    # ({function: bytes}, peak of a function's live blocks: none stated)
    return {"small_pairs": requested + 8 * pairs, "grow_realloc": chains * glibc_usable(sz)}, None


def mem_native_truth(stdout):
    """mem_native.c's printed totals (requested = usable: sizes are 16k + 8), as
    ({function: bytes}, ("ring_blocks", its peak live bytes))."""
    m = re.search(r"small_blocks bytes=(\d+) grow_chains bytes=(\d+) chains=\d+ final=\d+ "
                  r"ring_blocks bytes=(\d+) peak=(\d+)", stdout)
    if not m:
        raise TruthError(f"mem_native: no totals in its output {stdout!r}")
    small, grow, ring, peak = map(int, m.groups())
    return {"small_blocks": small, "grow_chains": grow, "ring_blocks": ring}, ("ring_blocks", peak)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.split("\n\n")[-1])
    wl, py = Path(sys.argv[1]), sys.argv[2] if len(sys.argv) == 3 else sys.executable
    fn = {"alloc_heavy": alloc_heavy, "mem_alloc": own_alloc, "seed_techniques": seed_objects,
          "mem_split": split}[wl.stem]
    print(fn(wl, py))
