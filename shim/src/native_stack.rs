//! Native call stacks, by walking the frame-pointer chain under the probe's fault guard.
//! Code built without frame pointers ends a walk early; it cannot crash it. The first
//! frame (the return address into the caller, or the interrupted PC) is always exact.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Native frames kept per event.
pub const NATIVE_DEPTH: usize = 32;

extern "C" {
    fn rprof_fp_walk(fp: usize, lo: usize, hi: usize, out: *mut usize, cap: usize) -> usize;
}

/// The top of the calling thread's stack, for bounding walks. Not async-signal-safe (it
/// may allocate): called when a thread starts.
pub fn stack_top() -> usize {
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

/// Finds the shim's executable segment. Init time only.
pub fn init() {
    extern "C" fn visit(info: *mut libc::dl_phdr_info, _: usize, _: *mut libc::c_void) -> i32 {
        let here = init as *const () as usize;
        let info = unsafe { &*info };
        for i in 0..info.dlpi_phnum as usize {
            let ph = unsafe { &*info.dlpi_phdr.add(i) };
            let start = info.dlpi_addr as usize + ph.p_vaddr as usize;
            let end = start + ph.p_memsz as usize;
            if ph.p_type == libc::PT_LOAD && (start..end).contains(&here) {
                SHIM_TEXT[0].store(start, Relaxed);
                SHIM_TEXT[1].store(end, Relaxed);
                return 1;
            }
        }
        0
    }
    unsafe { libc::dl_iterate_phdr(Some(visit), std::ptr::null_mut()) };
}

pub fn in_shim(pc: usize) -> bool {
    (SHIM_TEXT[0].load(Relaxed)..SHIM_TEXT[1].load(Relaxed)).contains(&pc)
}

#[inline(always)]
fn frame_pointer() -> usize {
    let fp: usize;
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::asm!("mov {}, rbp", out(reg) fp, options(nomem, nostack, preserves_flags))
    };
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
    let n = unsafe { rprof_fp_walk(fp, fp, stack_hi, raw.as_mut_ptr(), raw.len()) };
    let mut k = 0;
    for &pc in raw[..n]
        .iter()
        .skip_while(|&&pc| in_shim(pc))
        .take(NATIVE_DEPTH)
    {
        out[k] = pc as u64;
        k += 1;
    }
    k
}

/// The interrupted code's stack: its PC, then the return addresses up its frame chain
/// (`sp`..`stack_hi` bounds the chain). Time in the shim itself (the allocator wrappers)
/// is charged to their caller, so the shim's own frames are left out. Async-signal-safe.
pub fn interrupted(
    pc: usize,
    fp: usize,
    sp: usize,
    stack_hi: usize,
    out: &mut [u64; NATIVE_DEPTH],
) -> usize {
    let mut raw = [0usize; NATIVE_DEPTH];
    raw[0] = pc;
    let n = 1 + unsafe { rprof_fp_walk(fp, sp, stack_hi, raw[1..].as_mut_ptr(), raw.len() - 1) };
    let mut k = 0;
    for &pc in raw[..n].iter().skip_while(|&&pc| in_shim(pc)) {
        out[k] = pc as u64;
        k += 1;
    }
    k
}
