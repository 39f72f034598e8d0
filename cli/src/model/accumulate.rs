//! The streaming accumulation: reads trace records one at a time into sums per stack (one
//! stack-id index for CPU and memory samples alike), then, once every definition is known,
//! resolves each distinct stack once, charges it ([`super::charge`]), replays memory
//! ([`super::memory`]) and builds the [`Profile`].
//!
//! The per-sample path does no allocation or string hashing: a stack id indexes a vector
//! (writers number stacks upward from 1) that gives the stack's slot; a CPU sample adds
//! to its thread's vector of times by slot, a memory sample to the slot's sums. Stacks'
//! and threads' totals are summed from those at the end. Names are resolved at the end
//! too, because records may reference definitions that come later in the file.

use super::charge::{
    frame_line, Charging, FileTable, FunctionDef, FunctionTable, Names, Resolver, Site,
};
use super::debug_lines::DebugLines;
use super::figures::percent;
use super::gpu::GpuAccumulator;
use super::memory::{MemoryAccumulator, StackTotals};
use super::types::{
    ChargeSummary, LineGpu, Profile, StackFrame, StackMemory, StackProfile, StackThread, Stacks,
    ThreadProfile, Times, NATIVE_THREADS, NO_PYTHON_FRAME, START_UP, TEARDOWN, UNDEFINED,
};
use rprof_format::marks::{self, PYTHON_FINALIZING};
use rprof_format::{
    read_trace_from, AllocSample, CopySample, Counters, End, Exec, Frame, Record, ShortLived,
    Trace, TraceError,
};
use rustc_hash::{FxHashMap, FxHashSet};
use std::io::Read;

/// Reads and aggregates a whole trace held in memory.
pub fn aggregate(data: &[u8]) -> Result<Profile, TraceError> {
    aggregate_from(data)
}

/// Reads and aggregates a trace as it streams in (a file, say), holding one chunk at a time,
/// charging library samples to the program's own lines (the default [`Charging`]).
pub fn aggregate_from(src: impl Read) -> Result<Profile, TraceError> {
    aggregate_charged(src, Charging::default())
}

/// [`aggregate_from`] with the given charging policy.
pub fn aggregate_charged(src: impl Read, charging: Charging) -> Result<Profile, TraceError> {
    let mut acc = Accumulator::charged(charging);
    let trace = read_trace_from(src, |r| acc.visit(r))?;
    Ok(acc.finish(trace))
}

/// The one stack-id index: stack id to the stack's slot in [`Accumulator::stacks`]. Small
/// ids index a vector (with `NO_SLOT` for none yet); other ids fall back to a hash map.
#[derive(Default)]
struct StackIndex {
    dense: Vec<u32>,
    sparse: FxHashMap<u32, u32>,
}

const NO_SLOT: u32 = u32::MAX;

impl StackIndex {
    const DENSE_IDS: u32 = 1 << 20;

    /// The slot of stack `id`, made (pushed onto `slots`) on first use.
    #[inline]
    fn slot(&mut self, id: u32, slots: &mut Vec<StackSums>) -> u32 {
        if id >= Self::DENSE_IDS {
            return *self.sparse.entry(id).or_insert_with(|| new_slot(id, slots));
        }
        let i = id as usize;
        if i >= self.dense.len() {
            self.grow(i);
        }
        if self.dense[i] == NO_SLOT {
            self.dense[i] = new_slot(id, slots);
        }
        self.dense[i]
    }

    #[cold]
    fn grow(&mut self, i: usize) {
        self.dense.resize((i + 1).next_power_of_two(), NO_SLOT);
    }
}

#[cold]
fn new_slot(id: u32, slots: &mut Vec<StackSums>) -> u32 {
    slots.push(StackSums {
        id,
        memory: StackTotals::default(),
        phase: Phase::Run,
    });
    (slots.len() - 1) as u32
}

/// What memory samples of one stack add up to (its CPU time is in [`ThreadTables`]).
struct StackSums {
    id: u32,
    memory: StackTotals,
    /// For the time of a stack without any frame: when (or where) it was sampled.
    phase: Phase,
}

/// When a sample with no frame at all was taken, which says what its thread was doing
/// ([`Phase::classify`]); every other sample is [`Phase::Run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Phase {
    Run,
    StartUp,
    Teardown,
    NativeThread,
}

impl Phase {
    /// The pseudo-file the phase's frameless time is shown under.
    fn file(self) -> &'static str {
        match self {
            Phase::Run => NO_PYTHON_FRAME,
            Phase::StartUp => START_UP,
            Phase::Teardown => TEARDOWN,
            Phase::NativeThread => NATIVE_THREADS,
        }
    }

    /// A frameless sample at `t_ns` in a thread of a process whose first Python frame was
    /// sampled at `first_python` and whose interpreter began finalizing at `finalizing`:
    /// teardown from the finalizing mark on, start-up before the first Python frame, and,
    /// in between, a thread that never ran Python code is a native thread (a library's
    /// worker); what is left (the main thread between Python frames) stays unexplained.
    /// A process that never ran Python is not split.
    fn classify(
        t_ns: u64,
        first_python: Option<u64>,
        finalizing: Option<u64>,
        thread_ran_python: bool,
    ) -> Phase {
        let Some(first) = first_python else {
            return Phase::Run;
        };
        if finalizing.is_some_and(|f| t_ns >= f) {
            Phase::Teardown
        } else if t_ns < first {
            Phase::StartUp
        } else if !thread_ran_python {
            Phase::NativeThread
        } else {
            Phase::Run
        }
    }
}

