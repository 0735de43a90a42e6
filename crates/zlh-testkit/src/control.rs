//! A real `zlh serve` in a temporary data directory, with test-speed timings, and API helpers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::console::ConsoleClient;
use crate::procs;
use crate::wait::eventually;

/// How a control plane under test is configured.
#[derive(Debug, Clone)]
pub struct ControlSpec {
    pub poll_interval: String,
    pub provision_timeout: String,
    pub access_token_ttl: String,
    pub allow_registration: bool,
    pub max_failed_logins: u32,
    /// Accounts one address may create before each further one waits.
    pub registrations_per_address: u32,
    /// Servers a customer may have.
    pub max_servers_per_user: u32,
    /// Timeout of each request to an agent.
    pub agent_timeout: String,
    /// Extra TOML tables appended to the configuration (`[ide]` ...).
    pub extra_toml: String,
    /// The database, when not SQLite in the data directory (`postgres://…`).
    pub database_url: Option<String>,
    /// TOML merged into every agent configuration (`[recovery]`, `[console]` tables).
    pub agent_defaults: String,
    /// Where servers run: `local`, or `docker` on the tests' engine (`ZLH_TEST_DOCKER_HOST`,
    /// `ZLH_TEST_DOCKER_IMAGE`, set by `cargo xtask test`).
    pub driver: &'static str,
    /// The `[docker]` section's `endpoint` and further keys, instead of the tests' engine's
    /// unix socket.
    pub docker_endpoint: Option<String>,
    /// Further keys of the `[node]` section (`memory_mb = 512`).
    pub node_toml: String,
    /// How long a stopping replica answers after `/health` turned 503 (`drain_delay`).
    pub drain_delay: Option<String>,
}

impl Default for ControlSpec {
    fn default() -> Self {
        ControlSpec {
            poll_interval: "200ms".into(),
            provision_timeout: "20s".into(),
            access_token_ttl: "15m".into(),
            allow_registration: true,
            max_failed_logins: 5,
            registrations_per_address: 50,
            max_servers_per_user: 20,
            agent_timeout: "2s".into(),
            extra_toml: String::new(),
            database_url: None,
            agent_defaults: "[recovery]\nbackoff = [\"100ms\"]\nmax_consecutive_crashes = 3\n".into(),
            driver: "local",
            docker_endpoint: None,
            node_toml: String::new(),
            drain_delay: None,
        }
    }
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct ApiUser {
    pub id: i64,
    pub email: String,
    pub password: String,
    pub access_token: String,
    pub refresh_token: String,
}

/// A control plane process. Dropping it kills it, its agents and their games.
#[derive(Debug)]
pub struct TestControlPlane {
    /// The data directory.
    pub data: tempfile::TempDir,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    zlh: PathBuf,
    config_path: PathBuf,
    child: Option<Child>,
    logs: Arc<Mutex<Vec<String>>>,
    /// HTTP client.
    pub http: reqwest::Client,
    /// The game ports its node hands out (unless `extra_toml` sets `[node]`).
    pub ports: crate::PortRange,
    /// Its node's name: unique, so that its containers are told apart from other tests'.
    pub node: String,
    /// Whether its servers are containers on the tests' engine.
    pub docker: bool,
}

impl TestControlPlane {
    /// Writes the configuration and starts `zlh serve`; returns once it listens.
    pub async fn start(zlh: &Path, spec: &ControlSpec) -> TestControlPlane {
        let mut control = Self::prepare(zlh, spec);
        control.launch().await;
        control
    }

