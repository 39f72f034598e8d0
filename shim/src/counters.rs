//! Exact process-wide allocator counters. Each thread counts in its own cells and folds
//! into the shared atomics in batches, so the malloc fast path touches no shared cache line.

use crate::thread_state::{self, ThreadState};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Fold a thread's counts into the globals once this many bytes have gathered.
const FOLD_BYTES: u64 = 256 << 10;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static FREES: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);
static FREED_BYTES: AtomicU64 = AtomicU64::new(0);
static PEAK_LIVE: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    pub allocs: u64,
    pub frees: u64,
    pub alloc_bytes: u64,
    pub live_bytes: u64,
    pub peak_live_bytes: u64,
}

#[inline(always)]
pub fn on_alloc(bytes: usize) {
    thread_state::with(|t| {
        let n = t.allocs.get() + 1;
        let b = t.alloc_bytes.get() + bytes as u64;
        t.allocs.set(n);
        t.alloc_bytes.set(b);
        if b >= FOLD_BYTES {
            fold(t);
        }
    })
}

#[inline(always)]
pub fn on_free(bytes: usize) {
    thread_state::with(|t| {
        let n = t.frees.get() + 1;
        let b = t.freed_bytes.get() + bytes as u64;
        t.frees.set(n);
        t.freed_bytes.set(b);
        if b >= FOLD_BYTES {
            fold(t);
        }
    })
}

/// Moves this thread's pending counts into the globals (also called at thread exit).
#[cold]
#[inline(never)]
pub fn fold(t: &ThreadState) {
    ALLOCS.fetch_add(t.allocs.replace(0), Relaxed);
    FREES.fetch_add(t.frees.replace(0), Relaxed);
    ALLOC_BYTES.fetch_add(t.alloc_bytes.replace(0), Relaxed);
    FREED_BYTES.fetch_add(t.freed_bytes.replace(0), Relaxed);
    PEAK_LIVE.fetch_max(live_now(), Relaxed);
}

fn live_now() -> u64 {
    ALLOC_BYTES
        .load(Relaxed)
        .saturating_sub(FREED_BYTES.load(Relaxed))
}

pub fn snapshot() -> Snapshot {
    let live = live_now();
    Snapshot {
        allocs: ALLOCS.load(Relaxed),
        frees: FREES.load(Relaxed),
        alloc_bytes: ALLOC_BYTES.load(Relaxed),
        live_bytes: live,
        peak_live_bytes: PEAK_LIVE.load(Relaxed).max(live),
    }
}
