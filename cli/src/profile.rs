//! Aggregates a trace into a [`Profile`]: time and memory per file and line, per
//! function, per thread.
//!
//! Samples are summed per stack id while streaming (no allocation or string hashing per
//! sample); names are resolved once per distinct stack at the end, because records may
//! reference definitions that come later in the file.
//!
//! A sample is charged to its stack's innermost Python frame (native frames come first
//! when native code was running, as in an extension module's allocation), or, in a stack
//! with no Python frame, to its innermost native frame outside the C library and the
//! loader: that function's file (source file or module) and line.

use crate::memory::{Footprint, Memory, MemoryAccumulator, Site};
use rprof_format::marks::{self, PYTHON_FINALIZING};
use rprof_format::{
    mode, read_trace_from, Counters, End, Exec, Frame, FuncKind, Header, Record, Trace, TraceError,
};
use rustc_hash::{FxHashMap, FxHashSet};
use std::io::Read;

/// Pseudo-file for samples with an empty stack (no frame at all: a thread before Python
/// runs, or native code the shim could not walk).
pub const NO_PYTHON_FRAME: &str = "<native>";
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
    fn add_sample(&mut self, exec: Exec, cpu_ns: u64, sys_ns: u64) {
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

    fn add(&mut self, o: &Times) {
        self.python_ns = self.python_ns.saturating_add(o.python_ns);
        self.native_ns = self.native_ns.saturating_add(o.native_ns);
        self.sys_ns = self.sys_ns.saturating_add(o.sys_ns);
        self.samples = self.samples.saturating_add(o.samples);
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LineProfile {
    /// 0 when the trace did not know the line.
    pub line: u32,
    pub times: Times,
    pub memory: Memory,
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
}

#[derive(Debug, Clone, PartialEq)]
pub struct ThreadProfile {
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
    /// The End record's time, else the last time seen in any record.
    pub elapsed_ns: u64,
    /// `None` when the process died before writing it.
    pub end: Option<End>,
    /// The latest allocator counters, if the trace has any.
    pub counters: Option<Counters>,
    pub footprint: Footprint,
    /// Named moments of the run (ns since the start, label), in time order.
    pub marks: Vec<(u64, String)>,
    /// What the reader found wrong with the file (each [`rprof_format::Damage`]'s text).
    pub damage: Vec<String>,
    /// Other things the report must mention (missing definitions, clamped samples, the
    /// shim's own warnings during the run, ...).
    pub warnings: Vec<String>,
    /// Why the trace stops early, when the shim said so (a full disk, the writer out of
    /// memory): the process was not killed, its trace could not be written further.
    pub stopped: Option<String>,
}

impl Profile {
    /// The process ended without rprof finishing its trace, and without saying why.
    pub fn killed(&self) -> bool {
        self.end.is_none() && self.stopped.is_none()
    }

    /// Whether memory was profiled (or the trace holds memory samples anyway).
    pub fn has_memory(&self) -> bool {
        self.header.modes & (mode::MEMORY | mode::COPY) != 0
            || self.footprint.alloc_samples > 0
            || self.footprint.copy_samples > 0
    }
}

/// Reads and aggregates a whole trace held in memory.
pub fn aggregate(data: &[u8]) -> Result<Profile, TraceError> {
    aggregate_from(data)
}

/// Reads and aggregates a trace as it streams in (a file, say), holding one chunk at a time.
pub fn aggregate_from(src: impl Read) -> Result<Profile, TraceError> {
    let mut acc = Accumulator::default();
    let trace = read_trace_from(src, |r| acc.visit(r))?;
    Ok(acc.finish(trace))
}

#[derive(Debug, Clone, Copy)]
struct FunctionDef {
    kind: FuncKind,
    name: u32,
    file: u32,
    first_line: u32,
}

/// Sums by stack id. Writers number stacks upward from 1, so small ids index a vector and
/// the per-sample path does no hashing; other ids fall back to a hash map.
#[derive(Default)]
struct IdTable {
    dense: Vec<Times>,
    sparse: FxHashMap<u32, Times>,
}

impl IdTable {
    const DENSE_IDS: u32 = 1 << 20;

    #[inline]
    fn get(&mut self, id: u32) -> &mut Times {
        if id >= Self::DENSE_IDS {
            return self.sparse.entry(id).or_default();
        }
        let i = id as usize;
        if i >= self.dense.len() {
            self.grow(i);
        }
        &mut self.dense[i]
    }

    #[cold]
    fn grow(&mut self, i: usize) {
        self.dense
            .resize((i + 1).next_power_of_two(), Times::default());
    }

    /// The ids that have samples.
    fn iter(&self) -> impl Iterator<Item = (u32, &Times)> {
        let dense = self.dense.iter().enumerate().map(|(i, t)| (i as u32, t));
        dense
            .filter(|(_, t)| t.samples > 0)
            .chain(self.sparse.iter().map(|(&i, t)| (i, t)))
    }
}

/// The streaming half: definitions by id and sums per stack id.
#[derive(Default)]
struct Accumulator {
    strings: FxHashMap<u32, String>,
    functions: FxHashMap<u32, FunctionDef>,
    stacks: FxHashMap<u32, Vec<Frame>>,
    thread_names: FxHashMap<u32, u32>,
    per_stack: IdTable,
    per_thread: FxHashMap<u32, Times>,
    total: Times,
    profiler_ns: u64,
    profiler_samples: u64,
    last_t_ns: u64,
    sys_clamped: u64,
    end: Option<End>,
    counters: Option<Counters>,
    memory: MemoryAccumulator,
    /// Time and label id of each mark.
    marks: Vec<(u64, u32)>,
}

impl Accumulator {
    #[inline]
    fn visit(&mut self, r: Record) {
        match r {
            // The profiler's own overhead: kept apart, charged to no line.
            Record::Cpu(s) if s.exec == Exec::Profiler => {
                self.profiler_ns = self.profiler_ns.saturating_add(s.cpu_ns);
                self.profiler_samples += 1;
                self.last_t_ns = self.last_t_ns.max(s.t_ns);
            }
            Record::Cpu(s) => {
                let sys = if s.sys_ns > s.cpu_ns {
                    self.sys_clamped += 1;
                    s.cpu_ns
                } else {
                    s.sys_ns
                };
                self.per_stack
                    .get(s.stack)
                    .add_sample(s.exec, s.cpu_ns, sys);
                self.per_thread
                    .entry(s.tid)
                    .or_default()
                    .add_sample(s.exec, s.cpu_ns, sys);
                self.total.add_sample(s.exec, s.cpu_ns, sys);
                self.last_t_ns = self.last_t_ns.max(s.t_ns);
            }
            // First definition wins: a writer never redefines an id with other content.
            Record::String { id, text } => {
                self.strings.entry(id).or_insert(text);
            }
            Record::Function {
                id,
                kind,
                name,
                file,
                first_line,
            } => {
                self.functions.entry(id).or_insert(FunctionDef {
                    kind,
                    name,
                    file,
                    first_line,
                });
            }
            Record::Stack { id, frames } => {
                self.stacks.entry(id).or_insert(frames);
            }
            // Threads rename themselves; the last name is the one users know.
            Record::Thread { tid, name } => {
                self.thread_names.insert(tid, name);
            }
            Record::Counters(c) => {
                self.last_t_ns = self.last_t_ns.max(c.t_ns);
                match self.counters {
                    Some(old) if old.t_ns > c.t_ns => {}
                    _ => self.counters = Some(c),
                }
                self.memory.counters(c);
            }
            Record::End(e) => self.end = Some(e),
            Record::Alloc(a) => {
                self.last_t_ns = self.last_t_ns.max(a.t_ns);
                self.memory.alloc(&a);
            }
            Record::Free(f) => {
                self.last_t_ns = self.last_t_ns.max(f.t_ns);
                self.memory.free(&f);
            }
            Record::Copy(c) => {
                self.last_t_ns = self.last_t_ns.max(c.t_ns);
                self.memory.copy(&c);
            }
            Record::Mark { t_ns, label } => self.marks.push((t_ns, label)),
            // Which run and how it ended: read by the launcher (`crate::launch`).
            Record::Process(_) | Record::Exit(_) => {}
        }
    }

    fn finish(self, trace: Trace) -> Profile {
        let mut warnings = Vec::new();
        let mut r = Resolver {
            stacks: &self.stacks,
            defs: &self.functions,
            names: Names {
                strings: &self.strings,
                missing: FxHashSet::default(),
            },
            files: FileTable::default(),
            funcs: FunctionTable::default(),
            missing_funcs: FxHashSet::default(),
        };
        let mut unknown_stacks = Times::default();
        let mut unknown_stack_ids = 0u64;
        let mut on_stack = Vec::new();

        for (stack_id, t) in self.per_stack.iter() {
            let Some(site) = r.site(stack_id) else {
                unknown_stacks.add(t);
                unknown_stack_ids += 1;
                let line = r.files.slot(UNDEFINED, 0, false);
                r.files.lines[line].times.add(t);
                continue;
            };
            r.files.lines[site.line].times.add(t);
            if let Some(f) = site.func {
                r.funcs.list[f].self_times.add(t);
            }
            // Recursion puts a function on the stack more than once; count it once.
            on_stack.clear();
            for f in self.stacks.get(&stack_id).into_iter().flatten() {
                let idx = r.function(f.func);
                if !on_stack.contains(&idx) {
                    on_stack.push(idx);
                    let f = &mut r.funcs.list[idx];
                    f.total_ns = f.total_ns.saturating_add(t.total_ns());
                }
            }
        }

        let elapsed_ns = self.end.map_or(self.last_t_ns, |e| e.t_ns);
        let mut unknown_memory_stacks = 0u64;
        let sites: Vec<Site> = self
            .memory
            .stack_ids()
            .map(|id| {
                r.site(id).unwrap_or_else(|| {
                    unknown_memory_stacks += 1;
                    Site {
                        line: r.files.slot(UNDEFINED, 0, false),
                        func: None,
                        python: false,
                    }
                })
            })
            .collect();
        let Resolver {
            mut names,
            files,
            funcs,
            missing_funcs,
            ..
        } = r;
        let mut marks: Vec<(u64, String)> = self
            .marks
            .iter()
            .map(|&(t, label)| (t, names.get(label)))
            .collect();
        marks.sort();
        let mut stopped = None;
        for (t, label) in &marks {
            let secs = *t as f64 / 1e9;
            if let Some(why) = label.strip_prefix(&format!("{}: ", marks::TRACE_STOPPED)) {
                stopped = Some(if *t > 0 {
                    format!("{why} (at {secs:.2} s)")
                } else {
                    why.to_owned()
                });
            } else if let Some(text) = label.strip_prefix(&format!("{}: ", marks::WARNING)) {
                warnings.push(format!("rprof warned in the profiled process: {text}"));
            } else if label == marks::EXEC {
                warnings.push(format!(
                    "the process exec'd another program at {secs:.2} s; that program's \
                     profile is in a trace of its own"
                ));
            }
        }
        let exit_ns = marks
            .iter()
            .find(|(_, label)| label == PYTHON_FINALIZING)
            .map_or(elapsed_ns, |&(t, _)| t);
        let replayed = self.memory.replay(
            &sites,
            files.lines.len(),
            funcs.list.len(),
            exit_ns,
            elapsed_ns,
        );
        let mut footprint = replayed.footprint;
        footprint.peak_at = replayed.peak_line.map(|l| files.location(l));
        if unknown_memory_stacks > 0 {
            warnings.push(format!(
                "{unknown_memory_stacks} stack ids used by memory samples are never defined in \
                 the trace; their memory is shown under {UNDEFINED}"
            ));
        }

        let base = self.total.share_base();
        if unknown_stack_ids > 0 {
            warnings.push(format!(
                "{unknown_stack_ids} stack ids used by samples are never defined in the trace; \
                 their {} ({} samples) is shown under {UNDEFINED}",
                share(unknown_stacks.total_ns(), base),
                unknown_stacks.samples,
            ));
        }
        if !missing_funcs.is_empty() {
            warnings.push(format!(
                "{} function ids used by stacks are never defined in the trace",
                missing_funcs.len()
            ));
        }
        if !names.missing.is_empty() {
            warnings.push(format!(
                "{} string ids used as names are never defined in the trace",
                names.missing.len()
            ));
        }
        if self.sys_clamped > 0 {
            warnings.push(format!(
                "{} samples had more system time than total time; their system time was \
                 capped at their total",
                self.sys_clamped
            ));
        }
        if let Some(e) = &self.end {
            if e.truncated > 0 {
                warnings.push(format!(
                    "{} samples had stacks deeper than the sampler walks: their outermost frames \
                     are missing, so inclusive (total) function times under-count",
                    e.truncated
                ));
            }
        }

        let mut threads: Vec<ThreadProfile> = self
            .per_thread
            .iter()
            .map(|(&tid, &times)| ThreadProfile {
                tid,
                name: self.thread_names.get(&tid).map(|&n| names.get(n)),
                times,
            })
            .collect();
        threads.sort_by(|a, b| {
            b.times
                .total_ns()
                .cmp(&a.times.total_ns())
                .then(a.tid.cmp(&b.tid))
        });

        let mut functions = funcs.list;
        for (f, m) in functions.iter_mut().zip(replayed.funcs) {
            f.memory = m;
        }
        functions.sort_by(|a, b| {
            (b.self_times.total_ns().cmp(&a.self_times.total_ns()))
                .then(b.total_ns.cmp(&a.total_ns))
                .then(b.memory.malloc_bytes.cmp(&a.memory.malloc_bytes))
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.file.cmp(&b.file))
                .then(a.first_line.cmp(&b.first_line))
        });

        Profile {
            elapsed_ns,
            header: trace.header,
            total: self.total,
            profiler_ns: self.profiler_ns,
            profiler_samples: self.profiler_samples,
            files: files.into_sorted(replayed.lines),
            functions,
            threads,
            end: self.end,
            counters: self.counters,
            footprint,
            marks,
            damage: trace.damage.iter().map(ToString::to_string).collect(),
            warnings,
            stopped,
        }
    }
}

/// "12.5% of sampled time", for warnings.
fn share(part: u64, base: f64) -> String {
    format!("{:.1}% of sampled time", percent(part, base))
}

/// `100 * part / base` (see [`Times::share_base`]), and 0 for an empty profile, not NaN.
pub fn percent(part: u64, base: f64) -> f64 {
    if base == 0.0 {
        0.0
    } else {
        100.0 * part as f64 / base
    }
}

/// String lookups that remember which ids were missing.
struct Names<'a> {
    strings: &'a FxHashMap<u32, String>,
    missing: FxHashSet<u32>,
}

