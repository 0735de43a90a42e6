//! Servers as containers on a real Docker engine (the tests' own, started by `cargo xtask
//! test`): isolation, limits, ports, an agent that dies without its game, and cleanup.

use serde_json::{Value, json};
use zlh_proto::catalog::Kind;
use zlh_testkit::artifacts::fake_runtime;
use zlh_testkit::docker::{docker, inspect, node_resources, restart_engine, tls_endpoint};
use zlh_testkit::{ApiUser, ArtifactStore, ControlSpec, TestControlPlane, eventually};

use crate::{SOON, zlh};

async fn docker_control() -> TestControlPlane {
    TestControlPlane::start(zlh(), &ControlSpec { driver: "docker", ..ControlSpec::default() }).await
}

async fn create(control: &TestControlPlane, user: &ApiUser, body: Value) -> Value {
    let (status, server) = control.call("POST", "/api/servers", Some(&user.access_token), Some(body)).await;
    assert_eq!(status, 201, "create: {server}");
    server
}

fn container(control: &TestControlPlane, server: &Value) -> String {
    format!("zlh-{}-{}", control.node, server["id"])
}

/// Runs a shell command inside a server's container, as the server's user.
fn exec(name: &str, script: &str) -> (bool, String) {
    docker(&["exec", "--user", "1000:1000", name, "bash", "-c", script])
}

#[tokio::test]
async fn each_server_is_a_locked_down_container_with_ports_of_its_own() {
    let control = docker_control().await;
    let user = control.register("boxed@example.com").await;
    let server = create(
        &control,
        &user,
        json!({"name": "boxed", "type": "game", "template": "sample", "start": true}),
    )
    .await;
    let name = container(&control, &server);
    let port = server["ports"][0]["port"].as_u64().expect("a game port") as u16;
    assert_eq!(server["address"], json!(format!("127.0.0.1:{port}")));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "players reach the game on {port}");

    let spec = inspect(&name);
    let host = &spec["HostConfig"];
    assert_eq!(spec["Config"]["User"], "1000:1000");
    assert_eq!(host["ReadonlyRootfs"], true);
    assert_eq!(host["CapDrop"], json!(["ALL"]));
    assert_eq!(host["SecurityOpt"], json!(["no-new-privileges"]));
    assert!(host["Memory"].as_i64().unwrap_or(0) > 0 && host["PidsLimit"].as_i64().unwrap_or(0) > 0);
    assert_eq!(host["Memory"], host["MemorySwap"], "no swap beyond the memory limit");
    // The agent is published on loopback only; the game on the node's public address.
    let agent = &spec["HostConfig"]["PortBindings"]["7420/tcp"][0];
    assert_eq!(agent["HostIp"], "127.0.0.1");

    // Inside: the game runs unprivileged, sees nothing of the host, and writes only its data.
    let (_, game_uid) = exec(
        &name,
        "for p in /proc/[0-9]*; do grep -q sample-game $p/cmdline 2>/dev/null && awk '/^Uid/ {print $2}' $p/status; done | head -1",
    );
    assert_eq!(game_uid, "1000");
    let (_, caps) = exec(&name, "awk '/^CapEff/ {print $2}' /proc/self/status");
    assert_eq!(caps, "0000000000000000");
    let (wrote_root, _) = exec(&name, "touch /etc/owned");
    assert!(!wrote_root, "the root filesystem is read-only");
    let (wrote_data, _) = exec(&name, "touch /var/lib/zlh/server/mine && echo ok");
    assert!(wrote_data);
    let (_, host_dir) = exec(&name, &format!("ls {} 2>&1 || echo absent", control.data.path().display()));
    assert!(host_dir.contains("absent") || host_dir.contains("No such file"), "{host_dir}");

    // Deleting removes the container, its volumes and its port.
    let id = server["id"].as_i64().expect("id");
    let (status, _) =
        control.call("DELETE", &format!("/api/servers/{id}"), Some(&user.access_token), None).await;
    assert_eq!(status, 204);
    assert_eq!(node_resources(&control.node), (Vec::new(), Vec::new()));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the port is closed");
}

