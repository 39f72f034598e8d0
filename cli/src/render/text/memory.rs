//! The memory parts of the terminal report, shown when memory was profiled: columns per
//! line and per function, the footprint over time, the top lines, and likely leaks.
//! Amounts are in MiB.

use super::layout::{clean, expand_tabs, fit_left, mib, mib_cell, mib_number, seconds, Out};
use super::sparkline::sparkline;
use crate::model::figures::percent;
use crate::model::{leaks, FileProfile, LineProfile, Memory, Profile};
use crate::source::Sources;

/// Report width with the memory columns.
pub const WIDTH: usize = 120;
/// Columns of a line's memory timeline, and of the footprint's.
const LINE_SPARK: usize = 10;
const FOOTPRINT_SPARK: usize = 64;
/// Lines listed by memory allocated, and by peak.
const TOP: usize = 5;

pub const LINE_HEADER: &str = concat!(
    "  Line  Python  Native  System   Total",
    "     Avg    Peak   Alloc  Growth   Py%  Copy/s",
    "  Timeline    Source"
);

/// The memory columns of a report narrower than [`WIDTH`]: peak, allocated, Python share.
pub const COMPACT_HEADER: &str = concat!(
    "  Line  Python  Native  System   Total",
    "    Peak   Alloc   Py%",
    "  Source"
);

pub const FUNCTION_HEADER: &str =
    "    Self   Total   Alloc    Peak  Function                          Defined at";

pub fn has_samples(p: &Profile) -> bool {
    p.footprint.alloc_samples > 0 || p.footprint.copy_samples > 0
}

/// The sampling, under the report's header.
pub fn header(out: &mut Out, p: &Profile) {
    let fp = &p.footprint;
    let rate = if p.header.mem_rate > 0 {
        format!(
            ", one per ≥{:.1} KiB allocated on average",
            p.header.mem_rate as f64 / 1024.0
        )
    } else {
        String::new()
    };
    out.wrap(
        &format!(
            "{} samples{rate}, {} frees of them; memory in MiB (2^20 bytes)",
            fp.alloc_samples, fp.free_samples
        ),
        "Allocs    ",
        "          ",
    );
}

/// What a file allocated, after its time share.
pub fn file_share(p: &Profile, f: &FileProfile) -> String {
    let bytes = f.malloc_bytes();
    if bytes == 0 {
        return String::new();
    }
    format!(
        "; {} allocated ({:.1}%)",
        mib(bytes),
        percent(bytes, p.footprint.malloc_bytes as f64)
    )
}

/// A line's memory cells, after its time cells (see [`LINE_HEADER`]).
pub fn line_cells(p: &Profile, m: &Memory) -> String {
    let python = python_cell(m);
    let copy = p.copy_rate(m).map_or_else(|| " ".repeat(8), mib_cell);
    let spark = sparkline(&m.timeline, p.elapsed_ns, LINE_SPARK, m.peak_bytes);
    format!(
        "{}{}{}{}{python}{copy}  {spark}",
        mib_cell(m.avg_bytes),
        mib_cell(m.peak_bytes as f64),
        mib_cell(m.malloc_bytes as f64),
        mib_cell(m.growth_bytes as f64),
    )
}

/// A line's memory cells in a narrow report (see [`COMPACT_HEADER`]).
pub fn compact_cells(m: &Memory) -> String {
    format!(
        "{}{}{}",
        mib_cell(m.peak_bytes as f64),
        mib_cell(m.malloc_bytes as f64),
        python_cell(m)
    )
}

/// The Python allocator's share of a line's bytes, 6 columns; blank for none.
fn python_cell(m: &Memory) -> String {
    if m.malloc_bytes == 0 {
        " ".repeat(6)
    } else {
        format!("{:>6}", format!("{:.0}%", 100.0 * m.python_fraction()))
    }
}

/// A function's memory cells (see [`FUNCTION_HEADER`]).
pub fn function_cells(m: &Memory) -> String {
    format!(
        "{}{}",
        mib_cell(m.malloc_bytes as f64),
        mib_cell(m.peak_bytes as f64)
    )
}

/// The footprint, the top lines, and the leaks.
pub fn sections(out: &mut Out, p: &Profile, src: &Sources) {
    footprint(out, p, src);
    top(out, p, src);
    leaks(out, p, src);
}

