//! Counts a trace's records by kind: `cargo run --release -p rprof-format --example
//! trace_stats -- TRACE`. A development aid for keeping traces compact.

use rprof_format::{read_trace, Record};
use std::collections::BTreeMap;

fn main() {
    let path = std::env::args().nth(1).expect("usage: trace_stats TRACE");
    let data = std::fs::read(&path).expect("read trace");
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let trace = read_trace(&data, |r| {
        let kind = match r {
            Record::String { .. } => "string",
            Record::Function { .. } => "function",
            Record::Stack { .. } => "stack",
            Record::Thread { .. } => "thread",
            Record::Cpu(_) => "cpu",
            Record::Counters(_) => "counters",
            Record::End(_) => "end",
            Record::Alloc(_) => "alloc",
            Record::Free(_) => "free",
            Record::ShortLived(_) => "short-lived",
            Record::Copy(_) => "copy",
            Record::Mark { .. } => "mark",
            Record::Process(_) => "process",
            Record::Exit(_) => "exit",
            Record::GpuDevice(_) => "gpu device",
            Record::Gpu(_) => "gpu",
            Record::NativeAddress { .. } => "native address",
        };
        *counts.entry(kind).or_default() += 1;
    })
    .expect("readable trace");
    println!("{path}: {} bytes in {} chunks", trace.bytes, trace.chunks);
    for (kind, n) in counts {
        println!("  {kind:10} {n}");
    }
    for d in trace.damage {
        println!("  damage: {d}");
    }
}
