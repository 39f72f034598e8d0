//! Memory: sampled allocations, frees and copies, collected while the trace streams and
//! replayed in file order at the end (once every stack is known) into figures per line,
//! per function, and for the whole process.
//!
//! Each allocation sample stands for `weight` bytes (an unbiased estimate), so sums of
//! weights estimate bytes. A line's *live bytes* rise by a sample's weight at the sample
//! and fall by it at the free of that block: a step function of time, from which its peak,
//! time average, timeline and growth come.
//!
//! The *exit point* is where the interpreter began finalizing (the shim's
//! [`rprof_format::marks::PYTHON_FINALIZING`] mark), else the end of the run: frees after
//! it are teardown. What a line still holds there is its growth, and the leak rule
//! ([`crate::leaks`]) looks at the run up to there, so teardown does not hide a leak.

use crate::leaks::{self, Evidence, Fit, Leak, Trend};
use crate::timeline::Downsampler;
use rprof_format::{AllocSample, CopySample, Counters, Domain, FreeSample};
use rustc_hash::FxHashMap;

/// Memory figures of one line, or of one function (the lines it is charged with), in
/// bytes estimated from samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Memory {
    /// Bytes allocated: the sum of the samples' weights.
    pub malloc_bytes: u64,
    /// Allocations, estimated: the sum of weight / size over the samples.
    pub mallocs: u64,
    /// The part of `malloc_bytes` served by the Python allocator.
    pub python_bytes: u64,
    /// Sampled allocations.
    pub alloc_samples: u64,
    /// Live bytes: the highest, the average over time from the first allocation to the end
    /// of the run, and what is left at the exit point (growth).
    pub peak_bytes: u64,
    pub avg_bytes: f64,
    pub growth_bytes: u64,
    /// Bytes copied (memcpy, memmove), from copy samples.
    pub copy_bytes: u64,
    /// Live bytes over the run, downsampled: `(t_ns, bytes)`.
    pub timeline: Vec<(u64, u64)>,
    /// Set when the line is a likely leak (lines only).
    pub leak: Option<Leak>,
}

/// The whole process's memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Footprint {
    pub alloc_samples: u64,
    /// Frees of sampled blocks, and frees naming no live sampled block (ignored).
    pub free_samples: u64,
    pub unmatched_frees: u64,
    pub copy_samples: u64,
    /// Estimated bytes allocated and copied in all, and allocated where the stack has no
    /// Python frame (native code, native threads).
    pub malloc_bytes: u64,
    pub copy_bytes: u64,
    pub no_python_bytes: u64,
    /// The exit point (module docs), and the estimated live total there.
    pub exit_ns: u64,
    pub kept_bytes: u64,
    /// The estimated live total at its highest, when, and the line (file, line number)
    /// whose allocation brought it there.
    pub peak_bytes: u64,
    pub peak_ns: u64,
    pub peak_at: Option<(String, u32)>,
    /// Exact, from the allocator counters (0 and empty without them): the highest live
    /// bytes, the time of the first counters record that shows it, the Python allocator's
    /// share of live bytes in that record, and live bytes over the run, downsampled.
    pub max_bytes: u64,
    pub max_ns: u64,
    pub max_python_fraction: f64,
    pub timeline: Vec<(u64, u64)>,
}

/// Where a stack's samples are charged: a line slot and a function slot.
#[derive(Debug, Clone, Copy)]
pub struct Site {
    pub line: usize,
    pub func: Option<usize>,
    /// Whether the stack has a Python frame.
    pub python: bool,
}

/// What memory samples of one stack add up to, apart from time.
#[derive(Debug, Clone, Copy, Default)]
struct StackTotals {
    malloc_bytes: u64,
    mallocs: f64,
    python_bytes: u64,
    allocs: u64,
    copy_bytes: u64,
}

/// A change of live bytes: a sampled allocation, or the free of one.
#[derive(Debug, Clone, Copy)]
struct Event {
    t_ns: u64,
    weight: u64,
    /// Index in `MemoryAccumulator::stacks`.
    stack: u32,
    alloc: bool,
}

