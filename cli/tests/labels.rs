//! The report's labels on synthetic traces, in every output (text, JSON, HTML, collapsed,
//! speedscope, pprof): a native function without debug line info is a row of its own,
//! named, with no `?` and no `:0`; memory with no frame is split by phase, as time is.

mod common;

use common::{check_scalene_schema, TraceBuilder, MS};
use rprof_format::{mode, AllocSample, Domain, Exec, FuncKind, Header, Record, ShortLived};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn header(cwd: &Path, python: bool, modes: u32) -> Header {
    Header {
        pid: 77,
        ppid: 1,
        start_unix_ns: 4_000_000_000 * 1_000_000_000,
        clock: 0,
        sample_hz: 100,
        modes,
        signal: 34,
        mem_rate: 4096,
        copy_rate: 4096,
        python_version: if python { 0x030B07F0 } else { 0 },
        exe: "/usr/bin/prog".into(),
        cwd: cwd.to_string_lossy().into_owned(),
        argv: vec!["prog".into()],
    }
}

/// The report of `trace` with `args`, and what it wrote to the files its args name.
fn report(trace: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rprof-report"))
        .arg(trace)
        .args(args)
        .env_remove("COLUMNS")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn html_data(page: &str) -> Value {
    let open = "<script type=\"application/json\" id=\"rprof-data\">";
    let start = page.find(open).expect("the data element") + open.len();
    let end = start + page[start..].find("</script>").unwrap();
    serde_json::from_str(&page[start..end]).unwrap()
}

/// A C program's `main` (prog.c, line 7) calling `hot` and `cold` of a stripped library:
/// 30 and 10 ms.
const LIB: &str = "/opt/lib/libhot.so";

fn stripped_trace(cwd: &Path) -> Vec<u8> {
    let mut t = TraceBuilder::new(&header(cwd, false, mode::CPU));
    t.string(1, LIB)
        .string(2, "hot")
        .string(3, "cold")
        .string(4, "/src/prog.c")
        .string(5, "main")
        .native_function(1, 2, 1)
        .native_function(2, 3, 1)
        .push(Record::Function {
            id: 3,
            kind: FuncKind::Native,
            name: 5,
            file: 4,
            first_line: 7,
        })
        .stack(1, &[(1, 0), (3, 0)])
        .stack(2, &[(2, 0), (3, 0)]);
    t.sample(1, 100, 1, 30, 0, Exec::Native)
        .sample(2, 100, 2, 10, 0, Exec::Native);
    t.finish()
}

#[test]
fn a_native_function_without_lines_is_its_function_in_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.trace");
    std::fs::write(&trace, stripped_trace(dir.path())).unwrap();

    let text = report(&trace, &["--width", "120"]);
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with(LIB))
        .skip(2)
        .take_while(|l| !l.is_empty())
        .collect();
    // Each function a row, its share kept, the line column blank, its name as the source.
    assert_eq!(rows.len(), 2, "{text}");
    assert!(
        rows[0].contains("25.0%") && rows[0].ends_with("cold"),
        "{text}"
    );
    assert!(
        rows[1].contains("75.0%") && rows[1].ends_with("hot"),
        "{text}"
    );
    assert!(rows.iter().all(|r| r.starts_with("      ")), "{rows:?}");
    assert!(
        !text.lines().any(|l| l.trim_start().starts_with("? ")),
        "{text}"
    );
    assert!(!text.contains(":0"), "{text}");

    // JSON: Scalene's lines are numbered; the rows without a number are beside them, and
    // the two add up to the file.
    let json: Value = serde_json::from_str(&report(&trace, &["--json"])).unwrap();
    check_scalene_schema(&json);
    let file = &json["files"][LIB];
    assert_eq!(file["percent_cpu_time"], 100.0);
    assert!(file["lines"].as_array().unwrap().is_empty());
    let unnumbered: Vec<(String, f64)> = json["rprof"]["lines_without_number"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            assert_eq!(l["file"], LIB);
            let cpu = ["n_cpu_percent_c", "n_cpu_percent_python", "n_sys_percent"]
                .iter()
                .map(|k| l[k].as_f64().unwrap())
                .sum();
            (l["line"].as_str().unwrap().to_string(), cpu)
        })
        .collect();
    assert_eq!(
        unnumbered,
        [("cold".to_string(), 25.0), ("hot".to_string(), 75.0)]
    );

    // HTML: the rows name their function.
    let page = report(&trace, &["--html"]);
    let data = html_data(&page);
    let lib = data["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == LIB)
        .expect("the library's file");
    let names: Vec<&str> = lib["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["function"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cold", "hot"]);

    // The exports: the function alone where it has no line, its line where it has one
    // (main's, from its function record, as the report charges it).
    let folded = dir.path().join("folded.txt");
    let speedscope = dir.path().join("speedscope.json");
    let pprof = dir.path().join("profile.pb.gz");
    report(
        &trace,
        &[
            "--collapsed",
            folded.to_str().unwrap(),
            "--speedscope",
            speedscope.to_str().unwrap(),
            "--pprof",
            pprof.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(&folded).unwrap(),
        format!(
            "main (/src/prog.c:7);hot ({LIB}) {}\nmain (/src/prog.c:7);cold ({LIB}) {}\n",
            30 * MS,
            10 * MS
        )
    );
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&speedscope).unwrap()).unwrap();
    for f in s["shared"]["frames"].as_array().unwrap() {
        match f["name"].as_str().unwrap() {
            "hot" | "cold" => assert!(f.get("line").is_none(), "{f}"),
            "main" => assert_eq!(f["line"], 7),
            _ => {}
        }
    }
    assert!(std::fs::metadata(&pprof).unwrap().len() > 0);
}

