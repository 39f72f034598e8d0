//! Native call stacks, by walking the frame-pointer chain under the probe's fault guard.
//! Code built without frame pointers ends a walk early; it cannot crash it. The first
//! frame (the return address into the caller, or the interrupted PC) is always exact.

use crate::record::cfi;
pub use crate::record::cfi::Regs;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Native frames kept per event.
pub const NATIVE_DEPTH: usize = 32;

extern "C" {
    fn rprof_fp_walk(fp: usize, lo: usize, hi: usize, out: *mut usize, cap: usize) -> usize;
}

/// The top of the calling thread's stack, for bounding walks. Not async-signal-safe (it
/// may allocate): called when a thread starts.
pub fn stack_top() -> usize {
    // SAFETY: the attribute object is initialised by pthread_getattr_np before it is read
    // and destroyed once, and the calls only write into the locals passed.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return 0;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size = 0usize;
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        if ok {
            addr as usize + size
        } else {
            0
        }
    }
}

/// The shim's own text, whose frames a caller's stack leaves out.
static SHIM_TEXT: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// The text of an allocator preloaded before the shim (`alloc_hooks.rs`), whose frames an
/// allocation's stack leaves out too: the stack starts at the program's call to malloc.
static ALLOCATOR_TEXT: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// Finds the shim's executable segment. Init time only.
pub fn init() {
    text_of(init as *const () as usize, &SHIM_TEXT);
}

/// Leaves the frames of the object holding `addr` out of allocation stacks. Init time only.
pub fn skip_object(addr: usize) {
    text_of(addr, &ALLOCATOR_TEXT);
}

/// Stores the loaded segment holding `addr` into `range`.
fn text_of(addr: usize, range: &'static [AtomicUsize; 2]) {
    struct Want {
        addr: usize,
        range: &'static [AtomicUsize; 2],
    }
    extern "C" fn visit(info: *mut libc::dl_phdr_info, _: usize, want: *mut libc::c_void) -> i32 {
        // SAFETY: dl_iterate_phdr passes a valid info with dlpi_phnum headers, and `want`
        // is the Want below, alive for the whole iteration.
        let (info, want) = unsafe { (&*info, &*(want as *const Want)) };
        for i in 0..info.dlpi_phnum as usize {
            // SAFETY: i < dlpi_phnum.
            let ph = unsafe { &*info.dlpi_phdr.add(i) };
            let start = info.dlpi_addr as usize + ph.p_vaddr as usize;
            let end = start + ph.p_memsz as usize;
            if ph.p_type == libc::PT_LOAD && (start..end).contains(&want.addr) {
                want.range[0].store(start, Relaxed);
                want.range[1].store(end, Relaxed);
                return 1;
            }
        }
        0
    }
    let mut want = Want { addr, range };
    // SAFETY: the callback only reads what the loader passes it and the Want.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut want as *mut Want).cast()) };
}

fn within(range: &[AtomicUsize; 2], pc: usize) -> bool {
    (range[0].load(Relaxed)..range[1].load(Relaxed)).contains(&pc)
}

pub fn in_shim(pc: usize) -> bool {
    within(&SHIM_TEXT, pc)
}

/// Frames an allocation's stack leaves out: the shim's and the hooked allocator's.
fn in_allocation_path(pc: usize) -> bool {
    in_shim(pc) || within(&ALLOCATOR_TEXT, pc)
}

/// This function's PC, frame pointer and stack pointer (its caller's, once inlined): where
/// a sample the shim takes itself starts its walk. The PC is the shim's, so the walk leaves
/// the shim's frames out and goes on up the frame chain.
#[inline(always)]
pub fn here() -> (usize, usize, usize) {
    let (pc, sp): (usize, usize);
    // SAFETY: reads the instruction pointer and the stack pointer into locals; touches no
    // memory.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::asm!(
            "lea {pc}, [rip]",
            "mov {sp}, rsp",
            pc = out(reg) pc,
            sp = out(reg) sp,
            options(nomem, nostack, preserves_flags)
        )
    };
    // SAFETY: as above.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        std::arch::asm!(
            "adr {pc}, .",
            "mov {sp}, sp",
            pc = out(reg) pc,
            sp = out(reg) sp,
            options(nomem, nostack, preserves_flags)
        )
    };
    (pc, frame_pointer(), sp)
}

