//! speedscope's file format (https://www.speedscope.app/file-format-schema.json): one
//! sampled profile per thread, weighted by sampled time in nanoseconds, and, when memory
//! was profiled, one weighted by bytes allocated (memory is not split by thread).

use crate::model::{Profile, StackProfile, FRAMELESS, UNDEFINED};
use serde_json::{json, Value};

/// The speedscope JSON of `p`.
pub fn render(p: &Profile) -> String {
    let fr = &p.stacks.frames;
    // Frames: the stack frames, then the two pseudo-frames.
    let mut frames: Vec<Value> = fr
        .iter()
        .map(|f| {
            let func = &p.functions[f.function];
            let mut v = json!({"name": func.name, "file": func.file});
            if f.line > 0 {
                v["line"] = json!(f.line);
            }
            v
        })
        .collect();
    // A pseudo-frame per pseudo-file of frameless time (its phase's), then the undefined.
    let no_frame = frames.len();
    frames.extend(FRAMELESS.iter().map(|name| json!({"name": name})));
    let undefined = frames.len();
    frames.push(json!({"name": UNDEFINED}));
    let stack = |s: &StackProfile| -> Vec<usize> {
        if s.undefined {
            vec![undefined]
        } else if s.frames.is_empty() {
            let phase = FRAMELESS.iter().position(|&f| f == s.no_frame);
            vec![no_frame + phase.unwrap_or(0)]
        } else {
            s.frames.iter().rev().map(|&i| i as usize).collect()
        }
    };

    let mut profiles = Vec::new();
    for (ti, th) in p.threads.iter().enumerate() {
        let (mut samples, mut weights) = (Vec::new(), Vec::new());
        for s in &p.stacks.stacks {
            for t in s.threads.iter().filter(|t| t.thread == ti) {
                samples.push(stack(s));
                weights.push(t.times.total_ns());
            }
        }
        let total: u64 = weights.iter().sum();
        let name = match &th.name {
            Some(n) => format!("{n} (thread {})", th.tid),
            None => format!("thread {}", th.tid),
        };
        profiles.push(sampled(&name, "nanoseconds", total, samples, weights));
    }
    if p.has_memory() {
        let (samples, weights): (Vec<_>, Vec<_>) = p
            .stacks
            .stacks
            .iter()
            .filter(|s| s.memory.malloc_bytes > 0)
            .map(|s| (stack(s), s.memory.malloc_bytes))
            .unzip();
        let total: u64 = weights.iter().sum();
        profiles.push(sampled("bytes allocated", "bytes", total, samples, weights));
    }
    let name = p.header.argv.join(" ");
    let doc = json!({
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "name": if name.is_empty() { p.header.exe.clone() } else { name },
        "exporter": format!("rprof {}", env!("CARGO_PKG_VERSION")),
        "activeProfileIndex": 0,
        "shared": {"frames": frames},
        "profiles": profiles,
    });
    doc.to_string()
}

fn sampled(
    name: &str,
    unit: &str,
    total: u64,
    samples: Vec<Vec<usize>>,
    weights: Vec<u64>,
) -> Value {
    json!({
        "type": "sampled",
        "name": name,
        "unit": unit,
        "startValue": 0,
        "endValue": total,
        "samples": samples,
        "weights": weights,
    })
}
