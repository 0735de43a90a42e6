//! Agent start-up time and idle memory.

use std::path::Path;
use std::time::Instant;

use zlh_testkit::{AgentSpec, TestAgent, procs};

use super::{median_p90, print_table, proc_status_mib};

const RUNS: usize = 15;

pub(super) async fn run(zlh: &Path) -> anyhow::Result<()> {
    let mut agent = TestAgent::start(zlh, &AgentSpec::default()).await;
    let mut listening = Vec::new();
    let mut healthy = Vec::new();
    for _ in 0..RUNS {
        agent.kill9();
        let began = Instant::now();
        agent.launch().await;
        listening.push(began.elapsed().as_secs_f64() * 1000.0);
        let response = agent.http.get(format!("{}/health", agent.url)).send().await?;
        anyhow::ensure!(response.status() == 200);
        healthy.push(began.elapsed().as_secs_f64() * 1000.0);
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let idle_rss = proc_status_mib(agent.pid(), "VmRSS");
    agent.start_and_wait().await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let busy_rss = proc_status_mib(agent.pid(), "VmRSS");
    let holder = procs::processes_under(agent.root.path()).into_iter().find(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("agent-holder"))
    });
    let holder_rss = holder.map_or(f64::NAN, |pid| proc_status_mib(pid, "VmRSS"));
    let binary_mib = std::fs::metadata(zlh)?.len() as f64 / (1 << 20) as f64;

    let (listen_median, listen_p90) = median_p90(listening);
    let (health_median, health_p90) = median_p90(healthy);
    print_table(
        "Agent start-up and memory (release build)",
        &["measure", "value"],
        &[
            vec![
                "spawn → listening, median / p90".into(),
                format!("{listen_median:.1} ms / {listen_p90:.1} ms"),
            ],
            vec![
                "spawn → first /health 200, median / p90".into(),
                format!("{health_median:.1} ms / {health_p90:.1} ms"),
            ],
            vec!["agent RSS, idle (no server)".into(), format!("{idle_rss:.1} MiB")],
            vec!["agent RSS, supervising a running server".into(), format!("{busy_rss:.1} MiB")],
            vec!["process holder RSS".into(), format!("{holder_rss:.1} MiB")],
            vec!["zlh binary size".into(), format!("{binary_mib:.1} MiB")],
        ],
    );
    Ok(())
}
