//! Every symbol the shim exports, and nothing else: the interposed C library functions
//! (each a thin entry point over the engine in the rest of the crate), and the public C
//! API (`control.rs`, the only module `include/rprof.h` is generated from).

mod alloc;
mod control;
mod copy;
mod exec;
mod exit;
mod signal;
mod thread;
mod wait;
