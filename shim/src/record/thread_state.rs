//! Per-thread state: plain cells in a static TLS block with no destructor, so reaching it
//! never allocates or registers anything (a TLS destructor would call into the allocator).

use std::cell::Cell;

#[repr(C)]
pub struct ThreadState {
    /// Reentrancy guard: set while this thread is inside the shim's own slow paths (and for
    /// the writer process's whole life), so nothing the shim does there is recorded.
    pub busy: Cell<bool>,
    /// Allocator events not yet folded into the process-wide counters.
    pub allocs: Cell<u64>,
    pub frees: Cell<u64>,
    pub alloc_bytes: Cell<u64>,
    pub freed_bytes: Cell<u64>,
    /// Bytes the malloc fast path may still count before taking the slow path (which folds
    /// the counters and takes allocation samples), and that budget when it was set.
    pub alloc_left: Cell<i64>,
    pub alloc_armed: Cell<i64>,
    /// Bytes from the armed point to the next allocation sample point.
    pub sample_gap: Cell<i64>,
    /// The thread's sampling mean is `mem_rate << rate_shift` (`memory::adapt`), and the
    /// window over which it counts its samples: start and count.
    pub rate_shift: Cell<u32>,
    pub window_ns: Cell<u64>,
    pub window_samples: Cell<u32>,
    /// Freed bytes until the free path folds the counters.
    pub free_left: Cell<i64>,
    /// Copied bytes until the next copy sample point.
    pub copy_left: Cell<i64>,
    /// xorshift state for the sampling gaps; 0 until the thread's first slow path.
    pub rng: Cell<u64>,
    /// The growth of the block's usable size in the last realloc, so a Python allocator
    /// realloc that ended in one counts only that growth; `u64::MAX` when none was seen.
    /// (Usable sizes on both sides: with an allocator whose size classes are coarse, the
    /// new request minus the old usable size would miss most of the growth.)
    pub realloc_growth: Cell<u64>,
    /// Inside a call to the Python allocator, whose own malloc calls it accounts for.
    pub in_python: Cell<bool>,
    /// Sampler bookkeeping: this thread's clock readings at its previous sample.
    pub last_cpu_ns: Cell<u64>,
    pub last_sys_ns: Cell<u64>,
    pub last_wall_ns: Cell<u64>,
    /// The thread's POSIX timer (`timer_t`) plus one, 0 when it has none (the kernel
    /// numbers a process's timers from 0), and its kernel thread id.
    pub timer: Cell<usize>,
    pub tid: Cell<u32>,
    /// Top of this thread's stack, bounding native stack walks; 0 until known.
    pub stack_hi: Cell<usize>,
    /// The C library function this thread waits in while a wait wrapper (`api/wait.rs`)
    /// holds the sampling signal blocked, 0 otherwise: a sample delivered as the wrapper
    /// unblocks it stands for that wait.
    pub waiting: Cell<usize>,
    /// The frame pointer of the shim's wrapper frame while it calls into the allocator
    /// (memory mode), 0 otherwise. The C library's allocator is built without frame
    /// pointers, so a CPU sample taken inside it walks the frame chain from this frame
    /// instead of from its clobbered `rbp`, and is charged to the allocation's caller.
    pub allocator_fp: Cell<usize>,
    /// The sampler's Python/native split (`sampler::long_c_call`): the innermost Python
    /// frame at this thread's previous CPU sample when that sample was in the interpreter's
    /// C code outside the eval loop (code id plus one, 0 otherwise; instruction offset),
    /// and how many samples in a row were so at that instruction.
    pub last_code: Cell<u32>,
    pub last_addrq: Cell<i32>,
    pub c_streak: Cell<u32>,
    /// When this thread's Python thread name is next to be read (`record::thread_name`),
    /// monotonic ns; 0 at once.
    pub name_read_ns: Cell<u64>,
}

// Cells start zeroed, as the TLS block does.
const _: () = assert!(std::mem::size_of::<ThreadState>() <= 256);

/// This thread's state, from the initial-exec TLS block defined in tls.c.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn with<R>(f: impl FnOnce(&ThreadState) -> R) -> R {
    let p: usize;
    // SAFETY: fs:[0] is the thread pointer on x86-64 Linux, and the GOTTPOFF entry is the
    // initial-exec offset of tls.c's block, which is a ThreadState-sized, zero-initialised,
    // suitably aligned block of this thread; the reference does not outlive the call, and the
    // thread's own code is the only writer of its cells.
    unsafe {
        std::arch::asm!(
            "mov {p}, qword ptr fs:[0]",
            "add {p}, qword ptr [rip + rprof_tls_block@GOTTPOFF]",
            p = out(reg) p,
            // `nomem`: the two words read never change for a thread (its thread pointer,
            // the GOT's constant offset), so the compiler may compute the address once per
            // function, across calls (the allocator's): 6 instructions a malloc or free.
            options(pure, nomem, nostack)
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
