//! Power actions: every transition, conflicts, and the stop escalation.

use std::time::{Duration, Instant};

use serde_json::json;
use zlh_testkit::{AgentSpec, TestAgent, procs};

use crate::{SOON, zlh};

#[tokio::test]
async fn lifecycle_start_stop_restart() {
    let agent = TestAgent::start(zlh(), &AgentSpec::default()).await;
    let mut console = agent.console(None).await;
    assert_eq!(console.hello["state"], "stopped");

    let (code, body) = agent.post("/start", None).await;
    assert_eq!((code, body), (202, json!({"state": "starting"})));
    let running = agent.wait_for_state("running", SOON).await;
    let first_pid = running["pid"].as_u64().expect("pid");
    console.read_until("Done (", SOON).await;

    // Viewers see each transition as an event.
    for state in ["starting", "running"] {
        console.read_until_event(SOON, |e| e["type"] == "state" && e["state"] == state).await;
    }

    let (code, body) = agent.post("/restart", None).await;
    assert_eq!((code, body), (202, json!({"state": "stopping"})));
    let restarted = agent
        .wait_for_status("a new process", SOON, |s| s["state"] == "running" && s["pid"] != first_pid)
        .await;
    assert_eq!(restarted["consecutiveCrashes"], 0);
    assert!(restarted["lastCrash"].is_null(), "a restart is not a crash: {restarted}");

    let (code, body) = agent.post("/stop", None).await;
    assert_eq!((code, body), (202, json!({"state": "stopping"})));
    agent.wait_for_state("stopped", SOON).await;
    assert!(!procs::is_alive(first_pid as u32));
    console.read_until("Stopping the server", SOON).await;
    // Stopping a stopped server is a no-op, not an error.
    assert_eq!(agent.post("/stop", None).await, (200, json!({"state": "stopped"})));
    // A restart of a stopped server starts it.
    assert_eq!(agent.post("/restart", None).await.1["state"], "starting");
    agent.wait_for_state("running", SOON).await;
}

#[tokio::test]
async fn concurrent_power_actions_get_409_with_the_state() {
    let spec = AgentSpec { stop_timeout: "1s".into(), ..AgentSpec::with_game_args(&["--ignore-stop"]) };
    let agent = TestAgent::start(zlh(), &spec).await;

    let (first, second) = tokio::join!(agent.post("/start", None), agent.post("/start", None));
    let mut codes = [first.0, second.0];
    codes.sort();
    assert_eq!(codes, [202, 409], "{first:?} {second:?}");
    let conflict = if first.0 == 409 { first.1 } else { second.1 };
    assert_eq!(conflict["error"]["code"], "already_running");
    assert_eq!(conflict["error"]["state"], "starting");

    agent.wait_for_state("running", SOON).await;
    assert_eq!(agent.post("/stop", None).await.1["state"], "stopping");
    // The game ignores `stop`, so the stop is still under way: every action is refused
    // with the state, and none of them gets stuck.
    for path in ["/stop", "/start", "/restart"] {
        let (code, body) = agent.post(path, None).await;
        assert_eq!(code, 409, "{path}: {body}");
        assert_eq!(body["error"]["code"], "power_action_in_progress");
        assert_eq!(body["error"]["state"], "stopping");
    }
    let (code, body) = agent.post("/console/command", Some(json!({"command": "say hi"}))).await;
    assert_eq!((code, &body["error"]["state"]), (409, &json!("stopping")));
    // The escalation finishes the stop (SIGTERM after 1 s) and the server is stopped.
    agent.wait_for_state("stopped", SOON).await;
    assert_eq!(agent.post("/start", None).await.0, 202);
}

#[tokio::test]
async fn stop_escalates_to_sigterm_then_sigkill() {
    // The game ignores `stop`: SIGTERM after stop_timeout ends it (exit 143, like a JVM).
    let spec = AgentSpec {
        stop_timeout: "300ms".into(),
        term_timeout: "300ms".into(),
        ..AgentSpec::with_game_args(&["--ignore-stop"])
    };
    let agent = TestAgent::start(zlh(), &spec).await;
    agent.start_and_wait().await;
    let mut console = agent.console(None).await;
    let began = Instant::now();
    agent.post("/stop", None).await;
    agent.wait_for_state("stopped", SOON).await;
    assert!(began.elapsed() >= Duration::from_millis(300));
    console.read_until("ignores it", SOON).await;
    console.read_until("Stopping the server (SIGTERM)", SOON).await;
    agent.wait_for_log("SIGTERM", |l| l.contains("ignored its stop command; sending SIGTERM")).await;
    assert!(!agent.logs().iter().any(|l| l.contains("sending SIGKILL")));
    assert!(agent.status().await["lastCrash"].is_null(), "a stop is never a crash");

    // This one ignores SIGTERM as well: SIGKILL after term_timeout.
    let spec = AgentSpec {
        stop_timeout: "200ms".into(),
        term_timeout: "200ms".into(),
        ..AgentSpec::with_game_args(&["--ignore-stop", "--ignore-sigterm"])
    };
    let agent = TestAgent::start(zlh(), &spec).await;
    let pid = agent.start_and_wait().await["pid"].as_u64().expect("pid") as u32;
    let began = Instant::now();
    agent.post("/stop", None).await;
    agent.wait_for_state("stopped", SOON).await;
    assert!(began.elapsed() >= Duration::from_millis(400));
    assert!(!procs::is_alive(pid));
    agent.wait_for_log("SIGTERM", |l| l.contains("sending SIGTERM")).await;
    agent.wait_for_log("SIGKILL", |l| l.contains("sending SIGKILL")).await;
    assert!(agent.status().await["lastCrash"].is_null());
}

