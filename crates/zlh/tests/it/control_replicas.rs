//! Several control planes on one PostgreSQL behind Debian's haproxy: they behave as one, a
//! replica killed mid-load loses nothing acknowledged and its agents are polled again within two
//! intervals, and a rolling restart loses no request and no console output.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use zlh_testkit::{ApiUser, ControlSpec, LoadBalancer, Replica, TestControlPlane, eventually};

use super::{SOON, zlh};

/// The poll interval of these tests: long enough to tell "within two intervals" from "never".
const INTERVAL_MS: i64 = 1000;
const METRICS_TOKEN: &str = "metrics-token-for-the-replica-tests";

/// Two replicas (on fixed ports, so a restarted one comes back where haproxy looks) on one
/// fresh database, behind haproxy; the control plane's helpers go through the balancer.
struct Cluster {
    control: TestControlPlane,
    database: String,
    replicas: Vec<Replica>,
    listens: Vec<String>,
    balancer: LoadBalancer,
}

impl Cluster {
    async fn start() -> Cluster {
        let database = zlh_testkit::postgres::fresh_database();
        let spec = ControlSpec {
            database_url: Some(database.clone()),
            poll_interval: format!("{INTERVAL_MS}ms"),
            drain_delay: Some("1s".into()),
            extra_toml: format!("[metrics]\ntoken = \"{METRICS_TOKEN}\"\n"),
            ..ControlSpec::default()
        };
        let mut control = TestControlPlane::prepare(zlh(), &spec);
        let port = LoadBalancer::free_port();
        let public = format!("http://127.0.0.1:{port}");
        let listens: Vec<String> =
            (0..2).map(|_| format!("127.0.0.1:{}", LoadBalancer::free_port())).collect();
        let mut replicas = Vec::new();
        for listen in &listens {
            replicas.push(control.start_replica(listen, &public).await);
        }
        let balancer =
            LoadBalancer::start(port, &listens.iter().map(String::as_str).collect::<Vec<_>>()).await;
        control.url = balancer.url.clone();
        Cluster { control, database, replicas, listens, balancer }
    }

    /// Restarts replica `i` gracefully on its address.
    async fn restart(&mut self, i: usize) {
        self.replicas[i].stop().await;
        self.replicas[i] = self.control.start_replica(&self.listens[i], &self.balancer.url).await;
    }

    /// How many servers each replica says it polls.
    async fn polled(&self) -> Vec<u64> {
        let mut counts = Vec::new();
        for replica in &self.replicas {
            let text = self
                .control
                .http
                .get(format!("{}/metrics", replica.url))
                .bearer_auth(METRICS_TOKEN)
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("text");
            let line = text.lines().find(|l| l.starts_with("zlh_servers_polled ")).expect("the gauge");
            counts.push(line.rsplit(' ').next().and_then(|n| n.parse().ok()).expect("a count"));
        }
        counts
    }

    /// When each server's agent last answered, as replica `at` sees it.
    async fn last_seen(&self, user: &ApiUser, ids: &[i64], at: usize) -> Vec<Option<i64>> {
        let mut seen = Vec::new();
        for id in ids {
            let path = format!("/api/servers/{id}/status");
            let (_, status) = self
                .control
                .call_at(&self.replicas[at].url, "GET", &path, Some(&user.access_token), None)
                .await;
            seen.push(status["lastSeen"].as_str().and_then(zlh_proto::time::parse_ms));
        }
        seen
    }
}

async fn create_servers(control: &TestControlPlane, user: &ApiUser, count: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for n in 0..count {
        ids.push(control.create_sample_server(user, &format!("world {n}")).await["id"].as_i64().expect("id"));
    }
    for id in &ids {
        control.wait_for_status(user, *id, "running", |s| s["state"] == "running").await;
    }
    ids
}

