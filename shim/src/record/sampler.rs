//! CPU sampling: one POSIX timer per thread on that thread's own CPU clock (or the
//! monotonic clock in wall mode), delivering the sampling signal to that very thread. The
//! handler records where the thread is and how much time the sample stands for.

use crate::record::native_stack::{self, NATIVE_DEPTH};
use crate::shared::queue::{Event, Kind};
use crate::state::{self, Runtime};
use crate::sys::allocator::libc_heap;
use crate::{
    record::memory, record::stack, record::thread_name, record::thread_state, shared,
    shared::counters, sys::real, sys::signals,
};
use libc::{c_int, c_void, siginfo_t};
use rprof_format::Clock;
use std::sync::atomic::Ordering::Relaxed;

/// Marks timer signals as ours (`si_value`), so any other sender is chained.
const COOKIE: usize = 0x7270_726f_6600;

static mut EXIT_KEY: libc::pthread_key_t = 0;

/// Creates the key whose destructor deletes a thread's timer and folds its last counts
/// when the thread exits.
pub fn init_thread_exit_hook() -> bool {
    // SAFETY: called once, at init, before any thread reads EXIT_KEY; the key is written
    // through a raw pointer to the static, never a reference.
    unsafe { libc::pthread_key_create(&raw mut EXIT_KEY, Some(on_thread_exit)) == 0 }
}

extern "C" fn on_thread_exit(_: *mut c_void) {
    last_sample();
    thread_state::with(|t| {
        disarm(t);
        counters::fold(t);
    });
}

fn disarm(t: &thread_state::ThreadState) {
    let timer = t.timer.replace(0);
    if timer != 0 {
        // SAFETY: the id is one this thread's timer_create returned (stored + 1) and not yet
        // deleted: `replace(0)` above takes it once.
        unsafe { libc::timer_delete((timer - 1) as libc::timer_t) };
    }
}

/// Stops sampling the calling thread (at exit).
pub fn disarm_current_thread() {
    thread_state::with(disarm);
}