#[tokio::test]
async fn a_server_reaches_no_other_server_and_its_agent_dies_without_its_game() {
    let control = docker_control().await;
    let user = control.register("neighbours@example.com").await;
    let a =
        create(&control, &user, json!({"name": "a", "type": "game", "template": "sample", "start": true}))
            .await;
    let b =
        create(&control, &user, json!({"name": "b", "type": "game", "template": "sample", "start": true}))
            .await;
    let (name_a, name_b) = (container(&control, &a), container(&control, &b));
    let network =
        inspect(&name_b)["NetworkSettings"]["Networks"]["zlh-test"]["IPAddress"].as_str().map(str::to_owned);
    let b_address = network.expect("b's address on the servers' network");
    for port in ["7420", &b["ports"][0]["port"].to_string()] {
        let (reached, _) = exec(&name_a, &format!("timeout 1 bash -c 'echo > /dev/tcp/{b_address}/{port}'"));
        assert!(!reached, "a reached b's port {port} at {b_address}");
    }
    // Nor, through the host's side of the network, the control plane or b's published agent
    // (both on the host's loopback only).
    let (_, gateway) =
        docker(&["network", "inspect", "zlh-test", "-f", "{{(index .IPAM.Config 0).Gateway}}"]);
    assert!(gateway.parse::<std::net::Ipv4Addr>().is_ok(), "the network's gateway: {gateway}");
    let bindings = inspect(&name_b)["HostConfig"]["PortBindings"]["7420/tcp"][0]["HostPort"].clone();
    let b_agent = bindings.as_str().expect("b's agent port").to_owned();
    let control_port = control.url.rsplit(':').next().expect("port").trim_end_matches('/').to_owned();
    for port in [control_port, b_agent] {
        let (reached, _) = exec(&name_a, &format!("timeout 1 bash -c 'echo > /dev/tcp/{gateway}/{port}'"));
        assert!(!reached, "a reached the host's port {port} at {gateway}");
    }

    // kill -9 of the agent inside the container: the game keeps running and a new agent
    // (started by init) reattaches to it.
    let id = a["id"].as_i64().expect("id");
    let game_pid = |name: &str| {
        exec(name, "for p in /proc/[0-9]*; do grep -q sample-game $p/cmdline 2>/dev/null && basename $p; done | head -1").1
    };
    let before = game_pid(&name_a);
    let (killed, _) = exec(
        &name_a,
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q '^/opt/zlh/zlh agent --config' && kill -9 $(basename $p); done; echo done",
    );
    assert!(killed);
    let port = a["ports"][0]["port"].as_u64().expect("port") as u16;
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "the game still answers players");
    let agent_pid = |name: &str| {
        exec(name, "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q '^/opt/zlh/zlh agent --config' && basename $p; done | head -1").1
    };
    eventually("init starts a new agent", SOON, || async { (!agent_pid(&name_a).is_empty()).then_some(()) })
        .await;
    let command = Some(json!({"command": "say still here"}));
    let path = format!("/api/servers/{id}/console/command");
    eventually("the new agent takes commands for the game", SOON, || async {
        let (status, _) = control.call("POST", &path, Some(&user.access_token), command.clone()).await;
        (status == 202).then_some(())
    })
    .await;
    assert_eq!(game_pid(&name_a), before, "the same game process");
    control.wait_for_status(&user, id, "the game is running", |s| s["state"] == "running").await;
}

