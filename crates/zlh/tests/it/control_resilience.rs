//! The control plane and its agents fail independently; nothing leaks.

use std::time::{Duration, Instant};

use serde_json::json;
use zlh_testkit::{ControlSpec, TestControlPlane, procs};

use crate::{SOON, zlh};

fn agent_pid(control: &TestControlPlane, id: i64) -> u32 {
    std::fs::read_to_string(control.data.path().join(format!("servers/{id}/agent.pid")))
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid")
}

#[tokio::test]
async fn a_dead_agent_turns_unreachable_within_two_polls_and_comes_back() {
    let spec = ControlSpec { poll_interval: "300ms".into(), ..ControlSpec::default() };
    let control = TestControlPlane::start(zlh(), &spec).await;
    let user = control.register("kim@example.com").await;
    let server = control.create_sample_server(&user, "Sturdy").await;
    let id = server["id"].as_i64().expect("id");
    let game_pid = control.game_pid(id);
    let started = server["status"]["detail"]["startedAt"].clone();
    control.wait_for_status(&user, id, "a heartbeat", |s| s["lastSeen"].is_string()).await;

    procs::kill9(agent_pid(&control, id));
    let killed = Instant::now();
    let down = control.wait_for_status(&user, id, "unreachable", |s| s["unreachable"] == true).await;
    assert!(killed.elapsed() <= Duration::from_millis(2 * 300 + 300), "took {:?}", killed.elapsed());
    assert_eq!(down["state"], "running", "the last known state stays");
    assert_eq!(down["ready"], false);
    // Lists degrade instead of failing.
    let (status, list) = control.call("GET", "/api/servers", Some(&user.access_token), None).await;
    assert_eq!((status, &list[0]["status"]["unreachable"]), (200, &json!(true)));
    // Power calls say what is wrong, without a 401 or the agent's address.
    let (status, body) =
        control.call("POST", &format!("/api/servers/{id}/stop"), Some(&user.access_token), None).await;
    assert_eq!((status, &body["error"]["code"]), (502, &json!("agent_unreachable")), "{body}");

    // The driver revives the agent; it reattaches to the game, which never stopped.
    let back = control
        .wait_for_status(&user, id, "back", |s| s["unreachable"] == false && s["state"] == "running")
        .await;
    assert_eq!(back["detail"]["startedAt"], started, "the same run of the game");
    assert_eq!(control.game_pid(id), game_pid);
}

#[tokio::test]
async fn restarting_the_control_plane_stops_no_server() {
    let mut control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    let user = control.register("lee@example.com").await;
    let server = control.create_sample_server(&user, "Forever").await;
    let id = server["id"].as_i64().expect("id");
    let game_pid = control.game_pid(id);
    let agent = agent_pid(&control, id);

    control.kill9();
    assert!(procs::is_alive(agent) && procs::is_alive(game_pid));
    control.launch().await;

    // Same tokens (the signing key persisted), same server, same processes, fresh status.
    let restarted_at = zlh_proto::time::format_ms(zlh_proto::time::now_ms());
    let status = control
        .wait_for_status(&user, id, "a heartbeat after the restart", |s| {
            s["lastSeen"].as_str() > Some(restarted_at.as_str())
        })
        .await;
    assert_eq!(status["state"], "running");
    assert_eq!(control.game_pid(id), game_pid);
    assert_eq!(status["detail"]["startedAt"], server["status"]["detail"]["startedAt"]);
    assert_eq!(agent_pid(&control, id), agent, "adopted, not restarted");
    let mut console = control.console(&user, id, None).await;
    console.read_until("Done (", SOON).await;
}

