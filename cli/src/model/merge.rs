//! One report of a whole run: the traces of its processes merged into one [`Profile`].
//!
//! The merge works on the records, before anything is charged: each trace's records stream
//! into one [`Accumulator`] with their ids renumbered (strings, functions, stacks and
//! sampled blocks are per trace; the charging then treats same-named functions of
//! different processes as one, as it does within one trace) and their times moved onto the
//! run's clock (each trace counts from its own start; the run's starts with its first
//! process). So lines, functions and stacks are summed over processes, shares are of the
//! whole run's CPU time, and the memory replay sees every process's allocations and frees
//! on one time axis: the run's footprint at any moment is the sum of the processes' live
//! bytes then. A process's blocks still live when its trace ends are freed there (its
//! memory goes with it), so a dead worker does not hold the run's footprint up. The exact
//! allocator counters are summed the same way, process by process, at each counters
//! record; a process counts for nothing once it has ended.
//!
//! The run's exit point (see [`super::memory`]) is its first process's: the other
//! processes' marks stay in their own traces, and what those say (warnings, early stops,
//! damage) is repeated in the merged report, named by process.
//!
//! Which traces belong together: those naming one run ([`rprof_format::Process`]), or,
//! for traces without that record, those whose parent chain leads to one root. [`select`]
//! picks one run and says why each other trace is left out.

use super::accumulate::{Accumulator, Processes};
use super::types::{Profile, Times};
use super::Charging;
use rprof_format::marks::PYTHON_FINALIZING;
use rprof_format::{read_trace_from, Counters, End, Ending, FreeSample, Record, Trace, TraceError};
use rustc_hash::FxHashMap;
use std::io::Read;

/// What the per-process table shows of one process, and what the merge needs of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessRow {
    /// Where the trace came from (its path), for messages.
    pub source: String,
    pub pid: u32,
    pub ppid: u32,
    pub argv: Vec<String>,
    /// The run's identity, when the trace names one, and whether it is the run's first
    /// process.
    pub run: Option<String>,
    pub root: bool,
    pub start_unix_ns: u64,
    /// `None`: the trace ends without saying how the process ended (killed, crashed).
    pub ending: Option<Ended>,
    /// Its CPU time (its report's total).
    pub times: Times,
    /// Its highest live bytes: exact from the allocator counters, else the estimate.
    pub peak_bytes: u64,
    /// Its trace's elapsed time.
    pub elapsed_ns: u64,
}

/// How a process ended, with the command it exec'd resolved to text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    Signaled(i32),
    Execd(String),
    Killed(i32),
}

impl Ended {
    pub fn describe(&self) -> String {
        use crate::launch::signal_name;
        match self {
            Ended::Exited(c) => format!("exited with status {c}"),
            Ended::Signaled(s) => format!("ended by {}", signal_name(*s)),
            Ended::Execd(cmd) => format!("exec'd {cmd}"),
            Ended::Killed(s) => format!("killed by {}", signal_name(*s)),
        }
    }
}

impl ProcessRow {
    /// How it ended, in words.
    pub fn ended(&self) -> String {
        self.ending.as_ref().map_or_else(
            || "killed (or crashed) without warning".to_owned(),
            Ended::describe,
        )
    }

    /// The command with the program's name but not its directory: the arguments tell
    /// processes apart.
    pub fn command(&self) -> String {
        let mut argv = self.argv.clone();
        if let Some(first) = argv.first_mut() {
            *first = first.rsplit('/').next().unwrap_or_default().to_owned();
        }
        argv.join(" ")
    }
}

/// Reads one process's trace: its own profile and its row.
pub fn read_process(
    source: &str,
    src: impl Read,
    charging: &Charging,
) -> Result<(ProcessRow, Profile), TraceError> {
    let mut acc = Accumulator::charged(charging.clone());
    let (mut process, mut exit) = (None, None);
    let trace = read_trace_from(src, |r| {
        match &r {
            Record::Process(p) => process = Some(*p),
            Record::Exit(e) => exit = Some(*e),
            _ => {}
        }
        acc.visit(r);
    })?;
    let text = |id| acc.string(id).unwrap_or("?").to_owned();
    let run = process.map(|p| text(p.run));
    let ending = exit.map(|e| match e.how {
        Ending::Exited(c) => Ended::Exited(c),
        Ending::Signaled(s) => Ended::Signaled(s),
        Ending::Execd(cmd) => Ended::Execd(text(cmd)),
        Ending::Killed(s) => Ended::Killed(s),
    });
    let profile = acc.finish(trace);
    let h = &profile.header;
    let row = ProcessRow {
        source: source.to_owned(),
        pid: h.pid,
        ppid: h.ppid,
        argv: h.argv.clone(),
        run,
        root: process.is_some_and(|p| p.root),
        start_unix_ns: h.start_unix_ns,
        ending,
        times: profile.total,
        peak_bytes: profile.footprint.max_bytes,
        elapsed_ns: profile.elapsed_ns,
    };
    Ok((row, profile))
}

