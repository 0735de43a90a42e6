//! Servers in containers against servers as local processes: create-to-ready time, the idle
//! memory of one server, and 50 idle servers on one node (their memory, and what polling them
//! costs the control plane).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use zlh_testkit::{ApiUser, ControlSpec, TestControlPlane, procs};

use super::{cpu_seconds, median_p90, print_table, proc_status_mib};

const CREATES: usize = 10;
const IDLE_SERVERS: usize = 50;

async fn create(control: &TestControlPlane, user: &ApiUser, name: &str) -> anyhow::Result<Value> {
    let body =
        json!({"name": name, "type": "game", "template": "sample", "limits": {"memoryMb": 256, "cpus": 0.5}});
    let (status, server) = control.call("POST", "/api/servers", Some(&user.access_token), Some(body)).await;
    anyhow::ensure!(status == 201, "create: {server}");
    Ok(server)
}

/// Memory of a server: the resident memory of its processes (agent, holder, game; for docker
/// also init), summed alike for both drivers (shared pages of the one `zlh` binary counted in
/// each process, as `ps` would).
fn server_mib(control: &TestControlPlane, server: &Value) -> f64 {
    let pids: Vec<u32> = if control.docker {
        let name = format!("zlh-{}-{}", control.node, server["id"]);
        let (_, listed) = zlh_testkit::docker::docker(&["top", &name, "-eo", "pid"]);
        listed.lines().skip(1).filter_map(|line| line.trim().parse().ok()).collect()
    } else {
        procs::processes_under(&control.data.path().join(format!("servers/{}", server["id"])))
    };
    pids.into_iter().map(|pid| proc_status_mib(pid, "VmRSS")).sum()
}

pub(super) async fn run(zlh: &Path) -> anyhow::Result<()> {
    crate::docker::prepare(&crate::workspace().join("target"))?;
    let mut rows = Vec::new();
    for driver in ["local", "docker"] {
        let spec = ControlSpec {
            driver,
            poll_interval: "5s".into(),
            provision_timeout: "60s".into(),
            max_servers_per_user: IDLE_SERVERS as u32,
            ..ControlSpec::default()
        };
        let control = TestControlPlane::start(zlh, &spec).await;
        let user = control.register(&format!("bench-{driver}@example.com")).await;
        let mut times = Vec::new();
        let mut servers = Vec::new();
        for i in 0..CREATES {
            let began = Instant::now();
            servers.push(create(&control, &user, &format!("s{i}")).await?);
            times.push(began.elapsed().as_secs_f64() * 1000.0);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let one = server_mib(&control, &servers[0]);
        for i in CREATES..IDLE_SERVERS {
            servers.push(create(&control, &user, &format!("s{i}")).await?);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let all: f64 = servers.iter().map(|s| server_mib(&control, s)).sum();
        let before = cpu_seconds(control.pid());
        let window = Duration::from_secs(20);
        tokio::time::sleep(window).await;
        let cpu = (cpu_seconds(control.pid()) - before) / window.as_secs_f64() * 100.0;
        let rss = proc_status_mib(control.pid(), "VmRSS");
        let (median, p90) = median_p90(times);
        rows.push(vec![
            driver.to_owned(),
            format!("{median:.0} ms / {p90:.0} ms"),
            format!("{one:.1} MiB"),
            format!("{all:.0} MiB"),
            format!("{cpu:.1} % / {rss:.0} MiB"),
        ]);
    }
    print_table(
        "Servers as containers (docker) and as local processes (release build, sample game, poll every 5 s)",
        &[
            "driver",
            "create → ready, median / p90",
            "one idle server (agent + holder + game)",
            &format!("{IDLE_SERVERS} idle servers"),
            &format!("control plane with {IDLE_SERVERS}: CPU / RSS"),
        ],
        &rows,
    );
    Ok(())
}
