//! The terminal report: a header, then per file the lines that matter, then memory
//! (footprint, top lines, leaks), functions, threads, and whatever was wrong with the
//! trace. Fits in [`width`] columns: 100, or 120 with the memory columns, and the GPU
//! columns' width more when the trace has GPU readings.

mod advice;
mod gpu;
pub(crate) mod layout;
mod marks;
mod memory;
mod processes;
mod sparkline;

use super::Shown;
use crate::advice::Advice;
use crate::model::figures::{percent, python_version};
use crate::model::{frameless_file, FileProfile, Profile};
use crate::report::ReportOptions;
use crate::source::Sources;
use layout::{bar, clean, expand_tabs, fit, fit_left, mib, pct, seconds, shell_quote, Out};
use rprof_format::{mode, Clock, FuncKind};

const WIDTH: usize = 100;
const BAR: usize = 10;

/// The columns the report of `p` fits in.
pub fn width(p: &Profile) -> usize {
    let gpu_columns = if p.gpu.is_some() { gpu::COLUMNS } else { 0 };
    if p.has_memory() {
        memory::WIDTH + gpu_columns
    } else {
        WIDTH + gpu_columns
    }
}

/// The narrowest report: the time columns, the compact memory columns and a little source.
pub const MIN_WIDTH: usize = 72;

/// The columns the report of `p` is written in: what the options or the terminal say
/// ([`ReportOptions::columns`]), at least [`MIN_WIDTH`], else [`width`].
pub fn report_width(p: &Profile, opts: &ReportOptions) -> usize {
    opts.columns()
        .map_or_else(|| width(p), |w| w.max(MIN_WIDTH))
}

pub fn render(p: &Profile, src: &Sources, opts: &ReportOptions, advice: &Advice) -> String {
    let mem = p.has_memory();
    let mut out = Out::new(report_width(p, opts));
    header(&mut out, p);
    if mem {
        memory::header(&mut out, p);
    }
    processes::table(&mut out, p);
    gpu::header(&mut out, p);
    let shown = Shown { p, opts };
    if p.total.samples == 0 {
        out.text.push_str("\nNo CPU samples in this trace.\n");
    }
    if p.total.samples > 0 || memory::has_samples(p) {
        files(&mut out, p, src, &shown, advice);
        advice::elsewhere(&mut out, advice, |file, line| shown.row(file, line));
        if mem {
            memory::sections(&mut out, p, src);
        }
        functions(&mut out, p, opts);
        threads(&mut out, p);
    }
    marks::section(&mut out, p);
    problems(&mut out, p, src, advice);
    out.text
}

/// The profiled command as a shell would read it back, or the executable.
pub fn command_line(p: &Profile) -> String {
    let h = &p.header;
    let argv: Vec<String> = h.argv.iter().map(|a| shell_quote(a)).collect();
    if argv.is_empty() {
        clean(&h.exe)
    } else {
        argv.join(" ")
    }
}

