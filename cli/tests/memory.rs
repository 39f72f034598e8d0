//! Memory in the report, on synthetic traces whose numbers are known exactly: per-line and
//! per-function figures, the footprint, leaks, copies, and where native frames charge.

mod common;

use common::{check_scalene_schema, TraceBuilder, MS};
use rprof_format::{mode, Domain, End, Exec, Header, Record};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

const MIB: u64 = 1 << 20;
const S: u64 = 1000; // ms

fn header(cwd: &Path, python: bool) -> Header {
    Header {
        pid: 77,
        start_unix_ns: 4_000_000_000 * 1_000_000_000,
        sample_hz: 100,
        modes: mode::CPU | mode::MEMORY | mode::COPY,
        mem_rate: 512 << 10,
        copy_rate: 1 << 20,
        python_version: if python { 0x030B07F0 } else { 0 },
        exe: if python { "/usr/bin/python3" } else { "./prog" }.into(),
        cwd: cwd.to_string_lossy().into_owned(),
        argv: if python {
            vec!["python3".into(), "main.py".into()]
        } else {
            vec!["./prog".into()]
        },
        ..Default::default()
    }
}

fn end(t: &mut TraceBuilder, t_ms: u64) {
    t.push(Record::End(End {
        t_ns: t_ms * MS,
        ..Default::default()
    }));
}

/// Runs rprof-report on `trace` (written into `dir`) and returns its text and JSON.
fn report(dir: &Path, trace: Vec<u8>) -> (String, Value) {
    let path = dir.join("t.trace");
    std::fs::write(&path, trace).unwrap();
    let run = |json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rprof-report"));
        cmd.arg(&path).env_remove("COLUMNS");
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let json = run(true);
    // For checking against Scalene's own pydantic model by hand.
    if let Some(keep) = std::env::var_os("RPROF_TEST_JSON_DIR") {
        let name = std::thread::current()
            .name()
            .unwrap_or("json")
            .replace("::", "-");
        std::fs::write(Path::new(&keep).join(name + ".json"), &json).unwrap();
    }
    let j: Value = serde_json::from_str(&json).unwrap();
    check_scalene_schema(&j);
    let text = run(false);
    assert!(text.lines().all(|l| l.chars().count() <= 120), "{text}");
    (text, j)
}

fn close(got: &Value, want: f64) {
    let g = got
        .as_f64()
        .unwrap_or_else(|| panic!("{got} is not a number"));
    assert!(
        (g - want).abs() <= 1e-9 * want.abs().max(1.0),
        "{g} != {want}"
    );
}

fn line<'a>(j: &'a Value, file: &str, lineno: u64) -> &'a Value {
    j["files"][file]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["lineno"] == lineno)
        .unwrap_or_else(|| panic!("no line {file}:{lineno} in {}", j["files"]))
}

const MAIN_PY: &str = "def f():\n    a = []\n    b = bytes(10)\n";

/// One Python function `f` in main.py; line 2 allocates from Python, line 3 through an
/// extension (native frames before the Python frame). In MiB, over a 10 s run:
///
/// | t (s) | record                                  | line 2 live | line 3 live |
/// |-------|-----------------------------------------|-------------|-------------|
/// | 1     | alloc A, 4 (size 2), Python             | 4           |             |
/// | 2     | alloc B, 2 (size 2), native             | 6           |             |
/// | 3     | free A                                  | 2           |             |
/// | 4     | copy 3 on line 2, copy 2 on line 3      |             |             |
/// | 5     | alloc C, 8 (size 1), native, via ext    |             | 8           |
/// | 6     | free B                                  | 0           |             |
/// | 7     | alloc D, 1 (size 1), Python, via ext    |             | 9           |
/// | 7.5   | the interpreter begins finalizing       |             |             |
/// | 8     | free C (teardown)                       |             | 1           |
fn known_trace(cwd: &Path) -> Vec<u8> {
    let mut t = TraceBuilder::new(&header(cwd, true));
    t.string(1, "main.py")
        .string(2, "f")
        .string(3, "ext_alloc")
        .string(4, "/usr/lib/ext.so")
        .function(1, 2, 1, 1)
        .native_function(2, 3, 4)
        .stack(1, &[(1, 2)])
        .stack(2, &[(2, 0), (1, 3)]);
    t.sample(500, 1, 1, 10, 0, Exec::Python)
        .sample(600, 1, 2, 30, 0, Exec::Native);
    t.alloc(S, 1, 0xa, 2 * MIB, 4 * MIB, Domain::Python)
        .alloc(2 * S, 1, 0xb, 2 * MIB, 2 * MIB, Domain::Native)
        .counters(2 * S, 7 * MIB, 7 * MIB, 3 * MIB)
        .chunk();
    t.free(3 * S, 0xa)
        .copy(4 * S, 1, 3 * MIB)
        .copy(4 * S, 2, 2 * MIB)
        .alloc(5 * S, 2, 0xc, MIB, 8 * MIB, Domain::Native)
        .free(6 * S, 0xb)
        .counters(6 * S, 12 * MIB, 12 * MIB, 3 * MIB)
        .alloc(7 * S, 2, 0xd, MIB, MIB, Domain::Python)
        .chunk();
    t.finalizing(7500, 5)
        .free(8 * S, 0xc)
        .counters(9 * S, 9 * MIB, 12 * MIB, 3 * MIB);
    end(&mut t, 10 * S);
    t.finish()
}

