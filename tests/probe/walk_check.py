"""Walks this interpreter's own stack with the rprof probe (through ctypes) and checks every
frame against what Python itself reports. Usage: python walk_check.py path/to/walk_test.so

Exits non-zero on the first mismatch. Run by tests/probe/check_offsets.sh for each interpreter.
"""
import ctypes
import re
import sys
import threading

from linetable_truth import line_ranges

LIB = sys.argv[1]
lib = ctypes.CDLL(LIB)  # releases the GIL around calls: the walk must not need it
lib_gil = ctypes.PyDLL(LIB)  # keeps the GIL held
PY311 = sys.version_info >= (3, 11)


class Frame(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint64),
        ("addrq", ctypes.c_int32),
        ("ok", ctypes.c_int32),
        ("key", ctypes.c_uint64 * 4),
        ("fname", ctypes.c_uint64),
        ("fname_len", ctypes.c_uint64),
        ("qname", ctypes.c_uint64),
        ("qname_len", ctypes.c_uint64),
        ("table", ctypes.c_uint64),
        ("table_len", ctypes.c_uint64),
        ("fname_kind", ctypes.c_uint32),
        ("qname_kind", ctypes.c_uint32),
        ("first_line", ctypes.c_int32),
        ("pad", ctypes.c_int32),
    ]


class Sample(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint64),
        ("addrq", ctypes.c_int32),
        ("depth", ctypes.c_int32),
        ("truncated", ctypes.c_int32),
        ("code_ref_failed", ctypes.c_int32),
        ("name_len", ctypes.c_int32),
        ("name", ctypes.c_char * 16),
    ]


for l in (lib, lib_gil):
    l.wt_walk.argtypes = [ctypes.POINTER(Frame), ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    l.wt_message.restype = ctypes.c_char_p
lib.wt_version.restype = ctypes.c_uint32
lib.wt_thread_name.restype = ctypes.c_size_t
lib.wt_thread_name.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint8)]
lib.wt_is_interpreter_pc.argtypes = [ctypes.c_void_p]
lib.wt_bench_walk.restype = ctypes.c_double
lib.wt_bench_walk.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
lib.wt_bench_walk_code_ref.restype = ctypes.c_double
lib.wt_bench_thread_name.restype = ctypes.c_double
lib.wt_bench_thread_name.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
lib.wt_prof_samples.restype = ctypes.POINTER(Sample)

checked_frames = 0


def fail(msg):
    print(f"FAIL ({sys.version.split()[0]}): {msg}")
    sys.exit(1)


def expect(cond, msg):
    if not cond:
        fail(msg)


def read_str(ptr, n, kind):
    raw = ctypes.string_at(ptr, n * kind)
    return raw.decode({1: "latin-1", 2: "utf-16-le", 4: "utf-32-le"}[kind])


def line_of(code, addrq):
    if addrq < 0:
        return code.co_firstlineno
    for start, end, line in line_ranges(code):
        if start <= addrq < end:
            return line
    return None


def frames_of(f):
    """(code, f_lineno, f_lasti) of f and its callers, as of now."""
    out = []
    while f is not None:
        out.append((f.f_code, f.f_lineno, f.f_lasti))
        f = f.f_back
    return out


def snapshot(cap=64, which=lib):
    """Walks the stack; returns (walked frames, truncated, Python's own frames)."""
    buf = (Frame * cap)()
    t = ctypes.c_int()
    n = which.wt_walk(buf, cap, ctypes.byref(t)); py = frames_of(sys._getframe())  # noqa: E702
    return list(buf[:n]), t.value, py


def compare(tag, walked, py):
    """walked[i] must describe py[i]: same code object, names, line table, line; and for
    every frame but the innermost (which moved on to the next call on the line) the same
    f_lasti."""
    global checked_frames
    expect(len(walked) <= len(py), f"{tag}: {len(walked)} walked > {len(py)} Python frames")
    for i, (w, (co, lineno, lasti)) in enumerate(zip(walked, py)):
        where = f"{tag} frame {i} ({co.co_name})"
        expect(w.code == id(co), f"{where}: code {w.code:#x} != id {id(co):#x}")
        expect(w.ok == 1, f"{where}: code_ref failed")
        expect(w.key[0] == id(co), f"{where}: key[0]")
        expect(w.key[1] == id(co.co_filename), f"{where}: key[1] is not co_filename")
        name = co.co_qualname if PY311 else co.co_name
        expect(w.key[2] == id(name), f"{where}: key[2] is not the qualname")
        expect(read_str(w.fname, w.fname_len, w.fname_kind) == co.co_filename,
               f"{where}: filename {read_str(w.fname, w.fname_len, w.fname_kind)!r}")
        expect(read_str(w.qname, w.qname_len, w.qname_kind) == name,
               f"{where}: qualname {read_str(w.qname, w.qname_len, w.qname_kind)!r} != {name!r}")
        table = co.co_linetable if sys.version_info >= (3, 10) else co.co_lnotab
        expect(ctypes.string_at(w.table, w.table_len) == table, f"{where}: line table")
        expect(w.first_line == co.co_firstlineno, f"{where}: first line")
        expect(line_of(co, w.addrq) == lineno,
               f"{where}: addrq {w.addrq} is line {line_of(co, w.addrq)}, Python says {lineno}")
        if i > 0:
            expect(w.addrq == lasti, f"{where}: addrq {w.addrq} != f_lasti {lasti}")
        checked_frames += 1


