//! memcpy and memmove (exported in `api/copy.rs`): the bytes a program copies are sampled
//! (`memory::on_copy`), then the copy is forwarded to the C library's own (IFUNC-selected)
//! implementations.

use crate::record::memory::on_copy;
use libc::{c_void, size_t};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

type Copy = unsafe extern "C" fn(*mut c_void, *const c_void, size_t) -> *mut c_void;
type CopyChk = unsafe extern "C" fn(*mut c_void, *const c_void, size_t, size_t) -> *mut c_void;

pub static MEMCPY: AtomicUsize = AtomicUsize::new(0);
pub static MEMMOVE: AtomicUsize = AtomicUsize::new(0);
pub static MEMCPY_CHK: AtomicUsize = AtomicUsize::new(0);
pub static MEMMOVE_CHK: AtomicUsize = AtomicUsize::new(0);

/// Finds the C library's implementations. Runs first in the constructor; copies made
/// before it (by other libraries' constructors) take the byte loop below.
pub fn resolve() {
    for (slot, name) in [
        (&MEMCPY, c"memcpy"),
        (&MEMMOVE, c"memmove"),
        (&MEMCPY_CHK, c"__memcpy_chk"),
        (&MEMMOVE_CHK, c"__memmove_chk"),
    ] {
        slot.store(
            // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name; a null result is kept as
            // 0 (no next definition).
            unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize,
            Relaxed,
        );
    }
}

/// Overlap-safe byte copy through volatile accesses, which the compiler cannot turn back
/// into a call to memmove (this very function).
unsafe fn bytewise(d: *mut c_void, s: *const c_void, n: size_t) -> *mut c_void {
    let (d8, s8) = (d as *mut u8, s as *const u8);
    if (d8 as usize) < (s8 as usize) {
        for i in 0..n {
            d8.add(i).write_volatile(s8.add(i).read_volatile());
        }
    } else {
        for i in (0..n).rev() {
            d8.add(i).write_volatile(s8.add(i).read_volatile());
        }
    }
    d
}

/// Samples, then copies with the C library function in `slot`.
///
/// # Safety
/// As `memmove`: `d` and `s` are valid for `n` bytes.
#[inline(always)]
pub unsafe fn forward(
    slot: &AtomicUsize,
    d: *mut c_void,
    s: *const c_void,
    n: size_t,
) -> *mut c_void {
    on_copy(n);
    match slot.load(Relaxed) {
        0 => bytewise(d, s, n),
        f => std::mem::transmute::<usize, Copy>(f)(d, s, n),
    }
}

/// Samples, then copies with the C library's checked function in `slot`.
///
/// # Safety
/// As `__memmove_chk`: `d` and `s` are valid for `n` bytes, `d` for `room`.
#[inline(always)]
pub unsafe fn forward_chk(
    slot: &AtomicUsize,
    d: *mut c_void,
    s: *const c_void,
    n: size_t,
    room: size_t,
) -> *mut c_void {
    on_copy(n);
    match slot.load(Relaxed) {
        0 if n <= room => bytewise(d, s, n),
        0 => libc::abort(),
        f => std::mem::transmute::<usize, CopyChk>(f)(d, s, n, room),
    }
}
