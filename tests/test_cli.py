"""`rprof run -- python3 workload.py` end to end."""
import json
import re
import subprocess

import pytest
from scalene.scalene_json import ScaleneJSONSchema

import truth
from harness import OWN, RPROF, file_lines, interpreters, report_rows, require

CPU_SPLIT = OWN / "cpu_split.py"


@pytest.mark.parametrize("python", interpreters())
def test_rprof_run(python, tmp_path):
    """The program's output passes through, the report (on stderr) names both hot lines,
    and --json writes a valid profile of the script."""
    require(RPROF)
    out = tmp_path / "profile.json"
    proc = subprocess.run([RPROF, "run", "--json", out, "--", python, CPU_SPLIT], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^cpu_split \d+ \d+$", proc.stdout, re.M), proc.stdout
    hot = [h.lineno for h in truth.parse_header(CPU_SPLIT)]
    for lineno in hot:
        assert report_rows(proc.stderr, CPU_SPLIT, lineno), f"no row for line {lineno} in:\n{proc.stderr}"
    data = json.loads(out.read_text())
    ScaleneJSONSchema.model_validate(data)
    assert set(hot) <= set(file_lines(data, CPU_SPLIT))
