"""Dumps line-table truth for the Rust decode_line tests (shim/src/python/linetable.rs).

For every code object of a synthetic module and a few stdlib modules, prints
    C <co_firstlineno> <line table hex> <bytecode bytes>
    R <start> <end> <line, -1 for none>     (one per co_lines() range)
after a first line "V <sys.hexversion>". The table is co_linetable (3.10+) or co_lnotab.
"""
import dis
import os
import sys

SYNTHETIC = '''
import functools

def deco(f):
    return f

@deco
@functools.lru_cache(maxsize=None)
def decorated(a,
              b=1):
    total = 0
    for i in range(a):
        if i % 2:
            continue
        elif i > 100:
            break
        total += i
    else:
        total = -total
    return (total +
            b)

def jumps():
    x = 1
''' + '\n' * 70 + '''
    y = 2
''' + '\n' * 300 + '''
    z = 3
''' + '\n' * 5000 + '''
    return (x,
            y,
            z)

def multiline_call():
    return max(
        1,
        2,
    ) + min(3,
            4)

def backwards():
    return [
        v
        for v in range(3)
        if v
    ]

class Klass:
    attr = 1

    def method(self):
        try:
            return 1 / 0
        except ZeroDivisionError as e:
            raise ValueError() from e
        finally:
            self.attr = 2

    @property
    def prop(self):
        with open(__file__) as f:
            return f.read()

def gen():
    yield 1
    yield from range(3)

async def coro():
    await coro2()
    async with ctx() as c:
        pass
    async for x in aiter_():
        pass

lam = lambda q: q + 1

def wide():
    return ("''' + 'x' * 300 + '''", 1) + (''' + ' + '.join(['1'] * 80) + ''',)

def nested():
    def inner():
        return nonlocal_var
    nonlocal_var = 1
    return inner
'''

MATCH = '''
def matcher(v):
    match v:
        case [a, b]:
            return a
        case {"k": k}:
            return k
        case _:
            return None
'''


def codes(co):
    yield co
    for c in co.co_consts:
        if hasattr(c, "co_code"):
            yield from codes(c)


def line_ranges(co):
    """co_lines() (3.10+), or the same ranges from dis.findlinestarts() (3.8/3.9)."""
    if hasattr(co, "co_lines"):
        return list(co.co_lines())
    starts = list(dis.findlinestarts(co))
    ends = [offset for offset, _ in starts[1:]] + [len(co.co_code)]
    return [(start, end, line) for (start, line), end in zip(starts, ends)]


def dump(co):
    table = co.co_linetable if sys.version_info >= (3, 10) else co.co_lnotab
    print("C", co.co_firstlineno, table.hex() or "-", len(co.co_code))
    for start, end, line in line_ranges(co):
        print("R", start, end, -1 if line is None else line)


def main():
    print("V", sys.hexversion)
    sources = [("<synthetic>", SYNTHETIC)]
    if sys.version_info >= (3, 10):
        sources.append(("<match>", MATCH))
    stdlib = os.path.dirname(os.__file__)
    for name in ("argparse.py", "typing.py", "dataclasses.py", "asyncio/tasks.py", "inspect.py"):
        with open(os.path.join(stdlib, name), encoding="utf-8") as f:
            sources.append((name, f.read()))
    for filename, src in sources:
        for co in codes(compile(src, filename, "exec")):
            dump(co)


if __name__ == "__main__":
    main()
