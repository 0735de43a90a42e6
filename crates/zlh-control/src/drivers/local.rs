//! The `local` driver: a server is a directory under `<data>/servers/<id>/`, its agent a child
//! process of the control plane on a loopback port with a secret of its own.
//!
//! ```text
//! servers/<id>/agent.toml   the agent's configuration (0600: it holds the secret)
//! servers/<id>/agent.pid    the agent's pid, to find it again after a control-plane restart
//! servers/<id>/agent.log    the agent's JSON log
//! servers/<id>/root/        the agent's root: the game in opt/zlh/server, state in var/lib/zlh
//! ```
//!
//! Agents run in their own process group, so stopping or killing the control plane (even with
//! Ctrl-C in a terminal) never stops a server; the next control plane adopts them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use zlh_proto::Secret;
use zlh_proto::agent_config::{DevSection, GameSection};

use super::{AgentSpec, Driver, DriverError, Teardown};
use crate::registry::{Agent, AgentEndpoint, RemoteAgent};

/// How long a new or revived agent may take to answer.
const AGENT_START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a deleted server's agent may take to stop its game gracefully.
const AGENT_STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// A local agent's configuration file: what this driver sets, the template's sections, and the
/// operator's `agent_defaults` (the agent's own tuning, validated by the agent when it starts).
#[derive(Serialize, Deserialize)]
struct AgentFile {
    listen: String,
    secret: String,
    root: PathBuf,
    catalog_url: String,
    game: GameSection,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dev: Option<DevSection>,
    #[serde(flatten)]
    defaults: toml::Table,
}

impl AgentFile {
    fn endpoint(&self) -> AgentEndpoint {
        AgentEndpoint {
            url: Secret::new(format!("http://{}", self.listen)),
            secret: Secret::new(self.secret.as_str()),
            ide: self.dev.as_ref().map(|dev| Secret::new(format!("127.0.0.1:{}", dev.code_server_port))),
        }
    }
}

/// Servers as directories, agents as child processes.
#[derive(Debug)]
pub struct LocalDriver {
    servers_dir: PathBuf,
    zlh_exe: PathBuf,
    agent_defaults: toml::Table,
    http: reqwest::Client,
}

impl LocalDriver {
    /// A driver keeping servers under `servers_dir` and starting `zlh_exe agent`.
    pub fn new(servers_dir: PathBuf, zlh_exe: PathBuf, agent_defaults: toml::Table) -> LocalDriver {
        LocalDriver { servers_dir, zlh_exe, agent_defaults, http: RemoteAgent::client() }
    }

    fn dir(&self, server_id: i64) -> PathBuf {
        self.servers_dir.join(server_id.to_string())
    }

    fn config_path(&self, server_id: i64) -> PathBuf {
        self.dir(server_id).join("agent.toml")
    }

    fn endpoint(&self, server_id: i64) -> Result<AgentEndpoint, DriverError> {
        let text = std::fs::read_to_string(self.config_path(server_id))
            .map_err(|_| DriverError("the server's files are missing".into()))?;
        let file: AgentFile = toml::from_str(&text)
            .map_err(|_| DriverError("the server's agent configuration is damaged".into()))?;
        Ok(file.endpoint())
    }

    /// The pid of this server's agent, if that process is alive and is this server's agent.
    fn running_agent(&self, server_id: i64) -> Option<u32> {
        let pid: u32 =
            std::fs::read_to_string(self.dir(server_id).join("agent.pid")).ok()?.trim().parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let zombie = stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'));
        let config = self.config_path(server_id);
        (!zombie && String::from_utf8_lossy(&cmdline).contains(&*config.to_string_lossy())).then_some(pid)
    }

