//! The agent's HTTP contract: states, readiness, the status snapshot, power and crash records.
//!
//! Field names are camelCase because the original platform's clients read them that way
//! (`runtimeInstalled`, `lastCrashClassification`, ...). Fields that belong to later work exist
//! and are `null` so that clients can rely on the shape.

use serde::{Deserialize, Serialize};

/// The supervised server's lifecycle state, exactly as the original platform names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum GameState {
    /// Not running, and not meant to be.
    Stopped,
    /// Files or runtimes are being installed (dev containers, later work).
    Installing,
    /// The process runs but has not printed its ready pattern yet.
    Starting,
    /// The process printed its ready pattern (or has none) and serves players.
    Running,
    /// A stop is under way: stop command, then SIGTERM, then SIGKILL.
    Stopping,
    /// The process exited without being asked to; a restart is scheduled after a backoff.
    Crashed,
    /// The process crashed too many times in a row (or could not be started); it stays down
    /// until someone starts it again.
    Error,
}

impl GameState {
    /// The snake_case name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            GameState::Stopped => "stopped",
            GameState::Installing => "installing",
            GameState::Starting => "starting",
            GameState::Running => "running",
            GameState::Stopping => "stopping",
            GameState::Crashed => "crashed",
            GameState::Error => "error",
        }
    }
}

impl std::fmt::Display for GameState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a process died, as far as its exit and its last output tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CrashClassification {
    /// Out of memory: the JVM said so, or the kernel's OOM killer took it.
    Oom,
    /// A stack trace names a mod or plugin.
    ModOrPluginError,
    /// A class, shared library, executable or required mod is missing.
    MissingDependency,
    /// Exited with a non-zero code and nothing more specific was recognised.
    NonzeroExit,
    /// Exited with code 0 or was killed by a signal, without being asked to stop.
    UnexpectedExit,
    /// Did not print its ready line within the template's start timeout, and was stopped.
    StartTimeout,
}

/// `GET /health`: the agent process is alive and answering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// Always `"ok"`.
    pub status: String,
    /// The agent's version.
    pub version: String,
}

/// `GET /ready`: semantic readiness, as the control plane's provisioning and poller use it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Readiness {
    /// True when provisioning finished and the main process is up (state `running`).
    pub ready: bool,
    /// A short sentence saying why (or why not).
    pub reason: String,
}

/// `GET /heartbeat`: readiness and status in one answer, what the control plane's poller asks
/// at every interval (one request instead of `/health`, `/ready` and `/status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Heartbeat {
    /// As `GET /ready` answers.
    pub readiness: Readiness,
    /// As `GET /status` answers.
    pub status: StatusSnapshot,
}

/// One crash, recorded when a supervised process exits without being asked to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CrashRecord {
    /// When the process exited (RFC 3339, milliseconds).
    pub at: String,
    /// The exit code, when it exited on its own.
    pub exit_code: Option<i32>,
    /// The signal number, when a signal killed it.
    pub signal: Option<i32>,
    /// How long the process had been running.
    pub uptime_ms: u64,
    /// What most likely killed it.
    pub classification: CrashClassification,
    /// The line or fact the classification rests on.
    pub reason: String,
    /// The last console lines of this run, oldest first, without terminal escape codes.
    pub log_tail: Vec<String>,
    /// Crashes in a row including this one (reset by a run that lasted long enough).
    pub consecutive: u32,
    /// The backoff before the automatic restart; `None` when the agent gave up (`error`).
    pub restart_delay_ms: Option<u64>,
}

/// Resource use of the supervised process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ResourceUse {
    /// Resident memory of the process, in bytes.
    pub memory_bytes: u64,
    /// CPU time the process used so far (user + system), in seconds.
    pub cpu_seconds: f64,
}

/// Facts about the agent process itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AgentInfo {
    /// The agent's version.
    pub version: String,
    /// The agent's process id.
    pub pid: u32,
    /// How long this agent process has been up.
    pub uptime_ms: u64,
}