/// A CPU sample of a stack without frames, kept until the end, when its phase is known.
struct Frameless {
    t_ns: u64,
    tid: u32,
    slot: u32,
    exec: Exec,
    cpu_ns: u64,
    sys_ns: u64,
}

/// A memory sample of a stack without frames, kept until the end, when its phase is known
/// (its live-bytes changes meanwhile name a pending slot, [`PENDING`] + its index).
struct FramelessMemory {
    t_ns: u64,
    tid: u32,
    slot: u32,
    sample: MemorySample,
}

enum MemorySample {
    Alloc(AllocSample),
    Copy(CopySample),
    ShortLived(ShortLived),
}

/// The thread of a frameless memory sample whose thread is not known (a `ShortLived`
/// record folds blocks of one stack from any thread): its phase is told by its time alone,
/// never "native threads".
const ANY_THREAD: u32 = u32::MAX;

/// Marks a stack slot of the memory replay as a frameless memory sample's, pending its
/// phase: no run has 2^31 stack slots.
const PENDING: u32 = 1 << 31;

/// What a stack slot's frames are, for the phases: not known yet, none at all, with a
/// Python frame, only native ones.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Unknown,
    Empty,
    Python,
    Native,
}

/// CPU time by thread and stack slot: per thread, a vector indexed by slot (slots are
/// numbered in order of first use, so the vectors stay dense), within a budget of entries
/// for all threads together; past it (very many threads, each in very many stacks), a
/// map by slot.
#[derive(Default)]
struct ThreadTables {
    threads: Vec<ThreadTable>,
    by_tid: FxHashMap<u32, usize>,
    /// The thread of the last sample: samples come in runs from one thread.
    last: usize,
    dense_entries: usize,
}

struct ThreadTable {
    tid: u32,
    dense: Vec<Times>,
    sparse: FxHashMap<u32, Times>,
}

impl ThreadTables {
    /// 4 Mi entries of 32 bytes: 128 MiB at most.
    const DENSE_BUDGET: usize = 1 << 22;

    #[inline]
    fn times(&mut self, tid: u32, slot: u32) -> &mut Times {
        if self.threads.get(self.last).is_none_or(|t| t.tid != tid) {
            self.last = self.find(tid);
        }
        let t = self.last;
        let i = slot as usize;
        if i >= self.threads[t].dense.len() && !self.grow(t, i) {
            return self.threads[t].sparse.entry(slot).or_default();
        }
        &mut self.threads[t].dense[i]
    }

    #[cold]
    fn find(&mut self, tid: u32) -> usize {
        let threads = &mut self.threads;
        *self.by_tid.entry(tid).or_insert_with(|| {
            threads.push(ThreadTable {
                tid,
                dense: Vec::new(),
                sparse: FxHashMap::default(),
            });
            threads.len() - 1
        })
    }

    /// Makes room for slot `i` in thread `t`'s vector, if the budget allows.
    #[cold]
    fn grow(&mut self, t: usize, i: usize) -> bool {
        let dense = &mut self.threads[t].dense;
        let len = (i + 1).next_power_of_two();
        let extra = len - dense.len();
        if self.dense_entries + extra > Self::DENSE_BUDGET {
            return false;
        }
        self.dense_entries += extra;
        dense.resize(len, Times::default());
        true
    }

    /// Per thread: its id and its times by slot (those with samples).
    fn iter(&self) -> impl Iterator<Item = (u32, impl Iterator<Item = (usize, &Times)>)> {
        self.threads.iter().map(|t| {
            let dense = t.dense.iter().enumerate().filter(|(_, v)| v.samples > 0);
            let sparse = t.sparse.iter().map(|(&i, v)| (i as usize, v));
            (t.tid, dense.chain(sparse))
        })
    }
}

/// The streaming half: definitions by id and sums per stack.
#[derive(Default)]
pub(super) struct Accumulator {
    strings: FxHashMap<u32, String>,
    functions: FxHashMap<u32, FunctionDef>,
    stacks: FxHashMap<u32, Vec<Frame>>,
    thread_names: FxHashMap<u32, u32>,
    index: StackIndex,
    slots: Vec<StackSums>,
    cpu: ThreadTables,
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
    charging: Charging,
    gpu: GpuAccumulator,
    /// Per stack slot, its [`Shape`].
    shapes: Vec<Shape>,
    /// Per thread, the time of its first sample with a Python frame.
    first_python: FxHashMap<u32, u64>,
    /// CPU samples with no frame, charged at the end by [`Phase`].
    frameless: Vec<Frameless>,
    /// Memory samples with no frame, likewise.
    frameless_memory: Vec<FramelessMemory>,
    /// A merged run's processes: each thread's pid, and when each process began
    /// finalizing (one trace: its header's pid and its own mark).
    processes: Option<Processes>,
    /// The lines of native PCs the writer named without DWARF (the C library's).
    debug_lines: DebugLines,
    /// String ids for the source files found there, counting down from the top.
    debug_files: FxHashMap<String, u32>,
}

