//! The HTML report: one self-contained page (CSS, JS and data inline, nothing fetched; its
//! Content-Security-Policy forbids any request) that works offline.
//!
//! The page's script (`page.js`) draws everything from one JSON document built here from
//! the model: every figure is computed in Rust (the model's [`crate::model::figures`]),
//! the script only lays them out. Text from the profiled program (source lines, file,
//! function and thread names, the command line) reaches the page only as JSON strings the
//! script puts into text nodes, never as markup; the JSON itself is escaped so that no
//! string can close the `<script>` element it sits in.
//!
//! The flame graph's call tree is merged here from the model's stacks (by function, from
//! the outermost frame in), and cut to the [`MAX_NODES`] heaviest nodes: a node lighter
//! than that is narrower than a pixel at any useful zoom.

mod flame;

use super::text::{command_line, layout::clean};
use super::{scalene_json, Shown};
use crate::advice::Advice;
use crate::model::figures::{mib, mib_f64, percent, python_version, secs};
use crate::model::{FileProfile, LineProfile, Memory, Profile, Times};
use crate::report::ReportOptions;
use crate::source::Sources;
use rprof_format::{Clock, FuncKind};
use serde_json::{json, Value};

const STYLE: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

/// Nodes of the flame graph's tree at most.
pub const MAX_NODES: usize = 100_000;

pub fn render(p: &Profile, src: &Sources, opts: &ReportOptions, advice: &Advice) -> String {
    let data = document(p, src, opts, advice);
    let json = script_safe(&serde_json::to_string(&data).expect("plain JSON values serialize"));
    let mut page = String::with_capacity(json.len() + STYLE.len() + SCRIPT.len() + 1024);
    page.push_str(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; ",
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        "<link rel=\"icon\" href=\"data:,\">\n<title>rprof report</title>\n<style>\n"
    ));
    page.push_str(STYLE);
    page.push_str(
        "</style>\n</head>\n<body>\n<noscript>This report needs JavaScript.</noscript>\n",
    );
    page.push_str("<script type=\"application/json\" id=\"rprof-data\">");
    page.push_str(&json);
    page.push_str("</script>\n<script>\n");
    page.push_str(SCRIPT);
    page.push_str("</script>\n</body>\n</html>\n");
    page
}

/// JSON that can sit inside a `<script>` element: `<`, `>` and `&` only ever appear in
/// strings, where `\u003c` and the like mean the same to `JSON.parse`.
fn script_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            // Line and paragraph separators are fine in JSON but not in older JS parsers.
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Rounds to `digits` decimals: the page shows no more, and the data stays small.
fn round(x: f64, digits: i32) -> f64 {
    let k = 10f64.powi(digits);
    (x * k).round() / k
}

/// What the page's script reads.
#[derive(serde::Serialize)]
struct Document {
    run: Value,
    memory: bool,
    threshold: f64,
    files: Vec<Value>,
    functions: Vec<Value>,
    leaks: Vec<Value>,
    footprint: Value,
    threads: Vec<Value>,
    flame: flame::Flame,
    /// The hints (`rprof.advice` in the JSON report); empty with `--no-advice`.
    advice: Value,
    /// GPU readings, when the trace has any.
    gpu: Option<Value>,
    /// A merged run's processes (empty for one trace), and the traces given but left out.
    processes: Vec<Value>,
    left_out: Vec<Value>,
    /// The program's marks (`rprof_mark`): `{t: fraction of the run, t_s, label}`.
    marks: Vec<Value>,
}

fn document(p: &Profile, src: &Sources, opts: &ReportOptions, advice: &Advice) -> Document {
    let shown = Shown { p, opts };
    Document {
        run: run(p, src),
        memory: p.has_memory(),
        threshold: opts.threshold,
        files: p.files.iter().map(|f| file(p, f, src, &shown)).collect(),
        functions: functions(p),
        leaks: leaks(p, src),
        footprint: footprint(p, src),
        threads: threads(p),
        flame: flame::tree(p),
        advice: scalene_json::advice_json(advice),
        gpu: gpu(p),
        processes: processes(p),
        left_out: p
            .left_out
            .iter()
            .map(|(trace, why)| json!({ "trace": clean(trace), "why": clean(why) }))
            .collect(),
        marks: p
            .program_marks()
            .into_iter()
            .map(|(t, label)| {
                json!({
                    "t": round(t as f64 / p.elapsed_ns.max(1) as f64, 4),
                    "t_s": round(secs(t), 3),
                    "label": clean(label),
                })
            })
            .collect(),
    }
}

