//! rprof-report TRACE... | DIR: the report of one trace, or of one run's traces merged (see
//! `rprof_cli::model::merge`), as text, as Scalene-compatible JSON, or as a self-contained
//! HTML page, with exports for other tools beside it.
//! rprof-report diff BEFORE AFTER: two runs compared line by line.

use clap::{Parser, Subcommand};
use rprof_cli::diff::{self, Run};
use rprof_cli::model::merge::Pick;
use rprof_cli::render::{self, Format};
use rprof_cli::report::{self, ExportOptions, ReportOptions};
use rprof_cli::source::Sources;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    version,
    about = "Report on a trace written by rprof",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    /// The trace file (rprof-PID.trace); several, or a directory of them, for one report of
    /// their run (the processes of one run are merged; traces of other runs are left out
    /// and listed).
    #[arg(required = true, value_name = "TRACE|DIR")]
    traces: Vec<PathBuf>,
    /// Of several runs' traces, report on the run with this identity (the traces' Process
    /// record; `rprof run` sets it). Default: the run of the first trace named, or the
    /// latest run of a directory.
    #[arg(long, value_name = "RUN")]
    run: Option<String>,
    /// Write JSON in Scalene's format instead of the text report.
    #[arg(long, conflicts_with = "html")]
    json: bool,
    /// Write a self-contained HTML page (lines, functions, flame graph, memory, threads)
    /// instead of the text report.
    #[arg(long)]
    html: bool,
    /// Write the report to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    report: ReportOptions,
    #[command(flatten)]
    exports: ExportOptions,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Compare two runs, per line and per function: CPU seconds and memory before and
    /// after, sorted by the size of the change.
    Diff(DiffArgs),
}

#[derive(clap::Args)]
struct DiffArgs {
    /// The run before the change: a trace, or a run directory holding its traces.
    before: PathBuf,
    /// The run after the change.
    after: PathBuf,
    /// Write the diff as JSON instead of text.
    #[arg(long, conflicts_with = "html")]
    json: bool,
    /// Write the diff as a self-contained HTML page that marks rises and drops.
    #[arg(long)]
    html: bool,
    /// How many lines and functions the text lists.
    #[arg(long, value_name = "N", default_value_t = 20)]
    rows: usize,
    /// Compare runs even when they were sampled by different clocks.
    #[arg(long)]
    force: bool,
    /// Write the diff to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Diff(d)) => run_diff(d),
        None => run_report(&cli),
    }
}

fn run_report(cli: &Cli) -> ExitCode {
    let pick = match (&cli.run, &cli.traces[..]) {
        (Some(run), _) => Pick::Run(run),
        (None, [dir]) if dir.is_dir() => Pick::Latest,
        _ => Pick::First,
    };
    let profile = match report::load_many(&cli.traces, Some(pick), cli.report.charging()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rprof-report: error: {e}");
            return ExitCode::from(2);
        }
    };
    let sources = Sources::load(&profile);
    let format = if cli.json {
        Format::ScaleneJson
    } else if cli.html {
        Format::Html
    } else {
        Format::Text
    };
    let mut code = ExitCode::SUCCESS;
    let problems = cli.exports.write(&profile);
    for w in problems.warnings {
        eprintln!("rprof-report: warning: {w}");
    }
    for e in problems.errors {
        eprintln!("rprof-report: error: {e}");
        code = ExitCode::FAILURE;
    }
    let out = render::render(format, &profile, &sources, &cli.report);
    match write(cli.output.as_deref(), &out) {
        ExitCode::SUCCESS => code,
        failed => failed,
    }
}

fn run_diff(d: &DiffArgs) -> ExitCode {
    let load = |path: &Path| -> Result<Run, String> {
        let trace = diff::find_trace(path)?;
        let profile = report::load(&trace).map_err(|e| e.to_string())?;
        Ok(Run { trace, profile })
    };
    let runs = load(&d.before).and_then(|b| Ok((b, load(&d.after)?)));
    let diff = match runs.and_then(|(b, a)| diff::compare(b, a, d.force).map_err(|r| r.0)) {
        Ok(diff) => diff,
        Err(e) => {
            eprintln!("rprof-report diff: error: {e}");
            return ExitCode::from(2);
        }
    };
    let out = if d.json {
        diff::json::render(&diff)
    } else if d.html {
        diff::html::render(&diff)
    } else {
        diff::text::render(&diff, d.rows)
    };
    write(d.output.as_deref(), &out)
}

fn write(path: Option<&Path>, out: &str) -> ExitCode {
    match report::write_output(path, out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let to = path.map_or("standard output".into(), |p| p.display().to_string());
            eprintln!("rprof-report: error: cannot write {to}: {e}");
            ExitCode::FAILURE
        }
    }
}
