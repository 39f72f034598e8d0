//! The profiler's life cycle: start in the library constructor, restart in a fork child,
//! finish at exec, exit or an ending signal; and recording stopped and started at run time
//! (the C API in `api/control.rs`, the toggle signal). The state it sets is `state.rs`.

use crate::config::Config;
use crate::python::{DetectError, Probe};
use crate::shared::codes::CodeTable;
use crate::shared::queue::Queue;
use crate::shared::thread_names::ThreadNames;
use crate::shared::Outcome;
use crate::state::{self, active, monotonic_ns, this_process, Runtime, ACTIVE, PID};
use crate::{
    ending, output, python, record::alloc_hooks, record::cfi, record::copy, record::memory,
    record::native_stack, record::pyalloc, record::sampler, record::thread_state, shared,
    shared::counters, sys::allocator, sys::log, sys::real, sys::signals, writer,
};
use libc::{c_int, c_void, siginfo_t};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::Mutex;

/// Before an exec of this process: tells the writer that the link will close for an exec,
/// not an exit, and what it runs, so it ends the trace as such. Async-signal-safe.
///
/// # Safety
/// `path` and `argv` are null or what the exec itself will read.
pub unsafe fn before_exec(path: *const libc::c_char, argv: *const *const libc::c_char) {
    if active().is_some() && this_process() {
        // Its time since the last sample belongs to this image's trace.
        sampler::last_sample();
        if let Some(s) = shared::get() {
            // SAFETY: as the caller promises.
            unsafe { s.set_exec_cmd(path, argv) };
            thread_state::with(counters::fold);
            s.execing.store(PID.load(Relaxed), Release);
        }
    }
}

/// The exec failed: the process runs on as it was.
pub fn exec_failed() {
    if active().is_some() && this_process() {
        if let Some(s) = shared::get() {
            s.execing.store(0, Release);
        }
    }
}

/// `_exit`: the program ends without exit handlers; ours still finishes the trace (and
/// reaps the writer, so a subreaper or PID 1 never inherits it).
pub fn before_exit(status: libc::c_int) {
    on_exit(status, std::ptr::null_mut());
}

/// `abort`: the process is about to die of SIGABRT, its trace read as killed (the writer
/// sees it die); the calling thread's time since its last sample goes in first.
pub fn before_abort() {
    if this_process() && active().is_some() {
        sampler::last_sample();
    }
}

/// A signal whose default action would end the process silently (see `ending`): the trace
/// is finished as ended by that signal before the default action happens. Async-signal-
/// safe: no allocation, no lock; the only wait is the bounded futex wait for the writer.
pub fn on_ending_signal(sig: libc::c_int) {
    if !this_process() || active().is_none() {
        return;
    }
    sampler::last_sample();
    if !ACTIVE.swap(false, AcqRel) {
        return;
    }
    sampler::disarm_current_thread();
    thread_state::with(counters::fold);
    if let (Some(s), Some(rt)) = (shared::get(), state::runtime()) {
        s.set_exit(shared::SIGNALED, sig);
        writer::finish(rt.elapsed_ns());
    }
}

/// Starts profiling this process. Runs once, from the library constructor. What the C
/// library allocates for the shim's set-up is not counted as the program's.
pub fn start() {
    memory::unaccounted(set_up);
}