/// For the phases of a merged run: which process each thread is of, and when each
/// process's interpreter began finalizing (on the run's clock).
#[derive(Default)]
pub(super) struct Processes {
    pub(super) tid_pid: FxHashMap<u32, u32>,
    pub(super) finalizing: FxHashMap<u32, u64>,
}

impl Accumulator {
    /// An empty accumulator that charges by `charging`.
    pub(super) fn charged(charging: Charging) -> Accumulator {
        Accumulator {
            charging,
            ..Accumulator::default()
        }
    }

    #[inline]
    fn slot(&mut self, stack: u32) -> u32 {
        self.index.slot(stack, &mut self.slots)
    }

    /// For a merged run: the records visited next are process `p`'s (in the run's
    /// order), and whether any of the run's traces has GPU readings.
    pub(super) fn set_process(&mut self, p: u32, gpu: bool) {
        self.gpu.set_process(p, gpu);
    }

    /// For a merged run: its threads' processes and their finalizing marks.
    pub(super) fn set_processes(&mut self, processes: Processes) {
        self.processes = Some(processes);
    }

    /// The shape of stack slot `slot`'s frames, worked out once the stack is defined.
    #[inline]
    fn shape(&mut self, slot: u32, stack: u32) -> Shape {
        let i = slot as usize;
        if i >= self.shapes.len() {
            self.shapes.resize(i + 1, Shape::Unknown);
        }
        if self.shapes[i] == Shape::Unknown {
            self.shapes[i] = self.shape_of(stack);
        }
        self.shapes[i]
    }

    #[cold]
    fn shape_of(&self, stack: u32) -> Shape {
        let frames = match self.stacks.get(&stack) {
            Some(f) => f.as_slice(),
            None if stack == 0 => &[],
            None => return Shape::Unknown,
        };
        if frames.is_empty() {
            return Shape::Empty;
        }
        // A function not defined (yet) counts as Python, as the charging has it.
        let native = |f: &Frame| matches!(self.functions.get(&f.func), Some(d) if d.kind == rprof_format::FuncKind::Native);
        if !frames.iter().all(native) {
            return Shape::Python;
        }
        // Only the C library and the loader (the dynamic loader before the program runs, a
        // C library stack not stepped out of): nothing of the program's to charge it to,
        // so its time is frameless time, whether or not the library's debug file gives it
        // lines (which may come after the samples: `native_address`).
        let system = |f: &Frame| {
            self.functions.get(&f.func).is_some_and(|d| {
                self.strings
                    .get(&d.file)
                    .is_some_and(|file| super::charge::is_system_file(file))
            })
        };
        if frames.iter().all(system) {
            Shape::Empty
        } else {
            Shape::Native
        }
    }

    /// For a merged run: memory events in time order across its processes.
    pub(super) fn sort_memory_by_time(&mut self) {
        self.memory.sort_by_time();
    }

    /// A string the trace defined (so far), by id.
    pub(super) fn string(&self, id: u32) -> Option<&str> {
        self.strings.get(&id).map(String::as_str)
    }

    #[inline]
    pub(super) fn visit(&mut self, r: Record) {
        match r {
            // The profiler's own overhead: kept apart, charged to no line.
            Record::Cpu(s) if s.exec == Exec::Profiler => {
                self.memory.cpu_sample(s.t_ns, s.cpu_ns, s.sys_ns);
                self.profiler_ns = self.profiler_ns.saturating_add(s.cpu_ns);
                self.profiler_samples += 1;
                self.last_t_ns = self.last_t_ns.max(s.t_ns);
            }
            Record::Cpu(s) => {
                self.memory.cpu_sample(s.t_ns, s.cpu_ns, s.sys_ns);
                let sys = if s.sys_ns > s.cpu_ns {
                    self.sys_clamped += 1;
                    s.cpu_ns
                } else {
                    s.sys_ns
                };
                let slot = self.slot(s.stack);
                match self.shape(slot, s.stack) {
                    Shape::Empty => self.frameless.push(Frameless {
                        t_ns: s.t_ns,
                        tid: s.tid,
                        slot,
                        exec: s.exec,
                        cpu_ns: s.cpu_ns,
                        sys_ns: sys,
                    }),
                    shape => {
                        if shape == Shape::Python {
                            self.python_seen(s.tid, s.t_ns);
                        }
                        self.cpu
                            .times(s.tid, slot)
                            .add_sample(s.exec, s.cpu_ns, sys);
                    }
                }
                self.total.add_sample(s.exec, s.cpu_ns, sys);
                self.gpu.sample(s.t_ns, s.tid, slot);
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
                let slot = self.slot(a.stack);
                match self.shape(slot, a.stack) {
                    Shape::Empty => {
                        let pending = PENDING | self.frameless_memory.len() as u32;
                        self.memory.alloc(&a, pending);
                        self.frameless_memory.push(FramelessMemory {
                            t_ns: a.t_ns,
                            tid: a.tid,
                            slot,
                            sample: MemorySample::Alloc(a),
                        });
                    }
                    shape => {
                        if shape == Shape::Python {
                            self.python_seen(a.tid, a.t_ns);
                        }
                        self.slots[slot as usize].memory.alloc(&a);
                        self.memory.alloc(&a, slot);
                    }
                }
            }
            Record::Free(f) => {
                self.last_t_ns = self.last_t_ns.max(f.t_ns);
                self.memory.free(&f);
            }
            Record::ShortLived(f) => {
                self.last_t_ns = self.last_t_ns.max(f.t_ns.saturating_add(f.span_ns));
                let slot = self.slot(f.stack);
                if self.shape(slot, f.stack) == Shape::Empty {
                    let pending = PENDING | self.frameless_memory.len() as u32;
                    self.memory.short_lived(&f, pending);
                    self.frameless_memory.push(FramelessMemory {
                        t_ns: f.t_ns,
                        // Folded blocks may be of several threads: phased by time alone.
                        tid: ANY_THREAD,
                        slot,
                        sample: MemorySample::ShortLived(f),
                    });
                } else {
                    self.slots[slot as usize].memory.short_lived(&f);
                    self.memory.short_lived(&f, slot);
                }
            }
            Record::Copy(c) => {
                self.last_t_ns = self.last_t_ns.max(c.t_ns);
                let slot = self.slot(c.stack);
                if self.shape(slot, c.stack) == Shape::Empty {
                    self.frameless_memory.push(FramelessMemory {
                        t_ns: c.t_ns,
                        tid: c.tid,
                        slot,
                        sample: MemorySample::Copy(c),
                    });
                } else {
                    self.slots[slot as usize].memory.copy(&c);
                }
                self.memory.copy();
            }
            Record::Mark { t_ns, label } => self.marks.push((t_ns, label)),
            // Which run and how it ended: read by the launcher (`crate::launch`).
            Record::Process(_) | Record::Exit(_) => {}
            Record::GpuDevice(d) => self.gpu.device(d),
            Record::NativeAddress {
                func,
                build_id,
                addr,
            } => self.native_address(func, build_id, addr),
            Record::Gpu(g) => {
                self.last_t_ns = self.last_t_ns.max(g.t_ns);
                self.gpu.reading(g);
            }
        }
    }