#[tokio::test]
async fn a_missing_image_is_a_clear_error_and_leaves_nothing() {
    let spec = ControlSpec { driver: "docker", ..ControlSpec::default() };
    let mut control = TestControlPlane::prepare(zlh(), &spec);
    let templates = control.data.path().join("templates");
    std::fs::create_dir_all(&templates).expect("templates");
    std::fs::write(
        templates.join("nowhere.toml"),
        "description = \"An image nobody built\"\nimage = \"zlh-test/missing:v0\"\n[game]\nargv = [\"/bin/true\"]\n",
    )
    .expect("template");
    control.launch().await;
    let user = control.register("missing@example.com").await;
    let body = json!({"name": "x", "type": "game", "template": "nowhere"});
    let (status, refused) = control.call("POST", "/api/servers", Some(&user.access_token), Some(body)).await;
    assert_eq!((status, &refused["error"]["code"]), (502, &json!("provisioning_failed")), "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap_or_default().contains("image"), "{refused}");
    assert_eq!(node_resources(&control.node), (Vec::new(), Vec::new()));
    let (_, listed) = control.call("GET", "/api/servers", Some(&user.access_token), None).await;
    assert_eq!(listed, json!([]));
}

#[tokio::test]
async fn limits_are_chosen_within_the_operators_and_the_kernel_holds_them() {
    let control = docker_control().await;
    let user = control.register("limited@example.com").await;
    let token = Some(user.access_token.as_str());
    let too_much = json!({"name": "big", "type": "game", "template": "sample", "start": true, "limits": {"memoryMb": 1_000_000}});
    let (status, refused) = control.call("POST", "/api/servers", token, Some(too_much)).await;
    assert_eq!((status, &refused["error"]["code"]), (400, &json!("invalid_limits")), "{refused}");
    assert_eq!(node_resources(&control.node), (Vec::new(), Vec::new()), "nothing was made");

    let body = json!({"name": "small", "type": "game", "template": "sample", "start": true, "limits": {"memoryMb": 96, "cpus": 0.5, "pids": 64}});
    let server = create(&control, &user, body).await;
    assert_eq!(
        server["limits"],
        json!({"memoryMb": 96, "cpus": 0.5, "pids": 64, "ioWeight": 500, "diskMb": 10240})
    );
    let name = container(&control, &server);
    let host = inspect(&name)["HostConfig"].clone();
    assert_eq!(
        (host["Memory"].as_i64(), host["NanoCpus"].as_i64(), host["PidsLimit"].as_i64()),
        (Some((96 * 115 / 100) << 20), Some(500_000_000), Some(64))
    );

    // The owner changes them: applied to the running container at once.
    let id = server["id"].as_i64().expect("id");
    let (status, changed) = control
        .call("PATCH", &format!("/api/servers/{id}/limits"), token, Some(json!({"memoryMb": 128})))
        .await;
    assert_eq!((status, &changed["limits"]["memoryMb"]), (200, &json!(128)), "{changed}");
    assert_eq!(
        inspect(&name)["HostConfig"]["Memory"].as_i64(),
        Some((128 * 115 / 100) << 20),
        "limit + the JVM's overhead"
    );
    let (status, _) =
        control.call("PATCH", &format!("/api/servers/{id}/limits"), token, Some(json!({"cpus": 64.0}))).await;
    assert_eq!(status, 400);

    // Processes past the limit: forks fail inside the container.
    let (_, refused) = exec(
        &name,
        "timeout 10 bash -c 'for i in $(seq 100); do sleep 1 & done; wait' 2>&1 | grep -c 'Resource temporarily unavailable'",
    );
    assert!(refused.parse::<u32>().unwrap_or(0) > 0, "forks past the pids limit: {refused}");

    // Memory past the limit: the kernel kills the game, and the crash says why.
    let path = format!("/api/servers/{id}/console/command");
    let (status, _) = control.call("POST", &path, token, Some(json!({"command": "allocate 1024"}))).await;
    assert_eq!(status, 202);
    control
        .wait_for_status(&user, id, "the crash is classified oom", |s| s["lastCrashClassification"] == "oom")
        .await;
}

#[tokio::test]
async fn a_servers_disk_is_a_filesystem_of_its_quota_that_nothing_writes_past() {
    let control = TestControlPlane::start(
        zlh(),
        &ControlSpec {
            driver: "docker",
            extra_toml: "[metrics]\ntoken = \"scraper-token-0123\"\n".into(),
            ..ControlSpec::default()
        },
    )
    .await;
    let user = control.register("quota@example.com").await;
    let token = Some(user.access_token.as_str());
    let body = json!({"name": "quota", "type": "game", "template": "sample", "start": true, "limits": {"diskMb": 64}});
    let server = create(&control, &user, body).await;
    let id = server["id"].as_i64().expect("id");
    let name = container(&control, &server);

    // The game itself (any process in the container) cannot write past it: the kernel says no.
    let (wrote, said) = exec(&name, "dd if=/dev/zero of=/var/lib/zlh/server/fill bs=1M count=100 2>&1");
    assert!(!wrote && said.contains("No space left on device"), "{said}");
    let base = format!("/api/servers/{id}");
    let (status, _) = control.call("GET", &format!("{base}/files"), token, None).await;
    assert_eq!(status, 200, "the agent still answers on a full disk");

    // The API says so, with what is used of what is allowed, and keeps nothing of the upload.
    let (status, answer) = control
        .send("PUT", &format!("{base}/files/content?path=more.bin"), &user.access_token, vec![7u8; 8 << 20])
        .await;
    let answer: Value = serde_json::from_slice(&answer).expect("json");
    let disk = &answer["error"]["disk"];
    assert_eq!((status, &answer["error"]["code"]), (507, &json!("quota_exceeded")), "{answer}");
    assert_eq!((&disk["limitBytes"], &disk["enforcedBy"]), (&json!(64 << 20), &json!("kernel")), "{answer}");
    assert!(disk["usedBytes"].as_u64().unwrap_or(0) > 60 << 20, "{answer}");
    let (_, listed) = exec(&name, "ls /var/lib/zlh/server");
    assert!(!listed.contains("more.bin") && !listed.contains("zlh-upload"), "{listed}");
    let (status, refused) =
        control.call("POST", &format!("/api/game/servers/{id}/backups"), token, None).await;
    assert_eq!((status, &refused["error"]["code"]), (507, &json!("quota_exceeded")), "{refused}");

    // Room again after a delete; the status and the metrics tell what it uses.
    let (status, _) = control.call("DELETE", &format!("{base}/files?path=fill"), token, None).await;
    assert_eq!(status, 204);
    let status = control
        .wait_for_status(&user, id, "usage is reported", |s| {
            s["detail"]["usage"]["disk"]["usedBytes"].as_u64().is_some_and(|used| used < 32 << 20)
        })
        .await;
    let usage = &status["detail"]["usage"];
    assert!(
        usage["memoryBytes"].as_u64().unwrap_or(0) > 0 && usage["cpuSeconds"].as_f64().is_some(),
        "{usage}"
    );
    assert!(usage["networkRxBytes"].as_u64().is_some(), "{usage}");
    let metrics = reqwest::Client::new()
        .get(format!("{}/metrics", control.url))
        .bearer_auth("scraper-token-0123")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(&format!("zlh_server_disk_limit_bytes{{server=\"{id}\"}} {}", 64 << 20)),
        "{metrics}"
    );
    assert!(metrics.contains(&format!("zlh_server_memory_bytes{{server=\"{id}\"}}")), "{metrics}");

    // Its size is set at creation; deleting the server unmounts and removes its filesystem.
    let (status, _) =
        control.call("PATCH", &format!("{base}/limits"), token, Some(json!({"diskMb": 128}))).await;
    assert_eq!(status, 400);
    let (status, _) = control.call("DELETE", &base, token, None).await;
    assert_eq!(status, 204);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let data = control.data.path().display().to_string();
    assert!(!mounts.contains(&data), "nothing of the server stays mounted");
    let disks = std::fs::read_dir(control.data.path().join("docker/disks")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(disks, 0, "its image is gone");
}

#[tokio::test]
async fn a_remote_engine_is_driven_over_mutual_tls_and_measures_disks_it_cannot_limit() {
    // A certificate the engine does not accept as a client's: a clear error, nothing made.
    let spec = ControlSpec {
        driver: "docker",
        docker_endpoint: Some(tls_endpoint(false)),
        ..ControlSpec::default()
    };
    let refused = TestControlPlane::start(zlh(), &spec).await;
    let user = refused.register("untrusted@example.com").await;
    let body = json!({"name": "x", "type": "game", "template": "sample", "start": true});
    let (status, answer) = refused.call("POST", "/api/servers", Some(&user.access_token), Some(body)).await;
    assert_eq!((status, &answer["error"]["code"]), (502, &json!("provisioning_failed")), "{answer}");
    assert_eq!(node_resources(&refused.node), (Vec::new(), Vec::new()));

    // With its certificate: the server is made through the engine's API alone (nothing shared
    // but the network), and as this engine cannot limit a volume, the agent measures the disk.
    // Its host cannot be asked which ports are free: agents get ports from a range of the
    // operator's, each held in its server's spec.
    let agent_ports = zlh_testkit::PortRange::claim();
    let endpoint =
        format!("{}\nagent_ports = [{}, {}]", tls_endpoint(true), agent_ports.first, agent_ports.last);
    let spec = ControlSpec { driver: "docker", docker_endpoint: Some(endpoint), ..ControlSpec::default() };
    let control = TestControlPlane::start(zlh(), &spec).await;
    let user = control.register("remote@example.com").await;
    let token = Some(user.access_token.as_str());
    let body =
        json!({"name": "far", "type": "game", "template": "sample", "start": true, "limits": {"diskMb": 32}});
    let server = create(&control, &user, body).await;
    let id = server["id"].as_i64().expect("id");
    let second =
        create(&control, &user, json!({"name": "near", "type": "game", "template": "sample", "start": true}))
            .await;
    let agent_port = |server: &Value| {
        let bindings = inspect(&container(&control, server))["HostConfig"]["PortBindings"].clone();
        bindings["7420/tcp"][0]["HostPort"].as_str().and_then(|p| p.parse::<u16>().ok()).expect("agent port")
    };
    let ports = [agent_port(&server), agent_port(&second)];
    assert!(ports[0] != ports[1], "{ports:?}");
    assert!(ports.iter().all(|p| (agent_ports.first..=agent_ports.last).contains(p)), "{ports:?}");
    let status = control
        .wait_for_status(&user, id, "running, its disk measured", |s| {
            s["state"] == "running" && s["detail"]["usage"]["disk"]["enforcedBy"] == "measured"
        })
        .await;
    assert_eq!(status["detail"]["usage"]["disk"]["limitBytes"], 32 << 20, "{status}");
    let base = format!("/api/servers/{id}");
    let (status, answer) = control
        .send("PUT", &format!("{base}/files/content?path=big.bin"), &user.access_token, vec![1u8; 40 << 20])
        .await;
    let answer: Value = serde_json::from_slice(&answer).expect("json");
    assert_eq!((status, &answer["error"]["code"]), (507, &json!("quota_exceeded")), "{answer}");
    assert_eq!(answer["error"]["disk"]["enforcedBy"], "measured", "{answer}");
    for server in [&server, &second] {
        let (status, _) =
            control.call("DELETE", &format!("/api/servers/{}", server["id"]), token, None).await;
        assert_eq!(status, 204);
    }
    assert_eq!(node_resources(&control.node), (Vec::new(), Vec::new()));
}

#[tokio::test]
async fn servers_outlive_the_control_plane_and_come_back_when_their_container_goes() {
    let mut control = docker_control().await;
    let user = control.register("lasting@example.com").await;
    let server = create(
        &control,
        &user,
        json!({"name": "lasting", "type": "game", "template": "sample", "start": true}),
    )
    .await;
    let id = server["id"].as_i64().expect("id");
    let name = container(&control, &server);
    let (_, written) = exec(&name, "echo kept > /var/lib/zlh/server/kept.txt && echo ok");
    assert_eq!(written, "ok");
    let started = inspect(&name)["State"]["StartedAt"].clone();

    // A control plane that dies and comes back adopts the running container as it is.
    control.kill9();
    control.launch().await;
    let user = control.login(&user.email, &user.password).await;
    control
        .wait_for_status(&user, id, "adopted and running", |s| {
            s["state"] == "running" && s["unreachable"] == false
        })
        .await;
    assert_eq!(inspect(&name)["State"]["StartedAt"], started, "the same container, never restarted");

    // A container removed behind our back is made again from its spec, with its data.
    docker(&["rm", "-f", &name]);
    eventually("the container is made again", std::time::Duration::from_secs(60), || async {
        docker(&["inspect", &name]).0.then_some(())
    })
    .await;
    control
        .wait_for_status(&user, id, "running again", |s| s["state"] == "running" && s["unreachable"] == false)
        .await;
    let (_, kept) = exec(&name, "cat /var/lib/zlh/server/kept.txt");
    assert_eq!(kept, "kept");

    // A host that rebooted: the engine starts the container before the control plane is back,
    // with the server's own filesystem not mounted. It writes nothing to the host's disk, and
    // the control plane, when it is back, mounts its data and restarts it.
    control.kill9();
    assert!(docker(&["stop", "-t", "1", &name]).0);
    let disk = control.data.path().join(format!("docker/disks/{id}"));
    assert!(std::process::Command::new("umount").arg(&disk).status().expect("umount").success());
    assert!(docker(&["start", &name]).0);
    let (wrote, _) = exec(&name, "touch /var/lib/zlh/stray");
    assert!(!wrote, "nothing lands on the host's disk in place of the server's");
    control.launch().await;
    let user = control.login(&user.email, &user.password).await;
    eventually("its data is back", std::time::Duration::from_secs(30), || async {
        (exec(&name, "cat /var/lib/zlh/server/kept.txt").1 == "kept").then_some(())
    })
    .await;
    control
        .wait_for_status(&user, id, "running again", |s| s["state"] == "running" && s["unreachable"] == false)
        .await;
    let port = server["ports"][0]["port"].as_u64().expect("port") as u16;
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "players reach it on the same port");
}