impl Names<'_> {
    fn get(&mut self, id: u32) -> String {
        match self.strings.get(&id) {
            Some(s) => s.clone(),
            None => {
                self.missing.insert(id);
                format!("<string #{id}>")
            }
        }
    }
}

/// Functions by their resolved identity: two ids naming the same function merge.
#[derive(Default)]
struct FunctionTable {
    by_id: FxHashMap<u32, usize>,
    by_key: FxHashMap<(String, String, u32, u8), usize>,
    list: Vec<FunctionProfile>,
}

impl FunctionTable {
    fn index(
        &mut self,
        id: u32,
        defs: &FxHashMap<u32, FunctionDef>,
        names: &mut Names,
        missing: &mut FxHashSet<u32>,
    ) -> usize {
        if let Some(&i) = self.by_id.get(&id) {
            return i;
        }
        let (name, file, first_line, kind) = match defs.get(&id) {
            // The shim writes one record per native PC, with that PC's line as its first
            // line: the function itself is its name and file.
            Some(d) if d.kind == FuncKind::Native => {
                (names.get(d.name), names.get(d.file), 0, d.kind)
            }
            Some(d) => (names.get(d.name), names.get(d.file), d.first_line, d.kind),
            None => {
                missing.insert(id);
                (
                    format!("<function #{id}>"),
                    UNDEFINED.to_string(),
                    0,
                    FuncKind::Python,
                )
            }
        };
        let list = &mut self.list;
        let i = *self
            .by_key
            .entry((name.clone(), file.clone(), first_line, kind as u8))
            .or_insert_with(|| {
                list.push(FunctionProfile {
                    name,
                    file,
                    first_line,
                    kind,
                    self_times: Times::default(),
                    total_ns: 0,
                    memory: Memory::default(),
                });
                list.len() - 1
            });
        self.by_id.insert(id, i);
        i
    }
}

