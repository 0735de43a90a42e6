//! The agent's HTTP contract: authentication, readiness, and bad input.

use serde_json::json;
use zlh_testkit::{AgentSpec, TestAgent};

use crate::{SOON, zlh};

#[tokio::test]
async fn health_is_open_and_everything_else_needs_the_secret() {
    let agent = TestAgent::start(zlh(), &AgentSpec::default()).await;
    let http = reqwest::Client::new();

    let health = http.get(format!("{}/health", agent.url)).send().await.expect("health");
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<serde_json::Value>().await.expect("json")["status"], "ok");

    let wrong_secret = "wrong-secret-that-must-not-be-logged";
    for (path, method) in
        [("/status", "GET"), ("/ready", "GET"), ("/start", "POST"), ("/no-such-route", "GET")]
    {
        let method: reqwest::Method = method.parse().expect("method");
        let missing =
            http.request(method.clone(), format!("{}{path}", agent.url)).send().await.expect("send");
        assert_eq!(missing.status(), 401, "{path} without a secret");
        let body: serde_json::Value = missing.json().await.expect("json");
        assert_eq!(body["error"]["code"], "unauthorized");
        let wrong = http
            .request(method, format!("{}{path}", agent.url))
            .bearer_auth(wrong_secret)
            .send()
            .await
            .expect("send");
        assert_eq!(wrong.status(), 401, "{path} with a wrong secret");
    }
    // The refusals are logged, without what was presented and without the real secret.
    agent
        .wait_for_log("a refusal", |l| {
            l.contains("agent secret missing or wrong") && l.contains("\"credentials\":\"wrong\"")
        })
        .await;
    let logs = agent.logs();
    assert!(logs.iter().all(|line| !line.contains(wrong_secret) && !line.contains(&agent.secret)));
    // The server never ran, so nothing was started by an unauthenticated POST /start.
    assert_eq!(agent.status().await["state"], "stopped");
}

#[tokio::test]
async fn ready_is_semantic() {
    let spec = AgentSpec { game_args: vec!["--ready-delay-ms".into(), "400".into()], ..AgentSpec::default() };
    let agent = TestAgent::start(zlh(), &spec).await;
    let (_, ready) = agent.get("/ready").await;
    assert_eq!(ready, json!({"ready": false, "reason": "the server is stopped"}));

    let (code, body) = agent.post("/start", None).await;
    assert_eq!((code, &body["state"]), (202, &json!("starting")));
    // The process runs, but the ready line has not appeared yet.
    let (_, ready) = agent.get("/ready").await;
    assert_eq!(ready["ready"], false);
    assert!(ready["reason"].as_str().expect("reason").contains("starting"));

    let status = agent.wait_for_state("running", SOON).await;
    let (_, ready) = agent.get("/ready").await;
    assert_eq!(ready, json!({"ready": true, "reason": "the server is running"}));
    assert!(status["readyAt"].is_string() && status["pid"].is_u64() && status["uptimeMs"].is_u64());
    assert!(status["resources"]["memoryBytes"].as_u64().expect("memory") > 0);
    // The fields of later work exist (null), so clients can rely on the shape.
    for field in [
        "runtimeInstalled",
        "devProvisioned",
        "devReadyAt",
        "workspaceRoot",
        "codeServerInstalled",
        "codeServerRunning",
        "lastCrash",
        "lastCrashClassification",
    ] {
        assert!(status.get(field).is_some(), "status lacks {field}: {status}");
    }
    assert_eq!(status["provisioningComplete"], true);
}

#[tokio::test]
async fn bad_input_gets_clear_4xx_errors() {
    let agent = TestAgent::start(zlh(), &AgentSpec::default()).await;
    agent.start_and_wait().await;
    let post = |path: &'static str| agent.request(reqwest::Method::POST, path);
    let expect = |code: u16, error: &'static str| {
        move |(status, body): (u16, serde_json::Value)| {
            assert_eq!(status, code, "{body}");
            assert_eq!(body["error"]["code"], error, "{body}");
            assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        }
    };
    let send = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        (status, response.json::<serde_json::Value>().await.expect("json error body"))
    };

    expect(404, "not_found")(agent.get("/nowhere").await);
    expect(405, "method_not_allowed")(send(agent.request(reqwest::Method::DELETE, "/status")).await);
    expect(400, "invalid_json")(
        send(post("/console/command").header("content-type", "application/json").body("{\"command\": "))
            .await,
    );
    expect(400, "invalid_json")(send(post("/console/command").json(&json!({"cmd": "say hi"}))).await);
    expect(415, "unsupported_media_type")(send(post("/console/command").body("say hi")).await);
    let huge = json!({ "command": "x".repeat(200 * 1024) });
    expect(413, "payload_too_large")(send(post("/console/command").json(&huge)).await);
    expect(400, "invalid_command")(agent.post("/console/command", Some(json!({"command": "  "}))).await);
    expect(400, "invalid_command")(
        agent.post("/console/command", Some(json!({"command": "say a\nstop"}))).await,
    );
    expect(400, "invalid_command")(
        agent.post("/console/command", Some(json!({"command": "x".repeat(2000)}))).await,
    );
    expect(400, "bad_request")(agent.get("/console?since=-5").await);
    expect(400, "bad_request")(agent.get("/console").await);

    // None of it hurt the server or the agent.
    assert_eq!(agent.status().await["state"], "running");
    let (_, stopped) = agent.post("/stop", None).await;
    assert_eq!(stopped["state"], "stopping");
    agent.wait_for_state("stopped", SOON).await;
    expect(409, "not_running")(agent.post("/console/command", Some(json!({"command": "say hi"}))).await);
}