    /// Writes the configuration into a fresh data directory without starting anything (to
    /// fill the database first); [`TestControlPlane::launch`] starts it.
    pub fn prepare(zlh: &Path, spec: &ControlSpec) -> TestControlPlane {
        let data = tempfile::Builder::new().prefix("zlh-control-").tempdir().expect("tempdir");
        let config_path = data.path().join("control.toml");
        let mut defaults = String::new();
        for line in spec.agent_defaults.lines() {
            match line.strip_prefix('[') {
                Some(table) => defaults.push_str(&format!("[local_driver.agent_defaults.{table}\n")),
                None => defaults.push_str(&format!("{line}\n")),
            }
        }
        let ports = crate::PortRange::claim();
        let node_name = format!("t{}", crate::random_hex(4));
        let mut node = if spec.extra_toml.contains("[node]") {
            String::new()
        } else {
            format!(
                "[node]\nname = \"{node_name}\"\nfirst_port = {}\nlast_port = {}\n{}\n",
                ports.first, ports.last, spec.node_toml
            )
        };
        let docker = spec.driver == "docker";
        if docker {
            let endpoint = spec
                .docker_endpoint
                .clone()
                .unwrap_or_else(|| format!("endpoint = \"{}\"", crate::docker::host()));
            node.push_str(&format!(
                "\n[docker]\n{endpoint}\nimage = \"{}\"\nnetwork = \"zlh-test\"\n",
                crate::docker::image()
            ));
        }
        let database =
            spec.database_url.as_ref().map(|url| format!("database_url = \"{url}\"\n")).unwrap_or_default();
        let drain = spec.drain_delay.as_ref().map(|d| format!("drain_delay = \"{d}\"\n")).unwrap_or_default();
        let config = format!(
            "{database}{drain}driver = \"{driver}\"\nlisten = \"127.0.0.1:0\"\ndata_dir = {data}\n\n[auth]\nallow_registration = {registration}\n\
             access_token_ttl = \"{ttl}\"\nmax_failed_logins = {max}\nregistrations_per_address = {registrations}\n\n[poller]\ninterval = \"{interval}\"\ntimeout = \"{timeout}\"\n\n\
             [provisioning]\ntimeout = \"{provision}\"\nmax_servers_per_user = {servers}\n\n{defaults}\n{node}\n{extra}",
            data = serde_json::to_string(&data.path().display().to_string()).expect("json"),
            registration = spec.allow_registration,
            ttl = spec.access_token_ttl,
            max = spec.max_failed_logins,
            registrations = spec.registrations_per_address,
            servers = spec.max_servers_per_user,
            interval = spec.poll_interval,
            timeout = spec.agent_timeout,
            provision = spec.provision_timeout,
            extra = spec.extra_toml,
            driver = spec.driver,
        );
        std::fs::write(&config_path, config).expect("write config");
        TestControlPlane {
            data,
            url: String::new(),
            zlh: zlh.to_owned(),
            config_path,
            child: None,
            logs: Arc::new(Mutex::new(Vec::new())),
            http: reqwest::Client::new(),
            ports,
            node: node_name,
            docker,
        }
    }

    /// The control plane's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Starts a (new) control plane process on the existing data directory.
    pub async fn launch(&mut self) {
        let mut command = Command::new(&self.zlh);
        command.args(["serve", "--config"]).arg(&self.config_path).env("ZLH_LOG", "info");
        let logs = Arc::clone(&self.logs);
        let (child, address) =
            procs::spawn_listening(command, "control plane listening", logs, Duration::from_secs(30)).await;
        self.url = format!("http://{address}");
        self.child = Some(child);
    }

    /// SIGTERM to the control plane only, then waits until it has exited (its graceful stop).
    pub async fn stop(&mut self) {
        procs::terminate(self.child.take()).await;
    }

    /// SIGKILL to the control plane only (agents and games live on).
    pub fn kill9(&mut self) {
        procs::kill_child(self.child.take());
    }

    /// Every log line the control plane printed (across launches).
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("logs").clone()
    }

    /// Every agent log line of every server.
    pub fn agent_logs(&self) -> String {
        let servers = self.data.path().join("servers");
        let mut all = String::new();
        for entry in std::fs::read_dir(servers).into_iter().flatten().flatten() {
            all.push_str(&std::fs::read_to_string(entry.path().join("agent.log")).unwrap_or_default());
        }
        all
    }

