//! Every symbol the shim exports, and nothing else: the interposed C library functions
//! (each a thin entry point over the engine in the rest of the crate).

mod alloc;
mod copy;
mod exec;
mod exit;
mod signal;
mod thread;
mod wait;
