//! Advice beside the line it is about: the rule and its sentence, the fix, the measured
//! cost and the estimated saving, indented under the line's row.

use super::layout::{clean, expand_tabs, Out};
use crate::advice::{Advice, Hint};

const INDENT: &str = "        ";

/// The hints on one line, if any.
pub fn beside(out: &mut Out, advice: &Advice, file: &str, line: u32) {
    for h in advice.on_line(file, line) {
        hint(out, h, "^ ");
    }
}

/// The hints on lines the tables leave out (under `--threshold`), each named by its file
/// and line.
pub fn elsewhere(out: &mut Out, advice: &Advice, shown: impl Fn(&str, u32) -> bool) {
    let hidden: Vec<&Hint> = advice
        .hints
        .iter()
        .filter(|h| !shown(&h.file, h.line))
        .collect();
    if hidden.is_empty() {
        return;
    }
    out.blank();
    out.line("Advice on lines not listed above");
    for h in hidden {
        hint(out, h, &format!("{}:{} ", clean(&h.file), h.line));
    }
}

fn hint(out: &mut Out, h: &Hint, mark: &str) {
    out.wrap(
        &clean(&format!("{mark}{}: {}", h.rule.id(), h.message)),
        INDENT,
        &format!("{INDENT}  "),
    );
    for (i, code) in h.example.lines().enumerate() {
        let label = if i == 0 { "fix:  " } else { "      " };
        out.line(&format!("{INDENT}  {label}{}", expand_tabs(&clean(code))));
    }
    let (first, last) = h.lines;
    let on = if first == last {
        format!("line {first}")
    } else {
        format!("lines {first}-{last}")
    };
    let mut cost = format!(
        "cost: {:.1}% of all CPU on {on} ({:.1}% in native code)",
        h.cpu_percent, h.native_percent
    );
    if h.alloc_mb > 0.0 {
        cost.push_str(&format!(", {:.1} MB allocated", h.alloc_mb));
    }
    if let Some(s) = &h.saving {
        cost.push_str(&format!("; {s}"));
    }
    out.wrap(&cost, &format!("{INDENT}  "), &format!("{INDENT}        "));
}
