//! `rprof run`: preloads librprof.so into a command, waits for it as a shell would
//! (forwarding the signals sent to rprof, `forward`), and reports on the traces its
//! processes wrote (`processes`). The program's standard output stays the program's: the
//! report goes to the terminal (stderr) or to `--report FILE`. rprof exits with the
//! program's own status (128+N when it died of signal N).

mod forward;
mod processes;
mod terminal;

pub use forward::signal_name;
pub use processes::is_trace_name;

use crate::render::{self, Format};
use crate::report::{self, ReportOptions};
use crate::source::Sources;
use forward::Blocked;
use processes::ProcessTrace;
use std::ffi::OsString;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant, SystemTime};
use terminal::Terminal;

const LIB_NAME: &str = "librprof.so";
/// How long the report waits for the writers of processes that were killed to finish.
const WRITERS_WAIT: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// CPU samples per second (RPROF_CPU_HZ).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub hz: Option<u32>,
    /// Sample wall-clock time instead of CPU time, for programs that wait (RPROF_CLOCK=wall).
    #[arg(long)]
    pub wall: bool,
    /// Profile CPU time only (RPROF_MODE=cpu).
    #[arg(long, conflicts_with = "memory")]
    pub cpu_only: bool,
    /// Profile memory too (RPROF_MODE=cpu,memory).
    #[arg(long)]
    pub memory: bool,
    /// Write the text report to FILE instead of the terminal (standard error).
    #[arg(long = "report", value_name = "FILE")]
    pub report_to: Option<PathBuf>,
    /// Also write the report as Scalene-compatible JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also write the report as a self-contained HTML page to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Directory for the traces of the run's processes [default: ./rprof-traces].
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Where the command's own trace goes [default: DIR/rprof-PID.trace].
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Profile only the command's own process, not the processes it starts
    /// (RPROF_FOLLOW_CHILDREN=0).
    #[arg(long)]
    pub no_children: bool,
    /// The profiler library [default: librprof.so next to rprof, or in ../lib].
    #[arg(long, value_name = "PATH")]
    pub lib: Option<PathBuf>,
    #[command(flatten)]
    pub report: ReportOptions,
    #[command(flatten)]
    pub exports: crate::report::ExportOptions,
    /// The command to profile and its arguments.
    #[arg(value_name = "CMD", required = true, trailing_var_arg = true)]
    pub command: Vec<OsString>,
}

/// Runs the command and reports; returns the exit code for rprof: the command's own.
pub fn run(args: &RunArgs) -> i32 {
    match launch(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rprof: error: {e}");
            2
        }
    }
}

/// The trace directory, and whether this run created it (it is removed again if the run
/// leaves nothing in it).
struct TraceDir {
    path: PathBuf,
    created: bool,
}

impl TraceDir {
    fn create(given: Option<&Path>) -> Result<TraceDir, String> {
        let dir = given.unwrap_or(Path::new("rprof-traces"));
        let created = !dir.exists();
        // Absolute, so a command that changes directory still writes where we look.
        let path = std::fs::create_dir_all(dir)
            .and_then(|()| dir.canonicalize())
            .map_err(|e| format!("cannot create trace directory {}: {e}", dir.display()))?;
        Ok(TraceDir { path, created })
    }
}

