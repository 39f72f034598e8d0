//! GPU readings charged to lines, as Scalene does: each reading (all devices at one
//! instant) goes to the line each of the program's threads was running then, that is,
//! to each thread's CPU sample nearest in time (within two reading or sampling periods;
//! a thread with no sample that near was not running). The threads found share the
//! reading equally; a reading no thread was near is counted for the run but charged to
//! no line. A line's utilisation is GPU busy time (percent of a GPU times the reading's
//! period, summed over the devices); its memory is the readings' memory (summed over the
//! devices), averaged over the time charged to it, and its peak.
//!
//! A merged run holds the readings of several processes, each read by its own writer.
//! A figure NVML gave for the reading process alone (see [`gpu_source`]) is that
//! process's: it is charged to that process's threads only, for the period since that
//! process's previous reading, and the run's figure at any moment is the sum over the
//! processes of each one's latest reading. A device-wide figure is the same device seen
//! by every process, so it is taken from one process only (the first that read it that
//! way) and charged to the threads of every process. One trace is the case of one
//! process.
//!
//! CPU samples are kept (time, thread, stack slot) only once the trace has named a GPU
//! (or the merge says one of its traces will): traces without GPU readings cost nothing
//! more.

use super::types::{GpuDeviceSummary, GpuSummary, LineGpu};
use rprof_format::{gpu_source, GpuDevice, GpuReading};
use rustc_hash::FxHashMap;

/// Points kept in the run's GPU timeline.
const TIMELINE_POINTS: usize = 400;

#[derive(Default)]
pub(super) struct GpuAccumulator {
    devices: Vec<GpuDevice>,
    /// The readings, each with the process (of a merged run) that took it.
    readings: Vec<(u32, GpuReading)>,
    /// CPU samples seen since the first device: time, thread, stack slot.
    samples: Vec<(u64, u32, u32)>,
    /// The process whose records are being visited, and each thread's process.
    process: u32,
    thread_process: FxHashMap<u32, u32>,
    /// Keep CPU samples before any device is named (a merge whose later trace has one).
    keep_samples: bool,
}

impl GpuAccumulator {
    pub(super) fn device(&mut self, d: GpuDevice) {
        if !self.devices.iter().any(|k| k.index == d.index) {
            self.devices.push(d);
        }
    }

    pub(super) fn reading(&mut self, r: GpuReading) {
        self.readings.push((self.process, r));
    }

    /// A merged run: the records visited from now on are process `p`'s; `keep_samples`
    /// when some trace of the run holds GPU readings.
    pub(super) fn set_process(&mut self, p: u32, keep_samples: bool) {
        self.process = p;
        self.keep_samples |= keep_samples;
    }

