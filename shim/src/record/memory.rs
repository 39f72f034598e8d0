//! Memory accounting on the allocator paths: exact counters on every call, and samples by
//! bytes. Each thread keeps one budget of bytes (`alloc_left`) that the fast path spends;
//! only when it runs out does the slow path run, to fold the counters into the globals and,
//! when a sample point fell inside the allocation, record it.
//!
//! Sample points form a stationary renewal process over the allocated bytes, its gaps
//! uniform on [M/2, 3M/2] (M: `mem_rate`, or a power-of-two multiple of it while a thread
//! samples too fast), so an allocation of `n` ≤ M/2 bytes holds at most one point, with
//! probability P = n/M exactly, and a sample stands for n / P bytes (see `weight`), an
//! unbiased estimate of its bytes; blocks of max(M/4, 256 KiB) and up are counted exactly
//! (`is_large`). Against exponential gaps (a Poisson process, whose P = 1 − e^(−n/M)), the
//! count of points in a run of bytes varies twelve times less: `alloc_heavy.py`'s kept
//! line (166 MB of small ints) read −1.8 % to +1.4 % over 5 runs, where it read −4.1 % to
//! +5.9 % (docs/DESIGN.md).

use crate::record::sampled::Sampled;
use crate::record::thread_state::{self, ThreadState};
use crate::shared::queue::Kind;
use crate::state::{self as runtime, Runtime};
use crate::{record::alloc_hooks, record::native_stack, record::stack, shared::counters};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Whether the malloc family counts at all. On until the constructor reads the modes; off
/// for the run when memory mode is (CPU-only profiling then costs a C program's allocator
/// one predictable branch, not a TLS update and a filter probe per call).
static ACCOUNTING: AtomicBool = AtomicBool::new(true);

/// The live sampled allocations.
static SAMPLED: Sampled = Sampled::new();
/// Sample ids: unique per sample, so a block that moves and is sampled again stays
/// unambiguous in the trace.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The slow path runs at least this often (in bytes), to fold the exact counters.
const FOLD_BYTES: i64 = 256 << 10;
/// A budget that never runs out in practice (mode off).
const NEVER: i64 = i64::MAX / 4;

/// Switches the malloc family's accounting off for the run (memory mode off). Runs in the
/// constructor: blocks allocated before it may be freed uncounted, never the reverse.
pub fn stop_accounting() {
    ACCOUNTING.store(false, Relaxed);
}

#[inline(always)]
pub fn accounting() -> bool {
    ACCOUNTING.load(Relaxed)
}

/// Counts an allocation of `n` usable bytes at `p` made through the malloc family.
#[inline(always)]
pub fn on_alloc(p: usize, n: usize) {
    thread_state::with(|t| {
        t.allocs.set(t.allocs.get() + 1);
        t.alloc_bytes.set(t.alloc_bytes.get() + n as u64);
        spend(t, p, n, false);
    })
}

/// Counts a free of `n` usable bytes at `p` made through the malloc family.
#[inline(always)]
pub fn on_free(p: usize, n: usize) {
    thread_state::with(|t| count_free(t, n));
    forget(p);
}

#[inline(always)]
fn count_free(t: &ThreadState, n: usize) {
    t.frees.set(t.frees.get() + 1);
    count_freed_bytes(t, n);
}

#[inline(always)]
fn count_freed_bytes(t: &ThreadState, n: usize) {
    t.freed_bytes.set(t.freed_bytes.get() + n as u64);
    let left = t.free_left.get() - n as i64;
    t.free_left.set(left);
    if left <= 0 {
        fold_frees(t);
    }
}

/// Out of line, so that the free path's fast case makes no call and needs no frame.
#[cold]
#[inline(never)]
fn fold_frees(t: &ThreadState) {
    counters::fold(t);
    t.free_left.set(FOLD_BYTES);
}

