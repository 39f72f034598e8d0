//! librprof.so: preloaded into a program, it interposes the malloc family, samples CPU per
//! thread with POSIX timers, reads the interrupted thread's Python stack straight from
//! memory, and hands events to a writer thread that appends them to a binary trace.
//!
//! Hot paths (the malloc family, the signal handler) allocate nothing, take no lock, and
//! call only async-signal-safe functions; everything else runs on the writer thread.

// Unit tests link the library without its constructor (it would profile the test runner),
// which leaves the start-up path unreachable there.
#![cfg_attr(test, allow(dead_code))]

mod alloc_api;
mod codes;
mod config;
mod counters;
mod global_alloc;
mod log;
mod output;
pub mod python;
mod queue;
mod real;
mod runtime;
mod sampler;
mod signals;
mod thread_state;
mod writer;

#[global_allocator]
static HEAP: global_alloc::LibcHeap = global_alloc::LibcHeap;

/// Runs when the library is loaded, before the program's `main`.
extern "C" fn on_load() {
    runtime::start();
}

#[cfg(not(test))]
#[used]
#[link_section = ".init_array"]
static ON_LOAD: extern "C" fn() = on_load;