#[test]
fn memory_figures_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.py"), MAIN_PY).unwrap();
    let (_, j) = report(dir.path(), known_trace(dir.path()));
    let s = 1e9 as u64;

    let l2 = line(&j, "main.py", 2);
    close(&l2["n_malloc_mb"], 6.0);
    assert_eq!(l2["n_mallocs"], 3); // 4/2 + 2/2
    close(&l2["n_python_fraction"], 4.0 / 6.0);
    close(&l2["n_peak_mb"], 6.0);
    // Live 4 for 1 s, 6 for 1 s, 2 for 3 s, then 0: over the 9 s since the first allocation.
    close(&l2["n_avg_mb"], 16.0 / 9.0);
    close(&l2["n_growth_mb"], 0.0);
    close(&l2["n_usage_fraction"], 6.0 / 15.0);
    close(&l2["n_copy_mb_s"], 0.3);
    // One point per 100 ms slice (the highest in it), less the middles of flat runs.
    assert_eq!(
        l2["memory_samples"],
        json!([
            [s, 4.0],
            [19 * s / 10, 4.0],
            [2 * s, 6.0],
            [3 * s, 6.0],
            [31 * s / 10, 2.0],
            [6 * s, 2.0],
            [61 * s / 10, 0.0],
            [99 * s / 10, 0.0]
        ])
    );

    // Line 3 is charged although its innermost frames are native.
    let l3 = line(&j, "main.py", 3);
    close(&l3["n_malloc_mb"], 9.0);
    assert_eq!(l3["n_mallocs"], 9);
    close(&l3["n_python_fraction"], 1.0 / 9.0);
    close(&l3["n_peak_mb"], 9.0);
    close(&l3["n_avg_mb"], (8.0 * 2.0 + 9.0 + 1.0 * 2.0) / 5.0);
    // C is freed after the interpreter began finalizing: teardown.
    close(&l3["n_growth_mb"], 9.0);
    close(&l3["n_usage_fraction"], 0.6);
    close(&l3["n_copy_mb_s"], 0.2);
    close(&l3["n_cpu_percent_c"], 75.0);
    assert_eq!(
        l3["memory_samples"],
        json!([
            [5 * s, 8.0],
            [69 * s / 10, 8.0],
            [7 * s, 9.0],
            [8 * s, 9.0],
            [81 * s / 10, 1.0],
            [99 * s / 10, 1.0]
        ])
    );
    assert!(j["files"].get("/usr/lib/ext.so").is_none());

    // The function has both lines: live 4, 6, 2, 10, 8, 9, 1.
    let f = &j["files"]["main.py"]["functions"][0];
    assert_eq!((&f["line"], &f["lineno"]), (&json!("f"), &json!(1)));
    close(&f["n_malloc_mb"], 15.0);
    assert_eq!(f["n_mallocs"], 12);
    close(&f["n_python_fraction"], 5.0 / 15.0);
    close(&f["n_peak_mb"], 10.0);
    close(
        &f["n_avg_mb"],
        (4.0 + 6.0 + 2.0 * 2.0 + 10.0 + 8.0 + 9.0 + 2.0) / 9.0,
    );
    close(&f["n_growth_mb"], 9.0);
    close(&f["n_copy_mb_s"], 0.5);

    // Global: the exact peak from the counters, where the estimate peaked (10 MiB, at C).
    assert_eq!(j["memory"], true);
    assert_eq!(j["alloc_samples"], 4);
    close(&j["max_footprint_mb"], 12.0);
    close(&j["max_footprint_python_fraction"], 0.25);
    assert_eq!(
        (&j["max_footprint_fname"], &j["max_footprint_lineno"]),
        (&json!("main.py"), &json!(3))
    );
    close(&j["growth_rate"], 60.0); // 9 of 15 MiB live at exit
    close(&j["native_allocations_mb"], 0.0);
    assert_eq!(
        j["samples"],
        json!([
            [2 * s, 7.0],
            [59 * s / 10, 7.0],
            [6 * s, 12.0],
            [9 * s, 12.0],
            [91 * s / 10, 9.0],
            [99 * s / 10, 9.0]
        ])
    );
    let m = &j["rprof"]["memory"];
    assert_eq!(
        (&m["free_samples"], &m["unmatched_frees"]),
        (&json!(3), &json!(0))
    );
    close(&m["estimated_peak_mb"], 10.0);
    close(&m["exit_sec"], 7.5);
    assert_eq!(
        j["rprof"]["marks"],
        json!([{"t_sec": 7.5, "label": "python-finalizing"}])
    );
    assert_eq!(j["files"]["main.py"]["leaks"], json!({}));
}

