"""Profiles of the accuracy workloads (ours always, ../shared's when present), on both
interpreters at RPROF_CPU_HZ=1000: line shares against the measured ground truth, the
native/Python split against the header's kind, the JSON schema and the text report."""
import math

import pytest
from scalene.scalene_json import ScaleneJSONSchema

import truth
from harness import cases, cpu_share, file_lines, report_rows

ALL = cases("cpu", "native", "threads")


def assert_shares(request, profile, hot, tol):
    """Each ground-truth line's share of sampled CPU within `tol` points of the truth;
    the header's and the measured figures are printed beside the profile's."""
    lines = file_lines(profile.data, request.node.callspec.params["workload"])
    rows, bad = [], []
    for h in hot:
        got = cpu_share(lines.get(h.lineno))
        measured = "   n/a" if h.measured_pct is None else f"{h.measured_pct:5.1f}%"
        rows.append(f"{request.node.callspec.id:34s} line {h.lineno:3d}  header ~{h.header_pct:3.0f}%  "
                    f"{h.measured_by:>7s} {measured}  profile {got:5.1f}%  diff {got - h.pct:+5.1f} (tolerance {tol})")
        if abs(got - h.pct) > tol:
            bad.append(rows[-1])
    request.node.user_properties.extend(("rprof", row) for row in rows)
    assert not bad, "line shares off the ground truth:\n" + "\n".join(bad)


@pytest.mark.parametrize(("workload", "python"), cases("cpu"))
def test_cpu_line_shares(workload, python, profile_of, truth_of, request):
    profile = profile_of(workload, python)
    assert_shares(request, profile, truth_of(workload, python, profile), tol=3)


@pytest.mark.parametrize(("workload", "python"), cases("threads"))
def test_thread_line_shares(workload, python, profile_of, truth_of, request):
    """Three GIL-serialised workers: each worker's hot line within 5 points; the main
    thread's join() (when the header lists it) at ~0% CPU; and three threads, not one,
    each with a worker's share (>= 10%) of the samples."""
    profile = profile_of(workload, python)
    assert_shares(request, profile, truth_of(workload, python, profile), tol=5)
    threads = profile.data["rprof"]["threads"]
    assert len([t for t in threads if t["cpu_percent"] >= 10]) == 3, threads


@pytest.mark.parametrize(("workload", "python"), cases("native"))
def test_native_fraction(workload, python, profile_of, request):
    """Each ground-truth line's native fraction (n_cpu_percent_c / the line's total)
    within 5 points of the header's: ~100% for the zlib line, ~0% for the Python loop."""
    lines = file_lines(profile_of(workload, python).data, workload)
    rows, bad = [], []
    for h in truth.parse_header(workload):
        assert h.kind is not None, f"{workload}: the header states no kind for line {h.lineno}"
        rec = lines.get(h.lineno)
        total = cpu_share(rec)
        native = 100 * rec["n_cpu_percent_c"] / total if total else math.nan
        rows.append(f"{request.node.callspec.id:34s} line {h.lineno:3d}  {h.kind:6s} header native "
                    f"{h.native_pct:3.0f}%  profile native {native:5.1f}% of the line's {total:4.1f}% (tolerance 5)")
        if not abs(native - h.native_pct) <= 5:
            bad.append(rows[-1])
    request.node.user_properties.extend(("rprof", row) for row in rows)
    assert not bad, "native fractions off the ground truth:\n" + "\n".join(bad)


@pytest.mark.parametrize(("workload", "python"), ALL)
def test_json_schema(workload, python, profile_of):
    data = profile_of(workload, python).data
    ScaleneJSONSchema.model_validate(data)
    meta = data["rprof"]
    assert meta["samples"] > 0 and meta["killed"] is False and meta["damage"] == [], meta


@pytest.mark.parametrize(("workload", "python"), ALL)
def test_text_report_names_hot_lines(workload, python, profile_of):
    """Each hot line shows up in the text table as a row with its number and its code."""
    text = profile_of(workload, python).text
    for h in truth.parse_header(workload):
        if h.header_pct > 0:
            assert report_rows(text, workload, h.lineno), f"no row for line {h.lineno} in:\n{text}"
