//! The C library's waiting calls, interposed so that the sampling signal never makes one
//! fail or return early. The kernel does not restart these after a handler, `SA_RESTART`
//! or not: a timer expiring while the thread sleeps (every period, in wall mode) would
//! end the wait with EINTR, and the calls that wait for a signal would take ours.
//!
//! Each wrapper keeps the sampling signal blocked in the calling thread while the call
//! waits: around the call, or in the mask the call itself installs (`ppoll`, `pselect`,
//! `epoll_pwait*`, `sigsuspend`). A timer expiring meanwhile leaves its signal pending; it
//! is delivered as the call returns, and that sample's weight (clock deltas since the
//! thread's previous sample) is the time waited, charged to the waiting function and the
//! line that called it. The calls that wait for signals (`sigtimedwait`, `sigwaitinfo`,
//! `sigwait`, `signalfd`) never see the sampling signal in their set.
//!
//! glibc calls its own internal entry points between these (`sleep` and `usleep` call
//! `__nanosleep`, `nanosleep` calls `__clock_nanosleep`, `sigwait` and `sigwaitinfo` call
//! `__sigtimedwait`), so each exported one is wrapped. Only a thread with a sampling timer
//! does anything but forward: the others never receive the signal.

use crate::{record::thread_state, sys::signals};
use libc::{c_int, c_uint, nfds_t, pollfd, sigset_t, size_t, timespec};
use std::ffi::CStr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The wrapped functions, by index into `NAMES` and `NEXT`.
#[derive(Clone, Copy)]
enum Real {
    Nanosleep,
    ClockNanosleep,
    Sleep,
    Usleep,
    ThrdSleep,
    Poll,
    PollChk,
    Ppoll,
    PpollChk,
    Select,
    Pselect,
    EpollWait,
    EpollPwait,
    EpollPwait2,
    Pause,
    Sigsuspend,
    Sigtimedwait,
    Sigwaitinfo,
    Sigwait,
    Signalfd,
}

const NAMES: [&CStr; 20] = [
    c"nanosleep",
    c"clock_nanosleep",
    c"sleep",
    c"usleep",
    c"thrd_sleep",
    c"poll",
    c"__poll_chk",
    c"ppoll",
    c"__ppoll_chk",
    c"select",
    c"pselect",
    c"epoll_wait",
    c"epoll_pwait",
    c"epoll_pwait2",
    c"pause",
    c"sigsuspend",
    c"sigtimedwait",
    c"sigwaitinfo",
    c"sigwait",
    c"signalfd",
];

static NEXT: [AtomicUsize; NAMES.len()] = [const { AtomicUsize::new(0) }; NAMES.len()];

/// Resolves every next definition at load, so that a wait in a signal handler never runs
/// `dlsym` (which is not async-signal-safe); `next` still resolves lazily for a program's
/// constructor that waits before this one ran.
extern "C" fn resolve_all() {
    for (i, name) in NAMES.iter().enumerate() {
        // SAFETY: `name` is a NUL-terminated symbol name; RTLD_NEXT from this library
        // finds the definition after ours (the C library's).
        let f = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
        NEXT[i].store(f, Ordering::Release);
    }
}

#[cfg(not(test))]
#[used]
#[link_section = ".init_array"]
static RESOLVE_ALL: extern "C" fn() = resolve_all;

/// The next definition of `r` as a function pointer of type `F`; `None` where the C
/// library has none (`epoll_pwait2` before glibc 2.35, `thrd_sleep` before 2.28).
///
/// # Safety
/// `F` must be the function pointer type of `r`'s C declaration.
unsafe fn next<F: Copy>(r: Real) -> Option<F> {
    const { assert!(std::mem::size_of::<F>() == std::mem::size_of::<usize>()) };
    let slot = &NEXT[r as usize];
    let mut f = slot.load(Ordering::Acquire);
    if f == 0 {
        f = libc::dlsym(libc::RTLD_NEXT, NAMES[r as usize].as_ptr()) as usize;
        slot.store(f, Ordering::Release);
    }
    (f != 0).then(|| std::mem::transmute_copy(&f))
}

