//! The writer process: drains the event queue (shared memory), resolves code objects to
//! functions and lines and native PCs to symbols, interns strings and stacks, and appends
//! checksummed chunks to the trace. All the heavy work of the shim happens here, never in
//! the program's threads; and as a separate process it adds no thread to the program (a
//! second thread alone costs a single-threaded program glibc's locked malloc paths), and
//! it finishes the trace even when the program is killed.

use crate::codes::Span;
use crate::log;
use crate::queue::{Event, Kind, UNKNOWN_CODE};
use crate::runtime::Runtime;
use crate::{counters, python, runtime, shared, symbols, thread_state};
use rprof_format::{
    encode_header, marks, AllocSample, CopySample, CpuSample, Domain, Encoder, End, Exec, Frame,
    FreeSample, FuncKind, Header, Record,
};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering::*};
use std::time::{Duration, Instant};

/// Chunks are also cut when they grow this large, between periodic flushes.
const MAX_CHUNK: usize = 256 << 10;
const POLL: Duration = Duration::from_millis(5);
/// Events in one drain that mean the program is producing fast: drain again without pause.
const BUSY: usize = 64;
/// After events, the queue is polled this often until this many polls found it empty.
const SHORT_POLL: Duration = Duration::from_micros(200);
const QUIET_POLLS: u32 = 100;

/// What the writer knows about one interned code object.
struct Code {
    func: u32,
    first_line: i32,
    table: Span,
}

/// The trace file. A child process creates it only once it has a sample to write, so the
/// shells and helpers a program spawns leave no empty traces behind.
struct Sink {
    path: String,
    header: Vec<u8>,
    file: Option<File>,
    failed: bool,
}

impl Sink {
    fn open(&mut self) -> bool {
        if self.file.is_none() && !self.failed {
            let opened = File::create(&self.path).and_then(|mut f| {
                f.write_all(&self.header)?;
                Ok(f)
            });
            match opened {
                Ok(f) => self.file = Some(f),
                Err(e) => self.fail(&e),
            }
        }
        self.file.is_some()
    }

    fn write(&mut self, bytes: &[u8]) {
        if let Some(f) = &mut self.file {
            if let Err(e) = f.write_all(bytes) {
                self.file = None;
                self.fail(&e);
            }
        }
    }

    fn fail(&mut self, e: &std::io::Error) {
        self.failed = true;
        log::warn(&format!(
            "cannot write the trace to {}: {e}; the rest of this run is not recorded",
            self.path
        ));
    }
}

struct Writer {
    rt: &'static Runtime,
    /// The program's pid (this process is its writer).
    program: u32,
    sink: Sink,
    enc: Encoder,
    strings: HashMap<String, u32>,
    funcs: HashMap<(u32, u32, u32), u32>,
    next_func: u32,
    codes: Vec<Option<Code>>,
    /// Function ids of the native PCs seen (exact PCs and return addresses resolve
    /// differently), and the symbolizer working on them.
    natives: HashMap<(u64, bool), u32>,
    symbolizer: symbols::Symbolizer,
    unknown_func: Option<u32>,
    stacks: HashMap<Vec<Frame>, u32>,
    threads: HashSet<u32>,
    frames: Vec<Frame>,
    samples: u64,
    events: u64,
    truncated: u64,
    marked_finalizing: bool,
}

/// The write end of the pipe whose closing tells the writer the program is gone; -1 when
/// no writer runs.
static LINK: AtomicI32 = AtomicI32::new(-1);

/// The writer's pid, for reaping it at exit.
static WRITER_PID: AtomicI32 = AtomicI32::new(0);

/// The writer process's stack (it shares nothing with the program once cloned).
const WRITER_STACK: usize = 8 << 20;

