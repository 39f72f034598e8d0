//! `rprof run` end to end, with a stand-in for librprof.so: the "profiled" command is a
//! shell script that writes a prepared trace where the shim would, and records the
//! environment it was given.

mod common;

use common::TraceBuilder;
use rprof_format::{End, Exec, Header, Record};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const RPROF: &str = env!("CARGO_BIN_EXE_rprof");

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// A trace of `python3 app.py` with one hot line, a fake library (the dynamic loader
    /// warns about it and goes on), and the script that plays the profiled program.
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("app.py"), "x = 1\nwhile x: x += 1\n").unwrap();
        let h = Header {
            pid: 1,
            start_unix_ns: u64::MAX,
            clock: 0,
            sample_hz: 100,
            python_version: 0x030C0AF0,
            cwd: d.to_string_lossy().into_owned(),
            argv: vec!["python3".into(), "app.py".into()],
            ..Default::default()
        };
        let mut t = TraceBuilder::new(&h);
        t.string(1, "app.py")
            .string(2, "<module>")
            .function(1, 2, 1, 1)
            .stack(1, &[(1, 2)]);
        // 0.4 s of CPU: more than a command that failed at start takes.
        t.sample(10, 1, 1, 300, 0, Exec::Python)
            .sample(20, 1, 1, 100, 0, Exec::Native);
        t.push(Record::End(End {
            t_ns: 50_000_000,
            samples: 2,
            dropped: 0,
            truncated: 0,
        }));
        std::fs::write(d.join("prepared.trace"), t.finish()).unwrap();
        std::fs::write(d.join("librprof.so"), "").unwrap();
        Fixture { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `rprof run ARGS... -- sh -c SCRIPT` in the fixture's directory.
    fn run(&self, rprof: &Path, args: &[&str], script: &str) -> Output {
        Command::new(rprof)
            .current_dir(self.dir.path())
            .arg("run")
            .args(args)
            .args(["--", "sh", "-c", script])
            .env("LD_PRELOAD", "/old/preload.so")
            .output()
            .unwrap()
    }

    fn lib_arg(&self) -> String {
        format!("--lib={}", self.path("librprof.so").display())
    }
}

/// Copies the trace to where the shim would write this shell's, and records the environment.
const WRITE_TRACE: &str = r#"
    env | grep -E '^(LD_PRELOAD|RPROF_[A-Z_]+)=' | sort > env.txt
    cp prepared.trace "$(echo "$RPROF_OUTPUT" | sed "s/%p/$$/")"
"#;

/// The launcher's pid, from the environment the command was given.
fn out_pid(env: &str) -> String {
    env.lines()
        .find_map(|l| l.strip_prefix("RPROF_LAUNCHER="))
        .unwrap()
        .to_owned()
}

fn run_line(env: &str) -> String {
    let line = env.lines().find(|l| l.starts_with("RPROF_RUN=")).unwrap();
    format!("{line}\n")
}

