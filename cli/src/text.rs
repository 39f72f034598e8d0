//! The terminal report: a header, then per file the lines that matter, then functions,
//! threads, and whatever was wrong with the trace. Fits in 100 columns.

use crate::profile::{percent, python_version, FileProfile, Profile, Times, NO_PYTHON_FRAME};
use crate::report::ReportOptions;
use crate::source::Sources;
use rprof_format::{Clock, FuncKind};

const WIDTH: usize = 100;
const BAR: usize = 10;

pub fn render(p: &Profile, src: &Sources, opts: &ReportOptions) -> String {
    let mut out = String::new();
    header(&mut out, p);
    if p.total.samples == 0 {
        out.push_str("\nNo CPU samples in this trace.\n");
    } else {
        files(&mut out, p, src, opts);
        functions(&mut out, p, opts);
        threads(&mut out, p);
    }
    problems(&mut out, p, src);
    out
}

fn header(out: &mut String, p: &Profile) {
    let h = &p.header;
    let argv: Vec<String> = h.argv.iter().map(|a| shell_quote(a)).collect();
    let program = if argv.is_empty() {
        clean(&h.exe)
    } else {
        argv.join(" ")
    };
    line(out, &format!("Program   {program}"));
    line(out, &format!("PID       {}", h.pid));
    let elapsed = seconds(p.elapsed_ns);
    match p.end {
        Some(_) => line(out, &format!("Elapsed   {elapsed} wall")),
        None => line(
            out,
            &format!("Elapsed   at least {elapsed} wall (the trace has no end)"),
        ),
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
    line(
        out,
        &format!(
            "Sampled   {} of {what} in {} samples, {dropped}",
            seconds(p.total.total_ns()),
            p.total.samples
        ),
    );
    let clock = clock.map_or_else(
        || format!("unknown clock {}", h.clock),
        |c| c.name().to_string(),
    );
    line(out, &format!("Clock     {clock}, {} Hz", h.sample_hz));
    let py = python_version(h.python_version).unwrap_or_else(|| "not Python".to_string());
    line(out, &format!("Python    {py}"));
    if let Some(c) = p.counters {
        line(
            out,
            &format!(
                "Memory    peak {} live, {} allocations of {} in all",
                mib(c.peak_live_bytes),
                c.allocs,
                mib(c.alloc_bytes)
            ),
        );
    }
}

fn files(out: &mut String, p: &Profile, src: &Sources, opts: &ReportOptions) {
    let total = p.total.share_base();
    let shown = |t: &Times| opts.all_lines || percent(t.total_ns(), total) >= opts.threshold;
    let (mut hidden, mut hidden_ns) = (0usize, 0u64);
    for f in &p.files {
        if !shown(&f.times) {
            hidden += 1;
            hidden_ns = hidden_ns.saturating_add(f.times.total_ns());
            continue;
        }
        file(out, f, total, src, opts, &shown);
    }
    if hidden > 0 {
        out.push('\n');
        line(
            out,
            &format!(
                "{hidden} files under the {}% threshold have {:.1}% of the time in all \
                 (--all-lines shows them)",
                opts.threshold,
                percent(hidden_ns, total),
            ),
        );
    }
}

fn file(
    out: &mut String,
    f: &FileProfile,
    total: f64,
    src: &Sources,
    opts: &ReportOptions,
    shown: &dyn Fn(&Times) -> bool,
) {
    let t = &f.times;
    let what = if f.path == NO_PYTHON_FRAME {
        " (no Python frame)"
    } else {
        ""
    };
    let name = format!("{}{what}", clean(&f.path));
    let share = format!(
        "{:.1}% of the time (Python {:.1}%, native {:.1}%, system {:.1}%)",
        percent(t.total_ns(), total),
        percent(t.python_ns, total),
        percent(t.native_ns, total),
        percent(t.sys_ns, total),
    );
    out.push('\n');
    if name.chars().count() + share.len() + 2 <= WIDTH {
        line(out, &format!("{name}: {share}"));
    } else {
        line(out, &fit_left(&name, WIDTH));
        line(out, &format!("  {share}"));
    }
    if f.path == NO_PYTHON_FRAME {
        return;
    }
    let rows: Vec<_> = f.lines.iter().filter(|l| shown(&l.times)).collect();
    if rows.is_empty() {
        line(
            out,
            &format!("  (no line has {}% of the time)", opts.threshold),
        );
        return;
    }
    line(
        out,
        "  Line  Python  Native  System   Total              Source",
    );
    for l in rows {
        let t = &l.times;
        let lineno = if l.line == 0 {
            "?".to_string()
        } else {
            l.line.to_string()
        };
        let text = src
            .line(&f.path, l.line)
            .map(expand_tabs)
            .unwrap_or_default();
        line(
            out,
            &format!(
                "{lineno:>6}{}{}{}{}  {}  {text}",
                pct(t.python_ns, total),
                pct(t.native_ns, total),
                pct(t.sys_ns, total),
                pct(t.total_ns(), total),
                bar(percent(t.total_ns(), total)),
            ),
        );
    }
}

fn functions(out: &mut String, p: &Profile, opts: &ReportOptions) {
    if opts.functions == 0 || p.functions.is_empty() {
        return;
    }
    let total = p.total.share_base();
    let n = opts.functions.min(p.functions.len());
    out.push('\n');
    line(
        out,
        &format!("Functions by self time (top {n} of {})", p.functions.len()),
    );
    line(
        out,
        "    Self   Total  Function                          Defined at",
    );
    for f in &p.functions[..n] {
        let native = if f.kind == FuncKind::Native {
            " [native]"
        } else {
            ""
        };
        let name = fit(&format!("{}{native}", clean(&f.name)), 32);
        let at = format!("{}:{}", clean(&f.file), f.first_line);
        let at = fit_left(&at, WIDTH - 52);
        line(
            out,
            &format!(
                "{}{}  {name:<32}  {at}",
                pct(f.self_times.total_ns(), total),
                pct(f.total_ns, total)
            ),
        );
    }
}

fn threads(out: &mut String, p: &Profile) {
    let total = p.total.share_base();
    out.push('\n');
    line(out, "Threads");
    line(out, "       TID   Share  Samples  Name");
    for t in &p.threads {
        let name = t.name.as_deref().map(clean).unwrap_or_default();
        line(
            out,
            &format!(
                "{:>10}{}{:>9}  {name}",
                t.tid,
                pct(t.times.total_ns(), total),
                t.times.samples
            ),
        );
    }
}

fn problems(out: &mut String, p: &Profile, src: &Sources) {
    let killed = p.killed().then(|| {
        "the trace has no end record: the process was killed (or crashed) before rprof could \
         finish it; the report covers what was written until then"
            .to_string()
    });
    let all: Vec<&String> = p
        .damage
        .iter()
        .chain(&killed)
        .chain(&p.warnings)
        .chain(src.warnings())
        .collect();
    if all.is_empty() {
        return;
    }
    out.push('\n');
    line(out, "Warnings");
    for w in all {
        wrap(out, &clean(w), "  ! ", "    ");
    }
}

/// A percentage cell, 8 columns; blank for no time at all, as Scalene leaves it.
fn pct(part: u64, total: f64) -> String {
    if part == 0 {
        " ".repeat(8)
    } else {
        format!("{:>8}", format!("{:.1}%", percent(part, total)))
    }
}

fn bar(pct: f64) -> String {
    const PARTS: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    let eighths = ((pct / 100.0 * (BAR * 8) as f64).round() as usize).min(BAR * 8);
    let mut s = "█".repeat(eighths / 8);
    s.push_str(PARTS[eighths % 8]);
    let used = eighths.div_ceil(8);
    s.push_str(&" ".repeat(BAR - used));
    s
}

fn seconds(ns: u64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// Appends one line, cut to the report width.
fn line(out: &mut String, s: &str) {
    let s = fit(s, WIDTH);
    out.push_str(s.trim_end());
    out.push('\n');
}

/// Cuts `s` to `width` characters, marking the cut.
fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut t: String = s.chars().take(width - 1).collect();
    t.push('…');
    t
}

/// Cuts from the left, for paths, whose end says the most.
fn fit_left(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        return s.to_string();
    }
    let mut t = String::from("…");
    t.extend(s.chars().skip(n - width + 1));
    t
}

