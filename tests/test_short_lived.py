"""Short-lived sampled blocks (issue 15): a block allocated and freed within one flush
window of the writer costs the trace no Alloc and Free record of its own; its window's
blocks of one stack, size and domain are folded into a ShortLived record
(docs/FORMAT.md). A loop churning small objects, the case that made a steady service's
trace 0.5 GB an hour, must then write few memory records, while the report's figures for
the line stay those of every block: the bytes it allocated (against tracemalloc's
measure of one call, taken in the same run, times the calls), the samples counted, and a
peak that stays near the few objects live at once.

RPROF_MEM_RATE=16 KiB: the line allocates ~310 MB, ~19,000 samples; the estimate's
relative standard deviation is ~0.7%, against the 10% test_memory.py allows too."""
import re

import pytest

import traces
from harness import OWN, PYTHONS, profiled

MIB = 1 << 20
RATE = 16384
WORKLOAD = OWN / "churn_small.py"


@pytest.mark.parametrize("python", [pytest.param(py, id=pyid) for pyid, py in PYTHONS.items()])
def test_churned_blocks_fold_and_keep_their_figures(python, tmp_path):
    prof = profiled([python, WORKLOAD], tmp_path, timeout=180, RPROF_MEM_RATE=str(RATE))
    m = re.search(r"churn line=(\d+) calls=(\d+) bytes_per_call=(\d+)", prof.proc.stdout)
    assert m, prof.proc.stdout
    line, calls, per_call = map(int, m.groups())
    truth = calls * per_call
    samples = truth / RATE
    info = traces.read(prof.trace)
    # Without folding every sample is an Alloc and a Free record (~38,000 here); what
    # stays is start-up's blocks kept to the end and the few blocks live across a
    # window's end.
    records = info.alloc_records + info.free_records
    assert info.short_lived_records > 0, info
    assert records <= 0.05 * samples, (records, samples, info)
    # The report counts every folded block as a sample, as it counted their records.
    assert prof.data["alloc_samples"] == info.alloc_samples, (prof.data["alloc_samples"], info)
    entries = [e for f, e in prof.data["files"].items() if f.endswith(WORKLOAD.name)]
    assert len(entries) == 1, list(prof.data["files"])
    rec = {r["lineno"]: r for r in entries[0]["lines"]}[line]
    want = truth / MIB
    assert abs(rec["n_malloc_mb"] - want) <= 0.10 * want, (rec, want)
    # A call's objects (~200 B) are all that is live at once: the peak is a few samples'
    # weight (16 KiB each), never the churned total.
    assert rec["n_peak_mb"] < 1.0, rec
    assert rec["n_growth_mb"] < 0.05 * rec["n_malloc_mb"], rec