fn header(out: &mut Out, p: &Profile) {
    let h = &p.header;
    out.wrap(&command_line(p), "Program   ", "          ");
    match p.processes.len() {
        0 | 1 => out.line(&format!("PID       {}", h.pid)),
        n => out.line(&format!(
            "PID       {} and {} more processes of its run (see Processes)",
            h.pid,
            n - 1
        )),
    }
    let elapsed = seconds(p.elapsed_ns);
    match p.end {
        Some(_) => out.line(&format!("Elapsed   {elapsed} wall")),
        None => out.line(&format!(
            "Elapsed   at least {elapsed} wall (the trace has no end)"
        )),
    }
    let clock = Clock::from_u8(h.clock);
    let what = match clock {
        Some(Clock::Wall) => "wall time",
        _ => "CPU time",
    };
    let dropped = match p.end {
        Some(e) => format!("{} dropped", e.dropped),
        None => "dropped unknown".to_string(),
    };
    out.line(&format!(
        "Sampled   {} of {what} in {} samples, {dropped}",
        seconds(p.total.total_ns()),
        p.total.samples
    ));
    if p.profiler_ns > 0 {
        let all = (p.total.total_ns() + p.profiler_ns) as f64;
        out.line(&format!(
            "Overhead  {} ({:.1}%) more in rprof's own hooks, charged to no line",
            seconds(p.profiler_ns),
            100.0 * p.profiler_ns as f64 / all
        ));
    }
    let clock = clock.map_or_else(
        || format!("unknown clock {}", h.clock),
        |c| c.name().to_string(),
    );
    out.wrap(
        &format!("{clock}, {}", p.sample_rate_note()),
        "Clock     ",
        "          ",
    );
    let py = python_version(h.python_version).unwrap_or_else(|| "not Python".to_string());
    out.line(&format!("Python    {py}"));
    if h.python_version != 0 {
        out.wrap(&p.charging_note(), "Charged   ", "          ");
    }
    match p.counters {
        // The exact counters count the malloc family's calls; Python's small objects,
        // which pymalloc serves from its arenas, are not among them (the arenas are in
        // the live bytes). The footprint's "Allocated" is the samples' estimate of both.
        Some(c) if h.modes & mode::MEMORY != 0 => {
            let python = if h.python_version != 0 {
                "; Python's small objects, served from pymalloc's arenas, are not among them"
            } else {
                ""
            };
            out.wrap(
                &format!(
                    "peak {} live (exact); the malloc family: {} allocations of {} in all \
                     (exact counts{python})",
                    mib(c.peak_live_bytes),
                    c.allocs,
                    mib(c.alloc_bytes)
                ),
                "Memory    ",
                "          ",
            )
        }
        _ if h.modes & mode::MEMORY == 0 => out.line("Memory    not recorded (memory mode off)"),
        _ => {}
    }
}

fn files(out: &mut Out, p: &Profile, src: &Sources, shown: &Shown, advice: &Advice) {
    let total = p.total.share_base();
    let (mut hidden, mut hidden_ns) = (0usize, 0u64);
    for f in &p.files {
        if !shown.file(f) {
            hidden += 1;
            hidden_ns = hidden_ns.saturating_add(f.times.total_ns());
            continue;
        }
        file(out, p, f, src, shown, advice);
    }
    let floored = p
        .files
        .iter()
        .flat_map(|f| &f.lines)
        .filter(|l| !shown.opts.all_lines && shown.under_floor(l))
        .count();
    if floored > 0 {
        out.blank();
        out.wrap(
            &format!(
                "{floored} lines with {}% of the memory or more are hidden: their figures are \
                 below the sampling's noise floor ({} MiB, four sampling periods; \
                 --all-lines shows them)",
                shown.opts.threshold,
                layout::mib_number(p.memory_floor() as f64)
            ),
            "",
            "",
        );
    }
    if hidden > 0 {
        out.blank();
        out.line(&format!(
            "{hidden} files under the {}% threshold have {:.1}% of the time in all \
             (--all-lines shows them)",
            shown.opts.threshold,
            percent(hidden_ns, total),
        ));
    }
}

