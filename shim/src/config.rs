//! Settings from the environment. A bad value gives one warning line and the default; the
//! program always runs.

use crate::sys::log::warn;
use rprof_format::{mode, Clock};

#[derive(Debug, Clone)]
pub struct Config {
    /// Trace path; `%p` becomes the pid.
    pub output: String,
    pub hz: u32,
    pub clock: Clock,
    pub modes: u32,
    pub flush_ms: u64,
    /// Mean bytes between allocation samples, and between copy samples; 0 when that mode
    /// is off.
    pub mem_rate: u64,
    pub copy_rate: u64,
    /// `RPROF_MEM_RATE` was given: the mean stays as set. By default it starts at
    /// `mem_rate` and adapts per thread to bound the sampling cost (`memory::adapt`).
    pub mem_rate_fixed: bool,
    /// Profile the processes this one forks and spawns (`RPROF_FOLLOW_CHILDREN`, default on).
    pub follow_children: bool,
    /// Started by `rprof run` (`RPROF_LAUNCHER` is set), which reports the run itself: the
    /// closing "wrote" line is left out.
    pub launched: bool,
    /// GPU readings through NVML (`RPROF_GPU`), in the writer process.
    pub gpu: GpuSetting,
    /// `RPROF_NVML_LIBRARY`: the NVML library to load instead of `libnvidia-ml.so.1`.
    pub nvml_library: Option<String>,
    /// `RPROF_START=paused`: nothing is recorded until `rprof_start` (or the toggle
    /// signal), and the trace is created only then, so `rprof_set_output` can still move it.
    pub start_paused: bool,
    /// `RPROF_TOGGLE_SIGNAL`: each delivery of this signal flips recording; 0 when off.
    pub toggle_signal: libc::c_int,
    /// `RPROF_MAX_MB`: the trace stops growing at this many bytes; 0 when unlimited.
    pub max_bytes: u64,
}

/// `RPROF_GPU`: whether the writer looks for GPUs. Auto and on both look; on also says
/// the verdict in processes that are not Python.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuSetting {
    Off,
    Auto,
    On,
}

const DEFAULT_OUTPUT: &str = "rprof-%p.trace";
const DEFAULT_HZ: u32 = 100;
const DEFAULT_FLUSH_MS: u64 = 100;
/// Measured: 128 KiB costs no more than 512 KiB (the per-call hooks dominate), and puts
/// an 80 MB line within ~4% (one standard deviation) instead of ~8%.
const DEFAULT_MEM_RATE: u64 = 128 << 10;
const DEFAULT_COPY_RATE: u64 = 1 << 20;