/// Which traces one report merges, in start order, and each other one with why not.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub merged: Vec<usize>,
    pub left_out: Vec<(usize, String)>,
}

/// Which run to report on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pick<'a> {
    /// The run with this identity (`rprof run` knows its own).
    Run(&'a str),
    /// The run of the first trace given (traces named one by one).
    First,
    /// The run that started last (a directory of several runs' traces).
    Latest,
}

/// The run of each trace: its run identity, or else the process at the top of its parent
/// chain among the traces without one (pid and start, as pids are reused).
fn run_key(rows: &[ProcessRow], i: usize) -> String {
    if let Some(run) = &rows[i].run {
        return format!("run {run}");
    }
    let mut top = i;
    // Bounded: a chain of pids may loop (pids reused across runs).
    for _ in 0..rows.len() {
        let parent = rows.iter().position(|r| {
            r.run.is_none()
                && r.pid == rows[top].ppid
                && r.pid != rows[top].pid
                && r.start_unix_ns <= rows[top].start_unix_ns
        });
        match parent {
            Some(p) => top = p,
            None => break,
        }
    }
    format!(
        "the process tree of pid {} started at {}",
        rows[top].pid, rows[top].start_unix_ns
    )
}

pub fn select(rows: &[ProcessRow], pick: Pick) -> Selection {
    let keys: Vec<String> = (0..rows.len()).map(|i| run_key(rows, i)).collect();
    let chosen = match pick {
        Pick::Run(run) => Some(format!("run {run}")),
        Pick::First => keys.first().cloned(),
        Pick::Latest => {
            // A run's start is its earliest process's.
            let mut starts: FxHashMap<&str, u64> = FxHashMap::default();
            for (k, r) in keys.iter().zip(rows) {
                let s = starts.entry(k).or_insert(u64::MAX);
                *s = (*s).min(r.start_unix_ns);
            }
            let latest = starts
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)));
            latest.map(|(k, _)| k.to_owned())
        }
    };
    let mut merged: Vec<usize> = (0..rows.len())
        .filter(|&i| Some(&keys[i]) == chosen.as_ref())
        .collect();
    merged.sort_by_key(|&i| (rows[i].start_unix_ns, rows[i].pid));
    let what = chosen.unwrap_or_default();
    let left_out = (0..rows.len())
        .filter(|i| !merged.contains(i))
        .map(|i| {
            let hint = rows[i]
                .run
                .as_ref()
                .map(|r| format!("; rprof-report --run {r} reports that one"))
                .unwrap_or_default();
            (
                i,
                format!(
                    "of another run: {} (this report is of {what}{hint})",
                    keys[i]
                ),
            )
        })
        .collect();
    Selection { merged, left_out }
}

/// Per trace: its ids renumbered into the merged accumulator's.
#[derive(Default)]
struct Renumber {
    strings: FxHashMap<u32, u32>,
    functions: FxHashMap<u32, u32>,
    stacks: FxHashMap<u32, u32>,
    /// Sampled blocks still live: the trace's sample id to the merged one.
    blocks: FxHashMap<u64, u64>,
}

/// The next free id of each kind, over all traces (from 1: stack 0 is the empty stack,
/// block 0 is none).
struct Fresh {
    string: u32,
    function: u32,
    stack: u32,
    block: u64,
}

fn renumber(map: &mut FxHashMap<u32, u32>, next: &mut u32, id: u32) -> u32 {
    *map.entry(id).or_insert_with(|| {
        *next += 1;
        *next
    })
}

/// Why a merge failed: trace `i` could not be opened again, or no longer decodes.
#[derive(Debug)]
pub enum MergeError<E> {
    Open(E),
    Trace(usize, TraceError),
}