#[tokio::test]
async fn the_game_never_sees_the_agent_secret() {
    let secret = format!("env-secret-{}", zlh_testkit::random_hex(12));
    let spec = AgentSpec {
        env: vec![("ZLH_AGENT_SECRET".into(), secret.clone())],
        ..AgentSpec { game_args: vec!["--ready-delay-ms".into(), "0".into()], ..AgentSpec::default() }
    };
    let mut agent = TestAgent::start(zlh(), &spec).await;
    // The override took effect: the file's secret no longer opens the agent.
    assert_eq!(agent.get("/status").await.0, 401);
    agent.secret = secret.clone();
    let pid = agent.start_and_wait().await["pid"].as_u64().expect("pid");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    let environ = String::from_utf8_lossy(&environ);
    assert!(environ.contains("TERM=xterm-256color"), "{environ}");
    assert!(!environ.contains(&secret) && !environ.contains("ZLH_AGENT"), "{environ}");
    let config = std::fs::read_to_string(agent.root.path().join("agent.toml")).expect("config");
    let file_secret = config.lines().find_map(|l| l.strip_prefix("secret = ")).expect("secret line");
    assert!(!environ.contains(file_secret.trim_matches('"')));
}

#[tokio::test]
async fn an_upload_that_breaks_off_writes_nothing_and_says_so() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let agent = TestAgent::start(zlh(), &AgentSpec::default()).await;
    let address = agent.url.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.expect("connect");
    let head = format!(
        "PUT /files/content?path=partial.bin HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Length: 100000\r\n\r\n",
        agent.secret
    );
    socket.write_all(head.as_bytes()).await.expect("head");
    socket.write_all(&[7u8; 1000]).await.expect("part of the body");
    // The client stops sending: the agent sees the body end early.
    socket.shutdown().await.expect("half-close");
    let mut answer = String::new();
    let read = tokio::time::timeout(crate::SOON, socket.read_to_string(&mut answer)).await;
    assert!(read.is_ok(), "the agent answers a broken-off upload");
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("upload_incomplete"), "{answer}");
    let left: Vec<_> = std::fs::read_dir(agent.server_dir()).expect("server dir").flatten().collect();
    assert!(left.is_empty(), "no file and no temporary: {left:?}");
}

#[tokio::test]
async fn bodies_and_console_messages_are_bounded() {
    let agent = TestAgent::start(zlh(), &AgentSpec::default()).await;
    // A backup request is a short list of exclusions, not an upload: 32 MiB of it (more than
    // the socket buffers hold) is refused, and the refusal arrives rather than a broken pipe.
    let huge = vec![b' '; 32 << 20];
    let answer = agent.request(reqwest::Method::POST, "/backups").body(huge).send().await.expect("backup");
    assert_eq!(answer.status(), 413);
    // A viewer sending a message past the limit loses its own connection; others keep theirs.
    let mut flooder = agent.console(None).await;
    let mut watcher = agent.console(None).await;
    flooder.type_keys(&"x".repeat(zlh_proto::console::MAX_VIEWER_MESSAGE + 1)).await;
    let began = std::time::Instant::now();
    while flooder.read_frame(crate::SOON).await.is_some() {}
    assert!(began.elapsed() < crate::SOON, "the agent closed the connection (it did not just go quiet)");
    agent.start_and_wait().await;
    watcher.read_until("Done (", crate::SOON).await;
    assert_eq!(agent.get("/health").await.0, 200);
}

#[tokio::test]
async fn what_interrupted_uploads_left_is_swept_everywhere_and_nothing_else() {
    let mut agent = TestAgent::start(zlh(), &AgentSpec::default()).await;
    let dir = agent.server_dir();
    let leftovers = [
        dir.join(".zlh-upload-fedcba9876543210"),
        dir.join("sub/deep/.zlh-upload-0123456789abcdef"),
        dir.join("sub/.zlh-extract-00000000000000aa"),
    ];
    std::fs::create_dir_all(leftovers[2].join("half")).expect("mkdir");
    std::fs::create_dir_all(dir.join("sub/deep")).expect("mkdir");
    for file in &leftovers[..2] {
        std::fs::write(file, "half an upload").expect("write");
    }
    std::fs::write(dir.join("sub/deep/keep.txt"), "mine").expect("write");
    agent.kill9();
    agent.launch().await;
    zlh_testkit::eventually("the leftovers to be swept", SOON, || async {
        leftovers.iter().all(|path| !path.exists()).then_some(())
    })
    .await;
    assert_eq!(std::fs::read_to_string(dir.join("sub/deep/keep.txt")).expect("kept"), "mine");
}
