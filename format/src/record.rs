//! The header and the records a trace holds. Every record is `tag: u8, len: varint, body`,
//! so a reader skips the tags it does not know.

/// Which clock drives CPU sampling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Each thread's own CPU time (`CLOCK_THREAD_CPUTIME_ID`).
    Cpu = 0,
    /// Wall-clock time per thread, for I/O-bound programs.
    Wall = 1,
}

impl Clock {
    pub fn from_u8(v: u8) -> Option<Clock> {
        match v {
            0 => Some(Clock::Cpu),
            1 => Some(Clock::Wall),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Clock::Cpu => "cpu",
            Clock::Wall => "wall",
        }
    }
}

/// Profiling modes switched on for a run (bit set).
pub mod mode {
    pub const CPU: u32 = 1;
    pub const MEMORY: u32 = 2;
    pub const COPY: u32 = 4;
    pub const GPU: u32 = 8;

    /// Each mode's name, as `RPROF_MODE` and `--mode` spell it, with its bit: the one list
    /// the shim's setting, the launcher's check and the report's header all read.
    pub const NAMES: [(&str, u32); 4] = [
        ("cpu", CPU),
        ("memory", MEMORY),
        ("copy", COPY),
        ("gpu", GPU),
    ];

    /// The bit of the mode named `word`.
    pub fn bit(word: &str) -> Option<u32> {
        NAMES
            .iter()
            .find(|(name, _)| *name == word)
            .map(|&(_, b)| b)
    }

    /// The names, for a message: "cpu, memory, copy, gpu".
    pub fn known() -> String {
        NAMES.map(|(name, _)| name).join(", ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    pub pid: u32,
    pub ppid: u32,
    /// Wall-clock start, ns since the Unix epoch.
    pub start_unix_ns: u64,
    /// Sampling clock (see [`Clock`]) and rate in samples per second of that clock.
    pub clock: u8,
    pub sample_hz: u32,
    /// [`mode`] bits.
    pub modes: u32,
    /// Mean bytes between allocation samples, and between copy samples.
    pub mem_rate: u64,
    pub copy_rate: u64,
    /// The real-time signal the sampler uses.
    pub signal: i32,
    /// `PY_VERSION_HEX` of the profiled interpreter, 0 when the process is not Python
    /// (or Python could not be probed).
    pub python_version: u32,
    pub exe: String,
    pub cwd: String,
    pub argv: Vec<String>,
}

/// Where a sample's user-mode CPU time was spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exec {
    /// The interpreter itself (its text segment): Python time.
    Python = 0,
    /// Anything else: extension modules, libc, other libraries.
    Native = 1,
    /// rprof's own hooks (the allocator and Python allocator wrappers): the profiler's
    /// overhead, which reports leave out of every line's share.
    Profiler = 2,
}

/// What a function record names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FuncKind {
    Python = 0,
    Native = 1,
}

/// One frame of a stack: a function and the line executing in it (0 when unknown). Stacks
/// list native frames (where the innermost code was native) before Python frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Frame {
    pub func: u32,
    pub line: u32,
}

/// One CPU sample. `cpu_ns` is the time this sample stands for (the thread's CPU time, or
/// wall time in wall mode, since its previous sample); `sys_ns` is the kernel part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSample {
    /// ns since the trace's start.
    pub t_ns: u64,
    pub tid: u32,
    /// Stack id; 0 is the empty stack (no Python frame on this thread).
    pub stack: u32,
    pub cpu_ns: u64,
    pub sys_ns: u64,
    pub exec: Exec,
}

/// Process-wide allocator counters, exact (not sampled). Bytes are the allocator's usable
/// sizes; `live_bytes` includes the Python object allocator's arenas, and
/// `python_live_bytes` is that part alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub t_ns: u64,
    pub allocs: u64,
    pub frees: u64,
    pub alloc_bytes: u64,
    pub live_bytes: u64,
    pub peak_live_bytes: u64,
    pub python_live_bytes: u64,
}

/// Which allocator served a sampled allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Domain {
    /// The C allocator (malloc family), called from native code or by the interpreter for
    /// large blocks.
    Native = 0,
    /// CPython's object and memory allocators (pymalloc, `PyMem_*`).
    Python = 1,
}

/// A sampled allocation. Allocations are sampled by bytes (a Poisson process over the
/// allocated bytes with mean `Header::mem_rate`, or a power-of-two multiple of it while the
/// thread samples too fast), so `weight` (the bytes this sample stands for: its size over
/// its chance of being sampled, P = 1 − e^(−size/mean), with the mean in force; a block
/// large enough to be sampled always weighs its size) is an unbiased estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocSample {
    pub t_ns: u64,
    pub tid: u32,
    pub stack: u32,
    /// The sample's id, unique in the trace (the block's address may change by realloc).
    pub addr: u64,
    /// Bytes of this allocation.
    pub size: u64,
    pub weight: u64,
    pub domain: Domain,
}

/// The free of a sampled allocation (the [`AllocSample`] with this id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeSample {
    pub t_ns: u64,
    pub addr: u64,
}

/// Sampled blocks of one stack, size and domain that were allocated and freed within one
/// flush window of the writer, folded into one record instead of an [`AllocSample`] and a
/// [`FreeSample`] each (format version 2). Blocks still live at the window's end keep
/// their own records. What a report computes from per-block records it computes from this
/// too: the sums exactly, the live bytes over time as a bound (see `peak`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortLived {
    /// The first of the blocks' allocations, ns since the trace's start.
    pub t_ns: u64,
    /// From `t_ns` to the last of their frees.
    pub span_ns: u64,
    pub stack: u32,
    /// Bytes of each block.
    pub size: u64,
    pub domain: Domain,
    /// Blocks folded (allocation samples, each freed).
    pub count: u64,
    /// The sum of their [`AllocSample::weight`]s.
    pub weight: u64,
    /// The most of their weight live at once (the high-water mark of their summed weights
    /// over time, by the times of their allocations and frees): between `t_ns` and
    /// `t_ns + span_ns` their live bytes never exceed it, and are 0 outside.
    pub peak: u64,
    /// Their weights times their lifetimes, summed, in byte-microseconds (rounded): the
    /// area they add under live bytes over time.
    pub held_us: u64,
}

