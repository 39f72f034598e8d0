//! The diff for a terminal: the two runs, their mismatches, then the lines and functions
//! whose figures changed most.

use super::{side, Diff, Row, Run};
use crate::model::figures::{clock_name, mib, mode_names, python_version, secs, MIB};
use std::fmt::Write;

/// Changes below these are not listed (the JSON lists every row): a millisecond, a KiB.
const MIN_TIME_NS: i128 = 1_000_000;
const MIN_BYTES: i128 = 1024;

pub fn render(d: &Diff, rows: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "rprof diff");
    run(&mut out, "Before", &d.before);
    run(&mut out, "After ", &d.after);
    for m in &d.mismatches {
        let _ = writeln!(out, "MISMATCH  {m}");
    }
    table(&mut out, "Lines", &d.lines, d.memory, rows, true);
    table(
        &mut out,
        "Functions (self time)",
        &d.functions,
        d.memory,
        rows,
        false,
    );
    out
}

fn run(out: &mut String, label: &str, r: &Run) {
    let p = &r.profile;
    let h = &p.header;
    let python =
        python_version(h.python_version).map_or(String::new(), |v| format!(", python {v}"));
    let _ = writeln!(
        out,
        "{label}    {}: {}; clock {}, {} samples/s, modes {}{python}; {:.3} s sampled in {:.3} s",
        r.trace.display(),
        h.argv.join(" "),
        clock_name(h),
        h.sample_hz,
        mode_names(h.modes),
        secs(p.total.total_ns()),
        secs(p.elapsed_ns),
    );
    if p.has_memory() {
        let _ = writeln!(
            out,
            "          {:.3} MiB allocated, peak {:.3} MiB",
            mib(p.footprint.malloc_bytes),
            mib(p.footprint.peak_base())
        );
    }
}

fn changed(r: &Row, memory: bool) -> bool {
    r.time_change_ns().abs() >= MIN_TIME_NS
        || memory && (r.alloc_change().abs() >= MIN_BYTES || r.peak_change().abs() >= MIN_BYTES)
}

fn table(out: &mut String, title: &str, rows: &[Row], memory: bool, max: usize, lines: bool) {
    let shown: Vec<&Row> = rows
        .iter()
        .filter(|r| changed(r, memory))
        .take(max)
        .collect();
    let _ = writeln!(
        out,
        "\n{title}, by size of change ({} changed):",
        rows.iter().filter(|r| changed(r, memory)).count()
    );
    let mut head = format!("{:>9} {:>9} {:>9}", "CPU s", "after", "change");
    if memory {
        let _ = write!(
            head,
            " | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}",
            "alloc MiB", "after", "change", "peak MiB", "after", "change"
        );
    }
    let _ = writeln!(out, "{head} | where");
    for r in shown {
        let (b, a) = (side(r.before), side(r.after));
        let _ = write!(
            out,
            "{:>9.3} {:>9.3} {:>+9.3}",
            secs(b.time_ns),
            secs(a.time_ns),
            r.time_change_ns() as f64 / 1e9
        );
        if memory {
            let mb = |x: i128| x as f64 / MIB;
            let _ = write!(
                out,
                " | {:>9.3} {:>9.3} {:>+9.3} | {:>9.3} {:>9.3} {:>+9.3}",
                mib(b.alloc_bytes),
                mib(a.alloc_bytes),
                mb(r.alloc_change()),
                mib(b.peak_bytes),
                mib(a.peak_bytes),
                mb(r.peak_change())
            );
        }
        let status = match r.status() {
            "new" => " (new)",
            "vanished" => " (vanished)",
            _ => "",
        };
        let place = r.place(lines);
        let _ = writeln!(out, " | {place}{status}");
    }
}