#[tokio::test]
async fn servers_come_back_as_they_were_when_the_engine_restarts() {
    let control = docker_control().await;
    let user = control.register("restarted@example.com").await;
    let token = Some(user.access_token.as_str());
    let running =
        create(&control, &user, json!({"name": "on", "type": "game", "template": "sample", "start": true}))
            .await;
    let stopped =
        create(&control, &user, json!({"name": "off", "type": "game", "template": "sample", "start": true}))
            .await;
    let (on, off) = (running["id"].as_i64().expect("id"), stopped["id"].as_i64().expect("id"));
    let (status, _) = control.call("POST", &format!("/api/servers/{off}/stop"), token, None).await;
    assert!(status == 200 || status == 202, "stop: {status}");
    control.wait_for_status(&user, off, "stopped", |s| s["state"] == "stopped").await;
    let name = container(&control, &running);
    let (_, written) = exec(&name, "echo kept > /var/lib/zlh/server/kept.txt && echo ok");
    assert_eq!(written, "ok");

    // The engine stops every container and starts them again; the agents pick up the game as
    // it was meant to be, and the control plane finds them where they were.
    restart_engine();
    control
        .wait_for_status(&user, on, "running again", |s| s["state"] == "running" && s["unreachable"] == false)
        .await;
    control
        .wait_for_status(&user, off, "still stopped", |s| {
            s["state"] == "stopped" && s["unreachable"] == false
        })
        .await;
    assert_eq!(exec(&name, "cat /var/lib/zlh/server/kept.txt").1, "kept");
    let port = running["ports"][0]["port"].as_u64().expect("port") as u16;
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "players reach it on the same port");
}

