//! Folding short-lived sampled blocks. Most sampled Python objects live for microseconds
//! (a temporary dict, a string built and dropped), and an Alloc record and a Free record
//! for each made almost all of a long run's trace (a steady 2-thread service: 0.5 GB an
//! hour). The writer holds a flush window's memory records until the window's chunk is
//! written; a block allocated and freed within the window loses both records and is
//! counted instead in one `ShortLived` record per (stack, size, domain). Blocks still
//! live when the window ends keep their Alloc record (their Free comes in a later window,
//! as before). The folded blocks of consecutive windows add up into one record per key
//! for up to [`FOLD_PERIOD_NS`] (a steady service churns the same few keys in every
//! 100 ms window: per window, their records alone came to 11 MB an hour); the last flush
//! of a trace writes what is held.
//!
//! What the report computes from the folded blocks (docs/FORMAT.md, `ShortLived`): the
//! sums (bytes, allocation counts, samples, the Python part) exactly; the time a line
//! holds them (the time average) exactly; and its live bytes over time as a bound from
//! above: the record's `peak` (the most of its blocks' weight live at once) held from the
//! first allocation to the last free. A peak is never below what the blocks' own records
//! gave, and above it by at most the `peak` of the records that cover the moment. Windows
//! do not overlap in time and a block lives within one, so the most live at once over
//! several windows is the most of any one of them.

use rprof_format::{AllocSample, Domain, Encoder, FreeSample, Record, ShortLived};
use std::collections::{BTreeMap, HashMap};

/// A memory record of the window, in arrival order.
enum Held {
    Alloc(AllocSample),
    Free(FreeSample),
    /// An allocation freed within the window: counted in `folded`.
    Folded,
}

/// One folded block: allocated at `born`, freed at `died`, standing for `weight` bytes.
struct Block {
    born: u64,
    died: u64,
    weight: u64,
}

/// The largest block folded. Small blocks are the many (each a small part of a sample's
/// weight); a large one is one of few, sampled nearly always, and folding it would widen
/// the bound where it matters: a ring of 4 MiB buffers, each freed within a window, held
/// its 128 MiB throughout, and the folded bound over the windows showed 308 MiB.
pub const FOLD_MAX_SIZE: u64 = 4096;

/// How long folded blocks of one key add up before their record is written: the span over
/// which the report takes their live bytes at their bound.
pub const FOLD_PERIOD_NS: u64 = 1_000_000_000;

/// The window's memory records.
#[derive(Default)]
pub struct Fold {
    held: Vec<Held>,
    /// Allocations of this window not freed yet: sample id to their place in `held`.
    open: HashMap<u64, usize>,
    /// Folded blocks by (stack, size, domain); ordered, so that a trace's records do not
    /// depend on hashing.
    folded: BTreeMap<(u32, u64, Domain), Vec<Block>>,
    folded_count: usize,
    /// The folded blocks of the windows written since the period began, by key.
    period: BTreeMap<(u32, u64, Domain), ShortLived>,
    /// The first of the period's blocks' allocations.
    period_start: Option<u64>,
    /// The next write ends the period (the trace's last chunks, or `rprof_flush`).
    due: bool,
}

/// Encoded bytes of an Alloc or Free record, about (for the chunk-size trigger).
const RECORD_BYTES: usize = 20;
/// What a folded block counts toward the chunk-size trigger: it is written as a small
/// part of a record, but it is held until the window ends, and this bounds how many are.
const FOLDED_BYTES: usize = 4;

impl Fold {
    pub fn alloc(&mut self, a: AllocSample) {
        // Ids are unique; one seen again (a damaged queue) leaves the first one's record.
        if a.size <= FOLD_MAX_SIZE {
            self.open.insert(a.addr, self.held.len());
        }
        self.held.push(Held::Alloc(a));
    }

    pub fn free(&mut self, f: FreeSample) {
        let Some(i) = self.open.remove(&f.addr) else {
            self.held.push(Held::Free(f));
            return;
        };
        let Held::Alloc(a) = std::mem::replace(&mut self.held[i], Held::Folded) else {
            unreachable!("`open` points at allocations only")
        };
        self.folded
            .entry((a.stack, a.size, a.domain))
            .or_default()
            .push(Block {
                born: a.t_ns,
                died: f.t_ns.max(a.t_ns),
                weight: a.weight,
            });
        self.folded_count += 1;
    }

