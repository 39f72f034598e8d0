"""The HTML report in a real browser: `rprof run --html` on a real workload, on both
interpreters, opened in headless Chromium (tests/browser.py) and driven like a user would:
the page must run without a console error, show the hot lines and the flame graph's
frames, sort on a column header, switch between hot and all lines, zoom, search and
switch the flame graph, and show the markup in the workload's source as text."""
import json
import os
import subprocess

import pytest

from browser import Browser
from harness import BUILD, OWN, PYTHONS, REPORT, RPROF, interpreters, report_json, require

WORKLOAD = OWN / "html_markup.py"
SCRIPT_LINE, IMG_LINE = 14, 21   # the hot lines whose source holds markup (see the workload)


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()


def page_of(python, tmp_path, workload=WORKLOAD, **extra):
    require(RPROF)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPROF_") and k != "LD_PRELOAD"}
    env.update(extra)
    page = tmp_path / "report.html"
    r = subprocess.run([str(RPROF), "run", "--memory", "--hz", "1000", "--html", str(page),
                        "-o", str(tmp_path / "html.trace"), "--", python, str(workload)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, f"rprof run exited {r.returncode}: {r.stderr}"
    assert page.is_file(), f"rprof run --html wrote no page: {r.stderr}"
    return page


# The table of the workload's file, found by its path.
TABLE = f"""(() => {{
  const d = [...document.querySelectorAll("details.file")].find(
    (d) => d.querySelector(".path").textContent.endsWith({json.dumps(WORKLOAD.name)}));
  return d && d.querySelector("table.lines");
}})()"""


def rows(b):
    """(line number cell, total cell, source cell) of each row the file's table shows."""
    return b.js(f"""(() => {{ const t = {TABLE}; if (!t) return null;
      const head = [...t.querySelectorAll("th")].map((th) => th.dataset.col);
      const [line, total, src] = ["Line", "Total", "Source"].map((c) => head.indexOf(c));
      return [...t.tBodies[0].rows].map((r) => r.cells.length > src
        ? [r.cells[line].textContent, r.cells[total].textContent, r.cells[src].textContent]
        : [r.textContent, "", ""]); }})()""")


def header_of(column):
    return f"""(() => {{ const t = {TABLE}; const th = [...t.querySelectorAll("th")].find(
      (th) => th.dataset.col === {json.dumps(column)}); th.id = "th-under-test"; return true; }})()"""


def percent(cell):
    return float(cell.rstrip("%")) if cell else 0.0


@pytest.mark.parametrize("python", interpreters())
def test_page_works_in_a_browser(python, tmp_path, browser):
    page = page_of(python, tmp_path)
    size = page.stat().st_size
    assert size < 2_000_000, f"page of {size} bytes for a small workload"
    b = browser
    b.errors.clear()
    b.open(page)

    # Hot lines, with their source shown as text: the markup in it never became elements.
    hot = rows(b)
    assert hot, "no table for the workload's file"
    by_line = {r[0]: r for r in hot}
    for line, needle in ((SCRIPT_LINE, "<script>window.rprofPwned = 1</script>"),
                         (IMG_LINE, "<img src=x onerror=window.rprofPwned=2>")):
        assert str(line) in by_line, f"hot line {line} not shown: {hot}"
        assert needle in by_line[str(line)][2], by_line[str(line)]
    assert b.js("window.rprofPwned === undefined"), "markup from the source ran"
    assert b.js("document.querySelectorAll('img').length") == 0
    assert b.js("document.scripts.length") == 2
    assert percent(by_line[str(SCRIPT_LINE)][1]) > 20, by_line[str(SCRIPT_LINE)]

    # The flame graph draws the workload's functions.
    drawn = b.js("rprof.flame.drawn()")
    for name in ("all", "<module>", "spin", "build"):
        assert name in drawn, f"{name} not drawn in the flame graph: {drawn[:40]}"

    # Sorting: by line first, then by total time, largest first.
    lines = [int(r[0]) for r in hot if r[0].isdigit()]
    assert lines == sorted(lines)
    b.js(header_of("Total"))
    b.click("#th-under-test")
    by_total = rows(b)
    totals = [percent(r[1]) for r in by_total]
    assert totals == sorted(totals, reverse=True), by_total
    assert [r[0] for r in by_total] != [r[0] for r in hot], "clicking Total did not reorder the rows"
    b.js(header_of("Line"))
    b.click("#th-under-test")

    # Hot lines against all lines: every line of the file, stretches without samples folded.
    b.click("#show-all")
    every = rows(b)
    assert len(every) > len(hot), (len(every), len(hot))
    assert any("lines without samples" in r[0] for r in every), every
    b.click("#show-hot")
    assert len(rows(b)) == len(hot)

    # Flame graph: zoom by clicking a frame, search, switch to memory.
    b.js("document.getElementById('flame-graph').scrollIntoView()")
    box = b.js("""(() => { const c = document.getElementById('flame'); const r = c.getBoundingClientRect();
      const row = rprof.flame.where('spin'); return row && [r.left + (row[0] + row[1]) / 2, r.top + row[2]]; })()""")
    assert box, "spin is not drawn where it can be clicked"
    b.click(at=box)
    assert b.js("rprof.flame.zoomed()") == "spin"
    b.click("#flame-reset")
    assert b.js("rprof.flame.zoomed()") == "all"
    b.type_text("#flame-search", "build")
    assert "build" in b.js("rprof.flame.matches()")
    b.click("#flame-mem")
    assert b.js("rprof.flame.metric()") == "mem"
    assert "build" in b.js("rprof.flame.drawn()")

    # Per-thread shares: the main thread and the helper.
    assert b.js("document.querySelectorAll('#thread-table tbody tr').length") == 2
    assert b.js("document.getElementById('footprint') !== null")

    BUILD.mkdir(exist_ok=True)
    pyid = next(k for k, v in PYTHONS.items() if v == python)
    shot = BUILD / f"html-report-{pyid}.png"
    b.js("window.scrollTo(0, 0)")
    b.screenshot(shot)
    assert shot.stat().st_size > 10_000
    assert b.errors == [], f"console errors: {b.errors}"


def test_a_long_file_draws_a_page_of_rows_at_a_time(tmp_path, browser):
    """A 5,000-line source file, most of it a function that never runs: all lines fold it
    into one row; unfolded, it draws 500 rows at a time, the rest on demand."""
    src = tmp_path / "long.py"
    src.write_text("\n".join([
        "def work(n):", "    x = 0", "    for i in range(n):", "        x += i * i % 7", "    return x", "",
        "def never():", *["    x = 1"] * 4990, "", "print(work(3_000_000))"]) + "\n")
    page = page_of(PYTHONS["system-3.11"], tmp_path, src)
    b = browser
    b.errors.clear()
    b.open(page)
    table = "document.querySelector('details.file table.lines').tBodies[0]"
    hot = b.js(f"{table}.rows.length")
    b.click("#show-all")
    folded = b.js(f"{table}.rows.length")
    assert hot < folded < 30, (hot, folded)
    b.click("table.lines tr.gap")
    assert b.js(f"{table}.rows.length") == 501, "unfolded, the file draws 500 rows and a 'show more' row"
    b.click("table.lines tr.more")
    assert b.js(f"{table}.rows.length") == 1001
    b.click("#show-hot")
    assert b.js(f"{table}.rows.length") == hot
    assert b.errors == [], f"console errors: {b.errors}"


def test_leaks_and_the_footprint_are_shown(tmp_path, browser):
    """The leak tests/workloads/mem_alloc.py has (line 40) is listed with its rate, and the
    footprint chart marks the peak."""
    # 16 KiB between allocation samples, as tests/test_memory.py judges this leak: at the
    # adaptive default the leak rule's evidence is sometimes too thin on this short run.
    page = page_of(PYTHONS["system-3.11"], tmp_path, OWN / "mem_alloc.py", RPROF_MEM_RATE="16384")
    b = browser
    b.errors.clear()
    b.open(page)
    leaks = b.js("[...document.querySelectorAll('#leak-table tbody tr')].map((r) => [...r.cells].map((c) => c.textContent))")
    assert [row[0].rsplit("/", 1)[-1] for row in leaks] == ["mem_alloc.py:40"], leaks
    assert float(leaks[0][2]) > 0 and leaks[0][3].endswith("%"), leaks
    assert "LEAKED.append" in leaks[0][4]
    assert b.js("document.querySelectorAll('#footprint .peak').length") == 1
    assert b.errors == [], f"console errors: {b.errors}"


def test_advice_is_shown(tmp_path, browser):
    """The page lists the hints the JSON report gives (issue 13), as text: the project's
    copy of seed_techniques.py gets the string-concatenation rule on its hot line."""
    page = page_of(PYTHONS["system-3.11"], tmp_path, OWN / "seed_techniques.py")
    data = report_json(tmp_path / "html.trace")
    want = sorted((h["file"].rsplit("/", 1)[-1] + ":" + str(h["lineno"]), h["rule"]) for h in data["rprof"]["advice"])
    assert any(rule == "str-concat-loop" for _, rule in want), want
    b = browser
    b.errors.clear()
    b.open(page)
    rows = b.js("[...document.querySelectorAll('#advice-table tbody tr')].map((r) => [...r.cells].map((c) => c.textContent))")
    assert sorted((r[0].rsplit("/", 1)[-1], r[1]) for r in rows) == want, rows
    assert all(r[4] for r in rows), rows
    assert b.errors == [], f"console errors: {b.errors}"


def test_a_merged_run_lists_its_processes(tmp_path, browser):
    """`rprof run --html` on a fork Pool: the page has a Processes table like the text
    report's, one row per process of the run with its parent, CPU share of the whole run,
    peak memory and how it ended, the same as the JSON report of the run's traces; a
    one-process page has none."""
    require(RPROF)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPROF_") and k != "LD_PRELOAD"}
    page = tmp_path / "run.html"
    r = subprocess.run([str(RPROF), "run", "--hz", "1000", "--html", str(page), "--output-dir", str(tmp_path / "t"),
                        "--", PYTHONS["system-3.11"], str(OWN / "pool.py"), "fork", "close"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    merged = subprocess.run([str(REPORT), str(tmp_path / "t"), "--json"], capture_output=True, text=True, timeout=120)
    assert merged.returncode == 0, merged.stderr
    procs = json.loads(merged.stdout)["rprof"]["processes"]
    assert len(procs) == 3, procs
    b = browser
    b.errors.clear()
    b.open(page)
    head = b.js("[...document.querySelectorAll('#process-table th')].map((th) => th.dataset.col)")
    assert head == ["PID", "Parent", "CPU %", "Peak MiB", "How it ended", "Command"], head
    shown = b.js("[...document.querySelectorAll('#process-table tbody tr')].map((r) => [...r.cells].map((c) => c.textContent))")
    assert sorted((int(row[0]), int(row[1]), row[4]) for row in shown) == sorted(
        (p["pid"], p["ppid"], p["ended"]) for p in procs), (shown, procs)
    for row in shown:
        p = next(p for p in procs if p["pid"] == int(row[0]))
        assert float(row[2].rstrip("%")) == pytest.approx(p["cpu_percent"], abs=0.051), (row, p)
        assert "pool.py" in row[5], row
    assert sum(float(row[2].rstrip("%")) for row in shown) == pytest.approx(100, abs=0.5), shown
    assert b.js("!!document.querySelector('nav a[href=\"#processes\"]')")
    assert b.errors == [], f"console errors: {b.errors}"
    (tmp_path / "one").mkdir()
    b.open(page_of(PYTHONS["system-3.11"], tmp_path / "one"))
    assert b.js("document.getElementById('processes') === null && !document.querySelector('nav a[href=\"#processes\"]')")
    assert b.errors == [], f"console errors: {b.errors}"