/// The streaming half: per-stack sums and the live-bytes changes in file order.
#[derive(Default)]
pub struct MemoryAccumulator {
    /// Stack id to index in `stacks` (and in the sites given to [`Self::replay`]): small
    /// ids (writers number stacks from 1) in a vector, with `NONE` for no index yet.
    dense: Vec<u32>,
    sparse: FxHashMap<u32, u32>,
    stacks: Vec<(u32, StackTotals)>,
    /// Sampled blocks not yet freed: address to (stack index, weight).
    live: FxHashMap<u64, (u32, u64)>,
    events: Vec<Event>,
    counters: Vec<Counters>,
    alloc_samples: u64,
    free_samples: u64,
    unmatched_frees: u64,
    copy_samples: u64,
}

const NONE: u32 = u32::MAX;
const DENSE_IDS: u32 = 1 << 20;

impl MemoryAccumulator {
    #[inline]
    fn stack(&mut self, id: u32) -> u32 {
        if id >= DENSE_IDS {
            let stacks = &mut self.stacks;
            return *self.sparse.entry(id).or_insert_with(|| {
                stacks.push((id, StackTotals::default()));
                (stacks.len() - 1) as u32
            });
        }
        let i = id as usize;
        if i >= self.dense.len() {
            self.dense.resize((i + 1).next_power_of_two(), NONE);
        }
        if self.dense[i] == NONE {
            self.stacks.push((id, StackTotals::default()));
            self.dense[i] = (self.stacks.len() - 1) as u32;
        }
        self.dense[i]
    }

    pub fn alloc(&mut self, a: &AllocSample) {
        let i = self.stack(a.stack);
        let s = &mut self.stacks[i as usize].1;
        s.malloc_bytes = s.malloc_bytes.saturating_add(a.weight);
        s.mallocs += a.weight as f64 / a.size.max(1) as f64;
        if a.domain == Domain::Python {
            s.python_bytes = s.python_bytes.saturating_add(a.weight);
        }
        s.allocs += 1;
        self.alloc_samples += 1;
        // A block at an address still held was freed unseen: it is gone now.
        if let Some((j, w)) = self.live.insert(a.addr, (i, a.weight)) {
            self.push(a.t_ns, w, j, false);
        }
        self.push(a.t_ns, a.weight, i, true);
    }

    pub fn free(&mut self, f: &FreeSample) {
        match self.live.remove(&f.addr) {
            Some((i, w)) => {
                self.free_samples += 1;
                self.push(f.t_ns, w, i, false);
            }
            None => self.unmatched_frees += 1,
        }
    }

    pub fn copy(&mut self, c: &CopySample) {
        let i = self.stack(c.stack) as usize;
        let s = &mut self.stacks[i].1;
        s.copy_bytes = s.copy_bytes.saturating_add(c.weight);
        self.copy_samples += 1;
    }

    pub fn counters(&mut self, c: Counters) {
        self.counters.push(c);
    }

    fn push(&mut self, t_ns: u64, weight: u64, stack: u32, alloc: bool) {
        self.events.push(Event {
            t_ns,
            weight,
            stack,
            alloc,
        });
    }

