"""Start, stop and mark rprof's profiling from Python.

The profiler is ``librprof.so``, preloaded into the process (``rprof run -- python3 app.py``,
or ``LD_PRELOAD=/path/to/librprof.so python3 app.py``). This package only talks to that
library, through ctypes: it never loads a copy of its own, which would start a second
profiler. Imported without the library, it imports, and every call raises
:class:`NotLoaded`, which says how to run the program instead.

    import rprof

    with rprof.profile():          # recording on for the block
        work()

    @rprof.profile                 # recording on while the function runs
    def handler(request): ...

    rprof.start(); ...; rprof.stop()
    rprof.mark("warm-up done")     # a mark on the report's timeline

Run with ``RPROF_START=paused`` (set it yourself, or print it with ``rprof env --start paused``) so
that nothing is recorded until the program starts recording.

Recording is per process, not per thread: ``profile()`` blocks count how deeply they are
nested across all threads, recording starts when the outermost block is entered and
stops when it is left, unless recording was already on when it was entered (the program
was not started paused, or called :func:`start`): a block then leaves it on.
"""

import ctypes
import functools
import inspect
import os
import shutil
import threading

__all__ = ["RprofError", "NotLoaded", "available", "start", "stop", "flush", "mark",
           "set_output", "version", "profile"]

LIB_NAME = "librprof.so"


class RprofError(RuntimeError):
    """A call to the profiler failed."""


class NotLoaded(RprofError):
    """librprof.so is not in this process, so there is nothing to control."""


def _library_hint():
    """Where a librprof.so is on this machine, for the message: beside an `rprof` on PATH,
    or in the repository this package sits in (python/rprof -> target/release)."""
    here = os.path.dirname(os.path.abspath(__file__))
    exe = shutil.which("rprof")
    candidates = []
    if exe:
        bindir = os.path.dirname(os.path.realpath(exe))
        candidates += [os.path.join(bindir, LIB_NAME), os.path.join(bindir, "..", "lib", LIB_NAME)]
    candidates.append(os.path.join(here, "..", "..", "target", "release", LIB_NAME))
    for c in candidates:
        if os.path.isfile(c):
            return os.path.realpath(c)
    return None


def _not_loaded_message():
    lib = _library_hint() or f"/path/to/{LIB_NAME}"
    return (f"rprof: {LIB_NAME} is not loaded in this process (or is a build without the "
            f"control API), so profiling cannot be started or stopped. Run the program "
            f"under the profiler: `rprof run -- python3 app.py`, or "
            f"`LD_PRELOAD={lib} python3 app.py` (`rprof env` prints the settings for a "
            f"shell, a systemd unit or a Dockerfile).")


def _find():
    """The preloaded library's API, or None. Looks in the process's global symbols
    (dlopen(NULL): the preloaded libraries and those the executable links), then asks the
    loader for a librprof.so already loaded elsewhere (RTLD_NOLOAD never loads one)."""
    handles = []
    try:
        handles.append(ctypes.CDLL(None))
    except OSError:
        pass
    try:
        handles.append(ctypes.CDLL(LIB_NAME, mode=os.RTLD_NOLOAD))
    except OSError:
        pass
    for h in handles:
        try:
            fns = {name: getattr(h, "rprof_" + name)
                   for name in ("start", "stop", "flush", "mark", "set_output", "version")}
        except AttributeError:
            continue
        for name in ("start", "stop", "flush"):
            fns[name].argtypes, fns[name].restype = [], ctypes.c_int
        for name in ("mark", "set_output"):
            fns[name].argtypes, fns[name].restype = [ctypes.c_char_p], ctypes.c_int
        fns["version"].argtypes, fns["version"].restype = [], ctypes.c_char_p
        return fns
    return None


_lock = threading.RLock()
_api = None
_looked = False
# Whether recording is on, as far as this module knows: off when the process started
# paused, then as this module's own calls left it (a toggle signal or C code calling the
# library directly is not seen).
# As the shim reads it: exactly "paused" (anything else is a warning and `running`).
_recording = os.environ.get("RPROF_START", "") != "paused"
# How many profile() blocks are open, in all threads, and whether the outermost one
# turned recording on (and so turns it off as the count returns to 0).
_depth = 0
_blocks_started = False


def _lib():
    global _api, _looked
    with _lock:
        if not _looked:
            _api, _looked = _find(), True
        if _api is None:
            raise NotLoaded(_not_loaded_message())
        return _api


def _call(name, *args):
    if _lib()[name](*args) != 0:
        raise RprofError(f"rprof: rprof_{name} failed (the profiler may have stopped; its "
                         f"warning says why)")


def available():
    """Whether librprof.so is loaded in this process, with its control API."""
    try:
        _lib()
        return True
    except NotLoaded:
        return False


def start():
    """Starts recording (a no-op when it is on)."""
    global _recording
    with _lock:
        _call("start")
        _recording = True


def stop():
    """Stops recording (a no-op when it is off); what was recorded stays in the trace."""
    global _recording
    with _lock:
        _call("stop")
        _recording = False


def flush():
    """Has the trace written out up to now."""
    _call("flush")


def _text(value, what):
    if isinstance(value, str):
        value = value.encode("utf-8", "replace")
    if not isinstance(value, bytes):
        raise TypeError(f"rprof: the {what} must be str or bytes, not {type(value).__name__}")
    if b"\0" in value:
        raise ValueError(f"rprof: the {what} cannot contain a NUL character")
    return value


def mark(label):
    """Puts a mark named `label` on the report's timeline, at this moment."""
    _call("mark", _text(label, "mark's label"))


def set_output(path):
    """Where the trace goes; only before recording first starts (RPROF_START=paused)."""
    _call("set_output", _text(os.fsencode(path), "output path"))


def version():
    """The library's version."""
    return _lib()["version"]().decode("utf-8", "replace")


class _Block:
    """One `with rprof.profile():` block, or the wrapper of a decorated function. The
    state is the module's, not the object's, so one object may be entered many times over
    (recursion, several threads)."""

    def __enter__(self):
        global _depth, _recording, _blocks_started
        with _lock:
            _lib()  # without the library, the block fails here, not silently
            if _depth == 0 and not _recording:
                _call("start")
                _recording = _blocks_started = True
            _depth += 1
        return self

    def __exit__(self, *exc):
        global _depth, _recording, _blocks_started
        with _lock:
            _depth -= 1
            if _depth == 0 and _blocks_started:
                _blocks_started = False
                _call("stop")
                _recording = False
        return False

    def __call__(self, func):
        """Decorates `func`: recording is on while it runs (for a generator or coroutine
        function, from its first step to its end)."""
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def wrapper(*args, **kwargs):
                with _Block():
                    return await func(*args, **kwargs)
        elif inspect.isgeneratorfunction(func):
            @functools.wraps(func)
            def wrapper(*args, **kwargs):
                with _Block():
                    return (yield from func(*args, **kwargs))
        else:
            @functools.wraps(func)
            def wrapper(*args, **kwargs):
                with _Block():
                    return func(*args, **kwargs)
        return wrapper


def profile(func=None):
    """``with rprof.profile():`` records the block; ``@rprof.profile`` (or
    ``@rprof.profile()``) records each call of the function. Nested blocks count depth:
    recording stops when the outermost block that started it ends."""
    if func is None:
        return _Block()
    if not callable(func):
        raise TypeError(f"rprof.profile decorates a function, not {type(func).__name__}")
    return _Block()(func)


def _after_fork():
    """The child has one thread: a lock held by another thread at the fork is free."""
    global _lock
    _lock = threading.RLock()


os.register_at_fork(after_in_child=_after_fork)
