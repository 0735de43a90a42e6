//! A real `zlh agent` process in a temporary root, with test-speed timings.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::console::ConsoleClient;
use crate::procs;
use crate::wait::eventually;

/// How an agent under test is configured. Timings default to milliseconds.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// Arguments after `zlh sample-game`.
    pub game_args: Vec<String>,
    /// A whole argv instead of the sample game.
    pub argv: Option<Vec<String>>,
    /// `game.stop`, as TOML (`{ command = "stop" }`).
    pub stop: String,
    pub stop_timeout: String,
    pub term_timeout: String,
    pub ready_pattern: Option<String>,
    /// How long a start may take to print its ready line.
    pub start_timeout: String,
    /// TCP ports the game must listen on before it is ready.
    pub listen_ports: Vec<u16>,
    pub backoff: Vec<String>,
    pub reset_after: String,
    pub max_consecutive_crashes: u32,
    pub scrollback_bytes: usize,
    pub tail_lines: usize,
    pub viewer_stall_timeout: String,
    pub autostart: bool,
    /// Extra environment of the agent process (`ZLH_AGENT_*` overrides).
    pub env: Vec<(String, String)>,
    /// Extra TOML tables appended to the configuration (`[dev]`).
    pub extra_toml: String,
    /// Where the agent's root is made (a temporary directory there); the system's temporary
    /// directory when `None`. `/dev/shm` for trees of hundreds of thousands of files, which a
    /// disk takes minutes to create.
    pub root_in: Option<PathBuf>,
}

impl Default for AgentSpec {
    fn default() -> Self {
        AgentSpec {
            game_args: vec!["--ready-delay-ms".into(), "50".into()],
            argv: None,
            stop: r#"{ command = "stop" }"#.into(),
            stop_timeout: "3s".into(),
            term_timeout: "3s".into(),
            ready_pattern: Some(r"Done \(".into()),
            start_timeout: "60s".into(),
            listen_ports: Vec::new(),
            backoff: vec!["30s".into()],
            reset_after: "30s".into(),
            max_consecutive_crashes: 4,
            scrollback_bytes: 1 << 20,
            tail_lines: 50,
            viewer_stall_timeout: "30s".into(),
            autostart: false,
            env: Vec::new(),
            extra_toml: String::new(),
            root_in: None,
        }
    }
}

impl AgentSpec {
    /// A development container: a shell as its main process, provisioned from `catalog_url`
    /// with these `[dev]` keys.
    pub fn dev(catalog_url: &str, dev_keys: &str) -> AgentSpec {
        AgentSpec {
            argv: Some(vec!["/bin/bash".into(), "--noprofile".into(), "--norc".into(), "-i".into()]),
            ready_pattern: None,
            stop: r#"{ command = "exit" }"#.into(),
            autostart: true,
            extra_toml: format!(
                "\n[dev]\ncatalog_url = {}\n{dev_keys}\n",
                serde_json::to_string(catalog_url).expect("json")
            ),
            ..AgentSpec::default()
        }
    }

    /// The sample game with these extra arguments.
    pub fn with_game_args(args: &[&str]) -> AgentSpec {
        let mut spec = AgentSpec::default();
        spec.game_args.extend(args.iter().map(|a| a.to_string()));
        spec
    }

    fn render(&self, zlh: &Path, root: &Path, secret: &str) -> String {
        let quote = |s: &str| serde_json::to_string(s).expect("string");
        let argv = self.argv.clone().unwrap_or_else(|| {
            let mut argv = vec![zlh.display().to_string(), "sample-game".into()];
            argv.extend(self.game_args.iter().cloned());
            argv
        });
        let list = |items: &[String]| items.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ");
        let ready = self
            .ready_pattern
            .as_deref()
            .map(|p| {
                format!("ready_pattern = {}\nstart_timeout = {}\n", quote(p), quote(&self.start_timeout))
            })
            .unwrap_or_default();
        let ports: Vec<String> =
            self.listen_ports.iter().map(|port| format!("{{ port = {port}, protocol = \"tcp\" }}")).collect();
        let ready = format!("{ready}listen_ports = [{}]\n", ports.join(", "));
        format!(
            "listen = \"127.0.0.1:0\"\nsecret = {secret}\nroot = {root}\n\n\
             [game]\nargv = [{argv}]\nstop = {stop}\nstop_timeout = {stop_timeout}\nterm_timeout = {term_timeout}\n{ready}autostart = {autostart}\n\n\
             [recovery]\nbackoff = [{backoff}]\nreset_after = {reset_after}\nmax_consecutive_crashes = {max}\n\n\
             [console]\nscrollback_bytes = {scrollback}\ntail_lines = {tail}\nviewer_stall_timeout = {stall}\n{extra}",
            secret = quote(secret),
            root = quote(&root.display().to_string()),
            argv = list(&argv),
            stop = self.stop,
            stop_timeout = quote(&self.stop_timeout),
            term_timeout = quote(&self.term_timeout),
            autostart = self.autostart,
            backoff = list(&self.backoff),
            reset_after = quote(&self.reset_after),
            max = self.max_consecutive_crashes,
            scrollback = self.scrollback_bytes,
            tail = self.tail_lines,
            stall = quote(&self.viewer_stall_timeout),
            extra = self.extra_toml,
        )
    }
}

/// An agent process under test. Dropping it kills the agent and everything it left running.
#[derive(Debug)]
pub struct TestAgent {
    /// The agent's root directory (a temporary directory).
    pub root: tempfile::TempDir,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The agent's bearer secret.
    pub secret: String,
    zlh: PathBuf,
    config_path: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
    logs: Arc<Mutex<Vec<String>>>,
    /// HTTP client for the agent.
    pub http: reqwest::Client,
}

