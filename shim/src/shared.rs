//! The page the program shares with its writer process: the exact allocator counters and
//! the hand-shake that ends a run.

use crate::shm::Region;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering::*};
use std::sync::OnceLock;

#[repr(C)]
pub struct Shared {
    pub allocs: AtomicU64,
    pub frees: AtomicU64,
    pub alloc_bytes: AtomicU64,
    pub freed_bytes: AtomicU64,
    /// Bytes in the Python object allocator's arenas (mapped by the interpreter, not malloc).
    pub arena_bytes: AtomicU64,
    pub peak_live: AtomicU64,
    /// CPU samples the signal handler took.
    pub samples: AtomicU64,
    /// When (ns since start, plus one) the interpreter was first seen finalizing; 0 before.
    pub finalizing: AtomicU64,
    /// Set by the program at exit, with the time (ns since start) it ended.
    pub finish: AtomicU32,
    pub end_ns: AtomicU64,
    /// Set (and futex-woken) by the writer once the trace is complete.
    pub done: AtomicU32,
    /// Samples in the finished trace, plus one; 0 when no trace file was written.
    pub written: AtomicU64,
}

static REGION: OnceLock<Region> = OnceLock::new();
/// This process's view: null before init, and in the writer process (whose own
/// allocations are not the program's).
static SHARED: AtomicPtr<Shared> = AtomicPtr::new(std::ptr::null_mut());

pub fn init() -> bool {
    let Some(r) = Region::new(std::mem::size_of::<Shared>()) else {
        return false;
    };
    let r = REGION.get_or_init(|| r);
    SHARED.store(r.ptr().cast(), Release);
    true
}

#[inline]
pub fn get() -> Option<&'static Shared> {
    unsafe { SHARED.load(Acquire).as_ref() }
}

/// The page itself, also in the writer process.
pub fn page() -> Option<&'static Shared> {
    REGION
        .get()
        .map(|r| unsafe { &*(r.ptr() as *const Shared) })
}

/// In the writer process: stop counting this process's allocations as the program's.
pub fn detach() {
    SHARED.store(std::ptr::null_mut(), Release);
}

/// In a fork child: a fresh page of its own, counters from zero.
pub fn renew() -> bool {
    REGION.get().is_some_and(Region::renew)
}
