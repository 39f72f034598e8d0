//! The shim's footing in the C library: the libc entry points it wraps, the allocator it
//! forwards to and its own Rust heap, the signals it owns, and one-line messages.

pub(crate) mod allocator;
pub(crate) mod global_alloc;
pub(crate) mod log;
pub(crate) mod real;
pub(crate) mod signals;
