//! The writer process: drains the event queue (shared memory), turns events into records
//! (`intern`) and appends checksummed chunks to the trace (`sink`). All the heavy work of
//! the shim happens here, never in the program's threads; and as a separate process it
//! adds no thread to the program (a second thread alone costs a single-threaded program
//! glibc's locked malloc paths), and it finishes the trace even when the program is killed.
//!
//! How the program's run ended decides only what closes the trace, never whether what was
//! recorded is written: every ending drains the queue to the last event.

mod fold;
mod gpu;
mod intern;
pub(crate) mod late_modules;
pub mod leftover;
mod oom;
mod sink;
pub(crate) mod symbols;

use crate::config::Config;
use crate::record::{cfi, thread_state};
use crate::shared::codes::CodeTable;
use crate::shared::queue::Queue;
use crate::shared::thread_names::ThreadNames;
use crate::shared::{self, Outcome, Shared};
use crate::state::{self, Runtime};
use crate::sys::log;
use intern::Writer;
pub use oom::on_alloc_failure;
use rprof_format::{encode_header, marks, Ending, Header};
use sink::Sink;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

/// Chunks are also cut when they grow this large, between periodic flushes.
const MAX_CHUNK: usize = 256 << 10;
const POLL: Duration = Duration::from_millis(5);
/// Events in one drain that mean the program is producing fast: drain again without pause.
const BUSY: usize = 64;
/// After events, the queue is polled this often until this many polls found it empty.
const SHORT_POLL: Duration = Duration::from_micros(200);
const QUIET_POLLS: u32 = 100;

/// The write end of the pipe whose closing tells the writer the program is gone; -1 when
/// no writer runs. With its inode: a daemon that closes every descriptor and opens a file
/// that gets the same number must never have that file closed by us.
static LINK: AtomicI32 = AtomicI32::new(-1);
static LINK_INODE: AtomicU64 = AtomicU64::new(0);

/// The writer's pid, for reaping it at exit.
static WRITER_PID: AtomicI32 = AtomicI32::new(0);

/// The writer process's stack (it shares nothing with the program once cloned).
const WRITER_STACK: usize = 8 << 20;

fn inode(fd: i32) -> Option<u64> {
    // SAFETY: fstat into a zeroed struct; a closed descriptor only fails.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes only the struct above.
    (unsafe { libc::fstat(fd, &mut st) } == 0 && st.st_mode & libc::S_IFMT == libc::S_IFIFO)
        .then_some(st.st_ino)
}

/// Takes the link for closing, if the descriptor still is our pipe.
fn take_link() -> Option<i32> {
    let fd = LINK.swap(-1, AcqRel);
    (fd >= 0 && inode(fd) == Some(LINK_INODE.load(Relaxed))).then_some(fd)
}

/// Starts the writer process for this (program) process. With `eager`, the trace is
/// created now, and false is returned (after a warning) if it cannot be.
///
/// The writer is a child cloned with no exit signal, in a session of its own: the program
/// gets no SIGCHLD for it, its `wait(-1)` never sees it (only `__WALL` waits would), and a
/// Ctrl-C to the program's process group does not reach it. Unlike `fork`, `clone` runs no
/// atfork handlers. The program reaps it at exit. It learns that the program ended from
/// the pipe: the program's end closes it, whether by exit, kill or exec.
pub fn start(rt: &'static Runtime, path: &str, header: &Header, eager: bool) -> bool {
    let input = Input::of(rt);
    let mut sink = Sink::new(path, encode_header(header));
    if eager && !sink.open() {
        return false;
    }
    if let Some(s) = shared::page() {
        s.set_path(&sink.path);
        s.set_outcome(Outcome::Fine);
    }
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        log::warn("cannot create the writer's pipe; this process runs unprofiled");
        return false;
    }
    let program = std::process::id();
    // SAFETY: an anonymous private mapping for the child's stack, unmapped below.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            WRITER_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
            -1,
            0,
        )
    };
    let start = Box::new(Start {
        input,
        sink,
        link: fds[0],
        program,
    });
    let arg = Box::into_raw(start);
    let pid = if stack == libc::MAP_FAILED {
        -1
    } else {
        // SAFETY: the child runs `writer_entry` on the fresh stack with its own copy of
        // the address space (no CLONE_VM), so it owns its copy of `arg` and of the stack.
        unsafe {
            let top = (stack as *mut u8).add(WRITER_STACK);
            libc::clone(writer_entry, top.cast(), 0, arg.cast())
        }
    };
    // SAFETY: the child has its own copy of everything; the parent's copies go. `arg` came
    // from Box::into_raw above and is freed once.
    unsafe {
        drop(Box::from_raw(arg));
        if stack != libc::MAP_FAILED {
            libc::munmap(stack, WRITER_STACK);
        }
        libc::close(fds[0]);
    }
    if pid <= 0 {
        // SAFETY: our own descriptor.
        unsafe { libc::close(fds[1]) };
        log::warn("cannot start the trace writer process; this process runs unprofiled");
        return false;
    }
    WRITER_PID.store(pid, Release);
    LINK_INODE.store(inode(fds[1]).unwrap_or(0), Relaxed);
    LINK.store(fds[1], Release);
    true
}

