//! The diff as a self-contained HTML page: the runs, their mismatches, and the lines and
//! functions by size of change, rises marked red and drops green.

use super::{side, Diff, Row};
use crate::model::figures::{mib, secs, MIB};
use std::fmt::Write;

const STYLE: &str =
    "body{font:14px system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse}\
td,th{padding:2px 8px;text-align:right;border-bottom:1px solid #ddd}td.where{text-align:left}\
tr.rise td.change{color:#b00020;font-weight:bold}tr.drop td.change{color:#1b7f3b;font-weight:bold}\
.mismatch{background:#fff3cd;padding:4px 8px;margin:4px 0}";

pub fn render(d: &Diff) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>rprof diff</title><style>{STYLE}</style></head><body><h1>rprof diff</h1>"
    );
    for (label, r) in [("Before", &d.before), ("After", &d.after)] {
        let p = &r.profile;
        let _ = write!(
            out,
            "<p><b>{label}</b>: {} &mdash; {} &mdash; {:.3} s sampled in {:.3} s</p>",
            esc(&r.trace.display().to_string()),
            esc(&p.header.argv.join(" ")),
            secs(p.total.total_ns()),
            secs(p.elapsed_ns)
        );
    }
    for m in &d.mismatches {
        let _ = write!(out, "<div class=\"mismatch\">Mismatch: {}</div>", esc(m));
    }
    table(&mut out, "Lines", &d.lines, d.memory, true);
    table(
        &mut out,
        "Functions (self time)",
        &d.functions,
        d.memory,
        false,
    );
    out.push_str("</body></html>\n");
    out
}

fn table(out: &mut String, title: &str, rows: &[Row], memory: bool, lines: bool) {
    let _ = write!(
        out,
        "<h2>{title}</h2><table><tr><th>CPU s before</th><th>after</th><th>change</th>"
    );
    if memory {
        out.push_str("<th>alloc MiB before</th><th>after</th><th>change</th><th>peak MiB before</th><th>after</th><th>change</th>");
    }
    out.push_str("<th>where</th></tr>");
    for r in rows {
        let (b, a) = (side(r.before), side(r.after));
        let t = r.time_change_ns();
        // A row rises or drops by its time, or, with no change in time, by its memory.
        let sign = if t != 0 || !memory {
            t.signum()
        } else {
            r.alloc_change().signum()
        };
        let class = match sign {
            1 => "rise",
            -1 => "drop",
            _ => "same",
        };
        let _ = write!(
            out,
            "<tr class=\"{class}\"><td>{:.3}</td><td>{:.3}</td><td class=\"change\">{:+.3}</td>",
            secs(b.time_ns),
            secs(a.time_ns),
            t as f64 / 1e9
        );
        if memory {
            let mb = |x: i128| x as f64 / MIB;
            let _ = write!(
                out,
                "<td>{:.3}</td><td>{:.3}</td><td class=\"change\">{:+.3}</td><td>{:.3}</td><td>{:.3}</td><td class=\"change\">{:+.3}</td>",
                mib(b.alloc_bytes),
                mib(a.alloc_bytes),
                mb(r.alloc_change()),
                mib(b.peak_bytes),
                mib(a.peak_bytes),
                mb(r.peak_change())
            );
        }
        let place = r.place(lines);
        let status = match r.status() {
            "both" => "",
            s => s,
        };
        let _ = write!(
            out,
            "<td class=\"where\">{} {status}</td></tr>",
            esc(&place)
        );
    }
    out.push_str("</table>");
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