/// `GET /status`: the detailed snapshot the control plane caches and normalizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StatusSnapshot {
    /// Lifecycle state of the supervised server.
    pub state: GameState,
    /// Process id of the game process while one exists.
    pub pid: Option<u32>,
    /// When the current process started (RFC 3339).
    pub started_at: Option<String>,
    /// How long the current process has been running.
    pub uptime_ms: Option<u64>,
    /// When the current process printed its ready pattern.
    pub ready_at: Option<String>,
    /// Crashes in a row so far.
    pub consecutive_crashes: u32,
    /// When the scheduled automatic restart happens (state `crashed`).
    pub next_restart_at: Option<String>,
    /// The most recent crash.
    pub last_crash: Option<CrashRecord>,
    /// Its classification, repeated at the top level for the original platform's clients.
    pub last_crash_classification: Option<CrashClassification>,
    /// The last failure that is not a crash (a start that could not spawn the process).
    pub last_error: Option<String>,
    /// Whether the container finished provisioning.
    pub provisioning_complete: bool,
    /// The game server's directory.
    pub server_root: Option<String>,
    /// Dev containers: whether the selected runtime is installed.
    pub runtime_installed: Option<bool>,
    /// Dev containers: whether the dev user and workspace exist.
    pub dev_provisioned: Option<bool>,
    /// Dev containers: when the environment became ready.
    pub dev_ready_at: Option<String>,
    /// Dev containers: the workspace directory.
    pub workspace_root: Option<String>,
    /// Dev containers: whether code-server is installed.
    pub code_server_installed: Option<bool>,
    /// Dev containers: whether code-server runs.
    pub code_server_running: Option<bool>,
    /// Resource use of the game process while one exists.
    pub resources: Option<ResourceUse>,
    /// What the whole server (its container, where it has one) uses; absent from older agents.
    #[serde(default)]
    pub usage: Option<ServerUsage>,
    /// The agent process itself.
    pub agent: AgentInfo,
}

/// What a whole server uses, read by its agent from the kernel (its container's cgroup and
/// network interface, its disk): cheap enough to come with every status poll.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ServerUsage {
    /// Memory in use by everything in the server's cgroup, page cache excluded, in bytes.
    pub memory_bytes: Option<u64>,
    /// CPU time everything in the server's cgroup used so far, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Bytes received on the server's network interfaces (a container's own namespace).
    pub network_rx_bytes: Option<u64>,
    /// Bytes sent on the server's network interfaces.
    pub network_tx_bytes: Option<u64>,
    /// The server's disk, when it has a limit.
    pub disk: Option<DiskUsage>,
}

/// A server's disk: how much of its limit it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DiskUsage {
    /// Bytes in use.
    pub used_bytes: u64,
    /// Bytes allowed.
    pub limit_bytes: u64,
    /// Whether the kernel stops writes at the limit, or the agent measures and refuses.
    pub enforced_by: crate::agent_config::DiskEnforcement,
}

/// Answer to a power action that was accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PowerAccepted {
    /// The state right after the action was taken.
    pub state: GameState,
}

/// `POST /console/command` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsoleCommand {
    /// One line, sent to the server's console followed by a newline.
    pub command: String,
}

/// `GET /variables` and `PUT /variables`: the values of a game's variables (its settable
/// environment), applied at the next start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VariableValues {
    /// Environment name → value.
    pub values: std::collections::BTreeMap<String, String>,
}

/// `GET /crashes`: the crash history, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CrashHistory {
    /// Recorded crashes, oldest first, bounded.
    pub crashes: Vec<CrashRecord>,
}

/// Where a background job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Under way.
    Running,
    /// Done.
    Succeeded,
    /// Ended with an error (`message` says why); nothing half-done was left.
    Failed,
}

/// A long operation (an install, a backup) running in the background.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    /// Job id, for `GET /jobs/{id}`.
    pub id: String,
    /// What kind of work.
    pub kind: JobKind,
    /// What it works on (`node 20.20.2`).
    pub target: String,
    /// Where it is.
    pub state: JobState,
    /// Units done so far (bytes, files).
    pub done: u64,
    /// Units in all, when known.
    pub total: Option<u64>,
    /// What it is doing now, or why it failed.
    pub message: Option<String>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended (RFC 3339).
    pub finished_at: Option<String>,
}

