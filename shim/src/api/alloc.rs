//! The interposed malloc family. Each entry point forwards to the allocator that follows
//! the shim (`allocator::next`: glibc's, or a tcmalloc or jemalloc preloaded after rprof)
//! and counts (`record/memory.rs`); the fast path is a few thread-local adds and one branch, with
//! no lock, no allocation and no shared write. Without memory mode it only forwards.

use crate::record::memory::{accounting, on_alloc, on_free, on_realloc};
use crate::record::native_stack::frame_pointer;
use crate::record::thread_state;
use crate::sys::allocator::next;
use libc::{c_int, c_void, size_t};

/// Runs `call`, a call into the allocator, with this frame's frame pointer left where a
/// CPU sample taken inside the allocator finds it (`ThreadState::allocator_fp`).
#[inline(always)]
fn into_allocator<R>(call: impl FnOnce() -> R) -> R {
    let fp = frame_pointer();
    // Put back what was there: a handler of the program's that allocates while the thread
    // is inside the allocator must not clear the outer call's frame.
    let outer = thread_state::with(|t| t.allocator_fp.replace(fp));
    let r = call();
    thread_state::with(|t| t.allocator_fp.set(outer));
    r
}

#[inline(always)]
unsafe fn counted(p: *mut c_void) -> *mut c_void {
    if accounting() {
        count(p);
    }
    p
}

/// Counts the block `p` (null: nothing), the caller having found accounting on.
#[inline(always)]
unsafe fn count(p: *mut c_void) {
    if !p.is_null() {
        on_alloc(p as usize, next::usable_size(p));
    }
}

#[no_mangle]
pub unsafe extern "C" fn malloc(size: size_t) -> *mut c_void {
    if accounting() {
        counted_malloc(size)
    } else {
        next::malloc(size)
    }
}

// The counting paths are out of line so that the entry points' other branch is a plain
// tail call into the allocator.
#[inline(never)]
unsafe fn counted_malloc(size: size_t) -> *mut c_void {
    let p = into_allocator(|| next::malloc(size));
    count(p);
    p
}

#[no_mangle]
pub unsafe extern "C" fn calloc(n: size_t, size: size_t) -> *mut c_void {
    if accounting() {
        let p = into_allocator(|| next::calloc(n, size));
        count(p);
        p
    } else {
        next::calloc(n, size)
    }
}

#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    if accounting() {
        counted_free(p)
    } else {
        next::free(p)
    }
}

#[inline(never)]
unsafe fn counted_free(p: *mut c_void) {
    if !p.is_null() {
        on_free(p as usize, next::usable_size(p));
        into_allocator(|| next::free(p));
    }
}

#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: size_t) -> *mut c_void {
    if p.is_null() {
        return malloc(size);
    }
    if !accounting() {
        return next::realloc(p, size);
    }
    let old = next::usable_size(p);
    let q = into_allocator(|| next::realloc(p, size));
    if !q.is_null() {
        on_realloc(p as usize, old, q as usize, next::usable_size(q));
    } else if size == 0 {
        // glibc frees `p` for realloc(p, 0) and returns NULL; any other NULL leaves `p`
        // alive.
        on_free(p as usize, old);
    }
    q
}

#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: size_t, size: size_t) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => realloc(p, total),
        None => {
            *libc::__errno_location() = libc::ENOMEM;
            std::ptr::null_mut()
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn memalign(align: size_t, size: size_t) -> *mut c_void {
    counted(into_allocator(|| next::memalign(align, size)))
}

#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(align: size_t, size: size_t) -> *mut c_void {
    memalign(align, size)
}

#[no_mangle]
pub unsafe extern "C" fn posix_memalign(
    out: *mut *mut c_void,
    align: size_t,
    size: size_t,
) -> c_int {
    if !align.is_power_of_two() || !align.is_multiple_of(std::mem::size_of::<*mut c_void>()) {
        return libc::EINVAL;
    }
    let p = memalign(align, size);
    if p.is_null() {
        return libc::ENOMEM;
    }
    *out = p;
    0
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// As glibc defines it: page-aligned.
#[no_mangle]
pub unsafe extern "C" fn valloc(size: size_t) -> *mut c_void {
    memalign(page_size(), size)
}

/// As glibc defines it: page-aligned, rounded up to whole pages (one page for 0).
#[no_mangle]
pub unsafe extern "C" fn pvalloc(size: size_t) -> *mut c_void {
    let page = page_size();
    match size.max(1).checked_next_multiple_of(page) {
        Some(rounded) => memalign(page, rounded),
        None => {
            *libc::__errno_location() = libc::ENOMEM;
            std::ptr::null_mut()
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> size_t {
    if p.is_null() {
        0
    } else {
        next::usable_size(p)
    }
}