    fn spawn_agent(&self, server_id: i64) -> Result<tokio::process::Child, DriverError> {
        use std::os::unix::process::CommandExt;
        let dir = self.dir(server_id);
        let failed = |what: &str| {
            let what = what.to_owned();
            move |e: std::io::Error| {
                tracing::error!(server_id, error = %e, "{what}");
                DriverError("the server's agent could not be started".into())
            }
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("agent.log"))
            .map_err(failed("cannot open the agent log"))?;
        let mut command = std::process::Command::new(&self.zlh_exe);
        command
            .arg("agent")
            .arg("--config")
            .arg(self.config_path(server_id))
            // Agents inherit nothing of the control plane's environment (which may hold its
            // token secret), only what a process needs.
            .env_clear()
            .envs(
                ["PATH", "HOME", "LANG", "ZLH_LOG"]
                    .iter()
                    .filter_map(|k| std::env::var_os(k).map(|v| (*k, v))),
            )
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(failed("cannot open the agent log"))?)
            .stderr(log)
            .process_group(0);
        let child =
            tokio::process::Command::from(command).spawn().map_err(failed("cannot start the agent"))?;
        let pid = child.id().unwrap_or(0);
        std::fs::write(dir.join("agent.pid"), pid.to_string())
            .map_err(failed("cannot record the agent pid"))?;
        tracing::info!(server_id, agent_pid = pid, "agent started");
        Ok(child)
    }

    /// Starts the server's agent and waits until it answers `/health`, or says why it did not.
    async fn start_agent(&self, server_id: i64, endpoint: &AgentEndpoint) -> Result<(), DriverError> {
        let mut child = self.spawn_agent(server_id)?;
        let outcome = self.wait_until_answering(server_id, endpoint, &mut child).await;
        if outcome.is_err() {
            let _ = child.start_kill();
        }
        // Reap it when it exits; later exits are the poller's business, not this function's.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        outcome
    }

    async fn wait_until_answering(
        &self,
        server_id: i64,
        endpoint: &AgentEndpoint,
        child: &mut tokio::process::Child,
    ) -> Result<(), DriverError> {
        let agent = RemoteAgent::probe(endpoint, &self.http);
        let agent: &dyn Agent = &agent;
        let deadline = Instant::now() + AGENT_START_TIMEOUT;
        loop {
            if agent.health().await.is_ok() {
                return Ok(());
            }
            // Our own child: `try_wait` is exact (its /proc entry is not yet the agent's
            // while it is still inside execve).
            if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                return Err(DriverError(format!(
                    "the server's agent exited at start: {}",
                    self.last_error(server_id, endpoint)
                )));
            }
            if Instant::now() > deadline {
                return Err(DriverError("the server's agent did not answer in time".into()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The agent's last error line (`zlh: ...`), with its address and secret removed.
    fn last_error(&self, server_id: i64, endpoint: &AgentEndpoint) -> String {
        let log = std::fs::read_to_string(self.dir(server_id).join("agent.log")).unwrap_or_default();
        let line = log.lines().rev().find_map(|l| l.strip_prefix("zlh: ")).unwrap_or("no reason given");
        let address = endpoint.url.expose().trim_start_matches("http://");
        line.replace(endpoint.secret.expose(), "[redacted]")
            .replace(address, "[agent]")
            .replace(&*self.dir(server_id).to_string_lossy(), "[server]")
    }
}

fn free_loopback_port() -> Result<u16, DriverError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|_| DriverError("no free port for the agent".into()))?;
    listener.local_addr().map(|a| a.port()).map_err(|_| DriverError("no free port for the agent".into()))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

fn signal(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Processes whose command line or working directory lies under `dir` (holders and games an
/// agent left behind).
fn processes_under(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(&needle) || cwd.starts_with(dir)
        })
        .collect()
}

#[async_trait]
impl Driver for LocalDriver {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn create(&self, server_id: i64, spec: &AgentSpec) -> Result<AgentEndpoint, DriverError> {
        let dir = self.dir(server_id);
        let root = dir.join("root");
        std::fs::create_dir_all(&root).map_err(|e| {
            tracing::error!(server_id, error = %e, "cannot create the server directory");
            DriverError("the server's directory could not be created".into())
        })?;
        let mut file = AgentFile {
            listen: format!("127.0.0.1:{}", free_loopback_port()?),
            secret: crate::auth::random_token(24),
            root,
            catalog_url: spec.catalog_url.clone(),
            game: spec.game_with_zlh(&self.zlh_exe.to_string_lossy()),
            dev: spec.dev.clone(),
            defaults: self.agent_defaults.clone(),
        };
        if let Some(dev) = &mut file.dev {
            // code-server listens on a port of its own on loopback, reached only by the proxy.
            dev.code_server_port = free_loopback_port()?;
        }
        let text = toml::to_string(&file)
            .map_err(|_| DriverError("the agent configuration could not be written".into()))?;
        write_private(&self.config_path(server_id), &text).map_err(|e| {
            tracing::error!(server_id, error = %e, "cannot write the agent configuration");
            DriverError("the agent configuration could not be written".into())
        })?;
        let endpoint = file.endpoint();
        self.start_agent(server_id, &endpoint).await?;
        Ok(endpoint)
    }

    fn shown_path(&self, server_id: i64, path: &str) -> String {
        match Path::new(path).strip_prefix(self.dir(server_id).join("root")) {
            Ok(inside) => format!("/{}", inside.display()),
            Err(_) => path.to_owned(),
        }
    }

    async fn revive(&self, server_id: i64) -> Result<bool, DriverError> {
        let endpoint = self.endpoint(server_id)?;
        if let Some(pid) = self.running_agent(server_id) {
            let agent = RemoteAgent::probe(&endpoint, &self.http);
            if (&agent as &dyn Agent).health().await.is_ok() {
                return Ok(false);
            }
            // Alive but not answering: a hung agent. Its game lives in a holder and survives.
            tracing::warn!(server_id, agent_pid = pid, "agent alive but not answering; restarting it");
            signal(pid, rustix::process::Signal::KILL);
        }
        self.start_agent(server_id, &endpoint).await?;
        Ok(true)
    }

    async fn destroy(&self, server_id: i64, teardown: Teardown) -> Result<(), DriverError> {
        let dir = self.dir(server_id);
        if let Some(pid) = self.running_agent(server_id).filter(|_| teardown == Teardown::Graceful) {
            // SIGTERM: the agent stops the game gracefully, then exits.
            signal(pid, rustix::process::Signal::TERM);
            let deadline = Instant::now() + AGENT_STOP_TIMEOUT;
            while self.running_agent(server_id).is_some() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if self.running_agent(server_id).is_some() {
                tracing::warn!(server_id, "agent did not stop in time; killing it");
                signal(pid, rustix::process::Signal::KILL);
            }
        }
        // Whatever is left (a holder finishing its release, or everything on an immediate
        // teardown) is killed, and gone before the files are.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = processes_under(&dir);
            if left.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in left {
                signal(pid, rustix::process::Signal::KILL);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => {
                tracing::error!(server_id, error = %e, "cannot remove the server directory");
                Err(DriverError("the server's files could not be removed".into()))
            }
        }
    }
}
