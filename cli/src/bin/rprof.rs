//! rprof run [options] -- CMD ARGS...: profile a command and print its report.

use clap::{Parser, Subcommand};
use rprof_cli::launch::{self, RunArgs};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    version,
    about = "Profile a program's Python and native code, line by line"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run CMD with librprof.so preloaded, then print the report of its trace.
    Run(RunArgs),
}

fn main() -> ExitCode {
    let Cmd::Run(args) = Cli::parse().command;
    // Exit codes past 255 cannot happen: they come from a wait status or 128 + a signal.
    ExitCode::from(launch::run(&args) as u8)
}