    /// The `(listen address, secret)` of a server's agent, from its configuration file.
    pub fn agent_endpoint(&self, server_id: i64) -> (String, String) {
        let path = self.data.path().join(format!("servers/{server_id}/agent.toml"));
        let text = std::fs::read_to_string(path).expect("agent config");
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key} = ")))
                .map(|v| v.trim_matches('"').to_owned())
                .expect("field")
        };
        (field("listen"), field("secret"))
    }

    /// Runs `zlh <args> --config <this control plane's config>` with `stdin`; returns stdout.
    pub fn cli(&self, args: &[&str], stdin: &str) -> String {
        let output = self.cli_with(args, stdin, &[]);
        assert!(output.status.success(), "zlh {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// [`TestControlPlane::cli`] with environment variables, whether it succeeds or not.
    pub fn cli_with(&self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new(&self.zlh)
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn zlh");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
        child.wait_with_output().expect("zlh")
    }

    /// Points the configuration at another database (for the next launch).
    pub fn use_database(&self, url: &str) {
        let config = std::fs::read_to_string(&self.config_path).expect("config");
        let kept: String =
            config.lines().filter(|l| !l.starts_with("database_url")).map(|l| format!("{l}\n")).collect();
        std::fs::write(&self.config_path, format!("database_url = \"{url}\"\n{kept}")).expect("write config");
    }

    /// Runs `zlh admin <args>` on this data directory, with `stdin`; returns stdout.
    pub fn admin(&self, args: &[&str], stdin: &str) -> String {
        let mut all = vec!["admin"];
        all.extend_from_slice(args);
        self.cli(&all, stdin)
    }

    /// A request, with a bearer token if given; status and JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_at(&self.url, method, path, token, body).await
    }

    /// [`TestControlPlane::call`] to another address (a replica, a load balancer).
    pub async fn call_at(
        &self,
        base: &str,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method: reqwest::Method = method.parse().expect("method");
        let mut request = self.http.request(method, format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            },
        )
    }

    /// A request with raw bytes both ways (uploads, downloads).
    pub async fn send(&self, method: &str, path: &str, token: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
        let method: reqwest::Method = method.parse().expect("method");
        let response = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token)
            .body(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.bytes().await.expect("body").to_vec())
    }

    /// Waits until a server's job has ended; returns it.
    pub async fn wait_for_job(&self, user: &ApiUser, server_id: i64, job: &Value) -> Value {
        let id = job["id"].as_str().unwrap_or_else(|| panic!("not a job: {job}"));
        let path = format!("/api/servers/{server_id}/jobs/{id}");
        eventually(&format!("job {id} ends"), Duration::from_secs(60), || async {
            let (status, job) = self.call("GET", &path, Some(&user.access_token), None).await;
            (status == 200 && job["state"] != "running").then_some(job)
        })
        .await
    }

    /// The directory the game of a local-driver server runs in.
    pub fn server_dir(&self, server_id: i64) -> PathBuf {
        self.data.path().join(format!("servers/{server_id}/root/opt/zlh/server"))
    }

    /// Registers a user and confirms the address with the link from the outbox (which signs in).
    pub async fn register(&self, email: &str) -> ApiUser {
        let password = format!("pw-{}", crate::random_hex(8));
        let (status, body) = self
            .call("POST", "/api/auth/register", None, Some(json!({"email": email, "password": password})))
            .await;
        assert_eq!(status, 202, "register {email}: {body}");
        let token = self.mailed_token(email, "/verify-email").expect("a verification link was sent");
        let (status, body) =
            self.call("POST", "/api/auth/verify-email", None, Some(json!({"token": token}))).await;
        assert_eq!(status, 200, "verify {email}: {body}");
        session_user(&body, password)
    }

    /// Every message the control plane sent (its outbox), oldest first.
    pub fn outbox(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.data.path().join("outbox.log")).unwrap_or_default();
        text.lines().map(|line| serde_json::from_str(line).expect("an outbox line is JSON")).collect()
    }

    /// The token of the newest link to `path` (`/verify-email`, `/reset-password`) mailed to `to`.
    pub fn mailed_token(&self, to: &str, path: &str) -> Option<String> {
        let marker = format!("{path}?token=");
        self.outbox().iter().rev().filter(|message| message["to"] == to).find_map(|message| {
            let body = message["body"].as_str()?;
            let after = &body[body.find(&marker)? + marker.len()..];
            after.split_whitespace().next().map(str::to_owned)
        })
    }

    /// The pid of a local server's game (answers never show it), from `/proc`.
    pub fn game_pid(&self, server_id: i64) -> u32 {
        let dir = self.data.path().join(format!("servers/{server_id}"));
        procs::processes_under(&dir)
            .into_iter()
            .find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains("sample-game"))
            })
            .expect("the server's game runs")
    }

    /// Creates an admin account (through `zlh admin`) and signs it in.
    pub async fn register_admin(&self, email: &str) -> ApiUser {
        let password = format!("pw-{}", crate::random_hex(8));
        self.admin(
            &["create-user", "--email", email, "--admin", "--password-stdin"],
            &format!("{password}\n"),
        );
        self.login(email, &password).await
    }

    /// Signs in.
    pub async fn login(&self, email: &str, password: &str) -> ApiUser {
        let (status, body) = self
            .call("POST", "/api/auth/login", None, Some(json!({"email": email, "password": password})))
            .await;
        assert_eq!(status, 200, "login {email}: {body}");
        session_user(&body, password.to_owned())
    }

    /// Creates a server of the sample template; panics unless it was created.
    pub async fn create_sample_server(&self, user: &ApiUser, name: &str) -> Value {
        let body = json!({"name": name, "type": "game", "template": "sample", "start": true});
        let (status, server) = self.call("POST", "/api/servers", Some(&user.access_token), Some(body)).await;
        assert_eq!(status, 201, "create server: {server}");
        server
    }

    /// Waits until the cached status of a server satisfies `check`.
    pub async fn wait_for_status(
        &self,
        user: &ApiUser,
        server_id: i64,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        eventually(what, Duration::from_secs(15), || async {
            let (status, body) = self
                .call("GET", &format!("/api/servers/{server_id}/status"), Some(&user.access_token), None)
                .await;
            (status == 200 && check(&body)).then_some(body)
        })
        .await
    }

    /// A console ticket for a server.
    pub async fn console_ticket(&self, user: &ApiUser, server_id: i64) -> (u16, Value) {
        self.call("POST", &format!("/api/servers/{server_id}/console/ticket"), Some(&user.access_token), None)
            .await
    }

    /// Opens a server's console through the API, with a fresh ticket.
    pub async fn console(&self, user: &ApiUser, server_id: i64, since: Option<u64>) -> ConsoleClient {
        self.console_at(&self.url, user, server_id, since).await
    }

    /// [`TestControlPlane::console`] through another address (a replica, a load balancer).
    pub async fn console_at(
        &self,
        base: &str,
        user: &ApiUser,
        server_id: i64,
        since: Option<u64>,
    ) -> ConsoleClient {
        let path = format!("/api/servers/{server_id}/console/ticket");
        let (status, ticket) = self.call_at(base, "POST", &path, Some(&user.access_token), None).await;
        assert_eq!(status, 200, "{ticket}");
        let ticket = ticket["ticket"].as_str().expect("ticket");
        let mut url =
            format!("{}/api/servers/{server_id}/console?ticket={ticket}", base.replacen("http", "ws", 1));
        if let Some(since) = since {
            url.push_str(&format!("&since={since}"));
        }
        // From the portal, wherever the socket goes.
        ConsoleClient::open(&url, &[("Origin", self.url.as_str())]).await.expect("console through the API")
    }

    /// Starts another replica on this control plane's configuration and data directory (so
    /// on its database), listening on `listen` and telling clients `public_url` (the load
    /// balancer's); returns once it listens.
    pub async fn start_replica(&self, listen: &str, public_url: &str) -> Replica {
        let config = std::fs::read_to_string(&self.config_path).expect("config");
        let config = config.replacen(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"{listen}\"\npublic_url = \"{public_url}\""),
            1,
        );
        let path = self.data.path().join(format!("replica-{}.toml", crate::random_hex(4)));
        std::fs::write(&path, config).expect("write replica config");
        let mut command = Command::new(&self.zlh);
        command.args(["serve", "--config"]).arg(&path).env("ZLH_LOG", "info");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (child, address) = procs::spawn_listening(
            command,
            "control plane listening",
            Arc::clone(&logs),
            Duration::from_secs(30),
        )
        .await;
        Replica { child: Some(child), url: format!("http://{address}"), logs }
    }

    /// The pids of agents, holders and games under this data directory.
    pub fn server_processes(&self) -> Vec<u32> {
        procs::processes_under(&self.data.path().join("servers"))
    }
}