fn set_up() {
    allocator::init();
    copy::resolve();
    real::resolve();
    // Before anything else, even in a process left unprofiled: no zombie of ours stays.
    writer::leftover::reap_earlier_images();
    native_stack::init();
    thread_state::with(|t| t.stack_hi.set(native_stack::stack_top()));
    let config = Config::from_env();
    if config.modes & rprof_format::mode::CPU != 0 {
        // Before the writer starts: it compiles the table this maps.
        cfi::init();
    }
    if config.mem_rate == 0 || !allocator::sized() {
        memory::stop_accounting();
    }
    if config.mem_rate > 0 && !allocator::sized() {
        log::warn(&format!(
            "{} has no malloc_usable_size: memory is not profiled",
            allocator::foreign_name().unwrap_or_default()
        ));
    }
    let served = alloc_hooks::attach(config.mem_rate > 0 && allocator::sized());
    alloc_hooks::report(&served);
    // Every free that reaches malloc passes the shim's free path.
    let frees_seen = memory::accounting() && !matches!(served, alloc_hooks::Served::Unseen(_));
    let root = output::is_root();
    if !root && !config.follow_children {
        // RPROF_FOLLOW_CHILDREN=0: only the run's first process (through its execs) is
        // profiled; this one runs as without rprof.
        return;
    }
    let run = output::run_id(root);
    let (probe, native_only) = match Probe::detect() {
        Ok(p) => (Some(p), None),
        Err(DetectError::NotPython) => (None, Some("not a Python process".to_owned())),
        Err(DetectError::Unsupported(why)) => (None, Some(why)),
    };
    let (Some(queue), Some(codes), Some(thread_names), true) = (
        Queue::new(),
        CodeTable::new(),
        ThreadNames::new(),
        shared::init(),
    ) else {
        log::warn("cannot map the profiler's buffers; this process runs unprofiled");
        return;
    };
    // Before the sampling signal is chosen, so a real-time toggle signal is not taken.
    if config.toggle_signal != 0 && !signals::install_toggle(config.toggle_signal, on_toggle) {
        log::warn("cannot install the RPROF_TOGGLE_SIGNAL handler; the toggle is off");
    }
    let Some(signal) = signals::install_sampling(sampler::on_signal) else {
        log::warn("no free real-time signal for sampling; this process runs unprofiled");
        return;
    };
    signals::install_fault_guard(on_fault);
    if !sampler::init_thread_exit_hook() {
        log::warn("cannot register the thread-exit hook; this process runs unprofiled");
        return;
    }
    if probe.is_some() && config.mem_rate > 0 && !pyalloc::install(frees_seen) {
        log::warn("cannot wrap the Python allocator; Python objects' memory is not sampled");
    }
    let path = output::trace_path(&config.output, std::process::id(), root);
    let rt = state::install(Runtime {
        config,
        probe,
        queue,
        codes,
        thread_names,
        signal,
        start_mono_ns: AtomicU64::new(monotonic_ns()),
        path: Mutex::new(String::new()),
        root: AtomicBool::new(root),
        native_only,
        run,
    });
    PID.store(std::process::id(), Relaxed);
    if !rt.config.start_paused {
        state::set_recording(true);
    }
    if open_trace(rt, path) {
        ending::install();
        // SAFETY: registering our own extern "C" handlers.
        unsafe {
            glibc_on_exit(on_exit, std::ptr::null_mut());
            libc::pthread_atfork(None, None, Some(on_fork_child));
        }
    }
}

/// Opens the trace, starts the writer and arms the calling thread's timer.
/// The run's first process creates its trace at once, so an unwritable path is reported
/// before the program starts; children create theirs lazily, and so does a process that
/// starts paused (`rprof_set_output` may still move it).
fn open_trace(rt: &'static Runtime, path: String) -> bool {
    let version = rt.probe.as_ref().map_or(0, Probe::version_hex);
    let header = output::header(&rt.config, rt.signal, version);
    let eager = rt.root.load(Relaxed) && state::started();
    let started = writer::start(rt, &path, &header, eager);
    if started {
        *rt.path.lock().unwrap_or_else(|e| e.into_inner()) = path;
        ACTIVE.store(true, Release);
        sampler::arm_current_thread(rt);
        sampler::watch_exit();
    }
    started
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    python::on_fault();
    // SAFETY: a SIGSEGV/SIGBUS handler passes on its own arguments, as chain requires.
    unsafe { signals::chain(sig, info, uc) };
}

extern "C" {
    /// glibc's `on_exit`: an exit handler that is given the exit status (atexit's is not).
    #[link_name = "on_exit"]
    fn glibc_on_exit(
        f: extern "C" fn(libc::c_int, *mut libc::c_void),
        arg: *mut libc::c_void,
    ) -> libc::c_int;
}

extern "C" fn on_exit(status: libc::c_int, _: *mut libc::c_void) {
    if !this_process() {
        return;
    }
    let Some(rt) = active() else { return };
    sampler::last_sample();
    if !ACTIVE.swap(false, AcqRel) {
        return;
    }
    sampler::disarm_current_thread();
    // The exiting thread's last counts (its exit-handler path never reaches a fold of its
    // own): without this a program that allocates less than 256 KiB reads as none.
    thread_state::with(counters::fold);
    if let Some(s) = shared::get() {
        s.set_exit(shared::EXITED, status);
    }
    if !writer::finish(rt.elapsed_ns()) {
        return;
    }
    let Some(done) = writer::finished() else {
        return;
    };
    let (path, n) = (&done.path, done.samples);
    match done.outcome {
        // `rprof run` reports the run itself.
        Outcome::Fine if done.written && rt.config.launched => {}
        Outcome::Fine if done.written => match &rt.native_only {
            None => log::info(&format!("wrote {path} ({n} samples)")),
            Some(why) => log::info(&format!(
                "wrote {path} ({n} samples; {why}: native code only)"
            )),
        },
        // Nothing recorded (a child that never sampled), or already said by the writer
        // when it happened.
        Outcome::Fine | Outcome::OpenFailed | Outcome::WriteFailed => {}
        Outcome::Deleted => log::warn(&format!(
            "{path} was deleted during the run: this run's profile is lost"
        )),
        Outcome::OutOfMemory => log::warn(&format!(
            "rprof's writer ran out of memory: {path} stops early ({n} samples)"
        )),
    }
}

