//! `pthread_create`, interposed so every thread gets its sampling timer (`record/sampler.rs`).

use crate::record::sampler;
use libc::{c_int, c_void};

#[no_mangle]
pub unsafe extern "C" fn pthread_create(
    thread: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    start: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
) -> c_int {
    sampler::create_thread(thread, attr, start, arg)
}