/// One row per process of a merged run, as the text report's Processes table: shares of
/// the whole run's CPU.
fn processes(p: &Profile) -> Vec<Value> {
    let total = p.total.share_base();
    p.processes
        .iter()
        .map(|r| {
            json!({
                "pid": r.pid,
                "ppid": r.ppid,
                "command": clean(&r.command()),
                "cpu_pct": round(percent(r.times.total_ns(), total), 1),
                "samples": r.times.samples,
                "peak_mib": round(mib(r.peak_bytes), 1),
                "ended": clean(&r.ended()),
            })
        })
        .collect()
}

/// The GPU section: the devices, where the figures came from, and utilisation and memory
/// over the run (`[fraction of the run, percent summed over devices, MiB]`).
fn gpu(p: &Profile) -> Option<Value> {
    let g = p.gpu.as_ref()?;
    let end = p.elapsed_ns.max(1) as f64;
    let scope = |own: bool| if own { "this process" } else { "device-wide" };
    Some(json!({
        "devices": g.devices.iter().map(|d| json!({
            "name": clean(&d.name),
            "avg_util": round(d.avg_util, 1),
            "peak_memory_mib": round(mib(d.peak_memory), 1),
            "memory_total_mib": round(mib(d.memory_total), 0),
        })).collect::<Vec<_>>(),
        "util_source": scope(g.process_util()),
        "memory_source": scope(g.process_memory()),
        "unattributed_pct": round(if g.busy > 0.0 { 100.0 * g.unattributed / g.busy } else { 0.0 }, 1),
        "timeline": g.timeline.iter()
            .map(|&(t, u, m)| json!([round(t as f64 / end, 4), u, round(mib(m), 1)]))
            .collect::<Vec<_>>(),
    }))
}

fn run(p: &Profile, src: &Sources) -> Value {
    let h = &p.header;
    let clock = Clock::from_u8(h.clock).map_or_else(
        || format!("unknown ({})", h.clock),
        |c| c.name().to_string(),
    );
    let modes = crate::model::figures::modes_on(h.modes);
    json!({
        "command": command_line(p),
        "exe": clean(&h.exe),
        "cwd": clean(&h.cwd),
        "pid": h.pid,
        "python": python_version(h.python_version),
        "charging": p.charging_note(),
        "elapsed_s": round(secs(p.elapsed_ns), 3),
        "ended": p.end.is_some(),
        "cpu_s": round(secs(p.total.total_ns()), 3),
        "profiler_s": round(secs(p.profiler_ns), 3),
        "clock": clock,
        "modes": modes,
        "hz": h.sample_hz,
        "achieved_hz": p.achieved_hz().map(|hz| round(hz, 1)),
        "samples": p.total.samples,
        "dropped": p.end.map(|e| e.dropped),
        "mem_rate_kib": round(h.mem_rate as f64 / 1024.0, 1),
        "killed": p.killed(),
        "stopped": p.stopped,
        "damaged": !p.damage.is_empty(),
        "problems": super::problems(p, src).iter().map(|w| clean(w)).collect::<Vec<_>>(),
    })
}

/// CPU shares `[python, native, system, total]` in percent of the sampled time.
fn cpu(p: &Profile, t: &Times) -> [f64; 4] {
    [t.python_ns, t.native_ns, t.sys_ns, t.total_ns()].map(|ns| round(p.cpu_percent(ns), 2))
}

/// Memory cells `[avg, peak, alloc, growth]` in MiB, the Python share in percent (null
/// for nothing allocated) and the copy rate in MiB/s (null for none).
fn memory_cells(p: &Profile, m: &Memory) -> Value {
    let py = (m.malloc_bytes > 0).then(|| round(100.0 * m.python_fraction(), 0));
    json!([
        round(mib_f64(m.avg_bytes), 3),
        round(mib(m.peak_bytes), 3),
        round(mib(m.malloc_bytes), 3),
        round(mib(m.growth_bytes), 3),
        py,
        p.copy_rate(m).map(|r| round(mib_f64(r), 3)),
    ])
}

/// A timeline as `[fraction of the run, MiB]` points.
fn timeline(p: &Profile, points: &[(u64, u64)]) -> Vec<[f64; 2]> {
    let end = p.elapsed_ns.max(1) as f64;
    points
        .iter()
        .map(|&(t, b)| [round(t as f64 / end, 4), round(mib(b), 3)])
        .collect()
}

fn file(p: &Profile, f: &FileProfile, src: &Sources, shown: &Shown) -> Value {
    let mem = p.has_memory();
    let lines: Vec<Value> = f.lines.iter().map(|l| line(p, l, shown, mem)).collect();
    let source = src
        .text(&f.path)
        .map(|lines| lines.iter().map(|l| clean(l)).collect::<Vec<_>>());
    json!({
        "path": clean(&f.path),
        "native": f.native,
        "cpu": cpu(p, &f.times),
        "alloc_mib": round(mib(f.malloc_bytes()), 3),
        "shown": shown.file(f),
        "lines": lines,
        "source": source,
    })
}

