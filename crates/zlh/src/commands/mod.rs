//! The command tree; one file per subcommand.

mod admin;
mod agent;
mod agent_holder;
mod artifacts;
mod init;
mod sample_game;
mod serve;
mod templates;
mod up;

use clap::{Parser, Subcommand};

/// ZeroLagHub: game servers and browser-IDE dev containers, self-hosted.
#[derive(Debug, Parser)]
#[command(name = "zlh", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Everything on this machine with embedded defaults.
    Up(up::UpArgs),
    /// The control plane (API, portal, proxies) for operators.
    Serve(serve::ServeArgs),
    /// Account maintenance on the control plane's database.
    Admin(admin::AdminArgs),
    /// The artifact catalog (runtimes, code-server) agents install from.
    Artifacts(artifacts::ArtifactsArgs),
    /// Game templates: importing Pterodactyl and Pelican eggs.
    Templates(templates::TemplatesArgs),
    /// The agent that runs inside a container and supervises its server.
    Agent(agent::AgentArgs),
    /// PID 1 of a server's container: keeps the agent running and reaps orphans.
    #[command(hide = true)]
    Init(init::InitArgs),
    /// Internal: holds one supervised process and its terminal for the agent.
    #[command(hide = true)]
    AgentHolder(agent_holder::HolderArgs),
    /// A stand-in game server with a Minecraft-like console, for demos, tests and benchmarks.
    #[command(hide = true)]
    SampleGame(sample_game::SampleGameArgs),
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(args) => up::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Admin(args) => admin::run(args),
        Command::Artifacts(args) => artifacts::run(args),
        Command::Templates(args) => templates::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Init(args) => init::run(args),
        Command::AgentHolder(args) => agent_holder::run(args),
        Command::SampleGame(args) => sample_game::run(args),
    }
}
