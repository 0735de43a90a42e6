//! Provisioning drivers: where servers live and how their agents are started.
//!
//! `local` (the embedded default, for trying the product alone) makes each server a directory
//! under the data directory and runs its agent as a child process on a loopback port.
//! `docker` makes each server a locked-down container on a Docker or Podman engine. Other
//! engines (LXC/Proxmox, Kubernetes) implement the same trait.
//!
//! Architecture Invariant: nothing outside a driver knows how it works. The rest of the
//! control plane sees only [`AgentEndpoint`]s and server ids.
//!
//! Layering: drivers know the registry (to reach the agents they start), never the store or
//! the API.

mod disks;
pub mod docker;
pub mod external;
pub mod local;

use std::sync::Arc;

use async_trait::async_trait;
use zlh_proto::agent_config::{DevSection, GameSection};
use zlh_proto::api::{PortView, ResourceLimits};

use crate::registry::AgentEndpoint;

/// What a new server's agent is told: its `[game]` section and, for dev servers, its `[dev]`
/// section (the driver sets the code-server port).
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// What the server runs.
    pub game: GameSection,
    /// What a dev server provisions.
    pub dev: Option<DevSection>,
    /// The artifact catalog the agent installs runtimes and mods from.
    pub catalog_url: String,
    /// The game's ports, to publish on the node's public address.
    pub ports: Vec<PortView>,
    /// The image a container-based driver runs it in (the driver's default when none).
    pub image: Option<String>,
    /// What it may use (drivers that enforce limits).
    pub limits: ResourceLimits,
}

impl AgentSpec {
    /// The `[game]` section with `{zlh}` (the `zlh` executable, for templates that run the
    /// sample game) replaced by where that executable is for the agent.
    pub fn game_with_zlh(&self, zlh: &str) -> GameSection {
        let argv = self.game.argv.iter().map(|arg| arg.replace("{zlh}", zlh)).collect();
        GameSection { argv, ..self.game.clone() }
    }
}

/// An install step to run: `entrypoint script` in `image`, with the server's files at
/// `/mnt/server` and `env` in its environment.
#[derive(Clone)]
pub struct InstallRun {
    /// The image (already mapped to a local one).
    pub image: String,
    /// The shell that runs the script.
    pub entrypoint: String,
    /// The script.
    pub script: String,
    /// Its environment: the server's variables, `SERVER_PORT`, `SERVER_IP`, `SERVER_MEMORY`.
    pub env: Vec<(String, String)>,
    /// How long it may run before it is killed and counts as failed.
    pub timeout: std::time::Duration,
}

impl std::fmt::Debug for InstallRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Variables may hold what their owner considers secret (passwords, tokens).
        f.debug_struct("InstallRun").field("image", &self.image).finish_non_exhaustive()
    }
}

/// Where an install step's output goes, as it comes.
pub type InstallLog = tokio::sync::mpsc::UnboundedSender<bytes::Bytes>;

/// Why a driver failed; the message is safe to show (no paths, addresses or secrets).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct DriverError(pub String);

/// Every driver, by the name stored with each server.
#[derive(Debug, Clone)]
pub struct Drivers {
    /// Where new servers are created.
    pub default: Arc<dyn Driver>,
    /// Agents attached from elsewhere.
    pub external: Arc<dyn Driver>,
}

impl Drivers {
    /// The driver a server was made with (unknown names get the external one, which touches
    /// nothing).
    pub fn by_name(&self, name: &str) -> Arc<dyn Driver> {
        if name == self.default.name() { Arc::clone(&self.default) } else { Arc::clone(&self.external) }
    }
}

/// How a server is taken down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Teardown {
    /// Stop the game gracefully (its stop command, then signals), then remove.
    Graceful,
    /// Kill everything at once, then remove.
    Immediate,
}

/// Creates, revives and destroys the place a server runs in.
#[async_trait]
pub trait Driver: Send + Sync + std::fmt::Debug {
    /// The name stored with each server.
    fn name(&self) -> &'static str;
    /// Creates the server's place and starts its agent; returns once the agent answers.
    async fn create(&self, server_id: i64, spec: &AgentSpec) -> Result<AgentEndpoint, DriverError>;
    /// Makes sure the server's agent runs (after a control-plane restart, or when the poller
    /// cannot reach it). Returns whether it had to start it.
    async fn revive(&self, server_id: i64) -> Result<bool, DriverError>;
    /// Removes everything the driver created for the server: after a graceful stop of the
    /// game, or at once (`Teardown::Immediate`, for servers that never became ready).
    async fn destroy(&self, server_id: i64, teardown: Teardown) -> Result<(), DriverError>;
    /// A path inside a server as its owner sees it (the local driver's servers live under the
    /// control plane's data directory, which no answer may show).
    fn shown_path(&self, _server_id: i64, path: &str) -> String {
        path.to_owned()
    }
    /// Whether the kernel holds its servers to their limits (containers do, processes of the
    /// control plane's machine do not).
    fn enforces_limits(&self) -> bool {
        false
    }
    /// Applies new limits to a server, at once where the engine allows (and to any later
    /// re-creation).
    async fn set_limits(&self, _server_id: i64, _limits: &ResourceLimits) -> Result<(), DriverError> {
        Err(DriverError("this server's driver does not enforce limits".into()))
    }
    /// The memory of the machine servers run on, in MiB, where the driver can tell.
    async fn host_memory_mb(&self) -> Option<u32> {
        None
    }
    /// Runs an install step beside the server (its game stopped), its output sent to `log`;
    /// returns the script's exit code.
    async fn install(
        &self,
        _server_id: i64,
        _run: &InstallRun,
        _log: InstallLog,
    ) -> Result<i64, DriverError> {
        Err(DriverError(
            "install steps run in a container of their own: this server's driver has none (use the docker driver)"
                .into(),
        ))
    }
}
