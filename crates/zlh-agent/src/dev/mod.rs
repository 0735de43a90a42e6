//! Development containers: the `dev` user and workspace, runtimes and code-server from the
//! artifact store, and the environment every shell gets.
//!
//! Provisioning runs before the main process (a login shell on the console) starts, and
//! `/ready` stays false until it completed: the user and workspace exist, the runtime is
//! installed, code-server is installed and started. It is idempotent and runs again at each
//! agent start. As root in a real container (`root = "/"`), shells and code-server run as the
//! `dev` user (created if missing); otherwise (tests, unprivileged agents) as the agent's own
//! user, with the same environment.

pub mod code_server;
pub mod packages;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use zlh_proto::catalog::Kind;

use crate::artifacts::ArtifactClient;
use crate::clock::{format_ms, now_ms};
use crate::config::{AgentConfig, DevSection};
use crate::dev::packages::PackageError;
use crate::jobs::Progress;
use crate::supervisor::{Launch, LaunchError, LaunchPlan};
use code_server::CodeServer;
use packages::PackageStore;

/// Why a dev container could not be provisioned; the container stays usable and says why.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// A runtime or code-server could not be installed.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// The user, workspace or shell profile could not be set up.
    #[error("{0}")]
    Setup(String),
}

/// Who shells run as.
#[derive(Debug, Clone)]
pub struct DevUser {
    /// Login name.
    pub name: String,
    /// Set when the agent switches to this user (it runs as root).
    pub ids: Option<(u32, u32)>,
    /// Home directory (beneath the agent's root).
    pub home: PathBuf,
}

/// Persisted provisioning facts (`dev.json` in the state directory).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Provisioned {
    dev_ready_at_ms: Option<u64>,
}

/// A development container's environment.
#[derive(Debug)]
pub struct DevEnvironment {
    config: DevSection,
    root: PathBuf,
    /// Where runtimes and code-server are installed.
    packages: PathBuf,
    user: DevUser,
    workspace: PathBuf,
    /// Installed runtimes.
    pub runtimes: PackageStore,
    /// Installed addons (code-server).
    pub addons: Arc<PackageStore>,
    /// The artifact store.
    pub artifacts: ArtifactClient,
    /// code-server.
    pub code_server: Arc<CodeServer>,
    state_file: PathBuf,
    provisioned: Mutex<Provisioned>,
    /// Whether this agent process finished provisioning.
    complete: std::sync::atomic::AtomicBool,
}

fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&name))
            .then(|| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))?
    })
}