#[tokio::test]
async fn replicas_behind_a_load_balancer_behave_as_one_and_take_over_from_a_killed_one() {
    let mut cluster = Cluster::start().await;
    let control = &cluster.control;
    let (a, b) = (cluster.replicas[0].url.clone(), cluster.replicas[1].url.clone());
    let user = control.register("pat@example.com").await;
    let token = Some(user.access_token.as_str());

    // Signed in through the balancer, the token works on either replica.
    for replica in [&a, &b] {
        assert_eq!(control.call_at(replica, "GET", "/api/auth/me", token, None).await.0, 200);
    }
    // Failed guesses count across replicas: alternating between them does not double the tries.
    let wrong = json!({"email": "pat@example.com", "password": "not the password at all"});
    for n in 0..5 {
        let replica = if n % 2 == 0 { &a } else { &b };
        let (status, _) =
            control.call_at(replica, "POST", "/api/auth/login", None, Some(wrong.clone())).await;
        assert_eq!(status, 401, "guess {n}");
    }
    let (status, _) = control.call_at(&b, "POST", "/api/auth/login", None, Some(wrong)).await;
    assert_eq!(status, 429, "the sixth guess waits, whichever replica it reaches");

    let ids = create_servers(control, &user, 4).await;
    // Each agent is polled by exactly one replica, and either replica shows every status.
    eventually("every server polled once", SOON, || async {
        (cluster.polled().await.iter().sum::<u64>() == 4).then_some(())
    })
    .await;
    for at in 0..2 {
        eventually(&format!("replica {at} shows every status"), SOON, || async {
            cluster.last_seen(&user, &ids, at).await.iter().all(Option::is_some).then_some(())
        })
        .await;
    }

    // A console ticket issued by one replica is redeemed by the other, once.
    let id = ids[0];
    let ticket_path = format!("/api/servers/{id}/console/ticket");
    let (_, ticket) = control.call_at(&a, "POST", &ticket_path, token, None).await;
    let ticket = ticket["ticket"].as_str().expect("ticket").to_owned();
    let url =
        |base: &str| format!("{}/api/servers/{id}/console?ticket={ticket}", base.replacen("http", "ws", 1));
    let origin = [("Origin", control.url.as_str())];
    let mut console = zlh_testkit::ConsoleClient::open(&url(&b), &origin).await.expect("redeemed on b");
    assert!(zlh_testkit::ConsoleClient::open(&url(&a), &origin).await.is_err(), "spent");
    let say = |text: &str| json!({"command": format!("say {text}")});
    let command = format!("/api/servers/{id}/console/command");
    assert_eq!(control.call_at(&a, "POST", &command, token, Some(say("across replicas"))).await.0, 202);
    console.read_until("[Server] across replicas", SOON).await;

    // Power through one replica shows on the other.
    let state_at = |replica: &str, wanted: &'static str| {
        let path = format!("/api/servers/{}/status", ids[1]);
        let replica = replica.to_owned();
        let path_ref = path.clone();
        async move {
            eventually(&format!("{wanted} on {replica}"), SOON, || async {
                let (_, status) = control.call_at(&replica, "GET", &path_ref, token, None).await;
                (status["state"] == wanted).then_some(())
            })
            .await
        }
    };
    let (status, _) =
        control.call_at(&b, "POST", &format!("/api/servers/{}/stop", ids[1]), token, None).await;
    assert!(status == 200 || status == 202, "stop: {status}");
    state_at(&a, "stopped").await;
    let (status, _) =
        control.call_at(&a, "POST", &format!("/api/servers/{}/start", ids[1]), token, None).await;
    assert!(status == 200 || status == 202, "start: {status}");
    state_at(&b, "running").await;

    // Access taken back on one replica ends a console open on the other.
    let ops = control.register("ops@example.com").await;
    let invite = json!({"email": "ops@example.com", "permissions": ["console"]});
    let (status, member) =
        control.call_at(&a, "POST", &format!("/api/servers/{id}/members"), token, Some(invite)).await;
    assert_eq!(status, 201, "{member}");
    let mut watched = control.console_at(&b, &ops, id, None).await;
    let member = format!("/api/servers/{id}/members/{}", member["id"]);
    assert_eq!(control.call_at(&a, "DELETE", &member, token, None).await.0, 204);
    assert_eq!(watched.closed(SOON).await, Some(zlh_proto::console::CLOSE_SESSION_ENDED));

    // Writes acknowledged through the balancer while a replica is killed are all kept.
    let writing = Arc::new(AtomicBool::new(true));
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
    let writer = {
        let (writing, acknowledged) = (Arc::clone(&writing), Arc::clone(&acknowledged));
        let (http, url, token) = (control.http.clone(), control.url.clone(), user.access_token.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while writing.load(Ordering::Relaxed) {
                n += 1;
                let body = json!({"name": format!("w{n}"), "cron": "0 4 * * *", "steps": [{"action": "command", "payload": "say hi"}]});
                let sent = http
                    .post(format!("{url}/api/servers/{id}/schedules"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await;
                if let Ok(response) = sent
                    && response.status() == 201
                    && let Ok(schedule) = response.json::<Value>().await
                {
                    acknowledged.lock().expect("list").push(schedule["id"].as_i64().expect("id"));
                }
            }
        })
    };
    // The replica that polls the most servers dies without a word.
    let polled = cluster.polled().await;
    let victim = usize::from(polled[1] > polled[0]);
    let survivor = 1 - victim;
    let before = cluster.last_seen(&user, &ids, survivor).await;
    let killed_at = zlh_proto::time::now_ms();
    cluster.replicas[victim].kill9();
    // Every agent answers a poll again within two intervals of the kill.
    let retaken = eventually("every agent polled again", SOON, || async {
        let now = cluster.last_seen(&user, &ids, survivor).await;
        let all =
            now.iter().zip(&before).all(|(now, before)| now > before && now.is_some_and(|t| t > killed_at));
        all.then_some(now)
    })
    .await;
    let slowest = retaken.iter().flatten().map(|t| t - killed_at).max().expect("times");
    eprintln!("agents polled again at most {slowest} ms after the kill ({INTERVAL_MS} ms interval)");
    assert!(slowest <= 2 * INTERVAL_MS, "taken over in {slowest} ms, more than two intervals");
    // The console that was on the dead replica resumes through the survivor, without a gap.
    let mut resumed =
        control.console_at(&cluster.replicas[survivor].url, &user, id, Some(console.next_offset)).await;
    assert_eq!(
        control
            .call_at(&cluster.replicas[survivor].url, "POST", &command, token, Some(say("after the kill")))
            .await
            .0,
        202
    );
    resumed.read_until("[Server] after the kill", SOON).await;
    assert!(resumed.events.iter().all(|e| e["type"] != "gap"), "{:?}", resumed.events);
    tokio::time::sleep(Duration::from_millis(500)).await;
    writing.store(false, Ordering::Relaxed);
    writer.await.expect("writer");
    let kept: Vec<i64> = control
        .call("GET", &format!("/api/servers/{id}/schedules"), token, None)
        .await
        .1
        .as_array()
        .expect("schedules")
        .iter()
        .map(|s| s["id"].as_i64().expect("id"))
        .collect();
    let acknowledged = acknowledged.lock().expect("list").clone();
    assert!(acknowledged.len() > 5, "writes went on: {}", acknowledged.len());
    assert!(acknowledged.iter().all(|id| kept.contains(id)), "every acknowledged write is kept");
}

