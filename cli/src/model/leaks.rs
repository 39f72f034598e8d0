//! Leak detection per line. A line is a likely leak when (1) its sampled allocations are
//! mostly never freed, by Scalene's rule of succession, and (2) the memory it holds grew
//! steadily through the run: a straight line fits its live bytes over time well, rising,
//! its allocations span most of the run, and what it kept is not negligible. A line that
//! allocates once and keeps it (flat afterwards) fails (2); one that churns fails (1).
//!
//! Time in (2) is wall time, or the program's own ([`super::program_time`]): a leak grows
//! steadily in either. The program's user time stands still while it is stopped, waits
//! for a core or for the kernel, where wall time breaks a steady growth into steps; wall
//! time holds where the kernel's split of CPU time into user and system time does not
//! (a loaded machine's ticks can miss a thread's user mode for a whole short run). The
//! rate reported is per second of wall time, what a user waits.
//!
//! Everything is judged at the program's exit point (see [`super::memory`]): frees during
//! interpreter or process teardown do not undo a leak.

/// Scalene's threshold on the rule of succession (`leak_reporting_threshold` = 0.05).
pub const MIN_LIKELIHOOD: f64 = 0.95;
/// How well a straight line must fit the live bytes over time (coefficient of
/// determination of the least-squares fit).
pub const MIN_R2: f64 = 0.8;
/// The part of the run (on the clock judged) between the line's first and last sampled
/// allocation.
pub const MIN_SPAN: f64 = 0.5;
/// What the line kept at exit, as a part of the peak footprint, and at least this much.
pub const MIN_GROWTH_SHARE: f64 = 0.01;
pub const MIN_GROWTH_BYTES: u64 = 1 << 20;

/// Least-squares fit of a step function of time, weighted by how long each value held,
/// computed incrementally (West's weighted update, stable for large offsets).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Trend {
    weight: f64,
    mean_t: f64,
    mean_y: f64,
    s_tt: f64,
    s_yy: f64,
    s_ty: f64,
}

/// A straight-line fit: `slope` in value per second, `r2` in 0..=1 (0 when either the
/// time span or the value never varied).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Fit {
    pub slope: f64,
    pub r2: f64,
}

impl Trend {
    /// The value was `y` from `t0` to `t1` (seconds).
    pub fn hold(&mut self, t0: f64, t1: f64, y: f64) {
        let w = t1 - t0;
        if w <= 0.0 {
            return;
        }
        let t = (t0 + t1) / 2.0;
        self.weight += w;
        let dt = t - self.mean_t;
        self.mean_t += dt * w / self.weight;
        let dy = y - self.mean_y;
        self.mean_y += dy * w / self.weight;
        // The spread of time within the stretch itself (uniform over it).
        self.s_tt += w * dt * (t - self.mean_t) + w * w * w / 12.0;
        self.s_yy += w * dy * (y - self.mean_y);
        self.s_ty += w * dt * (y - self.mean_y);
    }