/// Line slots: one per (file, line), numbered in order of first use.
#[derive(Default)]
struct FileTable {
    by_path: FxHashMap<String, usize>,
    /// Path, and whether native code is charged to it.
    paths: Vec<(String, bool)>,
    by_line: FxHashMap<(usize, u32), usize>,
    lines: Vec<LineSlot>,
}

struct LineSlot {
    file: usize,
    line: u32,
    times: Times,
}

impl FileTable {
    fn slot(&mut self, path: &str, line: u32, native: bool) -> usize {
        let file = match self.by_path.get(path) {
            Some(&f) => f,
            None => {
                self.paths.push((path.to_string(), false));
                self.by_path.insert(path.to_string(), self.paths.len() - 1);
                self.paths.len() - 1
            }
        };
        self.paths[file].1 |= native;
        let lines = &mut self.lines;
        *self.by_line.entry((file, line)).or_insert_with(|| {
            lines.push(LineSlot {
                file,
                line,
                times: Times::default(),
            });
            lines.len() - 1
        })
    }

    fn location(&self, slot: usize) -> (String, u32) {
        let l = &self.lines[slot];
        (self.paths[l.file].0.clone(), l.line)
    }

    /// The files with their lines, given each line slot's memory.
    fn into_sorted(self, memory: Vec<Memory>) -> Vec<FileProfile> {
        let mut files: Vec<FileProfile> = self
            .paths
            .into_iter()
            .map(|(path, native)| FileProfile {
                path,
                native,
                times: Times::default(),
                lines: Vec::new(),
            })
            .collect();
        for (l, memory) in self.lines.into_iter().zip(memory) {
            let f = &mut files[l.file];
            f.times.add(&l.times);
            f.lines.push(LineProfile {
                line: l.line,
                times: l.times,
                memory,
            });
        }
        for f in &mut files {
            f.lines.sort_by_key(|l| l.line);
        }
        files.sort_by_cached_key(|f| {
            (
                std::cmp::Reverse(f.times.total_ns()),
                std::cmp::Reverse(f.malloc_bytes()),
                f.path.clone(),
            )
        });
        files
    }
}

