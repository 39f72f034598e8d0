//! Ownership of the signals the shim depends on: the sampling signal (a real-time signal
//! nobody handles at start), SIGSEGV/SIGBUS (the frame probe's fault guard) and, when
//! `RPROF_TOGGLE_SIGNAL` names one, the toggle signal.
//!
//! The program may install handlers for these later; the interposed `sigaction`/`signal`
//! (`api/signal.rs`) record the program's handler and keep the shim's installed, and the shim's handler chains
//! to the program's for every signal that is not its own.

use crate::sys::real;
use libc::{c_int, c_void, siginfo_t};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering::*};

pub type Handler = extern "C" fn(c_int, *mut siginfo_t, *mut c_void);

/// The program's view of one owned signal: the action it believes is installed.
pub(crate) struct Owned {
    sig: AtomicI32,
    /// Two buffers so a reader in a handler never sees a half-written action.
    actions: [UnsafeCell<libc::sigaction>; 2],
    current: AtomicUsize,
    updating: AtomicBool,
}

// SAFETY: every field is an atomic but `actions`, whose buffers are written only by the holder
// of `updating` and read by the double-buffer protocol of `publish`.
unsafe impl Sync for Owned {}

impl Owned {
    pub(crate) const fn new() -> Owned {
        Owned {
            sig: AtomicI32::new(0),
            // SAFETY: a zeroed sigaction is a valid value (SIG_DFL, empty mask, no flags).
            actions: unsafe { std::mem::zeroed() },
            current: AtomicUsize::new(0),
            updating: AtomicBool::new(false),
        }
    }

    pub(crate) fn chained(&self) -> libc::sigaction {
        // SAFETY: readers copy only the buffer `current` names; a writer fills the other one
        // before switching. (A reader would see a torn copy only if two updates both finished
        // during its copy of a few words; the program changes these actions rarely.)
        unsafe { *self.actions[self.current.load(Acquire)].get() }
    }

    pub(crate) fn set_chained(&self, act: &libc::sigaction) {
        while self.updating.swap(true, Acquire) {
            std::hint::spin_loop();
        }
        self.publish(act);
    }

    /// Writes `act` into the buffer readers do not use, then switches them to it; the
    /// caller holds `updating`, which this releases.
    fn publish(&self, act: &libc::sigaction) {
        let next = 1 - self.current.load(Relaxed);
        // SAFETY: the caller holds `updating`, so no other writer touches `next`, and
        // readers read only `current`, which is switched to `next` after this write.
        unsafe { *self.actions[next].get() = *act };
        self.current.store(next, Release);
        self.updating.store(false, Release);
    }

    /// What the kernel does as it delivers a signal to a one-shot (`SA_RESETHAND`)
    /// handler: the action becomes the default. Runs in a signal handler, so it does not
    /// wait: should the interrupted code be changing this action (holding `updating`),
    /// the action it is setting stands instead.
    fn reset_to_default(&self) {
        if self.updating.swap(true, Acquire) {
            return;
        }
        let mut act = self.chained();
        act.sa_sigaction = libc::SIG_DFL;
        self.publish(&act);
    }
}

static SAMPLING: Owned = Owned::new();
static SEGV: Owned = Owned::new();
static BUS: Owned = Owned::new();
static TOGGLE: Owned = Owned::new();

fn owned(sig: c_int) -> Option<&'static Owned> {
    [&SAMPLING, &SEGV, &BUS, &TOGGLE]
        .into_iter()
        .find(|o| sig != 0 && o.sig.load(Acquire) == sig)
}

/// Installs `handler` for `sig` and takes ownership of it, keeping the previous action to
/// chain to.
unsafe fn take(o: &Owned, sig: c_int, handler: Handler, extra_flags: c_int) -> bool {
    let mut act: libc::sigaction = std::mem::zeroed();
    act.sa_sigaction = handler as usize;
    act.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | extra_flags;
    libc::sigemptyset(&mut act.sa_mask);
    let mut old: libc::sigaction = std::mem::zeroed();
    if real::sigaction(sig, &act, &mut old) != 0 {
        return false;
    }
    o.set_chained(&old);
    o.sig.store(sig, Release);
    true
}