    /// The stack ids with memory samples; [`Self::replay`] takes their sites in this order.
    pub fn stack_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.stacks.iter().map(|&(id, _)| id)
    }

    /// Replays the samples over a run that ends at `end_ns`, with its exit point (module
    /// docs) at `exit_ns`, given the site of each stack (in [`Self::stack_ids`] order) and
    /// the number of line and function slots.
    pub fn replay(
        self,
        sites: &[Site],
        lines: usize,
        funcs: usize,
        exit_ns: u64,
        end_ns: u64,
    ) -> Replayed {
        let mut fp = Footprint {
            alloc_samples: self.alloc_samples,
            free_samples: self.free_samples,
            unmatched_frees: self.unmatched_frees,
            copy_samples: self.copy_samples,
            ..Default::default()
        };
        exact_footprint(self.counters, end_ns, &mut fp);
        fp.exit_ns = exit_ns.min(end_ns);

        let mut line_curves: Vec<Option<Curve>> = (0..lines).map(|_| None).collect();
        let mut func_curves: Vec<Option<Curve>> = (0..funcs).map(|_| None).collect();
        let (mut now, mut total, mut at_exit) = (0u64, 0u64, false);
        let mut peak_line = None;
        for e in &self.events {
            now = now.max(e.t_ns).min(end_ns);
            if !at_exit && now > fp.exit_ns {
                at_exit = true;
                fp.kept_bytes = total;
            }
            let site = sites[e.stack as usize];
            let new = || Curve::new(end_ns, now, !at_exit);
            let line = line_curves[site.line].get_or_insert_with(new);
            line.change(now, e.weight, e.alloc, !at_exit);
            if let Some(f) = site.func {
                let func = func_curves[f].get_or_insert_with(new);
                func.change(now, e.weight, e.alloc, !at_exit);
            }
            if e.alloc {
                total = total.saturating_add(e.weight);
                if total > fp.peak_bytes {
                    (fp.peak_bytes, fp.peak_ns, peak_line) = (total, now, Some(site.line));
                }
            } else {
                total = total.saturating_sub(e.weight);
            }
        }
        if !at_exit {
            fp.kept_bytes = total;
        }
        if fp.timeline.is_empty() {
            // No counters: the estimate is all there is.
            (fp.max_bytes, fp.max_ns) = (fp.peak_bytes, fp.peak_ns);
        }

        let finish = |curves: Vec<Option<Curve>>| -> Vec<(Memory, Evidence)> {
            let none = || (Memory::default(), Evidence::default());
            curves
                .into_iter()
                .map(|c| c.map_or_else(none, |c| c.finish(end_ns)))
                .collect()
        };
        let lines = finish(line_curves);
        let mut func_memory: Vec<Memory> =
            finish(func_curves).into_iter().map(|(m, _)| m).collect();
        // Only lines that pass every other test of the leak rule need their trend.
        let candidates: Vec<bool> = lines
            .iter()
            .map(|(_, e)| leaks::candidate(e, end_ns, fp.max_bytes))
            .collect();
        let fits = fit_trends(&self.events, sites, &candidates, fp.exit_ns, end_ns);
        let mut line_memory: Vec<Memory> = lines
            .into_iter()
            .zip(fits)
            .map(|((mut m, e), fit)| {
                m.leak = fit.and_then(|fit| leaks::assess(&e, fit, end_ns));
                m
            })
            .collect();
        for ((_, s), site) in self.stacks.iter().zip(sites) {
            fp.malloc_bytes = fp.malloc_bytes.saturating_add(s.malloc_bytes);
            fp.copy_bytes = fp.copy_bytes.saturating_add(s.copy_bytes);
            if !site.python {
                fp.no_python_bytes = fp.no_python_bytes.saturating_add(s.malloc_bytes);
            }
            line_memory[site.line].add_totals(s);
            if let Some(f) = site.func {
                func_memory[f].add_totals(s);
            }
        }
        Replayed {
            lines: line_memory,
            funcs: func_memory,
            footprint: fp,
            peak_line,
        }
    }
}

/// Per line slot, per function slot, and for the process (`peak_at` left to the caller,
/// which knows the line slot `peak_line`).
pub struct Replayed {
    pub lines: Vec<Memory>,
    pub funcs: Vec<Memory>,
    pub footprint: Footprint,
    pub peak_line: Option<usize>,
}

impl Memory {
    fn add_totals(&mut self, s: &StackTotals) {
        self.malloc_bytes = self.malloc_bytes.saturating_add(s.malloc_bytes);
        // Rounded once per stack: within u64 range, as a float-to-int cast saturates.
        self.mallocs = self.mallocs.saturating_add(s.mallocs.round() as u64);
        self.python_bytes = self.python_bytes.saturating_add(s.python_bytes);
        self.alloc_samples = self.alloc_samples.saturating_add(s.allocs);
        self.copy_bytes = self.copy_bytes.saturating_add(s.copy_bytes);
    }
}

/// The exact figures, from the allocator counters.
fn exact_footprint(mut counters: Vec<Counters>, end_ns: u64, fp: &mut Footprint) {
    counters.sort_by_key(|c| c.t_ns);
    let mut timeline = Downsampler::new(end_ns);
    for c in &counters {
        timeline.set(c.t_ns, c.live_bytes);
        if c.peak_live_bytes > fp.max_bytes {
            fp.max_bytes = c.peak_live_bytes;
            fp.max_ns = c.t_ns.min(end_ns);
            fp.max_python_fraction = if c.live_bytes == 0 {
                0.0
            } else {
                (c.python_live_bytes as f64 / c.live_bytes as f64).min(1.0)
            };
        }
    }
    fp.timeline = timeline.finish();
}