#[tokio::test]
async fn a_rolling_restart_loses_no_request_and_no_console_output() {
    let mut cluster = Cluster::start().await;
    let user = cluster.control.register("roll@example.com").await;
    let ids = create_servers(&cluster.control, &user, 2).await;
    let id = ids[0];
    let mut console = cluster.control.console(&user, id, Some(0)).await;

    // Requests go on through the balancer the whole time.
    let running = Arc::new(AtomicBool::new(true));
    let (answered, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(std::sync::Mutex::new(Vec::new())));
    let load = {
        let (running, answered, failed) = (Arc::clone(&running), Arc::clone(&answered), Arc::clone(&failed));
        let (http, url, token) =
            (cluster.control.http.clone(), cluster.control.url.clone(), user.access_token.clone());
        tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                let get = || http.get(format!("{url}/api/servers")).bearer_auth(&token).send();
                // Like a browser, a GET whose kept-alive connection to the balancer broke is sent
                // once more; an HTTP error is never retried here.
                let answer = match get().await {
                    Err(e) if e.is_connect() || e.is_request() => get().await,
                    answer => answer,
                };
                match answer {
                    Ok(response) if response.status() == 200 => {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(response) => failed.lock().expect("list").push(response.status().to_string()),
                    Err(e) => failed.lock().expect("list").push(e.to_string()),
                }
            }
        })
    };

    let command = format!("/api/servers/{id}/console/command");
    let token = Some(user.access_token.as_str());
    for (round, replica) in [0, 1, 0, 1].into_iter().enumerate() {
        cluster.restart(replica).await;
        let line = format!("[Server] after restart {round}");
        let say = json!({"command": format!("say after restart {round}")});
        assert_eq!(cluster.control.call("POST", &command, token, Some(say)).await.0, 202);
        // A console on the replica that stopped was closed with "restarting"; it resumes
        // through the balancer where it left off.
        while !console.text().contains(&line) {
            if console.read_frame(SOON).await.is_none() {
                assert_eq!(console.close_code, Some(zlh_proto::console::CLOSE_RESTARTING), "round {round}");
                let (received, events) =
                    (std::mem::take(&mut console.received), std::mem::take(&mut console.events));
                console = cluster.control.console(&user, id, Some(console.next_offset)).await;
                console.received.splice(0..0, received);
                console.events.splice(0..0, events);
            }
        }
    }
    let (status, _) = cluster
        .control
        .call("POST", &command, token, Some(json!({"command": "say after every restart"})))
        .await;
    assert_eq!(status, 202);
    console.read_until("[Server] after every restart", SOON).await;
    assert!(console.events.iter().all(|e| e["type"] != "gap"), "{:?}", console.events);
    running.store(false, Ordering::Relaxed);
    load.await.expect("load");
    let failed = failed.lock().expect("list").clone();
    eprintln!("{} requests answered during four restarts", answered.load(Ordering::Relaxed));
    assert!(failed.is_empty(), "requests lost during the rolling restart: {failed:?}");
    assert!(answered.load(Ordering::Relaxed) > 20, "requests went on during the restarts");
}