/// Picks the first real-time signal with no handler, from SIGRTMIN+2 up (glibc and common
/// libraries use the lowest ones), and installs the sampler's handler on it.
pub fn install_sampling(handler: Handler) -> Option<c_int> {
    for sig in libc::SIGRTMIN() + 2..=libc::SIGRTMAX() {
        // SAFETY: a zeroed sigaction is a valid value to query into.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: queries the current action (null new action) into a local.
        if unsafe { real::sigaction(sig, std::ptr::null(), &mut old) } != 0 {
            continue;
        }
        // SAFETY: `handler` is an extern "C" handler of the SA_SIGINFO form, and the signal
        // has no handler (SIG_DFL), so installing ours takes nothing from the program.
        if old.sa_sigaction == libc::SIG_DFL && unsafe { take(&SAMPLING, sig, handler, 0) } {
            return Some(sig);
        }
    }
    None
}

/// The sampling signal, 0 before one is installed. Async-signal-safe.
pub fn sampling_signal() -> c_int {
    SAMPLING.sig.load(Acquire)
}

/// Installs the fault guard's handler. SA_NODEFER: the guard jumps out of the handler, and
/// the signal must not stay blocked after it does.
pub fn install_fault_guard(handler: Handler) {
    // SAFETY: the handler is of the SA_SIGINFO form; the program's previous actions are kept
    // and chained.
    unsafe {
        take(
            &SEGV,
            libc::SIGSEGV,
            handler,
            libc::SA_NODEFER | libc::SA_ONSTACK,
        );
        take(
            &BUS,
            libc::SIGBUS,
            handler,
            libc::SA_NODEFER | libc::SA_ONSTACK,
        );
    }
}

/// Installs the toggle's handler on `sig` (`RPROF_TOGGLE_SIGNAL`), before the sampling
/// signal is chosen (so a real-time toggle is not taken for sampling) and before `ending`
/// stands in for the signals that end a process (the toggle is not one of them then).
pub fn install_toggle(sig: c_int, handler: Handler) -> bool {
    // SAFETY: installs our own extern "C" handler.
    unsafe { take(&TOGGLE, sig, handler, 0) }
}

/// Whether the shim owns `sig` (its handler stays installed whatever the program sets).
pub fn owns(sig: c_int) -> bool {
    owned(sig).is_some()
}

/// The toggle signal passed on to the program's handler, if it installed one. Unlike
/// [`chain`], a default action is not carried out: a toggle signal is the shim's, and its
/// default (for most, ending the process) is what `RPROF_TOGGLE_SIGNAL` replaces.
///
/// # Safety
/// From the toggle signal's handler, with its arguments.
pub unsafe fn chain_toggle(sig: c_int, info: *mut siginfo_t, uc: *mut c_void) {
    let act = TOGGLE.chained();
    if act.sa_sigaction != libc::SIG_DFL && act.sa_sigaction != libc::SIG_IGN {
        // SAFETY: as the caller promises.
        unsafe { chain(sig, info, uc) };
    }
}

/// Passes a signal the shim does not consume to the program's handler, or, when the
/// program has none, gives it its default action.
pub unsafe fn chain(sig: c_int, info: *mut siginfo_t, uc: *mut c_void) {
    let Some(o) = owned(sig) else { return };
    let act = o.chained();
    // A one-shot handler runs once: the next such signal (a fault re-executed after the
    // handler returns) gets the default, as without the shim, not the handler again.
    if act.sa_flags & libc::SA_RESETHAND != 0 {
        o.reset_to_default();
    }
    match act.sa_sigaction {
        libc::SIG_IGN => {}
        libc::SIG_DFL => {
            // Restore the default and let it happen: a fault re-executes the faulting
            // instruction on return; a sent signal is raised again.
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            real::sigaction(sig, &dfl, std::ptr::null_mut());
            if (*info).si_code <= 0 {
                libc::raise(sig);
            }
        }
        h if act.sa_flags & libc::SA_SIGINFO != 0 => {
            std::mem::transmute::<usize, Handler>(h)(sig, info, uc)
        }
        h => std::mem::transmute::<usize, extern "C" fn(c_int)>(h)(sig),
    }
}

/// `sigaction` as the program sees it (exported in `api/signal.rs`): owned signals report
/// and record the program's action without replacing the shim's handler.
///
/// # Safety
/// As `sigaction`: `act` and `old` are null or valid.
pub unsafe fn program_sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    let Some(o) = owned(sig) else {
        if let Some(rc) = crate::ending::sigaction(sig, act, old) {
            return rc;
        }
        return real::sigaction(sig, act, old);
    };
    if !old.is_null() {
        *old = o.chained();
    }
    if !act.is_null() {
        o.set_chained(&*act);
    }
    0
}
