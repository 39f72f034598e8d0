//! librprof.so: preloaded into a program, it interposes the malloc family, samples CPU per
//! thread with POSIX timers, samples allocations and copies by bytes, reads the Python
//! stack straight from the interpreter's memory, and hands events through shared memory to
//! a writer process that appends them to a binary trace.
//!
//! Hot paths (the malloc family, memcpy, the signal handler) allocate nothing, take no
//! lock, and call only async-signal-safe functions; everything else runs in the writer.

// Unit tests link the library without its constructor (it would profile the test runner),
// which leaves the start-up path unreachable there.
#![cfg_attr(test, allow(dead_code))]
// Every unsafe block says why it is sound (`// SAFETY:`); CI's clippy holds it to that.
#![warn(clippy::undocumented_unsafe_blocks)]

mod api;
mod config;
mod ending;
mod lifecycle;
mod output;
pub mod python;
mod record;
mod shared;
mod state;
mod sys;
mod writer;

#[global_allocator]
static HEAP: sys::global_alloc::LibcHeap = sys::global_alloc::LibcHeap;

/// Runs when the library is loaded, before the program's `main`.
extern "C" fn on_load() {
    lifecycle::start();
}

#[cfg(not(test))]
#[used]
#[link_section = ".init_array"]
static ON_LOAD: extern "C" fn() = on_load;
