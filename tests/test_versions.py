"""The other CPython versions pyenv has on this machine (3.8-3.10, 3.12, 3.13): the frame
probe's layouts for them, end to end. Each is profiled on our own CPU workload and held to
the same 3-point tolerance as 3.11 (against the shares the run measured itself); the
JSON must validate. A version that is not
installed is skipped with the reason shown (the two 3.11 builds are required elsewhere)."""
from pathlib import Path

import pytest
from scalene.scalene_json import ScaleneJSONSchema

from harness import OWN, _PYENV, cpu_share, file_lines

OTHER = ["3.8.18", "3.9.18", "3.10.13", "3.12.1", "3.13.0"]
WORKLOAD = OWN / "cpu_split.py"


def versions():
    for v in OTHER:
        python = _PYENV / "versions" / v / "bin" / "python3"
        yield pytest.param(str(python), id=f"pyenv-{v}",
                           marks=[pytest.mark.skipif(not python.exists(), reason=f"{python} is not installed"),
                                  pytest.mark.xdist_group(f"version-{v}")])


@pytest.mark.parametrize("python", list(versions()))
def test_line_shares_on_other_versions(python, profile_of, truth_of):
    profile = profile_of(WORKLOAD, python)
    lines = file_lines(profile.data, WORKLOAD)
    off = [(h.lineno, cpu_share(lines.get(h.lineno)), h.pct) for h in truth_of(WORKLOAD, python, profile)
           if abs(cpu_share(lines.get(h.lineno)) - h.pct) > 3]
    assert not off, f"{Path(python).parent.parent.name}: (line, profile %, truth %) off by > 3 points: {off}"
    ScaleneJSONSchema.model_validate(profile.data)