impl TestAgent {
    /// Writes the configuration and starts an agent; returns once it listens.
    pub async fn start(zlh: &Path, spec: &AgentSpec) -> TestAgent {
        let mut agent = Self::prepare(zlh, spec);
        agent.launch().await;
        agent
    }

    /// Writes the configuration into a fresh root without starting anything (to arrange the
    /// root first); [`TestAgent::launch`] starts it.
    pub fn prepare(zlh: &Path, spec: &AgentSpec) -> TestAgent {
        let mut root = tempfile::Builder::new();
        root.prefix("zlh-agent-");
        let root = match &spec.root_in {
            Some(parent) => root.tempdir_in(parent),
            None => root.tempdir(),
        }
        .expect("tempdir");
        let secret = crate::random_hex(20);
        let config_path = root.path().join("agent.toml");
        std::fs::write(&config_path, spec.render(zlh, root.path(), &secret)).expect("write config");
        TestAgent {
            root,
            url: String::new(),
            secret,
            zlh: zlh.to_owned(),
            config_path,
            env: spec.env.clone(),
            child: None,
            logs: Arc::new(Mutex::new(Vec::new())),
            http: reqwest::Client::new(),
        }
    }

    /// The game's directory (the default working directory).
    pub fn server_dir(&self) -> PathBuf {
        self.root.path().join("opt/zlh/server")
    }

    /// Where backups are kept (the default).
    pub fn backups_dir(&self) -> PathBuf {
        self.root.path().join("var/lib/zlh/backups")
    }

    /// Starts a (new) agent process on the existing configuration and state.
    pub async fn launch(&mut self) {
        let mut command = Command::new(&self.zlh);
        command
            .arg("agent")
            .arg("--config")
            .arg(&self.config_path)
            .env("ZLH_LOG", "info,zlh_agent=debug")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let logs = Arc::clone(&self.logs);
        let (child, address) =
            procs::spawn_listening(command, "agent listening", logs, Duration::from_secs(20)).await;
        self.url = format!("http://{address}");
        self.child = Some(child);
    }

    /// The agent's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("agent running").id()
    }

    /// SIGKILL to the agent (only the agent: holders and games survive it).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal to the agent and waits until it exits; returns its exit status.
    pub async fn signal_and_wait(
        &mut self,
        signal: rustix::process::Signal,
        timeout: Duration,
    ) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("agent running");
        procs::signal(child.id(), signal);
        tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + timeout;
            loop {
                if let Some(status) = child.try_wait().expect("wait") {
                    return status;
                }
                assert!(std::time::Instant::now() < deadline, "the agent did not exit in time");
                std::thread::sleep(Duration::from_millis(10));
            }
        })
        .await
        .expect("join")
    }

    /// Every log line the agent printed so far (across launches).
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("logs").clone()
    }

    /// Waits until a log line satisfies `check` (log lines arrive through a pipe, a little
    /// after the event they describe); returns it.
    pub async fn wait_for_log(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        eventually(what, Duration::from_secs(10), || async {
            self.logs().into_iter().find(|line| check(line))
        })
        .await
    }

    /// The agent's state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.root.path().join("var/lib/zlh/agent")
    }

    /// A request with the agent's secret.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{}", self.url, path)).bearer_auth(&self.secret)
    }

    /// GET with the secret; status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        send(self.request(reqwest::Method::GET, path)).await
    }

    /// POST with the secret and an optional JSON body; status and JSON body.
    pub async fn post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.request(reqwest::Method::POST, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        send(request).await
    }

    /// `GET /status`.
    pub async fn status(&self) -> Value {
        let (code, body) = self.get("/status").await;
        assert_eq!(code, 200, "{body}");
        body
    }

    /// Waits until `/status` reports `state`; returns that status.
    pub async fn wait_for_state(&self, state: &str, timeout: Duration) -> Value {
        self.wait_for_status(&format!("state {state}"), timeout, |s| s["state"] == state).await
    }

    /// Waits until `/status` satisfies `check`.
    pub async fn wait_for_status(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        eventually(what, timeout, || async {
            let (code, status) = self.get("/status").await;
            (code == 200 && check(&status)).then_some(status)
        })
        .await
    }

    /// Sends a console command; panics unless it was accepted.
    pub async fn command(&self, command: &str) {
        let (code, body) =
            self.post("/console/command", Some(serde_json::json!({ "command": command }))).await;
        assert_eq!(code, 202, "console command {command:?}: {body}");
    }

    /// Starts the server and waits until it runs.
    pub async fn start_and_wait(&self) -> Value {
        let (code, body) = self.post("/start", None).await;
        assert!(code == 202 || code == 200, "start: {code} {body}");
        self.wait_for_state("running", Duration::from_secs(10)).await
    }

    /// Waits until a job has ended; returns it.
    pub async fn wait_for_job(&self, job: &Value) -> Value {
        let id = job["id"].as_str().unwrap_or_else(|| panic!("not a job: {job}"));
        eventually(&format!("job {id} ends"), Duration::from_secs(60), || async {
            let (code, job) = self.get(&format!("/jobs/{id}")).await;
            (code == 200 && job["state"] != "running").then_some(job)
        })
        .await
    }

    /// Opens the console WebSocket.
    pub async fn console(&self, since: Option<u64>) -> ConsoleClient {
        ConsoleClient::connect(&self.url, &self.secret, since).await
    }
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request");
    let code = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (code, body)
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.kill9();
        for pid in procs::processes_under(self.root.path()) {
            procs::kill9(pid);
        }
    }
}