impl Config {
    pub fn from_env() -> Config {
        let modes = modes();
        let rate = |name, default, bit| {
            let r = number(name, 1, 1 << 40, default);
            if modes & bit != 0 {
                r
            } else {
                0
            }
        };
        Config {
            output: match var("RPROF_OUTPUT") {
                Some(s) if !s.is_empty() => s,
                _ => DEFAULT_OUTPUT.to_owned(),
            },
            hz: number("RPROF_CPU_HZ", 1, 10_000, DEFAULT_HZ as u64) as u32,
            clock: match var("RPROF_CLOCK").as_deref() {
                None | Some("cpu") => Clock::Cpu,
                Some("wall") => Clock::Wall,
                Some(other) => {
                    warn(&format!(
                        "RPROF_CLOCK={other:?} is not 'cpu' or 'wall'; using cpu"
                    ));
                    Clock::Cpu
                }
            },
            modes,
            flush_ms: number("RPROF_FLUSH_MS", 10, 60_000, DEFAULT_FLUSH_MS),
            mem_rate: rate("RPROF_MEM_RATE", DEFAULT_MEM_RATE, mode::MEMORY),
            copy_rate: rate("RPROF_COPY_RATE", DEFAULT_COPY_RATE, mode::COPY),
            mem_rate_fixed: given("RPROF_MEM_RATE", 1, 1 << 40).is_some(),
            follow_children: number("RPROF_FOLLOW_CHILDREN", 0, 1, 1) == 1,
            launched: var("RPROF_LAUNCHER").is_some_and(|v| !v.is_empty()),
            gpu: gpu_setting(),
            nvml_library: var("RPROF_NVML_LIBRARY").filter(|s| !s.is_empty()),
            start_paused: start_paused(),
            toggle_signal: toggle_signal(),
            max_bytes: number("RPROF_MAX_MB", 0, 1 << 20, 0) << 20,
        }
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

fn number(name: &str, lo: u64, hi: u64, default: u64) -> u64 {
    let Some(s) = var(name) else { return default };
    given(name, lo, hi).unwrap_or_else(|| {
        warn(&format!(
            "{name}={s:?} is not a number from {lo} to {hi}; using {default}"
        ));
        default
    })
}

/// The setting's value when it is set to a number in `lo..=hi`.
fn given(name: &str, lo: u64, hi: u64) -> Option<u64> {
    var(name)?
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|v| (lo..=hi).contains(v))
}

/// Modes this build can record; the default is all of them. GPU readings are decided
/// apart (`RPROF_GPU`), as they need a device.
const SUPPORTED: u32 = mode::CPU | mode::MEMORY | mode::COPY;

fn gpu_setting() -> GpuSetting {
    // `gpu` in RPROF_MODE asks for it as RPROF_GPU=on does; a mode list without it leaves
    // the default (auto), so `rprof run --memory` on a GPU machine still reads the GPU.
    let listed = var("RPROF_MODE").is_some_and(|s| s.split(',').any(|w| w.trim() == "gpu"));
    let default = if listed {
        GpuSetting::On
    } else {
        GpuSetting::Auto
    };
    match var("RPROF_GPU").as_deref().map(str::trim) {
        Some("on") => GpuSetting::On,
        Some("off") => GpuSetting::Off,
        None | Some("auto") => default,
        Some(other) => {
            warn(&format!(
                "RPROF_GPU={other:?} is not 'auto', 'on' or 'off'; using auto"
            ));
            default
        }
    }
}

fn start_paused() -> bool {
    match var("RPROF_START").as_deref().map(str::trim) {
        None | Some("" | "running") => false,
        Some("paused") => true,
        Some(other) => {
            warn(&format!(
                "RPROF_START={other:?} is not 'running' or 'paused'; using running"
            ));
            false
        }
    }
}

/// Signals the toggle may use: those a program may send itself that no C library or
/// runtime claims, and real-time ones. (SIGSEGV, SIGBUS, SIGKILL and SIGSTOP never.)
const TOGGLE_SIGNALS: [(&str, libc::c_int); 5] = [
    ("SIGUSR1", libc::SIGUSR1),
    ("SIGUSR2", libc::SIGUSR2),
    ("SIGHUP", libc::SIGHUP),
    ("SIGWINCH", libc::SIGWINCH),
    ("SIGURG", libc::SIGURG),
];

/// `RPROF_TOGGLE_SIGNAL`: a name from [`TOGGLE_SIGNALS`] (with or without `SIG`), or
/// `SIGRTMIN+N`; 0 (off) when unset or bad.
fn toggle_signal() -> libc::c_int {
    let Some(s) = var("RPROF_TOGGLE_SIGNAL") else {
        return 0;
    };
    let name = s.trim().to_ascii_uppercase();
    if name.is_empty() || name == "OFF" {
        return 0;
    }
    let full = if name.starts_with("SIG") {
        name.clone()
    } else {
        format!("SIG{name}")
    };
    if let Some(&(_, sig)) = TOGGLE_SIGNALS.iter().find(|(n, _)| *n == full) {
        return sig;
    }
    // Real-time signals from SIGRTMIN+2 on; the sampler takes the first free one, so it
    // searches past the one named here (it is handled by then).
    if let Some(n) = full
        .strip_prefix("SIGRTMIN+")
        .and_then(|n| n.parse::<i32>().ok())
    {
        let sig = libc::SIGRTMIN() + n;
        if n >= 2 && sig <= libc::SIGRTMAX() {
            return sig;
        }
    }
    warn(&format!(
        "RPROF_TOGGLE_SIGNAL={s:?} is not one of SIGUSR1, SIGUSR2, SIGHUP, SIGWINCH, SIGURG \
         or SIGRTMIN+N (N >= 2); the toggle is off"
    ));
    0
}

fn modes() -> u32 {
    let Some(s) = var("RPROF_MODE") else {
        return SUPPORTED;
    };
    let mut bits = 0;
    for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let Some(bit) = mode::bit(word) else {
            warn(&format!(
                "RPROF_MODE={s:?}: unknown mode {word:?} (known: {}); using the default",
                mode::known()
            ));
            return SUPPORTED;
        };
        bits |= bit;
    }
    if bits == mode::GPU {
        // GPU readings are charged to lines through the CPU samples taken with them.
        return mode::CPU;
    }
    if bits & SUPPORTED == 0 {
        warn(&format!(
            "RPROF_MODE={s:?} selects nothing this build records; using the default"
        ));
        return SUPPORTED;
    }
    bits & SUPPORTED
}
