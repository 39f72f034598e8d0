//! GPU readings charged to lines, as Scalene does: each reading (all devices at one
//! instant) goes to the line each of the program's threads was running then, that is,
//! to each thread's CPU sample nearest in time (within two reading or sampling periods;
//! a thread with no sample that near was not running). The threads found share the
//! reading equally; a reading no thread was near is counted for the run but charged to
//! no line. A line's utilisation is GPU busy time (percent of a GPU times the reading's
//! period, summed over the devices); its memory is the readings' memory (summed over the
//! devices), averaged over the time charged to it, and its peak.
//!
//! CPU samples are kept (time, thread, stack slot) only once the trace has named a GPU:
//! traces without GPU readings cost nothing more.

use super::types::{GpuDeviceSummary, GpuSummary, LineGpu};
use rprof_format::{gpu_source, GpuDevice, GpuReading};
use rustc_hash::FxHashMap;

/// Points kept in the run's GPU timeline.
const TIMELINE_POINTS: usize = 400;

#[derive(Default)]
pub(super) struct GpuAccumulator {
    devices: Vec<GpuDevice>,
    readings: Vec<GpuReading>,
    /// CPU samples seen since the first device: time, thread, stack slot.
    samples: Vec<(u64, u32, u32)>,
}

impl GpuAccumulator {
    pub(super) fn device(&mut self, d: GpuDevice) {
        if !self.devices.iter().any(|k| k.index == d.index) {
            self.devices.push(d);
        }
    }

    pub(super) fn reading(&mut self, r: GpuReading) {
        self.readings.push(r);
    }

    #[inline]
    pub(super) fn sample(&mut self, t_ns: u64, tid: u32, slot: u32) {
        if !self.devices.is_empty() {
            self.samples.push((t_ns, tid, slot));
        }
    }

    /// Per line slot and per function slot, the GPU charged to it (`charged[slot]` is a
    /// stack slot's line slot and function slot), and the run's summary; None without
    /// GPU readings.
    pub(super) fn finish(
        mut self,
        charged: &[(usize, Option<usize>)],
        (lines, funcs): (usize, usize),
        mut name: impl FnMut(u32) -> String,
        sample_hz: u32,
    ) -> Charged {
        let mut per_line = vec![LineGpu::default(); lines];
        let mut per_func = vec![LineGpu::default(); funcs];
        let mut per_stack = vec![LineGpu::default(); charged.len()];
        if self.devices.is_empty() || self.readings.is_empty() {
            return Charged {
                lines: per_line,
                funcs: per_func,
                stacks: per_stack,
                summary: None,
            };
        }
        self.readings.sort_by_key(|r| (r.t_ns, r.device));
        // Each thread's samples in time order.
        let mut threads: FxHashMap<u32, Vec<(u64, u32)>> = FxHashMap::default();
        for &(t, tid, slot) in &self.samples {
            threads.entry(tid).or_default().push((t, slot));
        }
        for s in threads.values_mut() {
            s.sort_unstable();
        }
        let sample_period = 1e9 / f64::from(sample_hz.max(1));

        let mut devices: Vec<DeviceSums> =
            self.devices.iter().map(|_| DeviceSums::default()).collect();
        let slot_of: FxHashMap<u32, usize> = self
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.index, i))
            .collect();
        let instants = group(&self.readings);
        let (mut busy, mut unattributed) = (0.0, 0.0);
        let mut timeline = Vec::with_capacity(instants.len());
        let mut found = Vec::new();
        for (k, group) in instants.iter().enumerate() {
            let t = group[0].t_ns;
            // The period this reading stands for: since the previous one (the first
            // stands for as long as the second).
            let dt = match k {
                0 => instants
                    .get(1)
                    .map_or(sample_period, |g| (g[0].t_ns - t) as f64),
                _ => (t - instants[k - 1][0].t_ns) as f64,
            };
            let util: u32 = group.iter().map(|r| r.util).sum();
            let memory: u64 = group.iter().map(|r| r.memory).sum();
            for r in group.iter() {
                if let Some(&i) = slot_of.get(&r.device) {
                    devices[i].add(r, dt);
                }
            }
            timeline.push((t, util, memory));
            let gpu_busy = f64::from(util) * dt;
            busy += gpu_busy;
            let window = 2.0 * dt.max(sample_period);
            found.clear();
            for s in threads.values() {
                if let Some(slot) = nearest(s, t, window) {
                    found.push(slot);
                }
            }
            if found.is_empty() {
                unattributed += gpu_busy;
                continue;
            }
            let share = 1.0 / found.len() as f64;
            for &slot in &found {
                let Some(&(line, func)) = charged.get(slot as usize) else {
                    continue;
                };
                per_line[line].charge(gpu_busy * share, dt * share, memory, share);
                per_stack[slot as usize].charge(gpu_busy * share, dt * share, memory, share);
                if let Some(f) = func {
                    per_func[f].charge(gpu_busy * share, dt * share, memory, share);
                }
            }
        }
        let summary = GpuSummary {
            devices: self
                .devices
                .iter()
                .zip(devices)
                .map(|(d, s)| s.summary(d, name(d.name)))
                .collect(),
            busy,
            unattributed,
            timeline: downsample(timeline),
        };
        Charged {
            lines: per_line,
            funcs: per_func,
            stacks: per_stack,
            summary: Some(summary),
        }
    }
}

