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
//! ([`super::leaks`]) looks at the run up to there, so teardown does not hide a leak.

use super::charge::Site;
use super::leaks::{self, Evidence, Growth, Trend};
use super::program_time::{ProgramClock, ProgramTime};
use super::timeline::Downsampler;
use super::types::{Footprint, Memory};
use rprof_format::{AllocSample, CopySample, Counters, Domain, FreeSample, ShortLived};
use rustc_hash::FxHashMap;

/// What memory samples of one stack add up to, apart from time.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct StackTotals {
    pub(super) malloc_bytes: u64,
    pub(super) mallocs: f64,
    pub(super) python_bytes: u64,
    pub(super) allocs: u64,
    pub(super) copy_bytes: u64,
}

impl StackTotals {
    #[inline]
    pub(super) fn alloc(&mut self, a: &AllocSample) {
        self.malloc_bytes = self.malloc_bytes.saturating_add(a.weight);
        self.mallocs += a.weight as f64 / a.size.max(1) as f64;
        if a.domain == Domain::Python {
            self.python_bytes = self.python_bytes.saturating_add(a.weight);
        }
        self.allocs += 1;
    }

    /// Blocks folded into one record: the same sums as their own records would give.
    pub(super) fn short_lived(&mut self, s: &ShortLived) {
        self.malloc_bytes = self.malloc_bytes.saturating_add(s.weight);
        self.mallocs += s.weight as f64 / s.size.max(1) as f64;
        if s.domain == Domain::Python {
            self.python_bytes = self.python_bytes.saturating_add(s.weight);
        }
        self.allocs = self.allocs.saturating_add(s.count);
    }

    #[inline]
    pub(super) fn copy(&mut self, c: &CopySample) {
        self.copy_bytes = self.copy_bytes.saturating_add(c.weight);
    }
}

/// A change of live bytes: a sampled allocation, or the free of one.
#[derive(Debug, Clone, Copy)]
struct Event {
    t_ns: u64,
    weight: u64,
    /// The stack's slot (see [`super::accumulate`]'s one stack index).
    stack: u32,
    alloc: bool,
}

/// The streaming half: the live-bytes changes in file order, by stack slot (the sums per
/// stack are kept with the stack's other sums, as [`StackTotals`]), and the program time
/// the leak rule judges them on.
#[derive(Default)]
pub(super) struct MemoryAccumulator {
    /// Sampled blocks not yet freed: sample id (`AllocSample::addr`) to (stack slot,
    /// weight).
    live: FxHashMap<u64, (u32, u64)>,
    events: Vec<Event>,
    /// The [`ShortLived`] records, each also two events in `events` (see `short_lived`).
    folds: Vec<Folded>,
    counters: Vec<Counters>,
    program_time: ProgramTime,
    alloc_samples: u64,
    free_samples: u64,
    unmatched_frees: u64,
    copy_samples: u64,
}

/// What a [`ShortLived`] record's two events in the replay leave out: its blocks' count
/// (the events count one allocation and one free) and how much less than its `peak` over
/// its span its blocks held.
#[derive(Debug, Clone, Copy)]
struct Folded {
    stack: u32,
    t_ns: u64,
    end_ns: u64,
    count: u64,
    peak: u64,
    held_us: u64,
}

/// No function slot.
const NONE: u32 = u32::MAX;

impl MemoryAccumulator {
    /// A CPU sample (any): the program time it stands for.
    #[inline]
    pub(super) fn cpu_sample(&mut self, t_ns: u64, cpu_ns: u64, sys_ns: u64) {
        self.program_time.sample(t_ns, cpu_ns, sys_ns);
    }

    /// A sampled allocation in the stack of slot `i`.
    pub(super) fn alloc(&mut self, a: &AllocSample, i: u32) {
        self.alloc_samples += 1;
        // Ids are unique: one still held means a damaged trace lost its free. Gone now.
        if let Some((j, w)) = self.live.insert(a.addr, (i, a.weight)) {
            self.push(a.t_ns, w, j, false);
        }
        self.push(a.t_ns, a.weight, i, true);
    }

