//! Turns the program's events into trace records: resolves code objects to functions and
//! lines and native PCs to symbols, interns strings and stacks, and hands whole chunks to
//! the sink.

use super::fold::Fold;
use super::gpu::{self, Gpu, Msg};
use super::oom;
use super::sink::{self, Sink};
use super::Input;
use crate::config::GpuSetting;
use crate::shared::codes::Span;
use crate::shared::queue::{Event, Kind, UNKNOWN_CODE};
use crate::sys::log;
use crate::{python, shared, shared::counters, writer::symbols};
use rprof_format::{
    marks, AllocSample, CopySample, CpuSample, Domain, Encoder, End, Ending, Exec, Exit, Frame,
    FreeSample, FuncKind, GpuDevice, Process, Record,
};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

/// What the writer knows about one interned code object.
struct Code {
    func: u32,
    first_line: i32,
    table: Span,
}

pub struct Writer {
    input: Input,
    /// The program's pid (this process is its writer).
    program: u32,
    pub sink: Sink,
    enc: Encoder,
    /// The flush window's memory records, held until its chunk is written.
    fold: Fold,
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
    /// The threads named so far, with the sequence count of the Python name they were
    /// named by (0: the OS name).
    threads: HashMap<u32, u32>,
    frames: Vec<Frame>,
    pub samples: u64,
    truncated: u64,
    marked_finalizing: bool,
    /// Samples in chunks that reached the file.
    pub samples_written: u64,
    /// Marks for the next chunk: time, label.
    pending_marks: Vec<(u64, String)>,
    /// CPU time and bytes allocated the samples stand for, and whether a CPU sample had a
    /// Python frame: what makes the process worth a trace (see `worth_keeping`). (A fork
    /// on its way to exec runs a little Python, `preexec_fn`, whose allocations may be
    /// sampled.)
    cpu_ns: u64,
    alloc_bytes: u64,
    python_seen: bool,
    /// The process was found worth a trace: records reach the file from then on. Until
    /// then they wait in the encoder (a few events' worth).
    keep: bool,
    /// The GPU thread (NVML), unless `RPROF_GPU=off`.
    gpu: Option<Gpu>,
    /// The trace reached `RPROF_MAX_MB`: nothing more is written.
    capped: bool,
}

/// threading's name for the main thread.
const MAIN_THREAD: &str = "MainThread";

/// CPU time, or bytes allocated, that make a child process with no Python worth a trace of
/// its own: the shells, launcher scripts and compiler drivers a program runs take less
/// (pyenv's bash scripts a few ms; gcc's cc1 on a small file 10 ms and 3 MB), and would
/// otherwise each add a file (and a line) to every run.
const FEW_CPU_NS: u64 = 50_000_000;
const FEW_ALLOC_BYTES: u64 = 16 << 20;

/// At the end of a run, how long the writer waits for the GPU thread to say whether GPU
/// profiling is on (a missing library is known in microseconds; a slow driver is not
/// waited for, and its absence is then said).
const GPU_VERDICT_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

impl Writer {
    pub fn new(input: Input, sink: Sink, program: u32) -> Writer {
        Writer {
            input,
            program,
            sink,
            enc: Encoder::new(),
            fold: Fold::default(),
            strings: HashMap::new(),
            funcs: HashMap::new(),
            next_func: 0,
            codes: Vec::new(),
            natives: HashMap::new(),
            symbolizer: symbols::Symbolizer::start(program),
            unknown_func: None,
            stacks: HashMap::new(),
            threads: HashMap::new(),
            frames: Vec::with_capacity(64),
            samples: 0,
            truncated: 0,
            marked_finalizing: false,
            samples_written: 0,
            pending_marks: log::take_pending()
                .into_iter()
                .map(|w| (0, format!("{}: {w}", marks::WARNING)))
                .collect(),
            cpu_ns: 0,
            alloc_bytes: 0,
            python_seen: false,
            keep: false,
            capped: false,
            gpu: {
                let c = input.config;
                let start = input.start_mono_ns;
                Gpu::start(c.gpu, c.nvml_library.clone(), program, c.hz, move || {
                    crate::state::monotonic_ns().saturating_sub(start)
                })
            },
        }
        .with_process_record()
    }