#[test]
fn memory_columns_and_sections_in_the_text_report() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.py"), MAIN_PY).unwrap();
    let (text, _) = report(dir.path(), known_trace(dir.path()));
    let want = "\
Program   python3 main.py
PID       77
Elapsed   10.000 s wall
Sampled   0.040 s of CPU time in 2 samples, 0 dropped
Clock     cpu, 100 Hz asked, 50 Hz achieved
Python    3.11.7
Charged   library time to the program's calling line: 0.0%, 0.0 MiB (--profile-all: library lines their own)
Memory    peak 12.0 MiB live (exact); the malloc family: 0 allocations of 0.0 MiB in all (exact counts; Python's small
          objects, served from pymalloc's arenas, are not among them)
Allocs    4 samples, one per ≥512.0 KiB allocated on average, 3 frees of them; memory in MiB (2^20 bytes)

main.py: 100.0% of the time (Python 25.0%, native 75.0%, system 0.0%); 15.0 MiB allocated (100.0%)
  Line  Python  Native  System   Total     Avg    Peak   Alloc  Growth   Py%  Copy/s  Timeline    Source
     2   25.0%                   25.0%     1.8     6.0     6.0           67%    0.30   ▆██▃▃▃         a = []
     3           75.0%           75.0%     5.4     9.0     9.0     9.0   11%    0.20       ████▁      b = bytes(10)

Memory footprint
  Peak      12.0 MiB by 6.000 s, 25% of it in Python's allocator
  Live                  ▅▅▅▅▅▅▅▅▅▅▅▅▅▅▅▅▅▅▅▅▅▅▅▅▅▅████████████████████▆▆▆▆▆▆  (full block: 12.0 MiB)
  Reached   at main.py:3  b = bytes(10) (estimated peak 10.0 MiB at 5.000 s)
  Allocated 15.0 MiB in all (estimated from samples: the malloc family and Python's allocator, small objects included),
            0.0 MiB in code with no Python frame; 60.0% still live at exit
  Exit      the interpreter began finalizing at 7.500 s: later frees are teardown
  Copied    5.0 MiB

Top lines by memory allocated (MiB, share of all allocated)
       9.0   60.0%  main.py:3  b = bytes(10)
       6.0   40.0%  main.py:2  a = []

Top lines by peak memory (MiB, share of the peak footprint)
       9.0   75.0%  main.py:3  b = bytes(10)
       6.0   50.0%  main.py:2  a = []

Likely leaks: none

Functions by self time (top 2 of 2)
    Self   Total   Alloc    Peak  Function                          Defined at
  100.0%  100.0%    15.0    10.0  f                                 main.py:1
           75.0%                  ext_alloc [native]                /usr/lib/ext.so

Threads
       TID   Share  Samples  Name
         1  100.0%        2
";
    assert_eq!(text, want);
}

/// A 10 s run with four allocating lines of `leaky.py` (module-level code), in MiB:
/// line 1 keeps 200 in its first half second (a one-off, flat afterwards); line 2 churns 1
/// every 10 ms, freed 5 ms later; line 3 leaks 1 every 100 ms from 0.5 s to 9.5 s (91 in
/// all); line 4 keeps 50 once, at 5 s. The interpreter begins finalizing at 9.94 s and
/// frees everything still held at 9.95 s.
fn leaky_trace(cwd: &Path) -> Vec<u8> {
    let mut t = TraceBuilder::new(&header(cwd, true));
    t.string(1, "leaky.py")
        .string(2, "<module>")
        .function(1, 2, 1, 1);
    for line in 1..=4 {
        t.stack(line, &[(1, line)]);
    }
    let mut held = Vec::new();
    let mut addr = 0x1000;
    let mut alloc = |t: &mut TraceBuilder, at: u64, line: u32, mib: u64| {
        addr += 0x10;
        t.alloc(at, line, addr, mib * MIB, mib * MIB, Domain::Python);
        addr
    };
    for i in 0..50 {
        held.push(alloc(&mut t, 100 + 8 * i, 1, 4));
    }
    for ms in (500..=9900).step_by(10) {
        let a = alloc(&mut t, ms, 2, 1);
        t.free(ms + 5, a);
        if ms % 100 == 0 && ms <= 9500 {
            held.push(alloc(&mut t, ms + 1, 3, 1));
        }
        if ms == 5000 {
            held.push(alloc(&mut t, ms + 2, 4, 50));
        }
        if ms % 1000 == 0 {
            t.chunk();
        }
    }
    t.counters(9000, 400 * MIB, 400 * MIB, 300 * MIB)
        .finalizing(9940, 3);
    for a in held {
        t.free(9950, a);
    }
    end(&mut t, 10 * S);
    t.finish()
}

#[test]
fn only_the_steady_leak_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let (text, j) = report(dir.path(), leaky_trace(dir.path()));
    // 91 sampled allocations never freed before exit: 1 - 1 / 93. Velocity: the 91 MiB it
    // kept over the 10 s run.
    let leaks = &j["files"]["leaky.py"]["leaks"];
    assert_eq!(leaks.as_object().unwrap().len(), 1, "{leaks}");
    close(&leaks["3"]["likelihood"], 1.0 - 1.0 / 93.0);
    close(&leaks["3"]["velocity_mb_s"], 9.1);
    close(&line(&j, "leaky.py", 3)["n_growth_mb"], 91.0);
    close(&line(&j, "leaky.py", 1)["n_growth_mb"], 200.0);
    close(&line(&j, "leaky.py", 2)["n_growth_mb"], 0.0);
    close(&line(&j, "leaky.py", 4)["n_growth_mb"], 50.0);
    close(&line(&j, "leaky.py", 3)["n_peak_mb"], 91.0);
    let r = &j["rprof"]["memory"]["leaks"][0];
    assert!(r["r2"].as_f64().unwrap() > 0.99, "{r}");

    let section = &text[text.find("\nLikely leaks").unwrap()..text.find("\nFunctions").unwrap()];
    assert_eq!(
        section,
        "
Likely leaks (rarely freed, growing steadily through the run; likelihood >= 95%)
  91.0 MiB not freed, 9.1 MiB/s, likelihood 98.9%  leaky.py:3
"
    );
}

