//! The report model: what every renderer reads. Figures are computed here once (see
//! [`super::figures`] for the derived ones); renderers only format them.

use super::charge::Charging;
use crate::model::leaks::Leak;
use crate::model::merge::ProcessRow;
use rprof_format::{mode, Counters, End, Exec, FuncKind, Header};

/// Pseudo-file for samples with an empty stack (no frame at all) that none of the phases
/// below explains: a process that never ran Python, or a thread between Python frames.
pub const NO_PYTHON_FRAME: &str = "<native>";
/// Pseudo-file for frameless samples before the process's first Python frame: the
/// interpreter starting up.
pub const START_UP: &str = "<start-up>";
/// Pseudo-file for frameless samples once the interpreter began finalizing: teardown.
pub const TEARDOWN: &str = "<teardown>";
/// Pseudo-file for frameless samples of threads that never ran Python code (a native
/// library's workers), between start-up and teardown.
pub const NATIVE_THREADS: &str = "<native threads>";

/// The pseudo-files of frameless time, [`NO_PYTHON_FRAME`] first.
pub const FRAMELESS: [&str; 4] = [NO_PYTHON_FRAME, START_UP, TEARDOWN, NATIVE_THREADS];

/// Whether `path` is one of the pseudo-files of frameless time, and what it holds, in words.
pub fn frameless_file(path: &str) -> Option<&'static str> {
    match path {
        NO_PYTHON_FRAME => Some("no Python frame"),
        START_UP => Some("interpreter start-up, before the first Python frame"),
        TEARDOWN => Some("interpreter teardown, after finalizing began"),
        NATIVE_THREADS => Some("threads that never ran Python code"),
        _ => None,
    }
}
/// Pseudo-file for samples whose stack, or innermost function, is never defined.
pub const UNDEFINED: &str = "<undefined>";

/// Sampled time, split the way Scalene splits it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Times {
    /// User-mode time in the interpreter.
    pub python_ns: u64,
    /// User-mode time anywhere else (extension modules, libraries).
    pub native_ns: u64,
    /// Kernel time.
    pub sys_ns: u64,
    pub samples: u64,
}

impl Times {
    pub fn total_ns(&self) -> u64 {
        self.python_ns
            .saturating_add(self.native_ns)
            .saturating_add(self.sys_ns)
    }

    /// Adds one sample; `sys_ns` is already clamped to `cpu_ns`.
    #[inline]
    pub(super) fn add_sample(&mut self, exec: Exec, cpu_ns: u64, sys_ns: u64) {
        let user = cpu_ns - sys_ns;
        match exec {
            Exec::Python => self.python_ns = self.python_ns.saturating_add(user),
            // Profiler samples never get here: the accumulator keeps them apart.
            Exec::Native | Exec::Profiler => self.native_ns = self.native_ns.saturating_add(user),
        }
        self.sys_ns = self.sys_ns.saturating_add(sys_ns);
        self.samples += 1;
    }

    /// What shares are shares of. Summed in floating point so that, should a component
    /// saturate (an absurd trace), no part's share can exceed 100%.
    pub fn share_base(&self) -> f64 {
        self.python_ns as f64 + self.native_ns as f64 + self.sys_ns as f64
    }

    pub(super) fn add(&mut self, o: &Times) {
        self.python_ns = self.python_ns.saturating_add(o.python_ns);
        self.native_ns = self.native_ns.saturating_add(o.native_ns);
        self.sys_ns = self.sys_ns.saturating_add(o.sys_ns);
        self.samples = self.samples.saturating_add(o.samples);
    }
}

/// Where a line slot is: its file (source file or module) and line, and for line 0 the
/// function the slot stands for ([`LineProfile::function`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    pub file: String,
    pub line: u32,
    pub function: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LineProfile {
    /// 0 when the trace did not know the line.
    pub line: u32,
    /// For a line 0 that a frame without a line was charged to (a native function with no
    /// debug line info): that function's name. The row stands for the function.
    pub function: Option<String>,
    pub times: Times,
    pub memory: Memory,
    /// GPU readings charged to the line (all zero without them).
    pub gpu: LineGpu,
}

/// The GPU readings charged to one line (see [`super::gpu`]), summed over the devices.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LineGpu {
    /// GPU busy time: utilisation percent times ns.
    pub busy: f64,
    /// Time the readings charged here stand for, and their memory times that time
    /// (bytes·ns), for the average.
    pub memory_ns: f64,
    pub memory_byte_ns: f64,
    /// The most GPU memory any reading charged here showed.
    pub peak_bytes: u64,
    /// Readings charged here (fractions where threads shared one).
    pub readings: f64,
}

