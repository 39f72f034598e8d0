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

mod alloc_hooks;
mod allocator;
mod api;
mod codes;
mod config;
mod copy;
mod counters;
mod ending;
mod global_alloc;
mod late_modules;
mod lifecycle;
mod log;
mod memory;
mod native_stack;
mod output;
mod pyalloc;
pub mod python;
mod queue;
mod real;
mod sampled;
mod sampler;
mod shared;
mod shm;
mod signals;
mod stack;
mod state;
mod symbols;
mod thread_state;
mod writer;

#[global_allocator]
static HEAP: global_alloc::LibcHeap = global_alloc::LibcHeap;

/// Runs when the library is loaded, before the program's `main`.
extern "C" fn on_load() {
    lifecycle::start();
}

#[cfg(not(test))]
#[used]
#[link_section = ".init_array"]
static ON_LOAD: extern "C" fn() = on_load;