fn file(
    out: &mut Out,
    p: &Profile,
    f: &FileProfile,
    src: &Sources,
    shown: &Shown,
    advice: &Advice,
) {
    let total = p.total.share_base();
    let mem = p.has_memory();
    let t = &f.times;
    let frameless = frameless_file(&f.path);
    let name = match frameless {
        Some(what) => format!("{} ({what})", clean(&f.path)),
        None => clean(&f.path),
    };
    let mut share = format!(
        "{:.1}% of the time (Python {:.1}%, native {:.1}%, system {:.1}%)",
        percent(t.total_ns(), total),
        percent(t.python_ns, total),
        percent(t.native_ns, total),
        percent(t.sys_ns, total),
    );
    if mem {
        share.push_str(&memory::file_share(p, f));
    }
    out.blank();
    if name.chars().count() + share.chars().count() + 2 <= out.width {
        out.line(&format!("{name}: {share}"));
    } else {
        out.line(&fit_left(&name, out.width));
        out.wrap(&share, "  ", "  ");
    }
    if frameless.is_some() {
        return;
    }
    let rows: Vec<_> = f.lines.iter().filter(|l| shown.line(l)).collect();
    if rows.is_empty() {
        let what = if mem {
            "of the time or memory"
        } else {
            "of the time"
        };
        out.line(&format!("  (no line has {}% {what})", shown.opts.threshold));
        return;
    }
    // Narrower than the full memory columns need (and a little source): the compact ones.
    let compact = mem && out.width < memory::WIDTH;
    let columns = if compact {
        memory::COMPACT_HEADER
    } else if mem {
        memory::LINE_HEADER
    } else {
        "  Line  Python  Native  System   Total              Source"
    };
    if p.gpu.is_some() {
        out.line(&gpu::with_header(columns));
    } else {
        out.line(columns);
    }
    for l in rows {
        let t = &l.times;
        // A row with no line (a native function without debug line info) is its
        // function: the name where the source would be, the line column left blank.
        let (lineno, text) = match &l.function {
            Some(name) if l.line == 0 => (String::new(), clean(name)),
            // A pseudo-file's line 0 (a stack never defined): no number either.
            _ if l.line == 0 => (String::new(), String::new()),
            _ => (
                l.line.to_string(),
                src.line(&f.path, l.line)
                    .map(expand_tabs)
                    .unwrap_or_default(),
            ),
        };
        let mut cpu = format!(
            "{lineno:>6}{}{}{}{}",
            pct(t.python_ns, total),
            pct(t.native_ns, total),
            pct(t.sys_ns, total),
            pct(t.total_ns(), total),
        );
        if p.gpu.is_some() {
            cpu.push_str(&gpu::line_cells(p, &l.gpu));
        }
        if compact {
            out.line(&format!(
                "{cpu}{}  {text}",
                memory::compact_cells(&l.memory)
            ));
        } else if mem {
            out.line(&format!(
                "{cpu}{}  {text}",
                memory::line_cells(p, &l.memory)
            ));
        } else {
            let bar = bar(percent(t.total_ns(), total), BAR);
            out.line(&format!("{cpu}  {bar}  {text}"));
        }
        advice::beside(out, advice, &f.path, l.line);
    }
}

fn functions(out: &mut Out, p: &Profile, opts: &ReportOptions) {
    let listed: Vec<_> = p.functions.iter().filter(|f| f.sampled()).collect();
    if opts.functions == 0 || listed.is_empty() {
        return;
    }
    let total = p.total.share_base();
    let n = opts.functions.min(listed.len());
    let mem = p.has_memory();
    out.blank();
    out.line(&format!(
        "Functions by self time (top {n} of {})",
        listed.len()
    ));
    if mem {
        out.line(memory::FUNCTION_HEADER);
    } else {
        out.line("    Self   Total  Function                          Defined at");
    }
    for f in &listed[..n] {
        let native = if f.kind == FuncKind::Native {
            " [native]"
        } else {
            ""
        };
        let name = fit(&format!("{}{native}", clean(&f.name)), 32);
        let mut cells = format!(
            "{}{}",
            pct(f.self_times.total_ns(), total),
            pct(f.total_ns, total)
        );
        if mem {
            cells.push_str(&memory::function_cells(&f.memory));
        }
        // A native function's first line is unknown (0) where its debug info gives only
        // the lines it was sampled at: its file alone, not a made-up ":0".
        let at = match f.first_line {
            0 => clean(&f.file),
            n => format!("{}:{n}", clean(&f.file)),
        };
        let room = out.width.saturating_sub(cells.chars().count() + 36).max(12);
        let at = fit_left(&at, room);
        out.line(&format!("{cells}  {name:<32}  {at}"));
    }
}

fn threads(out: &mut Out, p: &Profile) {
    if p.threads.is_empty() {
        return;
    }
    let total = p.total.share_base();
    out.blank();
    out.line("Threads");
    out.line("       TID   Share  Samples  Name");
    for t in &p.threads {
        let name = t.name.as_deref().map(clean).unwrap_or_default();
        out.line(&format!(
            "{:>10}{}{:>9}  {name}",
            t.tid,
            pct(t.times.total_ns(), total),
            t.times.samples
        ));
    }
}

fn problems(out: &mut Out, p: &Profile, src: &Sources, advice: &Advice) {
    let mut all = super::problems(p, src);
    all.extend(advice.warnings.iter().cloned());
    if all.is_empty() {
        return;
    }
    out.blank();
    out.line("Warnings");
    for w in all {
        out.wrap(&clean(&w), "  ! ", "    ");
    }
}