/// What the writer process uses of the program's runtime, and nothing more: the queue it
/// drains, the code table whose line tables it reads, the settings, when the trace's clock
/// started, whether this is the run's first process, the run's identity, and the
/// interpreter's version (None: not Python). The writer is a process of its own, cloned
/// after the runtime is set up, so these are what they were at its start.
#[derive(Clone, Copy)]
pub struct Input {
    pub queue: &'static Queue,
    pub codes: &'static CodeTable,
    pub thread_names: &'static ThreadNames,
    pub config: &'static Config,
    pub start_mono_ns: u64,
    pub root: bool,
    pub run: &'static str,
    pub python: Option<u32>,
}

impl Input {
    fn of(rt: &'static Runtime) -> Input {
        Input {
            queue: &rt.queue,
            codes: &rt.codes,
            thread_names: &rt.thread_names,
            config: &rt.config,
            start_mono_ns: rt.start_mono_ns(),
            root: rt.is_root(),
            run: &rt.run,
            python: rt.probe.as_ref().map(|p| p.version_hex()),
        }
    }

    /// Nanoseconds since the trace's clock started.
    pub fn elapsed_ns(&self) -> u64 {
        state::monotonic_ns().saturating_sub(self.start_mono_ns)
    }
}

struct Start {
    input: Input,
    sink: Sink,
    link: i32,
    program: u32,
}

extern "C" fn writer_entry(arg: *mut libc::c_void) -> i32 {
    // SAFETY: `arg` is this process's copy of the Box made in `start`.
    let s = unsafe { Box::from_raw(arg as *mut Start) };
    close_inherited([s.link, s.sink.fd()]);
    let Start {
        input,
        sink,
        link,
        program,
    } = *s;
    writer_main(input, sink, link, program)
}

/// Closes every descriptor the writer inherited from the program except `keep` and stderr
/// (for its warnings); stdin and stdout become /dev/null. A copy of the program's pipe or
/// socket left open here would keep its peer from seeing it close: a parent waiting for
/// EOF on a pipe its child closed (perf, a forking server's connections) would wait for
/// the writer instead.
fn close_inherited(keep: [i32; 2]) {
    let mut sorted = keep;
    sorted.sort_unstable();
    let mut from = 3u32;
    for fd in sorted
        .into_iter()
        .filter(|&fd| fd > 2)
        .map(|fd| fd as u32)
        .chain([u32::MAX])
    {
        if fd > from {
            close_range(from, fd - 1);
        }
        from = fd.saturating_add(1);
    }
    // SAFETY: plain descriptor calls on this process's own table.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            // A program started with stdin or stdout closed may have given that number to
            // the trace or the link: those stay.
            for fd in [0, 1] {
                if fd != null && !keep.contains(&fd) {
                    libc::dup2(null, fd);
                }
            }
            if null > 2 && !keep.contains(&null) {
                libc::close(null);
            }
        }
    }
}