/// The collapsed memory export of `trace`: each folded stack with its MiB, sorted.
fn collapsed_memory_mib(trace: &Path, dir: &Path) -> Vec<(String, u64)> {
    let out = dir.join("memory.txt");
    report(trace, &["--collapsed-memory", out.to_str().unwrap()]);
    let mut got: Vec<(String, u64)> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| {
            let (stack, w) = l.rsplit_once(' ').unwrap();
            (stack.to_string(), w.parse::<u64>().unwrap() >> 20)
        })
        .collect();
    got.sort();
    got
}

/// A Python run whose allocations with no frame at all fall in each phase: before the
/// first Python frame (start-up), in a thread that never ran Python (native threads), in
/// the main thread between Python frames (`<native>`), and after finalizing began
/// (teardown).
fn phases_trace(cwd: &Path) -> Vec<u8> {
    let mut t = TraceBuilder::new(&header(cwd, true, mode::CPU | mode::MEMORY));
    t.string(1, "main.py")
        .string(2, "f")
        .function(1, 2, 1, 1)
        .stack(1, &[(1, 2)]);
    let alloc = |t_ms: u64, tid, addr, weight| {
        Record::Alloc(AllocSample {
            t_ns: t_ms * MS,
            tid,
            stack: 0,
            addr,
            size: weight,
            weight,
            domain: Domain::Native,
        })
    };
    t.push(alloc(1, 1, 1, 1 << 20))
        .copy(1, 0, 1 << 19)
        .sample(2, 1, 1, 20, 0, Exec::Python)
        .free(3, 1)
        .push(alloc(4, 7, 2, 2 << 20))
        .push(alloc(5, 1, 3, 4 << 20))
        .sample(6, 1, 1, 20, 0, Exec::Python)
        .finalizing(8, 9)
        .push(alloc(9, 1, 4, 8 << 20))
        .sample(10, 1, 0, 5, 0, Exec::Native);
    t.finish()
}