/// The least-squares fit of live bytes over time, from the first allocation to the exit
/// point, of each line marked in `lines` (by line slot): a second pass over the changes, as
/// only the few lines that may leak need it.
fn fit_trends(
    events: &[Event],
    sites: &[Site],
    lines: &[bool],
    exit_ns: u64,
    end_ns: u64,
) -> Vec<Option<Fit>> {
    // Per line: live bytes, when they last changed, and the fit so far.
    let mut state: Vec<Option<(u64, u64, Trend)>> = vec![None; lines.len()];
    if lines.iter().any(|&l| l) {
        let mut now = 0u64;
        for e in events {
            now = now.max(e.t_ns).min(end_ns);
            if now > exit_ns {
                break;
            }
            let line = sites[e.stack as usize].line;
            if !lines[line] {
                continue;
            }
            let (live, last, trend) = state[line].get_or_insert((0, now, Trend::default()));
            trend.hold(seconds(*last), seconds(now), *live as f64);
            *live = if e.alloc {
                live.saturating_add(e.weight)
            } else {
                live.saturating_sub(e.weight)
            };
            *last = now;
        }
    }
    state
        .into_iter()
        .map(|s| {
            s.map(|(live, last, mut trend)| {
                trend.hold(seconds(last), seconds(exit_ns), live as f64);
                trend.fit()
            })
        })
        .collect()
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// One slot's live bytes as they change.
struct Curve {
    live: u64,
    peak: u64,
    first_ns: u64,
    last_ns: u64,
    /// Live bytes integrated over time (byte-ns), from the first change.
    area: f64,
    timeline: Downsampler,
    /// Up to the exit point: sampled allocations and frees, the last allocation; then
    /// what was live there (set at the first change after it).
    allocs: u64,
    frees: u64,
    last_alloc_ns: u64,
    kept: Option<u64>,
}

impl Curve {
    /// A slot whose first change is at `t_ns`, before the exit point or not.
    fn new(end_ns: u64, t_ns: u64, before_exit: bool) -> Curve {
        Curve {
            live: 0,
            peak: 0,
            first_ns: t_ns,
            last_ns: t_ns,
            area: 0.0,
            timeline: Downsampler::new(end_ns),
            allocs: 0,
            frees: 0,
            last_alloc_ns: t_ns,
            kept: (!before_exit).then_some(0),
        }
    }

    /// Live bytes rise (`alloc`) or fall by `weight` at `t_ns`.
    fn change(&mut self, t_ns: u64, weight: u64, alloc: bool, before_exit: bool) {
        self.area += self.live as f64 * t_ns.saturating_sub(self.last_ns) as f64;
        self.last_ns = t_ns;
        if before_exit {
            if alloc {
                self.allocs += 1;
                self.last_alloc_ns = t_ns;
            } else {
                self.frees += 1;
            }
        } else if self.kept.is_none() {
            self.kept = Some(self.live);
        }
        if alloc {
            self.live = self.live.saturating_add(weight);
            self.peak = self.peak.max(self.live);
        } else {
            self.live = self.live.saturating_sub(weight);
        }
        self.timeline.set(t_ns, self.live);
    }

    /// The figures, and the evidence for the leak rule.
    fn finish(mut self, end_ns: u64) -> (Memory, Evidence) {
        self.area += self.live as f64 * end_ns.saturating_sub(self.last_ns) as f64;
        let span = end_ns.saturating_sub(self.first_ns);
        let avg = if span == 0 {
            self.live as f64
        } else {
            self.area / span as f64
        };
        // No change after the exit point: what is live now was live there.
        let kept = self.kept.unwrap_or(self.live);
        let memory = Memory {
            peak_bytes: self.peak,
            avg_bytes: avg.min(self.peak as f64),
            growth_bytes: kept,
            timeline: self.timeline.finish(),
            ..Default::default()
        };
        let evidence = Evidence {
            allocs: self.allocs,
            frees: self.frees,
            first_ns: self.first_ns,
            last_ns: self.last_alloc_ns,
            kept_bytes: kept,
        };
        (memory, evidence)
    }
}