    /// Gives native function `func`, which the writer named with no line, the file and
    /// line its debug file has for its PC (see [`DebugLines`]).
    #[cold]
    fn native_address(&mut self, func: u32, build_id: u32, addr: u64) {
        if !self
            .functions
            .get(&func)
            .is_some_and(|d| d.kind == rprof_format::FuncKind::Native && d.first_line == 0)
        {
            return;
        }
        let Some(id) = self.strings.get(&build_id) else {
            return;
        };
        let Some((file, line)) = self.debug_lines.line(id, addr) else {
            return;
        };
        let next = u32::MAX - self.debug_files.len() as u32;
        let file_id = *self.debug_files.entry(file).or_insert_with_key(|file| {
            self.strings.insert(next, file.clone());
            next
        });
        if let Some(d) = self.functions.get_mut(&func) {
            d.file = file_id;
            d.first_line = line;
        }
    }

    /// Thread `tid` ran a Python frame at `t_ns` (a sample with one).
    #[inline]
    fn python_seen(&mut self, tid: u32, t_ns: u64) {
        let first = self.first_python.entry(tid).or_insert(t_ns);
        *first = (*first).min(t_ns);
    }

    /// Charges the frameless CPU and memory samples by [`Phase`], each phase of a stack in
    /// a slot of its own.
    fn charge_frameless(&mut self, pid: u32, marks: &[(u64, u32)]) {
        let processes = self.processes.take().unwrap_or_else(|| {
            let mut p = Processes::default();
            let finalizing = marks
                .iter()
                .filter(|&&(_, label)| self.string(label) == Some(PYTHON_FINALIZING))
                .map(|&(t, _)| t)
                .min();
            if let Some(t) = finalizing {
                p.finalizing.insert(pid, t);
            }
            p
        });
        let pid_of = |tid: u32| processes.tid_pid.get(&tid).copied().unwrap_or(pid);
        let mut first_python: FxHashMap<u32, u64> = FxHashMap::default();
        for (&tid, &t) in &self.first_python {
            let first = first_python.entry(pid_of(tid)).or_insert(t);
            *first = (*first).min(t);
        }
        let mut phase_slots: FxHashMap<(u32, Phase), u32> = FxHashMap::default();
        // The slot of a frameless sample of stack slot `slot`, thread `tid`, at `t_ns`.
        let mut phase_slot = |slots: &mut Vec<StackSums>, t_ns: u64, tid: u32, slot: u32| {
            let p = pid_of(tid);
            let phase = Phase::classify(
                t_ns,
                first_python.get(&p).copied(),
                processes.finalizing.get(&p).copied(),
                tid == ANY_THREAD || self.first_python.contains_key(&tid),
            );
            if phase == Phase::Run {
                return slot;
            }
            let id = slots[slot as usize].id;
            *phase_slots.entry((id, phase)).or_insert_with(|| {
                slots.push(StackSums {
                    id,
                    memory: StackTotals::default(),
                    phase,
                });
                (slots.len() - 1) as u32
            })
        };
        for f in std::mem::take(&mut self.frameless) {
            let slot = phase_slot(&mut self.slots, f.t_ns, f.tid, f.slot);
            self.cpu
                .times(f.tid, slot)
                .add_sample(f.exec, f.cpu_ns, f.sys_ns);
        }
        // Memory follows the same split: the sums go to the phase's slot, and the pending
        // live-bytes changes (an allocation and its free) to that slot too.
        let mut pending = Vec::with_capacity(self.frameless_memory.len());
        for m in std::mem::take(&mut self.frameless_memory) {
            let slot = phase_slot(&mut self.slots, m.t_ns, m.tid, m.slot);
            let sums = &mut self.slots[slot as usize].memory;
            match &m.sample {
                MemorySample::Alloc(a) => sums.alloc(a),
                MemorySample::Copy(c) => sums.copy(c),
                MemorySample::ShortLived(f) => sums.short_lived(f),
            }
            pending.push(slot);
        }
        if !pending.is_empty() {
            self.memory.reslot(|s| {
                if s & PENDING != 0 {
                    pending[(s & !PENDING) as usize]
                } else {
                    s
                }
            });
        }
    }