    /// The trace's first record: which run the process belongs to, and whether it started
    /// it.
    fn with_process_record(mut self) -> Writer {
        let run = self.string(self.input.run);
        let root = self.input.root;
        self.enc.push(&Record::Process(Process { run, root }));
        self
    }

    /// Whether what was recorded is worth a trace: Python code ran in a CPU sample, or the
    /// samples stand for some CPU time or memory; at the end also the run's first process
    /// and any Python process, unless it exec'd (then it was a launcher script, or a fork
    /// on its way to another program, and the program it ran writes its own trace).
    pub fn worth_keeping(&mut self, execd: bool) -> bool {
        let chosen = self.input.root || self.input.python.is_some();
        self.keep |= self.worth_now() || (chosen && !execd);
        self.keep
    }

    fn worth_now(&self) -> bool {
        self.python_seen || self.cpu_ns >= FEW_CPU_NS || self.alloc_bytes >= FEW_ALLOC_BYTES
    }

    /// Drops what was recorded, and the file if the trace was created at start.
    pub fn discard(&mut self) {
        self.enc.clear();
        self.fold.clear();
        self.sink.discard();
    }

    pub fn elapsed_ns(&self) -> u64 {
        self.input.elapsed_ns()
    }

    /// Records how the process ended.
    pub fn exit(&mut self, t_ns: u64, how: Ending) {
        self.enc.push(&Record::Exit(Exit { t_ns, how }));
    }

    /// Writes what the GPU thread sent: its verdict (marked, and said in one info line),
    /// the devices, the readings.
    fn gpu(&mut self, msgs: Vec<Msg>) {
        for m in msgs {
            match m {
                Msg::Reading(r) => self.enc.push(&Record::Gpu(r)),
                Msg::On { devices, text } => {
                    for d in devices {
                        let name = self.string(&d.name);
                        self.enc.push(&Record::GpuDevice(GpuDevice {
                            index: d.index,
                            name,
                            memory_total: d.memory_total,
                        }));
                    }
                    self.gpu_said(text);
                }
                Msg::Off(text) => self.gpu_said(text),
            }
        }
    }

    /// The GPU verdict, marked in the trace; said on stderr by Python processes and where
    /// `RPROF_GPU=on` asked for it (not by every shell and launcher a run execs through).
    fn gpu_said(&mut self, text: String) {
        if self.input.python.is_some() || self.input.config.gpu == GpuSetting::On {
            log::info(&text);
        }
        let t = self.input.elapsed_ns();
        self.mark(t, format!("{}: {text}", marks::GPU));
    }

