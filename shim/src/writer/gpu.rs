//! GPU readings through NVML (`nvml-wrapper`), on a thread of the writer process: NVML is
//! never loaded into the profiled program. The thread loads the library, finds the
//! devices and reads each one at the CPU sampling cadence; the writer's loop takes what
//! it sent and writes the records. Loading and `nvmlInit` can be slow on a real driver
//! (hundreds of ms without persistence mode), so nothing waits for them: not the
//! program's start, and at exit only briefly for the verdict (on or off, and why).
//!
//! Utilisation comes from `nvmlDeviceGetProcessUtilization` for the program's pid where
//! the driver supports it, else from `nvmlDeviceGetUtilizationRates` (the whole device);
//! memory from `nvmlDeviceGetComputeRunningProcesses` for the pid, else the device's used
//! memory. Each reading says which ([`gpu_source`]).

use crate::config::GpuSetting;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};
use rprof_format::{gpu_source, GpuReading};
use std::ffi::OsStr;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// The library NVML's own loader names (the driver installs it; `libnvidia-ml.so`
/// without the version is only in development packages).
pub const DEFAULT_LIBRARY: &str = "libnvidia-ml.so.1";

/// Readings are at most this frequent whatever the CPU rate: each costs a few NVML calls
/// per device, and the driver's own utilisation counters are coarser than this.
const MIN_PERIOD: Duration = Duration::from_millis(10);

/// What the GPU thread tells the writer.
pub enum Msg {
    /// GPU profiling is on, with these devices; `text` describes them for the run's
    /// info line.
    On {
        devices: Vec<DeviceInfo>,
        text: String,
    },
    /// GPU profiling is off, and why (one info line).
    Off(String),
    Reading(GpuReading),
}

pub struct DeviceInfo {
    pub index: u32,
    pub name: String,
    pub memory_total: u64,
}

/// The writer's end: messages from the GPU thread.
pub struct Gpu {
    rx: Receiver<Msg>,
    /// The verdict (on or off) has been received.
    pub decided: bool,
}

impl Gpu {
    /// Starts the GPU thread unless `setting` is off.
    pub fn start(
        setting: GpuSetting,
        library: Option<String>,
        program: u32,
        hz: u32,
        now_ns: impl Fn() -> u64 + Send + 'static,
    ) -> Option<Gpu> {
        if setting == GpuSetting::Off {
            return None;
        }
        let (tx, rx) = channel();
        let period = Duration::from_secs_f64(1.0 / f64::from(hz.max(1))).max(MIN_PERIOD);
        let spawned = std::thread::Builder::new()
            .name("rprof-gpu".into())
            .spawn(move || run(&tx, library, program, period, now_ns));
        if spawned.is_err() {
            return None;
        }
        Some(Gpu { rx, decided: false })
    }

    /// The messages ready now.
    pub fn ready(&mut self) -> Vec<Msg> {
        let msgs: Vec<Msg> = self.rx.try_iter().collect();
        self.decided |= msgs.iter().any(|m| !matches!(m, Msg::Reading(_)));
        msgs
    }

    /// At the end of the run: waits up to `limit` for the verdict if it has not come (a
    /// missing library is known in microseconds; a slow driver is not waited for).
    pub fn verdict(&mut self, limit: Duration) -> Vec<Msg> {
        if self.decided {
            return self.ready();
        }
        match self.rx.recv_timeout(limit) {
            Ok(m) => {
                let mut msgs = vec![m];
                msgs.extend(self.rx.try_iter());
                self.decided |= msgs.iter().any(|m| !matches!(m, Msg::Reading(_)));
                msgs
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => Vec::new(),
        }
    }
}

fn run(
    tx: &Sender<Msg>,
    library: Option<String>,
    program: u32,
    period: Duration,
    now_ns: impl Fn() -> u64,
) {
    let path = library.unwrap_or_else(|| DEFAULT_LIBRARY.to_owned());
    let nvml = match Nvml::builder().lib_path(OsStr::new(&path)).init() {
        Ok(n) => n,
        Err(e) => {
            let _ = tx.send(Msg::Off(format!(
                "GPU profiling off: cannot use NVML ({path}): {}",
                why(&e)
            )));
            return;
        }
    };
    let devices: Vec<(u32, Device)> = match nvml.device_count() {
        Ok(n) => (0..n)
            .filter_map(|i| nvml.device_by_index(i).ok().map(|d| (i, d)))
            .collect(),
        Err(e) => {
            let _ = tx.send(Msg::Off(format!(
                "GPU profiling off: NVML ({path}) cannot count devices: {}",
                why(&e)
            )));
            return;
        }
    };
    if devices.is_empty() {
        let _ = tx.send(Msg::Off(format!(
            "GPU profiling off: NVML ({path}) finds no GPU"
        )));
        return;
    }
    let mut readers: Vec<Reader> = devices
        .iter()
        .map(|(i, d)| Reader {
            index: *i,
            last_seen_us: 0,
            process_util: true,
            device: d,
        })
        .collect();
    // The first reading decides what each device reports per process, for the info line.
    let first: Vec<GpuReading> = readers.iter_mut().map(|r| r.read(program, 0)).collect();
    let infos: Vec<DeviceInfo> = devices
        .iter()
        .map(|(i, d)| DeviceInfo {
            index: *i,
            name: d.name().unwrap_or_else(|_| format!("GPU {i}")),
            memory_total: d.memory_info().map_or(0, |m| m.total),
        })
        .collect();
    let text = describe(&infos, &first);
    if tx
        .send(Msg::On {
            devices: infos,
            text,
        })
        .is_err()
    {
        return;
    }
    let mut next = Instant::now();
    loop {
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            // Fell behind (a slow driver call): keep the cadence from here, no bursts.
            next = now;
        }
        let t = now_ns();
        for r in &mut readers {
            if tx.send(Msg::Reading(r.read(program, t))).is_err() {
                // The writer is done.
                return;
            }
        }
    }
}

