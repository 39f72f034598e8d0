//! Folded stacks (`root;caller;callee WEIGHT`, one stack a line), as flamegraph.pl, inferno
//! and speedscope read them: weighted by sampled time in nanoseconds, or by bytes
//! allocated. Nanoseconds rather than samples because rprof weights each sample by the
//! CPU time it stands for; the weights add up to the report's total exactly.

use crate::model::{Profile, StackProfile, UNDEFINED};

/// What a folded stack's weight is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    /// Sampled time (of the trace's clock), in nanoseconds.
    Time,
    /// Bytes allocated, estimated from the samples.
    Allocated,
}

/// The folded stacks of `p`, largest first; stacks of no weight are left out.
pub fn render(p: &Profile, weight: Weight) -> String {
    let mut out = String::new();
    for s in &p.stacks.stacks {
        let w = match weight {
            Weight::Time => s.times.total_ns(),
            Weight::Allocated => s.memory.malloc_bytes,
        };
        if w == 0 {
            continue;
        }
        out.push_str(&folded(p, s));
        out.push(' ');
        out.push_str(&w.to_string());
        out.push('\n');
    }
    out
}

/// A stack's frames, root first, joined by `;`.
pub fn folded(p: &Profile, s: &StackProfile) -> String {
    if s.undefined {
        return UNDEFINED.into();
    }
    if s.frames.is_empty() {
        return s.no_frame.into();
    }
    let names: Vec<String> = s
        .frames
        .iter()
        .rev()
        .map(|&i| frame_name(p, i as usize))
        .collect();
    names.join(";")
}

/// A frame as flame graphs show it: `function (file:line)`, with the characters that
/// delimit folded stacks (`;`, a line break) replaced.
pub fn frame_name(p: &Profile, frame: usize) -> String {
    let fr = p.stacks.frames[frame];
    let f = &p.functions[fr.function];
    let name = if fr.line > 0 {
        format!("{} ({}:{})", f.name, f.file, fr.line)
    } else {
        format!("{} ({})", f.name, f.file)
    };
    name.replace(';', ":").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_fold_root_first_with_their_weights() {
        let p = crate::render::fixture::profile();
        assert_eq!(
            render(&p, Weight::Time),
            "outer (a.py:3);inner (a.py:7) 40000000\nouter (a.py:2) 5000000\n"
        );
        assert_eq!(
            render(&p, Weight::Allocated),
            "outer (a.py:3);inner (a.py:7) 4096\n"
        );
    }
}