/// Merges the traces of one run. `rows` and `profiles` come from [`read_process`] (in
/// start order, the first the run's first process); `open(i)` streams trace `i` again.
pub fn merge<R: Read, E>(
    rows: Vec<ProcessRow>,
    profiles: &[Profile],
    mut open: impl FnMut(usize) -> Result<R, E>,
    charging: &Charging,
) -> Result<Profile, MergeError<E>> {
    let start = rows.iter().map(|r| r.start_unix_ns).min().unwrap_or(0);
    let mut acc = Accumulator::charged(charging.clone());
    let mut fresh = Fresh {
        string: 0,
        function: 0,
        stack: 0,
        block: 0,
    };
    let mut tid_pid: FxHashMap<u32, u32> = FxHashMap::default();
    // The counters records of every process, on the run's clock, by process.
    let mut counters: Vec<(u64, usize, Counters)> = Vec::new();
    let mut header = profiles[0].header.clone();
    let (mut chunks, mut bytes) = (0, 0);
    let mut end = End::default();
    let gpu = profiles.iter().any(|p| p.gpu.is_some());
    for (i, row) in rows.iter().enumerate() {
        acc.set_process(i as u32, gpu);
        let shift = row.start_unix_ns - start;
        let t = |t_ns: u64| t_ns.saturating_add(shift);
        let mut ids = Renumber::default();
        let mut last_counters: Option<Counters> = None;
        let src = open(i).map_err(MergeError::Open)?;
        let trace = read_trace_from(src, |r| {
            let r = match r {
                Record::Cpu(mut s) => {
                    s.t_ns = t(s.t_ns);
                    if s.stack != 0 {
                        s.stack = renumber(&mut ids.stacks, &mut fresh.stack, s.stack);
                    }
                    tid_pid.insert(s.tid, row.pid);
                    Record::Cpu(s)
                }
                Record::String { id, text } => Record::String {
                    id: renumber(&mut ids.strings, &mut fresh.string, id),
                    text,
                },
                Record::Function {
                    id,
                    kind,
                    name,
                    file,
                    first_line,
                } => Record::Function {
                    id: renumber(&mut ids.functions, &mut fresh.function, id),
                    kind,
                    name: renumber(&mut ids.strings, &mut fresh.string, name),
                    file: renumber(&mut ids.strings, &mut fresh.string, file),
                    first_line,
                },
                Record::Stack { id, mut frames } => {
                    for f in &mut frames {
                        f.func = renumber(&mut ids.functions, &mut fresh.function, f.func);
                    }
                    Record::Stack {
                        id: renumber(&mut ids.stacks, &mut fresh.stack, id),
                        frames,
                    }
                }
                Record::Thread { tid, name } => {
                    tid_pid.insert(tid, row.pid);
                    Record::Thread {
                        tid,
                        name: renumber(&mut ids.strings, &mut fresh.string, name),
                    }
                }
                Record::Counters(mut c) => {
                    c.t_ns = t(c.t_ns);
                    counters.push((c.t_ns, i, c));
                    if last_counters.is_none_or(|l| l.t_ns <= c.t_ns) {
                        last_counters = Some(c);
                    }
                    return;
                }
                Record::Alloc(mut a) => {
                    a.t_ns = t(a.t_ns);
                    if a.stack != 0 {
                        a.stack = renumber(&mut ids.stacks, &mut fresh.stack, a.stack);
                    }
                    a.addr = *ids.blocks.entry(a.addr).or_insert_with(|| {
                        fresh.block += 1;
                        fresh.block
                    });
                    Record::Alloc(a)
                }
                Record::Free(f) => Record::Free(FreeSample {
                    t_ns: t(f.t_ns),
                    addr: ids.blocks.remove(&f.addr).unwrap_or(0),
                }),
                Record::ShortLived(mut f) => {
                    f.t_ns = t(f.t_ns);
                    if f.stack != 0 {
                        f.stack = renumber(&mut ids.stacks, &mut fresh.stack, f.stack);
                    }
                    Record::ShortLived(f)
                }
                Record::Copy(mut c) => {
                    c.t_ns = t(c.t_ns);
                    if c.stack != 0 {
                        c.stack = renumber(&mut ids.stacks, &mut fresh.stack, c.stack);
                    }
                    Record::Copy(c)
                }
                // The run's exit point and stops are its first process's (module docs).
                Record::Mark { t_ns, label } if i == 0 => Record::Mark {
                    t_ns: t(t_ns),
                    label: renumber(&mut ids.strings, &mut fresh.string, label),
                },
                Record::End(e) => {
                    end.samples = end.samples.saturating_add(e.samples);
                    end.dropped = end.dropped.saturating_add(e.dropped);
                    end.truncated = end.truncated.saturating_add(e.truncated);
                    return;
                }
                Record::GpuDevice(d) => Record::GpuDevice(rprof_format::GpuDevice {
                    name: renumber(&mut ids.strings, &mut fresh.string, d.name),
                    ..d
                }),
                Record::Gpu(mut g) => {
                    g.t_ns = t(g.t_ns);
                    Record::Gpu(g)
                }
                Record::NativeAddress {
                    func,
                    build_id,
                    addr,
                } => Record::NativeAddress {
                    func: renumber(&mut ids.functions, &mut fresh.function, func),
                    build_id: renumber(&mut ids.strings, &mut fresh.string, build_id),
                    addr,
                },
                Record::Mark { .. } | Record::Process(_) | Record::Exit(_) => return,
            };
            acc.visit(r);
        })
        .map_err(|e| MergeError::Trace(i, e))?;
        chunks += trace.chunks;
        bytes += trace.bytes;
        header.modes |= trace.header.modes;
        // The process's memory goes with it.
        let gone = t(row.elapsed_ns);
        end.t_ns = end.t_ns.max(gone);
        let mut live: Vec<u64> = ids.blocks.into_values().collect();
        live.sort_unstable();
        for addr in live {
            acc.visit(Record::Free(FreeSample { t_ns: gone, addr }));
        }
        // Nothing live any more; what it allocated in all stays counted.
        if let Some(last) = last_counters {
            let gone = Counters {
                t_ns: gone.max(last.t_ns),
                live_bytes: 0,
                python_live_bytes: 0,
                ..last
            };
            counters.push((gone.t_ns, i, gone));
        }
    }
    for c in summed(counters, rows.len()) {
        acc.visit(Record::Counters(c));
    }
    if profiles[0].end.is_some() {
        acc.visit(Record::End(end));
    }
    acc.sort_memory_by_time();
    // Each process's own start-up and teardown, for the time without a frame.
    let finalizing = rows
        .iter()
        .zip(profiles)
        .filter_map(|(row, p)| {
            let (t, _) = p.marks.iter().find(|(_, l)| l == PYTHON_FINALIZING)?;
            Some((row.pid, t.saturating_add(row.start_unix_ns - start)))
        })
        .collect();
    acc.set_processes(Processes {
        tid_pid: tid_pid.clone(),
        finalizing,
    });
    let mut merged = acc.finish(Trace {
        header,
        damage: Vec::new(),
        chunks,
        bytes,
    });
    for t in &mut merged.threads {
        t.pid = tid_pid.get(&t.tid).copied().unwrap_or(t.pid);
    }
    carry_notes(&mut merged, &rows, profiles);
    merged.processes = rows;
    Ok(merged)
}

