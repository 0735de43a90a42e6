//! Console fan-out: the sample game floods its console as fast as it can while 0, 1 or 100
//! WebSocket viewers watch (one of them never reading). Does the game slow down? How much
//! memory does the agent need?

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use zlh_testkit::{AgentSpec, ConsoleClient, TestAgent};

use super::{print_table, proc_status_mib};

const FLOOD_BYTES: u64 = 64 << 20;

struct Scenario {
    name: &'static str,
    reading: usize,
    stalled: usize,
}

pub(super) async fn run(zlh: &Path) -> anyhow::Result<()> {
    let scenarios = [
        Scenario { name: "no viewers", reading: 0, stalled: 0 },
        Scenario { name: "1 viewer", reading: 1, stalled: 0 },
        Scenario { name: "1 viewer that never reads", reading: 0, stalled: 1 },
        Scenario { name: "100 viewers (1 never reads)", reading: 99, stalled: 1 },
    ];
    let bare = bare_pty_rate(zlh)?;
    let mut rows = vec![vec![
        "none: no agent, script(1) reads the PTY (the PTY's own limit)".to_owned(),
        format!("{bare:.0}"),
        "–".into(),
        "–".into(),
        "–".into(),
    ]];
    let mut baseline = None;
    for scenario in &scenarios {
        let (game_rate, viewer_rate, peak) = measure(zlh, scenario).await?;
        let baseline = *baseline.get_or_insert(game_rate);
        rows.push(vec![
            scenario.name.to_owned(),
            format!("{game_rate:.0}"),
            format!("{:.0} %", game_rate / baseline * 100.0),
            viewer_rate.map_or("–".into(), |r| format!("{r:.0}")),
            format!("{peak:.1}"),
        ]);
    }
    print_table(
        &format!("Console fan-out: the game writes {} MiB as fast as it can", FLOOD_BYTES >> 20),
        &["viewers", "game output MB/s", "vs no viewers", "slowest reader MB/s", "agent peak RSS MiB"],
        &rows,
    );
    Ok(())
}

/// The game's output rate on a PTY that `script(1)` reads straight to /dev/null: the most any
/// PTY-based supervisor could achieve on this machine.
fn bare_pty_rate(zlh: &Path) -> anyhow::Result<f64> {
    let stats = tempfile::NamedTempFile::new()?.into_temp_path();
    let command = format!(
        "echo flood {FLOOD_BYTES} | {} sample-game --ready-delay-ms 0 --stats-file {}",
        zlh.display(),
        stats.display()
    );
    let status = std::process::Command::new("script")
        .args(["-q", "-c", &command, "/dev/null"])
        .stdout(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "script(1) failed: {status}");
    let flood: Value = serde_json::from_str(&std::fs::read_to_string(&stats)?)?;
    Ok(flood["bytes"].as_f64().unwrap_or(0.0) / flood["seconds"].as_f64().unwrap_or(1.0) / 1e6)
}

async fn measure(zlh: &Path, scenario: &Scenario) -> anyhow::Result<(f64, Option<f64>, f64)> {
    let stats = tempfile::NamedTempFile::new()?.into_temp_path();
    let stats_path = stats.to_path_buf();
    std::fs::remove_file(&stats_path)?;
    let spec = AgentSpec {
        game_args: vec![
            "--ready-delay-ms".into(),
            "0".into(),
            "--stats-file".into(),
            stats_path.display().to_string(),
        ],
        ..AgentSpec::default()
    };
    let agent = TestAgent::start(zlh, &spec).await;
    agent.start_and_wait().await;
    let mut stalled = Vec::new();
    for _ in 0..scenario.stalled {
        stalled.push(agent.console(None).await);
    }
    let stop_at = Arc::new(AtomicU64::new(u64::MAX));
    let mut readers = Vec::new();
    for _ in 0..scenario.reading {
        let viewer = agent.console(None).await;
        readers.push(tokio::spawn(read_until(viewer, Arc::clone(&stop_at))));
    }
    agent.command(&format!("flood {FLOOD_BYTES}")).await;
    let flood = zlh_testkit::eventually("the flood to finish", Duration::from_secs(300), || async {
        let text = std::fs::read_to_string(&stats_path).ok()?;
        serde_json::from_str::<Value>(&text).ok()
    })
    .await;
    let game_rate = flood["bytes"].as_f64().unwrap_or(0.0) / flood["seconds"].as_f64().unwrap_or(1.0) / 1e6;
    let end = agent.console(None).await.hello["end"].as_u64().unwrap_or(0);
    stop_at.store(end, Ordering::Relaxed);
    let mut slowest: Option<f64> = None;
    for reader in readers {
        let rate = reader.await??;
        slowest = Some(slowest.map_or(rate, |s: f64| s.min(rate)));
    }
    let peak = proc_status_mib(agent.pid(), "VmHWM");
    drop(stalled);
    Ok((game_rate, slowest, peak))
}

/// Reads (and discards) console output until `stop_at`; returns the reader's MB/s, timed from
/// its first frame.
async fn read_until(mut viewer: ConsoleClient, stop_at: Arc<AtomicU64>) -> anyhow::Result<f64> {
    let start = viewer.next_offset;
    let mut began = None;
    loop {
        let stop = stop_at.load(Ordering::Relaxed);
        if viewer.next_offset >= stop {
            break;
        }
        match viewer.read_frame_keeping(Duration::from_millis(200), false).await {
            Some(()) => {
                began.get_or_insert_with(Instant::now);
            }
            None if stop == u64::MAX => {}
            None => anyhow::bail!("a viewer stopped receiving before the end of the flood"),
        }
    }
    let seconds = began.map_or(f64::INFINITY, |b| b.elapsed().as_secs_f64());
    Ok((viewer.next_offset - start) as f64 / seconds / 1e6)
}
