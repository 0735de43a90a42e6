//! The poller against 10,000 simulated agents at a 5 s interval: the control plane's CPU and
//! peak memory, and how old the cached statuses are when read.
//!
//! The simulated agents run in child processes (`cargo xtask sim-agents`, 2,500 each, so no
//! process needs more file descriptors than the usual hard limit): one loopback listener per
//! agent, like distinct hosts, answering `/heartbeat` (and `/health`, `/ready`, `/status`) with
//! canned bodies.
//! They are recorded in a fresh database as `external` servers, so a real `zlh serve` (release
//! build) adopts and polls them.

use std::path::Path;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::json;
use zlh_control::db::{SqliteStore, Store};
use zlh_proto::Secret;
use zlh_proto::api::Role;
use zlh_testkit::{ControlSpec, TestControlPlane};

use super::{cpu_seconds, print_table, proc_status_mib};

pub(super) const AGENTS: usize = 10_000;
const AGENTS_PER_PROCESS: usize = 2_500;
pub(super) const INTERVAL_SECS: u64 = 5;
const WINDOW: Duration = Duration::from_secs(60);
const SECRET: &str = "simulated-agent-secret-0123456789";
const METRICS_TOKEN: &str = "benchmark-metrics-token";

/// The poller on SQLite, one control plane.
pub(super) async fn run(zlh: &Path) -> anyhow::Result<()> {
    let measured = measure(zlh, None, 1).await?;
    print_table(
        &format!("Poller: {AGENTS} agents every {INTERVAL_SECS} s (one heartbeat each), release build"),
        &["measure", "value"],
        &[
            vec![
                "first heartbeat of every agent after start".into(),
                format!("{:.1} s", measured.first_round.as_secs_f64()),
            ],
            vec![
                "polls completed per second".into(),
                format!("{:.0} (ideal {})", measured.polls_per_second, AGENTS as u64 / INTERVAL_SECS),
            ],
            vec!["control-plane CPU".into(), format!("{:.1} % of one core", measured.cpu[0] * 100.0)],
            vec![
                "control-plane memory: peak / now".into(),
                format!("{:.0} MiB / {:.0} MiB", measured.peak_mib[0], measured.rss_mib[0]),
            ],
            vec!["status age when read: p50 / p99 / max".into(), measured.ages()],
            vec![
                format!("GET /api/servers ({AGENTS} servers), median"),
                format!("{:.0} ms", measured.list_ms),
            ],
        ],
    );
    Ok(())
}

/// What one run of the poller measured (per replica where it says so).
pub(super) struct Measured {
    pub(super) first_round: Duration,
    pub(super) polls_per_second: f64,
    /// CPU of each replica, as a fraction of one core.
    pub(super) cpu: Vec<f64>,
    pub(super) peak_mib: Vec<f64>,
    pub(super) rss_mib: Vec<f64>,
    /// PostgreSQL's own CPU (all its processes), as a fraction of one core.
    pub(super) postgres_cpu: Option<f64>,
    /// Sorted ages of the statuses read, in seconds.
    pub(super) ages: Vec<f64>,
    pub(super) list_ms: f64,
}

impl Measured {
    /// p50 / p99 / max of the status ages.
    pub(super) fn ages(&self) -> String {
        let at = |q: f64| self.ages[((self.ages.len() - 1) as f64 * q).round() as usize];
        format!("{:.2} s / {:.2} s / {:.2} s", at(0.5), at(0.99), at(1.0))
    }
}