/// What [`GpuAccumulator::finish`] charged.
pub(super) struct Charged {
    pub(super) lines: Vec<LineGpu>,
    pub(super) funcs: Vec<LineGpu>,
    /// By stack slot: the full stacks, for the exports.
    pub(super) stacks: Vec<LineGpu>,
    pub(super) summary: Option<GpuSummary>,
}

impl LineGpu {
    fn charge(&mut self, busy: f64, ns: f64, memory: u64, share: f64) {
        self.busy += busy;
        self.memory_ns += ns;
        self.memory_byte_ns += memory as f64 * ns;
        self.peak_bytes = self.peak_bytes.max(memory);
        self.readings += share;
    }
}

/// Readings grouped by instant (the writer reads every device at one time).
fn group(readings: &[GpuReading]) -> Vec<&[GpuReading]> {
    readings.chunk_by(|a, b| a.t_ns == b.t_ns).collect()
}

/// The stack slot of the sample nearest `t` in `samples` (time-sorted), if within
/// `window` ns.
fn nearest(samples: &[(u64, u32)], t: u64, window: f64) -> Option<u32> {
    let i = samples.partition_point(|s| s.0 < t);
    let before = i.checked_sub(1).map(|j| samples[j]);
    let after = samples.get(i).copied();
    let best = match (before, after) {
        (Some(b), Some(a)) => Some(if t - b.0 <= a.0 - t { b } else { a }),
        (b, a) => b.or(a),
    }?;
    ((best.0.abs_diff(t)) as f64 <= window).then_some(best.1)
}

fn downsample(points: Vec<(u64, u32, u64)>) -> Vec<(u64, u32, u64)> {
    if points.len() <= TIMELINE_POINTS {
        return points;
    }
    let step = points.len().div_ceil(TIMELINE_POINTS);
    // Each kept point is the busiest of its stretch, so short bursts still show.
    points
        .chunks(step)
        .map(|c| {
            *c.iter()
                .max_by_key(|p| (p.1, p.2))
                .expect("chunks are not empty")
        })
        .collect()
}

#[derive(Default)]
struct DeviceSums {
    readings: u64,
    time: f64,
    util_ns: f64,
    peak_util: u32,
    memory_ns: f64,
    peak_memory: u64,
    process_util: u64,
    process_memory: u64,
}

