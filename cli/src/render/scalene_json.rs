//! The JSON report, in the shape of Scalene's `ScaleneJSONSchema` (scalene 2.4.0,
//! `scalene/scalene_json.py`) so Scalene's viewers and tools read it. rprof-only data goes
//! under the top-level key `rprof`, which the schema ignores.
//!
//! Units are Scalene's: MB are MiB (2^20 bytes, Scalene's `BYTES_PER_MB`), and timeline
//! points (`samples`, `memory_samples`) are `[ns since the start, MB]`, the scale
//! Scalene's viewer draws them on.

use crate::advice::Advice;
use crate::model::figures::{fraction, mib, mib_f64, percent, python_version, secs};
use crate::model::{FunctionProfile, GpuSummary, LineGpu, Memory, Profile, Times};
use crate::source::Sources;
use rprof_format::{mode, Clock, FuncKind, FORMAT_VERSION};
use serde::ser::{Serialize, Serializer};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

/// `ScaleneJSONSchema`. Fields rprof has no data for yet hold Scalene's "none" values.
#[derive(serde::Serialize)]
struct ScaleneJson {
    program: String,
    entrypoint_dir: String,
    args: Vec<String>,
    filename: String,
    alloc_samples: u64,
    elapsed_time_sec: f64,
    start_time_absolute: f64,
    start_time_perf: f64,
    growth_rate: f64,
    max_footprint_mb: f64,
    native_allocations_mb: f64,
    max_footprint_python_fraction: f64,
    max_footprint_fname: Option<String>,
    max_footprint_lineno: Option<u32>,
    files: Files,
    gpu: bool,
    gpu_device: &'static str,
    memory: bool,
    async_profile: bool,
    samples: Vec<(u64, f64)>,
    stacks: [Value; 0],
    combined_stacks: [Value; 0],
    combined_stacks_timeline: [Value; 0],
    main_thread_id: Option<u64>,
    memory_stacks: [Value; 0],
    rprof: Value,
}

/// Files in report order (most time first), as a JSON object.
struct Files(Vec<(String, FileDetail)>);