/// Closes descriptors `first..=last`: close_range(2) where the kernel has it (5.9+), else
/// one by one up to the descriptor limit.
fn close_range(first: u32, last: u32) {
    // SAFETY: close_range takes plain numbers; it fails harmlessly on old kernels.
    if unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) } == 0 {
        return;
    }
    // SAFETY: getrlimit writes the struct we pass.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: getrlimit writes only the struct above.
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur.min(1 << 16) as u32
    } else {
        1024
    };
    for fd in first..=last.min(max.saturating_sub(1)) {
        // SAFETY: closing this process's own descriptors.
        unsafe { libc::close(fd as i32) };
    }
}

/// What the writer did with the trace, as the program learns it at exit.
pub struct Finished {
    pub path: String,
    pub samples: u64,
    pub outcome: Outcome,
    /// A trace file exists (with the header at least).
    pub written: bool,
}

/// At exit (or from a signal handler: this allocates nothing): asks the writer to drain,
/// write the end record and close the trace, and waits for it (at most a few seconds, and
/// not at all once the writer is gone). False when no writer runs.
pub fn finish(end_ns: u64) -> bool {
    let Some(s) = shared::page() else {
        return false;
    };
    if LINK.load(Acquire) < 0 {
        return false;
    }
    s.end_ns.store(end_ns, Relaxed);
    s.finish.store(1, Release);
    if let Some(fd) = take_link() {
        // SAFETY: our own pipe's write end (checked by inode).
        unsafe { libc::close(fd) };
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = WRITER_PID.swap(0, AcqRel);
    let mut reaped = false;
    while s.done.load(Acquire) == 0 && Instant::now() < deadline && !reaped {
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 20_000_000,
        };
        // SAFETY: a futex wait on the shared page's word, with a timeout.
        unsafe {
            libc::syscall(libc::SYS_futex, &s.done, libc::FUTEX_WAIT, 0, &ts, 0, 0);
        }
        reaped = reap(pid);
    }
    let last = deadline.min(Instant::now() + Duration::from_secs(1));
    if !reaped {
        reap_until(pid, last);
    }
    leftover::reap_stragglers(last);
    true
}

/// What the writer did, once `finish` returned.
pub fn finished() -> Option<Finished> {
    let s = shared::page()?;
    let written = s.written.load(Acquire);
    Some(Finished {
        path: s.path(),
        samples: written.saturating_sub(1),
        outcome: Outcome::from_u32(s.outcome.load(Acquire)),
        written: written > 0,
    })
}

/// Collects the writer's exit status if it has exited; true once it is gone.
fn reap(pid: i32) -> bool {
    if pid <= 0 {
        return true;
    }
    // SAFETY: waits only for our own clone child, by pid, without blocking.
    let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG | libc::__WCLONE) };
    r == pid || r < 0
}

/// Reaps the writer (it exits right after `done`), so that it leaves no zombie behind a
/// program that keeps running past its exit handlers or a parent that does not reap
/// orphans. Gives up at `deadline`: never hangs the exit.
/// True once it is reaped (or gone).
fn reap_until(pid: i32, deadline: Instant) -> bool {
    let nap = libc::timespec {
        tv_sec: 0,
        tv_nsec: 1_000_000,
    };
    loop {
        if reap(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        // SAFETY: a plain sleep.
        unsafe { libc::nanosleep(&nap, std::ptr::null_mut()) };
    }
}

/// In a fork child: the pipe it inherited is the parent's writer's; let go of it (if the
/// descriptor is still that pipe).
pub fn forget_parent() {
    WRITER_PID.store(0, Release);
    if let Some(fd) = take_link() {
        // SAFETY: the inherited copy of the parent's pipe (checked by inode).
        unsafe { libc::close(fd) };
    }
}

/// Tells the program (waiting in `finish`) that the trace is complete.
fn signal_done(s: &Shared, written: u64) {
    s.written.store(written, Release);
    s.done.store(1, Release);
    // SAFETY: a futex wake on the shared page's word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            &s.done,
            libc::FUTEX_WAKE,
            i32::MAX,
            0,
            0,
            0,
        );
    }
}