/// stderr without the dynamic loader's complaints about the stand-in library: the report.
fn report(o: &Output) -> String {
    let err = stderr(o);
    let lines: Vec<&str> = err
        .split_inclusive('\n')
        .filter(|l| !l.starts_with("ERROR: ld.so:"))
        .collect();
    lines.concat()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn runs_the_command_passes_the_options_and_reports_its_trace() {
    let f = Fixture::new();
    let traces = f.path("traces");
    std::fs::create_dir(&traces).unwrap();
    std::fs::write(traces.join("rprof-1.trace"), "from an earlier run").unwrap();
    let script = format!("{WRITE_TRACE} cp prepared.trace traces/rprof-999999.trace; exit 3");
    let lib = f.lib_arg();
    let args = [
        &lib,
        "--hz",
        "250",
        "--wall",
        "--memory",
        "--output-dir",
        "traces",
        "--json",
        "out.json",
    ];
    let out = f.run(Path::new(RPROF), &args, &script);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    let lib = f.path("librprof.so").canonicalize().unwrap();
    let traces = traces.canonicalize().unwrap();
    let env = std::fs::read_to_string(f.path("env.txt")).unwrap();
    let launcher = format!("RPROF_LAUNCHER={}\n", out_pid(&env));
    assert_eq!(
        env.replace(&launcher, "").replace(&run_line(&env), ""),
        format!(
            "LD_PRELOAD={}:/old/preload.so\nRPROF_CLOCK=wall\nRPROF_CPU_HZ=250\nRPROF_MODE=cpu,memory\n\
             RPROF_OUTPUT={}/rprof-%p.trace\n",
            lib.display(),
            traces.display()
        )
    );
    assert!(run_line(&env).starts_with(&format!("RPROF_RUN={}-", out_pid(&env))));

    // The report is on stderr: stdout is the command's.
    assert!(stdout(&out).is_empty());
    let text = report(&out);
    assert!(text.starts_with("Program   python3 app.py\n"), "{text}");
    assert!(
        text.contains("\n     2   75.0%   25.0%          100.0%  ██████████  while x: x += 1\n"),
        "{text}"
    );
    let own = std::fs::read_dir(&traces)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n != "rprof-1.trace" && n != "rprof-999999.trace")
        .unwrap();
    assert!(
        text.contains(&format!("\nTrace: {}\n", traces.join(&own).display())),
        "{text}"
    );
    // A trace of another run (no run identity, another pid) is not this run's.
    assert!(!text.contains("rprof-999999"), "{text}");
    assert!(
        text.ends_with("\nStatus: the command exited with status 3\n"),
        "{text}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.path("out.json")).unwrap()).unwrap();
    common::check_scalene_schema(&json);
    assert_eq!(
        json["files"]["app.py"]["lines"][0]["n_cpu_percent_python"],
        75.0
    );
}

#[test]
fn output_names_the_commands_trace_and_the_default_directory_goes_once_empty() {
    let f = Fixture::new();
    let out = f.run(
        Path::new(RPROF),
        &[&f.lib_arg(), "-o", "main.trace", "--cpu-only"],
        WRITE_TRACE,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(report(&out).contains("\nTrace: main.trace\n"));
    assert!(f.path("main.trace").is_file());
    // Made for the run, and removed again once empty.
    assert!(!f.path("rprof-traces").exists());
    assert!(std::fs::read_to_string(f.path("env.txt"))
        .unwrap()
        .contains("\nRPROF_MODE=cpu\n"));
}

#[test]
fn a_command_that_writes_no_trace_is_named() {
    let f = Fixture::new();
    let out = f.run(Path::new(RPROF), &[&f.lib_arg()], "exit 0");
    assert!(out.status.success());
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(err.contains("rprof: sh -c exit 0 (pid "), "{err}");
    assert!(
        err.contains("left no trace") && err.contains("statically linked"),
        "{err}"
    );
}

#[test]
fn exit_codes_are_the_commands() {
    let f = Fixture::new();
    let killed = f.run(Path::new(RPROF), &[&f.lib_arg()], "kill -TERM $$");
    assert_eq!(killed.status.code(), Some(128 + 15));
    let missing = Command::new(RPROF)
        .args(["run", &f.lib_arg(), "--", "/no/such/program"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(127));
    assert!(stderr(&missing).starts_with("rprof: error: cannot run /no/such/program:"));
}

#[test]
fn ctrl_c_stops_the_command_but_not_the_report() {
    use std::os::unix::process::CommandExt;
    let f = Fixture::new();
    // Its own process group, so the interrupt reaches rprof and the command as a
    // terminal's Ctrl-C would, and not the test harness.
    let out = Command::new(RPROF)
        .current_dir(f.dir.path())
        .process_group(0)
        .args([
            "run",
            &f.lib_arg(),
            "--",
            "sh",
            "-c",
            &format!("{WRITE_TRACE} sleep 0.1; kill -INT 0; sleep 5"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(128 + 2), "{}", stderr(&out));
    assert!(
        report(&out).starts_with("Program   python3 app.py\n"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_library_is_found_beside_rprof_or_in_lib_or_its_absence_explained() {
    let f = Fixture::new();
    let bin = f.path("prefix/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let rprof = bin.join("rprof");
    std::fs::copy(RPROF, &rprof).unwrap();

    let out = f.run(&rprof, &[], "exit 0");
    assert_eq!(out.status.code(), Some(2));
    // The loader's complaints about the stand-in preload come first; ours is one line.
    let err = stderr(&out);
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("rprof"))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n",
        format!(
            "rprof: error: cannot find librprof.so; looked for {0}/librprof.so and \
             {0}/../lib/librprof.so (build it with `cargo build -p rprof-shim`, or name it with \
             --lib)\n",
            bin.display()
        )
    );

    let lib_dir = f.path("prefix/lib");
    std::fs::create_dir(&lib_dir).unwrap();
    std::fs::write(lib_dir.join("librprof.so"), "").unwrap();
    let out = f.run(&rprof, &[], WRITE_TRACE);
    assert!(out.status.success(), "{}", stderr(&out));
    let env = std::fs::read_to_string(f.path("env.txt")).unwrap();
    let want = lib_dir.canonicalize().unwrap().join("librprof.so");
    assert!(
        env.starts_with(&format!("LD_PRELOAD={}:", want.display())),
        "{env}"
    );

    std::fs::write(bin.join("librprof.so"), "").unwrap();
    f.run(&rprof, &[], WRITE_TRACE);
    let env = std::fs::read_to_string(f.path("env.txt")).unwrap();
    let want = bin.canonicalize().unwrap().join("librprof.so");
    assert!(
        env.starts_with(&format!("LD_PRELOAD={}:", want.display())),
        "{env}"
    );
}

#[test]
fn bad_options_are_refused() {
    for args in [
        &["run", "--cpu-only", "--memory", "true"][..],
        &["run"],
        &["run", "--hz", "0", "true"],
    ] {
        let out = Command::new(RPROF).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