fn footprint(out: &mut Out, p: &Profile, src: &Sources) {
    let fp = &p.footprint;
    out.blank();
    out.line("Memory footprint");
    if fp.timeline.is_empty() {
        out.line(&format!(
            "  Peak      {} (estimated from samples) at {}",
            mib(fp.peak_bytes),
            seconds(fp.peak_ns)
        ));
    } else {
        out.line(&format!(
            "  Peak      {} by {}, {:.0}% of it in Python's allocator",
            mib(fp.max_bytes),
            seconds(fp.max_ns),
            100.0 * fp.max_python_fraction
        ));
        let spark = sparkline(&fp.timeline, p.elapsed_ns, FOOTPRINT_SPARK, fp.max_bytes);
        out.line(&format!(
            "  Live      {spark}  (full block: {})",
            mib(fp.max_bytes)
        ));
    }
    if let Some(at) = &fp.peak_at {
        out.line(&format!(
            "  Reached   at {} (estimated peak {} at {})",
            location(src, &at.file, at.line, at.function.as_deref(), 60),
            mib(fp.peak_bytes),
            seconds(fp.peak_ns)
        ));
    }
    let growth = 100.0 * fp.growth_fraction();
    let which = if p.header.python_version != 0 {
        ": the malloc family and Python's allocator, small objects included"
    } else {
        ""
    };
    out.wrap(
        &format!(
            "{} in all (estimated from samples{which}), {} in code with no Python frame; \
             {:.1}% still live at exit",
            mib(fp.malloc_bytes),
            mib(fp.no_python_bytes),
            growth
        ),
        "  Allocated ",
        "            ",
    );
    if fp.exit_ns < p.elapsed_ns {
        out.line(&format!(
            "  Exit      the interpreter began finalizing at {}: later frees are teardown",
            seconds(fp.exit_ns)
        ));
    }
    if fp.copy_samples > 0 {
        out.line(&format!("  Copied    {}", mib(fp.copy_bytes)));
    }
}

/// The lines that allocated the most, and those that held the most at once.
fn top(out: &mut Out, p: &Profile, src: &Sources) {
    let fp = &p.footprint;
    let mut lines: Vec<(&FileProfile, &LineProfile)> = p
        .files
        .iter()
        .flat_map(|f| f.lines.iter().map(move |l| (f, l)))
        .filter(|(_, l)| l.memory.malloc_bytes > 0)
        .collect();
    if lines.is_empty() {
        return;
    }
    let mut list = |title: &str, key: fn(&Memory) -> u64, whole: u64| {
        lines.sort_by_key(|(f, l)| (std::cmp::Reverse(key(&l.memory)), f.path.as_str(), l.line));
        out.blank();
        out.line(title);
        for (f, l) in lines.iter().take(TOP) {
            let v = key(&l.memory);
            out.line(&format!(
                "{:>10}{:>8}  {}",
                mib_number(v as f64),
                format!("{:.1}%", percent(v, whole as f64)),
                location(src, &f.path, l.line, l.function.as_deref(), 80),
            ));
        }
    };
    list(
        "Top lines by memory allocated (MiB, share of all allocated)",
        |m| m.malloc_bytes,
        fp.malloc_bytes,
    );
    list(
        "Top lines by peak memory (MiB, share of the peak footprint)",
        |m| m.peak_bytes,
        p.footprint.peak_base(),
    );
}

fn leaks(out: &mut Out, p: &Profile, src: &Sources) {
    let found: Vec<(&FileProfile, &LineProfile, leaks::Leak)> = p
        .files
        .iter()
        .flat_map(|f| f.lines.iter().map(move |l| (f, l)))
        .filter_map(|(f, l)| Some((f, l, l.memory.leak?)))
        .collect();
    out.blank();
    if found.is_empty() {
        out.line("Likely leaks: none");
        return;
    }
    out.line(&format!(
        "Likely leaks (rarely freed, growing steadily through the run; likelihood >= {:.0}%)",
        100.0 * leaks::MIN_LIKELIHOOD
    ));
    for (f, l, leak) in found {
        out.line(&format!(
            "  {} not freed, {} MiB/s, likelihood {:.1}%  {}",
            mib(l.memory.growth_bytes),
            mib_number(leak.velocity),
            100.0 * leak.likelihood,
            location(src, &f.path, l.line, l.function.as_deref(), 60),
        ));
    }
}

/// `file:line  source text`, the path cut to `width` from the left.
/// `file:line  source`; for a row with no line, `file  function` (the function it stands
/// for, where the source would be).
fn location(src: &Sources, file: &str, line: u32, function: Option<&str>, width: usize) -> String {
    let at = if line == 0 {
        fit_left(&clean(file), width)
    } else {
        let n = format!(":{line}");
        format!("{}{n}", fit_left(&clean(file), width - n.len()))
    };
    match function
        .map(clean)
        .or_else(|| src.line(file, line).map(|t| expand_tabs(t.trim())))
    {
        Some(text) => format!("{at}  {text}"),
        None => at,
    }
}