    pub(super) fn free(&mut self, f: &FreeSample) {
        match self.live.remove(&f.addr) {
            Some((i, w)) => {
                self.free_samples += 1;
                self.push(f.t_ns, w, i, false);
            }
            None => self.unmatched_frees += 1,
        }
    }

    /// Blocks allocated and freed within one flush window, folded into one record, in the
    /// stack of slot `i`. Their live bytes, unknown in detail, are taken at their bound:
    /// the record's `peak` from the first allocation to the last free (never below what
    /// their own records would have given; docs/FORMAT.md). Their events come after the
    /// window's other records in the file: the replay puts them in time order.
    pub(super) fn short_lived(&mut self, s: &ShortLived, i: u32) {
        self.alloc_samples = self.alloc_samples.saturating_add(s.count);
        self.free_samples = self.free_samples.saturating_add(s.count);
        let end_ns = s.t_ns.saturating_add(s.span_ns);
        // More live at once than the blocks weigh in all is a damaged record.
        let peak = s.peak.min(s.weight);
        self.push(s.t_ns, peak, i, true);
        self.push(end_ns, peak, i, false);
        self.folds.push(Folded {
            stack: i,
            t_ns: s.t_ns,
            end_ns,
            count: s.count,
            peak,
            held_us: s.held_us,
        });
    }

    pub(super) fn copy(&mut self) {
        self.copy_samples += 1;
    }

    /// Moves each live-bytes change (and each folded record) to the stack slot `to` gives
    /// for its own: the frameless samples' slots are known only once the run's phases are
    /// (see [`super::accumulate`]'s `charge_frameless`).
    pub(super) fn reslot(&mut self, to: impl Fn(u32) -> u32) {
        for e in &mut self.events {
            e.stack = to(e.stack);
        }
        for f in &mut self.folds {
            f.stack = to(f.stack);
        }
    }

    /// Puts the live-bytes changes in time order: a merged run's come trace after trace
    /// ([`super::merge`]), each trace's in its own order, which a stable sort keeps.
    pub(super) fn sort_by_time(&mut self) {
        self.events.sort_by_key(|e| e.t_ns);
    }