impl Drop for TraceDir {
    fn drop(&mut self) {
        if self.created {
            // Fails, as it should, unless the directory is empty.
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

fn launch(args: &RunArgs) -> Result<i32, String> {
    let lib = find_lib(args.lib.as_deref())?;
    let dir = TraceDir::create(args.output_dir.as_deref())?;
    let started = SystemTime::now();
    let run_id = format!(
        "{}-{}",
        std::process::id(),
        started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let mut cmd = Command::new(&args.command[0]);
    cmd.args(&args.command[1..]);
    set_env(&mut cmd, args, &lib, &dir.path, &run_id);
    let blocked = Blocked::new();
    let launcher = std::process::id() as libc::pid_t;
    let mask = blocked.original();
    let terminal = Terminal::foreground();
    let tty = terminal.fd();
    // SAFETY: runs in the forked child before exec, and calls only async-signal-safe
    // functions (setpgid, tcsetpgrp, sigprocmask, prctl, getppid, kill).
    unsafe {
        cmd.pre_exec(move || {
            terminal::enter_own_group(tty);
            forward::restore_mask(&mask);
            // Should rprof itself be killed outright, the program is told as a terminal
            // would tell it, instead of running on with nobody waiting for it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            if libc::getppid() != launcher {
                libc::kill(libc::getpid(), libc::SIGTERM);
            }
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "rprof: error: cannot run {}: {e}",
                args.command[0].to_string_lossy()
            );
            // As a shell, env or time answers: 127 for no such command, 126 for any other failure.
            return Ok(if e.kind() == io::ErrorKind::NotFound {
                127
            } else {
                126
            });
        }
    };
    terminal.give(child.id() as libc::pid_t);
    let status = blocked
        .wait(child.id() as libc::pid_t, &terminal)
        .map_err(|e| format!("waiting for the command: {e}"))?;
    drop(terminal);
    drop(blocked);
    // The run's traces are those changed since just before it started (a file system's
    // clock may lag by its timestamp granularity).
    let since = started - Duration::from_secs(2);
    let traces = processes::of_run(
        &dir.path,
        &run_id,
        child.id(),
        since,
        Instant::now() + WRITERS_WAIT,
    );
    report_run(args, child.id(), status, traces);
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// librprof.so from `--lib`, else next to this executable, else in `../lib` from it.
pub(crate) fn find_lib(given: Option<&Path>) -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = match given {
        Some(p) => vec![p.to_path_buf()],
        None => {
            let exe = std::env::current_exe()
                .map_err(|e| format!("cannot find {LIB_NAME}: rprof cannot locate itself ({e})"))?;
            let dir = exe.parent().unwrap_or(Path::new("/"));
            vec![dir.join(LIB_NAME), dir.join("../lib").join(LIB_NAME)]
        }
    };
    let Some(found) = candidates.iter().find(|p| p.is_file()) else {
        let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        return Err(format!(
            "cannot find {LIB_NAME}; looked for {} (build it with `cargo build -p rprof-shim`, \
             or name it with --lib)",
            looked.join(" and ")
        ));
    };
    let path = found
        .canonicalize()
        .map_err(|e| format!("{}: {e}", found.display()))?;
    // The dynamic loader splits LD_PRELOAD at spaces and colons.
    if path.to_string_lossy().contains([' ', ':']) {
        return Err(format!(
            "{} cannot be preloaded: LD_PRELOAD cannot hold a path with a space or colon",
            path.display()
        ));
    }
    Ok(path)
}

fn set_env(cmd: &mut Command, args: &RunArgs, lib: &Path, dir: &Path, run_id: &str) {
    let mut preload = lib.as_os_str().to_owned();
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        preload.push(":");
        preload.push(old);
    }
    cmd.env("LD_PRELOAD", preload);
    // So that the program can `import rprof` (the Python API) without installing it.
    if let Some(py) = crate::environment::python_dir() {
        let path = crate::environment::prepended(&py, std::env::var_os("PYTHONPATH"));
        cmd.env("PYTHONPATH", path);
    }
    // The shim replaces %p with each process's pid, so every process has a trace of its own.
    cmd.env("RPROF_OUTPUT", dir.join("rprof-%p.trace"));
    cmd.env("RPROF_RUN", run_id);
    cmd.env("RPROF_LAUNCHER", std::process::id().to_string());
    if args.no_children {
        cmd.env("RPROF_FOLLOW_CHILDREN", "0");
    }
    if let Some(hz) = args.hz {
        cmd.env("RPROF_CPU_HZ", hz.to_string());
    }
    if args.wall {
        cmd.env("RPROF_CLOCK", "wall");
    }
    if args.cpu_only {
        cmd.env("RPROF_MODE", "cpu");
    } else if args.memory {
        cmd.env("RPROF_MODE", "cpu,memory");
    }
}

/// The command as typed, for messages.
fn command_line(args: &RunArgs) -> String {
    let argv: Vec<String> = args
        .command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    argv.join(" ")
}

fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was ended by {}", forward::signal_name(s)),
        _ => "ended".to_owned(),
    }
}

/// Reports on the command's own trace (the last image of its process, which may have
/// exec'd through launcher scripts), and lists the run's other processes.
fn report_run(args: &RunArgs, pid: u32, status: ExitStatus, mut traces: Vec<ProcessTrace>) {
    let own_at = traces.iter().rposition(|t| t.own);
    let own = own_at.map(|i| traces.remove(i));
    let mut out = String::new();
    match own {
        None => out.push_str(&format!(
            "rprof: {} (pid {pid}) {} and left no trace: {LIB_NAME} did not run in it \
             (LD_PRELOAD has no effect on statically linked or setuid programs), or it \
             exec'd a program that recorded too little to report.\n",
            command_line(args),
            describe_status(status)
        )),
        Some(own) => {
            let path = place_own_trace(args, &own.path);
            let mut paths = vec![path.clone()];
            paths.extend(traces.iter().map(|t| t.path.clone()));
            if report_trace(args, &own, &paths, status, &mut out) {
                out.push_str(&format!(
                    "Status: the command {}\n",
                    describe_status(status)
                ));
                // The report's own table lists them.
                traces.clear();
            }
        }
    }
    if !traces.is_empty() {
        out.push_str(&format!(
            "\nOther processes of this run ({}); see each with rprof-report TRACE:\n",
            traces.len()
        ));
        out.push_str(&format!(
            "  {:>8} {:>8}  {:<36} {:<30} trace\n",
            "pid", "parent", "how it ended", "command"
        ));
        for t in &traces {
            // The program's name without its directory: the arguments tell processes apart.
            let mut argv = t.argv.clone();
            if let Some(first) = argv.first_mut() {
                *first = first.rsplit('/').next().unwrap_or_default().to_owned();
            }
            let cmd: String = argv.join(" ").chars().take(30).collect();
            out.push_str(&format!(
                "  {:>8} {:>8}  {:<36} {:<30} {}\n",
                t.pid,
                t.ppid,
                t.ended(),
                cmd,
                t.path.display()
            ));
        }
    }
    write_report(args, &out);
}

