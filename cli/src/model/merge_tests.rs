//! Merging synthetic traces, written with the format crate's encoder.

use super::*;
use crate::model::aggregate;
use rprof_format::{
    encode_header, AllocSample, Counters, CpuSample, Domain, Encoder, Exec, Exit, Frame, FuncKind,
    Header, Process,
};

const MS: u64 = 1_000_000;

/// One process's trace: `hot` is the line its samples (`samples` of 10 ms) run in, in a
/// function defined with ids local to the trace (both traces use the same ids for other
/// things); it allocates `alloc_bytes` at `alloc_ms` (never freed), ending at `end_ms`.
struct Spec {
    pid: u32,
    ppid: u32,
    start_ms: u64,
    run: &'static str,
    root: bool,
    hot: u32,
    samples: u64,
    alloc_ms: u64,
    alloc_bytes: u64,
    end_ms: u64,
}

fn trace(s: &Spec) -> Vec<u8> {
    trace_with(s, Vec::new())
}

/// The same, with `extra` records before its end.
fn trace_with(s: &Spec, extra: Vec<Record>) -> Vec<u8> {
    let header = Header {
        pid: s.pid,
        ppid: s.ppid,
        start_unix_ns: 1_000_000_000_000 + s.start_ms * MS,
        sample_hz: 100,
        modes: rprof_format::mode::CPU | rprof_format::mode::MEMORY,
        argv: vec!["/usr/bin/python3".into(), format!("job-{}", s.pid)],
        ..Header::default()
    };
    let mut out = encode_header(&header);
    let mut enc = Encoder::new();
    let mut recs = vec![
        Record::String {
            id: 1,
            text: s.run.into(),
        },
        Record::Process(Process {
            run: 1,
            root: s.root,
        }),
        Record::String {
            id: 2,
            text: "work".into(),
        },
        Record::String {
            id: 3,
            text: "/w/pool.py".into(),
        },
        Record::Function {
            id: 1,
            kind: FuncKind::Python,
            name: 2,
            file: 3,
            first_line: 1,
        },
        Record::Stack {
            id: 1,
            frames: vec![Frame {
                func: 1,
                line: s.hot,
            }],
        },
    ];
    for k in 0..s.samples {
        recs.push(Record::Cpu(CpuSample {
            t_ns: k * 10 * MS,
            tid: s.pid,
            stack: 1,
            cpu_ns: 10 * MS,
            sys_ns: 0,
            exec: Exec::Python,
        }));
    }
    recs.push(Record::Alloc(AllocSample {
        t_ns: s.alloc_ms * MS,
        tid: s.pid,
        stack: 1,
        // The same block id in every trace: ids are per process.
        addr: 0x1000,
        size: s.alloc_bytes,
        weight: s.alloc_bytes,
        domain: Domain::Native,
    }));
    recs.extend(extra);
    recs.push(Record::Exit(Exit {
        t_ns: s.end_ms * MS,
        how: Ending::Exited(0),
    }));
    recs.push(Record::End(End {
        t_ns: s.end_ms * MS,
        samples: s.samples,
        ..End::default()
    }));
    for r in &recs {
        enc.push(r);
    }
    out.extend_from_slice(enc.finish_chunk().unwrap());
    out
}

fn spec(pid: u32, ppid: u32, start_ms: u64, run: &'static str, root: bool) -> Spec {
    Spec {
        pid,
        ppid,
        start_ms,
        run,
        root,
        hot: 10,
        samples: 10,
        alloc_ms: 50,
        alloc_bytes: 1000,
        end_ms: 200,
    }
}

fn merged(traces: &[Vec<u8>]) -> (Profile, Vec<Profile>) {
    let (rows, profiles): (Vec<_>, Vec<_>) = traces
        .iter()
        .enumerate()
        .map(|(i, t)| read_process(&format!("t{i}"), &t[..], &Charging::default()).unwrap())
        .unzip();
    let m = merge::<_, ()>(
        rows,
        &profiles,
        |i| Ok(&traces[i][..]),
        &Charging::default(),
    )
    .unwrap();
    (m, profiles)
}

fn line_ns(p: &Profile, line: u32) -> u64 {
    p.files
        .iter()
        .flat_map(|f| &f.lines)
        .filter(|l| l.line == line)
        .map(|l| l.times.total_ns())
        .sum()
}

#[test]
fn lines_and_totals_are_summed_over_processes() {
    let parent = Spec {
        samples: 10,
        hot: 10,
        ..spec(100, 1, 0, "r1", true)
    };
    let worker = Spec {
        samples: 30,
        hot: 20,
        ..spec(101, 100, 5, "r1", false)
    };
    let (m, each) = merged(&[trace(&parent), trace(&worker)]);
    let sum: u64 = each.iter().map(|p| p.total.total_ns()).sum();
    assert_eq!(m.total.total_ns(), sum);
    assert_eq!(m.total.samples, 40);
    // Shares are of the whole run: the worker's line is 3/4 of it.
    assert_eq!(line_ns(&m, 20), 300 * MS);
    assert_eq!(line_ns(&m, 10), 100 * MS);
    // One function, both processes' samples.
    let work = m.functions.iter().find(|f| f.name == "work").unwrap();
    assert_eq!(work.self_times.samples, 40);
    let pids: Vec<(u32, u32)> = m.processes.iter().map(|r| (r.pid, r.ppid)).collect();
    assert_eq!(pids, [(100, 1), (101, 100)]);
    assert_eq!(m.processes[1].ended(), "exited with status 0");
    let threads: Vec<(u32, u32)> = m.threads.iter().map(|t| (t.pid, t.tid)).collect();
    assert_eq!(threads, [(101, 101), (100, 100)]);
    // The run ends with its last process: the worker started 5 ms later.
    assert_eq!(m.elapsed_ns, 205 * MS);
}