    pub(super) fn counters(&mut self, c: Counters) {
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

    /// Replays the samples over a run that ends at `end_ns`, with its exit point (module
    /// docs) at `exit_ns`, given the site and the sums of each stack slot and the number of
    /// line and function slots.
    pub(super) fn replay(
        mut self,
        sites: &[Site],
        totals: &[StackTotals],
        lines: usize,
        funcs: usize,
        exit_ns: u64,
        end_ns: u64,
    ) -> Replayed {
        // Times never reach `UNSTARTED`.
        let end_ns = end_ns.min(UNSTARTED - 1);
        if !self.folds.is_empty() {
            self.sort_by_time();
        }
        let mut fp = Footprint {
            alloc_samples: self.alloc_samples,
            free_samples: self.free_samples,
            unmatched_frees: self.unmatched_frees,
            copy_samples: self.copy_samples,
            ..Default::default()
        };
        exact_footprint(self.counters, end_ns, &mut fp);
        fp.exit_ns = exit_ns.min(end_ns);

        // Per stack: its line slot and function slot (NONE for none), compact for the cache.
        let slots: Vec<(u32, u32)> = sites
            .iter()
            .map(|s| (s.line as u32, s.func.map_or(NONE, |f| f as u32)))
            .collect();
        // A function charged only with one line, itself charged only to that function, has
        // the line's curve: the replay follows the line alone.
        let twins = twin_lines(&slots, lines, funcs);
        let followed: Vec<(u32, u32)> = slots
            .iter()
            .map(|&(l, f)| match twins.get(f as usize) {
                Some(&Some(twin)) if twin == l as usize => (l, NONE),
                _ => (l, f),
            })
            .collect();
        let (mut line_curves, mut func_curves) = (Curves::new(lines), Curves::new(funcs));
        let (mut now, mut total, mut at_exit) = (0u64, 0u64, false);
        let mut peak_line = None;
        let mut stacks = StackLive::new(sites.len());
        for e in &self.events {
            now = now.max(e.t_ns).min(end_ns);
            if !at_exit && now > fp.exit_ns {
                at_exit = true;
                fp.kept_bytes = total;
                stacks.exit();
            }
            stacks.change(e);
            let (line, func) = followed[e.stack as usize];
            line_curves.change(line as usize, now, e, at_exit, end_ns);
            if func != NONE {
                func_curves.change(func as usize, now, e, at_exit, end_ns);
            }
            if e.alloc {
                total = total.saturating_add(e.weight);
                if total > fp.peak_bytes {
                    (fp.peak_bytes, fp.peak_ns) = (total, now);
                    peak_line = Some(line as usize);
                    stacks.peak(e);
                }
            } else {
                total = total.saturating_sub(e.weight);
            }
        }
        if !at_exit {
            fp.kept_bytes = total;
        }
        for f in &self.folds {
            let (line, func) = followed[f.stack as usize];
            line_curves.unfold(line as usize, f, fp.exit_ns, end_ns);
            if func != NONE {
                func_curves.unfold(func as usize, f, fp.exit_ns, end_ns);
            }
        }
        if fp.timeline.is_empty() {
            // No counters: the estimate is all there is.
            (fp.max_bytes, fp.max_ns) = (fp.peak_bytes, fp.peak_ns);
        }

        let line_figures = line_curves.finish(end_ns);
        let mut func_memory: Vec<Memory> = func_curves
            .finish(end_ns)
            .into_iter()
            .zip(twins)
            .map(|((m, _), twin)| twin.map_or(m, |l| line_figures[l].0.clone()))
            .collect();
        // Only lines that pass the leak rule's other tests need the second look.
        let candidates: Vec<bool> = line_figures
            .iter()
            .map(|(_, e)| leaks::candidate(e, end_ns, fp.max_bytes))
            .collect();
        // Wall time, and the program's own (`leaks`' module docs).
        let (wall, program) = (ProgramClock::wall(), self.program_time.finish());
        let growths = growths(
            &self.events,
            &slots,
            &candidates,
            (fp.exit_ns, end_ns),
            [&wall, &program],
        );
        let mut line_memory: Vec<Memory> = line_figures
            .into_iter()
            .zip(growths)
            .map(|((mut m, e), growth)| {
                if let Some(g) = growth {
                    m.leak = leaks::assess(&e, &g, end_ns);
                }
                m
            })
            .collect();
        let (mut line_mallocs, mut func_mallocs) = (vec![0.0; lines], vec![0.0; funcs]);
        for (s, site) in totals.iter().zip(sites) {
            fp.malloc_bytes = fp.malloc_bytes.saturating_add(s.malloc_bytes);
            fp.copy_bytes = fp.copy_bytes.saturating_add(s.copy_bytes);
            if !site.python {
                fp.no_python_bytes = fp.no_python_bytes.saturating_add(s.malloc_bytes);
            }
            line_memory[site.line].add_totals(s);
            line_mallocs[site.line] += s.mallocs;
            if let Some(f) = site.func {
                func_memory[f].add_totals(s);
                func_mallocs[f] += s.mallocs;
            }
        }
        // Rounded once per slot (a float-to-int cast saturates).
        let memory = line_memory.iter_mut().chain(&mut func_memory);
        for (m, mallocs) in memory.zip(line_mallocs.into_iter().chain(func_mallocs)) {
            m.mallocs = mallocs.round() as u64;
        }
        Replayed {
            lines: line_memory,
            funcs: func_memory,
            footprint: fp,
            peak_line,
            stack_live: stacks.finish(),
        }
    }
}

/// Per line slot, per function slot, and for the process (`peak_at` left to the caller,
/// which knows the line slot `peak_line`); per stack slot, its live bytes at the estimated
/// peak and at the exit point.
pub(super) struct Replayed {
    pub(super) lines: Vec<Memory>,
    pub(super) funcs: Vec<Memory>,
    pub(super) footprint: Footprint,
    pub(super) peak_line: Option<usize>,
    pub(super) stack_live: Vec<(u64, u64)>,
}

/// Each stack slot's live bytes through the replay, and what they were when the total
/// made its latest new peak and at the exit point, in the one pass: a stack's value at a
/// peak is its value until its first change after it, noted then (`seen` holds the
/// number of the latest peak its value is noted for).
struct StackLive {
    live: Vec<u64>,
    at_peak: Vec<u64>,
    seen: Vec<u32>,
    peaks: u32,
    at_exit: Option<Vec<u64>>,
}

impl StackLive {
    fn new(n: usize) -> StackLive {
        StackLive {
            live: vec![0; n],
            at_peak: vec![0; n],
            seen: vec![0; n],
            peaks: 0,
            at_exit: None,
        }
    }

