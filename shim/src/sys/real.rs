//! The few libc entry points the shim wraps, reached without going through our interposed
//! symbols. (The allocator is `allocator.rs`.)

use libc::{c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

type PthreadCreate = unsafe extern "C" fn(
    *mut libc::pthread_t,
    *const libc::pthread_attr_t,
    extern "C" fn(*mut c_void) -> *mut c_void,
    *mut c_void,
) -> c_int;
type Sigaction = unsafe extern "C" fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int;
type Abort = unsafe extern "C" fn() -> !;

static PTHREAD_CREATE: AtomicUsize = AtomicUsize::new(0);
static SIGACTION: AtomicUsize = AtomicUsize::new(0);
static ABORT: AtomicUsize = AtomicUsize::new(0);

/// Resolves the next definitions of the symbols the shim interposes (not the allocator).
/// Runs in the library constructor, before any other thread exists.
pub fn resolve() {
    next(&PTHREAD_CREATE, c"pthread_create");
    next(&SIGACTION, c"sigaction");
    // Now, not when the program aborts: its heap or the loader's lock may be what failed.
    next(&ABORT, c"abort");
}

/// The next definition of `name`, resolved on first use if the constructor has not run yet
/// (a program's own constructors can run before ours).
pub fn next(slot: &AtomicUsize, name: &std::ffi::CStr) -> usize {
    let mut f = slot.load(Ordering::Acquire);
    if f == 0 {
        // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name; a null result is stored as 0
        // (not found).
        f = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
        slot.store(f, Ordering::Release);
    }
    f
}

pub unsafe fn pthread_create(
    t: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    start: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
) -> c_int {
    let f = next(&PTHREAD_CREATE, c"pthread_create");
    if f == 0 {
        return libc::EAGAIN;
    }
    std::mem::transmute::<usize, PthreadCreate>(f)(t, attr, start, arg)
}

pub unsafe fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    let f = next(&SIGACTION, c"sigaction");
    if f == 0 {
        *libc::__errno_location() = libc::ENOSYS;
        return -1;
    }
    std::mem::transmute::<usize, Sigaction>(f)(sig, act, old)
}

/// The C library's `abort`: it never returns. Should it be missing, SIGABRT at its default
/// action ends the process all the same.
pub fn abort() -> ! {
    let f = next(&ABORT, c"abort");
    if f != 0 {
        // SAFETY: `f` is the next definition of `abort`, which has this signature.
        unsafe { std::mem::transmute::<usize, Abort>(f)() }
    }
    loop {
        // SAFETY: a zeroed sigaction is SIG_DFL with no flags; the real sigaction (not the
        // program's view, `api/signal.rs`) puts the default back, then the signal is raised.
        unsafe {
            let dfl: libc::sigaction = std::mem::zeroed();
            sigaction(libc::SIGABRT, &dfl, std::ptr::null_mut());
            libc::raise(libc::SIGABRT);
        }
    }
}
