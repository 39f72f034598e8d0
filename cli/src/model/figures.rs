//! Figures derived from the model, in one place so that every renderer shows the same
//! numbers: shares, MiB, the Python fraction, rates.

use super::charge::Charging;
use super::types::{Footprint, Memory, Profile};
use rprof_format::{mode, Clock, Header};

/// Bytes in a MiB (Scalene's "MB": `BYTES_PER_MB` is 2^20).
pub const MIB: f64 = (1u64 << 20) as f64;

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

/// Bytes (an average, a rate) as MiB.
pub fn mib_f64(bytes: f64) -> f64 {
    bytes / MIB
}

/// `100 * part / base` (see [`super::Times::share_base`]), and 0 for an empty profile, not
/// NaN.
pub fn percent(part: u64, base: f64) -> f64 {
    if base == 0.0 {
        0.0
    } else {
        100.0 * part as f64 / base
    }
}

/// `part / whole` in 0..=1, and 0 of nothing.
pub fn fraction(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64).min(1.0)
    }
}

/// Nanoseconds as seconds.
pub fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// `PY_VERSION_HEX` as people write it: 0x030B07F0 is "3.11.7", 0x030D00C2 is "3.13.0rc2".
pub fn python_version(hex: u32) -> Option<String> {
    if hex == 0 {
        return None;
    }
    let (major, minor, micro) = (hex >> 24, (hex >> 16) & 0xff, (hex >> 8) & 0xff);
    let serial = hex & 0xf;
    let level = match (hex >> 4) & 0xf {
        0xa => format!("a{serial}"),
        0xb => format!("b{serial}"),
        0xc => format!("rc{serial}"),
        _ => String::new(),
    };
    Some(format!("{major}.{minor}.{micro}{level}"))
}

/// The sampling clock's name ("cpu", "wall"), or "clock N" for one this reader does not know.
pub fn clock_name(h: &Header) -> String {
    Clock::from_u8(h.clock).map_or_else(|| format!("clock {}", h.clock), |c| c.name().into())
}

/// The modes switched on, each as `RPROF_MODE` spells it.
pub fn modes_on(modes: u32) -> Vec<&'static str> {
    mode::NAMES
        .into_iter()
        .filter(|(_, bit)| modes & bit != 0)
        .map(|(name, _)| name)
        .collect()
}

/// The modes switched on, as `RPROF_MODE` spells them ("cpu,memory").
pub fn mode_names(modes: u32) -> String {
    let on = modes_on(modes);
    if on.is_empty() {
        "none".into()
    } else {
        on.join(",")
    }
}

impl Memory {
    /// The part of the bytes allocated that the Python allocator served (0 of nothing).
    pub fn python_fraction(&self) -> f64 {
        fraction(self.python_bytes, self.malloc_bytes)
    }
}

impl Footprint {
    /// The part of the bytes allocated still live at the exit point.
    pub fn growth_fraction(&self) -> f64 {
        fraction(self.kept_bytes, self.malloc_bytes)
    }

    /// What shares of the peak are shares of: the exact peak footprint, or the estimate when
    /// that is larger (the samples saw frees of sampled blocks go missing).
    pub fn peak_base(&self) -> u64 {
        self.max_bytes.max(self.peak_bytes)
    }
}

impl Profile {
    /// The charging policy in one sentence: whose lines carry library time and memory.
    pub fn charging_note(&self) -> String {
        let c = &self.charging;
        if !c.policy.recharges() {
            return "every line its own samples (--profile-all)".to_string();
        }
        let memory = if self.has_memory() {
            format!(", {:.1} MiB", mib(c.recharged_bytes))
        } else {
            String::new()
        };
        let whose = if c.policy == Charging::default() {
            String::new()
        } else {
            format!(" ({})", c.policy.describe())
        };
        format!(
            "library time to the program's calling line{whose}: {:.1}%{memory} \
             (--profile-all: library lines their own)",
            percent(c.recharged.total_ns(), self.total.share_base())
        )
    }

    /// `bytes` over the run, per second; `None` for a run of no time.
    pub fn rate(&self, bytes: u64) -> Option<f64> {
        (self.elapsed_ns > 0).then(|| bytes as f64 / secs(self.elapsed_ns))
    }

