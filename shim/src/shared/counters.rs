//! Exact process-wide allocator counters. Each thread counts in its own cells (see
//! `record/memory.rs`) and folds them into the shared page in batches, so the malloc fast path
//! touches no shared cache line.

use crate::record::thread_state::ThreadState;
use crate::shared;
use rprof_format::Counters;
use std::sync::atomic::Ordering::Relaxed;

/// Moves a thread's pending counts into the shared page (from the slow paths and at thread
/// exit). Before the page exists, the counts wait in the thread's cells.
pub fn fold(t: &ThreadState) {
    let Some(s) = shared::get() else { return };
    s.allocs.fetch_add(t.allocs.replace(0), Relaxed);
    s.frees.fetch_add(t.frees.replace(0), Relaxed);
    s.alloc_bytes.fetch_add(t.alloc_bytes.replace(0), Relaxed);
    s.freed_bytes.fetch_add(t.freed_bytes.replace(0), Relaxed);
    s.peak_live.fetch_max(live(s), Relaxed);
}

pub fn arena_mapped(bytes: usize) {
    if let Some(s) = shared::get() {
        s.arena_bytes.fetch_add(bytes as u64, Relaxed);
        s.peak_live.fetch_max(live(s), Relaxed);
    }
}

pub fn arena_unmapped(bytes: usize) {
    if let Some(s) = shared::get() {
        s.arena_bytes.fetch_sub(bytes as u64, Relaxed);
    }
}

fn live(s: &shared::Shared) -> u64 {
    let malloc = s
        .alloc_bytes
        .load(Relaxed)
        .saturating_sub(s.freed_bytes.load(Relaxed));
    malloc + s.arena_bytes.load(Relaxed)
}

/// The counters as the trace records them, stamped `t_ns`.
pub fn snapshot(s: &shared::Shared, t_ns: u64) -> Counters {
    let live = live(s);
    Counters {
        t_ns,
        allocs: s.allocs.load(Relaxed),
        frees: s.frees.load(Relaxed),
        alloc_bytes: s.alloc_bytes.load(Relaxed),
        live_bytes: live,
        peak_live_bytes: s.peak_live.load(Relaxed).max(live),
        python_live_bytes: s.arena_bytes.load(Relaxed),
    }
}
