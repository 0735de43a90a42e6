//! code-server: installed from the artifact store into `/opt/zlh/services/code-server`,
//! started with `--bind-addr <host>:<port> --auth none --disable-telemetry`, kept running
//! while wanted. Without authentication of its own, it must listen where only the control
//! plane's proxy reaches it: loopback, or inside a container whose port is published only to
//! the control plane.
//!
//! It counts as running once it answers on its port: a code-server that is still loading (it
//! can take seconds) is not yet an IDE anyone can open.
//!
//! Whether its processes exist is read from `/proc/*/cmdline` (any process started from the installed
//! code-server), not from a pid file, so an agent that restarted finds the code-server it left
//! behind. It runs in its own process group: stopping it stops its helpers too.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::packages::PackageStore;
use crate::supervisor::Launch;

/// How often supervision looks.
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// How long provisioning waits for a new code-server to answer.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a start request waits for it to answer (within the control plane's agent timeout;
/// a slower start is reported as not running yet, and the status shows when it is).
pub const REQUEST_WAIT: Duration = Duration::from_secs(4);
/// How long a stop waits for SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// code-server's supervisor.
#[derive(Debug)]
pub struct CodeServer {
    addons: Arc<PackageStore>,
    host: String,
    port: u16,
    workspace: PathBuf,
    home: PathBuf,
    log: PathBuf,
    /// Whether it should run; the supervision task follows it.
    wanted: watch::Sender<bool>,
    launch: Mutex<Option<Launch>>,
    supervising: AtomicBool,
    /// It accepted a connection on its port at the last look.
    answering: AtomicBool,
}

impl CodeServer {
    /// A supervisor for the code-server installed in `addons`.
    pub fn new(
        addons: Arc<PackageStore>,
        host: String,
        port: u16,
        workspace: PathBuf,
        home: PathBuf,
        log: PathBuf,
    ) -> CodeServer {
        CodeServer {
            addons,
            host,
            port,
            workspace,
            home,
            log,
            wanted: watch::channel(false).0,
            launch: Mutex::new(None),
            supervising: AtomicBool::new(false),
            answering: AtomicBool::new(false),
        }
    }

    fn install_root(&self) -> PathBuf {
        self.addons.current("code-server").and_then(|p| p.canonicalize().ok()).unwrap_or_default()
    }

    fn installed_prefix(&self) -> String {
        // Any version's directory: the running one may be older than `current`.
        let current = self.install_root();
        current.parent().map(|p| format!("{}/", p.display())).unwrap_or_default()
    }

    /// Pids of processes started from the installed code-server.
    pub fn pids(&self) -> Vec<u32> {
        let prefix = self.installed_prefix();
        if prefix.len() < 2 {
            return Vec::new();
        }
        let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
        entries
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(&prefix))
            })
            .collect()
    }

    /// Whether code-server's processes exist (it may still be loading).
    pub fn is_running(&self) -> bool {
        !self.pids().is_empty()
    }

    /// Whether code-server answers on its port (as of the last look, at most
    /// [`CHECK_EVERY`] ago, or now after [`CodeServer::wait_until_answering`]).
    pub fn is_answering(&self) -> bool {
        self.answering.load(Ordering::SeqCst)
    }

    /// Looks whether it answers now, and remembers. Nothing is scanned while it is not wanted;
    /// wanted is read again after the connect, so a look that overlaps a stop cannot leave it
    /// "answering".
    async fn look(&self) -> bool {
        let wanted = || *self.wanted.borrow();
        let answers = wanted()
            && self.is_running()
            && tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok()
            && wanted();
        self.answering.store(answers, Ordering::SeqCst);
        answers
    }

    /// Waits until it answers, up to `timeout`; returns whether it does.
    pub async fn wait_until_answering(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.look().await {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wants it running, launched like this; starts supervision on first use.
    pub fn start(self: &Arc<Self>, launch: Launch) {
        *self.launch.lock().unwrap_or_else(|p| p.into_inner()) = Some(launch);
        self.wanted.send_replace(true);
        if !self.supervising.swap(true, Ordering::SeqCst) {
            let this = Arc::clone(self);
            tokio::spawn(async move { this.supervise().await });
        }
    }

    /// Wants it stopped; returns once it is.
    pub async fn stop(&self) {
        self.wanted.send_replace(false);
        self.kill_all().await;
        self.answering.store(false, Ordering::SeqCst);
    }

    async fn kill_all(&self) {
        use rustix::process::{Pid, Signal, getpgid, kill_process_group};
        let groups: Vec<Pid> =
            self.pids().into_iter().filter_map(|p| getpgid(Pid::from_raw(p as i32)).ok()).collect();
        for group in &groups {
            let _ = kill_process_group(*group, Signal::TERM);
        }
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        while self.is_running() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for group in &groups {
            let _ = kill_process_group(*group, Signal::KILL);
        }
        while self.is_running() && tokio::time::Instant::now() < deadline + STOP_GRACE {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn supervise(self: Arc<Self>) {
        let mut wanted = self.wanted.subscribe();
        let mut backoff = Duration::from_secs(1);
        loop {
            if *wanted.borrow_and_update() && !self.is_running() {
                match self.spawn() {
                    Ok(pid) => tracing::info!(pid, port = self.port, "code-server started"),
                    Err(e) => tracing::error!(error = %e, "code-server could not be started"),
                }
                // Give it time to come up before judging again; back off if it keeps dying.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                if self.is_running() {
                    backoff = Duration::from_secs(1);
                }
                continue;
            }
            self.look().await;
            tokio::select! {
                _ = wanted.changed() => {}
                _ = tokio::time::sleep(CHECK_EVERY) => {}
            }
        }
    }

    fn spawn(&self) -> std::io::Result<u32> {
        use std::os::unix::process::CommandExt;
        let launch = self.launch.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let launch = launch.ok_or_else(|| std::io::Error::other("code-server was never asked to start"))?;
        let launcher = self.install_root().join("bin/code-server");
        let data = self.home.join(".local/share/code-server");
        // First start: the customer's own container needs no workspace-trust prompt, and
        // nothing phones home.
        let settings = data.join("User/settings.json");
        if !settings.exists() {
            std::fs::create_dir_all(data.join("User"))?;
            std::fs::write(
                &settings,
                "{\n  \"security.workspace.trust.enabled\": false,\n  \"telemetry.telemetryLevel\": \"off\",\n  \"workbench.startupEditor\": \"none\"\n}\n",
            )?;
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let mut command = std::process::Command::new(&launcher);
        command
            .arg("--bind-addr")
            .arg(format!("{}:{}", self.host, self.port))
            .args(["--auth", "none", "--disable-telemetry", "--disable-update-check"])
            .arg("--user-data-dir")
            .arg(&data)
            .arg("--extensions-dir")
            .arg(data.join("extensions"))
            .arg("--config")
            .arg(self.home.join(".config/code-server/config.yaml"))
            .arg(&self.workspace)
            .current_dir(&launch.cwd)
            .env_clear()
            .envs(launch.env)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        if let Some((uid, gid)) = launch.ids {
            command.uid(uid).gid(gid);
        }
        let child = command.spawn()?;
        let pid = child.id();
        // Reap it when it exits; supervision notices through /proc.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        Ok(pid)
    }
}