#[tokio::test]
async fn kill_ends_a_stop_that_takes_too_long_at_once() {
    // Minutes before SIGTERM would come: the owner kills it instead.
    let spec = AgentSpec {
        stop_timeout: "5m".into(),
        ..AgentSpec::with_game_args(&["--ignore-stop", "--ignore-sigterm"])
    };
    let agent = TestAgent::start(zlh(), &spec).await;
    let (status, refused) = agent.post("/kill", None).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("not_running")), "{refused}");
    let pid = agent.start_and_wait().await["pid"].as_u64().expect("pid") as u32;
    agent.post("/stop", None).await;
    agent.wait_for_state("stopping", SOON).await;
    let (status, accepted) = agent.post("/kill", None).await;
    assert_eq!((status, &accepted["state"]), (202, &serde_json::json!("stopping")), "{accepted}");
    agent.wait_for_state("stopped", SOON).await;
    assert!(!procs::is_alive(pid));
    assert!(agent.status().await["lastCrash"].is_null(), "a kill the owner asked for is no crash");
}

#[tokio::test]
async fn the_stop_command_typed_by_a_person_is_a_stop_not_a_crash() {
    let agent = TestAgent::start(zlh(), &AgentSpec::default()).await;
    agent.start_and_wait().await;
    agent.command("stop").await;
    agent.wait_for_state("stopped", SOON).await;

    agent.start_and_wait().await;
    let mut console = agent.console(None).await;
    console.type_keys("sto").await;
    console.type_keys("p\r").await;
    agent.wait_for_state("stopped", SOON).await;
    let status = agent.status().await;
    assert!(status["lastCrash"].is_null(), "{status}");
    assert_eq!(status["consecutiveCrashes"], 0);

    let (_, crashes) = agent.get("/crashes").await;
    assert_eq!(crashes["crashes"], json!([]));
}

#[tokio::test]
async fn the_last_decision_survives_an_agent_restart() {
    let mut agent = TestAgent::start(zlh(), &AgentSpec { autostart: true, ..AgentSpec::default() }).await;
    // A fresh agent with autostart starts its server.
    agent.wait_for_state("running", SOON).await;
    agent.post("/stop", None).await;
    agent.wait_for_state("stopped", SOON).await;
    agent.kill9();
    agent.launch().await;
    // Stopped by request: the new agent leaves it stopped.
    assert_eq!(agent.status().await["state"], "stopped");
}

#[tokio::test]
async fn a_stop_signal_template_stops_with_that_signal() {
    let spec = AgentSpec { stop: r#"{ signal = "SIGTERM" }"#.into(), ..AgentSpec::default() };
    let agent = TestAgent::start(zlh(), &spec).await;
    agent.start_and_wait().await;
    let mut console = agent.console(None).await;
    agent.post("/stop", None).await;
    agent.wait_for_state("stopped", SOON).await;
    console.read_until("Stopping the server (SIGTERM)", SOON).await;
}

#[tokio::test]
async fn a_program_that_cannot_start_is_an_error_with_the_reason() {
    let spec =
        AgentSpec { argv: Some(vec!["/nonexistent/java".into(), "-jar".into()]), ..AgentSpec::default() };
    let agent = TestAgent::start(zlh(), &spec).await;
    let (code, body) = agent.post("/start", None).await;
    assert_eq!(code, 500, "{body}");
    assert_eq!(body["error"]["code"], "start_failed");
    assert!(body["error"]["message"].as_str().expect("message").contains("/nonexistent/java"), "{body}");
    let status = agent.status().await;
    assert_eq!(status["state"], "error");
    assert!(status["lastError"].as_str().expect("lastError").contains("No such file"), "{status}");
}
