//! The signals whose default action ends the process quietly: SIGHUP, SIGINT, SIGQUIT,
//! SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM and SIGTERM (`Pool.terminate()` ends multiprocessing's
//! workers with SIGTERM, a terminal's Ctrl-C sends SIGINT). Without a handler the process
//! would vanish and its trace read as "killed". So while the program leaves one of these
//! at its default, the shim's handler stands in for the default: it finishes the trace
//! (ended by signal N), restores the default and raises the signal again, so the process
//! still dies of it and its parent sees the same wait status.
//!
//! The program never sees the stand-in: `sigaction` reports the default it set, a handler
//! or SIG_IGN it sets replaces ours in the kernel (nothing of ours runs then), and setting
//! the default again puts ours back. An exec resets ours to the default, as it would the
//! default itself. A `vfork` child (our memory, not our process) is passed straight to the
//! kernel, so it never changes what the parent's view holds.

use crate::sys::signals::{Handler, Owned};
use crate::{lifecycle, state, sys::real};
use libc::{c_int, c_void, siginfo_t};
use std::sync::atomic::{AtomicBool, Ordering::*};

const SIGNALS: [c_int; 8] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGPIPE,
    libc::SIGALRM,
    libc::SIGTERM,
];

/// One signal: whether our stand-in is installed, and the action the program set (the
/// default, with its flags and mask) while it is.
struct Slot {
    ours: AtomicBool,
    view: Owned,
}

#[allow(clippy::declare_interior_mutable_const)]
const SLOT: Slot = Slot {
    ours: AtomicBool::new(false),
    view: Owned::new(),
};
static SLOTS: [Slot; SIGNALS.len()] = [SLOT; SIGNALS.len()];
/// Set once the stand-ins were installed (this process is profiled).
static ENABLED: AtomicBool = AtomicBool::new(false);

fn slot(sig: c_int) -> Option<&'static Slot> {
    SIGNALS.iter().position(|&s| s == sig).map(|i| &SLOTS[i])
}

/// Installs our stand-in for `sig`; the flags and mask are ours (every signal blocked while
/// the trace is finished).
fn take(sig: c_int) -> bool {
    // SAFETY: a zeroed sigaction filled in and passed to the real sigaction.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        let handler: Handler = on_signal;
        act.sa_sigaction = handler as usize;
        act.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigfillset(&mut act.sa_mask);
        real::sigaction(sig, &act, std::ptr::null_mut()) == 0
    }
}

/// At start: stands in for each of these signals the program has at its default (a
/// SIG_IGN inherited from the parent, as `nohup` sets, stays).
pub fn install() {
    for (&sig, slot) in SIGNALS.iter().zip(&SLOTS) {
        if crate::sys::signals::owns(sig) {
            // The toggle signal: the shim's own, never an ending.
            continue;
        }
        // SAFETY: queries the current action into a zeroed struct.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: queries the action (null new action) into the local above.
        if unsafe { real::sigaction(sig, std::ptr::null(), &mut old) } != 0 {
            continue;
        }
        if old.sa_sigaction == libc::SIG_DFL && take(sig) {
            slot.view.set_chained(&old);
            slot.ours.store(true, Release);
        }
    }
    ENABLED.store(true, Release);
}

/// In a fork child that is not profiled: the program's own actions go back in place of
/// ours, so what it queries is what the kernel holds.
pub fn uninstall() {
    ENABLED.store(false, Release);
    for (&sig, slot) in SIGNALS.iter().zip(&SLOTS) {
        if slot.ours.swap(false, AcqRel) {
            let view = slot.view.chained();
            // SAFETY: installs the action the program set for this signal.
            unsafe { real::sigaction(sig, &view, std::ptr::null_mut()) };
        }
    }
}

/// The interposed `sigaction`'s part for these signals; None for any other signal (or
/// before `install`, or in a vfork child).
///
/// # Safety
/// As `sigaction(2)`: `act` and `old` are null or valid.
pub unsafe fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> Option<c_int> {
    let slot = slot(sig)?;
    if !ENABLED.load(Acquire) || !state::this_process() {
        return None;
    }
    // SAFETY: plain structs; `act` and `old` as the caller promises.
    unsafe {
        let mut prev: libc::sigaction = std::mem::zeroed();
        if slot.ours.load(Acquire) {
            prev = slot.view.chained();
        } else if real::sigaction(sig, std::ptr::null(), &mut prev) != 0 {
            return Some(-1);
        }
        if !act.is_null() {
            if (*act).sa_sigaction == libc::SIG_DFL {
                if !slot.ours.load(Acquire) && !take(sig) {
                    return Some(-1);
                }
                slot.view.set_chained(&*act);
                slot.ours.store(true, Release);
            } else {
                if real::sigaction(sig, act, std::ptr::null_mut()) != 0 {
                    return Some(-1);
                }
                slot.ours.store(false, Release);
            }
        }
        if !old.is_null() {
            *old = prev;
        }
    }
    Some(0)
}

/// The stand-in: finishes the trace, then lets the default action happen.
/// Async-signal-safe (`lifecycle::on_ending_signal` waits on a futex, allocates nothing).
extern "C" fn on_signal(sig: c_int, _info: *mut siginfo_t, _uc: *mut c_void) {
    lifecycle::on_ending_signal(sig);
    // SAFETY: restores the default, unblocks the signal (blocked while its handler runs)
    // and sends it to this thread again: the process ends of it on the way out of the
    // system call, as it would have without us.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        real::sigaction(sig, &dfl, std::ptr::null_mut());
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            libc::syscall(libc::SYS_gettid),
            sig,
        );
    }
}
