//! The writer thread: drains the event queue, resolves code objects to functions and
//! lines, interns strings and stacks, and appends checksummed chunks to the trace. All the
//! heavy work of the shim happens here, never in the program's threads.

use crate::codes::Span;
use crate::log;
use crate::queue::{Event, UNKNOWN_CODE};
use crate::runtime::Runtime;
use crate::{counters, python, real, sampler};
use rprof_format::{encode_header, CpuSample, Encoder, End, Exec, Frame, FuncKind, Header, Record};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);
static THREAD: AtomicUsize = AtomicUsize::new(0);

/// Chunks are also cut when they grow this large, between periodic flushes.
const MAX_CHUNK: usize = 256 << 10;
const POLL: Duration = Duration::from_millis(5);

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
    sink: Sink,
    enc: Encoder,
    strings: HashMap<String, u32>,
    funcs: HashMap<(u32, u32, u32), u32>,
    codes: Vec<Option<Code>>,
    unknown_func: Option<u32>,
    stacks: HashMap<Vec<Frame>, u32>,
    threads: HashSet<u32>,
    frames: Vec<Frame>,
    samples: u64,
    truncated: u64,
}

/// Starts the writer thread. With `eager`, the trace is created now, and false is returned
/// (after a warning) if it cannot be.
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
    let w = Box::new(Writer {
        rt,
        sink,
        enc: Encoder::new(),
        strings: HashMap::new(),
        funcs: HashMap::new(),
        codes: Vec::new(),
        unknown_func: None,
        stacks: HashMap::new(),
        threads: HashSet::new(),
        frames: Vec::with_capacity(64),
        samples: 0,
        truncated: 0,
    });
    STOP.store(false, Relaxed);
    unsafe {
        // The thread inherits a mask with every signal blocked: the program's signals go to
        // its own threads, and the writer is never sampled.
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let mut t: libc::pthread_t = 0;
        let arg = Box::into_raw(w);
        let rc = real::pthread_create(&mut t, std::ptr::null(), writer_main, arg.cast());
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if rc != 0 {
            drop(Box::from_raw(arg));
            log::warn("cannot start the trace writer thread; this process runs unprofiled");
            return false;
        }
        THREAD.store(t as usize, Release);
    }
    true
}

/// Asks the writer to drain, write the end record and close; returns the samples written,
/// or None when no trace file was written.
pub fn stop() -> Option<u64> {
    STOP.store(true, Release);
    let t = THREAD.swap(0, AcqRel);
    if t == 0 {
        return None;
    }
    let mut ret: *mut libc::c_void = std::ptr::null_mut();
    unsafe { libc::pthread_join(t as libc::pthread_t, &mut ret) };
    // The thread returns samples + 1, or 0 when it wrote no file.
    (ret as u64).checked_sub(1)
}

extern "C" fn writer_main(arg: *mut libc::c_void) -> *mut libc::c_void {
    let mut w = unsafe { Box::from_raw(arg as *mut Writer) };
    unsafe { libc::prctl(libc::PR_SET_NAME, c"rprof-writer".as_ptr()) };
    let flush_every = Duration::from_millis(w.rt.config.flush_ms);
    let mut last_flush = Instant::now();
    loop {
        let stopping = STOP.load(Acquire);
        w.drain();
        if stopping {
            // Producers on other threads may still be finishing a claimed slot.
            std::thread::sleep(Duration::from_millis(2));
            w.drain();
            w.finish();
            let written = if w.sink.file.is_some() {
                w.samples + 1
            } else {
                0
            };
            return written as *mut libc::c_void;
        }
        if last_flush.elapsed() >= flush_every || w.enc.len() >= MAX_CHUNK {
            w.flush();
            last_flush = Instant::now();
        }
        std::thread::sleep(POLL);
    }
}

impl Writer {
    fn drain(&mut self) {
        let rt = self.rt;
        while rt.queue.pop(|ev| self.on_event(ev)) {}
    }

    fn on_event(&mut self, ev: &Event) {
        if !self.threads.contains(&ev.tid) {
            self.threads.insert(ev.tid);
            let comm = std::fs::read_to_string(format!("/proc/self/task/{}/comm", ev.tid));
            let name = self.string(comm.as_deref().unwrap_or("").trim_end());
            self.enc.push(&Record::Thread { tid: ev.tid, name });
        }
        let mut frames = std::mem::take(&mut self.frames);
        frames.clear();
        for f in &ev.frames[..ev.depth as usize] {
            frames.push(self.frame(f.code, f.addrq));
        }
        let stack = self.stack(&frames);
        self.frames = frames;
        self.truncated += u64::from(ev.truncated);
        self.samples += 1;
        self.enc.push(&Record::Cpu(CpuSample {
            t_ns: ev.t_ns,
            tid: ev.tid,
            stack,
            cpu_ns: ev.cpu_ns,
            sys_ns: ev.sys_ns,
            exec: if ev.python {
                Exec::Python
            } else {
                Exec::Native
            },
        }));
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

    fn function(&mut self, name: &str, file: &str, first_line: u32) -> u32 {
        let key = (self.string(name), self.string(file), first_line);
        if let Some(&id) = self.funcs.get(&key) {
            return id;
        }
        let id = self.funcs.len() as u32;
        self.funcs.insert(key, id);
        self.enc.push(&Record::Function {
            id,
            kind: FuncKind::Python,
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
                    let f = self.function("<unknown>", "<unknown>", 0);
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
            let func = self.function(&name, &file, first_line.max(0) as u32);
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
        let c = counters::snapshot();
        self.enc.push(&Record::Counters(rprof_format::Counters {
            t_ns: self.rt.elapsed_ns(),
            allocs: c.allocs,
            frees: c.frees,
            alloc_bytes: c.alloc_bytes,
            live_bytes: c.live_bytes,
            peak_live_bytes: c.peak_live_bytes,
        }));
    }

    fn flush(&mut self) {
        self.counters();
        if self.samples > 0 {
            self.sink.open();
        }
        if let Some(chunk) = self.enc.finish_chunk() {
            self.sink.write(chunk);
        }
        self.enc.clear();
    }

    fn finish(&mut self) {
        self.enc.push(&Record::End(End {
            t_ns: self.rt.elapsed_ns(),
            samples: sampler::SAMPLES.load(Relaxed),
            dropped: self.rt.queue.dropped(),
            truncated: self.truncated,
        }));
        self.flush();
    }
}
