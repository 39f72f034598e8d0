//! The shim's own Rust heap goes straight to glibc's allocator (found by libc's own symbols,
//! `allocator.rs`, whatever else is preloaded), so nothing the writer process or the
//! constructor allocates is ever counted or sampled as the program's memory. A failed
//! allocation in the writer stops it quietly (`writer::oom`) instead of printing Rust's
//! allocation-failure message into the program's stderr.

use crate::sys::allocator::libc_heap;
use std::alloc::{GlobalAlloc, Layout};

pub struct LibcHeap;

const MIN_ALIGN: usize = 16;

fn checked(p: *mut u8) -> *mut u8 {
    if p.is_null() {
        crate::writer::on_alloc_failure();
    }
    p
}

// SAFETY: every block comes from glibc's allocator with at least the alignment asked for
// (malloc gives 16 bytes; memalign the rest) and is returned to it.
unsafe impl GlobalAlloc for LibcHeap {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        checked(if l.align() <= MIN_ALIGN {
            libc_heap::malloc(l.size()) as *mut u8
        } else {
            libc_heap::memalign(l.align(), l.size()) as *mut u8
        })
    }

    unsafe fn dealloc(&self, p: *mut u8, _: Layout) {
        libc_heap::free(p as _)
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if l.align() <= MIN_ALIGN {
            return checked(libc_heap::realloc(p as _, new) as *mut u8);
        }
        let q = self.alloc(Layout::from_size_align_unchecked(new, l.align()));
        if !q.is_null() {
            std::ptr::copy_nonoverlapping(p, q, l.size().min(new));
            self.dealloc(p, l);
        }
        q
    }
}
