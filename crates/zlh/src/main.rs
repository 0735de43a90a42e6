//! `zlh`: the one ZeroLagHub binary. Parses the command line and hands over to a subcommand.
#![forbid(unsafe_code)]

mod commands;
mod logging;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = commands::Cli::parse();
    match commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("zlh: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
