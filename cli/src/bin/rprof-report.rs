//! rprof-report TRACE: the report of one trace, as text or as Scalene-compatible JSON.

use clap::Parser;
use rprof_cli::report::{self, ReportOptions};
use rprof_cli::source::Sources;
use rprof_cli::{scalene_json, text};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(version, about = "Report on a trace written by rprof")]
struct Cli {
    /// The trace file (rprof-PID.trace).
    trace: PathBuf,
    /// Write JSON in Scalene's format instead of the text report.
    #[arg(long)]
    json: bool,
    /// Write the report to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    report: ReportOptions,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let profile = match report::load(&cli.trace) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rprof-report: error: {e}");
            return ExitCode::from(2);
        }
    };
    let sources = Sources::load(&profile);
    let advice = cli.report.advice(&profile, &sources);
    let out = if cli.json {
        scalene_json::render(&profile, &sources, &advice)
    } else {
        text::render(&profile, &sources, &cli.report, &advice)
    };
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