    /// Bytes the window's memory records take in the chunk, about; folded blocks count a
    /// little, as they are held until then.
    pub fn pending_bytes(&self) -> usize {
        let folded = self.folded_count;
        (self.held.len() - folded) * RECORD_BYTES + folded * FOLDED_BYTES
    }

    /// Makes the next [`write`](Self::write) end the period: what it writes is all there
    /// is to read.
    pub fn end_period(&mut self) {
        self.due = true;
    }

    /// The window ends: its records go to `enc` (the blocks still live and the frees in
    /// their order), and its folded blocks join the period's; once the period is over,
    /// one record per stack, size and domain of them.
    pub fn write(&mut self, enc: &mut Encoder) {
        for h in self.held.drain(..) {
            match h {
                Held::Alloc(a) => enc.push(&Record::Alloc(a)),
                Held::Free(f) => enc.push(&Record::Free(f)),
                Held::Folded => {}
            }
        }
        let mut latest = 0;
        for ((stack, size, domain), blocks) in std::mem::take(&mut self.folded) {
            let w = short_lived(stack, size, domain, &blocks);
            latest = latest.max(w.t_ns.saturating_add(w.span_ns));
            self.period_start = Some(self.period_start.map_or(w.t_ns, |t| t.min(w.t_ns)));
            self.period
                .entry((stack, size, domain))
                .and_modify(|p| join(p, &w))
                .or_insert(w);
        }
        self.open.clear();
        self.folded_count = 0;
        let over = self
            .period_start
            .is_some_and(|t| latest.saturating_sub(t) >= FOLD_PERIOD_NS);
        if over || std::mem::take(&mut self.due) {
            for (_, p) in std::mem::take(&mut self.period) {
                enc.push(&Record::ShortLived(p));
            }
            self.period_start = None;
        }
    }

    /// Drops the window's records (the trace stopped, or is discarded).
    pub fn clear(&mut self) {
        self.held.clear();
        self.open.clear();
        self.folded.clear();
        self.folded_count = 0;
        self.period.clear();
        self.period_start = None;
    }
}

/// Adds a later window's record of a key to the period's.
fn join(p: &mut ShortLived, w: &ShortLived) {
    let end = (p.t_ns.saturating_add(p.span_ns)).max(w.t_ns.saturating_add(w.span_ns));
    p.t_ns = p.t_ns.min(w.t_ns);
    p.span_ns = end - p.t_ns;
    p.count = p.count.saturating_add(w.count);
    p.weight = p.weight.saturating_add(w.weight);
    // The windows are apart in time: at no moment are two windows' blocks live.
    p.peak = p.peak.max(w.peak);
    p.held_us = p.held_us.saturating_add(w.held_us);
}