/// The function's address, which a sample taken as its wait ends is charged to.
fn address<F>(f: &F) -> usize {
    // SAFETY: `F` is a function pointer (`next` checked its size); reading it as an
    // address is what it is.
    unsafe { std::mem::transmute_copy(f) }
}

/// The sampling signal, when the calling thread has a sampling timer; `None` otherwise
/// (the shim inactive, CPU sampling off, a thread it does not sample), when the wrappers
/// only forward.
#[inline(always)]
fn sampling() -> Option<c_int> {
    if thread_state::with(|t| t.timer.get()) == 0 {
        return None;
    }
    Some(signals::sampling_signal()).filter(|&sig| sig != 0)
}

fn only(sig: c_int) -> sigset_t {
    // SAFETY: an all-zero sigset_t is a valid (empty) set; sigemptyset and sigaddset
    // write only into it.
    unsafe {
        let mut set: sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        set
    }
}

/// Runs `call`, a wait in the C library's `func`, with the sampling signal blocked in
/// this thread; the errno and the result are the call's own. A timer signal that came
/// while it waited is delivered when the signal is unblocked, and `waiting` tells the
/// sampler it stands for the wait in `func`.
#[inline(always)]
fn blocked<R>(func: usize, call: impl FnOnce() -> R) -> R {
    let Some(sig) = sampling() else {
        return call();
    };
    let set = only(sig);
    // SAFETY: a zeroed sigset_t is valid for pthread_sigmask to fill.
    let mut old: sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: both sets are valid; pthread_sigmask changes only this thread's mask and
    // leaves errno alone.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
    // SAFETY: `old` was filled in by pthread_sigmask.
    if unsafe { libc::sigismember(&old, sig) } == 1 {
        // The program blocks it itself: nothing of ours to undo, no signal to expect.
        return call();
    }
    // Nested waits (in a handler that ran during this one) put back what they found.
    let outer = thread_state::with(|t| t.waiting.replace(func));
    let r = call();
    // SAFETY: errno is this thread's.
    let errno = unsafe { *libc::__errno_location() };
    // SAFETY: as above. A pending timer signal is delivered before this returns.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    thread_state::with(|t| t.waiting.set(outer));
    // SAFETY: errno is this thread's; the handler restores it, this keeps it exact.
    unsafe { *libc::__errno_location() = errno };
    r
}

/// Runs `call` with a signal mask that the call installs while it waits (`mask`, or none
/// for NULL): with the sampling signal added to a copy of it, or, for NULL, blocked
/// around the call. A timer signal that came while it waited is delivered as the call
/// returns and the thread's own mask comes back, inside `func` itself.
///
/// # Safety
/// `mask` is NULL or points to a sigset_t.
#[inline(always)]
unsafe fn with_mask<R>(
    func: usize,
    mask: *const sigset_t,
    call: impl FnOnce(*const sigset_t) -> R,
) -> R {
    match sampling() {
        Some(sig) if !mask.is_null() => {
            let mut copy = *mask;
            libc::sigaddset(&mut copy, sig);
            call(&copy)
        }
        Some(_) => blocked(func, || call(mask)),
        None => call(mask),
    }
}

/// `set` without the sampling signal, in `copy`, for `signalfd`, which cannot be
/// filtered as it is read: the program never receives the sampler's signal through it.
///
/// # Safety
/// `set` is NULL or points to a sigset_t.
unsafe fn without_sampling(set: *const sigset_t, copy: &mut sigset_t) -> *const sigset_t {
    match sampling() {
        Some(sig) if !set.is_null() => {
            *copy = *set;
            libc::sigdelset(copy, sig);
            copy
        }
        _ => set,
    }
}

