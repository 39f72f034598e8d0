//! `rprof run`: preloads librprof.so into a command, waits for it, and reports on the trace
//! its process wrote.

use crate::render::{self, Format};
use crate::report::{self, ReportOptions};
use crate::source::Sources;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

const LIB_NAME: &str = "librprof.so";

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
    /// Also write the report as Scalene-compatible JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also write the report as a self-contained HTML page to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Directory for the traces [default: ./rprof-traces].
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Name of the command's own trace [default: DIR/rprof-PID.trace].
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
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

fn launch(args: &RunArgs) -> Result<i32, String> {
    let lib = find_lib(args.lib.as_deref())?;
    let dir = args
        .output_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("rprof-traces"));
    // Absolute, so a command that changes directory still writes where we look.
    let dir = std::fs::create_dir_all(&dir)
        .and_then(|()| dir.canonicalize())
        .map_err(|e| format!("cannot create trace directory {}: {e}", dir.display()))?;
    let before = traces_in(&dir);
    let mut cmd = Command::new(&args.command[0]);
    cmd.args(&args.command[1..]);
    set_env(&mut cmd, args, &lib, &dir);
    let mut child = match cmd.spawn() {
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
    // Ctrl-C reaches the whole foreground group: let it stop the command, then report on
    // what its trace holds.
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the command: {e}"))?;
    report_run(args, &dir, child.id(), &before);
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// librprof.so from `--lib`, else next to this executable, else in `../lib` from it.
fn find_lib(given: Option<&Path>) -> Result<PathBuf, String> {
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

fn set_env(cmd: &mut Command, args: &RunArgs, lib: &Path, dir: &Path) {
    let mut preload = lib.as_os_str().to_owned();
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        preload.push(":");
        preload.push(old);
    }
    cmd.env("LD_PRELOAD", preload);
    // The shim replaces %p with each process's pid, so children write traces of their own.
    cmd.env("RPROF_OUTPUT", dir.join("rprof-%p.trace"));
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

/// The traces in `dir`, with their modification times.
fn traces_in(dir: &Path) -> HashMap<OsString, Option<SystemTime>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HashMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| is_trace_name(&e.file_name()))
        .map(|e| (e.file_name(), e.metadata().and_then(|m| m.modified()).ok()))
        .collect()
}

fn is_trace_name(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with("rprof-") && name.ends_with(".trace")
}

/// Prints the report of the command's own trace, and names the others this run wrote.
fn report_run(
    args: &RunArgs,
    dir: &Path,
    pid: u32,
    before: &HashMap<OsString, Option<SystemTime>>,
) {
    let own_name = OsString::from(format!("rprof-{pid}.trace"));
    let mut others: Vec<PathBuf> = traces_in(dir)
        .into_iter()
        .filter(|(name, mtime)| *name != own_name && before.get(name) != Some(mtime))
        .map(|(name, _)| dir.join(name))
        .collect();
    others.sort();

    let own = dir.join(&own_name);
    let trace = match &args.output {
        Some(want) if own.exists() => match move_file(&own, want) {
            Ok(()) => want.clone(),
            Err(e) => {
                eprintln!(
                    "rprof: cannot move {} to {}: {e}",
                    own.display(),
                    want.display()
                );
                own
            }
        },
        _ => own,
    };
    let mut out = String::new();
    if trace.exists() {
        report_trace(args, &trace, &mut out);
    } else {
        eprintln!(
            "rprof: {} (pid {pid}) wrote no trace ({} does not exist): {LIB_NAME} did not run \
             in it. LD_PRELOAD has no effect on statically linked or setuid programs.",
            args.command[0].to_string_lossy(),
            trace.display()
        );
    }
    if !others.is_empty() {
        out.push_str(
            "\nOther traces from this run (child processes); see them with rprof-report PATH:\n",
        );
        for p in others {
            out.push_str(&format!("  {}\n", p.display()));
        }
    }
    if let Err(e) = report::write_output(None, &out) {
        eprintln!("rprof: cannot write the report: {e}");
    }
}

/// Appends the text report of `trace` to `out`, and writes the JSON one if asked.
fn report_trace(args: &RunArgs, trace: &Path, out: &mut String) {
    let profile = match report::load(trace) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rprof: error: {e}");
            return;
        }
    };
    let sources = Sources::load(&profile);
    let render = |format| render::render(format, &profile, &sources, &args.report);
    out.push_str(&render(Format::Text));
    out.push_str(&format!("\nTrace: {}\n", trace.display()));
    for (format, path) in [
        (Format::ScaleneJson, &args.json),
        (Format::Html, &args.html),
    ] {
        let Some(path) = path else { continue };
        if let Err(e) = report::write_output(Some(path), &render(format)) {
            eprintln!("rprof: cannot write {}: {e}", path.display());
        }
    }
    let problems = args.exports.write(&profile);
    for w in problems.warnings {
        eprintln!("rprof: warning: {w}");
    }
    for e in problems.errors {
        eprintln!("rprof: {e}");
    }
}

fn move_file(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to).or_else(|_| {
        std::fs::copy(from, to)?;
        std::fs::remove_file(from)
    })
}