    /// Processes every published event; returns how many there were.
    pub fn drain(&mut self) -> usize {
        let queue = self.input.queue;
        let mut n = 0;
        while queue.pop(|ev| self.on_event(ev)) {
            n += 1;
        }
        if let Some(msgs) = self.gpu.as_mut().map(Gpu::ready) {
            self.gpu(msgs);
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
        if ev.kind == Kind::Mark {
            let label = String::from_utf8_lossy(&ev.label()).into_owned();
            self.mark(ev.t_ns, format!("{}: {label}", marks::USER));
            return;
        }
        if ev.kind == Kind::Free {
            self.fold.free(FreeSample {
                t_ns: ev.t_ns,
                addr: ev.addr,
            });
            return;
        }
        self.name_thread(ev.tid);
        let stack = self.stack_of(ev);
        let rec = match ev.kind {
            Kind::Cpu => {
                self.samples += 1;
                self.cpu_ns += ev.cpu_ns;
                self.python_seen |= ev.depth > 0;
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
            Kind::Alloc => {
                self.alloc_bytes += ev.weight;
                self.fold.alloc(AllocSample {
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
                });
                return;
            }
            Kind::Copy => Record::Copy(CopySample {
                t_ns: ev.t_ns,
                tid: ev.tid,
                stack,
                weight: ev.weight,
            }),
            Kind::Free | Kind::Mark => unreachable!("handled above"),
        };
        self.enc.push(&rec);
    }

    /// Writes a Thread record at a thread's first event, and again when the sampler
    /// published a new Python name for it (the report keeps the last). The Python name
    /// (`threading.Thread.name`) when there is one; else the main thread of a Python
    /// process is threading's "MainThread" (it runs no `Thread._bootstrap` frame to read
    /// a name from); else the OS name.
    fn name_thread(&mut self, tid: u32) {
        let seq = self.input.thread_names.seq(tid);
        let named = self.threads.get(&tid).copied();
        if named.is_some_and(|n| n == seq || seq == 0) {
            return;
        }
        let python = self
            .input
            .thread_names
            .get(tid)
            .filter(|n| n.seq == seq && seq != 0);
        let (text, seq) = match python {
            Some(n) => (python::decode_str(n.kind, &n.bytes), n.seq),
            // Being rewritten: the next event reads it.
            None if named.is_some() => return,
            None if self.input.python.is_some() && tid == self.program => {
                (MAIN_THREAD.to_owned(), 0)
            }
            None => {
                let comm =
                    std::fs::read_to_string(format!("/proc/{}/task/{tid}/comm", self.program));
                (comm.as_deref().unwrap_or("").trim_end().to_owned(), 0)
            }
        };
        self.threads.insert(tid, seq);
        let name = self.string(&text);
        self.enc.push(&Record::Thread { tid, name });
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
    pub fn symbolized(&mut self, all: bool) {
        for (id, sym) in self.symbolizer.results(all) {
            let (name, file) = (self.string(&sym.name), self.string(&sym.file));
            self.enc.push(&Record::Function {
                id,
                kind: FuncKind::Native,
                name,
                file,
                first_line: sym.line,
            });
            if let Some((build_id, addr)) = &sym.address {
                let build_id = self.string(build_id);
                self.enc.push(&Record::NativeAddress {
                    func: id,
                    build_id,
                    addr: *addr,
                });
            }
        }
    }

    pub fn string(&mut self, s: &str) -> u32 {
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
        let version = self.input.python.unwrap_or(0);
        let line = python::charged_line(version, self.input.codes.bytes(table), first_line, addrq);
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
            let codes = &self.input.codes;
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
            let c = counters::snapshot(s, self.input.elapsed_ns());
            self.enc.push(&Record::Counters(c));
        }
    }

    pub fn flush(&mut self) {
        if self.sink.stopped.is_some() || self.capped {
            // Nothing more reaches the file; the queue is still drained.
            self.enc.clear();
            self.fold.clear();
            return;
        }
        self.keep |= self.worth_now();
        if !self.keep {
            return;
        }
        self.fold.write(&mut self.enc);
        self.symbolized(false);
        self.counters();
        if !self.sink.is_open() {
            // A trace created only now (a child's, or one whose program started paused)
            // goes where `rprof_set_output` asked, if it did.
            if let Some(path) = shared::page().and_then(shared::Shared::take_output) {
                self.sink.retarget(&path);
            }
        }
        self.sink.open();
        if self.sink.is_open() {
            self.marks();
        }
        let max = self.input.config.max_bytes;
        let written = match self.enc.finish_chunk() {
            // A chunk that would take the trace past RPROF_MAX_MB is not written: the
            // trace stops below the cap (a chunk holds a flush window, whose size the
            // program's pace sets), with only the small closing chunk after it.
            Some(chunk) if max > 0 && self.sink.good() + chunk.len() as u64 > max => {
                self.enc.clear();
                self.cap(max);
                return;
            }
            Some(chunk) => self.sink.write(chunk),
            None => true,
        };
        self.enc.clear();
        if !written {
            self.stopped();
        }
        // Only what reached the file counts; the rest (a trace that could not be
        // written) is drained and dropped, so the program never waits for it.
        if written && self.sink.is_open() {
            self.samples_written = self.samples;
            oom::written_up_to(&self.sink, self.samples_written);
        }
    }

    /// `rprof_flush`: the program asked for its trace, so it has one (whatever it
    /// recorded), and what was recorded reaches it now.
    pub fn flush_now(&mut self) {
        self.keep = true;
        self.flush_last();
    }

    /// A flush that writes every folded block held (the trace may end after it).
    pub fn flush_last(&mut self) {
        self.fold.end_period();
        self.flush();
    }

    /// The next chunk would take the trace past `RPROF_MAX_MB`: a last small chunk names
    /// the native functions its stacks use and says why it stops,
    /// and nothing more is written (the queue is still drained, so the program runs on as
    /// before). Warned once.
    fn cap(&mut self, max: u64) {
        self.capped = true;
        let mb = max >> 20;
        log::warn(&format!(
            "the trace {} reached its size cap (RPROF_MAX_MB={mb}); the rest of this run is \
             not recorded",
            self.sink.path
        ));
        self.symbolized(true);
        let label = self.string(&format!(
            "{}: RPROF_MAX_MB={mb} reached",
            marks::TRACE_STOPPED
        ));
        let t_ns = self.input.elapsed_ns();
        self.enc.push(&Record::Mark { t_ns, label });
        if let Some(chunk) = self.enc.finish_chunk() {
            self.sink.write(chunk);
        }
        self.enc.clear();
    }

    /// A write failed: the chunk that says why replaces the torn one, and nothing more is
    /// written.
    fn stopped(&mut self) {
        let why = match self.sink.stopped {
            Some(sink::Stopped::Write(e)) => std::io::Error::from_raw_os_error(e).to_string(),
            _ => return,
        };
        let label = self.string(&format!("{}: {why}", marks::TRACE_STOPPED));
        let t_ns = self.input.elapsed_ns();
        self.enc.push(&Record::Mark { t_ns, label });
        if let Some(chunk) = self.enc.finish_chunk() {
            self.sink.write_last(chunk);
        }
        self.enc.clear();
    }

    /// Marks the run's own warnings (bad settings, a foreign file at the path) and the
    /// named moments queued for the trace.
    fn marks(&mut self) {
        for (t_ns, text) in std::mem::take(&mut self.pending_marks) {
            let label = self.string(&text);
            self.enc.push(&Record::Mark { t_ns, label });
        }
    }

    /// Bytes of records not yet written (the memory records' about).
    pub fn pending_bytes(&self) -> usize {
        self.enc.len() + self.fold.pending_bytes()
    }

    /// Queues a mark for the next chunk.
    pub fn mark(&mut self, t_ns: u64, text: String) {
        self.pending_marks.push((t_ns, text));
    }

    /// Writes the End record and the last chunk (the process is worth its trace by now).
    pub fn finish(&mut self, end_ns: u64) {
        self.keep = true;
        if let Some(g) = self.gpu.as_mut() {
            let msgs = g.verdict(GPU_VERDICT_WAIT);
            let undecided = !g.decided;
            self.gpu(msgs);
            if undecided {
                self.gpu_said(format!(
                    "GPU profiling off: NVML ({}) did not start within {} ms",
                    self.input
                        .config
                        .nvml_library
                        .as_deref()
                        .unwrap_or(gpu::DEFAULT_LIBRARY),
                    GPU_VERDICT_WAIT.as_millis()
                ));
            }
        }
        let taken = shared::page().map_or(0, |s| s.samples.load(Relaxed));
        self.enc.push(&Record::End(End {
            t_ns: end_ns,
            samples: taken,
            dropped: self.input.queue.dropped(),
            truncated: self.truncated,
        }));
        self.flush_last();
    }
}