#[test]
fn memory_without_a_frame_is_split_by_phase_in_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.trace");
    std::fs::write(&trace, phases_trace(dir.path())).unwrap();
    let want = [
        ("<start-up>", 1u64),
        ("<native threads>", 2),
        ("<native>", 4),
        ("<teardown>", 8),
    ];

    // The text report's top lines by memory allocated, each under its phase's label.
    let text = report(&trace, &["--width", "120"]);
    for (label, mib) in want {
        let row = format!("{:>10}", format!("{mib}.0"));
        assert!(
            text.lines()
                .any(|l| l.starts_with(&row) && l.trim_end().ends_with(label)),
            "no {label} row of {mib} MiB in:\n{text}"
        );
    }

    // The collapsed memory export: one folded stack per phase, weighted by its bytes.
    let got = collapsed_memory_mib(&trace, dir.path());
    let mut expect: Vec<(String, u64)> = want.iter().map(|&(l, m)| (l.to_string(), m)).collect();
    expect.sort();
    assert_eq!(got, expect);

    // speedscope: the memory profile's samples are the phases' pseudo-frames, each
    // weighted by its bytes.
    let ss = dir.path().join("speedscope.json");
    report(&trace, &["--speedscope", ss.to_str().unwrap()]);
    let ss: Value = serde_json::from_str(&std::fs::read_to_string(&ss).unwrap()).unwrap();
    let frames = ss["shared"]["frames"].as_array().unwrap();
    let memory = ss["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["unit"] == "bytes")
        .expect("a profile weighted by bytes");
    let mut by_frame: Vec<(String, u64)> = memory["samples"]
        .as_array()
        .unwrap()
        .iter()
        .zip(memory["weights"].as_array().unwrap())
        .map(|(s, w)| {
            let leaf = s.as_array().unwrap().last().unwrap().as_u64().unwrap() as usize;
            let name = frames[leaf]["name"].as_str().unwrap().to_string();
            (name, w.as_u64().unwrap() >> 20)
        })
        .collect();
    by_frame.sort();
    assert_eq!(by_frame, expect);

    // HTML: each phase's pseudo-file carries its bytes, the flame graph a node per phase.
    let data = html_data(&report(&trace, &["--html"]));
    for (label, mib) in want {
        let f = data["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == label)
            .unwrap_or_else(|| panic!("no {label} file"));
        assert_eq!(f["alloc_mib"].as_f64().unwrap(), mib as f64, "{label}");
    }
    let flame = &data["flame"];
    let pseudo: Vec<&str> = flame["pseudo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut alloc: Vec<(String, u64)> = (1..flame["label"].as_array().unwrap().len())
        .filter(|&i| flame["label"][i].as_i64().unwrap() < 0)
        .map(|i| {
            let name = pseudo[(-flame["label"][i].as_i64().unwrap() - 1) as usize];
            let label = match name {
                "(no Python frame)" => "<native>",
                _ => name.split(" (").next().unwrap(),
            };
            (
                label.to_string(),
                flame["alloc"][i].as_f64().unwrap() as u64,
            )
        })
        .collect();
    alloc.sort();
    assert_eq!(alloc, expect);

    // JSON: each phase's row beside Scalene's numbered lines, with its bytes and its own
    // peak (the start-up block was freed before the others were allocated).
    let json: Value = serde_json::from_str(&report(&trace, &["--json"])).unwrap();
    check_scalene_schema(&json);
    assert_eq!(json["rprof"]["memory"]["malloc_mb"], 15.0);
    let mut rows: Vec<(String, u64, u64)> = json["rprof"]["lines_without_number"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["n_malloc_mb"].as_f64().unwrap() > 0.0)
        .map(|l| {
            assert_eq!(l["file"], l["line"]);
            let mb = |k: &str| l[k].as_f64().unwrap() as u64;
            (
                l["file"].as_str().unwrap().to_string(),
                mb("n_malloc_mb"),
                mb("n_peak_mb"),
            )
        })
        .collect();
    rows.sort();
    let expect: Vec<(String, u64, u64)> = expect.into_iter().map(|(l, m)| (l, m, m)).collect();
    assert_eq!(rows, expect);
}

/// Blocks the writer folded into `ShortLived` records, with no frame, follow the same
/// split by their time: their thread is not recorded, so never "native threads".
#[test]
fn folded_memory_without_a_frame_is_split_by_phase_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = TraceBuilder::new(&header(dir.path(), true, mode::CPU | mode::MEMORY));
    t.string(1, "main.py")
        .string(2, "f")
        .function(1, 2, 1, 1)
        .stack(1, &[(1, 2)]);
    let folded = |t_ms: u64, mib: u64| {
        Record::ShortLived(ShortLived {
            t_ns: t_ms * MS,
            span_ns: MS / 2,
            stack: 0,
            size: 256,
            domain: Domain::Python,
            count: 4,
            weight: mib << 20,
            peak: 1 << 20,
            held_us: 0,
        })
    };
    t.push(folded(1, 1))
        .sample(2, 1, 1, 20, 0, Exec::Python)
        .push(folded(4, 2))
        .sample(6, 1, 1, 20, 0, Exec::Python)
        .finalizing(8, 9)
        .push(folded(9, 8))
        .sample(10, 1, 0, 5, 0, Exec::Native);
    let trace = dir.path().join("t.trace");
    std::fs::write(&trace, t.finish()).unwrap();
    let got = collapsed_memory_mib(&trace, dir.path());
    let want = [("<native>", 2), ("<start-up>", 1), ("<teardown>", 8)];
    assert_eq!(got, want.map(|(l, m)| (l.to_string(), m)));
}