    pub fn fit(&self) -> Fit {
        if self.s_tt <= 0.0 {
            return Fit::default();
        }
        let r2 = if self.s_yy > 0.0 {
            (self.s_ty * self.s_ty / (self.s_tt * self.s_yy)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        Fit {
            slope: self.s_ty / self.s_tt,
            r2,
        }
    }
}

/// What the leak rule's first tests look at for one line, up to the program's exit point.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Evidence {
    /// Sampled allocations, and frees of them.
    pub allocs: u64,
    pub frees: u64,
    /// Estimated bytes still live at the exit point.
    pub kept_bytes: u64,
}

/// How a [`candidate`]'s live bytes grew on one clock (wall or program time), up to the
/// exit point.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Growth {
    /// The fit of its live bytes from its first sampled allocation.
    pub fit: Fit,
    /// From its first sampled allocation to its last, as a part of the run.
    pub span: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Leak {
    /// Scalene's rule of succession over the sampled allocations and frees.
    pub likelihood: f64,
    /// What the line kept, per second of the run (bytes/s).
    pub velocity: f64,
    /// How well a straight line fits its growth.
    pub r2: f64,
}

/// Scalene's estimate that the next allocation is not freed: 1 - (frees + 1) /
/// (allocs - frees + 2), the rule of succession over frees as successes.
pub fn likelihood(allocs: u64, frees: u64) -> f64 {
    let frees = frees.min(allocs) as f64;
    1.0 - (frees + 1.0) / (allocs as f64 - frees + 2.0)
}

/// Whether a line passes the leak rule's (module docs) tests of frees and of what it kept,
/// in a run of `elapsed_ns` whose peak footprint was `footprint` bytes.
pub fn candidate(e: &Evidence, elapsed_ns: u64, footprint: u64) -> bool {
    let floor = (footprint as f64 * MIN_GROWTH_SHARE).max(MIN_GROWTH_BYTES as f64);
    elapsed_ns > 0
        && likelihood(e.allocs, e.frees) >= MIN_LIKELIHOOD
        && e.kept_bytes as f64 >= floor
}

/// The rest of the leak rule for a [`candidate`] of a run of `elapsed_ns` (wall time): the
/// span of its allocations, and its trend, on one of the clocks its `growths` were
/// measured on (the best fit of those that pass).
pub fn assess(e: &Evidence, growths: &[Growth], elapsed_ns: u64) -> Option<Leak> {
    let passes = |g: &&Growth| g.fit.slope > 0.0 && g.fit.r2 >= MIN_R2 && g.span >= MIN_SPAN;
    let best = growths
        .iter()
        .filter(passes)
        .max_by(|a, b| a.fit.r2.total_cmp(&b.fit.r2))?;
    (elapsed_ns > 0).then(|| Leak {
        likelihood: likelihood(e.allocs, e.frees),
        velocity: e.kept_bytes as f64 / (elapsed_ns as f64 / 1e9),
        r2: best.fit.r2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn a_staircase_fits_its_slope() {
        // +1 at each second for 10 s: y(t) = floor(t) + 1 on [0, 10]. With t = k + u,
        // var(t) = 100/12 and cov(t, y) = var(k) = 99/12 = var(y): slope and r2 are 0.99.
        let mut tr = Trend::default();
        for i in 0..10 {
            tr.hold(i as f64, i as f64 + 1.0, i as f64 + 1.0);
        }
        let f = tr.fit();
        assert!(close(f.slope, 0.99) && close(f.r2, 0.99), "{f:?}");
        // Far from time zero, the same.
        let mut far = Trend::default();
        for i in 0..10 {
            far.hold(1e6 + i as f64, 1e6 + i as f64 + 1.0, 5e9 + i as f64 + 1.0);
        }
        assert!((far.fit().slope - 0.99).abs() < 1e-6, "{:?}", far.fit());
    }

    #[test]
    fn flat_and_empty_fit_nothing() {
        let mut tr = Trend::default();
        tr.hold(0.0, 5.0, 7.0);
        tr.hold(5.0, 9.0, 7.0);
        assert_eq!(
            tr.fit(),
            Fit {
                slope: 0.0,
                r2: 0.0
            }
        );
        assert_eq!(Trend::default().fit(), Fit::default());
        tr.hold(9.0, 9.0, 100.0); // no time: no weight
        assert_eq!(tr.fit().r2, 0.0);
    }

    #[test]
    fn rule_of_succession_is_scalenes() {
        assert!(close(likelihood(98, 0), 0.99));
        assert!(close(likelihood(10, 10), 1.0 - 11.0 / 2.0));
        assert!(likelihood(19, 0) >= MIN_LIKELIHOOD && likelihood(17, 0) < MIN_LIKELIHOOD);
    }

    #[test]
    fn every_condition_must_hold() {
        let leak = Evidence {
            allocs: 100,
            frees: 0,
            kept_bytes: 100 << 20,
        };
        let fit = Fit {
            slope: 1.0,
            r2: 0.9,
        };
        let growth = Growth { fit, span: 0.6 };
        let elapsed = 10_000_000_000;
        assert!(candidate(&leak, elapsed, 400 << 20));
        let got = assess(&leak, &[growth], elapsed).unwrap();
        assert!(close(got.velocity, 10.0 * (1 << 20) as f64));
        assert!(close(got.likelihood, 1.0 - 1.0 / 102.0));
        let not_candidates = [
            Evidence { frees: 10, ..leak },
            Evidence {
                kept_bytes: 3 << 20,
                ..leak
            },
        ];
        for bad in not_candidates {
            assert!(!candidate(&bad, elapsed, 400 << 20), "{bad:?}");
        }
        assert!(!candidate(&leak, 0, 400 << 20));
        for bad in [
            Fit {
                slope: -1.0,
                r2: 0.9,
            },
            Fit {
                slope: 1.0,
                r2: 0.7,
            },
        ] {
            let g = Growth { fit: bad, ..growth };
            assert_eq!(assess(&leak, &[g], elapsed), None, "{bad:?}");
        }
        let short = Growth {
            span: 0.4,
            ..growth
        };
        assert_eq!(assess(&leak, &[short], elapsed), None);
        // One clock that passes is enough, and its fit is the one reported; one that
        // fails its span and another its fit are not.
        let wobbly = Growth {
            fit: Fit {
                slope: 1.0,
                r2: 0.7,
            },
            ..growth
        };
        assert_eq!(assess(&leak, &[short, growth], elapsed).unwrap().r2, 0.9);
        assert_eq!(assess(&leak, &[short, wobbly], elapsed), None);
        assert_eq!(assess(&leak, &[], elapsed), None);
        // The floor is 1 MiB for a small program.
        let small = |kept_bytes| Evidence { kept_bytes, ..leak };
        assert!(candidate(&small(1 << 20), elapsed, 1 << 20));
        assert!(!candidate(&small(1000), elapsed, 1000));
    }
}