impl Serialize for Files {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

#[derive(serde::Serialize)]
struct FileDetail {
    functions: Vec<FunctionDetail>,
    imports: [String; 0],
    leaks: serde_json::Map<String, Value>,
    lines: Vec<LineDetail>,
    percent_cpu_time: f64,
}

/// Scalene's figures for one line, or for one function (then `line` is its name).
#[derive(serde::Serialize)]
struct FunctionDetail {
    line: String,
    lineno: u32,
    memory_samples: Vec<(u64, f64)>,
    cpu_samples_list: [f64; 0],
    n_avg_mb: f64,
    n_copy_mb_s: f64,
    n_core_utilization: f64,
    n_cpu_percent_c: f64,
    n_cpu_percent_python: f64,
    n_gpu_avg_memory_mb: f64,
    n_gpu_peak_memory_mb: f64,
    n_gpu_percent: f64,
    n_growth_mb: f64,
    n_peak_mb: f64,
    n_malloc_mb: f64,
    n_mallocs: u64,
    n_python_fraction: f64,
    n_sys_percent: f64,
    n_usage_fraction: f64,
    n_async_await_percent: f64,
    n_async_concurrency_mean: f64,
    n_async_concurrency_peak: f64,
    async_task_names: [String; 0],
    is_coroutine: bool,
}

#[derive(serde::Serialize)]
struct LineDetail {
    #[serde(flatten)]
    detail: FunctionDetail,
    start_outermost_loop: u32,
    end_outermost_loop: u32,
    start_region_line: u32,
    end_region_line: u32,
    start_function_line: u32,
    end_function_line: u32,
}

/// The JSON report, pretty-printed.
pub fn render(p: &Profile, src: &Sources, advice: &Advice) -> String {
    let mut out = serde_json::to_string_pretty(&document(p, src, advice))
        .expect("serializing plain structs with string keys cannot fail");
    out.push('\n');
    out
}

fn document(p: &Profile, src: &Sources, advice: &Advice) -> ScaleneJson {
    let h = &p.header;
    let fp = &p.footprint;
    let total = p.total.share_base();
    let mut functions: HashMap<&str, Vec<&FunctionProfile>> = HashMap::new();
    for f in p.functions.iter().filter(|f| f.sampled()) {
        functions.entry(f.file.as_str()).or_default().push(f);
    }
    let files = p
        .files
        .iter()
        .map(|f| {
            // Scalene's line numbers are positive: a row with no line (a native function
            // without debug line info) is under `rprof.lines_without_number` instead, so
            // the two add up to the file.
            let lines = f
                .lines
                .iter()
                .filter(|l| l.line > 0)
                .map(|l| {
                    let text = src
                        .line(&f.path, l.line)
                        .map(escape_line)
                        .unwrap_or_default();
                    // No loop or function analysis of the source: each line is its own region.
                    LineDetail {
                        detail: detail(p, text, l.line, &l.times, &l.memory, &l.gpu),
                        start_outermost_loop: l.line,
                        end_outermost_loop: l.line,
                        start_region_line: l.line,
                        end_region_line: l.line,
                        start_function_line: 0,
                        end_function_line: 0,
                    }
                })
                .collect();
            let mut fns = functions.remove(f.path.as_str()).unwrap_or_default();
            fns.sort_by_key(|func| func.first_line);
            let functions = fns
                .iter()
                .map(|func| {
                    let lineno = func.first_line.max(1);
                    detail(
                        p,
                        func.name.clone(),
                        lineno,
                        &func.self_times,
                        &func.memory,
                        &func.gpu,
                    )
                })
                .collect();
            let leaks = f
                .lines
                .iter()
                .filter(|l| l.line > 0)
                .filter_map(|l| Some((l.line, l.memory.leak?)))
                .map(|(line, leak)| {
                    let info = json!({
                        "likelihood": leak.likelihood,
                        "velocity_mb_s": mib_f64(leak.velocity),
                    });
                    (line.to_string(), info)
                })
                .collect();
            let detail = FileDetail {
                functions,
                imports: [],
                leaks,
                lines,
                percent_cpu_time: percent(f.times.total_ns(), total),
            };
            (f.path.clone(), detail)
        })
        .collect();

    let program = Program::of(&h.argv, &h.exe, &h.cwd, h.python_version != 0);
    ScaleneJson {
        filename: program.dir.clone(),
        entrypoint_dir: program.dir,
        program: program.program,
        args: program.args,
        alloc_samples: fp.alloc_samples,
        elapsed_time_sec: secs(p.elapsed_ns),
        start_time_absolute: secs(h.start_unix_ns),
        start_time_perf: 0.0,
        // Scalene's: the percentage of the bytes allocated that were still live at the end
        // (here, at the exit point).
        growth_rate: fp.growth_fraction() * 100.0,
        max_footprint_mb: mib(fp.max_bytes),
        native_allocations_mb: mib(fp.no_python_bytes),
        max_footprint_python_fraction: fp.max_python_fraction,
        max_footprint_fname: fp.peak_at.as_ref().map(|at| at.file.clone()),
        max_footprint_lineno: fp.peak_at.as_ref().map(|at| at.line).filter(|&l| l > 0),
        files: Files(files),
        gpu: p.gpu.is_some(),
        // Scalene's schema knows the kinds "GPU" (NVIDIA) and "Neuron"; the devices' names
        // are under rprof.gpu.devices.
        gpu_device: if p.gpu.is_some() { "GPU" } else { "" },
        memory: h.modes & mode::MEMORY != 0,
        async_profile: false,
        samples: mb_points(&fp.timeline),
        stacks: [],
        combined_stacks: [],
        combined_stacks_timeline: [],
        main_thread_id: None,
        memory_stacks: [],
        rprof: rprof_extras(p, src, advice),
    }
}

/// A timeline of bytes as Scalene's `[ns, MB]` points.
fn mb_points(points: &[(u64, u64)]) -> Vec<(u64, f64)> {
    points.iter().map(|&(t, b)| (t, mib(b))).collect()
}

fn detail(
    p: &Profile,
    line: String,
    lineno: u32,
    t: &Times,
    m: &Memory,
    g: &LineGpu,
) -> FunctionDetail {
    let peak_mb = mib(m.peak_bytes);
    let copy_mb_s = p.copy_rate(m).map_or(0.0, mib_f64);
    let total_ns = p.total.share_base();
    FunctionDetail {
        line,
        lineno,
        memory_samples: mb_points(&m.timeline),
        cpu_samples_list: [],
        // Scalene caps the average at the peak too.
        n_avg_mb: mib_f64(m.avg_bytes).min(peak_mb),
        n_copy_mb_s: copy_mb_s,
        n_core_utilization: 0.0,
        n_cpu_percent_c: percent(t.native_ns, total_ns),
        n_cpu_percent_python: percent(t.python_ns, total_ns),
        n_gpu_avg_memory_mb: mib_f64(g.avg_bytes()),
        n_gpu_peak_memory_mb: mib(g.peak_bytes),
        // Scalene's n_gpu_percent: the line's share of the run's GPU busy time.
        n_gpu_percent: p.gpu_share(g),
        n_growth_mb: mib(m.growth_bytes),
        n_peak_mb: peak_mb,
        n_malloc_mb: mib(m.malloc_bytes),
        n_mallocs: m.mallocs,
        n_python_fraction: m.python_fraction(),
        n_sys_percent: percent(t.sys_ns, total_ns),
        n_usage_fraction: fraction(m.malloc_bytes, p.footprint.malloc_bytes),
        n_async_await_percent: 0.0,
        n_async_concurrency_mean: 0.0,
        n_async_concurrency_peak: 0.0,
        async_task_names: [],
        is_coroutine: false,
    }
}

/// Scalene escapes these so source text cannot inject markup into its HTML viewer, which
/// unescapes them; it keeps the newline, as `readlines` does.
fn escape_line(s: &str) -> String {
    let mut t = s
        .replace('&', "\\u0026")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e");
    t.push('\n');
    t
}

fn rprof_extras(p: &Profile, src: &Sources, advice: &Advice) -> Value {
    let h = &p.header;
    let total = p.total.share_base();
    let threads: Vec<Value> = p
        .threads
        .iter()
        .map(|t| {
            json!({
                "pid": t.pid,
                "tid": t.tid,
                "name": t.name,
                "cpu_percent": percent(t.times.total_ns(), total),
                "samples": t.times.samples,
            })
        })
        .collect();
    let functions: Vec<Value> = p
        .functions
        .iter()
        .filter(|f| f.sampled())
        .map(|f| {
            json!({
                "name": f.name,
                "file": f.file,
                "first_line": f.first_line,
                "kind": if f.kind == FuncKind::Native { "native" } else { "python" },
                "self_percent": percent(f.self_times.total_ns(), total),
                "total_percent": percent(f.total_ns, total),
            })
        })
        .collect();
    // The rows with no line number, which Scalene's `lines` cannot hold, with their file
    // and Scalene's figures of a line: a native function without debug line info (named
    // by `line`), and the pseudo-files' time and memory (frameless, undefined: `line` is
    // the pseudo-file).
    let unnumbered: Vec<Value> = p
        .files
        .iter()
        .flat_map(|f| f.lines.iter().map(move |l| (f, l)))
        .filter(|(_, l)| l.line == 0)
        .map(|(f, l)| {
            let name = l.function.clone().unwrap_or_else(|| f.path.clone());
            let d = detail(p, name, 0, &l.times, &l.memory, &l.gpu);
            let mut v = serde_json::to_value(d).expect("a plain struct serializes");
            v["file"] = json!(f.path);
            v
        })
        .collect();
    let modes = crate::model::figures::modes_on(h.modes);
    let mut extras = json!({
        "format_version": FORMAT_VERSION,
        "pid": h.pid,
        "ppid": h.ppid,
        "exe": h.exe,
        "cwd": h.cwd,
        "argv": h.argv,
        "clock": Clock::from_u8(h.clock).map(Clock::name),
        "sample_hz": h.sample_hz,
        "achieved_hz": p.achieved_hz(),
        "sample_rate": p.sample_rate_note(),
        "modes": modes,
        "python_version": python_version(h.python_version),
        "cpu_time_sec": secs(p.total.total_ns()),
        "profiler_overhead_sec": secs(p.profiler_ns),
        "samples": p.total.samples,
        "profiler_samples": p.profiler_samples,
        "samples_taken": p.end.map(|e| e.samples),
        "dropped": p.end.map(|e| e.dropped),
        "truncated": p.end.map(|e| e.truncated),
        "killed": p.killed(),
        "stopped": p.stopped,
        "damage": p.damage,
        "warnings": p.warnings.iter().chain(src.warnings()).chain(&advice.warnings).collect::<Vec<_>>(),
        "threads": threads,
        "functions": functions,
        "lines_without_number": unnumbered,
        "counters": p.counters.map(|c| json!({
            "allocs": c.allocs,
            "frees": c.frees,
            "alloc_bytes": c.alloc_bytes,
            "live_bytes": c.live_bytes,
            "peak_live_bytes": c.peak_live_bytes,
            "python_live_bytes": c.python_live_bytes,
        })),
        "memory": memory_extras(p),
        "charging": json!({
            "profile_all": p.charging.policy.all,
            "profile_only": p.charging.policy.only,
            "profile_exclude": p.charging.policy.exclude,
            "note": p.charging_note(),
            "recharged_cpu_percent": percent(p.charging.recharged.total_ns(), p.total.share_base()),
            "recharged_malloc_mb": mib(p.charging.recharged_bytes),
        }),
        "gpu": p.gpu.as_ref().map(gpu_extras),
        "marks": p.marks.iter().map(|(t, label)| json!({
            "t_sec": secs(*t),
            "label": label,
        })).collect::<Vec<_>>(),
        "program_marks": p.program_marks().into_iter().map(|(t, label)| json!({
            "t_sec": secs(t),
            "label": label,
        })).collect::<Vec<_>>(),
    });
    if advice.enabled {
        extras["advice"] = advice_json(advice);
    }
    if !p.processes.is_empty() || !p.left_out.is_empty() {
        extras["processes"] = processes_json(p);
        extras["left_out"] = p
            .left_out
            .iter()
            .map(|(trace, why)| json!({ "trace": trace, "why": why }))
            .collect();
    }
    extras
}

/// `rprof.processes`: a merged run's processes (docs/DESIGN.md, "One report of a run").
fn processes_json(p: &Profile) -> Value {
    let total = p.total.share_base();
    p.processes
        .iter()
        .map(|r| {
            json!({
                "pid": r.pid,
                "ppid": r.ppid,
                "argv": r.argv,
                "trace": r.source,
                "run": r.run,
                "cpu_time_sec": secs(r.times.total_ns()),
                "cpu_percent": percent(r.times.total_ns(), total),
                "samples": r.times.samples,
                "peak_bytes": r.peak_bytes,
                "ended": r.ended(),
            })
        })
        .collect()
}

/// `rprof.advice`: one object per hint (docs/ADVICE.md).
pub(crate) fn advice_json(advice: &Advice) -> Value {
    let hints = advice.hints.iter().map(|h| {
        json!({
            "file": h.file,
            "lineno": h.line,
            "lines": [h.lines.0, h.lines.1],
            "function": h.function,
            "rule": h.rule.id(),
            "message": h.message,
            "cpu_percent": h.cpu_percent,
            "alloc_mb": h.alloc_mb,
            "example": h.example,
            "estimated_saving": h.saving,
        })
    });
    Value::Array(hints.collect())
}

/// `rprof.gpu`: where the figures came from, the part charged to no line, the timeline,
/// and each device on its own (the Scalene fields sum them).
fn gpu_extras(g: &GpuSummary) -> Value {
    let scope = |own: bool| if own { "process" } else { "device" };
    json!({
        "utilization_source": scope(g.process_util()),
        "memory_source": scope(g.process_memory()),
        "unattributed_percent": if g.busy > 0.0 { g.unattributed / g.busy * 100.0 } else { 0.0 },
        "busy_gpu_sec": g.busy / 100.0 / 1e9,
        "timeline": g.timeline.iter().map(|&(t, u, m)| json!([t, u, mib(m)])).collect::<Vec<_>>(),
        "devices": g.devices.iter().map(|d| json!({
            "index": d.index,
            "name": d.name,
            "memory_total_mb": mib(d.memory_total),
            "readings": d.readings,
            "avg_utilization_percent": d.avg_util,
            "peak_utilization_percent": d.peak_util,
            "avg_memory_mb": mib_f64(d.avg_memory),
            "peak_memory_mb": mib(d.peak_memory),
            "utilization_source": scope(d.process_util),
            "memory_source": scope(d.process_memory),
        })).collect::<Vec<_>>(),
    })
}

/// The memory sampling and what the Scalene fields leave out: the estimated peak, the
/// exit point, and the evidence behind each leak.
fn memory_extras(p: &Profile) -> Value {
    let fp = &p.footprint;
    let leaks: Vec<Value> = p
        .files
        .iter()
        .flat_map(|f| f.lines.iter().map(move |l| (f, l)))
        .filter_map(|(f, l)| {
            let leak = l.memory.leak?;
            Some(json!({
                "file": f.path,
                "line": l.line,
                "function": l.function,
                "likelihood": leak.likelihood,
                "velocity_mb_s": mib_f64(leak.velocity),
                "r2": leak.r2,
                "growth_mb": mib(l.memory.growth_bytes),
            }))
        })
        .collect();
    json!({
        "mem_rate": p.header.mem_rate,
        "copy_rate": p.header.copy_rate,
        "alloc_samples": fp.alloc_samples,
        "free_samples": fp.free_samples,
        "unmatched_frees": fp.unmatched_frees,
        "copy_samples": fp.copy_samples,
        "malloc_mb": mib(fp.malloc_bytes),
        "copy_mb": mib(fp.copy_bytes),
        "estimated_peak_mb": mib(fp.peak_bytes),
        "estimated_peak_sec": secs(fp.peak_ns),
        "max_footprint_sec": secs(fp.max_ns),
        "exit_sec": secs(fp.exit_ns),
        "kept_mb": mib(fp.kept_bytes),
        "leaks": leaks,
    })
}

/// Scalene's `program` (the script), `args` (its arguments) and `entrypoint_dir` (the
/// script's directory), recovered from the command line.
struct Program {
    program: String,
    args: Vec<String>,
    dir: String,
}

impl Program {
    fn of(argv: &[String], exe: &str, cwd: &str, python: bool) -> Program {
        let rest = argv.get(1..).unwrap_or_default();
        let script = if python { python_script(rest) } else { None };
        match script {
            Some((PyEntry::Script, i)) => {
                let path = Path::new(cwd).join(&rest[i]);
                Program {
                    program: path.to_string_lossy().into_owned(),
                    args: rest[i..].to_vec(),
                    dir: path
                        .parent()
                        .map_or_else(|| cwd.to_string(), |d| d.to_string_lossy().into_owned()),
                }
            }
            Some((PyEntry::Module(m), i)) => Program {
                program: m,
                args: rest[i..].to_vec(),
                dir: cwd.to_string(),
            },
            // `python -c CMD a b` runs with sys.argv == ["-c", "a", "b"].
            Some((PyEntry::Command, i)) => {
                let mut args = vec!["-c".to_string()];
                args.extend_from_slice(rest.get(i + 1..).unwrap_or_default());
                Program {
                    program: "-c".to_string(),
                    args,
                    dir: cwd.to_string(),
                }
            }
            None => {
                let program = if exe.is_empty() {
                    argv.first().cloned().unwrap_or_default()
                } else {
                    exe.to_string()
                };
                let dir = Path::new(&program).parent().filter(|d| d.is_absolute());
                Program {
                    dir: dir.map_or_else(|| cwd.to_string(), |d| d.to_string_lossy().into_owned()),
                    program,
                    args: rest.to_vec(),
                }
            }
        }
    }
}

enum PyEntry {
    Script,
    Module(String),
    Command,
}

/// What a `python` command line runs, and where in `args`: the script (its `sys.argv`
/// starts there), the module name, or the command text. Follows CPython's option syntax: flags combine (`-uOc`), and `-c`, `-m`, `-W`
/// and `-X` take the rest of their argument or the next one.
fn python_script(args: &[String]) -> Option<(PyEntry, usize)> {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        if a == "--" {
            return args.get(i + 1).map(|_| (PyEntry::Script, i + 1));
        }
        if a == "-" || !a.starts_with('-') {
            return (a != "-").then_some((PyEntry::Script, i));
        }
        if a == "--check-hash-based-pycs" {
            i += 2;
            continue;
        }
        if !a.starts_with("--") {
            for (k, c) in a.char_indices().skip(1) {
                let attached = k + c.len_utf8() < a.len();
                match c {
                    'c' => return Some((PyEntry::Command, i + usize::from(!attached))),
                    'm' => {
                        let (name, at) = if attached {
                            (a[k + 1..].to_string(), i)
                        } else {
                            (args.get(i + 1)?.clone(), i + 1)
                        };
                        return Some((PyEntry::Module(name), at));
                    }
                    'W' | 'X' => {
                        i += usize::from(!attached);
                        break;
                    }
                    _ => {}
                }
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(argv: &[&str]) -> (String, Vec<String>, String) {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let p = Program::of(&argv, "/usr/bin/python3", "/home/u", true);
        (p.program, p.args, p.dir)
    }

    #[test]
    fn finds_the_python_entry_point() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            program(&["python3", "x.py", "-v"]),
            ("/home/u/x.py".into(), s(&["x.py", "-v"]), "/home/u".into())
        );
        assert_eq!(
            program(&["python3", "-u", "-X", "dev", "/a/y.py"]).0,
            "/a/y.py"
        );
        assert_eq!(
            program(&["python3", "-Wignore", "sub/z.py"]).2,
            "/home/u/sub"
        );
        assert_eq!(
            program(&["python3", "-m", "pkg.mod", "a"]),
            ("pkg.mod".into(), s(&["pkg.mod", "a"]), "/home/u".into())
        );
        assert_eq!(program(&["python3", "-umpkg"]).0, "pkg");
        assert_eq!(
            program(&["python3", "-c", "print(1)", "a"]).1,
            s(&["-c", "a"])
        );
        assert_eq!(program(&["python3", "-Scprint(1)"]).1, s(&["-c"]));
        assert_eq!(program(&["python3", "-c"]).1, s(&["-c"]));
        // Interactive Python has no script; the interpreter stands in for it.
        assert_eq!(program(&["python3"]).0, "/usr/bin/python3");
        assert_eq!(program(&["python3", "-m"]).0, "/usr/bin/python3");
    }

    #[test]
    fn escapes_source_like_scalene() {
        assert_eq!(
            escape_line("if a < b && c > d:"),
            "if a \\u003c b \\u0026\\u0026 c \\u003e d:\n"
        );
    }
}
