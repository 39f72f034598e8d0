//! rprof-report on a synthetic trace: the exact text and JSON numbers, damage, and errors.

mod common;

use common::{check_scalene_schema, TraceBuilder, MS};
use rprof_format::{mode, End, Exec, Header, Record};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

const MAIN_PY: &str = "import gone


def work(n):
    total = 0
    for i in range(n):
        total += (i & 3) < 2
    return total

def main():
    work(1000); gone.helper()
";

/// Two files (main.py on disk, gone.py missing), Python, native and system time, an empty
/// stack, definitions after their use, and an end record in the last chunk. Time per
/// sample in ms; 200 ms in all:
///
/// | stack | frames (innermost first)    | tid | samples (cpu/sys, exec)   |
/// |-------|-----------------------------|-----|---------------------------|
/// | 1     | work@6 main@11              | 100 | 30/0 py, 30/0 py          |
/// | 2     | work@7 main@11              | 100 | 40/10 native              |
/// | 3     | helper@3 work@7 main@11     | 101 | 30/0 py, 20/5 native      |
/// | 4     | main@11                     | 100 | 10/0 py                   |
/// | 0     | (no Python frame)           | 102 | 40/20 native              |
fn synthetic_trace(cwd: &Path) -> Vec<u8> {
    let header = Header {
        pid: 4242,
        ppid: 1,
        // Far in the future, so the source files are older than the run.
        start_unix_ns: 4_000_000_000 * 1_000_000_000,
        clock: 0,
        sample_hz: 100,
        modes: mode::CPU,
        signal: 34,
        mem_rate: 0,
        copy_rate: 0,
        python_version: 0x030B07F0,
        exe: "/usr/bin/python3".into(),
        cwd: cwd.to_string_lossy().into_owned(),
        argv: vec!["python3".into(), "main.py".into(), "--n".into(), "3".into()],
    };
    let mut t = TraceBuilder::new(&header);
    t.string(1, "main.py")
        .function(1, 3, 1, 10)
        .function(2, 4, 1, 4)
        .stack(1, &[(2, 6), (1, 11)]);
    t.sample(10, 100, 1, 30, 0, Exec::Python)
        .push(Record::Thread { tid: 100, name: 6 });
    t.sample(20, 101, 3, 30, 0, Exec::Python).chunk();
    t.string(3, "main")
        .string(4, "work")
        .string(6, "MainThread");
    t.stack(2, &[(2, 7), (1, 11)])
        .stack(3, &[(3, 3), (2, 7), (1, 11)])
        .function(3, 5, 2, 1);
    t.string(2, "gone.py")
        .string(5, "helper")
        .string(7, "worker");
    t.push(Record::Thread { tid: 101, name: 7 });
    t.sample(30, 100, 1, 30, 0, Exec::Python)
        .sample(40, 100, 2, 40, 10, Exec::Native);
    t.sample(50, 101, 3, 20, 5, Exec::Native)
        .stack(4, &[(1, 11)]);
    t.sample(60, 100, 4, 10, 0, Exec::Python).chunk();
    t.sample(70, 102, 0, 40, 20, Exec::Native);
    t.push(Record::End(End {
        t_ns: 2500 * MS,
        samples: 8,
        dropped: 1,
        truncated: 0,
    }));
    t.finish()
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.py"), MAIN_PY).unwrap();
        let trace = synthetic_trace(dir.path());
        std::fs::write(dir.path().join("full.trace"), &trace).unwrap();
        // Cut inside the last chunk: it holds the empty-stack sample and the end record.
        std::fs::write(dir.path().join("cut.trace"), &trace[..trace.len() - 5]).unwrap();
        Fixture { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    fn report(&self, args: &[&str]) -> Output {
        // The default width, whatever terminal the tests run from.
        Command::new(env!("CARGO_BIN_EXE_rprof-report"))
            .args(args)
            .env_remove("COLUMNS")
            .output()
            .unwrap()
    }

    fn text(&self, args: &[&str]) -> String {
        let out = self.report(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, trace: &str) -> Value {
        serde_json::from_str(&self.text(&[&self.path(trace), "--json"])).unwrap()
    }
}

const FULL_TEXT: &str = "\
Program   python3 main.py --n 3
PID       4242
Elapsed   2.500 s wall
Sampled   0.200 s of CPU time in 7 samples, 1 dropped
Clock     cpu, 100 Hz asked, 35 Hz achieved
Python    3.11.7
Charged   library time to the program's calling line: 0.0% (--profile-all: library lines their own)
Memory    not recorded (memory mode off)

main.py: 55.0% of the time (Python 35.0%, native 15.0%, system 5.0%)
  Line  Python  Native  System   Total              Source
     6   30.0%                   30.0%  ███             for i in range(n):
        ^ manual-sum: this loop only adds up into `total`; sum() over the iterable (or a generator)
          does the loop in C.
          fix:  total += sum((i & 3) < 2 for i in range(n))
          cost: 50.0% of all CPU on lines 6-7 (15.0% in native code); estimated saving 15.0-37.5% of
                all CPU (30-75% of this code's: sum() adds in C)
     7           15.0%    5.0%   20.0%  ██                  total += (i & 3) < 2
    11    5.0%                    5.0%  ▌               work(1000); gone.helper()

gone.py: 25.0% of the time (Python 15.0%, native 7.5%, system 2.5%)
  Line  Python  Native  System   Total              Source
     3   15.0%    7.5%    2.5%   25.0%  ██▌

<native threads> (threads that never ran Python code)
  20.0% of the time (Python 0.0%, native 10.0%, system 10.0%)

Functions by self time (top 3 of 3)
    Self   Total  Function                          Defined at
   50.0%   75.0%  work                              main.py:4
   25.0%   25.0%  helper                            gone.py:1
    5.0%   80.0%  main                              main.py:10

Threads
       TID   Share  Samples  Name
       100   55.0%        4  MainThread
       101   25.0%        2  worker
       102   20.0%        1

Warnings
  ! cannot read the source of gone.py (No such file or directory (os error 2)); lines are shown
    without text
";

#[test]
fn text_report_is_exact() {
    let f = Fixture::new();
    assert_eq!(f.text(&[&f.path("full.trace")]), FULL_TEXT);
}

#[test]
fn truncated_trace_reports_what_was_intact_and_says_why() {
    let f = Fixture::new();
    let want = "\
Program   python3 main.py --n 3
PID       4242
Elapsed   at least 0.060 s wall (the trace has no end)
Sampled   0.160 s of CPU time in 6 samples, dropped unknown
Clock     cpu, 100 Hz asked, 38 Hz achieved
Python    3.11.7
Charged   library time to the program's calling line: 0.0% (--profile-all: library lines their own)
Memory    not recorded (memory mode off)

main.py: 68.8% of the time (Python 43.8%, native 18.8%, system 6.2%)
  Line  Python  Native  System   Total              Source
     6   37.5%                   37.5%  ███▊            for i in range(n):
        ^ manual-sum: this loop only adds up into `total`; sum() over the iterable (or a generator)
          does the loop in C.
          fix:  total += sum((i & 3) < 2 for i in range(n))
          cost: 62.5% of all CPU on lines 6-7 (18.8% in native code); estimated saving 18.8-46.9% of
                all CPU (30-75% of this code's: sum() adds in C)
     7           18.8%    6.2%   25.0%  ██▌                 total += (i & 3) < 2
    11    6.2%                    6.2%  ▋               work(1000); gone.helper()

gone.py: 31.2% of the time (Python 18.8%, native 9.4%, system 3.1%)
  Line  Python  Native  System   Total              Source
     3   18.8%    9.4%    3.1%   31.2%  ███▏

Functions by self time (top 2 of 3)
    Self   Total  Function                          Defined at
   62.5%   93.8%  work                              main.py:4
   31.2%   31.2%  helper                            gone.py:1

Threads
       TID   Share  Samples  Name
       100   68.8%        4  MainThread
       101   31.2%        2  worker

Warnings
  ! trace is truncated: the chunk at byte 341 is missing 5 bytes (was the process killed?);
    everything before it was read
  ! the trace has no end record: the process was killed (or crashed) before rprof could finish it;
    the report covers what was written until then
  ! cannot read the source of gone.py (No such file or directory (os error 2)); lines are shown
    without text
";
    assert_eq!(f.text(&[&f.path("cut.trace"), "--functions", "2"]), want);

    let j = f.json("cut.trace");
    check_scalene_schema(&j);
    assert_eq!(j["rprof"]["killed"], true);
    assert_eq!(j["rprof"]["samples"], 6);
    assert_eq!(j["rprof"]["dropped"], Value::Null);
    assert_eq!(j["elapsed_time_sec"], 0.06);
    let damage = j["rprof"]["damage"].as_array().unwrap();
    assert_eq!(damage.len(), 1);
    assert!(
        damage[0]
            .as_str()
            .unwrap()
            .starts_with("trace is truncated"),
        "{damage:?}"
    );
    assert_eq!(j["files"]["main.py"]["percent_cpu_time"], 68.75);
    assert!(j["files"].get("<native>").is_none());
}

#[test]
fn threshold_and_all_lines_choose_the_rows() {
    let f = Fixture::new();
    let text = f.text(&[&f.path("full.trace"), "--threshold", "25"]);
    let rows: Vec<&str> = text.lines().filter(|l| l.contains("█")).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(rows[0].starts_with("     6   30.0%"), "{text}");
    assert!(rows[1].starts_with("     3   15.0%"), "{text}");
    assert!(text.contains(
        "1 files under the 25% threshold have 20.0% of the time in all (--all-lines shows them)"
    ));
    assert!(!text.contains("<native"));

    let text = f.text(&[&f.path("full.trace"), "--threshold", "60"]);
    assert!(!text.contains("main.py: 55.0%") && text.contains("3 files under the 60%"));

    let text = f.text(&[&f.path("full.trace"), "--threshold", "60", "--all-lines"]);
    assert_eq!(text, FULL_TEXT);

    let out = f.report(&[&f.path("full.trace"), "--threshold", "-1"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn json_has_scalenes_fields_and_the_same_numbers() {
    let f = Fixture::new();
    let j = f.json("full.trace");
    check_scalene_schema(&j);
    let cwd = f.dir.path().to_string_lossy();
    assert_eq!(j["program"], format!("{cwd}/main.py"));
    assert_eq!(j["entrypoint_dir"], *cwd);
    assert_eq!(j["filename"], *cwd);
    assert_eq!(j["args"], serde_json::json!(["main.py", "--n", "3"]));
    assert_eq!(j["elapsed_time_sec"], 2.5);
    assert_eq!(j["start_time_absolute"], 4e9);
    assert_eq!(j["memory"], false);

    let files: Vec<&String> = j["files"].as_object().unwrap().keys().collect();
    assert_eq!(files, ["main.py", "gone.py", "<native threads>"]);
    let shares: f64 = j["files"]
        .as_object()
        .unwrap()
        .values()
        .map(|f| f["percent_cpu_time"].as_f64().unwrap())
        .sum();
    assert_eq!(shares, 100.0);
    let main = &j["files"]["main.py"];
    assert_eq!(main["percent_cpu_time"], 55.0);
    let lines = main["lines"].as_array().unwrap();
    let got: Vec<(u64, f64, f64, f64)> = lines
        .iter()
        .map(|l| {
            let n = |k: &str| l[k].as_f64().unwrap();
            (
                l["lineno"].as_u64().unwrap(),
                n("n_cpu_percent_python"),
                n("n_cpu_percent_c"),
                n("n_sys_percent"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (6, 30.0, 0.0, 0.0),
            (7, 0.0, 15.0, 5.0),
            (11, 5.0, 0.0, 0.0)
        ]
    );
    // Source text as Scalene writes it: newline kept, markup characters escaped.
    assert_eq!(
        lines[1]["line"],
        "        total += (i \\u0026 3) \\u003c 2\n"
    );
    let functions: Vec<(&str, u64, f64)> = main["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let pct = f["n_cpu_percent_python"].as_f64().unwrap()
                + f["n_cpu_percent_c"].as_f64().unwrap()
                + f["n_sys_percent"].as_f64().unwrap();
            (
                f["line"].as_str().unwrap(),
                f["lineno"].as_u64().unwrap(),
                pct,
            )
        })
        .collect();
    assert_eq!(functions, [("work", 4, 50.0), ("main", 10, 5.0)]);

    let gone = &j["files"]["gone.py"];
    assert_eq!(gone["percent_cpu_time"], 25.0);
    assert_eq!(gone["lines"][0]["line"], "");
    assert_eq!(gone["lines"][0]["n_cpu_percent_c"], 7.5);
    let native = &j["files"]["<native threads>"];
    assert_eq!(native["percent_cpu_time"], 20.0);
    assert_eq!(native["lines"], serde_json::json!([]));

    let r = &j["rprof"];
    assert_eq!(r["format_version"], rprof_format::FORMAT_VERSION);
    assert_eq!(r["pid"], 4242);
    assert_eq!(r["clock"], "cpu");
    assert_eq!(r["sample_hz"], 100);
    assert_eq!(r["python_version"], "3.11.7");
    assert_eq!(
        (
            r["samples"].as_u64(),
            r["dropped"].as_u64(),
            r["truncated"].as_u64()
        ),
        (Some(7), Some(1), Some(0))
    );
    assert_eq!(r["killed"], false);
    assert_eq!(r["damage"], serde_json::json!([]));
    assert_eq!(
        r["threads"],
        serde_json::json!([
            {"pid": 4242, "tid": 100, "name": "MainThread", "cpu_percent": 55.0, "samples": 4},
            {"pid": 4242, "tid": 101, "name": "worker", "cpu_percent": 25.0, "samples": 2},
            {"pid": 4242, "tid": 102, "name": null, "cpu_percent": 20.0, "samples": 1},
        ])
    );
    let inclusive: Vec<(&str, f64, f64)> = r["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap(),
                f["self_percent"].as_f64().unwrap(),
                f["total_percent"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        inclusive,
        [
            ("work", 50.0, 75.0),
            ("helper", 25.0, 25.0),
            ("main", 5.0, 80.0)
        ]
    );
}

#[test]
fn output_goes_to_a_file_when_asked() {
    let f = Fixture::new();
    let (txt, json) = (f.path("out.txt"), f.path("out.json"));
    let out = f.report(&[&f.path("full.trace"), "-o", &txt]);
    assert!(out.status.success() && out.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&txt).unwrap(), FULL_TEXT);
    let out = f.report(&[&f.path("full.trace"), "--json", "--output", &json]);
    assert!(out.status.success() && out.stdout.is_empty());
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(j, f.json("full.trace"));
}

#[test]
fn unreadable_traces_fail_with_one_line_and_code_2() {
    let f = Fixture::new();
    std::fs::write(f.path("garbage.trace"), b"this is not a trace at all").unwrap();
    let mut newer = std::fs::read(f.path("full.trace")).unwrap();
    newer[8] = 99; // format version
    std::fs::write(f.path("newer.trace"), newer).unwrap();
    for (name, want) in [
        (
            "garbage.trace",
            "garbage.trace: not an rprof trace (bad magic bytes)",
        ),
        (
            "newer.trace",
            "newer.trace: trace format version 99 is not supported",
        ),
        ("missing.trace", "cannot read"),
        ("", "cannot read"),
    ] {
        let out = f.report(&[&f.path(name)]);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(out.stdout.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("rprof-report: error: ") && err.contains(want),
            "{err}"
        );
    }
}

#[test]
fn corrupt_chunk_is_reported_and_the_rest_still_read() {
    let f = Fixture::new();
    let mut data = std::fs::read(f.path("full.trace")).unwrap();
    let n = data.len();
    data[n - 3] ^= 0xff; // inside the last chunk: its checksum fails
    std::fs::write(f.path("bad.trace"), data).unwrap();
    let text = f.text(&[&f.path("bad.trace")]);
    assert!(
        text.contains("Sampled   0.160 s of CPU time in 6 samples"),
        "{text}"
    );
    assert!(text.contains("  ! trace is corrupt at byte 341:"), "{text}");
    assert!(text.contains("  ! the trace has no end record"), "{text}");
    check_scalene_schema(&f.json("bad.trace"));
}

#[test]
fn a_trace_without_samples_still_reports() {
    let f = Fixture::new();
    let h = Header {
        pid: 7,
        argv: vec!["./static-prog".into()],
        clock: 1,
        sample_hz: 250,
        ..Default::default()
    };
    let mut t = TraceBuilder::new(&h);
    t.push(Record::End(End {
        t_ns: 5 * MS,
        ..Default::default()
    }));
    std::fs::write(f.path("empty.trace"), t.finish()).unwrap();
    let text = f.text(&[&f.path("empty.trace")]);
    assert_eq!(
        text,
        "\
Program   ./static-prog
PID       7
Elapsed   0.005 s wall
Sampled   0.000 s of wall time in 0 samples, 0 dropped
Clock     wall, 250 Hz asked, none achieved (no sample)
Python    not Python
Memory    not recorded (memory mode off)

No CPU samples in this trace.
"
    );
    let j = f.json("empty.trace");
    check_scalene_schema(&j);
    assert_eq!(j["files"], serde_json::json!({}));
    assert_eq!(j["rprof"]["python_version"], Value::Null);
}

#[test]
fn source_problems_are_summed_up_in_a_few_warnings() {
    let f = Fixture::new();
    let h = Header {
        start_unix_ns: 0, // before main.py was written
        cwd: f.dir.path().to_string_lossy().into_owned(),
        ..Default::default()
    };
    let mut t = TraceBuilder::new(&h);
    for (i, name) in ["main.py", "a.py", "b.py", "c.py", "d.py"]
        .iter()
        .enumerate()
    {
        let id = i as u32 + 1;
        t.string(id, name)
            .function(id, id, id, 1)
            .stack(id, &[(id, 99)]);
        t.sample(1, 1, id, 50 - id as u64, 0, Exec::Python);
    }
    std::fs::write(f.path("src.trace"), t.finish()).unwrap();
    let text = f.text(&[&f.path("src.trace")]);
    let warnings = &text[text.find("\nWarnings\n").unwrap()..];
    assert_eq!(
        warnings,
        "
Warnings
  ! the trace has no end record: the process was killed (or crashed) before rprof could finish it;
    the report covers what was written until then
  ! cannot read the source of a.py (No such file or directory (os error 2)), b.py (No such file or
    directory (os error 2)), c.py (No such file or directory (os error 2)) and 1 more; lines are
    shown without text
  ! the source of main.py changed after the profiled run started; line text may not match
  ! the source of main.py (11 lines, line 99 profiled) is shorter than the profile says; line text
    may not match
"
    );
    let json = f.json("src.trace");
    assert_eq!(json["rprof"]["warnings"].as_array().unwrap().len(), 3);
}

/// The data a `--html` page carries, and the page.
fn html_data(page: &str) -> Value {
    let open = "<script type=\"application/json\" id=\"rprof-data\">";
    let start = page.find(open).expect("the data element") + open.len();
    let end = start + page[start..].find("</script>").unwrap();
    serde_json::from_str(&page[start..end]).unwrap()
}

#[test]
fn html_page_carries_the_models_figures_offline() {
    let f = Fixture::new();
    let out = f.path("page.html");
    f.text(&[&f.path("full.trace"), "--html", "-o", &out]);
    let page = std::fs::read_to_string(&out).unwrap();
    // Self-contained: no request is allowed by its policy, and nothing names a network
    // address (but SVG's namespace, which is a name, not a request).
    assert!(page.contains("default-src 'none'"));
    let page_less_svg = page.replace("\"http://www.w3.org/2000/svg\"", "");
    for needle in ["http://", "https://", "src=\"", "<link rel=\"stylesheet\""] {
        assert!(!page_less_svg.contains(needle), "{needle} in the page");
    }
    let d = html_data(&page);
    let json = f.json("full.trace");
    let main = &d["files"][0];
    assert!(main["path"].as_str().unwrap().ends_with("main.py"));
    assert_eq!(main["source"][5], "    for i in range(n):");
    // The same figures as the JSON report (rounded to 2 decimals).
    let lines = &json["files"][main["path"].as_str().unwrap()]["lines"];
    for l in main["lines"].as_array().unwrap() {
        let Some(j) = lines
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["lineno"] == l["line"])
        else {
            continue;
        };
        let py = j["n_cpu_percent_python"].as_f64().unwrap();
        assert!(
            (l["cpu"][0].as_f64().unwrap() - py).abs() < 0.006,
            "{l} {j}"
        );
    }
    assert_eq!(d["run"]["command"], "python3 main.py --n 3");
    assert_eq!(d["run"]["dropped"], 1);
    // The flame graph's root has all the time; its children are the outermost frames.
    let flame = &d["flame"];
    let root = ["py", "native", "sys"].map(|k| flame[k][0].as_f64().unwrap());
    assert!((root.iter().sum::<f64>() - 100.0).abs() < 0.01, "{root:?}");
    let labels: Vec<String> = (1..flame["label"].as_array().unwrap().len())
        .filter(|&i| flame["parent"][i] == 0)
        .map(|i| match flame["label"][i].as_i64().unwrap() {
            // A stack without frames: named by the page from `pseudo`.
            f if f < 0 => flame["pseudo"][(-f - 1) as usize]
                .as_str()
                .unwrap()
                .to_string(),
            f => d["functions"][f as usize]["name"]
                .as_str()
                .unwrap()
                .to_string(),
        })
        .collect();
    // The frameless time split as the report splits it: a native thread's, and the rest.
    assert_eq!(
        labels,
        [
            "main",
            "<native threads> (threads that never ran Python code)",
            "(no Python frame)"
        ]
    );
    assert_eq!(d["threads"].as_array().unwrap().len(), 3);
}

#[test]
fn html_page_escapes_the_programs_text() {
    let evil = "</script><img src=x onerror=alert(1)><script>alert(2)</script>&amp;\u{2028}";
    let dir = tempfile::tempdir().unwrap();
    let header = Header {
        pid: 7,
        modes: mode::CPU,
        exe: evil.into(),
        cwd: dir.path().to_string_lossy().into_owned(),
        argv: vec![evil.into()],
        ..Default::default()
    };
    let mut t = TraceBuilder::new(&header);
    t.string(1, evil)
        .string(2, evil)
        .function(1, 2, 1, 1)
        .stack(1, &[(1, 1)])
        .push(Record::Thread { tid: 1, name: 2 })
        .sample(1, 1, 1, 10, 0, Exec::Python);
    let trace = dir.path().join("evil.trace");
    std::fs::write(&trace, t.finish()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rprof-report"))
        .args([trace.as_os_str(), "--html".as_ref()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    // Only the page's own two script elements, and no element from the program's text.
    assert_eq!(page.matches("<script").count(), 2);
    assert_eq!(page.matches("</script>").count(), 2);
    assert!(!page.contains("<img"));
    let d = html_data(&page);
    assert_eq!(d["functions"][0]["name"], evil);
    assert_eq!(d["run"]["exe"], evil);
}

#[test]
fn advice_is_beside_its_line_listed_when_hidden_in_the_json_and_off_with_no_advice() {
    let f = Fixture::new();
    let trace = f.path("full.trace");
    // Under a threshold that hides its line, the hint is still there, named by its line.
    let text = f.text(&[&trace, "--threshold", "60"]);
    assert!(
        text.contains("Advice on lines not listed above\n        main.py:6 manual-sum: "),
        "{text}"
    );
    let off = f.text(&[&trace, "--no-advice"]);
    assert!(!off.contains("manual-sum") && off != FULL_TEXT, "{off}");
    let j = f.json("full.trace");
    let advice = j["rprof"]["advice"].as_array().unwrap();
    assert_eq!(advice.len(), 1, "{advice:?}");
    let h = &advice[0];
    assert_eq!(
        (&h["file"], &h["lineno"], &h["function"], &h["rule"]),
        (
            &Value::from("main.py"),
            &Value::from(6),
            &Value::from("work"),
            &Value::from("manual-sum")
        )
    );
    assert_eq!(h["cpu_percent"], 50.0);
    assert!(h["message"].as_str().unwrap().contains("sum()"));
    assert!(h["alloc_mb"].is_number());
    let off: Value = serde_json::from_str(&f.text(&[&trace, "--json", "--no-advice"])).unwrap();
    assert!(off["rprof"].get("advice").is_none());
}

/// The report fits the width asked (`--width`, or `COLUMNS`), and the source column takes
/// what is left: cut at 80 columns, whole at 200; the labels stay.
#[test]
fn the_text_report_fits_80_and_200_columns() {
    let f = Fixture::new();
    let longest = MAIN_PY.lines().map(|l| l.chars().count()).max().unwrap();
    for width in [80usize, 200] {
        let by_option = f.text(&[&f.path("full.trace"), "--width", &width.to_string()]);
        let out = Command::new(env!("CARGO_BIN_EXE_rprof-report"))
            .arg(f.path("full.trace"))
            .env("COLUMNS", width.to_string())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), by_option);
        for line in by_option.lines() {
            assert!(line.chars().count() <= width, "{width}: {line:?}");
        }
        let row = by_option
            .lines()
            .find(|l| l.starts_with("     7 "))
            .expect("line 7's row");
        let source = "        total += (i & 3) < 2";
        if width == 200 {
            assert!(row.ends_with(source), "{row:?}");
            assert!(by_option.lines().all(|l| l.chars().count() < 200) && longest < 100);
        } else {
            assert!(row.contains("total += (i & 3) < 2"), "{row:?}");
        }
        for label in [
            "Clock     cpu, 100 Hz asked, 35 Hz achieved",
            "<native threads> (threads that never ran Python code)",
            "Functions by self time",
        ] {
            assert!(by_option.contains(label), "{width}: {label} in {by_option}");
        }
    }
    // A width below the narrowest layout is raised to it.
    let narrow = f.text(&[&f.path("full.trace"), "--width", "20"]);
    assert!(narrow.lines().all(|l| l.chars().count() <= 72), "{narrow}");
    assert!(narrow.lines().any(|l| l.chars().count() > 60), "{narrow}");
}