/// How the program's run ended, as the writer sees it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// At exit (or `_exit`), through `finish`: the trace gets its End record.
    Exited,
    /// It exec'd another program (which writes a trace of its own): the trace is marked
    /// and ended.
    Execd,
    /// Killed, crashed, or ended without telling us: everything it recorded is written,
    /// without an End record; with its wait status when the kernel still showed it.
    Vanished(Option<i32>),
}

/// What the shared page says, if anything, about why the link closed.
fn told(s: &Shared, program: u32) -> Option<Ended> {
    if s.finish.load(Acquire) != 0 {
        Some(Ended::Exited)
    } else if s.execing.load(Acquire) == program {
        Some(Ended::Execd)
    } else {
        None
    }
}

fn writer_main(input: Input, sink: Sink, link: i32, program: u32) -> ! {
    // SAFETY: process-wide settings of the writer process itself.
    unsafe {
        libc::setsid();
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_NAME, c"rprof-writer".as_ptr());
    }
    // Nothing this process does is the program's.
    shared::detach();
    state::deactivate();
    thread_state::with(|t| t.busy.set(true));
    oom::arm();
    let Some(s) = shared::page() else {
        // SAFETY: nothing to write without the page; end the process.
        unsafe { libc::_exit(0) }
    };
    let mut w = Writer::new(input, sink, program);
    oom::written_up_to(&w.sink, 0);
    let flush_every = Duration::from_millis(input.config.flush_ms);
    let mut last_flush = Instant::now();
    let mut quiet = 0u32;
    // The sampler's unwind table (`record/cfi.rs`: the C library, another allocator),
    // compiled a slice at a time between drains, here rather than in the program's start.
    let mut cfi = cfi::Compiler::claim();
    let ended = loop {
        // A busy queue is drained again at once, and watched closely for a while after (a
        // program allocating fast fills it in milliseconds); a quiet one is polled every
        // few ms.
        let n = w.drain();
        quiet = if n > 0 { 0 } else { quiet.saturating_add(1) };
        let compiling = cfi.as_ref().is_some_and(cfi::Compiler::due);
        if compiling && cfi.as_mut().is_some_and(cfi::Compiler::step) {
            cfi = None;
        }
        let pause = match (n, quiet) {
            (n, _) if n >= BUSY || compiling => Duration::ZERO,
            (_, q) if q < QUIET_POLLS => SHORT_POLL,
            _ => POLL,
        };
        if let Some(e @ Ended::Exited) = told(s, program) {
            break e;
        }
        if !wait_readable(link, pause) {
            // The pipe closed: the program exited (with or without exit handlers), was
            // killed, exec'd, or closed the descriptor itself (some daemons close them
            // all). The shared page tells exit and exec apart; only a program that said
            // neither is looked at in /proc, and only to see whether it still runs.
            if let Some(e) = told(s, program) {
                break e;
            }
            match image(program, s) {
                Image::Ours => break poll_until_gone(&mut w, s, program, flush_every),
                // An exec the wrappers did not see (a raw system call): the exiting
                // kernel drops the address space before the descriptors, an exec
                // installs the new one first.
                Image::Other => break told(s, program).unwrap_or(Ended::Execd),
                Image::Gone(status) => break told(s, program).unwrap_or(Ended::Vanished(status)),
            }
        }
        let asked = s.flush_asked.load(Acquire);
        if asked != s.flushed.load(Relaxed) {
            // `rprof_flush`: what the program recorded before it asked is in the queue.
            w.drain();
            w.flush_now();
            last_flush = Instant::now();
            s.flushed.store(asked, Release);
        }
        if last_flush.elapsed() >= flush_every || w.pending_bytes() >= MAX_CHUNK {
            w.flush();
            last_flush = Instant::now();
        }
    };
    w.drain();
    w.symbolized(true);
    if w.worth_keeping(ended == Ended::Execd) {
        end_trace(&mut w, s, ended);
    } else {
        // Nothing worth a report (a shell or compiler driver the program ran): no file.
        w.discard();
    }
    let outcome = match w.sink.stopped {
        Some(sink::Stopped::Open(_)) => Outcome::OpenFailed,
        Some(sink::Stopped::Write(_)) => Outcome::WriteFailed,
        None if w.sink.deleted() => Outcome::Deleted,
        None => Outcome::Fine,
    };
    s.set_path(&w.sink.path);
    s.set_outcome(outcome);
    let written = if w.sink.is_open() {
        w.samples_written + 1
    } else {
        0
    };
    signal_done(s, written);
    // SAFETY: the writer's work is done; end its process without exit handlers (they are
    // the program's).
    unsafe { libc::_exit(0) }
}

