//! The poller against 10,000 simulated agents at a 5 s interval: the control plane's CPU and
//! peak memory, and how old the cached statuses are when read.
//!
//! The simulated agents run in child processes (`cargo xtask sim-agents`, 2,500 each, so no
//! process needs more file descriptors than the usual hard limit): one loopback listener per
//! agent, like distinct hosts, answering `/health`, `/ready` and `/status` with canned bodies.
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

use super::{print_table, proc_status_mib};

const AGENTS: usize = 10_000;
const AGENTS_PER_PROCESS: usize = 2_500;
const INTERVAL_SECS: u64 = 5;
const WINDOW: Duration = Duration::from_secs(60);
const SECRET: &str = "simulated-agent-secret-0123456789";

pub(super) async fn run(zlh: &Path) -> anyhow::Result<()> {
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
        ..ControlSpec::default()
    };
    let mut control = TestControlPlane::prepare(zlh, &spec);
    let admin_password = "benchmark admin password";
    {
        let store = SqliteStore::open(&control.data.path().join("zlh.db").display().to_string()).await?;
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
            zlh_control::provision::record_external(&store, server).await?;
        }
    }
    let started = Instant::now();
    control.launch().await;
    let admin = control.login("bench@example.com", admin_password).await;
    let pid = control.pid();

    // Every server seen once.
    let mut first_round = None;
    while first_round.is_none() {
        let (_, servers) = control.call("GET", "/api/servers", Some(&admin.access_token), None).await;
        let seen = servers
            .as_array()
            .map_or(0, |s| s.iter().filter(|s| s["status"]["lastSeen"].is_string()).count());
        if seen == AGENTS {
            first_round = Some(started.elapsed());
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(120), "only {seen} of {AGENTS} agents seen");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The measurement window: CPU over the whole window; status ages sampled every interval.
    let cpu_before = cpu_seconds(pid);
    let polls_before = polls_done(&control).await;
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
    let cpu = (cpu_seconds(pid) - cpu_before) / elapsed;
    let polls_per_second = (polls_done(&control).await - polls_before) / elapsed;
    let peak = proc_status_mib(pid, "VmHWM");
    let rss = proc_status_mib(pid, "VmRSS");
    drop(control);
    for mut child in simulators {
        let _ = child.kill();
        let _ = child.wait();
    }

    ages.sort_by(f64::total_cmp);
    let percentile = |q: f64| ages[((ages.len() - 1) as f64 * q).round() as usize];
    list_ms.sort_by(f64::total_cmp);
    print_table(
        &format!(
            "Poller: {AGENTS} agents every {INTERVAL_SECS} s (health + ready + status each), release build"
        ),
        &["measure", "value"],
        &[
            vec![
                "first heartbeat of every agent after start".into(),
                format!("{:.1} s", first_round.unwrap_or_default().as_secs_f64()),
            ],
            vec![
                "polls completed per second (3 requests each)".into(),
                format!("{polls_per_second:.0} (ideal {})", AGENTS as u64 / INTERVAL_SECS),
            ],
            vec!["control-plane CPU".into(), format!("{:.1} % of one core", cpu * 100.0)],
            vec!["control-plane memory: peak / now".into(), format!("{peak:.0} MiB / {rss:.0} MiB")],
            vec![
                "status age when read: p50 / p99 / max".into(),
                format!("{:.2} s / {:.2} s / {:.2} s", percentile(0.5), percentile(0.99), percentile(1.0)),
            ],
            vec![
                format!("GET /api/servers ({AGENTS} servers), median"),
                format!("{:.0} ms", list_ms[list_ms.len() / 2]),
            ],
        ],
    );
    Ok(())
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
        .route("/status", get(canned(status)));
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

async fn polls_done(control: &TestControlPlane) -> f64 {
    let text = control.http.get(format!("{}/metrics", control.url)).send().await.map(|r| r.text());
    let Ok(text) = (match text {
        Ok(future) => future.await,
        Err(e) => Err(e),
    }) else {
        return 0.0;
    };
    text.lines()
        .filter(|l| l.starts_with("zlh_agent_poll_seconds_count"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(") ").map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / rustix::param::clock_ticks_per_second() as f64
}

/// Thousands of listeners and connections need more descriptors than the usual soft limit of
/// 1,024: raise it to the hard limit (the control plane does the same for itself).
fn raise_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
}