/// Sampled memory copying (memcpy, memmove): `weight` bytes copied, estimated like
/// [`AllocSample::weight`] with mean `Header::copy_rate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopySample {
    pub t_ns: u64,
    pub tid: u32,
    pub stack: u32,
    pub weight: u64,
}

/// One GPU the writer reads (through NVML), written once before its first reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuDevice {
    /// NVML's index of the device; readings name it.
    pub index: u32,
    /// String id of the device's name.
    pub name: u32,
    /// The device's memory, bytes.
    pub memory_total: u64,
}

/// What a [`GpuReading`] measured for the profiled process alone (bit set); a clear bit
/// means that figure is device-wide (every process on the GPU).
pub mod gpu_source {
    /// Utilisation from `nvmlDeviceGetProcessUtilization` for this pid.
    pub const PROCESS_UTIL: u8 = 1;
    /// Memory from `nvmlDeviceGetComputeRunningProcesses` for this pid.
    pub const PROCESS_MEMORY: u8 = 2;
}

/// One reading of one GPU, taken by the writer at the CPU sampling cadence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuReading {
    pub t_ns: u64,
    pub device: u32,
    /// Percent of the last sample period the GPU was busy, 0 to 100.
    pub util: u32,
    /// GPU memory in use, bytes.
    pub memory: u64,
    /// [`gpu_source`] bits.
    pub source: u8,
}

/// Written once when the process ends normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct End {
    pub t_ns: u64,
    /// Samples the signal handler took, and those it had to drop (queue full, busy).
    pub samples: u64,
    pub dropped: u64,
    /// Samples whose Python stack was deeper than the probe walks.
    pub truncated: u64,
}

/// Which process of which run a trace belongs to; written once, in the trace's first chunk.
/// A run is one `rprof run` (or one program started with the shim preloaded) and every
/// process it starts; the header's pid and ppid link the processes into a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Process {
    /// String id of the run's identity: the same text in every trace of one run.
    pub run: u32,
    /// This is the run's first process (its parent is not profiled).
    pub root: bool,
}

/// How a process ended, as the process itself said it (or, for `Killed`, as its writer saw
/// it from outside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// `exit` (from any thread, or a return from `main`) or `_exit`, with this status.
    Exited(i32),
    /// A signal whose default action ends the process (SIGTERM, SIGINT, SIGHUP, ...): the
    /// trace was finished from the shim's handler, then the signal took its course.
    Signaled(i32),
    /// It exec'd the command with this string id; the new image writes its own trace.
    Execd(u32),
    /// It died without telling rprof (SIGKILL, a crash), by this signal, as its writer
    /// read from the kernel before the process was reaped. No End record follows.
    Killed(i32),
}

/// The [`Ending`] of a process, at `t_ns`. Written before the End record (or, for
/// `Killed`, instead of it); a trace with neither ended without rprof learning how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub t_ns: u64,
    pub how: Ending,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    String {
        id: u32,
        text: String,
    },
    Function {
        id: u32,
        kind: FuncKind,
        name: u32,
        file: u32,
        first_line: u32,
    },
    /// Frames innermost first.
    Stack {
        id: u32,
        frames: Vec<Frame>,
    },
    Thread {
        tid: u32,
        name: u32,
    },
    Cpu(CpuSample),
    Counters(Counters),
    End(End),
    Alloc(AllocSample),
    Free(FreeSample),
    ShortLived(ShortLived),
    Copy(CopySample),
    /// A named moment of the run. The shim marks [`marks::PYTHON_FINALIZING`], its
    /// warnings and early stops; programs add their own through the C API
    /// ([`marks::USER`]).
    Mark {
        t_ns: u64,
        label: u32,
    },
    Process(Process),
    Exit(Exit),
    GpuDevice(GpuDevice),
    Gpu(GpuReading),
    /// Where native function `func`'s PC lies in a module the writer named without reading
    /// DWARF (a stripped C library, whose lines are in a separate debug file): the module's
    /// build id (string id, lowercase hex) and the PC's address as the module's file
    /// numbers it. The report looks the line up in the build id's debug file, where one is
    /// installed, so the run does not pay for inflating it.
    NativeAddress {
        func: u32,
        build_id: u32,
        addr: u64,
    },
}

/// Labels of the marks the shim itself writes.
pub mod marks {
    /// The interpreter began finalizing: the program's own work is over, and what is freed
    /// from here on is teardown (leak and growth analysis stop here).
    pub const PYTHON_FINALIZING: &str = "python-finalizing";
    /// The process exec'd another program here: this trace ends, the next image writes
    /// its own.
    pub const EXEC: &str = "exec";
    /// Prefix of a mark saying why the trace stops early (`trace-stopped: REASON`): a
    /// full disk, a size limit, the writer out of memory. What precedes it is intact.
    pub const TRACE_STOPPED: &str = "trace-stopped";
    /// Prefix of a warning the shim gave during the run (`warning: TEXT`).
    pub const WARNING: &str = "warning";
    /// Prefix of a mark the program made through the C API (`mark: LABEL`,
    /// `rprof_mark`), shown on the report's timeline.
    pub const USER: &str = "mark";
    /// Prefix of the line saying why GPU profiling is off or what it reads
    /// (`gpu: TEXT`).
    pub const GPU: &str = "gpu";
}
