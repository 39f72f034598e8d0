"""Exact allocator counters up to exit, and the size-weighted allocation estimator, on C
programs whose allocations the test knows (tests/native/exact_allocs.c) and on real tools.

Counters: every malloc of every thread is counted, the last ones before exit included
(each thread folds its counts into the shared ones every 256 KiB, at thread exit and at
exit).  Estimator: a sampled block stands for size / P(sampled), P = 1 - exp(-size/mean),
so a block much larger than the mean is counted (almost) exactly, whatever the rate.
The runs use the default sampling settings (128 KiB, adaptive)."""
import shutil

import pytest

from harness import build_c, profiled, report_json, run_profiled

MIB = 1 << 20


def counters(data):
    c = data["rprof"]["counters"]
    assert c is not None, "the trace has no allocator counters"
    return c


def total(proc):
    """The program's `total T` line: the sum of malloc_usable_size over all its blocks.
    Not N x one block's usable size: glibc hands out a chunk up to 16 bytes larger than the
    request's size class when splitting it would leave less than its minimum chunk, and
    the shim's own blocks (it shares the C library's heap) change which chunks are free."""
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("total ")]
    return int(line.split()[1])


@pytest.mark.parametrize(("n", "size"), [(1000, 100), (1, 100), (20000, 24)])
def test_small_mallocs_counted_exactly(n, size, tmp_path):
    """N x malloc(SIZE), far less than 256 KiB in all for the first two: exactly N
    allocations of exactly the usable bytes the program got (it makes no other
    allocation)."""
    prof = profiled([build_c("exact_allocs"), "small", n, size], tmp_path)
    c = counters(prof.data)
    assert c["allocs"] == n, c
    assert f"{n} allocations" in prof.text
    assert c["alloc_bytes"] == total(prof.proc), c


@pytest.mark.parametrize("modes", [None, "memory"], ids=["default-modes", "memory-only"])
def test_threads_last_counts_folded(modes, tmp_path):
    """Four threads, each 1000 x malloc(100), joined before exit: each thread's last
    counts are folded at its exit, with CPU sampling off too."""
    env = {"RPROF_MODE": modes} if modes else {}
    prof = profiled([build_c("exact_allocs"), "threads", 4, 1000, 100], tmp_path, **env)
    c = counters(prof.data)
    # The four threads' blocks, plus what creating a thread allocates in the C library
    # (a few small blocks; the shim's own start-up allocations are not counted).
    assert 4000 <= c["allocs"] <= 4000 + 4 * 4, c
    assert total(prof.proc) <= c["alloc_bytes"] <= total(prof.proc) + 4 * 4096, c


@pytest.mark.parametrize("argv", [["ls", "/"], ["gcc", "--version"]], ids=["ls", "gcc-version"])
def test_tools_allocations_counted(argv, tmp_path):
    """Real tools that allocate little: their allocations are counted, not 0."""
    exe = shutil.which(argv[0])
    assert exe, f"{argv[0]} is not installed"
    proc, trace = run_profiled([exe, *argv[1:]], tmp_path)
    assert proc.returncode == 0, proc.stderr
    c = counters(report_json(trace))
    assert c["allocs"] > 0 and c["alloc_bytes"] > 0, c


def allocated_on(data, function):
    """MiB the JSON charges to `function` (a C function of the program, by name)."""
    rows = [rec for entry in data["files"].values() for rec in entry["functions"] if rec["line"] == function]
    assert rows, f"no function {function} in the profile"
    return sum(rec["n_malloc_mb"] for rec in rows)


@pytest.mark.parametrize(("mode", "count", "mib", "tol"), [("big", 1, 50, 0.01), ("blocks", 8, 10, 0.03)])
def test_big_blocks_counted(mode, count, mib, tol, tmp_path):
    """One 50 MiB malloc (the program's only allocation): 50 MiB on its function within
    1%; 8 x 10 MiB: 80 MiB within 3%.  Truth: the usable sizes the program printed."""
    exe = build_c("exact_allocs")
    args = [mode, mib] if mode == "big" else [mode, count, mib]
    prof = profiled([exe, *args], tmp_path)
    truth = total(prof.proc) / MIB
    func = "one_big" if mode == "big" else "blocks"
    got = allocated_on(prof.data, func)
    assert abs(got - truth) <= tol * truth, (got, truth)
    assert abs(prof.data["rprof"]["memory"]["malloc_mb"] - truth) <= tol * truth, prof.data["rprof"]["memory"]