/// A synchronous signal wait (`sigtimedwait` through `wait`) that never hands the
/// program one of the sampler's own timer expirations. A set without the sampling signal
/// is waited on as given. A set with it (the program waits for that very signal, sent by
/// itself or another process) is waited on whole, and an expiration of the sampler's
/// timer taken out of it is dropped (that one sample is lost) and the wait goes on for
/// what is left of `timeout`, so the program gets its own signals as it would unprofiled.
///
/// # Safety
/// `set` points to a sigset_t, `info` is NULL or points to a siginfo_t, `timeout` is
/// NULL (no limit) or points to a timespec.
unsafe fn wait_for_signal(
    set: *const sigset_t,
    info: *mut libc::siginfo_t,
    timeout: *const timespec,
    wait: impl Fn(*const sigset_t, *mut libc::siginfo_t, *const timespec) -> c_int,
) -> c_int {
    let Some(sig) = sampling().filter(|&s| libc::sigismember(set, s) == 1) else {
        return wait(set, info, timeout);
    };
    // SAFETY: a non-null `timeout` points to a timespec (the caller's contract).
    let deadline =
        (!timeout.is_null()).then(|| crate::state::monotonic_ns().saturating_add(ns(&*timeout)));
    let mut left: timespec = std::mem::zeroed();
    // A zero timeout still polls once.
    let mut first = true;
    loop {
        // SAFETY: an all-zero siginfo_t is a valid buffer for the kernel to fill.
        let mut got: libc::siginfo_t = std::mem::zeroed();
        let limit = match deadline {
            Some(d) => {
                let now = crate::state::monotonic_ns();
                if now >= d && !first {
                    *libc::__errno_location() = libc::EAGAIN;
                    return -1;
                }
                let rest = d.saturating_sub(now);
                left.tv_sec = (rest / 1_000_000_000) as libc::time_t;
                left.tv_nsec = (rest % 1_000_000_000) as libc::c_long;
                &left as *const timespec
            }
            None => std::ptr::null(),
        };
        first = false;
        let r = wait(set, &mut got, limit);
        if r == sig && crate::record::sampler::is_ours(&got) {
            continue;
        }
        if r > 0 && !info.is_null() {
            // SAFETY: a non-null `info` points to a siginfo_t (the caller's contract).
            *info = got;
        }
        return r;
    }
}

fn ns(t: &timespec) -> u64 {
    (t.tv_sec.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec.max(0) as u64)
}

/// What a wrapper returns, errno-style, when the C library lacks the function.
fn enosys() -> c_int {
    // SAFETY: errno is this thread's.
    unsafe { *libc::__errno_location() = libc::ENOSYS };
    -1
}

#[no_mangle]
pub unsafe extern "C" fn nanosleep(req: *const timespec, rem: *mut timespec) -> c_int {
    type F = unsafe extern "C" fn(*const timespec, *mut timespec) -> c_int;
    let Some(f) = next::<F>(Real::Nanosleep) else {
        return enosys();
    };
    blocked(address(&f), || f(req, rem))
}

#[no_mangle]
pub unsafe extern "C" fn clock_nanosleep(
    clock: libc::clockid_t,
    flags: c_int,
    req: *const timespec,
    rem: *mut timespec,
) -> c_int {
    type F = unsafe extern "C" fn(libc::clockid_t, c_int, *const timespec, *mut timespec) -> c_int;
    let Some(f) = next::<F>(Real::ClockNanosleep) else {
        return libc::ENOSYS;
    };
    blocked(address(&f), || f(clock, flags, req, rem))
}

#[no_mangle]
pub unsafe extern "C" fn sleep(seconds: c_uint) -> c_uint {
    type F = unsafe extern "C" fn(c_uint) -> c_uint;
    let Some(f) = next::<F>(Real::Sleep) else {
        enosys();
        return seconds;
    };
    blocked(address(&f), || f(seconds))
}

#[no_mangle]
pub unsafe extern "C" fn usleep(usec: libc::useconds_t) -> c_int {
    type F = unsafe extern "C" fn(libc::useconds_t) -> c_int;
    let Some(f) = next::<F>(Real::Usleep) else {
        return enosys();
    };
    blocked(address(&f), || f(usec))
}

/// C11's sleep (glibc calls `__clock_nanosleep` inside); -2 is its "other error".
#[no_mangle]
pub unsafe extern "C" fn thrd_sleep(req: *const timespec, rem: *mut timespec) -> c_int {
    type F = unsafe extern "C" fn(*const timespec, *mut timespec) -> c_int;
    let Some(f) = next::<F>(Real::ThrdSleep) else {
        return -2;
    };
    blocked(address(&f), || f(req, rem))
}