/// Polls [`AGENTS`] simulated agents with `replicas` control planes on `database` (SQLite in the
/// data directory when `None`), and measures them over [`WINDOW`].
pub(super) async fn measure(zlh: &Path, database: Option<&str>, replicas: usize) -> anyhow::Result<Measured> {
    raise_file_limit();
    let mut simulators = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..AGENTS / AGENTS_PER_PROCESS {
        let (child, mut more) = spawn_simulator(AGENTS_PER_PROCESS)?;
        simulators.push(child);
        urls.append(&mut more);
    }
    let spec = ControlSpec {
        poll_interval: format!("{INTERVAL_SECS}s"),
        agent_timeout: "5s".into(),
        database_url: database.map(str::to_owned),
        extra_toml: format!("[metrics]\ntoken = \"{METRICS_TOKEN}\"\n"),
        ..ControlSpec::default()
    };
    let mut control = TestControlPlane::prepare(zlh, &spec);
    let admin_password = "benchmark admin password";
    {
        let store: std::sync::Arc<dyn Store> = match database {
            Some(url) => std::sync::Arc::new(zlh_control::db::PgStore::open(url).await?),
            None => std::sync::Arc::new(
                SqliteStore::open(&control.data.path().join("zlh.db").display().to_string()).await?,
            ),
        };
        let hash = zlh_control::auth::passwords::hash(admin_password).await;
        let admin = store
            .create_user("bench@example.com", &hash, Role::Admin, true, zlh_proto::time::now_ms())
            .await?;
        for (n, url) in urls.iter().enumerate() {
            let endpoint = zlh_control::registry::AgentEndpoint {
                url: Secret::new(url),
                secret: Secret::new(SECRET),
                ide: None,
            };
            let server = zlh_control::provision::ExternalServer {
                owner_id: admin.id,
                name: format!("sim-{n}"),
                kind: zlh_proto::api::ServerKind::Game,
                endpoint,
            };
            zlh_control::provision::record_external(store.as_ref(), server).await?;
        }
    }
    let started = Instant::now();
    control.launch().await;
    let mut others = Vec::new();
    for _ in 1..replicas {
        others.push(control.start_replica("127.0.0.1:0", &control.url).await);
    }
    let admin = control.login("bench@example.com", admin_password).await;
    let pids: Vec<u32> = std::iter::once(control.pid()).chain(others.iter().map(|r| r.pid())).collect();
    let urls: Vec<String> =
        std::iter::once(control.url.clone()).chain(others.iter().map(|r| r.url.clone())).collect();

    // Every server seen once, and (with replicas) divided among them.
    let mut first_round = None;
    while first_round.is_none() {
        let (_, servers) = control.call("GET", "/api/servers", Some(&admin.access_token), None).await;
        let seen = servers
            .as_array()
            .map_or(0, |s| s.iter().filter(|s| s["status"]["lastSeen"].is_string()).count());
        if seen == AGENTS && gauge_sum(&control, &urls, "zlh_servers_polled").await == AGENTS as f64 {
            first_round = Some(started.elapsed());
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(180), "only {seen} of {AGENTS} agents seen");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The measurement window: CPU over the whole window; status ages sampled every interval.
    let cpu_before: Vec<f64> = pids.iter().map(|pid| cpu_seconds(*pid)).collect();
    let postgres_before = database.map(|_| postgres_cpu_seconds());
    let polls_before = gauge_sum(&control, &urls, "zlh_agent_poll_seconds_count").await;
    let window_start = Instant::now();
    let mut ages = Vec::new();
    let mut list_ms = Vec::new();
    while window_start.elapsed() < WINDOW {
        tokio::time::sleep(Duration::from_secs(INTERVAL_SECS)).await;
        let asked = Instant::now();
        let (_, servers) = control.call("GET", "/api/servers", Some(&admin.access_token), None).await;
        list_ms.push(asked.elapsed().as_secs_f64() * 1000.0);
        let now = zlh_proto::time::now_ms() as u64;
        for server in servers.as_array().into_iter().flatten() {
            if let Some(seen) = server["status"]["lastSeen"].as_str() {
                ages.push(now.saturating_sub(zlh_testkit::parse_time_ms(seen)) as f64 / 1000.0);
            }
            anyhow::ensure!(
                server["status"]["unreachable"] == false,
                "an agent was unreachable: {}",
                server["status"]
            );
        }
    }
    let elapsed = window_start.elapsed().as_secs_f64();
    let cpu =
        pids.iter().zip(&cpu_before).map(|(pid, before)| (cpu_seconds(*pid) - before) / elapsed).collect();
    let postgres_cpu = postgres_before.map(|before| (postgres_cpu_seconds() - before) / elapsed);
    let polls_per_second =
        (gauge_sum(&control, &urls, "zlh_agent_poll_seconds_count").await - polls_before) / elapsed;
    let peak_mib = pids.iter().map(|pid| proc_status_mib(*pid, "VmHWM")).collect();
    let rss_mib = pids.iter().map(|pid| proc_status_mib(*pid, "VmRSS")).collect();
    drop(others);
    drop(control);
    for mut child in simulators {
        let _ = child.kill();
        let _ = child.wait();
    }
    ages.sort_by(f64::total_cmp);
    list_ms.sort_by(f64::total_cmp);
    Ok(Measured {
        first_round: first_round.unwrap_or_default(),
        polls_per_second,
        cpu,
        peak_mib,
        rss_mib,
        postgres_cpu,
        ages,
        list_ms: list_ms[list_ms.len() / 2],
    })
}

/// Starts `xtask sim-agents COUNT`; returns the child and the agents' URLs it printed.
fn spawn_simulator(count: usize) -> anyhow::Result<(std::process::Child, Vec<String>)> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["sim-agents", &count.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let urls: Vec<String> = std::io::BufReader::new(stdout).lines().take(count).collect::<Result<_, _>>()?;
    anyhow::ensure!(urls.len() == count, "the simulator started only {} agents", urls.len());
    Ok((child, urls))
}

/// `cargo xtask sim-agents COUNT`: serves COUNT simulated agents, printing each one's URL.
pub(crate) fn simulate(count: usize) -> anyhow::Result<()> {
    raise_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    runtime.block_on(async {
        let task = simulated_agents(count).await?;
        task.await?;
        anyhow::Ok(())
    })
}

/// One listener per simulated agent, all served by one router with canned answers.
async fn simulated_agents(count: usize) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let status = json!({
        "state": "running", "pid": 4242, "startedAt": "2026-01-01T00:00:00.000Z", "uptimeMs": 1000,
        "readyAt": "2026-01-01T00:00:01.000Z", "consecutiveCrashes": 0, "nextRestartAt": null,
        "lastCrash": null, "lastCrashClassification": null, "lastError": null, "provisioningComplete": true,
        "serverRoot": "/opt/zlh/server", "runtimeInstalled": null, "devProvisioned": null, "devReadyAt": null,
        "workspaceRoot": null, "codeServerInstalled": null, "codeServerRunning": null,
        "resources": {"memoryBytes": 1073741824u64, "cpuSeconds": 12.5},
        "agent": {"version": "bench", "pid": 1, "uptimeMs": 1000}
    })
    .to_string();
    let canned = |body: String| {
        move |headers: HeaderMap| {
            let body = body.clone();
            async move {
                let authorized = headers
                    .get("authorization")
                    .is_some_and(|v| v.as_bytes() == format!("Bearer {SECRET}").as_bytes());
                if authorized { (StatusCode::OK, body) } else { (StatusCode::UNAUTHORIZED, String::new()) }
            }
        }
    };
    let router = Router::new()
        .route("/health", get(canned(json!({"status": "ok", "version": "bench"}).to_string())))
        .route("/ready", get(canned(json!({"ready": true, "reason": "the server is running"}).to_string())))
        .route("/status", get(canned(status.clone())))
        .route(
            "/heartbeat",
            get(canned(format!(
                r#"{{"readiness":{{"ready":true,"reason":"the server is running"}},"status":{status}}}"#
            ))),
        );
    let mut listeners = Vec::with_capacity(count);
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        for _ in 0..count {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            writeln!(stdout, "http://{}", listener.local_addr()?)?;
            listeners.push(listener);
        }
        stdout.flush()?;
    }
    let task = tokio::spawn(async move {
        let mut servers = tokio::task::JoinSet::new();
        for listener in listeners {
            servers.spawn(axum::serve(listener, router.clone()).into_future());
        }
        while servers.join_next().await.is_some() {}
    });
    Ok(task)
}

/// The sum over replicas of a metric's samples (`zlh_servers_polled`, the poll counts).
async fn gauge_sum(control: &TestControlPlane, urls: &[String], metric: &str) -> f64 {
    let mut sum = 0.0;
    for url in urls {
        let sent = control.http.get(format!("{url}/metrics")).bearer_auth(METRICS_TOKEN).send().await;
        let Ok(text) = (match sent {
            Ok(response) => response.text().await,
            Err(e) => Err(e),
        }) else {
            continue;
        };
        sum += text
            .lines()
            .filter(|l| l.starts_with(metric))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    sum
}

/// CPU seconds of every PostgreSQL process on this machine.
fn postgres_cpu_seconds() -> f64 {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres")
        })
        .map(cpu_seconds)
        .sum()
}

/// Thousands of listeners and connections need more descriptors than the usual soft limit of
/// 1,024: raise it to the hard limit (the control plane does the same for itself).
fn raise_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
}