/// The info line for GPU profiling on: the devices and where each figure comes from.
fn describe(infos: &[DeviceInfo], first: &[GpuReading]) -> String {
    let names: Vec<String> = infos.iter().map(|d| d.name.clone()).collect();
    let all = |bit: u8| first.iter().all(|r| r.source & bit != 0);
    let any = |bit: u8| first.iter().any(|r| r.source & bit != 0);
    let scope = |bit: u8| match (all(bit), any(bit)) {
        (true, _) => "this process",
        (false, true) => "this process on some devices, device-wide on others",
        _ => "device-wide",
    };
    format!(
        "GPU profiling on: {} device{} ({}); utilisation {}, memory {}",
        infos.len(),
        if infos.len() == 1 { "" } else { "s" },
        names.join(", "),
        scope(gpu_source::PROCESS_UTIL),
        scope(gpu_source::PROCESS_MEMORY),
    )
}

/// NVML's error, said briefly (a library that failed to load gives the loader's text).
fn why(e: &NvmlError) -> String {
    match e {
        NvmlError::LibloadingError(l) => l.to_string(),
        other => other.to_string(),
    }
}

struct Reader<'n> {
    index: u32,
    device: &'n Device<'n>,
    /// Timestamp (µs) of the newest per-process utilisation sample seen.
    last_seen_us: u64,
    /// Per-process utilisation still worth asking for (not refused by the driver).
    process_util: bool,
}

impl Reader<'_> {
    fn read(&mut self, program: u32, t_ns: u64) -> GpuReading {
        let mut source = 0;
        let util = match self.process_util(program) {
            Some(u) => {
                source |= gpu_source::PROCESS_UTIL;
                u
            }
            None => self.device.utilization_rates().map_or(0, |u| u.gpu),
        };
        let memory = match self.device.running_compute_processes() {
            Ok(procs) => {
                source |= gpu_source::PROCESS_MEMORY;
                procs
                    .iter()
                    .filter(|p| p.pid == program)
                    .map(|p| match p.used_gpu_memory {
                        UsedGpuMemory::Used(b) => b,
                        UsedGpuMemory::Unavailable => 0,
                    })
                    .sum()
            }
            Err(_) => self.device.memory_info().map_or(0, |m| m.used),
        };
        GpuReading {
            t_ns,
            device: self.index,
            util: util.min(100),
            memory,
            source,
        }
    }

    /// The program's SM utilisation over the driver's samples since the last reading
    /// (their mean; 0 when none has it), or None where the driver does not report per
    /// process.
    fn process_util(&mut self, program: u32) -> Option<u32> {
        if !self.process_util {
            return None;
        }
        match self.device.process_utilization_stats(self.last_seen_us) {
            Ok(samples) => {
                self.last_seen_us = samples
                    .iter()
                    .map(|s| s.timestamp)
                    .max()
                    .unwrap_or(self.last_seen_us);
                let ours: Vec<u32> = samples
                    .iter()
                    .filter(|s| s.pid == program)
                    .map(|s| s.sm_util)
                    .collect();
                Some(if ours.is_empty() {
                    0
                } else {
                    ours.iter().sum::<u32>() / ours.len() as u32
                })
            }
            // No sample since the last reading: nothing of ours ran.
            Err(NvmlError::NotFound) => Some(0),
            Err(_) => {
                self.process_util = false;
                None
            }
        }
    }
}
