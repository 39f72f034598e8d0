//! The sampled allocations still live, so a free of one is recorded (net memory per line).
//! Each entry maps a block's current address to its sample's id; a realloc that moves the
//! block re-keys its entries without any event. A free of any pointer must ask, so a
//! counting filter answers "surely not" for almost every free; only filter hits search
//! the table. The free path reads only the filter's summary bitmap (one bit per counter,
//! "non-zero"), 8 KiB that stay in L1 where the 64 KiB of counters would not: every
//! Python object's free asks.

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
    nonzero: [AtomicU64; FILTER / 64],
}

/// A block's filter index (its low 16 bits are used): its address in 16-byte units, the
/// allocators' alignment, so 1 MiB of address space spreads over the whole filter. One
/// shift: every free computes it. Measured on alloc_heavy.py at 1/10 (callgrind, 12.5 M
/// Python frees): the earlier (p >> 4) ^ (p >> 17) ^ (p >> 29) sent 28,500 frees to the
/// table lookup, (p >> 4) ^ (p >> 20) 17,000, this 34,000 (0.3% of them), and it takes
/// 6 instructions fewer than the first on every free (py_free: 12 in all): the run took
/// 34 M instructions fewer than with the second. Blocks at one offset of many 1 MiB regions share a counter; that costs
/// lookups, never a missed free.
#[inline(always)]
fn mix(p: usize) -> usize {
    p >> 4
}

impl Sampled {
    pub const fn new() -> Sampled {
        Sampled {
            keys: [const { AtomicU64::new(EMPTY) }; SLOTS],
            ids: [const { AtomicU64::new(0) }; SLOTS],
            filter: [const { AtomicU8::new(0) }; FILTER],
            nonzero: [const { AtomicU64::new(0) }; FILTER / 64],
        }
    }

    #[inline(always)]
    fn counter(&self, p: usize) -> &AtomicU8 {
        &self.filter[mix(p) & (FILTER - 1)]
    }

    /// The summary word holding `p`'s counter's bit, and the bit.
    #[inline(always)]
    fn summary(&self, p: usize) -> (&AtomicU64, u64) {
        let i = mix(p) & (FILTER - 1);
        (&self.nonzero[i / 64], 1 << (i % 64))
    }

    fn probes(p: usize) -> impl Iterator<Item = usize> {
        let h = mix(p).wrapping_mul(0x9e37_79b9);
        (0..MAX_PROBES).map(move |i| (h + i) & (SLOTS - 1))
    }

    /// Whether `p` may be a sampled block. The hot-path test on every free.
    #[inline(always)]
    pub fn may_contain(&self, p: usize) -> bool {
        let (word, bit) = self.summary(p);
        word.load(Relaxed) & bit != 0
    }

    /// Remembers that the block at `p` carries sample `id`; false if the table is too full
    /// (its free will go unseen).
    pub fn insert(&self, p: usize, id: u64) -> bool {
        for at in Self::probes(p) {
            let key = &self.keys[at];
            // A free slot lost to a race is tried again: it may have become EMPTY (see
            // `take`), and an entry must never sit past an EMPTY slot of its chain.
            let mut cur = key.load(Acquire);
            let mut won = false;
            while cur == EMPTY || cur == TOMBSTONE {
                match key.compare_exchange(cur, p as u64, AcqRel, Acquire) {
                    Ok(_) => {
                        won = true;
                        break;
                    }
                    Err(now) => cur = now,
                }
            }
            if won {
                self.ids[at].store(id, Release);
                // A saturated counter stays saturated: it can no longer be decremented safely.
                let _ = self
                    .counter(p)
                    .fetch_update(SeqCst, SeqCst, |c| c.checked_add(1));
                let (word, bit) = self.summary(p);
                word.fetch_or(bit, SeqCst);
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

    /// Turns the tombstone at `at`, and those before it, back into EMPTY while the slot
    /// after is EMPTY: no chain runs through them any more. Without this, tombstones fill
    /// the table over a long run and every filter hit probes the whole chain (it cost 2% of
    /// alloc_heavy). An insert racing past the slot at that moment can leave its entry
    /// beyond an EMPTY slot, and its free unseen: one sample counted live, no crash.
    fn reclaim(&self, mut at: usize) {
        for _ in 0..MAX_PROBES {
            if self.keys[(at + 1) & (SLOTS - 1)].load(Acquire) != EMPTY
                || self.keys[at]
                    .compare_exchange(TOMBSTONE, EMPTY, AcqRel, Relaxed)
                    .is_err()
            {
                return;
            }
            at = at.wrapping_sub(1) & (SLOTS - 1);
        }
    }

    /// Empties the slot at `at`, which held `p`; its sample id, unless another thread
    /// emptied it first.
    fn take(&self, at: usize, p: usize) -> Option<u64> {
        let id = self.ids[at].load(Acquire);
        self.keys[at]
            .compare_exchange(p as u64, TOMBSTONE, AcqRel, Relaxed)
            .ok()?;
        self.reclaim(at);
        let counter = self.counter(p);
        let was = counter.fetch_update(SeqCst, SeqCst, |c| {
            (c != u8::MAX).then(|| c.saturating_sub(1))
        });
        if was == Ok(1) {
            // Cleared, then re-set if an insert raced in between: the bit is never left
            // clear over a live entry (at worst briefly, while this thread re-checks).
            let (word, bit) = self.summary(p);
            word.fetch_and(!bit, SeqCst);
            if counter.load(SeqCst) != 0 {
                word.fetch_or(bit, SeqCst);
            }
        }
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::{Sampled, EMPTY};
    use std::sync::atomic::Ordering::Relaxed;

    /// An empty table built on the heap: `Box::new(Sampled::new())` builds its 1.1 MB on the
    /// stack first in a debug build, past a test thread's 2 MiB once copied.
    fn boxed() -> Box<Sampled> {
        // SAFETY: every field is an array of atomics whose start value is 0 (EMPTY keys, no
        // ids, clear filter counters and bits), so all-zero bytes are an empty Sampled.
        unsafe { Box::<Sampled>::new_zeroed().assume_init() }
    }

    fn ids(s: &Sampled, p: usize) -> Vec<u64> {
        let mut v = Vec::new();
        s.remove_all(p, |id| v.push(id));
        v.sort();
        v
    }

    #[test]
    fn remembers_moves_and_forgets() {
        let s = boxed();
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

    #[test]
    fn churn_leaves_no_tombstones() {
        let s = boxed();
        let used = |s: &Sampled| s.keys.iter().filter(|k| k.load(Relaxed) != EMPTY).count();
        // A long run's churn: blocks sampled and freed, a few hundred live at a time.
        let mut live = std::collections::VecDeque::new();
        for i in 0..200_000usize {
            let p = 0x10_0000 + (i * 2654435761 % (1 << 30)) * 16;
            assert!(s.insert(p, i as u64));
            live.push_back(p);
            if live.len() > 300 {
                assert_eq!(ids(&s, live.pop_front().unwrap()).len(), 1);
            }
        }
        assert!(
            used(&s) < 600,
            "{} slots used for {} live",
            used(&s),
            live.len()
        );
        while let Some(p) = live.pop_front() {
            assert_eq!(ids(&s, p).len(), 1);
        }
        assert_eq!(used(&s), 0);
    }
}