#[no_mangle]
pub unsafe extern "C" fn poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int {
    type F = unsafe extern "C" fn(*mut pollfd, nfds_t, c_int) -> c_int;
    let Some(f) = next::<F>(Real::Poll) else {
        return enosys();
    };
    blocked(address(&f), || f(fds, n, timeout))
}

/// `poll` as `_FORTIFY_SOURCE` builds call it (glibc calls `__poll` inside).
#[no_mangle]
pub unsafe extern "C" fn __poll_chk(
    fds: *mut pollfd,
    n: nfds_t,
    timeout: c_int,
    fds_len: size_t,
) -> c_int {
    type F = unsafe extern "C" fn(*mut pollfd, nfds_t, c_int, size_t) -> c_int;
    let Some(f) = next::<F>(Real::PollChk) else {
        return enosys();
    };
    blocked(address(&f), || f(fds, n, timeout, fds_len))
}

#[no_mangle]
pub unsafe extern "C" fn ppoll(
    fds: *mut pollfd,
    n: nfds_t,
    timeout: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    type F = unsafe extern "C" fn(*mut pollfd, nfds_t, *const timespec, *const sigset_t) -> c_int;
    let Some(f) = next::<F>(Real::Ppoll) else {
        return enosys();
    };
    with_mask(address(&f), mask, |m| f(fds, n, timeout, m))
}

#[no_mangle]
pub unsafe extern "C" fn __ppoll_chk(
    fds: *mut pollfd,
    n: nfds_t,
    timeout: *const timespec,
    mask: *const sigset_t,
    fds_len: size_t,
) -> c_int {
    type F = unsafe extern "C" fn(
        *mut pollfd,
        nfds_t,
        *const timespec,
        *const sigset_t,
        size_t,
    ) -> c_int;
    let Some(f) = next::<F>(Real::PpollChk) else {
        return enosys();
    };
    with_mask(address(&f), mask, |m| f(fds, n, timeout, m, fds_len))
}

#[no_mangle]
pub unsafe extern "C" fn select(
    n: c_int,
    read: *mut libc::fd_set,
    write: *mut libc::fd_set,
    except: *mut libc::fd_set,
    timeout: *mut libc::timeval,
) -> c_int {
    type F = unsafe extern "C" fn(
        c_int,
        *mut libc::fd_set,
        *mut libc::fd_set,
        *mut libc::fd_set,
        *mut libc::timeval,
    ) -> c_int;
    let Some(f) = next::<F>(Real::Select) else {
        return enosys();
    };
    blocked(address(&f), || f(n, read, write, except, timeout))
}

#[no_mangle]
pub unsafe extern "C" fn pselect(
    n: c_int,
    read: *mut libc::fd_set,
    write: *mut libc::fd_set,
    except: *mut libc::fd_set,
    timeout: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    type F = unsafe extern "C" fn(
        c_int,
        *mut libc::fd_set,
        *mut libc::fd_set,
        *mut libc::fd_set,
        *const timespec,
        *const sigset_t,
    ) -> c_int;
    let Some(f) = next::<F>(Real::Pselect) else {
        return enosys();
    };
    with_mask(address(&f), mask, |m| f(n, read, write, except, timeout, m))
}

#[no_mangle]
pub unsafe extern "C" fn epoll_wait(
    ep: c_int,
    events: *mut libc::epoll_event,
    max: c_int,
    timeout: c_int,
) -> c_int {
    type F = unsafe extern "C" fn(c_int, *mut libc::epoll_event, c_int, c_int) -> c_int;
    let Some(f) = next::<F>(Real::EpollWait) else {
        return enosys();
    };
    blocked(address(&f), || f(ep, events, max, timeout))
}

#[no_mangle]
pub unsafe extern "C" fn epoll_pwait(
    ep: c_int,
    events: *mut libc::epoll_event,
    max: c_int,
    timeout: c_int,
    mask: *const sigset_t,
) -> c_int {
    type F =
        unsafe extern "C" fn(c_int, *mut libc::epoll_event, c_int, c_int, *const sigset_t) -> c_int;
    let Some(f) = next::<F>(Real::EpollPwait) else {
        return enosys();
    };
    with_mask(address(&f), mask, |m| f(ep, events, max, timeout, m))
}

