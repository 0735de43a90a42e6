//! `zlh`: the one ZeroLagHub binary. Parses the command line and hands over to a subcommand.
#![forbid(unsafe_code)]

mod commands;
mod logging;

use clap::Parser;

/// mimalloc: the proxy and the poller allocate a little per request and poll, on every
/// thread; glibc's malloc spent a tenth of the proxy's CPU there (arenas, consolidation).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