    #[inline]
    fn change(&mut self, e: &Event) {
        let s = e.stack as usize;
        if self.seen[s] != self.peaks {
            (self.at_peak[s], self.seen[s]) = (self.live[s], self.peaks);
        }
        let l = &mut self.live[s];
        *l = if e.alloc {
            l.saturating_add(e.weight)
        } else {
            l.saturating_sub(e.weight)
        };
    }

    /// The change `e` (just made) took the total to a new peak.
    fn peak(&mut self, e: &Event) {
        let s = e.stack as usize;
        self.peaks = self.peaks.wrapping_add(1);
        (self.at_peak[s], self.seen[s]) = (self.live[s], self.peaks);
    }

    /// The next change comes after the exit point.
    #[cold]
    fn exit(&mut self) {
        self.at_exit = Some(self.live.clone());
    }

    /// Per slot, its live bytes at the latest peak and at the exit point.
    fn finish(mut self) -> Vec<(u64, u64)> {
        for s in 0..self.live.len() {
            if self.seen[s] != self.peaks {
                self.at_peak[s] = self.live[s];
            }
        }
        let at_exit = self.at_exit.take().unwrap_or(self.live);
        self.at_peak.into_iter().zip(at_exit).collect()
    }
}

impl Memory {
    /// Adds a stack's sums, but for the allocation count (a float until the end).
    fn add_totals(&mut self, s: &StackTotals) {
        self.malloc_bytes = self.malloc_bytes.saturating_add(s.malloc_bytes);
        self.python_bytes = self.python_bytes.saturating_add(s.python_bytes);
        self.alloc_samples = self.alloc_samples.saturating_add(s.allocs);
        self.copy_bytes = self.copy_bytes.saturating_add(s.copy_bytes);
    }
}

/// The exact figures, from the allocator counters.
fn exact_footprint(mut counters: Vec<Counters>, end_ns: u64, fp: &mut Footprint) {
    counters.sort_by_key(|c| c.t_ns);
    let mut timeline = Downsampler::new(end_ns);
    let (mut live, mut most_live) = (0, 0);
    for c in &counters {
        timeline.set(c.t_ns, live, c.live_bytes);
        live = c.live_bytes;
        if c.peak_live_bytes > fp.max_bytes {
            fp.max_bytes = c.peak_live_bytes;
            fp.max_ns = c.t_ns.min(end_ns);
        }
        if c.live_bytes > most_live {
            most_live = c.live_bytes;
            fp.max_python_fraction = (c.python_live_bytes as f64 / c.live_bytes as f64).min(1.0);
        }
    }
    fp.timeline = timeline.finish(live);
}

/// Per function slot, the line slot that is its twin: the only line the function is
/// charged with, charged to no other function.
fn twin_lines(slots: &[(u32, u32)], lines: usize, funcs: usize) -> Vec<Option<usize>> {
    const MANY: u32 = NONE - 1;
    let join = |one: &mut u32, v: u32| *one = if *one == NONE || *one == v { v } else { MANY };
    let (mut line_of, mut func_of) = (vec![NONE; funcs], vec![NONE; lines]);
    for &(l, f) in slots {
        if f == NONE {
            func_of[l as usize] = MANY;
        } else {
            join(&mut line_of[f as usize], l);
            join(&mut func_of[l as usize], f);
        }
    }
    line_of
        .iter()
        .enumerate()
        .map(|(f, &l)| (l < MANY && func_of[l as usize] == f as u32).then_some(l as usize))
        .collect()
}

/// For each line marked in `lines` (by line slot), up to the exit point, on each of the
/// `clocks`: the least-squares fit of its live bytes from its first sampled allocation, and
/// the span of its sampled allocations. A second pass over the changes, as only the few
/// lines that may leak need it.
fn growths<const N: usize>(
    events: &[Event],
    slots: &[(u32, u32)],
    lines: &[bool],
    (exit_ns, end_ns): (u64, u64),
    clocks: [&ProgramClock; N],
) -> Vec<Option<[Growth; N]>> {
    /// One line on one clock: seconds of its last change, first and last sampled
    /// allocation, and its fit so far.
    #[derive(Clone, Copy)]
    struct Axis {
        last_change: f64,
        first_alloc: f64,
        last_alloc: f64,
        trend: Trend,
    }
    let mut state: Vec<Option<(u64, [Axis; N])>> = vec![None; lines.len()];
    if lines.iter().any(|&l| l) {
        let mut now = 0u64;
        for e in events {
            now = now.max(e.t_ns).min(end_ns);
            if now > exit_ns {
                break;
            }
            let line = slots[e.stack as usize].0 as usize;
            if !lines[line] {
                continue;
            }
            let t = clocks.map(|c| c.seconds(now));
            let (live, axes) = state[line].get_or_insert_with(|| {
                (
                    0,
                    std::array::from_fn(|k| Axis {
                        last_change: t[k],
                        first_alloc: t[k],
                        last_alloc: t[k],
                        trend: Trend::default(),
                    }),
                )
            });
            for (a, &t) in axes.iter_mut().zip(&t) {
                a.trend.hold(a.last_change, t, *live as f64);
                a.last_change = t;
                if e.alloc {
                    a.last_alloc = t;
                }
            }
            *live = if e.alloc {
                live.saturating_add(e.weight)
            } else {
                live.saturating_sub(e.weight)
            };
        }
    }
    let exit = clocks.map(|c| c.seconds(exit_ns.min(end_ns)));
    let end = clocks.map(|c| c.seconds(end_ns));
    state
        .into_iter()
        .map(|s| {
            s.map(|(live, mut axes)| {
                std::array::from_fn(|k| {
                    let a = &mut axes[k];
                    a.trend.hold(a.last_change, exit[k], live as f64);
                    let span = if end[k] > 0.0 {
                        (a.last_alloc - a.first_alloc) / end[k]
                    } else {
                        0.0
                    };
                    Growth {
                        fit: a.trend.fit(),
                        span,
                    }
                })
            })
        })
        .collect()
}

/// Slots' live bytes as they change: what each change touches in one cache line, the rest
/// beside it.
struct Curves {
    hot: Vec<Curve>,
    cold: Vec<Cold>,
}

/// Not started yet (in `Curve::last_ns`).
const UNSTARTED: u64 = u64::MAX;

/// One slot's live bytes: what a change touches, in one cache line.
#[repr(C, align(64))]
struct Curve {
    live: u64,
    peak: u64,
    last_ns: u64,
    /// Live bytes integrated over time (byte-ns), from the first change.
    area: f64,
    /// Sampled allocations and frees before the exit point (saturating).
    allocs: u32,
    frees: u32,
    /// Its first 24 bytes are hot (see [`Downsampler`]).
    timeline: Downsampler,
}

/// What a slot's first change and its first change after the exit point set.
struct Cold {
    first_ns: u64,
    /// Live bytes at the exit point, once a change comes after it.
    kept: Option<u64>,
}

impl Curves {
    fn new(n: usize) -> Curves {
        Curves {
            hot: (0..n)
                .map(|_| Curve {
                    live: 0,
                    peak: 0,
                    last_ns: UNSTARTED,
                    area: 0.0,
                    allocs: 0,
                    frees: 0,
                    timeline: Downsampler::new(0),
                })
                .collect(),
            cold: (0..n)
                .map(|_| Cold {
                    first_ns: 0,
                    kept: None,
                })
                .collect(),
        }
    }

