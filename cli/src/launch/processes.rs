//! The traces one run wrote: each process's trace names its run (`Process` record), so
//! the run's own are told from earlier runs' in the same directory, and says how the
//! process ended (`Exit` record).

use crate::trace_file::TraceFile;
use rprof_format::{read_trace_from, Ending, Record};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// What the launcher shows of one process of the run.
pub struct ProcessTrace {
    pub path: PathBuf,
    pub pid: u32,
    pub ppid: u32,
    pub argv: Vec<String>,
    pub start_unix_ns: u64,
    /// Named for the command's own process: one of its images' traces.
    pub own: bool,
    pub ending: Option<Ended>,
    pub cpu_samples: u64,
}

pub use crate::model::merge::Ended;

/// The traces in `dir` written by run `run`, or named for the command's own process `pid`
/// (`rprof-PID.trace`, `rprof-PID.N.trace`: the shim names each trace for its process), of
/// the files changed since `since`. Traces still held by their writer (a process killed a
/// moment ago) are waited for until `deadline`.
pub fn of_run(
    dir: &Path,
    run: &str,
    pid: u32,
    since: SystemTime,
    deadline: Instant,
) -> Vec<ProcessTrace> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<ProcessTrace> = entries
        .filter_map(Result::ok)
        .filter(|e| is_trace_name(&e.file_name().to_string_lossy()))
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= since)
        })
        .filter_map(|e| read(&e.path(), deadline))
        .filter_map(|(r, mut p)| {
            p.own = named_for(&p.path, pid);
            (p.own || r.as_deref() == Some(run)).then_some(p)
        })
        .collect();
    found.sort_by_key(|p| (p.start_unix_ns, p.pid));
    found
}

pub fn is_trace_name(name: &str) -> bool {
    name.starts_with("rprof-") && name.ends_with(".trace")
}

/// Whether the file is named as the shim names a trace of process `pid`.
fn named_for(path: &Path, pid: u32) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let Some(rest) = name.strip_prefix(&format!("rprof-{pid}")) else {
        return false;
    };
    rest == ".trace"
        || rest
            .strip_prefix('.')
            .and_then(|r| r.strip_suffix(".trace"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Waits (until `deadline`) for no writer to hold the trace: a writer holds an exclusive
/// lock on its trace while it writes.
fn wait_unlocked(file: &TraceFile, deadline: Instant) {
    while !file.try_lock_shared() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The trace's run (None without a Process record) and what the launcher shows of it.
fn read(path: &Path, deadline: Instant) -> Option<(Option<String>, ProcessTrace)> {
    let file = TraceFile::open(path).ok()?;
    wait_unlocked(&file, deadline);
    let file = TraceFile::open(path).ok()?;
    let mut strings: HashMap<u32, String> = HashMap::new();
    let (mut process, mut exit, mut cpu_samples) = (None, None, 0);
    let trace = read_trace_from(file.reader(), |r| match r {
        Record::String { id, text } => {
            strings.insert(id, text);
        }
        Record::Process(p) => process = Some(p),
        Record::Exit(e) => exit = Some(e.how),
        Record::Cpu(_) => cpu_samples += 1,
        _ => {}
    })
    .ok()?;
    let text = |id: u32| strings.get(&id).cloned().unwrap_or_default();
    let ending = exit.map(|how| match how {
        Ending::Exited(c) => Ended::Exited(c),
        Ending::Signaled(s) => Ended::Signaled(s),
        Ending::Execd(cmd) => Ended::Execd(text(cmd)),
        Ending::Killed(s) => Ended::Killed(s),
    });
    let h = trace.header;
    Some((
        process.map(|p| text(p.run)),
        ProcessTrace {
            path: path.to_path_buf(),
            pid: h.pid,
            ppid: h.ppid,
            argv: h.argv,
            start_unix_ns: h.start_unix_ns,
            own: false,
            ending,
            cpu_samples,
        },
    ))
}

impl ProcessTrace {
    /// How it ended, in words; a trace without an Exit record ended without rprof learning
    /// how (killed, crashed).
    pub fn ended(&self) -> String {
        self.ending.as_ref().map_or_else(
            || "killed (or crashed) without warning".to_owned(),
            Ended::describe,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::named_for;
    use std::path::Path;

    #[test]
    fn the_commands_own_traces_are_told_by_name() {
        for (name, own) in [
            ("d/rprof-42.trace", true),
            ("d/rprof-42.1.trace", true),
            ("d/rprof-42.12.trace", true),
            ("d/rprof-421.trace", false),
            ("d/rprof-42..trace", false),
            ("d/rprof-42.x.trace", false),
            ("d/rprof-4.trace", false),
            ("d/xrprof-42.trace", false),
        ] {
            assert_eq!(named_for(Path::new(name), 42), own, "{name}");
        }
    }
}
