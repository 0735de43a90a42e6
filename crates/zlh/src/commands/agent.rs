//! `zlh agent --config FILE`: the in-container daemon.

use std::path::PathBuf;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use zlh_agent::{AgentConfig, ShutdownMode};

use crate::logging::{self, LogTo};

#[derive(Debug, clap::Args)]
pub(crate) struct AgentArgs {
    /// The agent's TOML configuration; `ZLH_AGENT_*` variables override its keys.
    #[arg(long)]
    config: PathBuf,
}

pub(crate) fn run(args: AgentArgs) -> anyhow::Result<()> {
    logging::init(LogTo::Stdout);
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    let config = AgentConfig::load(&text, std::env::vars())?;
    serve(config)
}

/// Runs an agent until SIGTERM/SIGINT (stop the server, then exit) or SIGUSR2 (exit and leave
/// the server running for the next agent: upgrades).
pub(crate) fn serve(config: AgentConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let exe = std::env::current_exe().context("cannot find the zlh executable")?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut detach = signal(SignalKind::user_defined2())?;
        let shutdown = async move {
            tokio::select! {
                _ = terminate.recv() => ShutdownMode::StopServer,
                _ = interrupt.recv() => ShutdownMode::StopServer,
                _ = detach.recv() => ShutdownMode::LeaveRunning,
            }
        };
        zlh_agent::run(config, listener, exe, shutdown).await?;
        Ok(())
    })
}
