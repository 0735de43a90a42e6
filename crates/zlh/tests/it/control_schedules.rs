//! Schedules: run by the control plane on time and by hand, step by step, through its
//! restarts (missed times caught up or recorded as missed, interrupted runs marked failed).

use serde_json::{Value, json};
use zlh_control::db::{SqliteStore, Store};
use zlh_testkit::{ApiUser, ControlSpec, TestControlPlane, eventually};

use crate::zlh;

/// The runs of a schedule, newest first, once `check` holds for them.
async fn runs_when(
    control: &TestControlPlane,
    user: &ApiUser,
    path: &str,
    what: &str,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    eventually(what, crate::SOON * 3, async || {
        let (_, schedules) = control.call("GET", path, Some(&user.access_token), None).await;
        let runs: Vec<Value> =
            schedules.as_array()?.iter().flat_map(|s| s["runs"].as_array().cloned()).flatten().collect();
        check(&runs).then_some(runs)
    })
    .await
}

fn schedule(name: &str, cron: &str, enabled: bool, steps: Value) -> Value {
    json!({"name": name, "cron": cron, "enabled": enabled, "steps": steps})
}

#[tokio::test]
async fn schedules_run_their_steps_on_time_by_hand_and_across_restarts() {
    let mut control = TestControlPlane::start(
        zlh(),
        &ControlSpec { extra_toml: "[schedules]\ncatch_up = \"30m\"\n".into(), ..ControlSpec::default() },
    )
    .await;
    let user = control.register("planner@example.com").await;
    let id = control.create_sample_server(&user, "Planned").await["id"].as_i64().expect("id");
    control.wait_for_status(&user, id, "running", |s| s["state"] == "running").await;
    let token = Some(user.access_token.as_str());
    let base = format!("/api/servers/{id}/schedules");

    // What is refused, and why.
    for (body, says) in [
        (schedule("Bad", "every day", true, json!([{"action": "command", "payload": "say hi"}])), "cron"),
        (schedule("Empty", "0 4 * * *", true, json!([])), "1 to 20 steps"),
        (schedule("Blank", "0 4 * * *", true, json!([{"action": "command"}])), "needs the command"),
        (schedule("Slow", "0 4 * * *", true, json!([{"action": "stop", "delaySecs": 901}])), "at most 900 s"),
        (schedule(" ", "0 4 * * *", true, json!([{"action": "stop"}])), "name"),
    ] {
        let (status, answer) = control.call("POST", &base, token, Some(body)).await;
        assert_eq!((status, &answer["error"]["code"]), (400, &json!("invalid_schedule")), "{answer}");
        assert!(answer["error"]["message"].as_str().unwrap_or_default().contains(says), "{answer}");
    }
    let (status, _) = control
        .call("POST", &base, token, Some(schedule("Odd", "0 4 * * *", true, json!([{"action": "reboot"}]))))
        .await;
    assert_eq!(status, 400);

    // Every second, on time, with nobody watching; disabled, it has no next time.
    let ticking = schedule(
        "Tick",
        "* * * * * *",
        true,
        json!([{"action": "command", "payload": "say tick from a schedule"}]),
    );
    let (status, tick) = control.call("POST", &base, token, Some(ticking.clone())).await;
    assert_eq!(status, 201, "{tick}");
    assert!(
        tick["nextRunAt"].is_string() && tick["description"].as_str().is_some_and(|d| !d.is_empty()),
        "{tick}"
    );
    let mut console = control.console(&user, id, Some(0)).await;
    console.read_until("[Server] tick from a schedule", crate::SOON).await;
    runs_when(&control, &user, &base, "two runs that succeeded", |runs| {
        runs.iter().filter(|r| r["outcome"] == "succeeded").count() >= 2
    })
    .await;
    let tick_path = format!("{base}/{}", tick["id"]);
    let mut paused = ticking.clone();
    paused["enabled"] = json!(false);
    let (status, paused) = control.call("PUT", &tick_path, token, Some(paused)).await;
    assert_eq!((status, &paused["nextRunAt"]), (200, &Value::Null), "{paused}");

    // By hand, in order: a word to the players, stop, a named backup, start again.
    let nightly = schedule(
        "Nightly",
        "0 4 * * *",
        false,
        json!([
            {"action": "command", "payload": "say going down for a backup"},
            {"action": "stop", "delaySecs": 1},
            {"action": "backup", "payload": "nightly"},
            {"action": "start"},
        ]),
    );
    let (_, nightly) = control.call("POST", &base, token, Some(nightly)).await;
    let nightly_path = format!("{base}/{}", nightly["id"]);
    let (status, _) = control.call("POST", &format!("{nightly_path}/run"), token, None).await;
    assert_eq!(status, 202);
    console.read_until("[Server] going down for a backup", crate::SOON).await;
    let done = |runs: &[Value]| runs.iter().any(|r| r["detail"] == "done: 4 steps (run by hand)");
    let runs = runs_when(&control, &user, &base, "the nightly run", |runs| {
        done(runs) || runs.iter().any(|r| r["outcome"] == "failed")
    })
    .await;
    assert!(done(&runs), "{runs:?}");
    let (_, backups) = control.call("GET", &format!("/api/game/servers/{id}/backups"), token, None).await;
    assert_eq!(backups["data"][0]["name"], "nightly", "{backups}");
    control.wait_for_status(&user, id, "running again", |s| s["state"] == "running").await;

    // A stopped server: a command step fails, naming the step; a schedule that runs only while
    // the server does is skipped.
    control.call("POST", &format!("/api/servers/{id}/stop"), token, None).await;
    control.wait_for_status(&user, id, "stopped", |s| s["state"] == "stopped").await;
    let (_, failing) = control
        .call(
            "POST",
            &base,
            token,
            Some(schedule(
                "Say",
                "0 4 * * *",
                false,
                json!([{"action": "command", "payload": "say anyone?"}]),
            )),
        )
        .await;
    let mut only =
        schedule("Only", "0 4 * * *", false, json!([{"action": "command", "payload": "say only"}]));
    only["onlyWhenRunning"] = json!(true);
    let (_, only) = control.call("POST", &base, token, Some(only)).await;
    for one in [&failing, &only] {
        let (status, _) = control.call("POST", &format!("{base}/{}/run", one["id"]), token, None).await;
        assert_eq!(status, 202);
    }
    let runs = runs_when(&control, &user, &base, "a failed and a skipped run", |runs| {
        runs.iter().any(|r| r["outcome"] == "failed") && runs.iter().any(|r| r["outcome"] == "skipped")
    })
    .await;
    let failed = runs.iter().find(|r| r["outcome"] == "failed").expect("failed");
    assert!(failed["detail"].as_str().expect("detail").starts_with("step 1 (command):"), "{failed}");
    control.call("POST", &format!("/api/servers/{id}/start"), token, None).await;
    control.wait_for_status(&user, id, "running", |s| s["state"] == "running").await;

    // Across a restart: a time missed 10 minutes ago runs once, one missed 2 hours ago (longer
    // ago than catch_up) is recorded as missed, and a run the stopped control plane was in the
    // middle of is marked failed.
    let yearly = |name: &str| {
        schedule(name, "0 0 1 1 *", true, json!([{"action": "command", "payload": format!("say {name}")}]))
    };
    let (_, late) = control.call("POST", &base, token, Some(yearly("late"))).await;
    let (_, missed) = control.call("POST", &base, token, Some(yearly("missed"))).await;
    let waiting = schedule(
        "Waiting",
        "0 4 * * *",
        false,
        json!([{"action": "command", "payload": "say first", "delaySecs": 600}]),
    );
    let (_, waiting) = control.call("POST", &base, token, Some(waiting)).await;
    control.call("POST", &format!("{base}/{}/run", waiting["id"]), token, None).await;
    runs_when(&control, &user, &base, "the waiting run", |runs| {
        runs.iter().any(|r| r["outcome"] == "running")
    })
    .await;
    control.kill9();
    let store =
        SqliteStore::open(&control.data.path().join("zlh.db").display().to_string()).await.expect("store");
    let now = zlh_proto::time::now_ms();
    for (schedule, ago) in [(&late, 10 * 60_000), (&missed, 2 * 3_600_000)] {
        let id_of = schedule["id"].as_i64().expect("id");
        let due =
            store.schedule(id, id_of).await.expect("store").expect("schedule").next_run_at_ms.expect("next");
        assert!(store.advance_schedule(id_of, due, Some(now - ago)).await.expect("store"));
    }
    drop(store);
    control.launch().await;
    let user = control.login("planner@example.com", &user.password).await;
    let runs_of = async |schedule: &Value| {
        let path = format!("{base}/{}", schedule["id"]);
        eventually("its run", crate::SOON, async || {
            let (_, all) = control.call("GET", &base, Some(&user.access_token), None).await;
            let this = all.as_array()?.iter().find(|s| format!("{base}/{}", s["id"]) == path)?.clone();
            let runs = this["runs"].as_array()?.clone();
            runs.iter()
                .all(|r| r["outcome"] != "running")
                .then_some((this, runs))
                .filter(|(_, r)| !r.is_empty())
        })
        .await
    };
    let (late, runs) = runs_of(&late).await;
    assert_eq!(runs.len(), 1, "once: {runs:?}");
    assert_eq!(runs[0]["outcome"], "succeeded", "{runs:?}");
    assert!(runs[0]["detail"].as_str().expect("detail").contains("s late"), "{runs:?}");
    assert!(late["nextRunAt"].as_str().expect("next").ends_with("-01-01T00:00:00.000Z"), "{late}");
    let (_, runs) = runs_of(&missed).await;
    assert_eq!((runs.len(), &runs[0]["outcome"]), (1, &json!("missed")), "{runs:?}");
    let (_, runs) = runs_of(&waiting).await;
    assert_eq!(runs[0]["outcome"], "failed", "{runs:?}");
    assert_eq!(runs[0]["detail"], "the control plane stopped during this run");

    let (status, _) = control.call("DELETE", &nightly_path, Some(&user.access_token), None).await;
    assert_eq!(status, 204);
    let (status, _) =
        control.call("POST", &format!("{nightly_path}/run"), Some(&user.access_token), None).await;
    assert_eq!(status, 404);
}
