/* The shim's per-thread state block (see thread_state.rs). Defined in C because stable
 * Rust cannot ask for the initial-exec TLS model: with it, reaching the block is two
 * instructions instead of a __tls_get_addr call on every malloc and free. The library is
 * preloaded, so its TLS always sits in the static block. */
__attribute__((tls_model("initial-exec"), visibility("hidden"), aligned(64)))
__thread unsigned char rprof_tls_block[256];