fn line(p: &Profile, l: &LineProfile, shown: &Shown, mem: bool) -> Value {
    let mut v = json!({
        "line": l.line,
        "cpu": cpu(p, &l.times),
        "hot": shown.line(l),
    });
    // A row with no line stands for its function (page.js shows it as the source).
    if let Some(name) = l.function.as_deref().filter(|_| l.line == 0) {
        v["function"] = json!(clean(name));
    }
    if p.gpu.is_some() {
        // MiB unrounded: page.js rounds it once, to as many decimals as its size allows
        // (0 from 1000 up); rounded here first, 1007.49 read 1007.5 and showed as 1008.
        v["gpu"] = json!([round(p.gpu_share(&l.gpu), 1), mib_f64(l.gpu.avg_bytes())]);
    }
    if mem {
        v["mem"] = memory_cells(p, &l.memory);
        if !l.memory.timeline.is_empty() {
            v["spark"] = json!(timeline(p, &l.memory.timeline));
        }
    }
    v
}

fn functions(p: &Profile) -> Vec<Value> {
    p.functions
        .iter()
        .map(|f| {
            json!({
                "name": clean(&f.name),
                "file": clean(&f.file),
                "line": f.first_line,
                "native": f.kind == FuncKind::Native,
                "listed": f.sampled(),
                "self": cpu(p, &f.self_times),
                "total": round(p.cpu_percent(f.total_ns), 2),
                "alloc_mib": round(mib(f.memory.malloc_bytes), 3),
                "peak_mib": round(mib(f.memory.peak_bytes), 3),
            })
        })
        .collect()
}

fn leaks(p: &Profile, src: &Sources) -> Vec<Value> {
    p.files
        .iter()
        .flat_map(|f| f.lines.iter().map(move |l| (f, l)))
        .filter_map(|(f, l)| {
            let leak = l.memory.leak?;
            Some(json!({
                "file": clean(&f.path),
                "line": l.line,
                "text": l.function.as_deref().or_else(|| src.line(&f.path, l.line)).map(clean),
                "growth_mib": round(mib(l.memory.growth_bytes), 3),
                "rate_mib_s": round(mib_f64(leak.velocity), 3),
                "likelihood": round(100.0 * leak.likelihood, 1),
                "r2": round(leak.r2, 3),
            }))
        })
        .collect()
}

fn footprint(p: &Profile, src: &Sources) -> Value {
    let fp = &p.footprint;
    let exact = !fp.timeline.is_empty();
    let peak_at = fp.peak_at.as_ref().map(|at| {
        json!({
            "file": clean(&at.file),
            "line": at.line,
            "text": at.function.as_deref().or_else(|| src.line(&at.file, at.line)).map(clean),
        })
    });
    json!({
        "exact": exact,
        "timeline": timeline(p, &fp.timeline),
        "peak_mib": round(mib(fp.peak_base()), 3),
        "peak_s": round(secs(if exact { fp.max_ns } else { fp.peak_ns }), 3),
        "python_pct": round(100.0 * fp.max_python_fraction, 0),
        "estimated_peak_mib": round(mib(fp.peak_bytes), 3),
        "estimated_peak_s": round(secs(fp.peak_ns), 3),
        "peak_at": peak_at,
        "alloc_mib": round(mib(fp.malloc_bytes), 3),
        "no_python_mib": round(mib(fp.no_python_bytes), 3),
        "growth_pct": round(100.0 * fp.growth_fraction(), 1),
        "exit_s": (fp.exit_ns < p.elapsed_ns).then(|| round(secs(fp.exit_ns), 3)),
        "copied_mib": round(mib(fp.copy_bytes), 3),
        "alloc_samples": fp.alloc_samples,
    })
}

fn threads(p: &Profile) -> Vec<Value> {
    p.threads
        .iter()
        .map(|t| {
            json!({
                "pid": t.pid,
                "tid": t.tid,
                "name": t.name.as_deref().map(clean),
                "cpu": cpu(p, &t.times),
                "samples": t.times.samples,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_cannot_close_its_script_element() {
        let s =
            serde_json::to_string(&json!({"t": "</script><img src=x onerror=alert(1)>&"})).unwrap();
        let safe = script_safe(&s);
        assert!(!safe.contains('<') && !safe.contains('>') && !safe.contains('&'));
        let back: Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["t"], "</script><img src=x onerror=alert(1)>&");
    }
}