/// In a fork child only the forking thread survives, every timer is gone, and the shared
/// buffers still belong to the parent's writer. Start over: fresh buffers, a writer and a
/// trace of the child's own.
extern "C" fn on_fork_child() {
    let Some(rt) = active() else { return };
    ACTIVE.store(false, Release);
    writer::forget_parent();
    if !rt.config.follow_children {
        ending::uninstall();
        return;
    }
    if !(rt.queue.renew() && rt.codes.renew() && rt.thread_names.renew() && shared::renew()) {
        ending::uninstall();
        log::warn("cannot map the profiler's buffers in a forked child; it runs unprofiled");
        return;
    }
    rt.start_mono_ns.store(monotonic_ns(), Relaxed);
    rt.root.store(false, Relaxed);
    PID.store(std::process::id(), Relaxed);
    let path = output::trace_path(&rt.config.output, std::process::id(), false);
    if !open_trace(rt, path) {
        ending::uninstall();
    }
}

/// `RPROF_TOGGLE_SIGNAL`: each delivery flips recording, then the program's own handler
/// for the signal, if it installed one, runs. Async-signal-safe.
extern "C" fn on_toggle(sig: c_int, info: *mut siginfo_t, uc: *mut c_void) {
    if this_process() && active().is_some() {
        state::toggle_recording();
    }
    // SAFETY: forwarding this handler's own arguments.
    unsafe { signals::chain_toggle(sig, info, uc) };
}

/// Whether the calling process is profiled (the C API fails, returning -1, where not).
fn profiled() -> Option<&'static Runtime> {
    active().filter(|_| this_process())
}

/// `rprof_start`/`rprof_stop`: records from now on, or stops. Threads keep their timers
/// either way (see `state`).
pub fn set_recording(on: bool) -> bool {
    if profiled().is_none() {
        return false;
    }
    state::set_recording(on);
    true
}

/// How long `rprof_flush` waits for the writer.
const FLUSH_WAIT_MS: u32 = 2000;

/// `rprof_flush`: asks the writer to write what was recorded so far, and waits (at most
/// `FLUSH_WAIT_MS`) until it has.
pub fn flush() -> bool {
    let (Some(_), Some(s)) = (profiled(), shared::get()) else {
        return false;
    };
    if !state::started() {
        // Nothing recorded yet, and the trace's path is not fixed.
        return true;
    }
    let asked = s.flush_asked.fetch_add(1, AcqRel).wrapping_add(1);
    for _ in 0..FLUSH_WAIT_MS {
        // Served once `flushed` reached `asked` (counters that wrap: compare the distance).
        if (s.flushed.load(Acquire).wrapping_sub(asked) as i32) >= 0 {
            return true;
        }
        let nap = libc::timespec {
            tv_sec: 0,
            tv_nsec: 1_000_000,
        };
        // SAFETY: sleeps on a valid timespec.
        unsafe { libc::nanosleep(&nap, std::ptr::null_mut()) };
    }
    false
}

/// `rprof_mark`: a named moment on the trace's timeline, made by the calling thread.
pub fn mark(label: &[u8]) -> bool {
    let Some(rt) = profiled() else {
        return false;
    };
    let made = thread_state::guarded(|_| {
        let Some(mut claim) = rt.queue.claim_patiently() else {
            return false;
        };
        let ev = claim.event();
        ev.kind = crate::shared::queue::Kind::Mark;
        ev.t_ns = rt.elapsed_ns();
        // SAFETY: gettid has no preconditions.
        ev.tid = unsafe { libc::gettid() } as u32;
        ev.depth = 0;
        ev.native_depth = 0;
        ev.set_label(label);
        true
    });
    made == Some(true)
}

/// `rprof_set_output`: where the trace goes, while it does not exist yet: before
/// recording ever started (`RPROF_START=paused`). Not under `rprof run`, which decides
/// where a run's traces go and reads them from there.
pub fn set_output(path: &str) -> bool {
    let (Some(rt), Some(s)) = (profiled(), shared::get()) else {
        return false;
    };
    if rt.config.launched || path.is_empty() {
        return false;
    }
    let path = output::trace_path(path, std::process::id(), rt.is_root());
    if path.len() >= shared::PATH_BYTES {
        return false;
    }
    // Asked while the path is held, so that a start on another thread either comes
    // before (refused) or finds the new path in place when its trace is created.
    s.try_set_output(&path, || !state::started())
}
