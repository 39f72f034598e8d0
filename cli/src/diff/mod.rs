//! `rprof-report diff BEFORE AFTER`: two runs compared per line and per function, in
//! absolute figures (CPU seconds, bytes), never shares, so runs of different length or
//! sample rate compare honestly; the runs' settings are compared first and every mismatch
//! is stated.
//!
//! - [`compare`]: the diff model, from two [`Profile`]s;
//! - [`text`], [`json`], [`html`]: its renderers.

pub mod html;
pub mod json;
pub mod text;

use crate::model::figures::{clock_name, mode_names, python_version};
use crate::model::{Memory, Profile, Times};
use rprof_format::mode;
use rprof_format::FuncKind;
use rustc_hash::FxHashMap;
use std::path::{Path, PathBuf};

/// What one line or function cost in one run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    /// Sampled time, in nanoseconds of the run's clock.
    pub time_ns: u64,
    /// Bytes allocated, live at the peak of the footprint, live at the exit point.
    pub alloc_bytes: u64,
    pub peak_bytes: u64,
    pub exit_bytes: u64,
}

impl Cost {
    fn of(t: &Times, m: &Memory) -> Cost {
        Cost {
            time_ns: t.total_ns(),
            alloc_bytes: m.malloc_bytes,
            peak_bytes: m.peak_bytes,
            exit_bytes: m.growth_bytes,
        }
    }
}

/// A line (`line` > 0) or a function (`line` is its first line) in either run; a side is
/// `None` where the run does not have it (a new or a vanished line).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub file: String,
    pub line: u32,
    pub function: String,
    pub before: Option<Cost>,
    pub after: Option<Cost>,
    /// The size of the change, by which rows are sorted: the largest of its time, bytes
    /// allocated and bytes at the peak, each as a share of the larger run's total (0..1).
    pub size: f64,
}

impl Row {
    /// Where the row is: `file:line function` for a line, `function (file:line)` for a
    /// function; with no line (a native function without debug line info), no `:0`.
    pub fn place(&self, lines: bool) -> String {
        let at = if self.line > 0 {
            format!("{}:{}", self.file, self.line)
        } else {
            self.file.clone()
        };
        if lines {
            format!("{at} {}", self.function)
        } else {
            format!("{} ({at})", self.function)
        }
    }

    /// The change in time, in seconds (after minus before).
    pub fn time_change_ns(&self) -> i128 {
        side(self.after).time_ns as i128 - side(self.before).time_ns as i128
    }

    pub fn alloc_change(&self) -> i128 {
        side(self.after).alloc_bytes as i128 - side(self.before).alloc_bytes as i128
    }

    pub fn peak_change(&self) -> i128 {
        side(self.after).peak_bytes as i128 - side(self.before).peak_bytes as i128
    }

    pub fn exit_change(&self) -> i128 {
        side(self.after).exit_bytes as i128 - side(self.before).exit_bytes as i128
    }

    /// "new", "vanished" or "both".
    pub fn status(&self) -> &'static str {
        match (self.before, self.after) {
            (None, Some(_)) => "new",
            (Some(_), None) => "vanished",
            _ => "both",
        }
    }
}

/// A missing side costs nothing.
pub fn side(c: Option<Cost>) -> Cost {
    c.unwrap_or_default()
}

/// One run, as the diff names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub trace: PathBuf,
    pub profile: Profile,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Diff {
    pub before: Run,
    pub after: Run,
    /// Settings of the two runs that differ, each stated in a sentence.
    pub mismatches: Vec<String>,
    /// Whether both runs profiled memory (memory is compared only then).
    pub memory: bool,
    /// Sorted by the size of the change, largest first.
    pub lines: Vec<Row>,
    pub functions: Vec<Row>,
}

/// A diff that cannot be made.
#[derive(Debug)]
pub struct Refused(pub String);

/// Compares two runs. Runs sampled by different clocks (CPU time against wall time) are
/// refused unless `force`: their times measure different things.
pub fn compare(before: Run, after: Run, force: bool) -> Result<Diff, Refused> {
    let (b, a) = (&before.profile, &after.profile);
    let mismatches = mismatches(b, a);
    if b.header.clock != a.header.clock && !force {
        return Err(Refused(format!(
            "the runs were sampled by different clocks ({} before, {} after): their times \
             measure different things (pass --force to compare them anyway)",
            clock_name(&b.header),
            clock_name(&a.header)
        )));
    }
    let memory = has_memory(b) && has_memory(a);
    let scale = Scale::of(b, a);
    let mut lines = merge(line_costs(b), line_costs(a));
    let mut functions = merge(function_costs(b), function_costs(a));
    for rows in [&mut lines, &mut functions] {
        for r in rows.iter_mut() {
            r.size = scale.size(r, memory);
        }
        rows.sort_by(|x, y| {
            y.size
                .total_cmp(&x.size)
                .then_with(|| (&x.file, x.line).cmp(&(&y.file, y.line)))
        });
    }
    Ok(Diff {
        before,
        after,
        mismatches,
        memory,
        lines,
        functions,
    })
}

