//! rprof-report TRACE... | DIR: the report of one trace, or of one run's traces merged (see
//! `rprof_cli::model::merge`), as text, as Scalene-compatible JSON, or as a self-contained
//! HTML page.

use clap::Parser;
use rprof_cli::model::merge::Pick;
use rprof_cli::render::{self, Format};
use rprof_cli::report::{self, ReportOptions};
use rprof_cli::source::Sources;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(version, about = "Report on a trace written by rprof")]
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let pick = match (&cli.run, &cli.traces[..]) {
        (Some(run), _) => Pick::Run(run),
        (None, [dir]) if dir.is_dir() => Pick::Latest,
        _ => Pick::First,
    };
    let profile = match report::load_many(&cli.traces, Some(pick)) {
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
    let out = render::render(format, &profile, &sources, &cli.report);
    match report::write_output(cli.output.as_deref(), &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let to = cli
                .output
                .map_or("standard output".into(), |p| p.display().to_string());
            eprintln!("rprof-report: error: cannot write {to}: {e}");
            ExitCode::FAILURE
        }
    }
}