    /// Slot `i`'s live bytes rise (an allocation) or fall by `e.weight` at `t_ns`.
    #[inline]
    fn change(&mut self, i: usize, t_ns: u64, e: &Event, at_exit: bool, end_ns: u64) {
        let c = &mut self.hot[i];
        if c.last_ns == UNSTARTED {
            self.cold[i] = Cold {
                first_ns: t_ns,
                // A slot that starts after the exit point had nothing there.
                kept: at_exit.then_some(0),
            };
            c.last_ns = t_ns;
            c.timeline = Downsampler::new(end_ns);
        }
        c.area += c.live as f64 * t_ns.saturating_sub(c.last_ns) as f64;
        c.last_ns = t_ns;
        if !at_exit {
            if e.alloc {
                c.allocs = c.allocs.saturating_add(1);
            } else {
                c.frees = c.frees.saturating_add(1);
            }
        } else if self.cold[i].kept.is_none() {
            self.cold[i].kept = Some(c.live);
        }
        let before = c.live;
        if e.alloc {
            c.live = c.live.saturating_add(e.weight);
            c.peak = c.peak.max(c.live);
        } else {
            c.live = c.live.saturating_sub(e.weight);
        }
        c.timeline.set(t_ns, before, c.live);
    }

    /// Slot `i` had folded blocks `f`, which the replay's two events count as one
    /// allocation and one free (each before the exit point `exit_ns` if the event was)
    /// holding `f.peak` over their whole span: the rest of their count, and their own
    /// area.
    fn unfold(&mut self, i: usize, f: &Folded, exit_ns: u64, end_ns: u64) {
        let c = &mut self.hot[i];
        let more = u32::try_from(f.count.saturating_sub(1)).unwrap_or(u32::MAX);
        let (t0, t1) = (f.t_ns.min(end_ns), f.end_ns.min(end_ns));
        if t0 <= exit_ns {
            c.allocs = c.allocs.saturating_add(more);
        }
        if t1 <= exit_ns {
            c.frees = c.frees.saturating_add(more);
        }
        let pulse = f.peak as f64 * (t1 - t0) as f64;
        let held = (f.held_us as f64 * 1e3).min(pulse);
        c.area = (c.area - (pulse - held)).max(0.0);
    }