impl DevEnvironment {
    /// Prepares (does not yet provision) the environment described by `config.dev`.
    pub fn new(config: &AgentConfig) -> std::io::Result<Option<Arc<DevEnvironment>>> {
        let Some(dev) = config.dev.clone() else { return Ok(None) };
        let root = config.root.clone();
        let workspace = config.under_root(&dev.workspace);
        let home =
            workspace.parent().map_or_else(|| config.under_root(Path::new("/home/dev")), Path::to_path_buf);
        let in_real_container = root == Path::new("/") && rustix::process::geteuid().is_root();
        let user = if in_real_container {
            DevUser { name: dev.user.clone(), ids: None, home: home.clone() }
        } else {
            let name = std::env::var("USER").unwrap_or_else(|_| "root".into());
            DevUser { name, ids: None, home: home.clone() }
        };
        let packages = config.under_root(&dev.packages_dir);
        let addons = Arc::new(PackageStore::open(packages.join("services"), Kind::Addon)?);
        let code_server = Arc::new(CodeServer::new(
            Arc::clone(&addons),
            dev.code_server_host.clone(),
            dev.code_server_port,
            workspace.clone(),
            home.clone(),
            config.state_path().join("code-server.log"),
        ));
        let state_file = config.state_path().join("dev.json");
        let provisioned =
            std::fs::read(&state_file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        Ok(Some(Arc::new(DevEnvironment {
            runtimes: PackageStore::open(packages.join("runtimes"), Kind::Runtime)?,
            artifacts: ArtifactClient::new(dev.catalog_url.clone()),
            config: dev,
            root,
            packages,
            user,
            workspace,
            addons,
            code_server,
            state_file,
            provisioned: Mutex::new(provisioned),
            complete: std::sync::atomic::AtomicBool::new(false),
        })))
    }

    /// Provisions: user and workspace, runtime, code-server. Idempotent.
    pub async fn provision(self: &Arc<Self>, progress: &Progress) -> Result<(), DevError> {
        progress.say("creating the dev user and workspace");
        self.ensure_user()?;
        if let Some(runtime) = self.config.runtime.clone() {
            let version = match &self.config.version {
                Some(version) => version.clone(),
                None => self.latest(Kind::Runtime, &runtime).await?,
            };
            if !self.runtimes.is_installed(&runtime, &version) {
                progress.say(&format!("installing {runtime} {version}"));
                let turn = self.runtimes.turn(&runtime).await;
                self.runtimes.install(turn, &self.artifacts, &runtime, &version, progress).await?;
            }
        }
        if self.config.code_server {
            if self.addons.current("code-server").is_none() {
                let version = match &self.config.code_server_version {
                    Some(version) => version.clone(),
                    None => self.latest(Kind::Addon, "code-server").await?,
                };
                progress.say(&format!("installing code-server {version}"));
                let turn = self.addons.turn("code-server").await;
                self.addons.install(turn, &self.artifacts, "code-server", &version, progress).await?;
            }
            self.write_profile()?;
            progress.say("starting code-server");
            self.code_server.start(self.code_server_launch());
            // Ready means the IDE opens. One that never answers leaves the container usable
            // (and says so in its status) rather than failing it.
            if !self.code_server.wait_until_answering(code_server::START_TIMEOUT).await {
                tracing::warn!(timeout = ?code_server::START_TIMEOUT, "code-server does not answer yet");
            }
        } else {
            self.write_profile()?;
        }
        let ready_at = {
            let mut provisioned = self.provisioned.lock().unwrap_or_else(|p| p.into_inner());
            let ready_at = *provisioned.dev_ready_at_ms.get_or_insert_with(now_ms);
            let bytes = serde_json::to_vec(&*provisioned).map_err(std::io::Error::other);
            bytes
                .and_then(|bytes| crate::durable::write_atomically(&self.state_file, &bytes))
                .map_err(|e| DevError::Setup(format!("cannot save the dev state: {e}")))?;
            ready_at
        };
        self.complete.store(true, std::sync::atomic::Ordering::SeqCst);
        tracing::info!(dev_ready_at = %format_ms(ready_at), "dev container provisioned");
        Ok(())
    }

    async fn latest(&self, kind: Kind, name: &str) -> Result<String, PackageError> {
        let catalog = self.artifacts.catalog().await?;
        catalog
            .latest(kind, name)
            .map(str::to_owned)
            .ok_or_else(|| PackageError::NotInCatalog(name.into(), "(newest)".into()))
    }

    fn ensure_user(&self) -> Result<(), DevError> {
        let as_root = self.root == Path::new("/") && rustix::process::geteuid().is_root();
        if as_root && lookup_user(&self.config.user).is_none() {
            let status = std::process::Command::new("useradd")
                .args(["--create-home", "--home-dir"])
                .arg(&self.user.home)
                .args(["--shell", "/bin/bash", "--user-group", &self.config.user])
                .status()
                .map_err(|e| DevError::Setup(format!("cannot create the {} user: {e}", self.config.user)))?;
            if !status.success() {
                return Err(DevError::Setup(format!(
                    "cannot create the {} user: useradd {status}",
                    self.config.user
                )));
            }
        }
        std::fs::create_dir_all(&self.workspace)
            .map_err(|e| DevError::Setup(format!("cannot create the workspace: {e}")))?;
        if let Some((uid, gid)) = self.ids() {
            for dir in [&self.user.home, &self.workspace] {
                std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                    .map_err(|e| DevError::Setup(format!("cannot give the workspace to its user: {e}")))?;
            }
        }
        Ok(())
    }

    /// The workspace: what the file API shows of a dev container.
    pub fn workspace(&self) -> &Path {
        &self.workspace
    }

    /// The uid and gid shells run as, when the agent switches users.
    pub fn ids(&self) -> Option<(u32, u32)> {
        let as_root = self.root == Path::new("/") && rustix::process::geteuid().is_root();
        if as_root { lookup_user(&self.config.user) } else { self.user.ids }
    }

    /// `PATH` with every installed runtime first.
    pub fn path(&self) -> String {
        let system = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
        let mut parts: Vec<String> =
            self.runtimes.bin_dirs().iter().map(|p| p.display().to_string()).collect();
        parts.push(system);
        parts.join(":")
    }

    /// The environment of every shell and of code-server.
    pub fn shell_env(&self) -> Vec<(String, String)> {
        let name = if self.ids().is_some() { self.config.user.clone() } else { self.user.name.clone() };
        vec![
            ("HOME".into(), self.user.home.display().to_string()),
            ("USER".into(), name.clone()),
            ("LOGNAME".into(), name),
            ("SHELL".into(), "/bin/bash".into()),
            ("TERM".into(), "xterm-256color".into()),
            ("LANG".into(), std::env::var("LANG").unwrap_or_else(|_| "C.UTF-8".into())),
            ("PATH".into(), self.path()),
        ]
    }

    /// Login shells get the runtimes too: through a script in the packages directory that the
    /// dev user's `~/.bash_profile` (written once, never overwritten) sources.
    fn write_profile(&self) -> Result<(), DevError> {
        // Beside the packages, where the agent may write (a container's root is read-only).
        let dir = &self.packages;
        let profile_error =
            |e: std::io::Error| DevError::Setup(format!("cannot write the shell profile: {e}"));
        std::fs::create_dir_all(dir).map_err(profile_error)?;
        let bins: Vec<String> = self.runtimes.bin_dirs().iter().map(|p| p.display().to_string()).collect();
        let script = format!(
            "# Written by the ZeroLagHub agent: installed runtimes on PATH.\nexport PATH=\"{}:$PATH\"\n",
            bins.join(":")
        );
        let script_path = dir.join("zlh-runtimes.sh");
        crate::durable::write_atomically(&script_path, script.as_bytes()).map_err(profile_error)?;
        let bash_profile = self.user.home.join(".bash_profile");
        if !bash_profile.exists() {
            let text = format!(
                "# Written once by the ZeroLagHub agent; yours to edit.\n[ -f ~/.bashrc ] && . ~/.bashrc\n[ -f {0} ] && . {0}\n",
                script_path.display()
            );
            std::fs::write(&bash_profile, text)
                .map_err(|e| DevError::Setup(format!("cannot write ~/.bash_profile: {e}")))?;
            if let Some((uid, gid)) = self.ids() {
                let _ = std::os::unix::fs::chown(&bash_profile, Some(uid), Some(gid));
            }
        }
        Ok(())
    }

    /// How code-server is launched: in the workspace, as the dev user, with the shells'
    /// environment (so its terminals have the runtimes too).
    pub fn code_server_launch(&self) -> Launch {
        Launch { cwd: self.workspace.clone(), env: self.shell_env(), ids: self.ids() }
    }

    /// Whether this agent finished provisioning.
    pub fn is_complete(&self) -> bool {
        self.complete.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The dev part of `/status`.
    pub fn status(&self) -> DevStatus {
        let ready_at = self.provisioned.lock().unwrap_or_else(|p| p.into_inner()).dev_ready_at_ms;
        DevStatus {
            runtime_installed: match (&self.config.runtime, &self.config.version) {
                (Some(runtime), Some(version)) => self.runtimes.is_installed(runtime, version),
                (Some(runtime), None) => self.runtimes.current(runtime).is_some(),
                (None, _) => true,
            },
            dev_provisioned: self.workspace.is_dir(),
            dev_ready_at: ready_at.map(format_ms),
            // Where the container's processes (code-server included) see it: the configured
            // path in a real container, beneath the root elsewhere.
            workspace_root: self.workspace.display().to_string(),
            code_server_installed: self.addons.current("code-server").is_some(),
            code_server_running: self.code_server.is_answering(),
        }
    }
}

/// The dev fields of `/status`.
#[derive(Debug, Clone)]
pub struct DevStatus {
    /// The configured runtime is installed.
    pub runtime_installed: bool,
    /// The user and workspace exist.
    pub dev_provisioned: bool,
    /// When provisioning first completed.
    pub dev_ready_at: Option<String>,
    /// The workspace, as the container sees it.
    pub workspace_root: String,
    /// code-server is installed.
    pub code_server_installed: bool,
    /// code-server runs and answers on its port.
    pub code_server_running: bool,
}

/// A dev container's main process: a login shell in the workspace, as the dev user, with the
/// runtimes on `PATH`.
impl LaunchPlan for DevEnvironment {
    fn plan(&self, game: &crate::config::GameSection) -> Result<Launch, LaunchError> {
        let mut env = self.shell_env();
        env.extend(game.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(Launch { cwd: self.workspace.clone(), env, ids: self.ids() })
    }
}
