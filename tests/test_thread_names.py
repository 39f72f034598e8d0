"""Python thread names in the report (issue 10, item 6): CPython 3.8-3.13 leave every OS
thread named "python3", so the shim reads threading's own name (Thread.name) and the text,
JSON and HTML reports show it: a name given with name=, threading's default name, a name
the thread changed half-way (the last one), and "MainThread". Each named thread's CPU is
compared with the CPU time it measured itself in the same run. On the two 3.11 builds
(libpython linked into the executable, and shared) and on the other versions pyenv has."""
import json
import re
from pathlib import Path

import pytest

from harness import OWN, PROFILE_HZ, PYTHONS, _PYENV, profiled, report

WORKLOAD = OWN / "thread_names.py"
OTHER = ["3.8.18", "3.9.18", "3.10.13", "3.12.1", "3.13.0"]


def interpreters():
    for name, python in PYTHONS.items():
        yield pytest.param(python, id=name)
    for v in OTHER:
        python = _PYENV / "versions" / v / "bin" / "python3"
        yield pytest.param(str(python), id=f"pyenv-{v}",
                           marks=pytest.mark.skipif(not python.exists(), reason=f"{python} is not installed"))


@pytest.mark.parametrize("python", list(interpreters()))
def test_threads_are_named_as_python_names_them(python, tmp_path):
    run = profiled([python, WORKLOAD], tmp_path, RPROF_CPU_HZ=PROFILE_HZ)
    truth = json.loads(run.proc.stdout.strip().splitlines()[-1])
    cpu = truth["cpu"]
    default = truth["default"]
    assert set(cpu) == {"worker-a", default, "renamed-b", "MainThread"}, cpu

    threads = run.data["rprof"]["threads"]
    by_name = {}
    for t in threads:
        assert t["name"] not in by_name, f"two threads named {t['name']!r}: {threads}"
        by_name[t["name"]] = t
    assert set(cpu) <= set(by_name), f"thread names {sorted(by_name)}, want {sorted(cpu)}"
    assert "before-rename" not in by_name, threads
    # The workers' shares among themselves (the main thread's share also holds the
    # interpreter's start-up), against the CPU each measured.
    workers = ["worker-a", default, "renamed-b"]
    got = {n: by_name[n]["cpu_percent"] for n in workers}
    want = {n: cpu[n] for n in workers}
    off = {n: (round(100 * got[n] / sum(got.values()), 1), round(100 * want[n] / sum(want.values()), 1))
           for n in workers
           if abs(got[n] / sum(got.values()) - want[n] / sum(want.values())) > 0.05}
    assert not off, f"(report %, truth %) of the workers' CPU: {off}"
    assert by_name["MainThread"]["samples"] > 0 and by_name["MainThread"]["tid"] == by_name["MainThread"]["pid"]

    # The text report's thread table: the same names, each on the row of its tid.
    rows = run.text[run.text.index("\nThreads\n"):]
    for name in cpu:
        tid = by_name[name]["tid"]
        assert re.search(rf"^\s+{tid}\s+[\d.]+%\s+\d+\s+{re.escape(name)}$", rows, re.M), (name, rows)

    # The HTML page's data.
    page = tmp_path / "report.html"
    r = report(run.trace, "--html", "-o", str(page))
    assert r.returncode == 0, r.stderr
    html = page.read_text()
    start = html.index('id="rprof-data">') + len('id="rprof-data">')
    data = json.loads(html[start:html.index("</script>", start)])
    html_names = {t["name"] for t in data["threads"]}
    assert set(cpu) <= html_names, html_names