#[no_mangle]
pub unsafe extern "C" fn epoll_pwait2(
    ep: c_int,
    events: *mut libc::epoll_event,
    max: c_int,
    timeout: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    type F = unsafe extern "C" fn(
        c_int,
        *mut libc::epoll_event,
        c_int,
        *const timespec,
        *const sigset_t,
    ) -> c_int;
    let Some(f) = next::<F>(Real::EpollPwait2) else {
        return enosys();
    };
    with_mask(address(&f), mask, |m| f(ep, events, max, timeout, m))
}

#[no_mangle]
pub unsafe extern "C" fn pause() -> c_int {
    type F = unsafe extern "C" fn() -> c_int;
    let Some(f) = next::<F>(Real::Pause) else {
        return enosys();
    };
    blocked(address(&f), || f())
}

#[no_mangle]
pub unsafe extern "C" fn sigsuspend(mask: *const sigset_t) -> c_int {
    type F = unsafe extern "C" fn(*const sigset_t) -> c_int;
    let Some(f) = next::<F>(Real::Sigsuspend) else {
        return enosys();
    };
    with_mask(address(&f), mask, |m| f(m))
}

#[no_mangle]
pub unsafe extern "C" fn sigtimedwait(
    set: *const sigset_t,
    info: *mut libc::siginfo_t,
    timeout: *const timespec,
) -> c_int {
    type F = unsafe extern "C" fn(*const sigset_t, *mut libc::siginfo_t, *const timespec) -> c_int;
    let Some(f) = next::<F>(Real::Sigtimedwait) else {
        return enosys();
    };
    if set.is_null() {
        return blocked(address(&f), || f(set, info, timeout));
    }
    blocked(address(&f), || {
        wait_for_signal(set, info, timeout, |s, i, t| f(s, i, t))
    })
}

#[no_mangle]
pub unsafe extern "C" fn sigwaitinfo(set: *const sigset_t, info: *mut libc::siginfo_t) -> c_int {
    type F = unsafe extern "C" fn(*const sigset_t, *mut libc::siginfo_t) -> c_int;
    let Some(f) = next::<F>(Real::Sigwaitinfo) else {
        return enosys();
    };
    if set.is_null() {
        return blocked(address(&f), || f(set, info));
    }
    // With no timeout, the wait is sigwaitinfo itself.
    blocked(address(&f), || {
        wait_for_signal(set, info, std::ptr::null(), |s, i, _| f(s, i))
    })
}

/// Returns an error number, not -1 with errno.
#[no_mangle]
pub unsafe extern "C" fn sigwait(set: *const sigset_t, sig: *mut c_int) -> c_int {
    type F = unsafe extern "C" fn(*const sigset_t, *mut c_int) -> c_int;
    let Some(f) = next::<F>(Real::Sigwait) else {
        return libc::ENOSYS;
    };
    if set.is_null() || sampling().is_none_or(|s| libc::sigismember(set, s) != 1) {
        return blocked(address(&f), || f(set, sig));
    }
    // The set holds the sampling signal: waited through sigwaitinfo, which says where
    // each signal came from. sigwait returns an error number and is never interrupted.
    type G = unsafe extern "C" fn(*const sigset_t, *mut libc::siginfo_t) -> c_int;
    let Some(g) = next::<G>(Real::Sigwaitinfo) else {
        return libc::ENOSYS;
    };
    blocked(address(&f), || loop {
        let r = wait_for_signal(set, std::ptr::null_mut(), std::ptr::null(), |s, i, _| {
            g(s, i)
        });
        if r > 0 {
            *sig = r;
            return 0;
        }
        let e = *libc::__errno_location();
        if e != libc::EINTR {
            return e;
        }
    })
}

/// Does not wait, but what it reads later is taken from the set it is given here.
#[no_mangle]
pub unsafe extern "C" fn signalfd(fd: c_int, mask: *const sigset_t, flags: c_int) -> c_int {
    type F = unsafe extern "C" fn(c_int, *const sigset_t, c_int) -> c_int;
    let Some(f) = next::<F>(Real::Signalfd) else {
        return enosys();
    };
    let mut copy: sigset_t = std::mem::zeroed();
    f(fd, without_sampling(mask, &mut copy), flags)
}
