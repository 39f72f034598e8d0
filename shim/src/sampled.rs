//! The sampled allocations still live, so a free of one is recorded (net memory per line).
//! Each entry maps a block's current address to its sample's id; a realloc that moves the
//! block re-keys its entries without any event. A free of any pointer must ask, so a
//! counting filter answers "surely not" with one load for almost every free; only filter
//! hits search the table.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::*};

const SLOTS: usize = 1 << 16;
const FILTER: usize = 1 << 16;
const MAX_PROBES: usize = 128;
const EMPTY: u64 = 0;
const TOMBSTONE: u64 = 1;

pub struct Sampled {
    keys: [AtomicU64; SLOTS],
    ids: [AtomicU64; SLOTS],
    filter: [AtomicU8; FILTER],
}

#[inline(always)]
fn mix(p: usize) -> usize {
    (p >> 4) ^ (p >> 17) ^ (p >> 29)
}

impl Sampled {
    pub const fn new() -> Sampled {
        Sampled {
            keys: [const { AtomicU64::new(EMPTY) }; SLOTS],
            ids: [const { AtomicU64::new(0) }; SLOTS],
            filter: [const { AtomicU8::new(0) }; FILTER],
        }
    }

    #[inline(always)]
    fn counter(&self, p: usize) -> &AtomicU8 {
        &self.filter[mix(p) & (FILTER - 1)]
    }

    fn probes(p: usize) -> impl Iterator<Item = usize> {
        let h = mix(p).wrapping_mul(0x9e37_79b9);
        (0..MAX_PROBES).map(move |i| (h + i) & (SLOTS - 1))
    }

    /// Whether `p` may be a sampled block. The hot-path test on every free.
    #[inline(always)]
    pub fn may_contain(&self, p: usize) -> bool {
        self.counter(p).load(Relaxed) != 0
    }

    /// Remembers that the block at `p` carries sample `id`; false if the table is too full
    /// (its free will go unseen).
    pub fn insert(&self, p: usize, id: u64) -> bool {
        for at in Self::probes(p) {
            let key = &self.keys[at];
            let cur = key.load(Relaxed);
            if (cur == EMPTY || cur == TOMBSTONE)
                && key.compare_exchange(cur, p as u64, AcqRel, Relaxed).is_ok()
            {
                self.ids[at].store(id, Release);
                // A saturated counter stays saturated: it can no longer be decremented safely.
                let _ = self
                    .counter(p)
                    .fetch_update(Relaxed, Relaxed, |c| c.checked_add(1));
                return true;
            }
        }
        false
    }

    /// Forgets every sample the block at `p` carries, handing each id to `f`.
    pub fn remove_all(&self, p: usize, mut f: impl FnMut(u64)) {
        for at in Self::probes(p) {
            match self.keys[at].load(Acquire) {
                EMPTY => return,
                v if v == p as u64 => {
                    if let Some(id) = self.take(at, p) {
                        f(id);
                    }
                }
                _ => {}
            }
        }
    }

    /// The block at `p` moved to `q` (realloc): its samples (a block grown many times can
    /// carry many) follow it.
    pub fn rekey(&self, p: usize, q: usize) {
        self.remove_all(p, |id| {
            self.insert(q, id);
        });
    }

    /// Empties the slot at `at`, which held `p`; its sample id, unless another thread
    /// emptied it first.
    fn take(&self, at: usize, p: usize) -> Option<u64> {
        let id = self.ids[at].load(Acquire);
        self.keys[at]
            .compare_exchange(p as u64, TOMBSTONE, AcqRel, Relaxed)
            .ok()?;
        let _ = self.counter(p).fetch_update(Relaxed, Relaxed, |c| {
            (c != u8::MAX).then(|| c.saturating_sub(1))
        });
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::Sampled;

    fn ids(s: &Sampled, p: usize) -> Vec<u64> {
        let mut v = Vec::new();
        s.remove_all(p, |id| v.push(id));
        v.sort();
        v
    }

    #[test]
    fn remembers_moves_and_forgets() {
        let s = Box::new(Sampled::new());
        let ptrs: Vec<usize> = (1..2000).map(|i| i * 48 + 0x10_0000).collect();
        for &p in &ptrs {
            assert!(s.insert(p, p as u64 / 3));
            assert!(s.may_contain(p));
        }
        assert!(ids(&s, 0x7777_0000).is_empty());
        // A block grown many times carries many samples; all of them follow it.
        for id in 0..100 {
            s.insert(ptrs[0], 10_000 + id);
        }
        s.rekey(ptrs[0], 0x9000_0000);
        assert!(!s.may_contain(ptrs[0]));
        let mut all: Vec<u64> = (0..100).map(|id| 10_000 + id).collect();
        all.push(ptrs[0] as u64 / 3);
        all.sort();
        assert_eq!(ids(&s, 0x9000_0000), all);
        for &p in &ptrs[1..] {
            assert_eq!(ids(&s, p), [p as u64 / 3], "{p:#x}");
            assert!(ids(&s, p).is_empty());
        }
        assert!(ptrs.iter().all(|&p| !s.may_contain(p)));
    }
}