/// Starts the writer process for this (program) process. With `eager`, the trace is
/// created now, and false is returned (after a warning) if it cannot be.
///
/// The writer is a child cloned with no exit signal, in a session of its own: the program
/// gets no SIGCHLD for it, its `wait(-1)` never sees it (only `__WALL` waits would), and a
/// Ctrl-C to the program's process group does not reach it. Unlike `fork`, `clone` runs no
/// atfork handlers. The program reaps it at exit. It learns that the program ended from
/// the pipe: the program's end closes it, whether by exit, kill or exec.
pub fn start(rt: &'static Runtime, path: &str, header: &Header, eager: bool) -> bool {
    let mut sink = Sink {
        path: path.to_owned(),
        header: encode_header(header),
        file: None,
        failed: false,
    };
    if eager && !sink.open() {
        return false;
    }
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        log::warn("cannot create the writer's pipe; this process runs unprofiled");
        return false;
    }
    let program = std::process::id();
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
        rt,
        sink,
        link: fds[0],
        program,
    });
    let arg = Box::into_raw(start);
    let pid = if stack == libc::MAP_FAILED {
        -1
    } else {
        let top = unsafe { (stack as *mut u8).add(WRITER_STACK) };
        unsafe { libc::clone(writer_entry, top.cast(), 0, arg.cast()) }
    };
    unsafe {
        // The child has its own copy of everything; the parent's copies go.
        drop(Box::from_raw(arg));
        if stack != libc::MAP_FAILED {
            libc::munmap(stack, WRITER_STACK);
        }
        libc::close(fds[0]);
    }
    if pid <= 0 {
        unsafe { libc::close(fds[1]) };
        log::warn("cannot start the trace writer process; this process runs unprofiled");
        return false;
    }
    WRITER_PID.store(pid, Release);
    LINK.store(fds[1], Release);
    true
}

struct Start {
    rt: &'static Runtime,
    sink: Sink,
    link: i32,
    program: u32,
}

extern "C" fn writer_entry(arg: *mut libc::c_void) -> i32 {
    let s = unsafe { Box::from_raw(arg as *mut Start) };
    let keep = [s.link, s.sink.file.as_ref().map_or(-1, |f| f.as_raw_fd())];
    close_inherited(keep);
    let Start {
        rt,
        sink,
        link,
        program,
    } = *s;
    writer_main(rt, sink, link, program)
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
            if null > 2 {
                libc::close(null);
            }
        }
    }
}

/// Closes descriptors `first..=last`: close_range(2) where the kernel has it (5.9+), else
/// one by one up to the descriptor limit.
fn close_range(first: u32, last: u32) {
    if unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) } == 0 {
        return;
    }
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur.min(1 << 16) as u32
    } else {
        1024
    };
    for fd in first..=last.min(max.saturating_sub(1)) {
        unsafe { libc::close(fd as i32) };
    }
}

/// At exit: asks the writer to drain, write the end record and close the trace, and waits
/// for it (at most a few seconds). Returns the samples written, or None when no trace file
/// was written.
pub fn finish(end_ns: u64) -> Option<u64> {
    let fd = LINK.swap(-1, AcqRel);
    let s = shared::page()?;
    if fd < 0 {
        return None;
    }
    s.end_ns.store(end_ns, Relaxed);
    s.finish.store(1, Release);
    unsafe { libc::close(fd) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.done.load(Acquire) == 0 && Instant::now() < deadline {
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 50_000_000,
        };
        unsafe {
            libc::syscall(libc::SYS_futex, &s.done, libc::FUTEX_WAIT, 0, &ts, 0, 0);
        }
    }
    reap_writer(deadline.min(Instant::now() + Duration::from_secs(1)));
    s.written.load(Acquire).checked_sub(1)
}

/// Collects the writer's exit status (it exits right after `done`), so that it leaves no
/// zombie behind a program that keeps running past its exit handlers or a parent that
/// does not reap orphans. Gives up at `deadline`: never hangs the exit.
fn reap_writer(deadline: Instant) {
    let pid = WRITER_PID.swap(0, AcqRel);
    if pid <= 0 {
        return;
    }
    let nap = libc::timespec {
        tv_sec: 0,
        tv_nsec: 1_000_000,
    };
    while unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG | libc::__WCLONE) } == 0
        && Instant::now() < deadline
    {
        unsafe { libc::nanosleep(&nap, std::ptr::null_mut()) };
    }
}

/// In a fork child: the pipe it inherited is the parent's writer's; let go of it.
pub fn forget_parent() {
    WRITER_PID.store(0, Release);
    let fd = LINK.swap(-1, AcqRel);
    if fd >= 0 {
        unsafe { libc::close(fd) };
    }
}