#[tokio::test]
async fn an_ide_link_from_one_replica_opens_once_on_another_and_its_session_works_on_both() {
    use zlh_control::db::Store;
    let cluster = Cluster::start().await;
    let upstream = zlh_testkit::EchoUpstream::start().await;
    let owner = cluster.control.register("dev@example.com").await;
    // A dev server whose code-server is the echo upstream, recorded while both replicas run:
    // they pick it up at their next beat.
    let store = zlh_control::db::PgStore::open(&cluster.database).await.expect("store");
    let endpoint = zlh_control::registry::AgentEndpoint {
        url: zlh_proto::Secret::new("http://127.0.0.1:9"),
        secret: zlh_proto::Secret::new("unused-agent-secret"),
        ide: Some(zlh_proto::Secret::new(upstream.address.clone())),
    };
    let server = zlh_control::provision::ExternalServer {
        owner_id: owner.id,
        name: "workshop".into(),
        kind: zlh_proto::api::ServerKind::Dev,
        endpoint,
    };
    let id = zlh_control::provision::record_external(&store, server).await.expect("server");
    assert!(store.server(id).await.expect("read").is_some());

    let (a, b) = (&cluster.replicas[0].url, &cluster.replicas[1].url);
    let (status, link) = cluster
        .control
        .call_at(a, "POST", &format!("/api/dev/{id}/ide-token"), Some(&owner.access_token), None)
        .await;
    assert_eq!(status, 200, "{link}");
    let token = link["url"].as_str().and_then(|u| u.split("token=").nth(1)).expect("token").to_owned();
    let host = format!("dev-{id}.localhost");
    let at = |replica: &str| {
        let address: std::net::SocketAddr = replica.trim_start_matches("http://").parse().expect("address");
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve(&host, address)
            .build()
            .expect("client");
        (client, format!("http://{host}:{}", address.port()))
    };
    let ((on_a, a_origin), (on_b, b_origin)) = (at(a), at(b));
    let opened = on_b.get(format!("{b_origin}/?token={token}")).send().await.expect("open on b");
    assert_eq!(opened.status(), 302, "issued on a, opened on b");
    let cookie =
        opened.headers()["set-cookie"].to_str().expect("cookie").split(';').next().expect("pair").to_owned();
    let again = on_a.get(format!("{a_origin}/?token={token}")).send().await.expect("again on a");
    assert_eq!(again.status(), 401, "spent, whichever replica sees it next");
    for (client, origin) in [(&on_a, &a_origin), (&on_b, &b_origin)] {
        let page =
            client.get(format!("{origin}/static/x.js")).header("cookie", &cookie).send().await.expect("page");
        assert_eq!(page.status(), 200, "the IDE session works on {origin}");
    }
}
