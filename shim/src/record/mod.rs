//! The hot paths, run on the program's own threads: the malloc family's accounting and
//! sampling, CPU sampling in the signal handler, copies, and the stacks they capture. No
//! heap allocation, no locks, async-signal-safe calls only.

pub(crate) mod alloc_hooks;
pub(crate) mod cfi;
pub(crate) mod copy;
pub(crate) mod memory;
pub(crate) mod native_stack;
pub(crate) mod pyalloc;
pub(crate) mod sampled;
pub(crate) mod sampler;
pub(crate) mod stack;
pub(crate) mod thread_name;
pub(crate) mod thread_state;