/// Counts a realloc from `p` (`old` usable bytes) to `q` (`new`). Only growth spends the
/// sampling budget: a string grown by a thousand reallocs allocated its final size, not the
/// sum of every intermediate one. A sampled block's samples follow it to `q`.
pub fn on_realloc(p: usize, old: usize, q: usize, new: usize) {
    thread_state::with(|t| {
        // Not a new allocation: the counters see only the change in size.
        if new >= old {
            t.alloc_bytes.set(t.alloc_bytes.get() + (new - old) as u64);
        } else {
            count_freed_bytes(t, old - new);
        }
        t.realloc_growth.set(new.saturating_sub(old) as u64);
        if t.in_python.get() {
            // The Python allocator's wrapper accounts for this block.
            return;
        }
        moved(p, q);
        spend(t, q, new.saturating_sub(old), false);
    })
}

/// A realloc moved the block at `p` to `q`.
#[inline(always)]
pub fn moved(p: usize, q: usize) {
    if p != q && SAMPLED.may_contain(p) {
        SAMPLED.rekey(p, q);
    }
}

/// A free: records it if the block carried samples.
#[inline(always)]
pub fn forget(p: usize) {
    if SAMPLED.may_contain(p) {
        record_free(p);
    }
}

/// Spends `n` bytes of the thread's budget for the block at `p`; `python` marks the Python
/// allocator's domain.
#[inline(always)]
pub fn spend(t: &ThreadState, p: usize, n: usize, python: bool) {
    let left = t.alloc_left.get() - n as i64;
    t.alloc_left.set(left);
    if left <= 0 {
        slow_alloc(t, p, n, python);
    }
}

/// Spends `n` bytes of the budget for a block not yet allocated, and says whether a sample
/// point fell inside them: the sample's weight, for [`record_sampled`] once the block is
/// there. For the Python allocator, which serves a sampled block from elsewhere
/// (`pyalloc.rs`).
#[inline(always)]
pub fn spend_deciding(t: &ThreadState, n: usize) -> Option<u64> {
    let left = t.alloc_left.get() - n as i64;
    t.alloc_left.set(left);
    if left <= 0 {
        slow_points(t, n)
    } else {
        None
    }
}

/// Records the sample [`spend_deciding`] drew, for the block at `p` (null: it could not be
/// allocated, and the sample is dropped).
#[cold]
#[inline(never)]
pub fn record_sampled(p: usize, n: usize, weight: u64, python: bool) {
    if let (Some(rt), true) = (runtime::active(), p != 0) {
        record_alloc(rt, p, n, weight, python);
    }
}

/// Spends `n` bytes of the budget before the allocation is made, if that leaves some: the
/// caller may then skip any work after it. False (nothing spent) when `n` reaches the next
/// sample point or fold; the caller then allocates and calls `spend`.
#[inline(always)]
pub fn spend_ahead(t: &ThreadState, n: usize) -> bool {
    let left = t.alloc_left.get() - n as i64;
    if left > 0 {
        t.alloc_left.set(left);
    }
    left > 0
}

/// Runs `f` (a call into the Python allocator) without charging the malloc calls it makes
/// to the sampling budget: those bytes are sampled once, as Python's.
#[inline(always)]
pub fn inside_python_allocator<R>(f: impl FnOnce() -> R) -> R {
    let saved = thread_state::with(|t| {
        t.in_python.set(true);
        t.alloc_left.replace(NEVER)
    });
    let r = f();
    thread_state::with(|t| {
        t.alloc_left.set(saved);
        t.in_python.set(false);
    });
    r
}

/// Runs `f` (the shim's own set-up: its constructor, a new thread's start) without
/// counting the allocations the C library makes for it (`dlopen`, `pthread_getattr_np`'s
/// `/proc/self/maps` buffer): they are not the program's, and a program that makes 1000
/// allocations must read as 1000. The budgets are parked for the while, so no slow path
/// folds or samples in between and restoring the cells drops exactly what `f` added.
pub fn unaccounted<R>(f: impl FnOnce() -> R) -> R {
    let saved = thread_state::with(|t| {
        (
            [&t.allocs, &t.frees, &t.alloc_bytes, &t.freed_bytes].map(Cell::get),
            t.alloc_left.replace(NEVER),
            t.free_left.replace(NEVER),
        )
    });
    let r = f();
    thread_state::with(|t| {
        let (counts, alloc_left, free_left) = saved;
        for (cell, v) in [&t.allocs, &t.frees, &t.alloc_bytes, &t.freed_bytes]
            .into_iter()
            .zip(counts)
        {
            cell.set(v);
        }
        t.alloc_left.set(alloc_left);
        t.free_left.set(free_left);
    });
    r
}

