import os

import pytest

import truth
from harness import OWN, PROFILE_HZ, REPO, cached, profiled

INRUN = REPO / "tests" / "inrun.py"


@pytest.fixture(autouse=True)
def _no_inherited_columns():
    """The text reports the tests read are at their default width: GNU readline, once
    loaded into pytest's process, exports COLUMNS and LINES of its own (80 without a
    terminal) into the C environment, which os.environ does not show and every
    subprocess inherits, and rprof-report honours COLUMNS. Tests of the width set it."""
    os.unsetenv("COLUMNS")


@pytest.fixture(autouse=True)
def _interpreter_present(request):
    """A missing interpreter fails its tests rather than skipping them."""
    python = getattr(request.node, "callspec", None) and request.node.callspec.params.get("python")
    if python and not os.access(python, os.X_OK):
        pytest.fail(f"{python} is missing: the tests need both CPython 3.11 builds")


def measuring_itself(workload, python):
    """The command that runs a workload so that it prints the CPU shares it measured in
    that very run: ours with CPU truth (cpu_split, threads3) do by themselves; the shared
    ones, which we cannot edit, run under tests/inrun.py, which times the functions holding
    their hot lines."""
    if workload.parent == OWN:
        return [python, workload]
    hot = [str(h.lineno) for h in truth.parse_header(workload) if h.header_pct > 0]
    return [python, INRUN, workload, ",".join(hot)]


@pytest.fixture(scope="session")
def profile_of(tmp_path_factory):
    """Profiles a workload once per interpreter per worker session at PROFILE_HZ.  A
    failure is cached too: the tests sharing the run fail with it, without rerunning."""

    def profile(workload, python):
        tmp = tmp_path_factory.mktemp(workload.stem)
        # CPU accuracy is measured in CPU mode. Memory mode wraps the interpreter's
        # allocator, which slows allocation-heavy lines, and on Debian's PGO build (whose
        # allocator calls are devirtualised for the default allocator) enough to move
        # their share by 4-9 points; tests/test_memory.py profiles memory on its own.
        return profiled(measuring_itself(workload, python), tmp, RPROF_CPU_HZ=PROFILE_HZ, RPROF_MODE="cpu")

    return cached(profile)


@pytest.fixture(scope="session")
def truth_of():
    """truth.ground_truth of a profiled run: the shares the run measured itself (every
    profile_of run prints them; a run that did not would be held to --check's)."""
    def get(workload, python, profile):
        return truth.ground_truth(workload, python, profile.proc.stdout)
    return get


def pytest_terminal_summary(terminalreporter):
    """Prints the truth-vs-profile tables the accuracy tests recorded (also under xdist,
    which ships user_properties back from the workers)."""
    rows = [value for reports in terminalreporter.stats.values() for rep in reports
            if getattr(rep, "when", None) == "call"
            for name, value in rep.user_properties if name == "rprof"]
    if rows:
        terminalreporter.section("rprof accuracy: ground truth vs profile")
        for row in sorted(rows):
            terminalreporter.write_line(row)
