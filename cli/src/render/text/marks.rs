//! The marks the program made (`rprof_mark`) on a timeline of the run, then listed.

use super::layout::{clean, seconds, Out};
use crate::model::Profile;

/// Columns of the marks' timeline.
const RULER: usize = 60;

pub fn section(out: &mut Out, p: &Profile) {
    let marks = p.program_marks();
    if marks.is_empty() {
        return;
    }
    let col = |t: u64| match p.elapsed_ns {
        0 => 0,
        end => (u128::from(t) * RULER as u128 / u128::from(end)).min(RULER as u128 - 1) as usize,
    };
    let mut ruler = vec!['-'; RULER];
    for &(t, _) in &marks {
        ruler[col(t)] = '^';
    }
    out.blank();
    out.line("Marks (rprof_mark)");
    out.line(&format!(
        "  0 s |{}| {}",
        ruler.into_iter().collect::<String>(),
        seconds(p.elapsed_ns)
    ));
    for (t, label) in marks {
        out.line(&format!("  {:>10}  {}", seconds(t), clean(label)));
    }
}