    #[inline]
    pub(super) fn sample(&mut self, t_ns: u64, tid: u32, slot: u32) {
        if !self.devices.is_empty() || self.keep_samples {
            self.samples.push((t_ns, tid, slot));
            if self.process != 0 {
                self.thread_process.insert(tid, self.process);
            }
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
        let mut c = Charged {
            lines: vec![LineGpu::default(); lines],
            funcs: vec![LineGpu::default(); funcs],
            stacks: vec![LineGpu::default(); charged.len()],
            summary: None,
        };
        if self.devices.is_empty() || self.readings.is_empty() {
            return c;
        }
        self.readings.sort_by_key(|&(p, r)| (r.t_ns, p, r.device));
        // Each thread's samples in time order, and its process.
        let mut threads: FxHashMap<u32, Vec<(u64, u32)>> = FxHashMap::default();
        for &(t, tid, slot) in &self.samples {
            threads.entry(tid).or_default().push((t, slot));
        }
        for s in threads.values_mut() {
            s.sort_unstable();
        }
        let threads: Vec<(u32, Vec<(u64, u32)>)> = threads
            .into_iter()
            .map(|(tid, s)| (*self.thread_process.get(&tid).unwrap_or(&0), s))
            .collect();
        let sample_period = 1e9 / f64::from(sample_hz.max(1));

        // Per device, the one process whose device-wide figures are used.
        let mut wide_util: FxHashMap<u32, u32> = FxHashMap::default();
        let mut wide_memory: FxHashMap<u32, u32> = FxHashMap::default();
        for &(p, r) in &self.readings {
            if r.source & gpu_source::PROCESS_UTIL == 0 {
                wide_util.entry(r.device).or_insert(p);
            }
            if r.source & gpu_source::PROCESS_MEMORY == 0 {
                wide_memory.entry(r.device).or_insert(p);
            }
        }
        let instants = group(&self.readings);
        let periods = periods(&instants, sample_period);
        let mut devices: Vec<DeviceSums> =
            self.devices.iter().map(|_| DeviceSums::default()).collect();
        // The latest figure of each (process, device), with when it was read and the
        // period it stands for: the run's figure at a moment sums them.
        let mut latest: FxHashMap<(u32, u32), Latest> = FxHashMap::default();
        let (mut busy, mut unattributed) = (0.0, 0.0);
        let mut timeline = Vec::with_capacity(instants.len());
        let (mut everyone, mut own) = (Vec::new(), Vec::new());
        let mut previous_t: Option<u64> = None;
        for (group, &dt) in instants.iter().zip(&periods) {
            let (p, t) = (group[0].0, group[0].1.t_ns);
            // What this instant adds: figures of this process alone, and device-wide
            // figures from the process that stands for the device (with whether there
            // were any: zero is a reading too).
            let mut own_part = Part::default();
            let mut wide_part = Part::default();
            for &(_, r) in group.iter() {
                // Which part a figure of this reading adds to: the process's own (true), the
                // device-wide one when this process stands for the device (false), or
                // neither (another process's copy of a device-wide figure).
                let part = |own: u8, wide: &FxHashMap<u32, u32>| {
                    if r.source & own != 0 {
                        Some(true)
                    } else {
                        (wide.get(&r.device) == Some(&p)).then_some(false)
                    }
                };
                let util = part(gpu_source::PROCESS_UTIL, &wide_util).map(|own| {
                    let to = if own { &mut own_part } else { &mut wide_part };
                    to.util = Some(to.util.unwrap_or(0) + r.util);
                    r.util
                });
                let memory = part(gpu_source::PROCESS_MEMORY, &wide_memory).map(|own| {
                    let to = if own { &mut own_part } else { &mut wide_part };
                    to.memory = Some(to.memory.unwrap_or(0) + r.memory);
                    r.memory
                });
                let l = latest.entry((p, r.device)).or_default();
                *l = Latest {
                    t_ns: t,
                    period: dt,
                    util: util.or(l.util),
                    memory: memory.or(l.memory),
                    process_util: r.source & gpu_source::PROCESS_UTIL != 0,
                    process_memory: r.source & gpu_source::PROCESS_MEMORY != 0,
                };
            }
            // The run's figures now, per device and summed: each process's latest
            // reading while it is still current (within two of its periods).
            let step = previous_t.map_or(dt, |q| (t - q) as f64);
            previous_t = Some(t);
            let (mut util_now, mut memory_now) = (0, 0);
            for (d, sums) in self.devices.iter().zip(devices.iter_mut()) {
                let mut now = DeviceNow::default();
                for (&(_, device), l) in &latest {
                    if device != d.index || (t - l.t_ns) as f64 > 2.0 * l.period.max(sample_period)
                    {
                        continue;
                    }
                    now.add(l);
                }
                if now.seen {
                    sums.add(&now, step);
                }
                util_now += now.util;
                memory_now += now.memory;
            }
            timeline.push((t, util_now, memory_now));

            let window = 2.0 * dt.max(sample_period);
            everyone.clear();
            own.clear();
            for (q, s) in &threads {
                if let Some(slot) = nearest(s, t, window) {
                    everyone.push(slot);
                    if *q == p {
                        own.push(slot);
                    }
                }
            }
            for (part, to) in [(own_part, &own), (wide_part, &everyone)] {
                let share = if to.is_empty() {
                    0.0
                } else {
                    1.0 / to.len() as f64
                };
                if let Some(util) = part.util {
                    let gpu_busy = f64::from(util) * dt;
                    busy += gpu_busy;
                    if to.is_empty() {
                        unattributed += gpu_busy;
                    }
                    each_charged(to, charged, &mut c, |g| {
                        g.charge_util(gpu_busy * share, share)
                    });
                }
                if let Some(memory) = part.memory {
                    each_charged(to, charged, &mut c, |g| g.charge_memory(dt * share, memory));
                }
            }
        }
        c.summary = Some(GpuSummary {
            devices: self
                .devices
                .iter()
                .zip(devices)
                .map(|(d, s)| s.summary(d, name(d.name)))
                .collect(),
            busy,
            unattributed,
            timeline: downsample(timeline),
        });
        c
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
    fn charge_util(&mut self, busy: f64, share: f64) {
        self.busy += busy;
        self.readings += share;
    }

    fn charge_memory(&mut self, ns: f64, memory: u64) {
        self.memory_ns += ns;
        self.memory_byte_ns += memory as f64 * ns;
        self.peak_bytes = self.peak_bytes.max(memory);
    }
}

/// Applies `f` to the line, stack and function of each stack slot in `to`.
fn each_charged(
    to: &[u32],
    charged: &[(usize, Option<usize>)],
    c: &mut Charged,
    mut f: impl FnMut(&mut LineGpu),
) {
    for &slot in to {
        let Some(&(line, func)) = charged.get(slot as usize) else {
            continue;
        };
        f(&mut c.lines[line]);
        f(&mut c.stacks[slot as usize]);
        if let Some(func) = func {
            f(&mut c.funcs[func]);
        }
    }
}

/// What one instant's readings add, of one kind (the process's own, or device-wide):
/// utilisation and memory summed over the devices, where there were any.
#[derive(Default, Clone, Copy)]
struct Part {
    util: Option<u32>,
    memory: Option<u64>,
}

/// A process's latest reading of a device.
#[derive(Default, Clone, Copy)]
struct Latest {
    t_ns: u64,
    period: f64,
    util: Option<u32>,
    memory: Option<u64>,
    process_util: bool,
    process_memory: bool,
}

/// A device's figures at one moment, summed over the processes' current readings.
#[derive(Default)]
struct DeviceNow {
    seen: bool,
    util: u32,
    memory: u64,
    process_util: bool,
    process_memory: bool,
}

impl DeviceNow {
    fn add(&mut self, l: &Latest) {
        if !self.seen {
            (self.process_util, self.process_memory) = (true, true);
        }
        self.seen = true;
        self.util += l.util.unwrap_or(0);
        self.memory += l.memory.unwrap_or(0);
        self.process_util &= l.process_util;
        self.process_memory &= l.process_memory;
    }
}

/// The period each instant stands for: since its process's previous instant (a process's
/// first stands for as long as its second, or a sampling period).
fn periods(instants: &[&[(u32, GpuReading)]], sample_period: f64) -> Vec<f64> {
    let t = |k: usize| instants[k][0].1.t_ns;
    let mut by_process: FxHashMap<u32, Vec<usize>> = FxHashMap::default();
    for (k, g) in instants.iter().enumerate() {
        by_process.entry(g[0].0).or_default().push(k);
    }
    let mut out = vec![sample_period; instants.len()];
    for ks in by_process.values() {
        for w in ks.windows(2) {
            out[w[1]] = (t(w[1]) - t(w[0])) as f64;
        }
        if let [first, second, ..] = ks[..] {
            out[first] = out[second];
        }
    }
    out
}

/// Readings grouped by process and instant (a writer reads every device at one time).
fn group(readings: &[(u32, GpuReading)]) -> Vec<&[(u32, GpuReading)]> {
    readings
        .chunk_by(|a, b| (a.0, a.1.t_ns) == (b.0, b.1.t_ns))
        .collect()
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
    /// The device's figures at an instant, standing for `dt` ns.
    fn add(&mut self, now: &DeviceNow, dt: f64) {
        self.readings += 1;
        self.time += dt;
        self.util_ns += f64::from(now.util) * dt;
        self.peak_util = self.peak_util.max(now.util);
        self.memory_ns += now.memory as f64 * dt;
        self.peak_memory = self.peak_memory.max(now.memory);
        self.process_util += u64::from(now.process_util);
        self.process_memory += u64::from(now.process_memory);
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

    /// A merged run of two processes on one device, each reading every 10 ms (at offset
    /// times), each with its thread on its own line for the whole run.
    fn two_processes(source: u8, figures: [(u32, u64); 2]) -> Charged {
        let mut g = GpuAccumulator::default();
        for p in 0..2u32 {
            g.set_process(p, true);
            g.device(GpuDevice {
                index: 0,
                name: 0,
                memory_total: 1 << 36,
            });
            for k in 0..20u64 {
                let t = k * 10_000_000 + u64::from(p) * 5_000_000;
                g.sample(t + 1_000_000, 100 + p, p);
                let (util, memory) = figures[p as usize];
                g.reading(GpuReading {
                    t_ns: t,
                    device: 0,
                    util,
                    memory,
                    source,
                });
            }
        }
        g.finish(&[(0, None), (1, None)], (2, 0), |_| String::new(), 100)
    }

    /// Each process's own figures go to its own line, and the run's are their sum.
    #[test]
    fn merged_processes_own_figures_are_theirs_and_add_up() {
        let both = gpu_source::PROCESS_UTIL | gpu_source::PROCESS_MEMORY;
        let c = two_processes(both, [(60, 1 << 30), (30, 2 << 30)]);
        let s = c.summary.expect("readings");
        let (a, b) = (c.lines[0], c.lines[1]);
        assert!((a.busy / b.busy - 2.0).abs() < 1e-9, "{a:?} {b:?}");
        assert!((a.avg_bytes() - f64::from(1u32 << 30)).abs() < 1.0, "{a:?}");
        assert!((b.avg_bytes() - f64::from(2u32 << 30)).abs() < 1.0, "{b:?}");
        assert_eq!(s.unattributed, 0.0);
        // The device carried both: 90 % and 3 GiB at once, once both were reading.
        let d = &s.devices[0];
        assert_eq!((d.peak_util, d.peak_memory), (90, 3 << 30), "{d:?}");
        assert!(d.process_util && d.process_memory);
        assert!(
            (s.busy - (60.0 + 30.0) * 200e6).abs() < 1e-3 * s.busy,
            "{s:?}"
        );
    }

    /// Device-wide figures are one device seen twice: counted once, shared by the lines
    /// of both processes that ran then.
    #[test]
    fn merged_processes_device_wide_figures_count_once() {
        let c = two_processes(0, [(80, 4 << 30), (80, 4 << 30)]);
        let s = c.summary.expect("readings");
        assert!((s.busy - 80.0 * 200e6).abs() < 1e-3 * s.busy, "{s:?}");
        let (a, b) = (c.lines[0], c.lines[1]);
        assert!((a.busy - b.busy).abs() < 0.1 * a.busy, "{a:?} {b:?}");
        assert!((a.busy + b.busy - s.busy).abs() < 1e-3 * s.busy);
        let d = &s.devices[0];
        assert_eq!((d.peak_util, d.peak_memory), (80, 4 << 30), "{d:?}");
        assert!(!d.process_util && !d.process_memory);
    }
}
