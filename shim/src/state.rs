//! The profiler's process-wide state, a leaf every hot path reads: the runtime, whether
//! this process is profiled (`active`), whether it records now (`recording`), and the
//! clocks. The life cycle that sets all of this is `lifecycle.rs`.
//!
//! Two flags, not one: *active* means the process is profiled at all (its threads get
//! timers, its sampled blocks are tracked); *recording* means new samples are taken. Stop
//! and start (the C API, the toggle signal) flip only the second, so threads created while
//! stopped are still armed and a later start finds them sampled, and frees of blocks
//! recorded before a stop are still seen (live and peak memory stay right).

use crate::config::Config;
use crate::python::Probe;
use crate::shared;
use crate::shared::codes::CodeTable;
use crate::shared::queue::Queue;
use crate::shared::thread_names::ThreadNames;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};
use std::sync::{Mutex, OnceLock};

pub struct Runtime {
    pub config: Config,
    pub probe: Option<Probe>,
    pub queue: Queue,
    pub codes: CodeTable,
    pub thread_names: ThreadNames,
    pub signal: libc::c_int,
    pub(crate) start_mono_ns: AtomicU64,
    pub(crate) path: Mutex<String>,
    /// The first profiled process of a run (see `output::is_root`).
    pub(crate) root: AtomicBool,
    /// Why Python stacks are not recorded, when they are not; said in the exit line, so a
    /// chain of exec'd shells before the program proper does not repeat it.
    pub(crate) native_only: Option<String>,
    /// The run's identity (`RPROF_RUN`), the same in every trace of the run.
    pub run: String,
}

impl Runtime {
    pub fn elapsed_ns(&self) -> u64 {
        monotonic_ns().saturating_sub(self.start_mono_ns.load(Relaxed))
    }

    /// Whether this is the run's first process (see `output::is_root`).
    pub fn is_root(&self) -> bool {
        self.root.load(Relaxed)
    }

    pub fn start_mono_ns(&self) -> u64 {
        self.start_mono_ns.load(Relaxed)
    }

    /// Notes (once) when the interpreter starts finalizing, for the writer to mark.
    /// Async-signal-safe; called from the sampler and the free path.
    pub fn note_finalizing(&self) {
        let (Some(probe), Some(s)) = (&self.probe, shared::get()) else {
            return;
        };
        if s.finalizing.load(Relaxed) == 0 && probe.finalizing() {
            let _ = s
                .finalizing
                .compare_exchange(0, self.elapsed_ns() + 1, Relaxed, Relaxed);
        }
    }
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
/// True while this process is being profiled.
pub(crate) static ACTIVE: AtomicBool = AtomicBool::new(false);
/// True while new samples are recorded (see the module's comment).
static RECORDING: AtomicBool = AtomicBool::new(false);
/// Recording was on at some point: from then on the trace may exist, so its path is fixed.
static STARTED: AtomicBool = AtomicBool::new(false);
/// The pid of the process being profiled. A `vfork` child shares our memory (ACTIVE
/// included) but is not us: what it does before it execs or `_exit`s must not touch the
/// parent's trace.
pub(crate) static PID: AtomicU32 = AtomicU32::new(0);

/// Sets the runtime, once (the constructor).
pub(crate) fn install(rt: Runtime) -> &'static Runtime {
    RUNTIME.get_or_init(|| rt)
}

/// The runtime whether or not the process is active (the exit and signal paths).
pub(crate) fn runtime() -> Option<&'static Runtime> {
    RUNTIME.get()
}

/// Whether the calling process is the one this memory's profile belongs to.
pub fn this_process() -> bool {
    // SAFETY: getpid has no preconditions (and glibc no longer caches it, so a vfork
    // child gets its own pid).
    PID.load(Relaxed) == unsafe { libc::getpid() } as u32
}

/// Stops this process from recording (the writer process, which is a fork of the program).
pub fn deactivate() {
    ACTIVE.store(false, Release);
}

/// The runtime, if this process is being profiled. Async-signal-safe.
#[inline]
pub fn active() -> Option<&'static Runtime> {
    if ACTIVE.load(Acquire) {
        RUNTIME.get()
    } else {
        None
    }
}

/// The runtime, if this process is profiled and records now: what every new sample (CPU,
/// allocation, copy) asks. Async-signal-safe.
#[inline]
pub fn recording() -> Option<&'static Runtime> {
    if RECORDING.load(Acquire) {
        active()
    } else {
        None
    }
}

/// Starts or stops recording. Async-signal-safe.
pub fn set_recording(on: bool) {
    if on {
        STARTED.store(true, Release);
    }
    RECORDING.store(on, Release);
}

/// Flips recording (the toggle signal). Async-signal-safe.
pub fn toggle_recording() {
    STARTED.store(true, Release);
    RECORDING.fetch_xor(true, AcqRel);
}

/// Whether recording was ever on in this process (or the parent it was forked from).
pub fn started() -> bool {
    STARTED.load(Acquire)
}

pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct we pass; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