def check(tag, cap=64, which=lib):
    walked, truncated, py = snapshot(cap, which)
    compare(tag, walked, py)
    if len(py) <= cap:
        expect(len(walked) == len(py), f"{tag}: walked {len(walked)} of {len(py)} frames")
        expect(truncated == 0, f"{tag}: truncated with {len(py)} frames and cap {cap}")
    else:
        expect(len(walked) == cap and truncated == 1, f"{tag}: {len(walked)} frames, truncated={truncated}")
    return walked, py


# --- scenarios -------------------------------------------------------------------------------

def rec(n, fn, *args):
    return rec(n - 1, fn, *args) if n else fn(*args)


class Klass:
    def method(self):
        return check("method")

    @staticmethod
    def static():
        return check("staticmethod")

    @property
    def prop(self):
        return check("property")


def closure():
    def inner():
        return check("closure")
    return inner()


def gen():
    yield check("generator")
    yield [check("listcomp") for _ in range(1)][0]


def exc():
    try:
        raise ValueError
    except ValueError:
        return check("except")
    finally:
        pass


async def coro_inner():
    return check("coroutine")


async def coro_outer():
    return await coro_inner()


def run_coro():
    c = coro_outer()
    try:
        c.send(None)
    except StopIteration as stop:
        return stop.value


def exact_fit():
    n = len(frames_of(sys._getframe())) + 2  # check() and snapshot()
    check("exact fit", cap=n)


def non_ascii():
    ns = {"check": check}
    src = "def fünf():\n    return check('latin-1 name')\n\ndef 函数():\n    return fünf()\n"
    exec(compile(src, "file😀.py", "exec"), ns)
    ns["函数"]()


def in_thread(fn):
    errors = []

    def body():
        try:
            fn()
        except SystemExit as e:
            errors.append(e)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    expect(not errors, "thread scenario failed")