#[tokio::test]
async fn a_customers_dev_server_is_a_shell_of_its_own_containers_user() {
    // On the docker driver a customer may have a dev server: its shell is the container's,
    // and its runtime comes from a catalog its container reaches (here on the network's
    // gateway, a host-only address).
    let (_, gateway) =
        docker(&["network", "inspect", "zlh-test", "-f", "{{(index .IPAM.Config 0).Gateway}}"]);
    let store = ArtifactStore::start_on(&gateway).await;
    store.publish(Kind::Runtime, "fakenode", "1.0.0", fake_runtime("fakenode", "1.0.0", 1024));
    let extra_toml = format!("[artifacts]\ncatalog_url = \"{}\"\n", store.catalog_url);
    let control = TestControlPlane::start(
        zlh(),
        &ControlSpec { driver: "docker", extra_toml, ..ControlSpec::default() },
    )
    .await;
    let user = control.register("coder@example.com").await;
    let body = json!({"name": "box", "type": "dev", "runtime": "fakenode", "version": "1.0.0"});
    let server = create(&control, &user, body).await;
    let id = server["id"].as_i64().expect("id");
    control
        .wait_for_status(&user, id, "provisioned", |s| {
            s["detail"]["provisioningComplete"] == true && s["detail"]["runtimeInstalled"] == true
        })
        .await;
    let mut console = control.console(&user, id, None).await;
    console
        .type_keys("echo uid=$(id -u) home=$HOME; touch /opt/zlh/mine || echo read-only; zlh-hello; echo done-$((6*7))\n")
        .await;
    console.read_until("done-42", SOON).await;
    let seen = String::from_utf8_lossy(&console.received).into_owned();
    assert!(seen.contains("uid=1000 home=/var/lib/zlh"), "{seen}");
    assert!(seen.contains("read-only"), "{seen}");
    assert!(seen.contains("hello from fakenode 1.0.0"), "the runtime is on the shell's PATH: {seen}");
    let name = container(&control, &server);
    let (_, installed) = exec(
        &name,
        "ls /var/lib/zlh/packages/runtimes/fakenode && test -d /var/lib/zlh/home/workspace && echo ok",
    );
    assert!(installed.ends_with("ok"), "its workspace and runtimes are in its data: {installed}");
}

#[tokio::test]
async fn a_node_hands_out_no_more_memory_than_it_has() {
    let spec =
        ControlSpec { driver: "docker", node_toml: "memory_mb = 400".into(), ..ControlSpec::default() };
    let control = TestControlPlane::start(zlh(), &spec).await;
    let user = control.register("crowded@example.com").await;
    let token = Some(user.access_token.as_str());
    let body = |name: &str| json!({"name": name, "type": "game", "template": "sample", "start": true, "limits": {"memoryMb": 256}});
    let first = create(&control, &user, body("first")).await;
    let (status, refused) = control.call("POST", "/api/servers", token, Some(body("second"))).await;
    assert_eq!((status, &refused["error"]["code"]), (503, &json!("node_full")), "{refused}");
    assert_eq!(node_resources(&control.node).0.len(), 1, "nothing of the second was made");
    let (status, _) = control.call("DELETE", &format!("/api/servers/{}", first["id"]), token, None).await;
    assert_eq!(status, 204);
    create(&control, &user, body("second")).await;
}