/// What kind of work a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// A dev container's first provisioning (runtime, code-server).
    Provision,
    /// Installing a runtime into a dev container.
    RuntimeInstall,
    /// Packing files into an archive.
    Compress,
    /// Unpacking an archive.
    Extract,
    /// Backing up the server directory.
    Backup,
    /// Restoring a backup.
    Restore,
    /// Installing a mod from the catalog.
    ModInstall,
}

impl JobKind {
    /// The name on the wire (`runtime_install`), also the prefix of job ids.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Provision => "provision",
            JobKind::RuntimeInstall => "runtime_install",
            JobKind::Compress => "compress",
            JobKind::Extract => "extract",
            JobKind::Backup => "backup",
            JobKind::Restore => "restore",
            JobKind::ModInstall => "mod_install",
        }
    }
}

/// `POST /dev/runtimes/install` and `/dev/runtimes/switch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuntimeRequest {
    /// Runtime name from the catalog (`node`).
    pub runtime: String,
    /// Version (`20.20.2`).
    pub version: String,
}

/// `POST /dev/runtimes/rollback`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RollbackRequest {
    /// Runtime name.
    pub runtime: String,
}

/// One installed runtime or addon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstalledPackage {
    /// Name.
    pub name: String,
    /// Every installed version.
    pub versions: Vec<String>,
    /// The version in use.
    pub current: Option<String>,
    /// The version a rollback returns to.
    pub previous: Option<String>,
}

/// `GET /dev/runtimes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstalledPackages {
    /// Runtimes.
    pub runtimes: Vec<InstalledPackage>,
    /// Addons (code-server).
    pub addons: Vec<InstalledPackage>,
}

/// One backup of a server's directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BackupView {
    /// Backup id.
    pub id: String,
    /// When it was taken (RFC 3339).
    pub created_at: String,
    /// Size of the archive (tar + zstd), in bytes.
    pub size_bytes: u64,
    /// Files in it.
    pub files: u64,
    /// Bytes of those files.
    pub bytes: u64,
    /// SHA-256 of the archive.
    pub sha256: String,
    /// Whether the running game was quiesced (saving paused and flushed) around it.
    pub quiesced: bool,
    /// What its owner called it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Locked: retention passes it by and it cannot be deleted until unlocked.
    #[serde(default)]
    pub locked: bool,
}

/// `POST /backups` (optional body).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// Extra paths (globs, relative to the server directory) to leave out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// A name for people (1 to 64 printable characters).
    #[serde(default)]
    pub name: Option<String>,
    /// Lock it from the start.
    #[serde(default)]
    pub locked: bool,
}

/// `PATCH /backups/{id}`: rename, lock or unlock a backup (fields left out stay).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BackupChange {
    /// A new name (an empty one removes it).
    #[serde(default)]
    pub name: Option<String>,
    /// Locked or not.
    #[serde(default)]
    pub locked: Option<bool>,
}

/// A backup's name as given: trimmed, 1 to 64 printable characters; empty is no name.
pub fn backup_name(name: &str) -> Result<Option<String>, &'static str> {
    let name = name.trim();
    if name.is_empty() {
        return Ok(None);
    }
    if name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err("a backup's name is at most 64 printable characters");
    }
    Ok(Some(name.to_owned()))
}

/// One mod or plugin in the server's mods directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModView {
    /// File name (`coolmod-1.2.0.jar`, or `....jar.disabled`).
    pub file: String,
    /// Whether the game loads it.
    pub enabled: bool,
    /// Its name, from its metadata.
    pub name: Option<String>,
    /// Its version, from its metadata.
    pub version: Option<String>,
    /// `fabric`, `forge` or `bukkit`, when its metadata says.
    pub loader: Option<String>,
    /// Size in bytes.
    pub size: u64,
}

/// `POST /mods/install`: a mod from the artifact catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModInstall {
    /// Its name in the catalog.
    pub name: String,
    /// Its version.
    pub version: String,
}