def probed_name(cap=120):
    buf = ctypes.create_string_buffer(cap)
    kind = ctypes.c_uint8()
    n = lib.wt_thread_name(buf, cap, ctypes.byref(kind))
    return read_str(ctypes.addressof(buf), n // max(kind.value, 1), kind.value) if n else None


def thread_names():
    """The probe's threading name of each thread equals Thread.name: default and given names,
    a non-ASCII one, a rename, a subclass, an instance whose __dict__ was materialised, and
    none for the main thread (no Thread._bootstrap frame) or a bare _thread thread."""
    import _thread
    got = {}

    def report(key):
        got[key] = (probed_name(), threading.current_thread().name)

    def cut():
        got["cut"] = (probed_name(cap=6), "函")  # kind 4: one whole code point fits

    def renamed():
        threading.current_thread().name = "renamed-ü"
        report("renamed")

    def with_dict():
        vars(threading.current_thread())
        report("dict")

    class Sub(threading.Thread):
        def run(self):
            rec(5, report, "sub")

    threads = [threading.Thread(target=report, args=("default",)),
               threading.Thread(target=report, args=("given",), name="worker-a"),
               threading.Thread(target=report, args=("wide",), name="函数-𝔘"),
               threading.Thread(target=cut, name="函数-𝔘"), threading.Thread(target=renamed), threading.Thread(target=with_dict),
               Sub(name="sub-x")]
    for t in threads:
        t.start()
        t.join()
    done = threading.Event()
    _thread.start_new_thread(lambda: (report("bare"), done.set()), ())
    done.wait()
    report("main")
    for key, (probed, truth) in got.items():
        want = None if key in ("main", "bare") else truth
        expect(probed == want, f"thread name {key}: probe {probed!r}, want {want!r}")
    print(f"thread names: {sorted(v[0] or '-' for v in got.values())}")


def main():
    expect(lib.wt_detect() == 0, f"detect: {lib.wt_message()}")
    expect(lib.wt_version() == sys.hexversion, f"version {lib.wt_version():#x}")

    f = ctypes.cast(ctypes.pythonapi.PyLong_FromLong, ctypes.c_void_p).value
    libc_fn = ctypes.cast(ctypes.CDLL(None).getpid, ctypes.c_void_p).value
    expect(lib.wt_is_interpreter_pc(f) == 1, "PyLong_FromLong not in interpreter text")
    expect(lib.wt_is_interpreter_pc(libc_fn) == 0, "getpid in interpreter text")

    check("module level")
    rec(10, check, "depth 10")
    rec(10, check, "depth 10 with GIL", 64, lib_gil)
    Klass().method()
    Klass.static()
    Klass().prop
    closure()
    list(gen())
    exc()
    run_coro()
    (lambda: check("lambda"))()
    exact_fit()
    non_ascii()
    rec(40, check, "truncated", 16)
    rec(5, in_thread, lambda: rec(7, check, "thread"))
    rec(300, check, "deep", 512)
    thread_names()

    expect(lib.wt_walk_native_thread() == 0, "native thread has Python frames")

    lib.wt_install_fault_handler()
    expect(lib.wt_fault_checks() == 0, f"fault checks {lib.wt_fault_checks():#x}")

    depth = ctypes.c_int()
    ns_walk = rec(7, lib.wt_bench_walk, 200_000, ctypes.byref(depth))
    ns_code = rec(7, lib.wt_bench_walk_code_ref, 200_000)
    expect(depth.value == len(frames_of(sys._getframe())) + 8, f"bench depth {depth.value}")
    print(f"walk at depth {depth.value}: {ns_walk:.0f} ns; with code_ref per frame: {ns_code:.0f} ns")
    got = {}

    def bench_name():
        n = ctypes.c_int()
        got["ns"] = rec(7, lib.wt_bench_thread_name, 100_000, ctypes.byref(n))
        got["len"] = n.value
    t = threading.Thread(target=bench_name, name="bench-name")
    t.start()
    t.join()
    expect(got["len"] == len("bench-name"), f"bench thread name read {got['len']} bytes")
    print(f"thread name read at depth {depth.value - 1}: {got['ns']:.0f} ns")

    sampler_stress()
    name_stress()
    lib.wt_remove_fault_handler()
    print(f"ok: {sys.version.split()[0]}: {checked_frames} frames checked")


# --- SIGPROF stress: walks at arbitrary points (frame pushes/pops, generators, threads) --------

def hot(n):
    s = 0
    for i in range(n): s += i * i  # noqa: E701
    return s


def churn():
    def g():
        for i in range(50):
            yield i
    for _ in range(200):
        sum(g())
        try:
            {}[1]
        except KeyError:
            pass
        [hot(5) for _ in range(5)]
        rec(30, hot, 10)


def sampler_stress():
    import time
    lib.wt_prof_start(1000)
    workers = [threading.Thread(target=churn) for _ in range(3)]
    for w in workers:
        w.start()
    end = time.process_time() + 1.5
    while time.process_time() < end:
        hot(20000)
        churn()
    for w in workers:
        w.join()
    n = lib.wt_prof_stop()
    samples = lib.wt_prof_samples()[:n]
    hot_code = hot.__code__
    lines = {ln for _, _, ln in line_ranges(hot_code) if ln}
    in_hot = [s for s in samples if s.code == id(hot_code)]
    expect(n > 100, f"only {n} SIGPROF samples")
    expect(all(s.code_ref_failed == 0 for s in samples), "code_ref failed on a walked frame")
    expect(sum(s.depth > 0 for s in samples) > 0.9 * n,
           f"{sum(s.depth == 0 for s in samples)} of {n} samples without Python frames")
    expect(len(in_hot) > 0.1 * n, f"{len(in_hot)} of {n} samples in hot()")
    expect(all(line_of(hot_code, s.addrq) in lines for s in in_hot), "hot() sample off its lines")
    print(f"sigprof: {n} samples, {len(in_hot)} in hot(), "
          f"{sum(s.depth == 0 for s in samples)} without Python frames, 0 code_ref failures")


def name_stress():
    """Thread names read from the handler at arbitrary points of short-lived named threads
    (their start, their frames' pushes and pops, their exit), while the main thread only
    waits, so the samples land on them: never a wrong or torn name, and most samples of a
    thread that is running Python find its name."""
    import time

    def work():
        churn()
        threading.current_thread().name = "r-" + threading.current_thread().name
        hot(20000)

    lib.wt_prof_start(1000)
    end, i = time.monotonic() + 1.5, 0
    while time.monotonic() < end:
        batch = [threading.Thread(target=work, name=f"n-{i + k}") for k in range(3)]
        i += 3
        for t in batch:
            t.start()
        for t in batch:
            t.join()
    n = lib.wt_prof_stop()
    samples = lib.wt_prof_samples()[:n]
    named = [s.name[:s.name_len] for s in samples if s.name_len]
    bad = {b for b in named if not re.fullmatch(rb"(r-)?n-\d+", b)}
    expect(not bad, f"thread names read in the handler: {bad}")
    expect(len(named) > 0.5 * n, f"only {len(named)} of {n} samples read a thread name")
    print(f"names: {len(named)} of {n} samples read a thread name, {i} threads")


if __name__ == "__main__":
    main()