/// This function's frame pointer (its caller's, once inlined).
#[inline(always)]
pub fn frame_pointer() -> usize {
    let fp: usize;
    // SAFETY: reads a register into a local; touches no memory.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::asm!("mov {}, rbp", out(reg) fp, options(nomem, nostack, preserves_flags))
    };
    // SAFETY: as above.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        std::arch::asm!("mov {}, x29", out(reg) fp, options(nomem, nostack, preserves_flags))
    };
    fp
}

/// Return addresses of the code that called into the shim, innermost first; `stack_hi` is
/// the top of the thread's stack (0 if unknown). Async-signal-safe.
#[inline(never)]
pub fn callers(stack_hi: usize, out: &mut [u64; NATIVE_DEPTH]) -> usize {
    let mut raw = [0usize; NATIVE_DEPTH + 8];
    let fp = frame_pointer();
    // SAFETY: the walk writes at most `raw.len()` addresses into `raw`, and reads the stack
    // only under the fault guard.
    let n = unsafe { rprof_fp_walk(fp, fp, stack_hi, raw.as_mut_ptr(), raw.len()) };
    let mut k = 0;
    for &pc in raw[..n]
        .iter()
        .skip_while(|&&pc| in_allocation_path(pc))
        .take(NATIVE_DEPTH)
    {
        out[k] = pc as u64;
        k += 1;
    }
    k
}

/// As `callers`, by DWARF unwinding: for allocations seen through another allocator's
/// hooks, since allocators are built without frame pointers and a frame-pointer walk from
/// inside one skips (or garbles) the program's frames. Not async-signal-safe (the unwinder
/// takes the loader's lock): hooks run in the allocator's normal context, never in the
/// sampling signal's.
#[inline(never)]
pub fn unwound(out: &mut [u64; NATIVE_DEPTH]) -> usize {
    let mut k = 0;
    let mut skipping = true;
    // SAFETY: the reentrancy guard is held by the caller (record_alloc), so nothing the
    // unwinder does re-enters the shim's recording paths.
    unsafe {
        backtrace::trace_unsynchronized(|frame| {
            let pc = frame.ip() as usize;
            skipping = skipping && in_allocation_path(pc);
            if !skipping {
                out[k] = pc as u64;
                k += 1;
            }
            k < NATIVE_DEPTH
        })
    };
    k
}

/// The interrupted code's stack: its PC, then the return addresses up its frame chain
/// (`sp`..`stack_hi` bounds the chain). With `exact` (the registers are where the PC ran,
/// not a wait's stand-in PC) a PC in the C library, which keeps no frame pointers, is
/// first stepped out of by its CFI (`cfi::step_out`) and the chain followed from its
/// caller's frame; without the CFI table (not yet compiled), a sample in the allocator
/// walks from the wrapper's frame, `allocator_fp` (`ThreadState::allocator_fp`), instead.
/// Time in the shim itself (the allocator wrappers) is charged to their caller, so the
/// shim's own frames are left out. Async-signal-safe.
pub fn interrupted(
    at: Regs,
    exact: bool,
    allocator_fp: usize,
    stack_hi: usize,
    out: &mut [u64; NATIVE_DEPTH],
) -> usize {
    let mut raw = [0usize; NATIVE_DEPTH];
    raw[0] = at.pc;
    let mut n = 1;
    let (mut fp, mut lo) = (at.fp, at.sp);
    match exact
        .then(|| cfi::step_out(at, stack_hi, &mut raw[1..]))
        .flatten()
    {
        Some((stepped, caller)) => {
            n += stepped;
            (fp, lo) = (caller.fp, caller.sp);
        }
        None if allocator_fp != 0 && !in_shim(at.pc) => fp = allocator_fp,
        None => {}
    }
    // SAFETY: the walk writes at most `raw.len() - n` addresses into `raw[n..]`, and reads
    // the stack only under the fault guard.
    n += unsafe { rprof_fp_walk(fp, lo, stack_hi, raw[n..].as_mut_ptr(), raw.len() - n) };
    let mut k = 0;
    // Every shim frame, not only the leading ones: a sample in the allocator walks on
    // from the wrapper's frame, above the allocator's frames.
    for &pc in raw[..n].iter().filter(|&&pc| !in_shim(pc)) {
        out[k] = pc as u64;
        k += 1;
    }
    k
}