    pub(super) fn finish(mut self, trace: Trace) -> Profile {
        let marks = std::mem::take(&mut self.marks);
        self.charge_frameless(trace.header.pid, &marks);
        self.marks = marks;
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
            charging: &self.charging,
            own: FxHashMap::default(),
        };
        let mut charged = ChargeSummary::default();
        let mut unknown_stacks = Times::default();
        let (mut unknown_stack_ids, mut unknown_memory_stacks) = (0u64, 0u64);
        let mut on_stack = Vec::new();
        let mut sites = Vec::with_capacity(self.slots.len());
        // Distinct frames, as (function slot, line): the stacks' frame table.
        let mut frames = FrameTable::default();
        let mut stack_frames = Vec::with_capacity(self.slots.len());

        // Per slot, its CPU time in all and per thread; per thread, its CPU time.
        let mut slot_times = vec![Times::default(); self.slots.len()];
        let mut slot_threads: Vec<Vec<(u32, Times)>> = vec![Vec::new(); self.slots.len()];
        let mut per_thread = Vec::new();
        for (tid, times) in self.cpu.iter() {
            let mut all = Times::default();
            for (slot, t) in times {
                slot_times[slot].add(t);
                slot_threads[slot].push((tid, *t));
                all.add(t);
            }
            per_thread.push((tid, all));
        }

        for (s, &t) in self.slots.iter().zip(&slot_times) {
            let site = if s.phase != Phase::Run {
                // Only stacks without frames have phases: their time is the phase's.
                Some(Site {
                    line: r.files.slot(s.phase.file(), 0, false, None),
                    func: None,
                    python: false,
                    via_library: false,
                })
            } else {
                r.site(s.id)
            };
            let site = site.unwrap_or_else(|| {
                if t.samples > 0 {
                    unknown_stacks.add(&t);
                    unknown_stack_ids += 1;
                }
                if s.memory.allocs > 0 || s.memory.copy_bytes > 0 {
                    unknown_memory_stacks += 1;
                }
                Site {
                    line: r.files.slot(UNDEFINED, 0, false, None),
                    func: None,
                    python: false,
                    via_library: false,
                }
            });
            if site.via_library {
                charged.recharged.add(&t);
                charged.recharged_bytes = charged
                    .recharged_bytes
                    .saturating_add(s.memory.malloc_bytes);
            }
            sites.push(site);
            let undefined = !self.stacks.contains_key(&s.id) && s.id != 0;
            r.files.lines[site.line].times.add(&t);
            if let Some(f) = site.func {
                r.funcs.list[f].self_times.add(&t);
            }
            // Recursion puts a function on the stack more than once; count it once.
            on_stack.clear();
            let mut ids = Vec::new();
            for f in self.stacks.get(&s.id).into_iter().flatten() {
                let idx = r.function(f.func);
                // The line the frame runs, by the charging's rule (a native frame's is its
                // function record's), so the exports show the lines the report does.
                ids.push(frames.index(idx, frame_line(f, &self.functions)));
                if !on_stack.contains(&idx) {
                    on_stack.push(idx);
                    let f = &mut r.funcs.list[idx];
                    f.total_ns = f.total_ns.saturating_add(t.total_ns());
                }
            }
            stack_frames.push((ids, undefined));
        }