    /// Per slot, the figures and the evidence for the leak rule's first tests (its growth
    /// left to [`growths`]).
    fn finish(self, end_ns: u64) -> Vec<(Memory, Evidence)> {
        self.hot
            .into_iter()
            .zip(self.cold)
            .map(|(c, cold)| {
                if c.last_ns == UNSTARTED {
                    return (Memory::default(), Evidence::default());
                }
                let area = c.area + c.live as f64 * end_ns.saturating_sub(c.last_ns) as f64;
                let span = end_ns.saturating_sub(cold.first_ns);
                let avg = if span == 0 {
                    c.live as f64
                } else {
                    area / span as f64
                };
                // No change after the exit point: what is live now was live there.
                let kept = cold.kept.unwrap_or(c.live);
                let memory = Memory {
                    peak_bytes: c.peak,
                    avg_bytes: avg.min(c.peak as f64),
                    growth_bytes: kept,
                    timeline: c.timeline.finish(c.live),
                    ..Default::default()
                };
                let evidence = Evidence {
                    allocs: c.allocs.into(),
                    frees: c.frees.into(),
                    kept_bytes: kept,
                };
                (memory, evidence)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twins_are_one_line_for_one_function() {
        // Function 0 has two lines; 1 has line 2 alone; 2 and 3 share line 3; line 4 has
        // none.
        let slots = [(0, 0), (1, 0), (2, 1), (3, 2), (3, 3), (4, NONE)];
        assert_eq!(twin_lines(&slots, 5, 4), [None, Some(2), None, None]);
    }
}