#[tokio::test]
async fn agent_addresses_and_secrets_reach_no_browser_and_no_log() {
    let control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    let user = control.register("max@example.com").await;
    let token = Some(user.access_token.as_str());
    let server = control.create_sample_server(&user, "Quiet").await;
    let id = server["id"].as_i64().expect("id");
    let (address, secret) = control.agent_endpoint(id);
    let port = address.rsplit(':').next().expect("port").to_owned();

    let mut bodies = vec![server.to_string()];
    for (method, path, body) in [
        ("GET", format!("/api/servers/{id}"), None),
        ("GET", "/api/servers".to_owned(), None),
        ("GET", format!("/api/servers/{id}/status"), None),
        ("GET", format!("/api/servers/{id}/crashes"), None),
        ("POST", format!("/api/servers/{id}/start"), None),
        ("POST", format!("/api/servers/{id}/console/command"), Some(json!({"command": "say a\nb"}))),
        ("GET", "/api/openapi.json".to_owned(), None),
    ] {
        bodies.push(control.call(method, &path, token, body).await.1.to_string());
    }
    let mut console = control.console(&user, id, None).await;
    console.read_until("Done (", SOON).await;
    bodies.push(console.text());
    bodies.push(console.hello.to_string());

    // An agent that refuses our secret is a 502, never a 401 that would sign the user out.
    let config_path = control.data.path().join(format!("servers/{id}/agent.toml"));
    let config = std::fs::read_to_string(&config_path).expect("config");
    std::fs::write(&config_path, config.replace(&secret, "a-different-secret-0123456789")).expect("write");
    procs::kill9(agent_pid(&control, id));
    let refused =
        zlh_testkit::eventually("the revived agent to refuse us", Duration::from_secs(15), || async {
            let (status, body) = control.call("POST", &format!("/api/servers/{id}/start"), token, None).await;
            (body["error"]["code"] == "agent_auth_failed").then_some((status, body))
        })
        .await;
    assert_eq!(refused.0, 502);
    bodies.push(refused.1.to_string());

    for body in &bodies {
        assert!(
            !body.contains(&secret) && !body.contains(&address) && !body.contains(&format!(":{port}")),
            "leak in {body}"
        );
    }
    let control_logs = control.logs().join("\n");
    assert!(
        !control_logs.contains(&secret) && !control_logs.contains(&address),
        "leak in the control plane's log"
    );
    assert!(!control.agent_logs().contains(&secret), "leak in an agent's log");
}

#[tokio::test]
async fn metrics_and_the_api_document_are_served() {
    let spec = ControlSpec {
        extra_toml: "[metrics]\ntoken = \"scraper-token-0123\"\n".into(),
        ..ControlSpec::default()
    };
    let control = TestControlPlane::start(zlh(), &spec).await;
    let user = control.register("ned@example.com").await;
    let server = control.create_sample_server(&user, "Measured").await;
    let id = server["id"].as_i64().expect("id");
    control.wait_for_status(&user, id, "a heartbeat", |s| s["lastSeen"].is_string()).await;
    control.call("GET", "/api/servers/999/status", Some(&user.access_token), None).await;

    // Only a scraper with the token reads them: not the public, not a customer.
    let scrape = async |token: &str| {
        let answer = control
            .http
            .get(format!("{}/metrics", control.url))
            .bearer_auth(token)
            .send()
            .await
            .expect("metrics");
        (answer.status().as_u16(), answer.text().await.expect("text"))
    };
    assert_eq!(scrape("wrong").await.0, 401);
    assert_eq!(scrape(&user.access_token).await.0, 401);
    let (status, metrics) = scrape("scraper-token-0123").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"zlh_http_requests_total{method="POST",route="/api/servers",status="201"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"route="/api/servers/{id}/status",status="404""#), "{metrics}");
    assert!(metrics.contains(r#"zlh_agents{state="running"} 1"#), "{metrics}");
    assert!(metrics.contains("zlh_agent_poll_seconds_bucket"), "{metrics}");
    assert!(!metrics.contains("scraper-token"), "the token is never shown");

    let (status, document) = control.call("GET", "/api/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert!(document["openapi"].as_str().is_some_and(|v| v.starts_with('3')));
    assert!(
        document["components"]["schemas"]["ServerView"].is_object(),
        "schemas come from the handlers' types"
    );
    assert!(document["paths"]["/api/servers/{id}/start"]["post"].is_object());
}

#[tokio::test]
async fn metrics_are_off_until_the_operator_sets_a_token() {
    let control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    let answer = control.http.get(format!("{}/metrics", control.url)).send().await.expect("metrics");
    assert_eq!(answer.status(), 404);
}