        let elapsed_ns = self.end.map_or(self.last_t_ns, |e| e.t_ns);
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
        let totals: Vec<StackTotals> = self.slots.iter().map(|s| s.memory).collect();
        let replayed = self.memory.replay(
            &sites,
            &totals,
            files.lines.len(),
            funcs.list.len(),
            exit_ns,
            elapsed_ns,
        );
        let site_charges: Vec<(usize, Option<usize>)> =
            sites.iter().map(|s| (s.line, s.func)).collect();
        let gpu = self.gpu.finish(
            &site_charges,
            (files.lines.len(), funcs.list.len()),
            |id| names.get(id),
            trace.header.sample_hz,
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

        let pid = trace.header.pid;
        let mut threads: Vec<ThreadProfile> = per_thread
            .into_iter()
            .map(|(tid, times)| ThreadProfile {
                pid,
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
        let thread_of: FxHashMap<u32, usize> = threads
            .iter()
            .enumerate()
            .map(|(i, t)| (t.tid, i))
            .collect();

        let mut functions = funcs.list;
        for ((f, m), g) in functions.iter_mut().zip(replayed.funcs).zip(gpu.funcs) {
            f.memory = m;
            f.gpu = g;
        }
        let mut order: Vec<usize> = (0..functions.len()).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&functions[a], &functions[b]);
            (b.self_times.total_ns().cmp(&a.self_times.total_ns()))
                .then(b.total_ns.cmp(&a.total_ns))
                .then(b.memory.malloc_bytes.cmp(&a.memory.malloc_bytes))
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.file.cmp(&b.file))
                .then(a.first_line.cmp(&b.first_line))
        });
        // Function slot to its place in the sorted list, for the stacks' frames.
        let mut place = vec![0; functions.len()];
        for (i, &slot) in order.iter().enumerate() {
            place[slot] = i;
        }
        let mut slots: Vec<Option<_>> = functions.into_iter().map(Some).collect();
        let functions = order
            .iter()
            .map(|&i| slots[i].take().expect("a permutation"))
            .collect();

        let stacks = build_stacks(
            &self.slots,
            slot_times.into_iter().zip(slot_threads).collect(),
            stack_frames,
            frames,
            &place,
            &thread_of,
            replayed
                .stack_live
                .iter()
                .copied()
                .zip(gpu.stacks)
                .collect(),
        );

        Profile {
            elapsed_ns,
            header: trace.header,
            total: self.total,
            profiler_ns: self.profiler_ns,
            profiler_samples: self.profiler_samples,
            files: files.into_sorted(replayed.lines, gpu.lines),
            functions,
            threads,
            stacks,
            end: self.end,
            counters: self.counters,
            footprint,
            marks,
            gpu: gpu.summary,
            damage: trace.damage.iter().map(ToString::to_string).collect(),
            warnings,
            stopped,
            processes: Vec::new(),
            left_out: Vec::new(),
            charging: ChargeSummary {
                policy: self.charging,
                ..charged
            },
        }
    }
}

/// Distinct frames, numbered in order of first use.
#[derive(Default)]
struct FrameTable {
    by_frame: FxHashMap<(usize, u32), u32>,
    list: Vec<StackFrame>,
}

impl FrameTable {
    /// The frame of function slot `function` at `line`.
    fn index(&mut self, function: usize, line: u32) -> u32 {
        let list = &mut self.list;
        *self.by_frame.entry((function, line)).or_insert_with(|| {
            list.push(StackFrame { function, line });
            (list.len() - 1) as u32
        })
    }
}

/// The stacks model: per stack slot its frames, sums and live bytes, with functions at
/// their sorted `place` and threads at their index in the profile.
fn build_stacks(
    slots: &[StackSums],
    cpu: Vec<(Times, Vec<(u32, Times)>)>,
    stack_frames: Vec<(Vec<u32>, bool)>,
    mut frames: FrameTable,
    place: &[usize],
    thread_of: &FxHashMap<u32, usize>,
    // Per slot: its live bytes at the peak and at exit, and its GPU.
    live_gpu: Vec<((u64, u64), LineGpu)>,
) -> Stacks {
    for f in &mut frames.list {
        f.function = place[f.function];
    }
    let mut stacks: Vec<StackProfile> = slots
        .iter()
        .zip(cpu)
        .zip(stack_frames)
        .zip(live_gpu)
        .map(
            |(((s, (times, threads)), (frames, undefined)), ((peak_live, exit_live), gpu))| {
                let mut threads: Vec<StackThread> = threads
                    .into_iter()
                    .map(|(tid, times)| StackThread {
                        thread: thread_of[&tid],
                        times,
                    })
                    .collect();
                threads.sort_by(|a, b| {
                    (b.times.total_ns(), a.thread).cmp(&(a.times.total_ns(), b.thread))
                });
                let m = &s.memory;
                StackProfile {
                    undefined,
                    frames,
                    no_frame: s.phase.file(),
                    times,
                    memory: StackMemory {
                        malloc_bytes: m.malloc_bytes,
                        python_bytes: m.python_bytes,
                        mallocs: m.mallocs.round() as u64,
                        alloc_samples: m.allocs,
                        copy_bytes: m.copy_bytes,
                        peak_live_bytes: peak_live,
                        exit_live_bytes: exit_live,
                    },
                    gpu,
                    threads,
                }
            },
        )
        .collect();
    stacks.sort_by(|a, b| {
        (b.times.total_ns(), b.memory.malloc_bytes)
            .cmp(&(a.times.total_ns(), a.memory.malloc_bytes))
    });
    Stacks {
        frames: frames.list,
        stacks,
    }
}