fn has_memory(p: &Profile) -> bool {
    p.header.modes & mode::MEMORY != 0 || p.footprint.alloc_samples > 0
}

/// The settings that differ between the runs, in words.
fn mismatches(b: &Profile, a: &Profile) -> Vec<String> {
    let (hb, ha) = (&b.header, &a.header);
    let mut out = Vec::new();
    if hb.clock != ha.clock {
        out.push(format!(
            "clock: {} before, {} after: CPU time and wall time are not comparable",
            clock_name(hb),
            clock_name(ha)
        ));
    }
    if hb.sample_hz != ha.sample_hz {
        out.push(format!(
            "sample rate: {} before, {} after (samples/s): figures are absolute seconds, so \
             they still compare, but the slower run's are noisier",
            hb.sample_hz, ha.sample_hz
        ));
    }
    if hb.modes != ha.modes {
        let memory = if has_memory(b) != has_memory(a) {
            ": memory is profiled in only one of them and is not compared"
        } else {
            ""
        };
        out.push(format!(
            "modes: {} before, {} after{memory}",
            mode_names(hb.modes),
            mode_names(ha.modes)
        ));
    }
    if has_memory(b) && has_memory(a) && hb.mem_rate != ha.mem_rate {
        out.push(format!(
            "memory sampling: one sample per {} bytes before, per {} after: bytes are \
             estimated either way, the sparser run's less closely",
            hb.mem_rate, ha.mem_rate
        ));
    }
    if hb.python_version != ha.python_version {
        let v = |h: u32| python_version(h).unwrap_or_else(|| "none".into());
        out.push(format!(
            "interpreter: Python {} before, {} after",
            v(hb.python_version),
            v(ha.python_version)
        ));
    }
    if hb.exe != ha.exe {
        out.push(format!("executable: {} before, {} after", hb.exe, ha.exe));
    }
    out
}

type Key = (String, u32, String);

/// Each line's cost, keyed by (file, line, function).
fn line_costs(p: &Profile) -> Vec<(Key, Cost)> {
    let function_of = FunctionOf::new(p);
    p.files
        .iter()
        .flat_map(|f| {
            f.lines.iter().map(|l| {
                // A row with no line is its function's; else the function defined there.
                let func = l
                    .function
                    .clone()
                    .filter(|_| l.line == 0)
                    .unwrap_or_else(|| function_of.get(&f.path, l.line));
                (
                    (f.path.clone(), l.line, func),
                    Cost::of(&l.times, &l.memory),
                )
            })
        })
        .collect()
}

/// Each function's cost (its self time and the memory of its lines), keyed by (file,
/// first line, name).
fn function_costs(p: &Profile) -> Vec<(Key, Cost)> {
    p.functions
        .iter()
        .filter(|f| f.sampled())
        .map(|f| {
            (
                (f.file.clone(), f.first_line, f.name.clone()),
                Cost::of(&f.self_times, &f.memory),
            )
        })
        .collect()
}

/// The rows of both runs, matched by (file, line, name); a function that moved (its first
/// line changed) matches by file and name.
fn merge(before: Vec<(Key, Cost)>, after: Vec<(Key, Cost)>) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::with_capacity(before.len().max(after.len()));
    let mut at: FxHashMap<Key, usize> = FxHashMap::default();
    for ((file, line, function), c) in before {
        at.insert((file.clone(), line, function.clone()), rows.len());
        rows.push(Row {
            file,
            line,
            function,
            before: Some(c),
            after: None,
            size: 0.0,
        });
    }
    for ((file, line, function), c) in after {
        match at.get(&(file.clone(), line, function.clone())) {
            Some(&i) => rows[i].after = Some(c),
            None => rows.push(Row {
                file,
                line,
                function,
                before: None,
                after: Some(c),
                size: 0.0,
            }),
        }
    }
    rows
}

