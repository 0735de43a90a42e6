//! Crashes: classification, the exact backoff sequence and its reset, giving up, history.

use std::time::Duration;

use serde_json::Value;
use zlh_testkit::{AgentSpec, TestAgent, parse_time_ms};

use crate::{SOON, zlh};

fn ms(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

async fn crashes(agent: &TestAgent) -> Vec<Value> {
    let (code, body) = agent.get("/crashes").await;
    assert_eq!(code, 200);
    body["crashes"].as_array().expect("crashes").clone()
}

async fn wait_for_crash_count(agent: &TestAgent, count: usize) -> Vec<Value> {
    zlh_testkit::eventually(&format!("{count} crashes"), SOON, || async {
        let crashes = crashes(agent).await;
        (crashes.len() >= count).then_some(crashes)
    })
    .await
}

#[tokio::test]
async fn every_classification_is_recognised_with_its_log_tail() {
    let spec = AgentSpec { backoff: ms(&["50ms"]), max_consecutive_crashes: 100, ..AgentSpec::default() };
    let agent = TestAgent::start(zlh(), &spec).await;
    agent.start_and_wait().await;
    let cases = [
        ("crash", "nonzero_exit", Some(1), None, "sample crash"),
        ("exit0", "unexpected_exit", Some(0), None, "Leaving without being asked"),
        ("die", "unexpected_exit", None, Some(9), "Killing myself"),
        ("modcrash", "mod_or_plugin_error", Some(255), None, "coolmod"),
        ("missingclass", "missing_dependency", Some(1), None, "NoClassDefFoundError"),
        ("oom", "oom", Some(3), None, "java.lang.OutOfMemoryError"),
    ];
    for (index, (command, classification, code, signal, tail_line)) in cases.into_iter().enumerate() {
        agent.wait_for_state("running", SOON).await;
        agent.command(command).await;
        let crashes = wait_for_crash_count(&agent, index + 1).await;
        let crash = &crashes[index];
        assert_eq!(crash["classification"], classification, "{command}: {crash}");
        assert_eq!(crash["exitCode"].as_i64(), code.map(i64::from), "{command}: {crash}");
        assert_eq!(crash["signal"].as_i64(), signal.map(i64::from), "{command}: {crash}");
        let tail = crash["logTail"].as_array().expect("tail");
        assert!(tail.iter().any(|l| l.as_str().is_some_and(|l| l.contains(tail_line))), "{command}: {crash}");
        assert!(
            tail.iter().any(|l| l.as_str().is_some_and(|l| l.contains("Done ("))),
            "the tail holds the run's output"
        );
        assert!(!crash["reason"].as_str().expect("reason").is_empty());
        let status = agent.status().await;
        assert_eq!(status["lastCrashClassification"], classification);
    }
}

#[tokio::test]
async fn a_crash_before_the_ready_line_goes_from_starting_to_crashed() {
    let spec = AgentSpec {
        ready_pattern: Some("a line the game never prints".into()),
        backoff: ms(&["1h"]),
        ..AgentSpec::with_game_args(&["--crash-after-ms", "100"])
    };
    let agent = TestAgent::start(zlh(), &spec).await;
    assert_eq!(agent.post("/start", None).await.1["state"], "starting");
    let status = agent.wait_for_state("crashed", SOON).await;
    assert!(status["readyAt"].is_null());
    assert_eq!(status["lastCrash"]["classification"], "nonzero_exit");
    assert!(status["nextRestartAt"].is_string());
}

#[tokio::test]
async fn a_start_that_never_gets_ready_is_a_start_timeout_crash_with_its_log() {
    let spec = AgentSpec {
        ready_pattern: Some("a line the game never prints".into()),
        start_timeout: "1s".into(),
        backoff: ms(&["1h"]),
        ..AgentSpec::default()
    };
    let agent = TestAgent::start(zlh(), &spec).await;
    assert_eq!(agent.post("/start", None).await.1["state"], "starting");
    let status = agent.wait_for_state("crashed", SOON).await;
    let crash = &status["lastCrash"];
    assert_eq!(crash["classification"], "start_timeout", "{status}");
    assert!(crash["reason"].as_str().unwrap_or_default().starts_with("not ready within 1s"), "{crash}");
    assert!(!crash["logTail"].as_array().expect("tail").is_empty(), "{crash}");
    assert!(status["pid"].is_null(), "the game was stopped: {status}");
}

#[tokio::test]
async fn ready_waits_until_the_game_listens_on_its_port() {
    let ports = zlh_testkit::ports::PortRange::claim();
    let port = ports.first.to_string();
    // The ready line comes first, the port a second later: starting until then.
    let spec = AgentSpec {
        listen_ports: vec![ports.first],
        ..AgentSpec::with_game_args(&["--port", &port, "--bind-after-ready-ms", "1000"])
    };
    let agent = TestAgent::start(zlh(), &spec).await;
    agent.post("/start", None).await;
    agent.wait_for_log("the ready line", |line| line.contains("waiting for the game to listen")).await;
    assert_eq!(agent.status().await["state"], "starting", "said it is up, but does not listen yet");
    let running = agent.wait_for_state("running", SOON).await;
    assert!(running["readyAt"].is_string(), "{running}");
    agent.post("/stop", None).await;
    agent.wait_for_state("stopped", SOON).await;

    // A game that never listens where it was told to is not ready, however its log looks.
    let spec = AgentSpec {
        listen_ports: vec![ports.first + 1],
        start_timeout: "2s".into(),
        backoff: ms(&["1h"]),
        ..AgentSpec::default()
    };
    let agent = TestAgent::start(zlh(), &spec).await;
    agent.post("/start", None).await;
    let crashed = agent.wait_for_state("crashed", SOON).await;
    assert_eq!(crashed["lastCrash"]["classification"], "start_timeout", "{crashed}");
}

#[tokio::test]
async fn backoff_follows_the_exact_sequence_then_gives_up() {
    let spec = AgentSpec {
        backoff: ms(&["100ms", "200ms", "400ms"]),
        reset_after: "5s".into(),
        max_consecutive_crashes: 4,
        ..AgentSpec::with_game_args(&["--crash-after-ms", "20"])
    };
    let agent = TestAgent::start(zlh(), &spec).await;
    agent.post("/start", None).await;
    let status = agent.wait_for_state("error", SOON).await;
    let crashes = crashes(&agent).await;
    assert_eq!(crashes.len(), 4);
    let delays: Vec<Value> = crashes.iter().map(|c| c["restartDelayMs"].clone()).collect();
    assert_eq!(delays, [Value::from(100), Value::from(200), Value::from(400), Value::Null]);
    let consecutive: Vec<u64> = crashes.iter().map(|c| c["consecutive"].as_u64().expect("n")).collect();
    assert_eq!(consecutive, [1, 2, 3, 4]);
    // Each restart waited at least its backoff: the next run started no earlier.
    for pair in crashes.windows(2) {
        let crashed_at = parse_time_ms(pair[0]["at"].as_str().expect("at"));
        let next_started = parse_time_ms(pair[1]["at"].as_str().expect("at"))
            - pair[1]["uptimeMs"].as_u64().expect("uptime");
        let waited = next_started - crashed_at;
        let delay = pair[0]["restartDelayMs"].as_u64().expect("delay");
        assert!(waited >= delay, "waited {waited} ms, backoff {delay} ms");
    }
    assert_eq!(status["consecutiveCrashes"], 4);
    assert!(status["nextRestartAt"].is_null());
    let (_, ready) = agent.get("/ready").await;
    assert!(ready["reason"].as_str().expect("reason").contains("start it again"));

    // `error` waits for a person; a start clears the count and runs again.
    let (code, body) = agent.post("/start", None).await;
    assert_eq!((code, &body["state"]), (202, &Value::from("starting")));
    assert_eq!(agent.status().await["consecutiveCrashes"], 0);
}

#[tokio::test]
async fn a_long_enough_run_resets_the_backoff() {
    let spec = AgentSpec {
        backoff: ms(&["100ms", "200ms", "400ms"]),
        reset_after: "700ms".into(),
        max_consecutive_crashes: 4,
        ..AgentSpec::default()
    };
    let agent = TestAgent::start(zlh(), &spec).await;
    agent.start_and_wait().await;
    agent.command("crash").await;
    wait_for_crash_count(&agent, 1).await;
    agent.wait_for_state("running", SOON).await;
    agent.command("crash").await;
    let crashes = wait_for_crash_count(&agent, 2).await;
    assert_eq!(crashes[1]["restartDelayMs"], 200);
    assert_eq!(crashes[1]["consecutive"], 2);

    // This run lasts past reset_after: the count goes back to zero while it runs...
    agent.wait_for_state("running", SOON).await;
    agent.wait_for_status("the count reset", SOON, |s| s["consecutiveCrashes"] == 0).await;
    // ...and its crash starts the sequence over.
    agent.command("crash").await;
    let crashes = wait_for_crash_count(&agent, 3).await;
    assert_eq!(crashes[2]["consecutive"], 1);
    assert_eq!(crashes[2]["restartDelayMs"], 100);
    assert!(crashes[2]["uptimeMs"].as_u64().expect("uptime") >= 700);
}

#[tokio::test]
async fn crash_history_survives_an_agent_restart() {
    let spec = AgentSpec { backoff: ms(&["1h"]), ..AgentSpec::default() };
    let mut agent = TestAgent::start(zlh(), &spec).await;
    agent.start_and_wait().await;
    agent.command("modcrash").await;
    let before = wait_for_crash_count(&agent, 1).await;
    agent.kill9();
    agent.launch().await;
    assert_eq!(crashes(&agent).await, before);
    let status = agent.status().await;
    assert_eq!(status["lastCrash"], before[0]);
    assert_eq!(status["lastCrashClassification"], "mod_or_plugin_error");
}

/// A memory cgroup for one test, removed on drop (cgroup v1 here, v2 where that is mounted).
struct MemoryCgroup {
    dir: std::path::PathBuf,
}

impl MemoryCgroup {
    fn create(limit_bytes: u64) -> MemoryCgroup {
        let name = format!("zlh-test-{}", zlh_testkit::random_hex(6));
        let v1 = std::path::Path::new("/sys/fs/cgroup/memory");
        let (dir, limit_file) = if v1.join("memory.limit_in_bytes").exists() {
            (v1.join(&name), "memory.limit_in_bytes")
        } else {
            (std::path::Path::new("/sys/fs/cgroup").join(&name), "memory.max")
        };
        std::fs::create_dir(&dir).expect("this test needs a writable memory cgroup (run as root)");
        std::fs::write(dir.join(limit_file), limit_bytes.to_string()).expect("set the memory limit");
        let _ = std::fs::write(dir.join("memory.swappiness"), "0");
        MemoryCgroup { dir }
    }

    fn adopt(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).expect("move into the cgroup");
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        if let Ok(pids) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for pid in pids.lines().filter_map(|p| p.parse().ok()) {
                zlh_testkit::procs::kill9(pid);
            }
        }
        for _ in 0..200 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[tokio::test]
async fn a_kernel_oom_kill_is_classified_as_oom() {
    let spec = AgentSpec { backoff: ms(&["1h"]), ..AgentSpec::default() };
    let agent = TestAgent::start(zlh(), &spec).await;
    // The agent, and through it the holder and the game, live in a small memory cgroup,
    // like a container with a memory limit.
    let cgroup = MemoryCgroup::create(192 << 20);
    cgroup.adopt(agent.pid());
    agent.start_and_wait().await;
    agent.command("allocate 4096").await;
    let crashes = wait_for_crash_count(&agent, 1).await;
    let crash = &crashes[0];
    assert_eq!(crash["signal"], 9, "{crash}");
    assert_eq!(crash["classification"], "oom", "{crash}");
    assert!(crash["reason"].as_str().expect("reason").contains("OOM killer"), "{crash}");
    assert!(crash["logTail"].to_string().contains("Allocated"), "{crash}");
    // The agent itself survived the OOM in its cgroup.
    assert_eq!(agent.status().await["state"], "crashed");
    drop(agent);
    drop(cgroup);
}