/// The record of one key's folded blocks.
fn short_lived(stack: u32, size: u64, domain: Domain, blocks: &[Block]) -> ShortLived {
    let first = blocks.iter().map(|b| b.born).min().unwrap_or(0);
    let last = blocks.iter().map(|b| b.died).max().unwrap_or(first);
    // The high-water mark of their live weight: at equal times allocations go first, so
    // that it is never below what any order of the blocks' own records would reach.
    let mut changes: Vec<(u64, bool, u64)> = blocks
        .iter()
        .flat_map(|b| [(b.born, false, b.weight), (b.died, true, b.weight)])
        .collect();
    changes.sort_unstable_by_key(|&(t, free, _)| (t, free));
    let (mut live, mut peak) = (0u64, 0u64);
    for (_, free, w) in changes {
        if free {
            live = live.saturating_sub(w);
        } else {
            live = live.saturating_add(w);
            peak = peak.max(live);
        }
    }
    let held_ns: u128 = blocks
        .iter()
        .map(|b| u128::from(b.weight) * u128::from(b.died - b.born))
        .sum();
    ShortLived {
        t_ns: first,
        span_ns: last - first,
        stack,
        size,
        domain,
        count: blocks.len() as u64,
        weight: blocks.iter().fold(0u64, |s, b| s.saturating_add(b.weight)),
        peak,
        held_us: u64::try_from((held_ns + 500) / 1000).unwrap_or(u64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rprof_format::{encode_header, read_trace, Header};

    fn alloc(t_ns: u64, addr: u64, stack: u32, weight: u64) -> AllocSample {
        AllocSample {
            t_ns,
            tid: 1,
            stack,
            addr,
            size: 64,
            weight,
            domain: Domain::Python,
        }
    }

    fn written(f: &mut Fold) -> Vec<Record> {
        f.end_period();
        let mut enc = Encoder::new();
        f.write(&mut enc);
        let mut data = encode_header(&Header::default());
        data.extend_from_slice(enc.finish_chunk().unwrap_or(&[]));
        let mut recs = Vec::new();
        read_trace(&data, |r| recs.push(r)).unwrap();
        recs
    }

    #[test]
    fn blocks_freed_in_the_window_fold_and_the_rest_keep_their_records() {
        let mut f = Fold::default();
        // An old block (from an earlier window) is freed; 1 and 2 overlap, 3 comes after
        // both, 4 stays live; 5 is of another stack.
        f.free(FreeSample { t_ns: 5, addr: 99 });
        f.alloc(alloc(10, 1, 7, 100));
        f.alloc(alloc(20, 2, 7, 300));
        f.free(FreeSample { t_ns: 30, addr: 1 });
        f.alloc(alloc(40, 4, 7, 1000));
        f.free(FreeSample { t_ns: 50, addr: 2 });
        f.alloc(alloc(60, 3, 7, 200));
        f.free(FreeSample { t_ns: 70, addr: 3 });
        f.alloc(alloc(80, 5, 8, 50));
        f.free(FreeSample { t_ns: 80, addr: 5 });
        assert_eq!(f.pending_bytes(), 2 * RECORD_BYTES + 4 * FOLDED_BYTES);
        let recs = written(&mut f);
        assert_eq!(
            recs,
            [
                Record::Free(FreeSample { t_ns: 5, addr: 99 }),
                Record::Alloc(alloc(40, 4, 7, 1000)),
                Record::ShortLived(ShortLived {
                    t_ns: 10,
                    span_ns: 60,
                    stack: 7,
                    size: 64,
                    domain: Domain::Python,
                    count: 3,
                    weight: 600,
                    // 100 + 300 live from 20 to 30; 200 alone later.
                    peak: 400,
                    // (100 * 20 + 300 * 30 + 200 * 10) byte-ns.
                    held_us: 13,
                }),
                // Freed at the instant it was allocated: it still counts while it lived.
                Record::ShortLived(ShortLived {
                    t_ns: 80,
                    span_ns: 0,
                    stack: 8,
                    size: 64,
                    domain: Domain::Python,
                    count: 1,
                    weight: 50,
                    peak: 50,
                    held_us: 0,
                }),
            ]
        );
        // The next window starts empty: the block still live is freed by a record.
        f.free(FreeSample { t_ns: 90, addr: 4 });
        assert_eq!(
            written(&mut f),
            [Record::Free(FreeSample { t_ns: 90, addr: 4 })]
        );
        assert_eq!(f.pending_bytes(), 0);
    }

    #[test]
    fn windows_of_one_period_add_up_into_one_record_per_key() {
        let mut f = Fold::default();
        let window = |f: &mut Fold, t: u64, w: u64| {
            f.alloc(alloc(t, t, 7, w));
            f.free(FreeSample {
                t_ns: t + 10,
                addr: t,
            });
            let mut enc = Encoder::new();
            f.write(&mut enc);
            enc.len()
        };
        // Windows within the period write nothing of their folded blocks.
        assert_eq!(window(&mut f, 100, 300), 0);
        assert_eq!(window(&mut f, 200, 500), 0);
        // The third is past the period: the three come out as one.
        let mut enc = Encoder::new();
        f.alloc(alloc(FOLD_PERIOD_NS + 100, 1, 7, 200));
        f.free(FreeSample {
            t_ns: FOLD_PERIOD_NS + 110,
            addr: 1,
        });
        f.write(&mut enc);
        let mut data = encode_header(&Header::default());
        data.extend_from_slice(enc.finish_chunk().unwrap());
        let mut recs = Vec::new();
        read_trace(&data, |r| recs.push(r)).unwrap();
        assert_eq!(
            recs,
            [Record::ShortLived(ShortLived {
                t_ns: 100,
                span_ns: FOLD_PERIOD_NS + 10,
                stack: 7,
                size: 64,
                domain: Domain::Python,
                count: 3,
                weight: 1000,
                peak: 500,
                // 1000 bytes for 10 ns: 10 byte-µs.
                held_us: 10,
            })]
        );
        // Nothing is held after it.
        assert!(written(&mut f).is_empty());
    }
}