/// The Python function a line is in: the one in the same file with the last first line at
/// or above it ("" when none).
struct FunctionOf<'a> {
    starts: FxHashMap<&'a str, Vec<(u32, &'a str)>>,
}

impl<'a> FunctionOf<'a> {
    fn new(p: &'a Profile) -> FunctionOf<'a> {
        let mut starts: FxHashMap<&str, Vec<(u32, &str)>> = FxHashMap::default();
        for f in p.functions.iter().filter(|f| f.kind == FuncKind::Python) {
            starts
                .entry(f.file.as_str())
                .or_default()
                .push((f.first_line, f.name.as_str()));
        }
        for v in starts.values_mut() {
            v.sort_unstable();
        }
        FunctionOf { starts }
    }

    fn get(&self, file: &str, line: u32) -> String {
        let Some(v) = self.starts.get(file) else {
            return String::new();
        };
        let i = v.partition_point(|&(first, _)| first <= line);
        i.checked_sub(1)
            .map_or(String::new(), |i| v[i].1.to_string())
    }
}

/// What the size of a change is measured against, for sorting only: the larger run's
/// totals, so a change in time and one in memory rank together.
struct Scale {
    time: f64,
    alloc: f64,
    peak: f64,
}

impl Scale {
    fn of(b: &Profile, a: &Profile) -> Scale {
        let max = |f: fn(&Profile) -> u64| (f(b).max(f(a)) as f64).max(1.0);
        Scale {
            time: max(|p| p.total.total_ns()),
            alloc: max(|p| p.footprint.malloc_bytes),
            peak: max(|p| p.footprint.peak_base()),
        }
    }

    fn size(&self, r: &Row, memory: bool) -> f64 {
        let time = (r.time_change_ns() as f64 / self.time).abs();
        if !memory {
            return time;
        }
        let alloc = (r.alloc_change() as f64 / self.alloc).abs();
        let peak = (r.peak_change() as f64 / self.peak).abs();
        time.max(alloc).max(peak)
    }
}

/// A trace, or a run directory (`rprof run`'s): the trace in it of the process that
/// started the run, the one whose parent wrote none of the others.
pub fn find_trace(path: &Path) -> Result<PathBuf, String> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let entries =
        std::fs::read_dir(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut traces: Vec<(PathBuf, u32, u32)> = Vec::new();
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("rprof-") && name.ends_with(".trace")) {
            continue;
        }
        let trace = e.path();
        if let Ok(p) = crate::report::load(&trace) {
            traces.push((trace, p.header.pid, p.header.ppid));
        }
    }
    let pids: Vec<u32> = traces.iter().map(|t| t.1).collect();
    let mut roots: Vec<PathBuf> = traces
        .into_iter()
        .filter(|t| !pids.contains(&t.2))
        .map(|t| t.0)
        .collect();
    roots.sort();
    match roots.len() {
        0 => Err(format!("{} holds no trace", path.display())),
        1 => Ok(roots.remove(0)),
        _ => Err(format!(
            "{} holds the traces of {} separate runs; name one: {}",
            path.display(),
            roots.len(),
            roots
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(time_ns: u64, alloc_bytes: u64) -> Cost {
        Cost {
            time_ns,
            alloc_bytes,
            ..Cost::default()
        }
    }

    #[test]
    fn a_row_without_a_line_is_its_function_with_no_colon_zero() {
        let row = |line| Row {
            file: "/opt/libhot.so".into(),
            line,
            function: "hot".into(),
            before: None,
            after: None,
            size: 0.0,
        };
        assert_eq!(row(0).place(true), "/opt/libhot.so hot");
        assert_eq!(row(0).place(false), "hot (/opt/libhot.so)");
        assert_eq!(row(4).place(true), "/opt/libhot.so:4 hot");
        assert_eq!(row(4).place(false), "hot (/opt/libhot.so:4)");
    }

    fn key(line: u32) -> Key {
        ("a.py".into(), line, "f".into())
    }

    #[test]
    fn rows_match_by_line_and_keep_new_and_vanished_ones() {
        let rows = merge(
            vec![(key(1), cost(10, 0)), (key(2), cost(5, 0))],
            vec![(key(1), cost(30, 0)), (key(3), cost(7, 8))],
        );
        let status: Vec<(u32, &str, i128)> = rows
            .iter()
            .map(|r| (r.line, r.status(), r.time_change_ns()))
            .collect();
        assert_eq!(
            status,
            vec![(1, "both", 20), (2, "vanished", -5), (3, "new", 7)]
        );
        assert_eq!(rows[2].alloc_change(), 8);
    }
}
