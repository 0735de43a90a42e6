//! The console: scrollback, exact resume, gaps, input, resize, many and stalled viewers.

use std::time::Duration;

use serde_json::json;
use zlh_testkit::{AgentSpec, ConsoleClient, TestAgent};

use crate::{SOON, zlh};

#[tokio::test]
async fn viewers_get_the_scrollback_then_resume_exactly() {
    let agent = TestAgent::start(zlh(), &AgentSpec::default()).await;
    agent.start_and_wait().await;
    agent.command("say one").await;
    let mut first = agent.console(None).await;
    assert_eq!(first.hello["start"], 0);
    first.read_until("[Server] one", SOON).await;
    assert!(first.text().contains("Starting minecraft server"), "scrollback from the start");
    agent.command("say two").await;
    first.read_until("[Server] two", SOON).await;
    let resume_at = first.next_offset;
    drop(first);

    agent.command("say three").await;
    let mut resumed = agent.console(Some(resume_at)).await;
    assert_eq!(resumed.hello["resumeFrom"], resume_at);
    resumed.read_until("[Server] three", SOON).await;
    // Exactly what was missed: nothing before the resume point, nothing twice.
    assert!(!resumed.text().contains("two"), "{}", resumed.text());
    assert_eq!(resumed.text().matches("[Server] three").count(), 1);
    assert!(resumed.events.is_empty(), "no gap: {:?}", resumed.events);

    // A resume point in the future reads as the end.
    let ahead = agent.console(Some(u64::MAX)).await;
    assert_eq!(ahead.hello["resumeFrom"], ahead.hello["end"]);
}

#[tokio::test]
async fn a_resume_point_that_fell_out_of_the_ring_gets_a_gap_marker() {
    let spec = AgentSpec { scrollback_bytes: 8192, ..AgentSpec::default() };
    let agent = TestAgent::start(zlh(), &spec).await;
    agent.start_and_wait().await;
    agent.command("flood 100000").await;
    let mut watcher = agent.console(None).await;
    watcher.read_until("Flood done", SOON).await;
    let mut late = agent.console(Some(0)).await;
    assert_eq!(late.hello["resumeFrom"], 0);
    let gap = late.read_until_event(SOON, |e| e["type"] == "gap").await;
    assert_eq!(gap["from"], 0);
    assert!(gap["to"].as_u64().expect("to") > 90_000, "{gap}");
    late.read_until("Flood done", SOON).await;
}

#[tokio::test]
async fn input_frames_and_resize_reach_the_pty() {
    let agent = TestAgent::start(zlh(), &AgentSpec::default()).await;
    agent.start_and_wait().await;
    let mut console = agent.console(None).await;
    console.read_until("Done (", SOON).await;
    console.type_keys("say typed\r").await;
    console.read_until("[Server] typed", SOON).await;
    console.send_json(json!({"type": "input", "data": "say as json\r"})).await;
    console.read_until("[Server] as json", SOON).await;
    console.send_json(json!({"type": "resize", "cols": 132, "rows": 43})).await;
    // Garbage is ignored, not fatal.
    console.send_json(json!({"type": "teleport"})).await;
    console.type_keys("size\r").await;
    console.read_until("43 132", SOON).await;
}

#[tokio::test]
async fn a_viewer_that_never_reads_does_not_slow_the_game_or_the_others() {
    let agent = TestAgent::start(zlh(), &AgentSpec::default()).await;
    agent.start_and_wait().await;
    let stalled = agent.console(None).await;
    let mut viewers = Vec::new();
    for _ in 0..8 {
        viewers.push(agent.console(None).await);
    }
    agent.command("flood 8000000").await;
    // Every reading viewer sees the flood end while the stalled one reads nothing at all.
    let readers = viewers.into_iter().map(|mut viewer| {
        tokio::spawn(async move {
            viewer.read_until("Flood done", Duration::from_secs(60)).await;
            viewer
        })
    });
    for reader in readers {
        let viewer = reader.await.expect("viewer");
        assert!(viewer.received.len() > 1_000_000);
    }
    // The stalled viewer, when it finally reads, was skipped ahead with a gap marker.
    let mut stalled = stalled;
    let gap = stalled.read_until_event(Duration::from_secs(30), |e| e["type"] == "gap").await;
    assert!(gap["to"].as_u64().expect("to") > gap["from"].as_u64().expect("from"));
    stalled.read_until("Flood done", SOON).await;
    assert_eq!(agent.status().await["state"], "running");
}

#[tokio::test]
async fn a_viewer_stalled_past_the_timeout_is_disconnected() {
    let spec = AgentSpec { viewer_stall_timeout: "300ms".into(), ..AgentSpec::default() };
    let agent = TestAgent::start(zlh(), &spec).await;
    agent.start_and_wait().await;
    let mut stalled = ConsoleClient::connect_with_small_window(&agent.url, &agent.secret).await;
    // Output until the viewer's socket and the agent's send buffer are full. On a busy machine
    // a flood outruns the viewer, which then skips ahead through the scrollback and is sent
    // only its last MiB: one flood may fit in the buffers, so there are more.
    let dropped = || agent.logs().iter().any(|l| l.contains("console viewer stalled; disconnected"));
    for _ in 0..20 {
        agent.command("flood 4000000").await;
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while !dropped() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if dropped() {
            break;
        }
    }
    assert!(dropped(), "the stalled viewer was never dropped");
    // What it still reads ends with the connection closing.
    while stalled.read_frame(SOON).await.is_some() {}
    assert_eq!(agent.status().await["state"], "running");
}