fn wrap(out: &mut String, s: &str, first: &str, rest: &str) {
    let mut cur = first.to_string();
    let mut empty = true;
    for word in s.split_whitespace() {
        if !empty && cur.chars().count() + 1 + word.chars().count() > WIDTH {
            line(out, &cur);
            cur = rest.to_string();
            empty = true;
        }
        if !empty {
            cur.push(' ');
        }
        cur.push_str(word);
        empty = false;
    }
    line(out, &cur);
}

/// Source text with tabs at 8-column stops, and without control characters.
fn expand_tabs(s: &str) -> String {
    let mut t = String::with_capacity(s.len());
    let mut col = 0;
    for c in s.chars() {
        if c == '\t' {
            let n = 8 - col % 8;
            t.push_str(&" ".repeat(n));
            col += n;
        } else {
            t.push(if c.is_control() { '\u{fffd}' } else { c });
            col += 1;
        }
    }
    t
}

/// Text from the trace, made safe for a terminal: a name may hold escape sequences.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// Quotes an argument that a shell would split or expand, so the command line reads back.
fn shell_quote(a: &str) -> String {
    let plain = !a.is_empty()
        && a.chars()
            .all(|c| c.is_alphanumeric() || "-_./=:,+@%".contains(c));
    let a = clean(a);
    if plain {
        a
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_use_eighths() {
        assert_eq!(bar(0.0), " ".repeat(10));
        assert_eq!(bar(100.0), "█".repeat(10));
        assert_eq!(bar(55.0), "█████▌    ");
        assert_eq!(bar(250.0), "█".repeat(10));
    }

    #[test]
    fn cuts_and_cleans() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit_left("/a/b/c.py:1", 6), "….py:1");
        assert_eq!(clean("a\x1b[2Jb"), "a\u{fffd}[2Jb");
        assert_eq!(expand_tabs("\tx\ty"), "        x       y");
        assert_eq!(shell_quote("it's here"), r"'it'\''s here'");
        assert_eq!(shell_quote("x.py"), "x.py");
    }
}