/// The run's counters: at each process's record, the sum over processes of their latest
/// figures (a process that has ended counts for nothing). Its peak is the highest sum at
/// those moments, where the process whose record it is counts at its own peak when that
/// rose since its previous record (it was reached in between, when the others held about
/// what they hold now): so the run's peak is never below any one process's.
fn summed(mut counters: Vec<(u64, usize, Counters)>, processes: usize) -> Vec<Counters> {
    counters.sort_by_key(|&(t, i, _)| (t, i));
    let mut latest = vec![Counters::default(); processes];
    let mut peak = 0u64;
    counters
        .into_iter()
        .map(|(t_ns, i, c)| {
            let rose = c.peak_live_bytes > latest[i].peak_live_bytes;
            let own_peak = if rose {
                c.peak_live_bytes
            } else {
                c.live_bytes
            };
            latest[i] = c;
            let mut sum = Counters {
                t_ns,
                ..Counters::default()
            };
            for l in &latest {
                sum.allocs = sum.allocs.saturating_add(l.allocs);
                sum.frees = sum.frees.saturating_add(l.frees);
                sum.alloc_bytes = sum.alloc_bytes.saturating_add(l.alloc_bytes);
                sum.live_bytes = sum.live_bytes.saturating_add(l.live_bytes);
                sum.python_live_bytes = sum.python_live_bytes.saturating_add(l.python_live_bytes);
            }
            let at_peak = sum.live_bytes - c.live_bytes.min(sum.live_bytes) + own_peak;
            peak = peak.max(sum.live_bytes).max(at_peak);
            sum.peak_live_bytes = peak;
            sum
        })
        .collect()
}

/// What each process's own report would say that the merged one would not: its damage,
/// its early stop, the shim's warnings in it (the first process's marks are the merged
/// report's own).
fn carry_notes(merged: &mut Profile, rows: &[ProcessRow], profiles: &[Profile]) {
    for (i, (row, p)) in rows.iter().zip(profiles).enumerate() {
        let who = format!("process {} ({})", row.pid, row.command());
        for d in &p.damage {
            merged.damage.push(format!("{who}: {d}"));
        }
        if i == 0 {
            continue;
        }
        if let Some(why) = &p.stopped {
            merged
                .warnings
                .push(format!("{who}: its trace stops early: {why}"));
        }
        for w in p.warnings.iter().filter(|w| w.starts_with("rprof warned")) {
            merged.warnings.push(format!("{who}: {w}"));
        }
    }
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