fn session_user(body: &Value, password: String) -> ApiUser {
    ApiUser {
        id: body["user"]["id"].as_i64().expect("user id"),
        email: body["user"]["email"].as_str().expect("email").to_owned(),
        password,
        access_token: body["accessToken"].as_str().expect("access token").to_owned(),
        refresh_token: body["refreshToken"].as_str().expect("refresh token").to_owned(),
    }
}

impl Drop for TestControlPlane {
    fn drop(&mut self) {
        self.kill9();
        // Agents first (so none revives anything), then holders and games.
        for _ in 0..2 {
            for pid in procs::processes_under(self.data.path()) {
                procs::kill9(pid);
            }
        }
        if self.docker {
            crate::docker::remove_node(&self.node);
            crate::docker::unmount_under(self.data.path());
        }
    }
}

/// Another `zlh serve` on a control plane's database. Dropping it kills it.
#[derive(Debug)]
pub struct Replica {
    child: Option<Child>,
    /// `http://<its address>`.
    pub url: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Replica {
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGTERM, then waits until it has exited (its graceful stop), letting other tasks run.
    pub async fn stop(&mut self) {
        procs::terminate(self.child.take()).await;
    }

    /// SIGKILL: gone at once, saying nothing.
    pub fn kill9(&mut self) {
        procs::kill_child(self.child.take());
    }

    /// Every log line it printed.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("logs").clone()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill9();
    }
}
