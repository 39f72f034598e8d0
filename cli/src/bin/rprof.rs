//! rprof run [options] -- CMD ARGS...: profile a command and print its report.
//! rprof env [options]: the environment that profiles programs started elsewhere.

use clap::{Parser, Subcommand};
use rprof_cli::environment::{self, EnvArgs};
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
    /// Print the environment that profiles a program started by a shell, a systemd unit
    /// or a Dockerfile (LD_PRELOAD, PYTHONPATH for `import rprof`, RPROF_* settings).
    Env(EnvArgs),
}

fn main() -> ExitCode {
    // Exit codes past 255 cannot happen: they come from a wait status or 128 + a signal.
    let code = match Cli::parse().command {
        Cmd::Run(args) => launch::run(&args),
        Cmd::Env(args) => environment::run(&args),
    };
    ExitCode::from(code as u8)
}