/// How the program's run ended, as the writer sees it.
enum Ended {
    /// At exit, through `finish`: the trace gets its End record.
    Exited,
    /// Killed, or ended without running exit handlers (`_exit`): everything it recorded is
    /// written, without an End record.
    Vanished,
    /// It exec'd another program, which writes its own trace (to the same path, when the
    /// name has no `%p`): this writer stops writing at once.
    Execd,
}

fn writer_main(rt: &'static Runtime, sink: Sink, link: i32, program: u32) -> ! {
    unsafe {
        libc::setsid();
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_NAME, c"rprof-writer".as_ptr());
    }
    // Nothing this process does is the program's.
    shared::detach();
    runtime::deactivate();
    thread_state::with(|t| t.busy.set(true));
    let s = shared::page().expect("the shared page exists before the writer starts");
    let mut w = Writer::new(rt, sink, program);
    let flush_every = Duration::from_millis(rt.config.flush_ms);
    let mut last_flush = Instant::now();
    let mut quiet = 0u32;
    let ended = loop {
        // A busy queue is drained again at once, and watched closely for a while after (a
        // program allocating fast fills it in milliseconds); a quiet one is polled every
        // few ms.
        let n = w.drain();
        quiet = if n > 0 { 0 } else { quiet.saturating_add(1) };
        let pause = match (n, quiet) {
            (n, _) if n >= BUSY => Duration::ZERO,
            (_, q) if q < QUIET_POLLS => SHORT_POLL,
            _ => POLL,
        };
        if s.finish.load(Acquire) != 0 {
            break Ended::Exited;
        }
        if !wait_readable(link, pause) {
            // The pipe closed: the program exited (with or without exit handlers), was
            // killed, exec'd, or closed the descriptor itself (some daemons close them all).
            match program_state(program) {
                _ if s.finish.load(Acquire) != 0 => break Ended::Exited,
                Some(state) if state != 'Z' && state != 'X' => {
                    if still_ours(program, s) {
                        // Alive and still ours: carry on, watching the process instead.
                        poll_until_gone(&mut w, s, program, flush_every);
                        break if s.finish.load(Acquire) != 0 {
                            Ended::Exited
                        } else {
                            Ended::Vanished
                        };
                    }
                    break Ended::Execd;
                }
                _ => break Ended::Vanished,
            }
        }
        if last_flush.elapsed() >= flush_every || w.enc.len() >= MAX_CHUNK {
            w.flush();
            last_flush = Instant::now();
        }
    };
    match ended {
        Ended::Exited => {
            w.drain();
            w.symbolized(true);
            w.finish(s.end_ns.load(Relaxed));
        }
        Ended::Vanished => {
            w.drain();
            w.symbolized(true);
            w.flush();
        }
        Ended::Execd => {}
    }
    let written = if w.sink.file.is_some() {
        w.samples + 1
    } else {
        0
    };
    s.written.store(written, Release);
    s.done.store(1, Release);
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
        libc::_exit(0)
    }
}

/// Waits up to `timeout` for the link to become readable (closed); false once it has.
fn wait_readable(link: i32, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: link,
        events: libc::POLLIN,
        revents: 0,
    };
    let n = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) };
    n <= 0 || p.revents & (libc::POLLHUP | libc::POLLIN | libc::POLLERR) == 0
}

/// The program's state letter from /proc (R, S, Z, ...), None when it is gone.
fn program_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Whether the program still maps our shared page (it does not after an exec).
fn still_ours(pid: u32, s: &shared::Shared) -> bool {
    let at = format!("{:x}-", s as *const shared::Shared as usize);
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .is_ok_and(|m| m.lines().any(|l| l.starts_with(&at)))
}

fn poll_until_gone(w: &mut Writer, s: &shared::Shared, pid: u32, flush_every: Duration) {
    let mut last_check = Instant::now();
    loop {
        std::thread::sleep(POLL);
        w.drain();
        if s.finish.load(Acquire) != 0 {
            return;
        }
        if last_check.elapsed() >= flush_every {
            last_check = Instant::now();
            match program_state(pid) {
                Some(st) if st != 'Z' && st != 'X' && still_ours(pid, s) => w.flush(),
                _ => return,
            }
        }
    }
}

