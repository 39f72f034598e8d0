//! A merged run's processes (see [`crate::model::merge`]): one row each, and the traces
//! given but left out, with why.

use super::layout::{clean, fit, mib_cell, pct, Out};
use crate::model::Profile;

pub fn table(out: &mut Out, p: &Profile) {
    if !p.processes.is_empty() {
        let total = p.total.share_base();
        out.blank();
        out.wrap(
            &format!(
                "Processes ({} merged into this report: lines, functions, threads and memory \
                 are summed over them; shares are of the whole run)",
                p.processes.len()
            ),
            "",
            "  ",
        );
        out.line(
            "       PID   Parent   Share  Peak MiB  How it ended                      Command",
        );
        for r in &p.processes {
            out.line(&format!(
                "{:>10} {:>8}{}  {}  {:<32}  {}",
                r.pid,
                r.ppid,
                pct_or_zero(r.times.total_ns(), total),
                mib_cell(r.peak_bytes as f64),
                fit(&r.ended(), 32),
                fit(&clean(&r.command()), 40),
            ));
        }
    }
    if !p.left_out.is_empty() {
        out.blank();
        out.line(&format!(
            "Left out ({} traces given, not in this report)",
            p.left_out.len()
        ));
        for (path, why) in &p.left_out {
            out.wrap(&clean(&format!("{path}: {why}")), "  ", "    ");
        }
    }
}

/// A process with no CPU samples still shows its share, 0.0%.
fn pct_or_zero(part: u64, total: f64) -> String {
    if part == 0 {
        format!("{:>8}", "0.0%")
    } else {
        pct(part, total)
    }
}