const NATIVE_C: &str = "int main() {\n    small_pairs();\n    grow_realloc();\n}\n";

/// A C program: native frames only. small_pairs (line 52 of native_alloc.c) and
/// grow_realloc (line 71), both called from main; one thread with no frame at all.
#[test]
fn native_stacks_report_c_functions_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut src = String::new();
    for i in 1..=80 {
        src.push_str(&match i {
            52 => "        unsigned char *p = malloc(sz);\n".to_string(),
            71 => "            unsigned char *q = realloc(p, nsz);\n".to_string(),
            _ => format!("// {i}\n"),
        });
    }
    std::fs::write(dir.path().join("native_alloc.c"), src + NATIVE_C).unwrap();
    let mut t = TraceBuilder::new(&header(dir.path(), false));
    t.string(1, "native_alloc.c")
        .string(2, "small_pairs")
        .string(3, "grow_realloc")
        .string(4, "main")
        .native_function(1, 2, 1)
        .native_function(2, 3, 1)
        .native_function(3, 4, 1)
        .stack(1, &[(1, 52), (3, 82)])
        .stack(2, &[(2, 71), (3, 83)]);
    t.sample(10, 1, 1, 75, 0, Exec::Native)
        .sample(20, 1, 2, 20, 5, Exec::Native)
        .sample(30, 2, 0, 10, 0, Exec::Native);
    t.alloc(35, 0, 0x30, 100, MIB, Domain::Native)
        .alloc(40, 1, 0x10, 64, 2 * MIB, Domain::Native)
        .free(41, 0x10)
        .alloc(50, 2, 0x20, 1 << 16, 3 * MIB, Domain::Native);
    end(&mut t, 100);
    let (text, j) = report(dir.path(), t.finish());

    let c = &j["files"]["native_alloc.c"];
    let got: Vec<(u64, f64, f64)> = c["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let n = |k: &str| l[k].as_f64().unwrap();
            (
                l["lineno"].as_u64().unwrap(),
                n("n_cpu_percent_c"),
                n("n_malloc_mb"),
            )
        })
        .collect();
    // 105 ms of CPU time: 75 in small_pairs, 15 + 5 (system) in grow_realloc, 10 with no
    // frame at all.
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].0, got[0].2, got[1].0, got[1].2), (52, 2.0, 71, 3.0));
    close(&json!(got[0].1), 100.0 * 75.0 / 105.0);
    close(&json!(got[1].1), 100.0 * 15.0 / 105.0);
    assert_eq!(c["lines"][0]["n_mallocs"], 32768); // 2 MiB of 64-byte blocks
    let names: Vec<&str> = c["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["line"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["small_pairs", "grow_realloc", "main"]);
    // Every allocation had no Python frame.
    close(&j["native_allocations_mb"], 6.0);
    close(
        &j["files"]["<native>"]["percent_cpu_time"],
        100.0 * 10.0 / 105.0,
    );
    // The estimated total peaks at 4 MiB with grow_realloc's allocation.
    assert_eq!(
        (&j["max_footprint_fname"], &j["max_footprint_lineno"]),
        (&json!("native_alloc.c"), &json!(71))
    );

    let table = &text[text.find("  Line  Python").unwrap()..text.find("\n\n<native>").unwrap()];
    assert_eq!(
        table,
        "  Line  Python  Native  System   Total     Avg    Peak   Alloc  Growth   Py%  Copy/s  \
         Timeline    Source
    52           71.4%           71.4%    0.03     2.0     2.0            0%              \
         █               unsigned char…
    71           14.3%    4.8%   19.0%     3.0     3.0     3.0     3.0    0%               \
         █████              unsigned …"
    );
    let functions = &text[text.find("Functions by self time").unwrap()..];
    assert!(functions.contains(
        "\n   71.4%   71.4%     2.0     2.0  small_pairs [native]              native_alloc.c\n"
    ));
    assert!(
        text.contains("\nnative_alloc.c: 90.5% of the time"),
        "{text}"
    );
}

/// Time in libc alone (a stack of only the C library, its source not installed) is
/// frameless time, even with a line (libc6-dbg's): not a libc line, and no warning about
/// its source; a Python file that is missing still gets one.
#[test]
fn missing_native_sources_are_not_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = TraceBuilder::new(&header(dir.path(), true));
    t.string(1, "./malloc/malloc.c")
        .string(2, "_int_free")
        .string(3, "gone.py")
        .string(4, "f")
        .native_function(1, 2, 1)
        .function(2, 4, 3, 1)
        .stack(1, &[(1, 4433)])
        .stack(2, &[(2, 2)]);
    t.sample(10, 1, 1, 10, 0, Exec::Native)
        .sample(20, 1, 2, 10, 0, Exec::Python);
    end(&mut t, 100);
    let (text, _) = report(dir.path(), t.finish());
    assert!(!text.contains("\n  4433 "), "{text}");
    assert!(
        text.contains("\n<start-up> (interpreter start-up"),
        "{text}"
    );
    let warnings = &text[text.find("\nWarnings\n").unwrap()..];
    assert!(
        warnings.contains("cannot read the source of gone.py ("),
        "{warnings}"
    );
    assert!(!warnings.contains("malloc.c"), "{warnings}");
}
