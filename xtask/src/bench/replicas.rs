//! Several control planes on one PostgreSQL (the tests' server: Debian's, with fsync off).
//!
//! API requests per second (`GET /api/servers`, an authenticated read of the store and the
//! status cache) with `wrk`: straight to one replica, through Debian's haproxy to one, and
//! through haproxy to two. Then the poller's 10,000 simulated agents with one replica and with
//! two: each replica's CPU and PostgreSQL's own.

use std::path::Path;

use zlh_testkit::{ControlSpec, LoadBalancer, TestControlPlane};

use super::poller::{AGENTS, INTERVAL_SECS};
use super::print_table;

pub(super) async fn run(zlh: &Path) -> anyhow::Result<()> {
    crate::e2e::ensure_debian_packages(&["wrk", "haproxy"])?;
    let server = crate::postgres::prepare(&crate::e2e::target_dir())?;

    // The API, on a host with a few servers' worth of rows.
    let spec = ControlSpec {
        database_url: Some(zlh_testkit::postgres::fresh_database_on(&server)),
        ..ControlSpec::default()
    };
    let control = TestControlPlane::start(zlh, &spec).await;
    let user = control.register("bench@example.com").await;
    let second = control.start_replica("127.0.0.1:0", &control.url).await;
    let address = |url: &str| url.trim_start_matches("http://").to_owned();
    let one = LoadBalancer::start(LoadBalancer::free_port(), &[&address(&control.url)]).await;
    let two =
        LoadBalancer::start(LoadBalancer::free_port(), &[&address(&control.url), &address(&second.url)])
            .await;
    let mut rows = Vec::new();
    for (name, url) in [
        ("one replica, straight", &control.url),
        ("haproxy → one replica", &one.url),
        ("haproxy → two replicas", &two.url),
    ] {
        let (requests, p99) = wrk(&format!("{url}/api/servers"), &user.access_token)?;
        rows.push(vec![name.to_owned(), format!("{requests:.0}"), format!("{p99:.2} ms")]);
    }
    drop((one, two, second, control));
    print_table(
        "Control planes on PostgreSQL: GET /api/servers (wrk -t2 -c32 -d10s, keep-alive)",
        &["path", "requests/s", "p99"],
        &rows,
    );

    // The poller, its agents divided among the replicas.
    let mut rows = Vec::new();
    for replicas in [1, 2] {
        let database = zlh_testkit::postgres::fresh_database_on(&server);
        let measured = super::poller::measure(zlh, Some(&database), replicas).await?;
        let cpu: Vec<String> = measured.cpu.iter().map(|c| format!("{:.0} %", c * 100.0)).collect();
        let peak: Vec<String> = measured.peak_mib.iter().map(|m| format!("{m:.0}")).collect();
        rows.push(vec![
            replicas.to_string(),
            cpu.join(" + "),
            format!("{:.0} %", measured.postgres_cpu.unwrap_or(f64::NAN) * 100.0),
            format!("{} MiB", peak.join(" + ")),
            measured.ages(),
        ]);
    }
    print_table(
        &format!("Poller on PostgreSQL: {AGENTS} agents every {INTERVAL_SECS} s, on one replica and on two"),
        &[
            "replicas",
            "CPU of each replica (one core)",
            "PostgreSQL CPU",
            "peak memory",
            "status age p50 / p99 / max",
        ],
        &rows,
    );
    Ok(())
}

/// Requests per second and p99 latency (ms) of `wrk` against `url` with a bearer token.
fn wrk(url: &str, token: &str) -> anyhow::Result<(f64, f64)> {
    let output = std::process::Command::new("wrk")
        .args(["-t2", "-c32", "-d10s", "--latency", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(url)
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(!text.contains("Non-2xx"), "wrk saw failed requests:\n{text}");
    let requests = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no Requests/sec in wrk's output:\n{text}"))?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(str::trim)
        .and_then(|v| match v.strip_suffix("ms") {
            Some(ms) => ms.parse::<f64>().ok(),
            None => v.strip_suffix("us").and_then(|us| us.parse::<f64>().ok()).map(|us| us / 1000.0),
        })
        .ok_or_else(|| anyhow::anyhow!("no p99 in wrk's output:\n{text}"))?;
    Ok((requests, p99))
}
