//! The diff as JSON, for tools: `{"before": run, "after": run, "mismatches": [...],
//! "lines": [...], "functions": [...]}`, every figure absolute (seconds, MiB) but each row's
//! `size`, the share of the run its change is, by which the rows are sorted.

use super::{Cost, Diff, Row, Run};
use crate::model::figures::{clock_name, mib, mode_names, python_version, secs};
use serde_json::{json, Value};

pub fn render(d: &Diff) -> String {
    let doc = json!({
        "before": run(&d.before),
        "after": run(&d.after),
        "mismatches": d.mismatches,
        "memory_compared": d.memory,
        "lines": d.lines.iter().map(|r| row(r, "lineno", d.memory)).collect::<Vec<_>>(),
        "functions": d.functions.iter().map(|r| row(r, "first_line", d.memory)).collect::<Vec<_>>(),
    });
    let mut s = serde_json::to_string_pretty(&doc).expect("JSON of plain values");
    s.push('\n');
    s
}

fn run(r: &Run) -> Value {
    let p = &r.profile;
    let h = &p.header;
    json!({
        "trace": r.trace.display().to_string(),
        "argv": h.argv,
        "clock": clock_name(h),
        "sample_hz": h.sample_hz,
        "modes": mode_names(h.modes),
        "python": python_version(h.python_version),
        "elapsed_seconds": secs(p.elapsed_ns),
        "cpu_seconds": secs(p.total.total_ns()),
        "alloc_mb": mib(p.footprint.malloc_bytes),
        "peak_mb": mib(p.footprint.peak_base()),
    })
}

fn cost(c: Option<Cost>, memory: bool) -> Value {
    let Some(c) = c else { return Value::Null };
    let mut v = json!({"cpu_seconds": secs(c.time_ns)});
    if memory {
        v["alloc_mb"] = json!(mib(c.alloc_bytes));
        v["peak_mb"] = json!(mib(c.peak_bytes));
        v["exit_mb"] = json!(mib(c.exit_bytes));
    }
    v
}

fn row(r: &Row, line_key: &str, memory: bool) -> Value {
    let mut change = json!({"cpu_seconds": r.time_change_ns() as f64 / 1e9});
    if memory {
        let mb = |b: i128| b as f64 / crate::model::figures::MIB;
        change["alloc_mb"] = json!(mb(r.alloc_change()));
        change["peak_mb"] = json!(mb(r.peak_change()));
        change["exit_mb"] = json!(mb(r.exit_change()));
    }
    let mut v = json!({"file": r.file});
    v[line_key] = json!(r.line);
    v["function"] = json!(r.function);
    v["status"] = json!(r.status());
    v["before"] = cost(r.before, memory);
    v["after"] = cost(r.after, memory);
    v["change"] = change;
    v["size"] = json!(r.size);
    v
}
