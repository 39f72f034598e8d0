#!/usr/bin/env python3
"""Runs a workload we cannot edit (../shared/workloads) so that it measures its own CPU
truth in the very run being profiled, as our own workloads do (tests/workloads/_check.py).

    python3 tests/inrun.py WORKLOAD LINE[,LINE...]

The workload's source is compiled as it is, under its own file name (so its code objects
and line numbers are the ones a normal run has), with a timing decorator added to each
top-level function holding one of the LINEs (each LINE in a function of its own); its
`if __name__ == "__main__"` block does not run, `main()` is called instead.  The
decorator times the outermost call on the calling thread's CPU clock.  At the end it
prints, like --check, `  lineNN(function)  cpu-share XX.X%`: the function's CPU time as a
share of the whole process's.  That is what --check measures too (each hot line's
function, timed whole), but in a separate run, which on a shared machine can see other
load than the profiled run did.
"""
import ast
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "workloads"))
from _check import share_line  # noqa: E402  (the output form tests/truth.py reads)


def target_functions(tree, path, lines):
    """{line: the top-level function definition whose body holds it}."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found.update({no: node for no in lines if node.lineno < no <= node.end_lineno})
    missing = sorted(set(lines) - set(found))
    if missing:
        raise SystemExit(f"{path}: lines {missing} are not inside a top-level function")
    if len({node.name for node in found.values()}) != len(found):
        raise SystemExit(f"{path}: two of the lines {lines} share a function")
    return found


def timer(spent, lock):
    local = threading.local()

    def decorate(f):
        def timed(*args, **kwargs):
            if getattr(local, f.__name__, False):
                return f(*args, **kwargs)
            setattr(local, f.__name__, True)
            c0 = time.thread_time()
            try:
                return f(*args, **kwargs)
            finally:
                with lock:
                    spent[f.__name__] += time.thread_time() - c0
                setattr(local, f.__name__, False)
        return timed
    return decorate


def main():
    path, lines = sys.argv[1], [int(n) for n in sys.argv[2].split(",")]
    tree = ast.parse(open(path).read(), path)
    targets = target_functions(tree, path, lines)
    spent, lock = {node.name: 0.0 for node in targets.values()}, threading.Lock()
    for node in targets.values():
        node.decorator_list.append(ast.copy_location(ast.Name("__rprof_timed", ast.Load()), node))
    code = compile(tree, path, "exec")
    namespace = {"__name__": "workload", "__file__": path, "__rprof_timed": timer(spent, lock)}
    sys.argv = [path]
    exec(code, namespace)
    namespace["main"]()
    total = time.process_time()
    print(f"in-run total cpu {total:.3f}s")
    for no, node in sorted(targets.items()):
        print(share_line(f"line{no}({node.name})", spent[node.name], total))


if __name__ == "__main__":
    main()
