//! The program's own time, the clock besides wall time that the leak rule
//! ([`super::leaks`]) judges growth on: the user-mode CPU time of all its threads (and, in
//! a merged run, all its processes) as a function of wall time, from the CPU samples.
//!
//! Wall time goes on while the program does not: stopped (SIGSTOP, a debugger), waiting
//! for a core on a loaded machine. Its system time swells with the machine too: the line
//! of mem_alloc.py that fills a fresh 78 MiB list read 0.15 s of CPU (0.07 s system) run
//! alone and 0.39 s (0.32 s system) beside other tests, its user time 0.07-0.09 s both
//! times. In wall or whole CPU time, a leak that grows steadily with the work done then
//! looks like ramps with flat stretches between them, or spans less of the run: that
//! leak lost the straight-line test to a 1 s stop in its 1.2 s run, and the span test
//! beside other tests. The user time advances only with the program's own work, as far
//! as the kernel splits CPU time into user and system time by its ticks (which a loaded
//! machine's ticks can miss): wall time stays the other clock.

/// The CPU samples as they stream: (time, user time the sample stands for).
#[derive(Default)]
pub(super) struct ProgramTime {
    samples: Vec<(u64, u64)>,
}

impl ProgramTime {
    /// A sample at `t_ns` standing for `cpu_ns` of time, `sys_ns` of it not in user mode
    /// (in wall mode too: there the rest is user time as well).
    #[inline]
    pub(super) fn sample(&mut self, t_ns: u64, cpu_ns: u64, sys_ns: u64) {
        self.samples.push((t_ns, cpu_ns.saturating_sub(sys_ns)));
    }

    /// The clock; wall time where there is no user time to go by (no CPU samples: the
    /// memory-only mode).
    pub(super) fn finish(mut self) -> ProgramClock {
        if self.samples.iter().all(|&(_, user)| user == 0) {
            return ProgramClock::wall();
        }
        self.samples.sort_unstable_by_key(|&(t, _)| t);
        let mut points: Vec<(u64, u64)> = Vec::with_capacity(self.samples.len());
        let mut cpu = 0u64;
        for (t, c) in self.samples {
            cpu = cpu.saturating_add(c);
            match points.last_mut() {
                Some(last) if last.0 == t => last.1 = cpu,
                _ => points.push((t, cpu)),
            }
        }
        ProgramClock { points }
    }
}

/// Wall time (ns since the start) to program time (seconds): the cumulative user time of
/// the samples, linear between them (a sample's time accrued since the thread's previous
/// one), from (0, 0) to the first, and past the last at the run's mean rate.
#[derive(Debug, Default)]
pub struct ProgramClock {
    /// (time, user time of every sample up to then), strictly increasing in time; none
    /// for wall time itself.
    points: Vec<(u64, u64)>,
}

impl ProgramClock {
    /// Wall time itself, in seconds: the leak rule's other clock.
    pub fn wall() -> Self {
        Self::default()
    }

    /// The clock's seconds at `t_ns` of wall time since the start.
    pub fn seconds(&self, t_ns: u64) -> f64 {
        let Some(&(t_last, c_last)) = self.points.last() else {
            return t_ns as f64 / 1e9;
        };
        let i = self.points.partition_point(|&(t, _)| t <= t_ns);
        let cpu = if i == self.points.len() {
            let rate = if t_last == 0 {
                1.0
            } else {
                c_last as f64 / t_last as f64
            };
            c_last as f64 + (t_ns - t_last) as f64 * rate
        } else {
            let (t0, c0) = if i == 0 { (0, 0) } else { self.points[i - 1] };
            let (t1, c1) = self.points[i];
            c0 as f64 + (c1 - c0) as f64 * (t_ns - t0) as f64 / (t1 - t0) as f64
        };
        cpu / 1e9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn a_stop_takes_no_program_time() {
        // Two threads at 10 ms of user time per sample (one also 5 ms in the kernel), then
        // the program stopped from 0.5 s to 1.5 s: the first sample after it stands for
        // 10 ms.
        let mut p = ProgramTime::default();
        for k in 1..=50u64 {
            p.sample(k * 10_000_000, 10_000_000, 0);
            p.sample(k * 10_000_000, 15_000_000, 5_000_000);
        }
        p.sample(1_510_000_000, 10_000_000, 0);
        let clock = p.finish();
        assert!(close(clock.seconds(250_000_000), 0.5));
        assert!(close(clock.seconds(500_000_000), 1.0));
        // Inside the stop it creeps over the one sample's 10 ms.
        assert!(close(clock.seconds(1_000_000_000), 1.0 + 0.01 * 0.5 / 1.01));
        assert!(close(clock.seconds(1_510_000_000), 1.01));
        // Past the last sample, the mean rate (1.01 s of CPU over 1.51 s).
        let after = clock.seconds(1_661_000_000);
        assert!(close(after, 1.01 + 0.151 * 1.01 / 1.51), "{after}");
        assert!(clock.seconds(0) == 0.0);
    }

    #[test]
    fn no_user_time_keeps_wall_time() {
        let mut p = ProgramTime::default();
        p.sample(10, 1_000_000_000, 1_000_000_000);
        assert!(close(p.finish().seconds(2_000_000_000), 2.0));
        let none = ProgramTime::default().finish();
        assert!(close(none.seconds(3_000_000_000), 3.0));
    }
}