impl Writer {
    fn new(rt: &'static Runtime, sink: Sink, program: u32) -> Writer {
        Writer {
            rt,
            program,
            sink,
            enc: Encoder::new(),
            strings: HashMap::new(),
            funcs: HashMap::new(),
            next_func: 0,
            codes: Vec::new(),
            natives: HashMap::new(),
            symbolizer: symbols::Symbolizer::start(program),
            unknown_func: None,
            stacks: HashMap::new(),
            threads: HashSet::new(),
            frames: Vec::with_capacity(64),
            samples: 0,
            events: 0,
            truncated: 0,
            marked_finalizing: false,
        }
    }

    /// Processes every published event; returns how many there were.
    fn drain(&mut self) -> usize {
        let rt = self.rt;
        let mut n = 0;
        while rt.queue.pop(|ev| self.on_event(ev)) {
            n += 1;
        }
        if !self.marked_finalizing {
            if let Some(t) = shared::page().and_then(|s| s.finalizing.load(Relaxed).checked_sub(1))
            {
                self.marked_finalizing = true;
                let label = self.string(marks::PYTHON_FINALIZING);
                self.enc.push(&Record::Mark { t_ns: t, label });
            }
        }
        n
    }

    fn on_event(&mut self, ev: &Event) {
        self.events += 1;
        if ev.kind == Kind::Free {
            self.enc.push(&Record::Free(FreeSample {
                t_ns: ev.t_ns,
                addr: ev.addr,
            }));
            return;
        }
        if !self.threads.contains(&ev.tid) {
            self.threads.insert(ev.tid);
            let comm =
                std::fs::read_to_string(format!("/proc/{}/task/{}/comm", self.program, ev.tid));
            let name = self.string(comm.as_deref().unwrap_or("").trim_end());
            self.enc.push(&Record::Thread { tid: ev.tid, name });
        }
        let stack = self.stack_of(ev);
        let rec = match ev.kind {
            Kind::Cpu => {
                self.samples += 1;
                self.truncated += u64::from(ev.truncated);
                Record::Cpu(CpuSample {
                    t_ns: ev.t_ns,
                    tid: ev.tid,
                    stack,
                    cpu_ns: ev.cpu_ns,
                    sys_ns: ev.sys_ns,
                    exec: match (ev.profiler, ev.python) {
                        (true, _) => Exec::Profiler,
                        (false, true) => Exec::Python,
                        (false, false) => Exec::Native,
                    },
                })
            }
            Kind::Alloc => Record::Alloc(AllocSample {
                t_ns: ev.t_ns,
                tid: ev.tid,
                stack,
                addr: ev.addr,
                size: ev.size,
                weight: ev.weight,
                domain: if ev.python {
                    Domain::Python
                } else {
                    Domain::Native
                },
            }),
            Kind::Copy => Record::Copy(CopySample {
                t_ns: ev.t_ns,
                tid: ev.tid,
                stack,
                weight: ev.weight,
            }),
            Kind::Free => unreachable!("handled above"),
        };
        self.enc.push(&rec);
    }

    /// Native frames first (innermost first), then the Python frames.
    fn stack_of(&mut self, ev: &Event) -> u32 {
        let mut frames = std::mem::take(&mut self.frames);
        frames.clear();
        for (i, &pc) in ev.native[..ev.native_depth as usize].iter().enumerate() {
            // A CPU sample's first PC is the interrupted instruction; the rest, and all of an
            // allocation's, are return addresses.
            frames.push(self.native(pc, i == 0 && ev.kind == Kind::Cpu));
        }
        for f in &ev.frames[..ev.depth as usize] {
            frames.push(self.frame(f.code, f.addrq));
        }
        let stack = self.stack(&frames);
        self.frames = frames;
        stack
    }

    /// A native frame: one function id per PC, whose record (name, file, and the PC's
    /// line as its first line) is written once the symbolizer thread has resolved it.
    /// Resolving reads debug info, which can take a while; the queue must not wait for it.
    fn native(&mut self, pc: u64, exact: bool) -> Frame {
        let func = match self.natives.get(&(pc, exact)) {
            Some(&f) => f,
            None => {
                let f = self.new_func();
                self.natives.insert((pc, exact), f);
                self.symbolizer.request(pc, exact, f);
                f
            }
        };
        Frame { func, line: 0 }
    }