/// Writes the last records: how the process ended (as it said, or as the kernel showed),
/// and the End record unless it died without warning.
fn end_trace(w: &mut Writer, s: &Shared, ended: Ended) {
    match ended {
        Ended::Exited => {
            let t = s.end_ns.load(Relaxed);
            let code = s.exit_code.load(Relaxed);
            match s.exit_how.load(Acquire) {
                shared::EXITED => w.exit(t, Ending::Exited(code)),
                shared::SIGNALED => w.exit(t, Ending::Signaled(code)),
                _ => {}
            }
            w.finish(t);
        }
        Ended::Execd => {
            let t = w.elapsed_ns();
            w.mark(t, marks::EXEC.to_owned());
            let command = w.string(&s.exec_cmd());
            w.exit(t, Ending::Execd(command));
            w.finish(t);
        }
        // A wait status: an exit past our wrappers (a raw system call) is still an exit.
        Ended::Vanished(Some(status)) if status & 0x7f == 0 => {
            let t = w.elapsed_ns();
            w.exit(t, Ending::Exited((status >> 8) & 0xff));
            w.finish(t);
        }
        Ended::Vanished(Some(status)) => {
            let t = w.elapsed_ns();
            w.exit(t, Ending::Killed(status & 0x7f));
            w.flush_last();
        }
        Ended::Vanished(None) => w.flush_last(),
    }
}

/// Waits up to `timeout` for the link to become readable (closed); false once it has.
fn wait_readable(link: i32, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: link,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one pollfd we own.
    let n = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) };
    n <= 0 || p.revents & (libc::POLLHUP | libc::POLLIN | libc::POLLERR) == 0
}

/// What the program's pid runs now.
enum Image {
    /// Still the program, with our shared page.
    Ours,
    /// A live process with another address space: the program exec'd.
    Other,
    /// Nothing (exited, exiting: no address space left, or a zombie), with its wait status
    /// while the kernel still shows it (`exit_code` in /proc/PID/stat, set as the exit
    /// begins, before the address space and the descriptors go).
    Gone(Option<i32>),
}

fn image(pid: u32, s: &Shared) -> Image {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Image::Gone(None);
    };
    // Fields after the command's closing parenthesis: the state is field 3, exit_code 52.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let state = fields.first().and_then(|f| f.chars().next());
    // 0 is also what a reader without permission gets: unknown, not "exited 0".
    let status = fields
        .get(52 - 3)
        .and_then(|f| f.parse::<i32>().ok())
        .filter(|&st| st != 0);
    if matches!(state, None | Some('Z' | 'X' | 'x')) {
        return Image::Gone(status);
    }
    let at = format!("{:x}-", s as *const Shared as usize);
    match std::fs::read_to_string(format!("/proc/{pid}/maps")) {
        Ok(m) if m.lines().any(|l| l.starts_with(&at)) => Image::Ours,
        Ok(m) if m.is_empty() => Image::Gone(status),
        // Unreadable maps: a set-uid image the process exec'd into.
        _ => Image::Other,
    }
}

/// The program closed the link itself and runs on: watch the shared page and the process
/// instead, flushing as usual.
fn poll_until_gone(w: &mut Writer, s: &Shared, pid: u32, flush_every: Duration) -> Ended {
    let mut last_check = Instant::now();
    loop {
        std::thread::sleep(POLL);
        w.drain();
        if let Some(e) = told(s, pid) {
            return e;
        }
        if last_check.elapsed() >= flush_every {
            last_check = Instant::now();
            match image(pid, s) {
                Image::Ours => {}
                Image::Other => return told(s, pid).unwrap_or(Ended::Execd),
                Image::Gone(status) => return told(s, pid).unwrap_or(Ended::Vanished(status)),
            }
            w.flush();
        }
    }
}