impl DeviceSums {
    fn add(&mut self, r: &GpuReading, dt: f64) {
        self.readings += 1;
        self.time += dt;
        self.util_ns += f64::from(r.util) * dt;
        self.peak_util = self.peak_util.max(r.util);
        self.memory_ns += r.memory as f64 * dt;
        self.peak_memory = self.peak_memory.max(r.memory);
        self.process_util += u64::from(r.source & gpu_source::PROCESS_UTIL != 0);
        self.process_memory += u64::from(r.source & gpu_source::PROCESS_MEMORY != 0);
    }

    fn summary(self, d: &GpuDevice, name: String) -> GpuDeviceSummary {
        let per = |v: f64| if self.time > 0.0 { v / self.time } else { 0.0 };
        GpuDeviceSummary {
            index: d.index,
            name,
            memory_total: d.memory_total,
            readings: self.readings,
            avg_util: per(self.util_ns),
            peak_util: self.peak_util,
            avg_memory: per(self.memory_ns),
            peak_memory: self.peak_memory,
            // A figure counts as the process's when every reading of it was.
            process_util: self.readings > 0 && self.process_util == self.readings,
            process_memory: self.readings > 0 && self.process_memory == self.readings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(t_ns: u64, device: u32, util: u32, memory: u64) -> GpuReading {
        GpuReading {
            t_ns,
            device,
            util,
            memory,
            source: gpu_source::PROCESS_MEMORY,
        }
    }

    /// Two devices read every 10 ms; one thread on stack slot 0 (line 0) for the first
    /// 100 ms, busy, then slot 1 (line 1), idle: line 0 gets all the busy time and the
    /// memory, line 1 none.
    #[test]
    fn readings_go_to_the_lines_running_then() {
        let mut g = GpuAccumulator::default();
        for d in 0..2 {
            g.device(GpuDevice {
                index: d,
                name: d,
                memory_total: 1 << 34,
            });
        }
        for k in 0..20u64 {
            let t = k * 10_000_000 + 5_000_000;
            g.sample(t - 1_000_000, 7, (k >= 10) as u32);
            let (util, mem) = if k < 10 { (90, 1 << 30) } else { (0, 0) };
            g.reading(reading(t, 0, util, mem));
            g.reading(reading(t, 1, util, mem));
        }
        let c = g.finish(
            &[(0, Some(0)), (1, None)],
            (2, 1),
            |n| format!("GPU {n}"),
            100,
        );
        let (lines, s) = (c.lines, c.summary.expect("readings"));
        assert_eq!(c.funcs[0], lines[0]);
        assert_eq!(c.stacks, lines);
        assert_eq!(s.devices.len(), 2);
        assert!(s.devices[0].process_memory && !s.devices[0].process_util);
        assert_eq!(s.devices[1].peak_util, 90);
        assert!((lines[0].busy / s.busy - 1.0).abs() < 1e-9, "{lines:?}");
        assert_eq!(lines[1].busy, 0.0);
        assert_eq!(lines[0].peak_bytes, 2 << 30);
        assert!((lines[0].avg_bytes() - f64::from(2u32 << 30)).abs() < 1.0);
        assert_eq!(lines[1].peak_bytes, 0);
        assert_eq!(s.unattributed, 0.0);
    }

    /// A reading with no sample near it is counted for the run but charged nowhere.
    #[test]
    fn a_reading_far_from_every_sample_is_unattributed() {
        let mut g = GpuAccumulator::default();
        g.device(GpuDevice {
            index: 0,
            name: 0,
            memory_total: 0,
        });
        g.sample(0, 1, 0);
        g.reading(reading(1_000_000_000, 0, 50, 0));
        g.reading(reading(1_010_000_000, 0, 50, 0));
        let c = g.finish(&[(0, None)], (1, 0), |_| String::new(), 100);
        let (lines, s) = (c.lines, c.summary.unwrap());
        assert_eq!(lines[0].busy, 0.0);
        assert!(s.unattributed > 0.0 && (s.unattributed - s.busy).abs() < 1e-9);
    }
}