fn now(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct we pass; an unknown clock only fails, leaving
    // zeroes.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The calling thread's user and system CPU time, ns.
fn thread_times() -> (u64, u64) {
    // SAFETY: a zeroed rusage is a valid value to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes the struct we pass; RUSAGE_THREAD is valid on Linux.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let ns = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000_000 + tv.tv_usec as u64 * 1000;
    (ns(ru.ru_utime), ns(ru.ru_stime))
}

/// Starts sampling the calling thread (when CPU sampling is on).
pub fn arm_current_thread(rt: &Runtime) {
    if rt.config.modes & rprof_format::mode::CPU == 0 {
        return;
    }
    thread_state::with(|t| {
        disarm(t);
        // SAFETY: gettid has no preconditions.
        t.tid.set(unsafe { libc::gettid() } as u32);
        let (user, sys) = thread_times();
        t.last_cpu_ns.set(user + sys);
        t.last_sys_ns.set(sys);
        t.last_wall_ns.set(now(libc::CLOCK_MONOTONIC));
        // SAFETY: a zeroed sigevent is a valid value (fields set below).
        let mut sev: libc::sigevent = unsafe { std::mem::zeroed() };
        sev.sigev_notify = libc::SIGEV_THREAD_ID;
        sev.sigev_signo = rt.signal;
        sev.sigev_value = libc::sigval {
            sival_ptr: COOKIE as *mut c_void,
        };
        // SAFETY: gettid has no preconditions.
        sev.sigev_notify_thread_id = unsafe { libc::gettid() };
        let clock = match rt.config.clock {
            Clock::Cpu => libc::CLOCK_THREAD_CPUTIME_ID,
            Clock::Wall => libc::CLOCK_MONOTONIC,
        };
        let mut timer: libc::timer_t = std::ptr::null_mut();
        // SAFETY: timer_create reads the sigevent and writes the timer id, both on this stack.
        if unsafe { libc::timer_create(clock, &mut sev, &mut timer) } != 0 {
            return;
        }
        let period = 1_000_000_000 / i64::from(rt.config.hz);
        let ts = libc::timespec {
            tv_sec: period / 1_000_000_000,
            tv_nsec: period % 1_000_000_000,
        };
        let spec = libc::itimerspec {
            it_interval: ts,
            it_value: ts,
        };
        // SAFETY: the timer was just created; timer_settime reads the spec on this stack and
        // takes a null old value.
        if unsafe { libc::timer_settime(timer, 0, &spec, std::ptr::null_mut()) } != 0 {
            // SAFETY: deletes the timer just created, which nothing else knows of.
            unsafe { libc::timer_delete(timer) };
            return;
        }
        t.timer.set(timer as usize + 1);
    });
}

/// Has this thread's exit run `on_thread_exit` (a key's destructor runs only where the
/// key holds a value), in every mode: a thread's last counts, up to 256 KiB of them, are
/// folded only there.
pub fn watch_exit() {
    // SAFETY: sets this thread's value of our key (created in `init_thread_exit_hook`,
    // among the first 32 keys, whose values glibc stores inline: no allocation).
    unsafe { libc::pthread_setspecific(EXIT_KEY, std::ptr::dangling::<c_void>()) };
}

/// Whether `info` is one of the sampler's own timer expirations (not a signal the
/// program sent, or a timer of its own on the same signal).
///
/// # Safety
/// `info` points to a siginfo_t the kernel filled in.
pub unsafe fn is_ours(info: *const siginfo_t) -> bool {
    (*info).si_code == libc::SI_TIMER && (*info).si_value().sival_ptr as usize == COOKIE
}

pub extern "C" fn on_signal(sig: c_int, info: *mut siginfo_t, uc: *mut c_void) {
    // SAFETY: errno is this thread's; saved here and put back below, so the interrupted code
    // never sees the handler's.
    let errno = unsafe { *libc::__errno_location() };
    // SAFETY: the kernel passes a filled-in siginfo_t to an SA_SIGINFO handler.
    let ours = unsafe { is_ours(info) };
    if ours {
        if let Some(rt) = state::recording() {
            sample(rt, uc);
        } else if state::active().is_some() {
            thread_state::with(rebase);
        }
    } else {
        // SAFETY: passes on the handler's own arguments, as chain requires.
        unsafe { signals::chain(sig, info, uc) };
    }
    // SAFETY: restores this thread's errno, saved above.
    unsafe { *libc::__errno_location() = errno };
}

/// A tick while recording is stopped: nothing is recorded, but the thread's readings move
/// on, so the first sample after a start stands for one period, not the whole pause.
fn rebase(t: &thread_state::ThreadState) {
    let (user, sys) = thread_times();
    t.last_cpu_ns.set(user + sys);
    t.last_sys_ns.set(sys);
    t.last_wall_ns.set(now(libc::CLOCK_MONOTONIC));
}

/// The interrupted thread's PC, frame pointer and stack pointer.
fn interrupted(uc: *mut c_void) -> (usize, usize, usize) {
    let uc = uc as *const libc::ucontext_t;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `uc` is the ucontext_t the kernel passed to this SA_SIGINFO handler, valid
    // during it; gregs has every REG_* index.
    unsafe {
        let g = &(*uc).uc_mcontext.gregs;
        let reg = |r: libc::c_int| g[r as usize] as usize;
        (reg(libc::REG_RIP), reg(libc::REG_RBP), reg(libc::REG_RSP))
    }
    #[cfg(target_arch = "aarch64")]
    unsafe {
        let m = &(*uc).uc_mcontext;
        (m.pc as usize, m.regs[29] as usize, m.sp as usize)
    }
}

fn sample(rt: &Runtime, uc: *mut c_void) {
    record(rt, interrupted(uc), false);
}

/// The calling thread's last sample, as its sampling ends (its exit, the process's exit
/// or fatal signal, an exec): the time since its previous sample, charged where the
/// thread is now, as every sample stands for the time before it. Without it that time is
/// lost, and on a loaded machine it can be most of a short run: the kernel checks a CPU
/// clock's timers only at a tick that finds the thread running, and a run of 120 ms of
/// CPU among busy processes on 2 cores kept 7 samples standing for 55 ms, none in its
/// last 65 ms. Nothing when the thread is not being sampled, or when the time is less
/// than a sampling period. Async-signal-safe.
pub fn last_sample() {
    let Some(rt) = state::recording() else {
        return;
    };
    if thread_state::with(|t| t.timer.get()) == 0 {
        return;
    }
    // The timer's own signal, arriving meanwhile, would find the thread busy and count a
    // dropped sample: held back until this one is taken, then standing for what follows.
    let (mut mask, mut old) = (empty_set(), empty_set());
    // SAFETY: both sets are valid values on this stack; sigaddset and pthread_sigmask are
    // async-signal-safe and touch only them and this thread's mask.
    unsafe {
        libc::sigaddset(&mut mask, rt.signal);
        libc::pthread_sigmask(libc::SIG_BLOCK, &mask, &mut old);
    }
    record(rt, native_stack::here(), true);
    // SAFETY: puts back the mask read above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
}

fn empty_set() -> libc::sigset_t {
    // SAFETY: an all-zero sigset_t is the empty set on Linux, as sigemptyset makes it.
    unsafe { std::mem::zeroed() }
}

/// Records a sample of the calling thread, interrupted at `regs` (PC, frame pointer,
/// stack pointer) by its timer, or, `synchronous`, taken by the shim itself at `regs`
/// (its own code: such a sample is no profiler overhead, and its frames are left out).
fn record(rt: &Runtime, regs: (usize, usize, usize), synchronous: bool) {
    rt.note_finalizing();
    let taken = thread_state::guarded(|t| {
        let (user, sys) = thread_times();
        let wall = now(libc::CLOCK_MONOTONIC);
        let cpu = user + sys;
        let d_cpu = cpu.saturating_sub(t.last_cpu_ns.replace(cpu));
        let d_sys = sys.saturating_sub(t.last_sys_ns.replace(sys));
        let mut d_wall = wall.saturating_sub(t.last_wall_ns.replace(wall));
        let waiting = if synchronous { 0 } else { t.waiting.get() };
        if waiting != 0 && matches!(rt.config.clock, Clock::Wall) {
            d_wall = held_back(rt, t, wall, d_wall);
        }
        let (weight, kernel) = match rt.config.clock {
            Clock::Cpu => (d_cpu, d_sys),
            // In wall mode, "system" is all time not spent in user mode: kernel and waiting.
            Clock::Wall => (d_wall, d_wall.saturating_sub(d_cpu.saturating_sub(d_sys))),
        };
        // A last sample only for a tail the timer would have sampled: shorter than a
        // period, periodic sampling leaves it out too, and a helper that runs for less
        // (a fork that execs at once, a short program a shell runs) stays without a trace.
        if synchronous && weight < 1_000_000_000 / u64::from(rt.config.hz) {
            return;
        }
        let (mut pc, fp, sp) = regs;
        // Delivered as a wait wrapper unblocked the signal (in `pthread_sigmask`): the
        // time stands for the wait, so the sample is the waiting function's, called from
        // the wrapper's caller (the frame chain the unblocking call left intact).
        if waiting != 0 {
            pc = waiting;
        }
        let mut native = [0u64; NATIVE_DEPTH];
        let depth = native_stack::interrupted(
            native_stack::Regs { pc, sp, fp },
            waiting == 0,
            t.allocator_fp.get(),
            t.stack_hi.get(),
            &mut native,
        );
        // Before the sample is queued, so the writer names the thread at its first sample.
        thread_name::note(rt, t, wall);
        let Some(mut claim) = rt.queue.claim() else {
            return;
        };
        let ev = claim.event();
        ev.kind = Kind::Cpu;
        ev.t_ns = wall.saturating_sub(rt.start_mono_ns());
        ev.cpu_ns = weight;
        ev.sys_ns = kernel.min(weight);
        ev.tid = t.tid.get();
        // Time in the shim's own hooks is profiler overhead, which the report keeps apart;
        // it is classified by the first frame outside the shim (`interrupted` leaves the
        // shim's frames out), the code it was spent for.
        let in_shim = native_stack::in_shim(pc);
        ev.profiler = in_shim && !synchronous;
        let who = if in_shim { native[0] as usize } else { pc };
        ev.python = depth > 0 && rt.probe.as_ref().is_some_and(|p| p.is_interpreter_pc(who));
        stack::capture(rt, ev, &native[..depth]);
        // Called for every sample, so that a native one ends a streak too.
        let long = long_c_call(rt, t, ev, who);
        ev.python = ev.python && !long;
        if let Some(s) = shared::get() {
            s.samples.fetch_add(1, Relaxed);
        }
    });
    if taken.is_none() {
        rt.queue.count_drop();
    }
}

/// The Python/native split of time in the interpreter's text (docs/DESIGN.md, "Python or
/// native"): a sample in a C function of the interpreter (outside the eval loop) is native
/// when the thread's last [`C_STREAK`] samples were too, each at the same instruction of
/// the same innermost Python frame's code: that bytecode's C work (`sum` over a big list,
/// `list.sort`, `x in long_list`, `list.insert`'s move) holds the thread. The eval loop,
/// and the short C helpers of each bytecode, which share the loop's time with the other
/// bytecodes, are Python. Async-signal-safe: cells of the thread's own state.
fn long_c_call(rt: &Runtime, t: &thread_state::ThreadState, ev: &Event, pc: usize) -> bool {
    let in_c = rt
        .probe
        .as_ref()
        .is_some_and(|p| p.knows_eval_loop() && !p.in_eval_loop(pc));
    let (code, addrq) = match ev.frames.first() {
        Some(f) if ev.depth > 0 && in_c => (f.code.wrapping_add(1), f.addrq),
        _ => (0, 0),
    };
    let same = code != 0 && t.last_code.get() == code && t.last_addrq.get() == addrq;
    let streak = if same {
        t.c_streak.get().saturating_add(1)
    } else {
        0
    };
    t.last_code.set(code);
    t.last_addrq.set(addrq);
    t.c_streak.set(streak);
    streak >= C_STREAK
}

/// Samples in a row in one bytecode's C code before the next is counted native: with a
/// bytecode whose C helpers take a share q of a loop's time, a sample is counted native
/// with probability about q^(C_STREAK+1): 4% of a `total += x` loop's (q ≈ 0.35), 91%
/// of `x in long_list`'s (q ≈ 0.97).
const C_STREAK: u32 = 2;

/// The weight of a wall-clock sample that a wait wrapper held back until the wait ended
/// (`api/wait.rs`). The timer expired `1 + overrun` times since the previous sample, and
/// sampling at each expiry would have charged one period to each; the time since the
/// last expiry is left to the next sample, as it would have been. So a wait is charged
/// what periodic sampling charges it, not also the tail of the work before it.
fn held_back(rt: &Runtime, t: &thread_state::ThreadState, wall: u64, d_wall: u64) -> u64 {
    let period = 1_000_000_000 / u64::from(rt.config.hz);
    // SAFETY: the thread's own timer (`timer` holds it plus one); an invalid id returns
    // -1, read as no overrun.
    let overrun = unsafe { libc::timer_getoverrun(t.timer.get().wrapping_sub(1) as libc::timer_t) };
    let ticks = 1 + u64::try_from(overrun).unwrap_or(0);
    let weight = ticks.saturating_mul(period).min(d_wall);
    t.last_wall_ns.set(wall - (d_wall - weight));
    weight
}

/// `pthread_create` (exported in `api/thread.rs`): wraps every thread the program creates
/// so it is sampled from its first instruction.
///
/// # Safety
/// As `pthread_create`.
pub unsafe fn create_thread(
    thread: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    start: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
) -> c_int {
    if state::active().is_none() {
        return real::pthread_create(thread, attr, start, arg);
    }
    // The C allocator, not Box: out of memory, Rust's allocator would abort the program,
    // where the program expects pthread_create to fail with EAGAIN.
    let boxed = libc_heap::malloc(std::mem::size_of::<Start>()) as *mut Start;
    if boxed.is_null() {
        return libc::EAGAIN;
    }
    // SAFETY: `boxed` is a fresh block of the size and (malloc's) alignment of Start.
    unsafe { boxed.write((start, arg)) };
    let rc = real::pthread_create(thread, attr, trampoline, boxed.cast());
    if rc != 0 {
        libc_heap::free(boxed.cast());
    }
    rc
}

type Start = (extern "C" fn(*mut c_void) -> *mut c_void, *mut c_void);

extern "C" fn trampoline(p: *mut c_void) -> *mut c_void {
    // SAFETY: `p` is the block the wrapper filled; read once, then freed.
    let (start, arg) = unsafe { (p as *mut Start).read() };
    // SAFETY: allocated by the wrapper with the C allocator.
    unsafe { libc_heap::free(p) };
    // `pthread_getattr_np` allocates (and frees) for the shim, not for the program.
    memory::unaccounted(|| {
        thread_state::with(|t| t.stack_hi.set(native_stack::stack_top()));
        if let Some(rt) = state::active() {
            arm_current_thread(rt);
            watch_exit();
        }
    });
    start(arg)
}
