//! memcpy, memmove and their `_chk` forms, interposed (the sampling and forwarding is
//! `copy.rs`).

use crate::record::copy::{forward, forward_chk, MEMCPY, MEMCPY_CHK, MEMMOVE, MEMMOVE_CHK};
use libc::{c_void, size_t};

#[no_mangle]
pub unsafe extern "C" fn memcpy(d: *mut c_void, s: *const c_void, n: size_t) -> *mut c_void {
    forward(&MEMCPY, d, s, n)
}

#[no_mangle]
pub unsafe extern "C" fn memmove(d: *mut c_void, s: *const c_void, n: size_t) -> *mut c_void {
    forward(&MEMMOVE, d, s, n)
}

#[no_mangle]
pub unsafe extern "C" fn __memcpy_chk(
    d: *mut c_void,
    s: *const c_void,
    n: size_t,
    room: size_t,
) -> *mut c_void {
    forward_chk(&MEMCPY_CHK, d, s, n, room)
}

#[no_mangle]
pub unsafe extern "C" fn __memmove_chk(
    d: *mut c_void,
    s: *const c_void,
    n: size_t,
    room: size_t,
) -> *mut c_void {
    forward_chk(&MEMMOVE_CHK, d, s, n, room)
}
