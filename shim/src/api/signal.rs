//! `sigaction` and `signal`, interposed so the program's handlers for the shim's signals
//! are recorded and chained rather than installed (`sys/signals.rs`).

use crate::sys::signals;
use libc::c_int;

/// `sigaction` as the program sees it.
#[no_mangle]
pub unsafe extern "C" fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    signals::program_sigaction(sig, act, old)
}

/// glibc's `signal` calls its internal sigaction directly, so it is interposed as well,
/// with the same (BSD) semantics.
#[no_mangle]
pub unsafe extern "C" fn signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    let mut act: libc::sigaction = std::mem::zeroed();
    act.sa_sigaction = handler;
    act.sa_flags = libc::SA_RESTART;
    libc::sigemptyset(&mut act.sa_mask);
    libc::sigaddset(&mut act.sa_mask, sig);
    let mut old: libc::sigaction = std::mem::zeroed();
    if signals::program_sigaction(sig, &act, &mut old) != 0 {
        return libc::SIG_ERR;
    }
    old.sa_sigaction
}
