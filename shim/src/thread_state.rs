//! Per-thread state: plain cells in a static TLS block with no destructor, so reaching it
//! never allocates or registers anything (a TLS destructor would call into the allocator).

use std::cell::Cell;

#[repr(C)]
pub struct ThreadState {
    /// Reentrancy guard: set while this thread is inside the shim's own slow paths, so
    /// allocations the shim makes there (or a sample landing there) are not recorded.
    pub busy: Cell<bool>,
    /// Allocator events not yet folded into the process-wide counters.
    pub allocs: Cell<u64>,
    pub frees: Cell<u64>,
    pub alloc_bytes: Cell<u64>,
    pub freed_bytes: Cell<u64>,
    /// Sampler bookkeeping: this thread's clock readings at its previous sample.
    pub last_cpu_ns: Cell<u64>,
    pub last_sys_ns: Cell<u64>,
    pub last_wall_ns: Cell<u64>,
    /// The thread's POSIX timer (`timer_t`), 0 when it has none, and its kernel thread id.
    pub timer: Cell<usize>,
    pub tid: Cell<u32>,
}

// Cells start zeroed, as the TLS block does.
const _: () = assert!(std::mem::size_of::<ThreadState>() <= 256);

/// This thread's state, from the initial-exec TLS block defined in tls.c.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn with<R>(f: impl FnOnce(&ThreadState) -> R) -> R {
    let p: usize;
    unsafe {
        std::arch::asm!(
            "mov {p}, qword ptr fs:[0]",
            "add {p}, qword ptr [rip + rprof_tls_block@GOTTPOFF]",
            p = out(reg) p,
            options(pure, readonly, nostack)
        );
        f(&*(p as *const ThreadState))
    }
}

#[cfg(not(target_arch = "x86_64"))]
thread_local! {
    // All-zero cells: the same start state as the C block.
    static STATE: ThreadState = const { unsafe { std::mem::zeroed() } };
}

/// Elsewhere, Rust's own TLS (a `__tls_get_addr` call per access in a shared library).
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub fn with<R>(f: impl FnOnce(&ThreadState) -> R) -> R {
    STATE.with(f)
}

/// Runs `f` with the reentrancy guard held; returns `None` (running nothing) if this
/// thread is already inside the shim.
#[inline]
pub fn guarded<R>(f: impl FnOnce(&ThreadState) -> R) -> Option<R> {
    with(|t| {
        if t.busy.replace(true) {
            return None;
        }
        let r = f(t);
        t.busy.set(false);
        Some(r)
    })
}