/// A uniform draw in (0, 1) from the thread's xorshift state.
fn unit(t: &ThreadState) -> f64 {
    let mut x = t.rng.get();
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    t.rng.set(x);
    ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// A gap between sample points: uniform on [mean/2, 3·mean/2] bytes.
fn gap(t: &ThreadState, mean: u64) -> i64 {
    (mean as f64 * (0.5 + unit(t))).max(1.0) as i64
}

/// The first gap of a thread, or after its mean changes: the part of a gap left after a
/// byte drawn at random (the renewal process's residual, density (1 − F(x)) / mean), so
/// the points are stationary from the first byte on: uniform on [0, mean/2) with chance
/// 1/2, else on [mean/2, 3·mean/2) with a density falling linearly to 0.
fn first_gap(t: &ThreadState, mean: u64) -> i64 {
    let (u, m) = (unit(t), mean as f64);
    let x = if u < 0.5 {
        m * u
    } else {
        m * (1.5 - (2.0 * (u - 0.5)).sqrt())
    };
    x.max(1.0) as i64
}

/// Arms a thread's samplers on its first slow path (its TLS starts zeroed); false if
/// they already were.
fn arm_thread(t: &ThreadState, rt: &Runtime) -> bool {
    if t.rng.get() != 0 {
        return false;
    }
    let x = (t as *const ThreadState as u64) ^ runtime::monotonic_ns().rotate_left(32);
    t.rng.set(x | 1);
    t.free_left.set(FOLD_BYTES);
    let first = |mean| if mean > 0 { first_gap(t, mean) } else { NEVER };
    t.sample_gap.set(first(rt.config.mem_rate));
    t.copy_left.set(first(rt.config.copy_rate));
    t.window_ns.set(runtime::monotonic_ns());
    true
}

/// Samples per thread per second above which the thread's sampling mean grows, and a
/// quarter of which lets it shrink back (never below `RPROF_MEM_RATE`). A sample costs
/// ~0.5-1 µs (stack walk, queue slot, and the free when it comes), so this caps the cost
/// near 1-2% of a thread: a C program that mallocs 100 GB/s of blocks it never touches
/// would otherwise take 2.7x at 128 KiB. Every sample is weighed with the mean its points
/// were drawn with, so the estimate stays unbiased (docs/DESIGN.md).
const MAX_SAMPLES_PER_S: u64 = 20_000;
/// A window closes after this many samples, or after a second once the mean has grown
/// (so that a thread whose allocation burst is over gets its fine mean back soon).
const WINDOW: u32 = 64;
const WINDOW_NS: u64 = 1_000_000_000;
const MAX_SHIFT: u32 = 12;

/// Counts a sample (`sampled`) against the thread's window and, when the window closes,
/// sets the mean's shift from the rate measured over it: up by as many doublings as the
/// rate is over the cap, down by as many as it is under half of it. A change redraws the
/// pending gap from the new mean's residual (`first_gap`), so the points after the change
/// follow the new mean alone.
fn adapt(t: &ThreadState, rate: u64, sampled: bool) {
    let n = t.window_samples.get() + sampled as u32;
    let shift = t.rate_shift.get();
    if n < WINDOW && shift == 0 {
        t.window_samples.set(n);
        return;
    }
    let now = runtime::monotonic_ns();
    let took = now.saturating_sub(t.window_ns.get()).max(1);
    if n < WINDOW && took < WINDOW_NS {
        t.window_samples.set(n);
        return;
    }
    let new = shift_for(shift, n as u64 * 1_000_000_000 / took);
    if new != shift {
        t.rate_shift.set(new);
        t.sample_gap.set(first_gap(t, rate << new));
    }
    t.window_ns.set(now);
    t.window_samples.set(0);
}

/// The shift that brings `per_s` samples a second (measured at `shift`) under the cap.
fn shift_for(shift: u32, per_s: u64) -> u32 {
    if per_s > MAX_SAMPLES_PER_S {
        let over = (per_s / MAX_SAMPLES_PER_S).ilog2() + 1;
        (shift + over).min(MAX_SHIFT)
    } else if per_s < MAX_SAMPLES_PER_S / 4 {
        let under = (MAX_SAMPLES_PER_S / 2 / per_s.max(1)).ilog2();
        shift.saturating_sub(under)
    } else {
        shift
    }
}

#[cold]
#[inline(never)]
fn slow_alloc(t: &ThreadState, p: usize, n: usize, python: bool) {
    if let Some(weight) = slow_points(t, n) {
        record_sampled(p, n, weight, python);
    }
}

/// The slow path of an allocation of `n` bytes: folds the counters, draws the sample points
/// that fell in its bytes and rearms the budget. The weight of the sample the block is to
/// carry, if any.
#[cold]
#[inline(never)]
fn slow_points(t: &ThreadState, n: usize) -> Option<u64> {
    let mut sample = None;
    let spent = t.alloc_armed.get() - t.alloc_left.get();
    counters::fold(t);
    let mut gap_left = FOLD_BYTES;
    if let Some(rt) = runtime::active() {
        let mut points = 0;
        let mean = rt.config.mem_rate << t.rate_shift.get();
        // A thread's first slow path arms it, and the bytes that brought it here (its first
        // allocations) are sampled like any others: a program whose one big block is its
        // first allocation must see it.
        arm_thread(t, rt);
        {
            gap_left = t.sample_gap.get() - spent;
            // A block of thousands of means takes its points by their expectation, not one
            // draw each: a terabyte reservation must not cost millions of iterations.
            if gap_left < -((mean as i64) << 10) {
                let bulk = -gap_left / mean as i64 - 16;
                points += bulk as u64;
                gap_left += bulk * mean as i64;
            }
            while gap_left <= 0 {
                points += 1;
                gap_left += gap(t, mean);
            }
        }
        t.sample_gap.set(gap_left);
        let exact = is_large(n, mean);
        if points > 0 || exact {
            sample = Some(if exact { n as u64 } else { weight(n, mean) });
        }
        if !rt.config.mem_rate_fixed {
            adapt(t, rt.config.mem_rate, points > 0 || exact);
            gap_left = t.sample_gap.get();
        }
    }
    let armed = gap_left.min(FOLD_BYTES);
    t.alloc_armed.set(armed);
    t.alloc_left.set(armed);
    sample
}

/// Whether a block of `n` bytes is large enough to be sampled always, as itself (weight
/// `n`, P = 1): at least a quarter of the thread's mean, and at least `FOLD_BYTES`, so
/// that the fast path (whose budget never exceeds `FOLD_BYTES`) always brings it to the
/// slow path. Under the sample points alone such a block is sampled with some
/// P < 1 and weighed n / P: unbiased, but once a thread's mean has grown (`adapt`) a 1 MB
/// block at M = 1 MiB was sampled with P = 0.61 (Poisson points) and counted as 0 or
/// 1.6 MB, so 100 of them read −4 % to +16 % across runs. Blocks below the threshold keep
/// the sampled estimate: the points still run over every byte (those that fall in a large
/// block are absorbed), and, stationary over the byte stream, they give every other block
/// the same chance. Sampling every block of at least M / 4 bytes adds at most four
/// samples per M bytes, and `adapt` still bounds the samples a second: they count in its
/// window, and a larger mean raises the threshold with it.
#[inline]
fn is_large(n: usize, mean: u64) -> bool {
    n as u64 >= (mean / 4).max(FOLD_BYTES as u64)
}

/// The bytes a sampled block of `n` bytes stands for: n / P(sampled), where a block is
/// sampled when at least one point falls in it. With gaps uniform on [a, b] = [M/2, 3M/2]
/// (M = `mean`), P(no point in n bytes) is the chance the residual gap exceeds n,
/// (1/M) ∫ₙ^∞ (1 − F(x)) dx: 1 − n/M up to n = a (at most one point fits), then
/// (b − n)² / 2M², and 0 from b on. Unbiased (E = P · n/P = n), and a block of at least
/// 3M/2 counts as itself, exactly: the points' count k (k × mean, an older weight) would
/// give a lone 50 MiB block ± 5% at 128 KiB. As tcmalloc's and Go's heap profiles weigh
/// by their own process's P.
fn weight(n: usize, mean: u64) -> u64 {
    let (n, m) = (n.max(1) as f64, mean as f64);
    let p = if n <= m / 2.0 {
        n / m
    } else if n < 1.5 * m {
        1.0 - (1.5 * m - n).powi(2) / (2.0 * m * m)
    } else {
        1.0
    };
    (n / p).round() as u64
}

#[cold]
#[inline(never)]
fn record_alloc(rt: &Runtime, p: usize, n: usize, weight: u64, python: bool) {
    if runtime::recording().is_none() {
        return;
    }
    let taken = thread_state::guarded(|t| {
        let mut native = [0u64; native_stack::NATIVE_DEPTH];
        let depth = if alloc_hooks::hooked() {
            native_stack::unwound(&mut native)
        } else {
            native_stack::callers(t.stack_hi.get(), &mut native)
        };
        let Some(mut claim) = rt.queue.claim_patiently() else {
            return;
        };
        let ev = claim.event();
        ev.kind = Kind::Alloc;
        ev.python = python;
        ev.tid = tid(t);
        ev.t_ns = rt.elapsed_ns();
        let id = NEXT_ID.fetch_add(1, Relaxed);
        ev.addr = id;
        ev.size = n as u64;
        ev.weight = weight;
        stack::capture(rt, ev, &native[..depth]);
        SAMPLED.insert(p, id);
    });
    if taken.is_none() {
        rt.queue.count_drop();
    }
}

#[cold]
#[inline(never)]
fn record_free(p: usize) {
    let rt = runtime::active();
    if let Some(rt) = rt {
        rt.note_finalizing();
    }
    SAMPLED.remove_all(p, |id| {
        // A free must be recorded even from inside the shim, or the allocation would read
        // as a leak: it needs no stack, so it is safe anywhere.
        let Some(mut claim) = rt.and_then(|rt| rt.queue.claim_patiently()) else {
            return;
        };
        let ev = claim.event();
        ev.kind = Kind::Free;
        ev.t_ns = rt.map_or(0, Runtime::elapsed_ns);
        ev.addr = id;
        ev.depth = 0;
        ev.native_depth = 0;
    });
}

/// Counts `n` bytes copied; records a copy sample when a sample point falls inside.
#[inline(always)]
pub fn on_copy(n: usize) {
    thread_state::with(|t| {
        let left = t.copy_left.get() - n as i64;
        t.copy_left.set(left);
        if left <= 0 {
            slow_copy(t);
        }
    })
}

#[cold]
#[inline(never)]
fn slow_copy(t: &ThreadState) {
    let Some(rt) = runtime::recording() else {
        t.copy_left.set(FOLD_BYTES);
        return;
    };
    if arm_thread(t, rt) || rt.config.copy_rate == 0 {
        return;
    }
    let mut left = t.copy_left.get();
    let mut points = 0;
    while left <= 0 {
        points += 1;
        left += gap(t, rt.config.copy_rate);
    }
    t.copy_left.set(left);
    thread_state::guarded(|t| {
        let mut native = [0u64; native_stack::NATIVE_DEPTH];
        let depth = native_stack::callers(t.stack_hi.get(), &mut native);
        let Some(mut claim) = rt.queue.claim_patiently() else {
            return;
        };
        let ev = claim.event();
        ev.kind = Kind::Copy;
        ev.tid = tid(t);
        ev.t_ns = rt.elapsed_ns();
        ev.weight = points * rt.config.copy_rate;
        stack::capture(rt, ev, &native[..depth]);
    });
}

fn tid(t: &ThreadState) -> u32 {
    if t.tid.get() == 0 {
        // SAFETY: gettid has no preconditions and cannot fail.
        t.tid.set(unsafe { libc::gettid() } as u32);
    }
    t.tid.get()
}

#[cfg(test)]
mod tests {
    use super::{
        first_gap, gap, is_large, shift_for, weight, ThreadState, MAX_SAMPLES_PER_S as CAP,
        MAX_SHIFT,
    };

    const MEAN: u64 = 128 << 10;
    const MIB: u64 = 1 << 20;

    /// The slow path's estimate of `blocks` allocated in turn by one thread (the same
    /// gaps and weight as `slow_alloc`), seeded by `seed`.
    fn estimate(blocks: impl Iterator<Item = u64>, seed: u64) -> f64 {
        estimate_at(MEAN, blocks, seed)
    }

    /// `estimate` with the thread's mean at `mean`.
    fn estimate_at(mean: u64, blocks: impl Iterator<Item = u64>, seed: u64) -> f64 {
        // SAFETY: all-zero cells are a thread's start state, as its TLS block has.
        let t: ThreadState = unsafe { std::mem::zeroed() };
        t.rng.set(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut left = first_gap(&t, mean);
        let mut sum = 0.0;
        for n in blocks {
            left -= n as i64;
            let mut points = 0;
            while left <= 0 {
                points += 1;
                left += gap(&t, mean);
            }
            if is_large(n as usize, mean) {
                sum += n as f64;
            } else if points > 0 {
                sum += weight(n as usize, mean) as f64;
            }
        }
        sum
    }

    #[test]
    fn large_blocks_count_exactly_whatever_the_mean() {
        // alloc_heavy's leak: 100 blocks of 10^6 B among churn of small blocks, with the
        // thread's mean grown to 1 MiB (adapt): every run counts the 100 MB exactly, and
        // the churn between them stays unbiased.
        let leak = 1_000_000u64;
        for seed in 1..=50 {
            let only_large = (0..100).map(move |_| leak);
            assert_eq!(estimate_at(MIB, only_large, seed), (100 * leak) as f64);
        }
        let mixed = || (0..100u64).flat_map(move |_| std::iter::repeat_n(32, 20_000).chain([leak]));
        let truth = mixed().sum::<u64>() as f64;
        let runs: Vec<f64> = (1..=40)
            .map(|s| estimate_at(MIB, mixed(), s) / truth)
            .collect();
        let mean = runs.iter().sum::<f64>() / runs.len() as f64;
        // Small blocks: 64 MB at 1 MiB, a spread of ~13% of their part (39%) per run.
        assert!((mean - 1.0).abs() < 0.03, "mean {mean}");
        assert!(
            runs.iter().all(|r| r * truth >= (100 * leak) as f64 * 0.99),
            "{runs:?}"
        );
    }

    /// Mean and relative standard deviation of `trials` estimates, over `truth`.
    fn spread(
        trials: u64,
        truth: f64,
        blocks: impl Fn() -> Box<dyn Iterator<Item = u64>>,
    ) -> (f64, f64) {
        let runs: Vec<f64> = (1..=trials)
            .map(|s| estimate(blocks(), s) / truth)
            .collect();
        let mean = runs.iter().sum::<f64>() / trials as f64;
        let var = runs.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (trials - 1) as f64;
        (mean, var.sqrt())
    }

    #[test]
    fn a_block_far_above_the_mean_counts_as_itself() {
        for seed in 1..=200 {
            assert_eq!(estimate([50 * MIB].into_iter(), seed), (50 * MIB) as f64);
            assert_eq!(estimate([10 * MIB; 8].into_iter(), seed), (80 * MIB) as f64);
        }
    }

    #[test]
    fn small_blocks_are_estimated_without_bias() {
        // 10^6 blocks of 100 B (100 MB): the points' count over a run of bytes varies as
        // the gaps' squared coefficient of variation, 1/12 for uniform gaps on
        // [M/2, 3M/2] (1 for a Poisson process's), so the relative spread is
        // sqrt(mean / 12 bytes) = 1.0% in theory (3.6% with exponential gaps); the mean of
        // 60 runs is within 5 of its standard errors of the truth.
        let truth = 1e8;
        let (mean, sd) = spread(60, truth, || Box::new(std::iter::repeat_n(100, 1_000_000)));
        let theory = (MEAN as f64 / 12.0 / truth).sqrt();
        assert!(
            (mean - 1.0).abs() < 5.0 * theory / 60f64.sqrt(),
            "mean {mean}"
        );
        assert!(
            sd > 0.7 * theory && sd < 1.3 * theory,
            "spread {sd} vs {theory}"
        );
    }

    #[test]
    fn blocks_near_the_mean_are_estimated_without_bias() {
        // Sizes from 1 KiB to 1 MiB, 4000 of them (~2 GB): the weight's 1/P matters most
        // here. Mean within 1% of the truth over 40 runs, their spread under 1%.
        let sizes = || (0..4000u64).map(|i| 1024 << (i % 11));
        let truth = sizes().sum::<u64>() as f64;
        let (mean, sd) = spread(40, truth, move || Box::new(sizes()));
        assert!((mean - 1.0).abs() < 0.01, "mean {mean}");
        assert!(sd < 0.01, "spread {sd}");
    }

    #[test]
    fn the_weight_is_size_over_its_chance() {
        assert_eq!(weight(50 << 20, MEAN), 50 << 20);
        // Up to half the mean a block holds at most one point: P = n / M, weight M.
        for n in [1, 100, MEAN as usize / 4, MEAN as usize / 2] {
            assert_eq!(weight(n, MEAN), MEAN, "{n}");
        }
        // At the mean, P = 1 - (M/2)^2 / 2M^2 = 7/8; from 3M/2 on, P = 1.
        let w = weight(MEAN as usize, MEAN) as f64;
        assert!((w - MEAN as f64 * 8.0 / 7.0).abs() < 1.0, "{w}");
        assert_eq!(weight(3 * MEAN as usize / 2, MEAN), 3 * MEAN / 2);
    }

    #[test]
    fn the_chance_of_a_point_is_as_the_weight_assumes() {
        // Blocks of M/4, M and 5M/4 bytes in turn: the share of each size that is
        // sampled, over 200,000 blocks of each, is its P within 1 %.
        // SAFETY: all-zero cells are a thread's start state, as its TLS block has.
        let t: ThreadState = unsafe { std::mem::zeroed() };
        t.rng.set(0x2545_f491_4f6c_dd1d);
        let sizes = [MEAN / 4, MEAN, 5 * MEAN / 4];
        let (mut left, mut hits) = (first_gap(&t, MEAN), [0u64; 3]);
        for _ in 0..200_000 {
            for (i, &n) in sizes.iter().enumerate() {
                left -= n as i64;
                let mut points = 0;
                while left <= 0 {
                    points += 1;
                    left += gap(&t, MEAN);
                }
                hits[i] += (points > 0) as u64;
            }
        }
        for (i, &n) in sizes.iter().enumerate() {
            let p = n as f64 / weight(n as usize, MEAN) as f64;
            let got = hits[i] as f64 / 200_000.0;
            assert!((got - p).abs() < 0.01, "{n} B: sampled {got}, P {p}");
        }
    }

    #[test]
    fn the_mean_follows_the_sample_rate() {
        // Within [cap/4, cap]: stays.
        assert_eq!(shift_for(3, CAP), 3);
        assert_eq!(shift_for(3, CAP / 4), 3);
        // Over: enough doublings to come back under the cap at once.
        for (shift, per_s) in [(0, CAP + 1), (0, 3 * CAP), (2, 50 * CAP), (0, 5000 * CAP)] {
            let new = shift_for(shift, per_s);
            assert!(new > shift && new <= MAX_SHIFT, "{shift} {per_s} -> {new}");
            assert!(
                new == MAX_SHIFT || per_s >> (new - shift) <= CAP,
                "{shift} {per_s} -> {new}"
            );
        }
        // Under: back down, never below the configured mean, not below cap/4 in one step.
        assert_eq!(shift_for(0, 10), 0);
        assert_eq!(shift_for(MAX_SHIFT, 0), 0);
        for (shift, per_s) in [(5, CAP / 5), (8, CAP / 64), (12, 3)] {
            let new = shift_for(shift, per_s);
            assert!(new < shift, "{shift} {per_s} -> {new}");
            assert!(per_s << (shift - new) <= CAP, "{shift} {per_s} -> {new}");
        }
    }
}
