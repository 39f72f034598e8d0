//! Cells and lines of the terminal report: widths, cuts, wrapping, and text made safe for
//! a terminal.

use crate::model::figures::{self, percent};

/// The report being written, and the width its lines are cut to.
pub struct Out {
    pub text: String,
    pub width: usize,
}

impl Out {
    pub fn new(width: usize) -> Out {
        Out {
            text: String::new(),
            width,
        }
    }

    /// Appends one line, cut to the report width.
    pub fn line(&mut self, s: &str) {
        let s = fit(s, self.width);
        self.text.push_str(s.trim_end());
        self.text.push('\n');
    }

    pub fn blank(&mut self) {
        self.text.push('\n');
    }

    /// Appends `s` in lines of words, the first starting with `first`, the rest with `rest`.
    pub fn wrap(&mut self, s: &str, first: &str, rest: &str) {
        let mut cur = first.to_string();
        let mut empty = true;
        for word in s.split_whitespace() {
            if !empty && cur.chars().count() + 1 + word.chars().count() > self.width {
                self.line(&cur);
                cur = rest.to_string();
                empty = true;
            }
            if !empty {
                cur.push(' ');
            }
            cur.push_str(word);
            empty = false;
        }
        self.line(&cur);
    }
}

/// A percentage cell, 8 columns; blank for no time at all, as Scalene leaves it.
pub fn pct(part: u64, total: f64) -> String {
    if part == 0 {
        " ".repeat(8)
    } else {
        format!("{:>8}", format!("{:.1}%", percent(part, total)))
    }
}

pub fn bar(pct: f64, width: usize) -> String {
    const PARTS: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    let eighths = ((pct / 100.0 * (width * 8) as f64).round() as usize).min(width * 8);
    let mut s = "█".repeat(eighths / 8);
    s.push_str(PARTS[eighths % 8]);
    let used = eighths.div_ceil(8);
    s.push_str(&" ".repeat(width - used));
    s
}

pub fn seconds(ns: u64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", figures::mib(bytes))
}

/// A MiB amount in as many columns as it needs, with fewer decimals as it grows.
pub fn mib_number(bytes: f64) -> String {
    let v = figures::mib_f64(bytes);
    if v < 1.0 {
        format!("{v:.2}")
    } else if v < 1000.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// A MiB cell, 8 columns; blank for nothing.
pub fn mib_cell(bytes: f64) -> String {
    if bytes <= 0.0 {
        " ".repeat(8)
    } else {
        format!("{:>8}", mib_number(bytes))
    }
}

/// Cuts `s` to `width` characters, marking the cut.
pub fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut t: String = s.chars().take(width - 1).collect();
    t.push('…');
    t
}

/// Cuts from the left, for paths, whose end says the most.
pub fn fit_left(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        return s.to_string();
    }
    let mut t = String::from("…");
    t.extend(s.chars().skip(n - width + 1));
    t
}

/// Source text with tabs at 8-column stops, and without control characters.
pub fn expand_tabs(s: &str) -> String {
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
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// Quotes an argument that a shell would split or expand, so the command line reads back.
pub fn shell_quote(a: &str) -> String {
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
    use crate::model::figures::MIB;

    #[test]
    fn bars_use_eighths() {
        assert_eq!(bar(0.0, 10), " ".repeat(10));
        assert_eq!(bar(100.0, 10), "█".repeat(10));
        assert_eq!(bar(55.0, 10), "█████▌    ");
        assert_eq!(bar(250.0, 10), "█".repeat(10));
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

    #[test]
    fn mib_cells_keep_three_significant_digits_or_more() {
        assert_eq!(mib_cell(0.0), " ".repeat(8));
        assert_eq!(mib_cell(MIB / 4.0), "    0.25");
        assert_eq!(mib_cell(210.34 * MIB), "   210.3");
        assert_eq!(mib_cell(1843.6 * MIB), "    1844");
    }
}
