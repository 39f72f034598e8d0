//! `_exit` and `_Exit`: the program ends without exit handlers, but the trace is still
//! finished, and the writer reaped, before the process goes. (A forking server's workers
//! and multiprocessing's children end this way; their writers would otherwise outlive
//! them, and a PID 1 or subreaper program would reap them as unexpected children.)
//! `abort`: the process dies of SIGABRT as ever, its trace ending as killed, but with the
//! calling thread's time since its last sample in it.

use crate::{lifecycle, sys::real};
use libc::c_int;

fn exit_group(status: c_int) -> ! {
    loop {
        // SAFETY: ends the process, as glibc's _exit does.
        unsafe { libc::syscall(libc::SYS_exit_group, status) };
    }
}

/// Interposed `_exit`.
#[no_mangle]
pub extern "C" fn _exit(status: c_int) -> ! {
    lifecycle::before_exit(status);
    exit_group(status)
}

/// Interposed `_Exit` (C99's name for the same).
#[no_mangle]
pub extern "C" fn _Exit(status: c_int) -> ! {
    lifecycle::before_exit(status);
    exit_group(status)
}

/// Interposed `abort` (a failed `assert`, `std::terminate`, `Py_FatalError`).
#[no_mangle]
pub extern "C" fn abort() -> ! {
    lifecycle::before_abort();
    real::abort()
}
