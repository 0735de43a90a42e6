//! The agent can die or be upgraded without its server noticing.

use std::time::Duration;

use rustix::process::Signal;
use zlh_testkit::{AgentSpec, TestAgent, procs};

use crate::{SOON, zlh};

#[tokio::test]
async fn kill_9_of_the_agent_leaves_the_server_running_and_a_new_agent_reattaches() {
    let mut agent = TestAgent::start(zlh(), &AgentSpec::with_game_args(&["--tick-ms", "20"])).await;
    let before = agent.start_and_wait().await;
    let pid = before["pid"].as_u64().expect("pid") as u32;
    let mut viewer = agent.console(None).await;
    viewer.read_until("Tick 3", SOON).await;
    let resume_at = viewer.next_offset;
    drop(viewer);

    agent.kill9();
    // Output keeps coming while no agent runs; the game does not notice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(procs::is_alive(pid));
    agent.launch().await;

    let after = agent.status().await;
    assert_eq!(after["state"], "running");
    assert_eq!(after["pid"], pid);
    assert_eq!(after["startedAt"], before["startedAt"]);
    assert!(after["uptimeMs"].as_u64() >= before["uptimeMs"].as_u64());
    // The console continues exactly where the old viewer left off: no gap, no repeats, and
    // the ticks printed while no agent ran are there.
    let mut resumed = agent.console(Some(resume_at)).await;
    let tick = |text: &str| {
        text.lines().filter_map(|l| l.split("Tick ").nth(1)?.trim().parse::<u64>().ok()).collect::<Vec<_>>()
    };
    resumed.read_until("Tick 25", SOON).await;
    assert!(resumed.events.iter().all(|e| e["type"] != "gap"), "{:?}", resumed.events);
    let ticks = tick(&resumed.text());
    assert_eq!(ticks.first(), Some(&4), "resumed right after Tick 3");
    assert!(ticks.windows(2).all(|w| w[1] == w[0] + 1), "no tick lost or repeated: {ticks:?}");
    // And it is fully supervised again.
    agent.command("say back").await;
    resumed.read_until("[Server] back", SOON).await;
    agent.post("/stop", None).await;
    agent.wait_for_state("stopped", SOON).await;
    assert!(!procs::is_alive(pid));
}

#[tokio::test]
async fn a_crash_while_no_agent_ran_is_recorded_by_the_next_agent() {
    let spec =
        AgentSpec { backoff: vec!["1h".into()], ..AgentSpec::with_game_args(&["--crash-after-ms", "500"]) };
    let mut agent = TestAgent::start(zlh(), &spec).await;
    let pid = agent.start_and_wait().await["pid"].as_u64().expect("pid") as u32;
    agent.kill9();
    zlh_testkit::eventually("the game to crash", SOON, || async { (!procs::is_alive(pid)).then_some(()) })
        .await;
    agent.launch().await;
    let status = agent.wait_for_state("crashed", SOON).await;
    let crash = &status["lastCrash"];
    assert_eq!(crash["exitCode"], 1);
    assert_eq!(crash["classification"], "nonzero_exit");
    assert!(crash["logTail"].to_string().contains("Scheduled crash"), "{crash}");
    assert!(crash["uptimeMs"].as_u64().expect("uptime") >= 500);
}

#[tokio::test]
async fn sigterm_to_the_agent_stops_the_server_gracefully_first() {
    let mut agent = TestAgent::start(zlh(), &AgentSpec::default()).await;
    let pid = agent.start_and_wait().await["pid"].as_u64().expect("pid") as u32;
    let status = agent.signal_and_wait(Signal::TERM, SOON).await;
    assert!(status.success(), "{status}");
    assert!(!procs::is_alive(pid));
    agent
        .wait_for_log("a graceful stop", |l| l.contains("server stopped") && l.contains("\"exit_code\":0"))
        .await;
    assert!(procs::processes_under(agent.root.path()).is_empty(), "no holder or game left");
    // The container comes back: the server was meant to run, so it runs again.
    agent.launch().await;
    agent.wait_for_state("running", SOON).await;
}

#[tokio::test]
async fn sigusr2_detaches_for_an_upgrade() {
    let mut agent = TestAgent::start(zlh(), &AgentSpec::default()).await;
    let pid = agent.start_and_wait().await["pid"].as_u64().expect("pid") as u32;
    assert!(agent.signal_and_wait(Signal::USR2, SOON).await.success());
    assert!(procs::is_alive(pid));
    agent.launch().await;
    let status = agent.status().await;
    assert_eq!((status["state"].as_str(), status["pid"].as_u64()), (Some("running"), Some(pid as u64)));
}

#[tokio::test]
async fn a_stop_interrupted_by_an_agent_crash_is_finished_by_the_next_agent() {
    let spec = AgentSpec { stop_timeout: "300ms".into(), ..AgentSpec::with_game_args(&["--ignore-stop"]) };
    let mut agent = TestAgent::start(zlh(), &spec).await;
    let pid = agent.start_and_wait().await["pid"].as_u64().expect("pid") as u32;
    agent.post("/stop", None).await;
    agent.kill9();
    agent.launch().await;
    agent.wait_for_state("stopped", SOON).await;
    assert!(!procs::is_alive(pid));
    assert!(agent.status().await["lastCrash"].is_null());
}

#[tokio::test]
async fn a_vanished_holder_is_a_crash_and_the_server_recovers() {
    let spec = AgentSpec { backoff: vec!["50ms".into()], ..AgentSpec::default() };
    let agent = TestAgent::start(zlh(), &spec).await;
    let pid = agent.start_and_wait().await["pid"].as_u64().expect("pid") as u32;
    let holder = procs::processes_under(agent.root.path())
        .into_iter()
        .find(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("agent-holder"))
        })
        .expect("a holder process");
    procs::kill9(holder);
    let status =
        agent.wait_for_status("a new run", SOON, |s| s["state"] == "running" && s["pid"] != pid).await;
    assert_eq!(status["lastCrash"]["classification"], "unexpected_exit");
    assert!(!procs::is_alive(pid), "the orphaned game was killed");
}
