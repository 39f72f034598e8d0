//! The public C API: control of a profiled run from the program itself. `include/rprof.h`
//! is generated from this file alone (cbindgen; `shim/tests/header.rs` fails when the
//! committed header differs), so the comments here are the header's documentation.
//!
//! Each call returns 0 on success and -1 on error, including when the process is not
//! profiled (the library loaded but profiling off, as in a child under
//! `RPROF_FOLLOW_CHILDREN=0`). None of them may be called from a signal handler.

use crate::lifecycle;
use std::ffi::{c_char, c_int, CStr};

fn status(ok: bool) -> c_int {
    if ok {
        0
    } else {
        -1
    }
}

/// Starts recording: CPU samples, allocation samples and copy samples are taken from
/// now on. With `RPROF_START=paused` nothing is recorded until the first call.
/// Returns 0, or -1 when this process is not profiled.
#[no_mangle]
pub extern "C" fn rprof_start() -> c_int {
    status(lifecycle::set_recording(true))
}

/// Stops recording. Threads keep their timers and frees of blocks recorded earlier are
/// still accounted, so live and peak memory stay right and a later `rprof_start`
/// resumes at once. Returns 0, or -1 when this process is not profiled.
#[no_mangle]
pub extern "C" fn rprof_stop() -> c_int {
    status(lifecycle::set_recording(false))
}

/// Writes what was recorded so far to the trace file (creating it if it was not yet),
/// and waits (up to 2 s) until it is there. A trace stopped by `RPROF_MAX_MB` or a
/// failed write takes nothing more, and the call still returns 0. Returns 0, or -1 when
/// this process is not profiled or the writer did not answer in time.
#[no_mangle]
pub extern "C" fn rprof_flush() -> c_int {
    status(lifecycle::flush())
}

/// Puts a mark named `label` (UTF-8, at most 256 bytes are kept) on the report's
/// timeline, at this moment, whether or not recording is on. Returns 0, or -1 when
/// `label` is NULL, the event queue stays full, or this process is not profiled.
///
/// # Safety
/// `label` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rprof_mark(label: *const c_char) -> c_int {
    if label.is_null() {
        return -1;
    }
    // SAFETY: a non-null NUL-terminated string, as the caller promises.
    let label = unsafe { CStr::from_ptr(label) };
    status(lifecycle::mark(label.to_bytes()))
}

/// Sets the trace file's path (`%p` becomes the pid, as in `RPROF_OUTPUT`). Only before
/// recording first starts, which means under `RPROF_START=paused`: the trace is created
/// then. Returns 0, or -1 when recording already started, under `rprof run` (which
/// chooses the paths), when `path` is NULL, empty, not UTF-8 or too long, or when this
/// process is not profiled.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rprof_set_output(path: *const c_char) -> c_int {
    if path.is_null() {
        return -1;
    }
    // SAFETY: a non-null NUL-terminated string, as the caller promises.
    let path = unsafe { CStr::from_ptr(path) };
    match path.to_str() {
        Ok(p) => status(lifecycle::set_output(p)),
        Err(_) => -1,
    }
}

/// The library's version, as "MAJOR.MINOR.PATCH": a static string, never NULL. It
/// answers whether or not this process is profiled.
#[no_mangle]
pub extern "C" fn rprof_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
