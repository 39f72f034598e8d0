//! The shim's own Rust heap goes straight to glibc, so nothing the writer process or the
//! constructor allocates is ever counted or sampled as the program's memory. A failed
//! allocation in the writer stops it quietly (`writer::oom`) instead of printing Rust's
//! allocation-failure message into the program's stderr.

use crate::real::{__libc_free, __libc_malloc, __libc_memalign, __libc_realloc};
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
            __libc_malloc(l.size()) as *mut u8
        } else {
            __libc_memalign(l.align(), l.size()) as *mut u8
        })
    }

    unsafe fn dealloc(&self, p: *mut u8, _: Layout) {
        __libc_free(p as _)
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if l.align() <= MIN_ALIGN {
            return checked(__libc_realloc(p as _, new) as *mut u8);
        }
        let q = self.alloc(Layout::from_size_align_unchecked(new, l.align()));
        if !q.is_null() {
            std::ptr::copy_nonoverlapping(p, q, l.size().min(new));
            self.dealloc(p, l);
        }
        q
    }
}