impl LineGpu {
    /// GPU memory in use while the line ran, on average.
    pub fn avg_bytes(&self) -> f64 {
        if self.memory_ns > 0.0 {
            self.memory_byte_ns / self.memory_ns
        } else {
            0.0
        }
    }
}

/// The run's GPU readings.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuSummary {
    pub devices: Vec<GpuDeviceSummary>,
    /// GPU busy time of the whole run (percent·ns, summed over the devices), and the part
    /// charged to no line (no thread had a sample near those readings).
    pub busy: f64,
    pub unattributed: f64,
    /// Downsampled: (ns since the start, utilisation summed over the devices in percent,
    /// memory summed over the devices in bytes).
    pub timeline: Vec<(u64, u32, u64)>,
}

impl GpuSummary {
    /// Whether every device's utilisation, and memory, was the process's own.
    pub fn process_util(&self) -> bool {
        self.devices.iter().all(|d| d.process_util)
    }

    pub fn process_memory(&self) -> bool {
        self.devices.iter().all(|d| d.process_memory)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GpuDeviceSummary {
    pub index: u32,
    pub name: String,
    pub memory_total: u64,
    pub readings: u64,
    /// Utilisation (percent) and memory (bytes), time-averaged over the readings, and at
    /// their highest.
    pub avg_util: f64,
    pub peak_util: u32,
    pub avg_memory: f64,
    pub peak_memory: u64,
    /// Whether the figures were the process's own (else the whole device's).
    pub process_util: bool,
    pub process_memory: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FileProfile {
    /// As recorded (Python's `co_filename`, a native function's source file or module), or
    /// a pseudo-file such as [`NO_PYTHON_FRAME`].
    pub path: String,
    /// Whether native functions are charged here (its source is often not at hand).
    pub native: bool,
    pub times: Times,
    /// Sorted by line number.
    pub lines: Vec<LineProfile>,
}

impl FileProfile {
    /// Estimated bytes allocated by the file's lines.
    pub fn malloc_bytes(&self) -> u64 {
        self.lines
            .iter()
            .fold(0u64, |a, l| a.saturating_add(l.memory.malloc_bytes))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FunctionProfile {
    pub name: String,
    pub file: String,
    pub first_line: u32,
    pub kind: FuncKind,
    /// Time with this function the one charged (see the module docs).
    pub self_times: Times,
    /// Time with this function anywhere on the stack (counted once per sample).
    pub total_ns: u64,
    /// Memory charged to this function's lines.
    pub memory: Memory,
    /// GPU readings charged to this function's lines.
    pub gpu: LineGpu,
}

impl FunctionProfile {
    /// Whether a sample was charged to it or had it on its CPU stack. The profile also
    /// holds functions seen only on the stacks of memory samples charged elsewhere (frames
    /// of [`Profile::stacks`]), with nothing of their own: function lists leave them out.
    pub fn sampled(&self) -> bool {
        self.self_times.samples > 0
            || self.total_ns > 0
            || self.memory.alloc_samples > 0
            || self.memory.copy_bytes > 0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ThreadProfile {
    /// The process the thread ran in (the trace's), and the thread's kernel id.
    pub pid: u32,
    pub tid: u32,
    pub name: Option<String>,
    pub times: Times,
}

/// Everything a report shows, resolved and sorted.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub header: Header,
    pub total: Times,
    /// Sampled time spent in rprof's own hooks, left out of `total` and every share, and
    /// the samples that found it.
    pub profiler_ns: u64,
    pub profiler_samples: u64,
    /// Sorted by time, largest first.
    pub files: Vec<FileProfile>,
    /// Sorted by self time, largest first.
    pub functions: Vec<FunctionProfile>,
    /// Sorted by time, largest first.
    pub threads: Vec<ThreadProfile>,
    /// The sampled call stacks, resolved, with what each one cost.
    pub stacks: Stacks,
    /// The End record's time, else the last time seen in any record.
    pub elapsed_ns: u64,
    /// `None` when the process died before writing it.
    pub end: Option<End>,
    /// The latest allocator counters, if the trace has any.
    pub counters: Option<Counters>,
    pub footprint: Footprint,
    /// Named moments of the run (ns since the start, label), in time order.
    pub marks: Vec<(u64, String)>,
    /// The GPU readings, when the trace has any.
    pub gpu: Option<GpuSummary>,
    /// What the reader found wrong with the file (each [`rprof_format::Damage`]'s text).
    pub damage: Vec<String>,
    /// Other things the report must mention (missing definitions, clamped samples, the
    /// shim's own warnings during the run, ...).
    pub warnings: Vec<String>,
    /// Why the trace stops early, when the shim said so (a full disk, the writer out of
    /// memory): the process was not killed, its trace could not be written further.
    pub stopped: Option<String>,
    /// A merged run's processes, in start order, the first its first process (empty for
    /// one trace's report; see [`super::merge`]).
    pub processes: Vec<ProcessRow>,
    /// Traces given but not merged: where each came from, and why.
    pub left_out: Vec<(String, String)>,
    /// How samples were charged to lines.
    pub charging: ChargeSummary,
}

/// The charging policy a profile was made with, and what it charged past library frames
/// to the program's own lines (already in those lines' figures).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChargeSummary {
    pub policy: Charging,
    pub recharged: Times,
    pub recharged_bytes: u64,
}

impl Profile {
    /// The marks the program made (`rprof_mark`, the shim's `mark: LABEL`): time and
    /// label, in time order.
    pub fn program_marks(&self) -> Vec<(u64, &str)> {
        let prefix = format!("{}: ", rprof_format::marks::USER);
        self.marks
            .iter()
            .filter_map(|(t, label)| label.strip_prefix(&prefix).map(|l| (*t, l)))
            .collect()
    }

    /// The process ended without rprof finishing its trace, and without saying why.
    pub fn killed(&self) -> bool {
        self.end.is_none() && self.stopped.is_none()
    }

    /// A line's (or function's) share of the run's GPU busy time, percent; 0 without GPU
    /// readings.
    pub fn gpu_share(&self, g: &LineGpu) -> f64 {
        match &self.gpu {
            Some(s) if s.busy > 0.0 => 100.0 * g.busy / s.busy,
            _ => 0.0,
        }
    }

    /// Whether memory was profiled (or the trace holds memory samples anyway).
    pub fn has_memory(&self) -> bool {
        self.header.modes & (mode::MEMORY | mode::COPY) != 0
            || self.footprint.alloc_samples > 0
            || self.footprint.copy_samples > 0
    }
}

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
    pub peak_at: Option<Location>,
    /// Exact, from the allocator counters (0 and empty without them): the highest live
    /// bytes, the time of the first counters record that shows it, the Python allocator's
    /// share of live bytes in the record with the most live bytes (the snapshot nearest
    /// the peak), and live bytes over the run, downsampled.
    pub max_bytes: u64,
    pub max_ns: u64,
    pub max_python_fraction: f64,
    pub timeline: Vec<(u64, u64)>,
}

/// The sampled call stacks, resolved: a table of distinct frames and, per distinct stack,
/// its frames and what was sampled in it. A stack's samples are charged to one line (see
/// [`super::charge`]); here they stay with the whole stack, for flame graphs, call trees
/// and exports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stacks {
    pub frames: Vec<StackFrame>,
    /// Sorted by CPU time, then bytes allocated, largest first.
    pub stacks: Vec<StackProfile>,
}

/// One frame: a function (an index in [`Profile::functions`]: for Python its file, name and
/// first line; for native code its symbol and its source file, or else its library) and
/// the line executing in it (0 when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StackFrame {
    pub function: usize,
    pub line: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StackProfile {
    /// Indices in [`Stacks::frames`], innermost first, as the trace lists them (native
    /// frames, when native code was running, before the Python frames). Empty for a sample
    /// with no frame at all ([`NO_PYTHON_FRAME`]) and for a stack id the trace never
    /// defines (`undefined`, shown under [`UNDEFINED`]).
    pub frames: Vec<u32>,
    pub undefined: bool,
    /// For a stack without frames, the pseudo-file its time and memory are shown under:
    /// its phase's ([`START_UP`], [`TEARDOWN`], [`NATIVE_THREADS`]) or [`NO_PYTHON_FRAME`].
    pub no_frame: &'static str,
    /// CPU time sampled in this stack, split as [`Times`] is.
    pub times: Times,
    pub memory: StackMemory,
    /// The GPU readings charged to this stack (all zero without them).
    pub gpu: LineGpu,
    /// Its CPU time per thread (an index in [`Profile::threads`]), largest first; memory
    /// is not split by thread.
    pub threads: Vec<StackThread>,
}

/// Memory sampled in one stack, in bytes estimated from samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StackMemory {
    /// Bytes allocated, and the part the Python allocator served.
    pub malloc_bytes: u64,
    pub python_bytes: u64,
    /// Allocations, estimated as [`Memory::mallocs`] is (pprof's `alloc_objects`).
    pub mallocs: u64,
    pub alloc_samples: u64,
    pub copy_bytes: u64,
    /// Live bytes from this stack when the process's estimated live total was at its peak
    /// ([`Footprint::peak_ns`]), and at the exit point ([`Footprint::exit_ns`]).
    pub peak_live_bytes: u64,
    pub exit_live_bytes: u64,
}

/// One thread's part of a stack.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StackThread {
    pub thread: usize,
    pub times: Times,
}