/// Turns stack ids into the line and function they are charged to.
struct Resolver<'a> {
    stacks: &'a FxHashMap<u32, Vec<Frame>>,
    defs: &'a FxHashMap<u32, FunctionDef>,
    names: Names<'a>,
    files: FileTable,
    funcs: FunctionTable,
    missing_funcs: FxHashSet<u32>,
}

impl Resolver<'_> {
    fn function(&mut self, id: u32) -> usize {
        self.funcs
            .index(id, self.defs, &mut self.names, &mut self.missing_funcs)
    }

    /// A function never defined counts as Python, the frames it is found among.
    fn is_python(&self, id: u32) -> bool {
        !matches!(self.defs.get(&id), Some(d) if d.kind == FuncKind::Native)
    }

    /// Whether a native function lives in the C library, the loader or the kernel's vDSO
    /// (judged by its file: installed libraries, or glibc's own build paths). With no
    /// Python frame, time and memory go to the innermost frame outside them: the program's
    /// line that called malloc, rather than malloc's internals.
    fn is_system(&mut self, id: u32) -> bool {
        let Some(d) = self.defs.get(&id) else {
            return false;
        };
        if d.kind != FuncKind::Native {
            return false;
        }
        let file = self.names.get(d.file);
        const SYSTEM: [&str; 6] = [
            "/lib/",
            "/lib64/",
            "/usr/lib/",
            "/usr/include/",
            "./",
            "[vdso]",
        ];
        SYSTEM.iter().any(|p| file.starts_with(p))
    }

    /// Where a stack's samples are charged (module docs); `None` for a stack id that is
    /// never defined.
    fn site(&mut self, stack_id: u32) -> Option<Site> {
        let frames: &[Frame] = match self.stacks.get(&stack_id) {
            Some(f) => f,
            None if stack_id == 0 => &[],
            None => return None,
        };
        let python = frames.iter().position(|f| self.is_python(f.func));
        let charged = python.or_else(|| frames.iter().position(|f| !self.is_system(f.func)));
        let Some(frame) = frames.get(charged.unwrap_or(0)) else {
            return Some(Site {
                line: self.files.slot(NO_PYTHON_FRAME, 0, false),
                func: None,
                python: false,
            });
        };
        let func = self.function(frame.func);
        let f = &self.funcs.list[func];
        let (file, native) = (f.file.clone(), f.kind == FuncKind::Native);
        let line = match (frame.line, self.defs.get(&frame.func)) {
            (0, Some(d)) if native => d.first_line,
            (line, _) => line,
        };
        Some(Site {
            line: self.files.slot(&file, line, native),
            func: Some(func),
            python: python.is_some(),
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use rprof_format::CpuSample;

    fn profile(records: Vec<Record>) -> Profile {
        let mut acc = Accumulator::default();
        records.into_iter().for_each(|r| acc.visit(r));
        acc.finish(Trace {
            header: Header::default(),
            damage: Vec::new(),
            chunks: 0,
            bytes: 0,
        })
    }

    fn sample(stack: u32, cpu_ns: u64, sys_ns: u64, exec: Exec) -> Record {
        Record::Cpu(CpuSample {
            t_ns: 5,
            tid: 1,
            stack,
            cpu_ns,
            sys_ns,
            exec,
        })
    }

    fn names() -> Vec<Record> {
        vec![
            Record::String {
                id: 1,
                text: "a.py".into(),
            },
            Record::String {
                id: 2,
                text: "f".into(),
            },
            Record::String {
                id: 3,
                text: "g".into(),
            },
            Record::Function {
                id: 1,
                kind: FuncKind::Python,
                name: 2,
                file: 1,
                first_line: 1,
            },
            Record::Function {
                id: 2,
                kind: FuncKind::Python,
                name: 3,
                file: 1,
                first_line: 5,
            },
        ]
    }

    #[test]
    fn recursion_counts_once_toward_total_time() {
        let mut r = names();
        let frames = [(1, 2), (2, 6), (1, 3), (1, 3)].map(|(func, line)| Frame { func, line });
        r.push(Record::Stack {
            id: 9,
            frames: frames.to_vec(),
        });
        r.push(sample(9, 100, 0, Exec::Python));
        let p = profile(r);
        let f = &p.functions;
        assert_eq!(
            (f[0].name.as_str(), f[0].self_times.python_ns, f[0].total_ns),
            ("f", 100, 100)
        );
        assert_eq!(
            (
                f[1].name.as_str(),
                f[1].self_times.total_ns(),
                f[1].total_ns
            ),
            ("g", 0, 100)
        );
        assert_eq!(
            p.files[0].lines,
            [LineProfile {
                line: 2,
                times: p.total,
                memory: Memory::default()
            }]
        );
    }

    #[test]
    fn ids_that_name_the_same_function_merge() {
        let mut r = names();
        r.push(Record::Function {
            id: 7,
            kind: FuncKind::Python,
            name: 2,
            file: 1,
            first_line: 1,
        });
        r.push(Record::Stack {
            id: 1,
            frames: vec![Frame { func: 1, line: 2 }],
        });
        r.push(Record::Stack {
            id: 2,
            frames: vec![Frame { func: 7, line: 2 }],
        });
        r.extend([
            sample(1, 10, 0, Exec::Python),
            sample(2, 30, 0, Exec::Native),
        ]);
        let p = profile(r);
        assert_eq!(p.functions.len(), 1);
        assert_eq!(
            (
                p.functions[0].self_times.python_ns,
                p.functions[0].self_times.native_ns
            ),
            (10, 30)
        );
        assert_eq!(p.files[0].lines.len(), 1);
    }

    #[test]
    fn missing_definitions_are_named_and_warned_about() {
        let r = vec![
            Record::Stack {
                id: 1,
                frames: vec![Frame { func: 4, line: 2 }],
            },
            Record::Function {
                id: 5,
                kind: FuncKind::Native,
                name: 40,
                file: 41,
                first_line: 0,
            },
            Record::Stack {
                id: 2,
                frames: vec![Frame { func: 5, line: 0 }],
            },
            sample(1, 10, 0, Exec::Python),
            sample(2, 10, 0, Exec::Native),
            sample(3, 20, 0, Exec::Python),
            sample(0, 60, 0, Exec::Native),
        ];
        let p = profile(r);
        let files: Vec<(&str, u64)> = p
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.times.total_ns()))
            .collect();
        assert_eq!(
            files,
            [(NO_PYTHON_FRAME, 60), (UNDEFINED, 30), ("<string #41>", 10)]
        );
        let mut names: Vec<&str> = p.functions.iter().map(|f| f.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["<function #4>", "<string #40>"]);
        assert_eq!(p.warnings.len(), 3, "{:?}", p.warnings);
        assert!(p.warnings[0].starts_with("1 stack ids used by samples are never defined"));
        assert!(p.warnings[0].contains("20.0% of sampled time (1 samples)"));
        assert!(p.warnings[1].starts_with("1 function ids"));
        assert!(p.warnings[2].starts_with("2 string ids"));
        assert!(p.killed());
    }

    #[test]
    fn system_time_is_capped_at_the_sample_time() {
        let p = profile(vec![
            sample(0, 10, 15, Exec::Python),
            sample(0, 10, 4, Exec::Native),
        ]);
        assert_eq!(
            p.total,
            Times {
                python_ns: 0,
                native_ns: 6,
                sys_ns: 14,
                samples: 2
            }
        );
        assert_eq!(p.warnings.len(), 1);
    }

    #[test]
    fn elapsed_time_comes_from_the_end_record_else_the_last_record() {
        let mut r = vec![sample(0, 10, 0, Exec::Python)];
        r.push(Record::Counters(Counters {
            t_ns: 90,
            peak_live_bytes: 7,
            ..Default::default()
        }));
        r.push(Record::Counters(Counters {
            t_ns: 40,
            peak_live_bytes: 3,
            ..Default::default()
        }));
        let p = profile(r.clone());
        assert_eq!(
            (p.elapsed_ns, p.counters.map(|c| c.peak_live_bytes)),
            (90, Some(7))
        );
        r.push(Record::End(End {
            t_ns: 1000,
            ..Default::default()
        }));
        assert_eq!(profile(r).elapsed_ns, 1000);
    }

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
    }
}
