//! `zlh agent-holder --spec FILE`: internal; started by the agent for each run of the server.

use std::path::PathBuf;

use crate::logging::{self, LogTo};

#[derive(Debug, clap::Args)]
pub(crate) struct HolderArgs {
    /// The run's specification, written by the agent (read once, then deleted).
    #[arg(long)]
    spec: PathBuf,
}

pub(crate) fn run(args: HolderArgs) -> anyhow::Result<()> {
    // Stdout carries the one start report to the agent; logs go to stderr (the holder log).
    logging::init(LogTo::Stderr);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(zlh_agent::holder::run_holder(&args.spec))?;
    Ok(())
}