    /// Bytes copied per second by a line or function; `None` when it copied nothing (or
    /// the run took no time).
    pub fn copy_rate(&self, m: &Memory) -> Option<f64> {
        if m.copy_bytes == 0 {
            return None;
        }
        self.rate(m.copy_bytes)
    }

    /// A line's share of the memory, in percent: of the bytes allocated, or of the peak
    /// footprint, whichever is larger.
    pub fn memory_share(&self, m: &Memory) -> f64 {
        let fp = &self.footprint;
        let alloc = percent(m.malloc_bytes, fp.malloc_bytes as f64);
        let peak = percent(m.peak_bytes, fp.peak_base() as f64);
        alloc.max(peak)
    }

    /// The sample rate achieved, per second of the sampled clock in each thread (the
    /// header's `sample_hz` is the one asked for); `None` with no sampled time.
    pub fn achieved_hz(&self) -> Option<f64> {
        let ns = self.total.total_ns().saturating_add(self.profiler_ns);
        let samples = self.total.samples.saturating_add(self.profiler_samples);
        (ns > 0).then(|| samples as f64 / secs(ns))
    }

    /// The noise floor of a line's memory figures: four sampling periods' worth of bytes
    /// (`4 × RPROF_MEM_RATE`). A line's bytes B are estimated within about sqrt(R/B)
    /// (docs/DESIGN.md), so below 4R the figure rests on a sample or two and is off by
    /// 50% or more: one sample of a small block reads about R whatever the line did.
    pub fn memory_floor(&self) -> u64 {
        self.header.mem_rate.saturating_mul(4)
    }

    /// Whether a line's (or function's) memory figures stand above [`Self::memory_floor`]:
    /// its bytes allocated or its peak.
    pub fn resolvable(&self, m: &Memory) -> bool {
        let floor = self.memory_floor();
        m.malloc_bytes >= floor || m.peak_bytes >= floor
    }

    /// The sample rate asked for and the one achieved, and why they differ when the
    /// kernel's timer tick explains it: a CPU-time timer (`CLOCK_THREAD_CPUTIME_ID`)
    /// expires only on a tick, so a kernel built with `CONFIG_HZ=250` gives at most about
    /// 250 samples per CPU-second whatever was asked; each sample is weighted by the time
    /// it stands for, so the shares stay right. The tick is inferred from the rate
    /// achieved: within 8% of one of the usual `CONFIG_HZ` values and below what was asked.
    pub fn sample_rate_note(&self) -> String {
        let asked = self.header.sample_hz;
        let Some(hz) = self.achieved_hz() else {
            return format!("{asked} Hz asked, none achieved (no sample)");
        };
        let mut note = format!("{asked} Hz asked, {hz:.0} Hz achieved");
        // A handful of samples says little about the rate.
        if hz >= 0.9 * asked as f64 || self.total.samples < 20 {
            return note;
        }
        let cpu_clock = Clock::from_u8(self.header.clock) == Some(Clock::Cpu);
        let tick = [100u32, 250, 300, 1000]
            .into_iter()
            .find(|&t| (hz - t as f64).abs() <= 0.08 * t as f64 && t < asked);
        match tick {
            Some(t) if cpu_clock => note.push_str(&format!(
                ": the kernel's timer tick caps CPU-time timers (CONFIG_HZ={t}, by the \
                 rate); each sample is weighted by the time it stands for"
            )),
            _ => note.push_str(
                ": fewer than asked (samples dropped, or threads that ran less than a \
                 period each); each sample is weighted by the time it stands for",
            ),
        }
        note
    }

    /// A part of the sampled CPU time, in percent.
    pub fn cpu_percent(&self, ns: u64) -> f64 {
        percent(ns, self.total.share_base())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_versions_read_as_people_write_them() {
        assert_eq!(python_version(0x030B07F0).as_deref(), Some("3.11.7"));
        assert_eq!(python_version(0x030D00C2).as_deref(), Some("3.13.0rc2"));
        assert_eq!(python_version(0x030E00A1).as_deref(), Some("3.14.0a1"));
        assert_eq!(python_version(0), None);
    }

    #[test]
    fn an_empty_profile_has_zero_percentages() {
        assert_eq!(percent(0, 0.0), 0.0);
        assert_eq!(percent(1, 4.0), 25.0);
        assert_eq!(fraction(3, 0), 0.0);
        assert_eq!(fraction(3, 2), 1.0);
    }
}