/// "12.5% of sampled time", for warnings.
fn share(part: u64, base: f64) -> String {
    format!("{:.1}% of sampled time", percent(part, base))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LineProfile, Memory, NATIVE_THREADS, NO_PYTHON_FRAME, START_UP, TEARDOWN};
    use rprof_format::{CpuSample, Frame, FuncKind, Header};

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

    /// Time with no frame at all is told apart by when and where it ran: before the first
    /// Python frame (start-up), in a thread that never ran Python (native threads), from the
    /// finalizing mark on (teardown, the mark written after the samples it covers, as the
    /// writer does), and the main thread between Python frames (left as `<native>`). A
    /// Python frame with no line is charged to its function's first line. Nothing is lost:
    /// the files add up to the total.
    #[test]
    fn frameless_time_is_split_by_phase_and_no_sample_lacks_a_line() {
        let mut records = names();
        records.push(Record::String {
            id: 9,
            text: PYTHON_FINALIZING.into(),
        });
        let frame = |func, line| Frame { func, line };
        records.push(Record::Stack {
            id: 1,
            frames: vec![frame(1, 0)],
        });
        records.push(Record::Stack {
            id: 2,
            frames: vec![frame(2, 6)],
        });
        // The dynamic loader, stripped (no line), before the first Python frame: start-up,
        // not a line 0 of ld.so that no output could show.
        records.extend([
            Record::String {
                id: 10,
                text: "/lib64/ld-linux-x86-64.so.2".into(),
            },
            Record::String {
                id: 11,
                text: "_dl_relocate_object".into(),
            },
            Record::Function {
                id: 3,
                kind: FuncKind::Native,
                name: 11,
                file: 10,
                first_line: 0,
            },
            Record::Stack {
                id: 3,
                frames: vec![frame(3, 0)],
            },
        ]);
        let at = |t_ns, tid, stack, ms: u64| {
            Record::Cpu(CpuSample {
                t_ns,
                tid,
                stack,
                cpu_ns: ms * 1_000_000,
                sys_ns: 0,
                exec: Exec::Native,
            })
        };
        records.extend([
            at(0, 1, 3, 4),
            at(1, 1, 0, 10),
            at(2, 1, 1, 20),
            at(3, 1, 2, 30),
            at(4, 7, 0, 5),
            at(5, 1, 0, 7),
            at(9, 1, 0, 8),
            Record::Mark { t_ns: 8, label: 9 },
        ]);
        let p = profile(records);
        let ms = |path: &str| {
            let f = p.files.iter().find(|f| f.path == path);
            f.map_or(0, |f| f.times.total_ns() / 1_000_000)
        };
        assert_eq!(ms(START_UP), 14);
        assert_eq!(ms("/lib64/ld-linux-x86-64.so.2"), 0);
        assert_eq!(ms("a.py"), 50);
        assert_eq!(ms(NATIVE_THREADS), 5);
        assert_eq!(ms(NO_PYTHON_FRAME), 7);
        assert_eq!(ms(TEARDOWN), 8);
        let sum: u64 = p.files.iter().map(|f| f.times.total_ns()).sum();
        assert_eq!(sum, p.total.total_ns());
        let a = p.files.iter().find(|f| f.path == "a.py").unwrap();
        let lines: Vec<(u32, u64)> = a
            .lines
            .iter()
            .map(|l| (l.line, l.times.total_ns() / 1_000_000))
            .collect();
        assert_eq!(lines, [(1, 20), (6, 30)]);
        for f in &p.files {
            assert!(
                crate::model::frameless_file(&f.path).is_some()
                    || f.lines.iter().all(|l| l.line > 0),
                "{}: a line 0",
                f.path
            );
        }
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
                function: None,
                times: p.total,
                memory: Memory::default(),
                gpu: Default::default(),
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
    fn stacks_keep_their_frames_threads_and_memory() {
        use rprof_format::{AllocSample, Domain, FreeSample};
        let mut r = names();
        let inner = [(1, 2), (2, 6)].map(|(func, line)| Frame { func, line });
        r.push(Record::Stack {
            id: 4,
            frames: inner.to_vec(),
        });
        r.push(Record::Stack {
            id: 5,
            frames: vec![Frame { func: 2, line: 7 }],
        });
        r.push(sample(4, 100, 10, Exec::Python));
        r.push(Record::Cpu(CpuSample {
            tid: 2,
            ..match sample(4, 50, 0, Exec::Native) {
                Record::Cpu(c) => c,
                _ => unreachable!(),
            }
        }));
        r.push(sample(5, 30, 0, Exec::Python));
        let alloc = |t_ns, addr, stack, weight| {
            Record::Alloc(AllocSample {
                t_ns,
                tid: 2,
                stack,
                addr,
                size: weight,
                weight,
                domain: Domain::Python,
            })
        };
        r.extend([
            Record::String {
                id: 4,
                text: "h".into(),
            },
            Record::Function {
                id: 3,
                kind: FuncKind::Python,
                name: 4,
                file: 1,
                first_line: 2,
            },
            Record::Stack {
                id: 6,
                frames: [(2, 8), (3, 3)]
                    .map(|(func, line)| Frame { func, line })
                    .to_vec(),
            },
            alloc(9, 4, 6, 50),
        ]);
        // Stack 5 holds 700 at the peak (t=3), then frees 300 of it; stack 4 keeps 200.
        r.extend([
            alloc(1, 1, 5, 300),
            alloc(2, 2, 5, 400),
            alloc(3, 3, 4, 200),
            Record::Free(FreeSample { t_ns: 4, addr: 1 }),
            sample(9, 5, 0, Exec::Python),
        ]);
        let p = profile(r);
        let st = &p.stacks;
        assert_eq!(st.stacks.len(), 4, "{st:?}");
        let frames = |s: &crate::model::StackProfile| -> Vec<(String, u32)> {
            s.frames
                .iter()
                .map(|&i| {
                    let f = st.frames[i as usize];
                    (p.functions[f.function].name.clone(), f.line)
                })
                .collect()
        };
        let top = &st.stacks[0];
        assert_eq!(frames(top), [("f".to_string(), 2), ("g".to_string(), 6)]);
        assert_eq!(
            (top.times.python_ns, top.times.native_ns, top.times.sys_ns),
            (90, 50, 10)
        );
        let tids: Vec<(u32, u64)> = top
            .threads
            .iter()
            .map(|t| (p.threads[t.thread].tid, t.times.total_ns()))
            .collect();
        assert_eq!(tids, [(1, 100), (2, 50)]);
        assert_eq!(
            (top.memory.malloc_bytes, top.memory.peak_live_bytes),
            (200, 200)
        );
        let second = &st.stacks[1];
        assert_eq!(frames(second), [("g".to_string(), 7)]);
        assert_eq!(
            (
                second.memory.malloc_bytes,
                second.memory.python_bytes,
                second.memory.peak_live_bytes,
                second.memory.exit_live_bytes
            ),
            (700, 700, 700, 400)
        );
        let by_tid: Vec<(u32, u64)> = second
            .threads
            .iter()
            .map(|t| (p.threads[t.thread].tid, t.times.total_ns()))
            .collect();
        assert_eq!(by_tid, [(1, 30)]);
        // A function only on a memory sample's stack, charged elsewhere: a frame of the
        // stacks, but nothing of its own to list.
        let outer = p.functions.iter().find(|f| f.name == "h").unwrap();
        assert!(!outer.sampled());
        assert!(p
            .functions
            .iter()
            .filter(|f| f.name != "h")
            .all(|f| f.sampled()));
        let h_stack = st
            .stacks
            .iter()
            .find(|s| s.memory.malloc_bytes == 50)
            .unwrap();
        assert_eq!(
            frames(h_stack),
            [("g".to_string(), 8), ("h".to_string(), 3)]
        );
        // Stack 9 is never defined: kept, without frames, marked.
        let undefined = &st.stacks[2];
        assert!(undefined.undefined && undefined.frames.is_empty());
        assert!(st.stacks.iter().filter(|s| s.undefined).count() == 1);
        assert_eq!(undefined.times.total_ns(), 5);
    }

    /// Blocks folded into a `ShortLived` record give the line the figures their own
    /// records gave: the same sums, counts and time average, and a peak, timeline and
    /// process peak never below them and above by at most the record's `peak`.
    #[test]
    fn folded_blocks_count_as_their_own_records_did() {
        use rprof_format::{AllocSample, Domain, FreeSample, ShortLived};
        let alloc = |t_ns, addr, weight| {
            Record::Alloc(AllocSample {
                t_ns,
                tid: 1,
                stack: 5,
                addr,
                size: 100,
                weight,
                domain: Domain::Python,
            })
        };
        let free = |t_ns, addr| Record::Free(FreeSample { t_ns, addr });
        let stack = Record::Stack {
            id: 5,
            frames: vec![Frame { func: 2, line: 7 }],
        };
        // A block kept all along (1000), and three short-lived ones inside 100..400: 300
        // and 500 overlap (800 at 220..250), then 200.
        let kept = [alloc(10, 1, 1000)];
        let short = [
            alloc(100, 2, 300),
            alloc(220, 3, 500),
            free(250, 2),
            free(300, 3),
            alloc(350, 4, 200),
            free(400, 4),
        ];
        let end = Record::End(End {
            t_ns: 1000,
            ..Default::default()
        });
        let mut own = names();
        own.push(stack.clone());
        own.extend(kept.clone());
        own.extend(short);
        own.push(end.clone());
        let mut folded = names();
        folded.push(stack);
        folded.extend(kept);
        folded.push(Record::ShortLived(ShortLived {
            t_ns: 100,
            span_ns: 300,
            stack: 5,
            size: 100,
            domain: Domain::Python,
            count: 3,
            weight: 1000,
            peak: 800,
            // (300 * 150 + 500 * 80 + 200 * 50) byte-ns.
            held_us: 95,
        }));
        folded.push(end);
        let line = |p: &Profile| {
            let l = p.files.iter().flat_map(|f| &f.lines).find(|l| l.line == 7);
            l.unwrap().memory.clone()
        };
        let (a, b) = (profile(own), profile(folded));
        let (ma, mb) = (line(&a), line(&b));
        assert_eq!(
            (
                ma.malloc_bytes,
                ma.python_bytes,
                ma.mallocs,
                ma.alloc_samples
            ),
            (2000, 2000, 20, 4)
        );
        assert_eq!(
            (
                mb.malloc_bytes,
                mb.python_bytes,
                mb.mallocs,
                mb.alloc_samples
            ),
            (2000, 2000, 20, 4)
        );
        assert_eq!(
            (a.footprint.alloc_samples, a.footprint.free_samples),
            (b.footprint.alloc_samples, b.footprint.free_samples)
        );
        // Own records: 1800 at the peak; folded: 1000 + 800.
        assert_eq!((ma.peak_bytes, mb.peak_bytes), (1800, 1800));
        assert_eq!(a.footprint.peak_bytes, b.footprint.peak_bytes);
        assert!((ma.avg_bytes - mb.avg_bytes).abs() < 1e-6, "{ma:?} {mb:?}");
        assert_eq!((ma.growth_bytes, mb.growth_bytes), (1000, 1000));
        // The folded timeline is never below the blocks' own.
        let at = |tl: &[(u64, u64)], t: u64| {
            tl.iter()
                .take_while(|&&(u, _)| u <= t)
                .last()
                .map_or(0, |&(_, v)| v)
        };
        for t in (0..1000).step_by(10) {
            let (x, y) = (at(&ma.timeline, t), at(&mb.timeline, t));
            assert!(y >= x && y <= x + 800, "t={t}: {x} {y}");
        }
    }
}