#[test]
fn the_footprint_is_the_sum_over_time_and_a_dead_process_holds_nothing() {
    // The parent holds 1000 bytes from 50 ms to its end at 400 ms; worker A holds 3000 from
    // 60 to its end at 100 ms; worker B holds 2000 from 150 ms. The same block id in each.
    let parent = Spec {
        alloc_bytes: 1000,
        end_ms: 400,
        ..spec(100, 1, 0, "r1", true)
    };
    let a = Spec {
        alloc_ms: 50,
        alloc_bytes: 3000,
        end_ms: 90,
        ..spec(101, 100, 10, "r1", false)
    };
    let b = Spec {
        alloc_ms: 50,
        alloc_bytes: 2000,
        end_ms: 200,
        ..spec(102, 100, 100, "r1", false)
    };
    let (m, each) = merged(&[trace(&parent), trace(&a), trace(&b)]);
    // Peak: parent + A (4000), not the sum of the peaks (6000), nor A + B.
    assert_eq!(m.footprint.peak_bytes, 4000);
    assert_eq!(m.footprint.peak_ns, 60 * MS);
    assert_eq!(m.footprint.malloc_bytes, 6000);
    let peaks: Vec<u64> = each.iter().map(|p| p.footprint.peak_bytes).collect();
    assert_eq!(peaks, [1000, 3000, 2000]);
    assert_eq!(
        m.processes.iter().map(|r| r.peak_bytes).collect::<Vec<_>>(),
        peaks
    );
}

#[test]
fn other_runs_are_left_out_and_said_why() {
    let rows: Vec<ProcessRow> = [
        spec(100, 1, 0, "r1", true),
        spec(101, 100, 5, "r1", false),
        spec(200, 1, 1000, "r2", true),
    ]
    .iter()
    .map(|s| {
        read_process("t", &trace(s)[..], &Charging::default())
            .unwrap()
            .0
    })
    .collect();
    let first = select(&rows, Pick::First);
    assert_eq!(first.merged, [0, 1]);
    assert_eq!(first.left_out.len(), 1);
    assert_eq!(first.left_out[0].0, 2);
    assert!(
        first.left_out[0].1.contains("run r2"),
        "{:?}",
        first.left_out
    );
    assert_eq!(select(&rows, Pick::Latest).merged, [2]);
    assert_eq!(select(&rows, Pick::Run("r1")).merged, [0, 1]);
}

#[test]
fn traces_without_a_run_are_grouped_by_their_parent_chain() {
    // Traces of an older shim: no Process record.
    let strip = |s: &Spec| {
        let p = aggregate(&trace(s)).unwrap();
        ProcessRow {
            source: "t".into(),
            pid: p.header.pid,
            ppid: p.header.ppid,
            argv: p.header.argv.clone(),
            run: None,
            root: false,
            start_unix_ns: p.header.start_unix_ns,
            ending: None,
            times: p.total,
            peak_bytes: 0,
            elapsed_ns: p.elapsed_ns,
        }
    };
    let rows: Vec<ProcessRow> = [
        spec(100, 1, 0, "", true),
        spec(102, 101, 9, "", false),
        spec(101, 100, 5, "", false),
        spec(300, 7, 3, "", true),
    ]
    .iter()
    .map(strip)
    .collect();
    let s = select(&rows, Pick::First);
    assert_eq!(s.merged, [0, 2, 1]);
    assert_eq!(s.left_out.len(), 1);
    assert!(s.left_out[0].1.contains("pid 300"), "{:?}", s.left_out);
}

#[test]
fn the_exact_peak_is_never_below_one_process_s_own() {
    let counters = |t_ms: u64, live: u64, peak: u64| {
        Record::Counters(Counters {
            t_ns: t_ms * MS,
            allocs: live / 100,
            live_bytes: live,
            peak_live_bytes: peak,
            ..Counters::default()
        })
    };
    // The parent peaked at 5000 between its records; the worker holds 3000 at 20 ms.
    let parent = trace_with(
        &spec(100, 1, 0, "r1", true),
        vec![counters(10, 1000, 5000), counters(30, 1000, 5000)],
    );
    let worker = trace_with(
        &spec(101, 100, 0, "r1", false),
        vec![counters(20, 3000, 3000)],
    );
    let (m, each) = merged(&[parent, worker]);
    assert_eq!(each[0].footprint.max_bytes, 5000);
    // At 20 ms the run holds 1000 + 3000; the parent's own peak before 10 ms, with nothing
    // else live, is the run's.
    assert_eq!(m.footprint.max_bytes, 5000);
    assert_eq!(m.footprint.max_ns, 10 * MS);
    // Once both have ended nothing is live; their allocations stay counted.
    let last = m.counters.unwrap();
    assert_eq!((last.live_bytes, last.allocs), (0, 10 + 30));
}
