//! The writer process out of memory (a tight `ulimit -v`, a huge program): it must not
//! print Rust's allocation-failure text into the program's stderr, nor abort with a core,
//! nor leave the trace ending in a torn chunk. The shim's global allocator calls
//! [`on_alloc_failure`] before it would return null; in the writer, that writes a chunk
//! prepared at start ("trace-stopped: ... out of memory") after the last whole chunk, tells
//! the program, and exits.

use super::sink::Sink;
use crate::shared::{self, Outcome};
use rprof_format::{marks, Encoder, Record};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};

static IN_WRITER: AtomicBool = AtomicBool::new(false);
static FD: AtomicI32 = AtomicI32::new(-1);
static GOOD: AtomicU64 = AtomicU64::new(0);
/// Samples in the chunks written, for the program's exit line.
static SAMPLES: AtomicU64 = AtomicU64::new(0);
static CHUNK: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static CHUNK_LEN: AtomicUsize = AtomicUsize::new(0);

/// The label's string id: one no interned string reaches (they count up from 0).
const LABEL_ID: u32 = u32::MAX;

/// In the writer process, at start (while memory is still to be had): prepares the chunk.
pub fn arm() {
    let mut enc = Encoder::new();
    enc.push(&Record::String {
        id: LABEL_ID,
        text: format!(
            "{}: rprof's writer ran out of memory; the trace stops here",
            marks::TRACE_STOPPED
        ),
    });
    enc.push(&Record::Mark {
        t_ns: 0,
        label: LABEL_ID,
    });
    if let Some(chunk) = enc.finish_chunk() {
        let chunk: &'static mut [u8] = Box::leak(chunk.to_vec().into_boxed_slice());
        CHUNK_LEN.store(chunk.len(), Relaxed);
        CHUNK.store(chunk.as_mut_ptr(), Release);
    }
    IN_WRITER.store(true, Release);
}

/// After each whole chunk: where the next one would start, and the samples written.
pub fn written_up_to(sink: &Sink, samples: u64) {
    FD.store(sink.fd(), Relaxed);
    SAMPLES.store(samples, Relaxed);
    GOOD.store(sink.good(), Release);
}

/// Called by the global allocator when the C allocator returned null. In the program it
/// returns (Rust's own handling follows); in the writer it never returns.
pub fn on_alloc_failure() {
    if !IN_WRITER.load(Acquire) {
        return;
    }
    let (fd, at) = (FD.load(Relaxed), GOOD.load(Acquire));
    let (chunk, len) = (CHUNK.load(Acquire), CHUNK_LEN.load(Relaxed));
    // SAFETY: `chunk` is the leaked buffer of `len` bytes from `arm` (or null); pwrite and
    // ftruncate act on the writer's own trace descriptor; nothing here allocates.
    unsafe {
        if fd >= 0 && !chunk.is_null() && at > 0 {
            if libc::pwrite(fd, chunk.cast(), len, at as i64) == len as isize {
                libc::ftruncate(fd, at as i64 + len as i64);
            } else {
                libc::ftruncate(fd, at as i64);
            }
        }
    }
    if let Some(s) = shared::page() {
        s.set_outcome(Outcome::OutOfMemory);
        let written = if fd >= 0 {
            SAMPLES.load(Relaxed) + 1
        } else {
            0
        };
        super::signal_done(s, written);
    }
    // SAFETY: ends the writer process at once, running nothing that could allocate.
    unsafe { libc::_exit(0) }
}
