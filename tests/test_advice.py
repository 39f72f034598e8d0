"""Advice on hot lines (docs/ADVICE.md), under the real profiler: on seed_techniques.py
each slow twin's hot line gets its rule and no fast twin any hint; on advice_shapes.py
every slow shape gets its rule and no fast twin or cold pattern any hint."""
import ast

import pytest

from harness import OWN, PROFILE_HZ, PYTHONS, cached, file_lines, own, profiled, report, shared

PYTHON = PYTHONS["system-3.11"]

# seed_techniques.py: slow twin -> (rule, what its hot line is hot in), and the fast twins.
SEED_SLOW = {
    "concat_plus": ("str-concat-loop", "cpu"), "sum_loop": ("manual-sum", "cpu"),
    "append_loop": ("append-loop", "cpu"), "member_list": ("list-membership", "cpu"),
    "insert0_list": ("list-front", "cpu"), "count_manual": ("manual-count", "cpu"),
    "objects_noslots": ("no-slots", "alloc"),
}
SEED_FAST = ["concat_join", "sum_builtin", "list_comprehension", "member_set", "deque_appendleft",
             "count_counter", "objects_slots"]


def functions(path):
    """{qualified name: (first line, last line)} of a source file's functions."""
    out = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if isinstance(child, ast.FunctionDef):
                    out[name] = (child.lineno, child.end_lineno)
                visit(child, f"{name}.")
    visit(ast.parse(path.read_text()), "")
    return out


def innermost_loops(path):
    """{function name: (first line, last line) of its most deeply nested loop}."""
    out = {}
    for fn in ast.parse(path.read_text()).body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        best = (0, None)

        def visit(node, depth):
            nonlocal best
            for child in ast.iter_child_nodes(node):
                d = depth + isinstance(child, (ast.For, ast.While))
                if d > best[0]:
                    best = (d, child)
                visit(child, d)
        visit(fn, 0)
        if best[1] is not None:
            out[fn.name] = (best[1].lineno, best[1].end_lineno)
    return out


def advice(profile):
    hints = profile.data["rprof"]["advice"]
    assert all(set(h) >= {"file", "lineno", "function", "rule", "message", "cpu_percent", "alloc_mb"}
               for h in hints), hints
    return hints


def within(hints, span):
    return [h for h in hints if span[0] <= h["lineno"] <= span[1]]


def _profile(workload, mode, tmp_path_factory, *args):
    tmp = tmp_path_factory.mktemp(f"advice-{workload.stem}-{mode.replace(',', '-')}")
    return profiled([PYTHON, workload, *args], tmp, timeout=300, RPROF_CPU_HZ=PROFILE_HZ, RPROF_MODE=mode)


@pytest.fixture(scope="session")
def advised(tmp_path_factory):
    return cached(lambda workload, mode: _profile(workload, mode, tmp_path_factory))


SHAPES = OWN / "advice_shapes.py"
SHAPE_PARTS = ["1", "2"]


@pytest.fixture(scope="session")
def shape_runs(tmp_path_factory):
    """advice_shapes.py in its two parts (memory profiled too: no-slots needs it)."""
    return [_profile(SHAPES, "cpu,memory,copy", tmp_path_factory, "--part", part) for part in SHAPE_PARTS]


# Tests sharing a profiled run share an xdist group (Makefile: --dist loadgroup), so each
# run happens once.
SEEDS = [pytest.param(*w.values, id=w.id, marks=[*w.marks, pytest.mark.xdist_group(f"advice-{w.id}")])
         for w in (own("seed_techniques.py"), shared("seed_techniques.py"))]
SHAPES_GROUP = pytest.mark.xdist_group("advice-shapes")


@pytest.mark.parametrize("workload", SEEDS)
@pytest.mark.parametrize("mode", ["cpu", "cpu,memory,copy"])
def test_seed_slow_twins_get_their_rule_and_fast_twins_none(workload, mode, advised):
    """CPU mode, where the shares are the workload's own, checks the CPU rules; the default
    mode (memory too) no-slots, which needs the allocations; both, the fast twins."""
    p = advised(workload, mode)
    hints = advice(p)
    lines = file_lines(p.data, workload)
    fns = functions(workload)
    for name in SEED_FAST:
        assert within(hints, fns[name]) == [], f"fast twin {name} hinted: {within(hints, fns[name])}"
    loops = innermost_loops(workload)
    for name, (rule, by) in SEED_SLOW.items():
        if (rule == "no-slots") != (mode != "cpu"):
            continue
        # The hot line: by CPU, the costliest of the innermost loop (the header's says
        # so: > 85% of each function's time is there); by bytes, of the whole function.
        first, last = loops[name] if by == "cpu" else fns[name]
        key = (lambda r: r["n_malloc_mb"]) if by == "alloc" else \
            (lambda r: r["n_cpu_percent_python"] + r["n_cpu_percent_c"] + r["n_sys_percent"])
        body = [rec for ln, rec in lines.items() if first <= ln <= last]
        hot = max(body, key=key)["lineno"]
        got = [h["rule"] for h in hints if h["lineno"] == hot]
        assert rule in got, f"{name}'s hot line {hot} has {got}, not {rule}: {within(hints, fns[name])}"


@pytest.fixture(scope="module")
def shapes(shape_runs):
    workload = SHAPES
    tree = ast.parse(workload.read_text())
    tables = {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
              for t in node.targets if isinstance(t, ast.Name) and t.id in ("SLOW", "FAST", "COLD")}
    return workload, tables, [h for run in shape_runs for h in advice(run)]


@SHAPES_GROUP
def test_every_slow_shape_gets_its_rule(shapes):
    workload, tables, hints = shapes
    fns = functions(workload)
    missing = {name: rule for name, rule in tables["SLOW"].items()
               if rule not in [h["rule"] for h in within(hints, fns[name])]}
    assert not missing, f"slow shapes without their rule: {missing}; all hints: {hints}"


@SHAPES_GROUP
def test_no_fast_twin_or_cold_pattern_is_hinted(shapes):
    workload, tables, hints = shapes
    fns = functions(workload)
    assert len(tables["FAST"]) == len(tables["SLOW"]) and tables["COLD"]
    for name in tables["FAST"] + tables["COLD"]:
        assert within(hints, fns[name]) == [], f"{name} hinted: {within(hints, fns[name])}"
    # Nothing outside the slow shapes either (the drivers, the helpers they call).
    slow = [fns[name] for name in tables["SLOW"]]
    stray = [h for h in hints if not any(a <= h["lineno"] <= b for a, b in slow)]
    assert stray == [], stray




@pytest.fixture(scope="module")
def shapes_trace(shape_runs):
    return shape_runs[0]


@SHAPES_GROUP
def test_text_report_shows_hints_beside_their_lines(shapes_trace):
    text = shapes_trace.text
    for h in shapes_trace.data["rprof"]["advice"]:
        assert f"^ {h['rule']}: " in text, h
    off = report(shapes_trace.trace, "--no-advice")
    assert off.returncode == 0 and "^ " not in off.stdout and shapes_trace.text != off.stdout
    off_json = report(shapes_trace.trace, "--json", "--no-advice")
    assert off_json.returncode == 0 and '"advice"' not in off_json.stdout