    /// Writes the function records of the PCs resolved so far; with `all`, waits for the
    /// rest.
    fn symbolized(&mut self, all: bool) {
        for (id, sym) in self.symbolizer.results(all) {
            let (name, file) = (self.string(&sym.name), self.string(&sym.file));
            self.enc.push(&Record::Function {
                id,
                kind: FuncKind::Native,
                name,
                file,
                first_line: sym.line,
            });
        }
    }

    fn string(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.strings.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        self.strings.insert(s.to_owned(), id);
        self.enc.push(&Record::String {
            id,
            text: s.to_owned(),
        });
        id
    }

    fn new_func(&mut self) -> u32 {
        self.next_func += 1;
        self.next_func - 1
    }

    fn function(&mut self, kind: FuncKind, name: &str, file: &str, first_line: u32) -> u32 {
        let key = (self.string(name), self.string(file), first_line);
        if let Some(&id) = self.funcs.get(&key) {
            return id;
        }
        let id = self.new_func();
        self.funcs.insert(key, id);
        self.enc.push(&Record::Function {
            id,
            kind,
            name: key.0,
            file: key.1,
            first_line,
        });
        id
    }

    fn frame(&mut self, code: u32, addrq: i32) -> Frame {
        let Some(c) = self.code(code) else {
            let func = match self.unknown_func {
                Some(f) => f,
                None => {
                    let f = self.function(FuncKind::Python, "<unknown>", "<unknown>", 0);
                    *self.unknown_func.insert(f)
                }
            };
            return Frame { func, line: 0 };
        };
        let (func, first_line, table) = (c.func, c.first_line, c.table);
        let version = self.rt.probe.as_ref().map_or(0, |p| p.version_hex());
        let line = python::decode_line(version, self.rt.codes.bytes(table), first_line, addrq);
        Frame {
            func,
            line: line.unwrap_or(0),
        }
    }

    /// Resolves a code id to its function, reading the code table on first use.
    fn code(&mut self, id: u32) -> Option<&Code> {
        if id == UNKNOWN_CODE {
            return None;
        }
        let i = id as usize;
        if self.codes.get(i).is_none_or(Option::is_none) {
            let codes = &self.rt.codes;
            let e = codes.get(id)?;
            let name = python::decode_str(e.qualname.1, codes.bytes(e.qualname.0));
            let file = python::decode_str(e.filename.1, codes.bytes(e.filename.0));
            let (first_line, table) = (e.first_line, e.linetable);
            let func = self.function(FuncKind::Python, &name, &file, first_line.max(0) as u32);
            if self.codes.len() <= i {
                self.codes.resize_with(i + 1, || None);
            }
            self.codes[i] = Some(Code {
                func,
                first_line,
                table,
            });
        }
        self.codes[i].as_ref()
    }

    fn stack(&mut self, frames: &[Frame]) -> u32 {
        if frames.is_empty() {
            return 0;
        }
        if let Some(&id) = self.stacks.get(frames) {
            return id;
        }
        let id = self.stacks.len() as u32 + 1;
        self.stacks.insert(frames.to_vec(), id);
        self.enc.push(&Record::Stack {
            id,
            frames: frames.to_vec(),
        });
        id
    }

    fn counters(&mut self) {
        if let Some(s) = shared::page() {
            let c = counters::snapshot(s, self.rt.elapsed_ns());
            self.enc.push(&Record::Counters(c));
        }
    }

    fn flush(&mut self) {
        self.symbolized(false);
        self.counters();
        if self.events > 0 {
            self.sink.open();
        }
        if let Some(chunk) = self.enc.finish_chunk() {
            self.sink.write(chunk);
        }
        self.enc.clear();
    }

    fn finish(&mut self, end_ns: u64) {
        let taken = shared::page().map_or(0, |s| s.samples.load(Relaxed));
        self.enc.push(&Record::End(End {
            t_ns: end_ns,
            samples: taken,
            dropped: self.rt.queue.dropped(),
            truncated: self.truncated,
        }));
        self.flush();
    }
}