/// The command's own trace: moved to `-o FILE` when asked.
fn place_own_trace(args: &RunArgs, trace: &Path) -> PathBuf {
    let Some(want) = &args.output else {
        return trace.to_path_buf();
    };
    match move_file(trace, want) {
        Ok(()) => want.clone(),
        Err(e) => {
            eprintln!(
                "rprof: cannot move {} to {}: {e}",
                trace.display(),
                want.display()
            );
            trace.to_path_buf()
        }
    }
}

/// The text report goes to `--report FILE` or to the terminal (stderr), never into the
/// program's standard output.
fn write_report(args: &RunArgs, text: &str) {
    let result = match &args.report_to {
        Some(path) => std::fs::write(path, text),
        None => {
            use io::Write;
            let mut err = io::stderr().lock();
            err.write_all(text.as_bytes()).and_then(|()| err.flush())
        }
    };
    if let Err(e) = result {
        let to = args
            .report_to
            .as_ref()
            .map_or("standard error".into(), |p| p.display().to_string());
        eprintln!("rprof: cannot write the report to {to}: {e}");
    }
}

/// CPU time under which a command that failed gets one paragraph, not a report of its
/// start-up: a missing script, a bad option.
const FAILED_TO_START_NS: u64 = 100_000_000;

/// Appends the report of the run (the command's trace first, then the other processes'
/// traces, merged into one) to `out`, and writes the other formats asked for. A command that was never sampled, or failed within a tenth of a second of CPU (a
/// missing script, a bad option) without starting other processes, gets one paragraph
/// instead of a table of its start-up.
/// Returns whether the full report was given.
fn report_trace(
    args: &RunArgs,
    own: &ProcessTrace,
    paths: &[PathBuf],
    status: ExitStatus,
    out: &mut String,
) -> bool {
    let path = &paths[0];
    let profile = match report::load_many(paths, None, args.report.charging()) {
        Ok(p) => p,
        Err(e) => {
            out.push_str(&format!("rprof: error: {e}\n"));
            return false;
        }
    };
    let sources = Sources::load(&profile);
    let render = |format| render::render(format, &profile, &sources, &args.report);
    let cpu_ns = profile.total.total_ns();
    let full = if own.cpu_samples == 0 {
        out.push_str(&format!(
            "rprof: {} {} after {:.2} s, before rprof took a single CPU sample \
             ({} per CPU-second): there is nothing to report. The trace is {}.\n",
            command_line(args),
            describe_status(status),
            profile.elapsed_ns as f64 / 1e9,
            profile.header.sample_hz,
            path.display()
        ));
        false
    } else if !status.success() && cpu_ns < FAILED_TO_START_NS && paths.len() == 1 {
        out.push_str(&format!(
            "rprof: {} {} after {:.2} s and {:.3} s of CPU time ({} samples), too soon to \
             profile more than its start-up: there is nothing to report. The trace is {} \
             (rprof-report shows it).\n",
            command_line(args),
            describe_status(status),
            profile.elapsed_ns as f64 / 1e9,
            cpu_ns as f64 / 1e9,
            profile.total.samples,
            path.display()
        ));
        false
    } else {
        out.push_str(&render(Format::Text));
        let trace = match paths.len() {
            1 => format!("\nTrace: {}\n", path.display()),
            n => format!(
                "\nTraces: {} and {} more in {}\n",
                path.display(),
                n - 1,
                paths[1].parent().unwrap_or(Path::new(".")).display()
            ),
        };
        out.push_str(&trace);
        true
    };
    for (format, file) in [
        (Format::ScaleneJson, &args.json),
        (Format::Html, &args.html),
    ] {
        let Some(file) = file else { continue };
        if let Err(e) = report::write_output(Some(file), &render(format)) {
            eprintln!("rprof: cannot write {}: {e}", file.display());
        }
    }
    let problems = args.exports.write(&profile);
    for w in problems.warnings {
        eprintln!("rprof: warning: {w}");
    }
    for e in problems.errors {
        eprintln!("rprof: {e}");
    }
    full
}

fn move_file(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to).or_else(|_| {
        std::fs::copy(from, to)?;
        std::fs::remove_file(from)
    })
}
