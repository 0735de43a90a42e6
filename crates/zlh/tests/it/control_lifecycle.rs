//! A game server's whole life through the control plane's API, and provisioning failures.

use serde_json::{Value, json};
use zlh_testkit::{ControlSpec, TestControlPlane, eventually, procs};

use crate::{SOON, zlh};

#[tokio::test]
async fn a_game_server_lives_its_whole_life_through_the_api() {
    let control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    let user = control.register("ada@example.com").await;
    let token = Some(user.access_token.as_str());

    let (status, templates) = control.call("GET", "/api/templates", token, None).await;
    assert_eq!(status, 200);
    assert!(templates.as_array().expect("list").iter().any(|t| t["name"] == "sample"), "{templates}");

    // Created means ready: the agent reported semantic readiness before the answer.
    let server = control.create_sample_server(&user, "Survival").await;
    let id = server["id"].as_i64().expect("id");
    assert_eq!(id, 101);
    assert_eq!(server["lifecycle"], "ready");
    assert_eq!(server["status"]["state"], "running");
    assert_eq!(server["status"]["ready"], true);
    let started = server["status"]["detail"]["startedAt"].clone();

    let (status, list) = control.call("GET", "/api/servers", token, None).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(1));

    // The console through the API: scrollback, then a command's output.
    let mut console = control.console(&user, id, None).await;
    console.read_until("Done (", SOON).await;
    let (status, _) = control
        .call(
            "POST",
            &format!("/api/servers/{id}/console/command"),
            token,
            Some(json!({"command": "say hello through the API"})),
        )
        .await;
    assert_eq!(status, 202);
    console.read_until("[Server] hello through the API", SOON).await;
    // Typing into the console goes through too.
    console.type_keys("say typed\r").await;
    console.read_until("[Server] typed", SOON).await;

    // Power: the agent's answers and conflicts pass through with their codes.
    let (status, body) = control.call("POST", &format!("/api/servers/{id}/start"), token, None).await;
    assert_eq!(
        (status, &body["error"]["code"], &body["error"]["state"]),
        (409, &json!("already_running"), &json!("running"))
    );
    let (status, body) = control.call("POST", &format!("/api/servers/{id}/stop"), token, None).await;
    assert_eq!((status, &body["state"]), (202, &json!("stopping")));
    control.wait_for_status(&user, id, "stopped", |s| s["state"] == "stopped").await;
    let (status, body) = control
        .call("POST", &format!("/api/servers/{id}/console/command"), token, Some(json!({"command": "say x"})))
        .await;
    assert_eq!((status, &body["error"]["code"]), (409, &json!("not_running")));
    let (status, _) = control.call("POST", &format!("/api/servers/{id}/start"), token, None).await;
    assert_eq!(status, 202);
    control.wait_for_status(&user, id, "running again", |s| s["state"] == "running").await;
    let (status, _) = control.call("POST", &format!("/api/servers/{id}/restart"), token, None).await;
    assert_eq!(status, 202);
    control
        .wait_for_status(&user, id, "restarted", |s| {
            s["state"] == "running" && s["detail"]["startedAt"] != started
        })
        .await;
    let (status, crashes) = control.call("GET", &format!("/api/servers/{id}/crashes"), token, None).await;
    assert_eq!((status, &crashes["crashes"]), (200, &json!([])));

    // Delete stops and removes everything.
    let before = control.server_processes();
    assert!(!before.is_empty());
    let (status, _) = control.call("DELETE", &format!("/api/servers/{id}"), token, None).await;
    assert_eq!(status, 204);
    let (status, body) = control.call("GET", &format!("/api/servers/{id}"), token, None).await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));
    assert!(control.server_processes().is_empty(), "no agent, holder or game left");
    assert!(before.iter().all(|pid| !procs::is_alive(*pid)));
    assert!(!control.data.path().join("servers/101").exists());
}

#[tokio::test]
async fn a_server_that_cannot_start_is_cleaned_up_and_the_error_says_why() {
    let control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    let user = control.register_admin("bob@example.com").await;
    let token = Some(user.access_token.as_str());
    // With a ready line it never prints, it stays `starting` until it gives up (without one it
    // would count as running the moment its process started).
    let request = json!({"name": "broken", "type": "game", "template": "custom", "start": true, "ready_pattern": "Done",
        "command": ["/bin/sh", "-c", "echo 'java.lang.NoClassDefFoundError: net/fabricmc/api/ModInitializer'; exit 1"]});
    let (status, body) = control.call("POST", "/api/servers", token, Some(request)).await;
    assert_eq!((status, &body["error"]["code"]), (502, &json!("provisioning_failed")), "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("NoClassDefFoundError") && message.contains("MissingDependency"), "{message}");

    let (_, list) = control.call("GET", "/api/servers", token, None).await;
    assert_eq!(list, json!([]));
    assert!(control.server_processes().is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(control.data.path().join("servers")).expect("dir").collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn a_server_that_never_gets_ready_times_out_and_is_cleaned_up() {
    let spec = ControlSpec { provision_timeout: "1s".into(), ..ControlSpec::default() };
    let control = TestControlPlane::start(zlh(), &spec).await;
    let user = control.register_admin("cy@example.com").await;
    let request = json!({"name": "slow", "type": "game", "template": "custom", "start": true,
        "command": ["/bin/sh", "-c", "echo warming up; exec sleep 60"], "ready_pattern": "never printed"});
    let (status, body) = control.call("POST", "/api/servers", Some(&user.access_token), Some(request)).await;
    assert_eq!((status, &body["error"]["code"]), (504, &json!("provisioning_timeout")), "{body}");
    assert!(
        body["error"]["message"].as_str().expect("message").contains("waiting for its ready line"),
        "{body}"
    );
    assert!(control.server_processes().is_empty());
}

#[tokio::test]
async fn create_requests_are_validated() {
    let control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    let user = control.register_admin("di@example.com").await;
    let token = Some(user.access_token.as_str());
    let cases = [
        (json!({"name": "x", "type": "game", "template": "quake"}), 400, "unknown_template"),
        (json!({"name": "x", "type": "game"}), 400, "bad_request"),
        (json!({"name": "", "type": "game", "template": "sample", "start": true}), 400, "bad_request"),
        (json!({"name": "x", "type": "spaceship", "template": "sample"}), 400, "invalid_json"),
        (
            json!({"name": "x", "type": "game", "template": "custom", "start": true, "command": []}),
            400,
            "bad_request",
        ),
        (
            json!({"name": "x", "type": "game", "template": "custom", "start": true, "command": ["sh"], "ready_pattern": "("}),
            400,
            "bad_request",
        ),
    ];
    for (request, status, code) in cases {
        let (got, body) = control.call("POST", "/api/servers", token, Some(request.clone())).await;
        assert_eq!((got, &body["error"]["code"]), (status, &json!(code)), "{request}: {body}");
    }
    let (_, list) = control.call("GET", "/api/servers", token, None).await;
    assert_eq!(list, json!([]));
}

/// The README's first command: `zlh up` with nothing but a data directory (port 0 here).
#[tokio::test]
async fn zlh_up_serves_the_portal_and_prints_the_first_admin_once() {
    use tokio::io::{AsyncBufReadExt, BufReader, Lines};
    type Said = Lines<BufReader<tokio::process::ChildStderr>>;

    let data = tempfile::tempdir().expect("tempdir");
    let http = reqwest::Client::new();
    // Starts `zlh up` and reads what it says until it serves; returns that and its URL.
    let up = async || -> (tokio::process::Child, Said, String, String) {
        let mut child = tokio::process::Command::new(zlh())
            .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path().join("zlh-data"))
            .env_remove("ZLH_ADMIN_PASSWORD")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("zlh up");
        let mut said = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut printed = String::new();
        let url = loop {
            let line = tokio::time::timeout(SOON, said.next_line()).await.expect("in time").expect("read");
            let line = line.expect("zlh up exited before serving");
            printed.push_str(&line);
            printed.push('\n');
            if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
                break url.trim_end_matches('/').to_owned();
            }
        };
        eventually("zlh up serves", SOON, async || http.get(format!("{url}/health")).send().await.ok()).await;
        (child, said, url, printed)
    };
    // Everything it says until it exits on SIGTERM, which must be a clean exit.
    let stop = async |mut child: tokio::process::Child, mut said: Said| -> String {
        procs::signal(child.id().expect("pid"), rustix::process::Signal::TERM);
        let mut printed = String::new();
        while let Some(line) = said.next_line().await.expect("read") {
            printed.push_str(&line);
            printed.push('\n');
        }
        assert!(child.wait().await.expect("exit").success());
        printed
    };

    let (first, said, _, before) = up().await;
    let printed = before + &stop(first, said).await;
    let credential = |key: &str| {
        let line = printed.lines().find(|l| l.trim().starts_with(key)).unwrap_or_else(|| panic!("{printed}"));
        line.trim()[key.len()..].trim().to_owned()
    };
    let (email, password) = (credential("email:"), credential("password:"));

    // The data commands find the same data with `--data-dir`, as `zlh up` was given it, from
    // any working directory (whose `./zlh-data`, the default, they leave alone).
    let elsewhere = data.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    let data_command = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(zlh())
            .args(args)
            .arg("--data-dir")
            .arg(data.path().join("zlh-data"))
            .current_dir(&elsewhere)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("zlh");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("stdin");
        let output = child.wait_with_output().expect("zlh");
        assert!(output.status.success(), "zlh {args:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let runtime = data.path().join("fakenode.tar.gz");
    std::fs::write(&runtime, zlh_testkit::artifacts::tar_gz(&[("bin/node", b"#!/bin/sh\n", 0o755)]))
        .expect("artifact");
    let runtime = runtime.display().to_string();
    data_command(
        &["artifacts", "add", "--kind", "runtime", "--name", "fakenode", "--version", "1.0.0", &runtime],
        "",
    );
    data_command(
        &["admin", "create-user", "--email", "ops@example.com", "--password-stdin"],
        "an operator's password\n",
    );
    assert!(!elsewhere.join("zlh-data").exists());

    // Again on the same data: the portal, the kept admin, and no password printed.
    let (second, said, url, before) = up().await;
    let catalog = http
        .get(format!("{url}/artifacts/{}", zlh_proto::catalog::CATALOG_PATH))
        .send()
        .await
        .expect("catalog");
    assert!(
        catalog.text().await.expect("text").contains("fakenode"),
        "the running catalog has what was added"
    );
    let login = json!({"email": "ops@example.com", "password": "an operator's password"});
    let answer = http.post(format!("{url}/api/auth/login")).json(&login).send().await.expect("login");
    assert_eq!(answer.status(), 200, "the user made with --data-dir signs in");
    let page = http.get(format!("{url}/")).send().await.expect("portal");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("<title>ZeroLagHub</title>"));
    let login = json!({"email": email, "password": password});
    let signed_in = http.post(format!("{url}/api/auth/login")).json(&login).send().await.expect("login");
    assert_eq!(signed_in.status(), 200);
    // A printed password is marked, so the portal asks for one of the admin's own; a change
    // clears the mark. An operator's own (--password-stdin) is not marked.
    let signed_in: serde_json::Value = signed_in.json().await.expect("session");
    assert_eq!(signed_in["user"]["passwordGenerated"], true, "{signed_in}");
    let token = signed_in["accessToken"].as_str().expect("token");
    let change = json!({"currentPassword": password, "newPassword": "a long private passphrase 7"});
    let changed = http
        .post(format!("{url}/api/auth/password"))
        .bearer_auth(token)
        .json(&change)
        .send()
        .await
        .expect("change");
    let changed: serde_json::Value = changed.json().await.expect("session");
    assert_eq!(changed["user"]["passwordGenerated"], false, "{changed}");
    let ops = json!({"email": "ops@example.com", "password": "an operator's password"});
    let ops: serde_json::Value = http
        .post(format!("{url}/api/auth/login"))
        .json(&ops)
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    assert_eq!(ops["user"]["passwordGenerated"], false);
    let registration: serde_json::Value = http
        .get(format!("{url}/api/auth/registration"))
        .send()
        .await
        .expect("ask")
        .json()
        .await
        .expect("json");
    assert_eq!(registration, json!({"open": false}), "the portal offers no sign-up here");
    // The local driver isolates nothing: sign-up is closed, and `zlh up` said so.
    let register = json!({"email": "visitor@example.com", "password": "a long enough passphrase"});
    let (status, body) = {
        let answer =
            http.post(format!("{url}/api/auth/register")).json(&register).send().await.expect("register");
        (answer.status().as_u16(), answer.json::<serde_json::Value>().await.expect("json"))
    };
    assert_eq!((status, &body["error"]["code"]), (403, &json!("registration_disabled")), "{body}");
    let printed = before + &stop(second, said).await;
    assert!(!printed.contains("password") && !printed.contains(&password), "{printed}");
    assert!(printed.contains("Sign-up is closed"), "{printed}");
}

#[tokio::test]
async fn customers_run_templates_never_commands_or_shells_of_this_machine() {
    let control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    let customer = control.register("customer@example.com").await;
    let token = Some(customer.access_token.as_str());
    let attempts = [
        json!({"name": "x", "type": "game", "template": "custom", "start": true, "command": ["/bin/sh", "-c", "cat /etc/shadow"]}),
        json!({"name": "x", "type": "dev"}),
    ];
    for request in attempts {
        let (status, body) = control.call("POST", "/api/servers", token, Some(request.clone())).await;
        assert_eq!((status, &body["error"]["code"]), (403, &json!("forbidden")), "{request}: {body}");
    }
    let (_, list) = control.call("GET", "/api/servers", token, None).await;
    assert_eq!(list, json!([]));
    assert!(control.server_processes().is_empty());
    // Templates are for everyone; what they see of it names nothing of the host.
    let server = control.create_sample_server(&customer, "allowed").await;
    let detail = &server["status"]["detail"];
    assert_eq!((&detail["pid"], &detail["agent"]["pid"]), (&json!(null), &json!(0)), "{detail}");
    assert_eq!(detail["serverRoot"], "/opt/zlh/server", "the path inside the server, not the host's");
    assert!(!server.to_string().contains(&control.data.path().display().to_string()), "{server}");
}

#[tokio::test]
async fn every_game_server_gets_ports_of_its_own() {
    let mut control = TestControlPlane::prepare(zlh(), &ControlSpec::default());
    let (first_port, last_port) = (control.ports.first, control.ports.first + 2);
    std::fs::write(
        control.data.path().join("control.toml"),
        std::fs::read_to_string(control.data.path().join("control.toml"))
            .expect("config")
            .replace(&format!("last_port = {}", control.ports.last), &format!("last_port = {last_port}")),
    )
    .expect("narrow the range to three ports");
    control.launch().await;
    let user = control.register("ports@example.com").await;
    // Created at once from one template: three servers, three ports, each really listening.
    let body = |name: &str| Some(json!({"name": name, "type": "game", "template": "sample", "start": true}));
    let token = Some(user.access_token.as_str());
    let (a, b, c) = tokio::join!(
        control.call("POST", "/api/servers", token, body("a")),
        control.call("POST", "/api/servers", token, body("b")),
        control.call("POST", "/api/servers", token, body("c")),
    );
    let mut ports = Vec::new();
    for (status, server) in [a, b, c] {
        assert_eq!(status, 201, "{server}");
        let port = server["ports"][0]["port"].as_u64().expect("a port") as u16;
        assert_eq!(server["ports"][0]["name"], "game");
        assert_eq!(server["address"], json!(format!("127.0.0.1:{port}")));
        assert!((first_port..=last_port).contains(&port), "{port} is in the node's range");
        control
            .wait_for_status(&user, server["id"].as_i64().expect("id"), "running", |s| {
                s["state"] == "running"
            })
            .await;
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "the game listens on {port}");
        ports.push((server["id"].as_i64().expect("id"), port));
    }
    let mut numbers: Vec<u16> = ports.iter().map(|(_, port)| *port).collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), 3, "never two servers on one port: {ports:?}");
    // The range is used up: a clear error, and nothing is left behind.
    let (status, refused) = control.call("POST", "/api/servers", token, body("d")).await;
    assert_eq!((status, &refused["error"]["code"]), (503, &json!("no_free_ports")), "{refused}");
    let (_, listed) = control.call("GET", "/api/servers", token, None).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(3));
    // Deleting a server frees its port for the next one.
    let (freed_id, freed_port) = ports[1];
    let (status, _) = control.call("DELETE", &format!("/api/servers/{freed_id}"), token, None).await;
    assert_eq!(status, 204);
    let (status, again) = control.call("POST", "/api/servers", token, body("e")).await;
    assert_eq!((status, &again["ports"][0]["port"]), (201, &json!(freed_port)), "{again}");
}

#[tokio::test]
async fn the_status_follows_a_power_action_within_a_second() {
    // A heartbeat far slower than the test: only following the action can show its outcome.
    let spec = ControlSpec { poll_interval: "60s".into(), ..ControlSpec::default() };
    let control = TestControlPlane::start(zlh(), &spec).await;
    let user = control.register("quick@example.com").await;
    let id = control.create_sample_server(&user, "Quick").await["id"].as_i64().expect("id");
    let token = Some(user.access_token.as_str());
    for (action, settled) in [("stop", "stopped"), ("start", "running")] {
        let (status, answer) =
            control.call("POST", &format!("/api/servers/{id}/{action}"), token, None).await;
        assert!(status == 200 || status == 202, "{action}: {answer}");
        eventually(
            &format!("the status to say {settled} after {action}"),
            std::time::Duration::from_secs(3),
            || async {
                let (_, status) =
                    control.call("GET", &format!("/api/servers/{id}/status"), token, None).await;
                (status["state"] == settled).then_some(())
            },
        )
        .await;
    }
}

/// Serves `body` once per connection over plain HTTP on loopback; its URL.
async fn serve_once(body: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/egg.json", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let head =
                format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
        }
    });
    url
}

async fn import(control: &TestControlPlane, token: &str, body: Value) -> (u16, Value) {
    control.call("POST", "/api/admin/templates/import", Some(token), Some(body)).await
}

#[tokio::test]
async fn eggs_become_templates_from_the_cli_and_the_admin_api_without_a_restart() {
    let control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    let admin = control.register_admin("admin@example.com").await;
    let customer = control.register("customer@example.com").await;
    let names = |templates: &Value| -> Vec<String> {
        templates
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .collect()
    };
    let (_, offered) = control.call("GET", "/api/templates", Some(&customer.access_token), None).await;
    assert!(!names(&offered).contains(&"custom".to_owned()), "customers are not offered custom: {offered}");

    // The CLI writes into the templates directory; the running control plane offers it at once.
    let eggs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../zlh-control/tests/eggs");
    for (file, name) in
        [("ptdl-v1-teeworlds.json", "teeworlds-debian"), ("ptdl-v2-minetest.json", "minetest-debian")]
    {
        let said = control.cli(&["templates", "import", &eggs.join(file).display().to_string()], "");
        assert!(said.contains(&format!("as the template {name}")), "{said}");
        if name == "teeworlds-debian" {
            assert!(said.contains("not carried out: config.startup.userInteraction is not used"), "{said}");
        }
    }
    let teeworlds =
        std::fs::read_to_string(control.data.path().join("templates/teeworlds-debian.toml")).expect("toml");
    assert!(teeworlds.contains("${SERVER_NAME}") && teeworlds.contains("SIGINT"), "{teeworlds}");
    let (_, offered) = control.call("GET", "/api/templates", Some(&customer.access_token), None).await;
    assert!(names(&offered).contains(&"minetest-debian".to_owned()), "{offered}");

    // A bad egg, or a name taken, is refused by the CLI with the reason; nothing is written.
    let bad = control.data.path().join("bad-egg.json");
    let wesnoth = std::fs::read_to_string(eggs.join("pelican-wesnoth.json")).expect("egg");
    let bad_text = wesnoth.replace("\"parser\": \"file\"", "\"parser\": \"toml\"");
    std::fs::write(&bad, &bad_text).expect("bad egg");
    let again = eggs.join("ptdl-v2-minetest.json");
    for (file, reason) in
        [(bad.as_path(), "unknown parser `toml`"), (again.as_path(), "is there a template of that name")]
    {
        let output = std::process::Command::new(zlh())
            .args(["templates", "import"])
            .arg(file)
            .arg("--data-dir")
            .arg(control.data.path())
            .output()
            .expect("zlh");
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && said.contains(reason), "{said}");
    }
    assert_eq!(std::fs::read_dir(control.data.path().join("templates")).expect("dir").count(), 2);

    // Admins import through the API, pasted or from a URL; customers may not.
    let token = Some(admin.access_token.as_str());
    let (status, _) = import(&control, &customer.access_token, json!({"egg": wesnoth})).await;
    assert_eq!(status, 403);
    let (status, imported) = import(&control, &admin.access_token, json!({"egg": wesnoth})).await;
    assert_eq!(status, 201, "{imported}");
    assert_eq!(imported["template"]["name"], "wesnoth-server-debian");
    assert_eq!(imported["template"]["origin"], "stored");
    let freeciv = std::fs::read_to_string(eggs.join("pelican-freeciv.yaml")).expect("egg");
    let url = serve_once(freeciv).await;
    let (status, imported) = import(&control, &admin.access_token, json!({"url": url, "name": "civ"})).await;
    assert_eq!((status, &imported["template"]["name"]), (201, &json!("civ")), "{imported}");
    for (body, status_wanted, code) in [
        (json!({"egg": bad_text}), 400, "invalid_template"),
        (json!({"egg": "{\"meta\": "}), 400, "invalid_template"),
        (json!({"egg": wesnoth}), 409, "already_exists"),
        (json!({"egg": wesnoth, "name": "Not A Name"}), 400, "invalid_template"),
        (json!({"url": "ftp://example.invalid/egg.json"}), 400, "invalid_template"),
        (json!({}), 400, "invalid_template"),
    ] {
        let (status, error) = import(&control, &admin.access_token, body).await;
        assert_eq!((status, error["error"]["code"].as_str()), (status_wanted, Some(code)), "{error}");
    }
    let (_, offered) = control.call("GET", "/api/templates", Some(&customer.access_token), None).await;
    let civ = offered.as_array().expect("list").iter().find(|t| t["name"] == "civ").expect("offered at once");
    assert_eq!(civ["install"], true);
    assert!(!names(&offered).contains(&"bad-egg".to_owned()));

    // Admins read and change any template (a bad change keeps the old one), remove it and
    // restore a built-in one.
    let (status, sample) = control.call("GET", "/api/admin/templates/sample", token, None).await;
    assert_eq!((status, &sample["origin"]), (200, &json!("built_in")), "{sample}");
    let source = sample["source"].as_str().expect("source").to_owned();
    let changed = source.replacen("description = \"", "description = \"Changed: ", 1);
    let (status, error) = control
        .call("PUT", "/api/admin/templates/sample", token, Some(json!({"source": "description = 1"})))
        .await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("invalid_template")), "{error}");
    let (status, sample) =
        control.call("PUT", "/api/admin/templates/sample", token, Some(json!({"source": changed}))).await;
    assert_eq!((status, &sample["origin"], &sample["replaces"]), (200, &json!("stored"), &json!("built_in")));
    let (_, offered) = control.call("GET", "/api/templates", Some(&customer.access_token), None).await;
    let description = |offered: &Value, name: &str| {
        offered.as_array().expect("list").iter().find(|t| t["name"] == name).map(|t| t["description"].clone())
    };
    assert!(
        description(&offered, "sample")
            .is_some_and(|d| d.as_str().is_some_and(|d| d.starts_with("Changed: ")))
    );
    let (status, _) = control.call("DELETE", "/api/admin/templates/sample", token, None).await;
    assert_eq!(status, 204);
    let (_, offered) = control.call("GET", "/api/templates", Some(&customer.access_token), None).await;
    assert_eq!(description(&offered, "sample"), None);
    let body = json!({"name": "x", "type": "game", "template": "sample"});
    let (status, error) =
        control.call("POST", "/api/servers", Some(&customer.access_token), Some(body)).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("unknown_template")), "{error}");
    let (_, list) = control.call("GET", "/api/admin/templates", token, None).await;
    let removed = list.as_array().expect("list").iter().find(|t| t["name"] == "sample").expect("listed");
    assert_eq!(removed["removed"], true);
    let (status, restored) = control.call("POST", "/api/admin/templates/sample/restore", token, None).await;
    assert_eq!((status, &restored["origin"]), (200, &json!("built_in")), "{restored}");
    let (status, _) = control.call("DELETE", "/api/admin/templates/civ", token, None).await;
    assert_eq!(status, 204);
    let (status, _) = control.call("GET", "/api/admin/templates/civ", token, None).await;
    assert_eq!(status, 404, "a stored template alone is forgotten");
    let (status, _) =
        control.call("GET", "/api/admin/templates/sample", Some(&customer.access_token), None).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_server_waits_for_its_files_and_takes_its_variables_at_each_start() {
    let control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    let admin = control.register_admin("admin@example.com").await;
    let user = control.register("owner@example.com").await;
    let token = Some(user.access_token.as_str());
    // The sample game, needing an uploaded world and writing its MOTD into a config file.
    let source = r#"
description = "The sample game with an uploaded world"
ports = [{ name = "game", protocol = "tcp" }]
[[variables]]
name = "Message of the day"
env = "MOTD"
default = "Welcome"
rules = ["required", "max:40"]
[game]
argv = ["{zlh}", "sample-game", "--port", "{port.game}"]
ready_pattern = 'Done \('
required_files = ["world/level.dat"]
config_files = [{ file = "server.properties", parser = "properties", find = { motd = "{{server.build.env.MOTD}} on {{server.build.default.port}}" } }]
"#;
    let (status, put) = control
        .call(
            "PUT",
            "/api/admin/templates/uploaded",
            Some(&admin.access_token),
            Some(json!({"source": source})),
        )
        .await;
    assert_eq!(status, 200, "{put}");

    let body = json!({"name": "w", "type": "game", "template": "uploaded", "start": true});
    let (status, error) = control.call("POST", "/api/servers", token, Some(body)).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("bad_request")), "{error}");
    assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("world/level.dat")), "{error}");
    let body = json!({"name": "w", "type": "game", "template": "uploaded"});
    let (status, server) = control.call("POST", "/api/servers", token, Some(body)).await;
    assert_eq!(status, 201, "{server}");
    let id = server["id"].as_i64().expect("id");
    let port = server["ports"][0]["port"].as_u64().expect("port");
    assert_eq!(server["status"]["state"], "stopped", "created without start: stopped, files can come first");

    let (status, refused) = control.call("POST", &format!("/api/servers/{id}/start"), token, None).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("missing_files")), "{refused}");
    assert!(refused["error"]["message"].as_str().is_some_and(|m| m.contains("world/level.dat")), "{refused}");
    let (status, _) = control
        .call("POST", &format!("/api/servers/{id}/files/mkdir"), token, Some(json!({"path": "world"})))
        .await;
    assert!(status / 100 == 2);
    let (status, _) = control
        .send(
            "PUT",
            &format!("/api/servers/{id}/files/content?path=world/level.dat"),
            &user.access_token,
            b"level".to_vec(),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = control
        .call("PUT", &format!("/api/servers/{id}/variables"), token, Some(json!({"values": {"MOTD": "Hi"}})))
        .await;
    assert_eq!(status, 200);
    let (status, _) = control.call("POST", &format!("/api/servers/{id}/start"), token, None).await;
    assert_eq!(status, 202);
    control.wait_for_status(&user, id, "running", |s| s["state"] == "running" && s["ready"] == true).await;
    let properties =
        std::fs::read_to_string(control.server_dir(id).join("server.properties")).expect("written");
    assert_eq!(properties, format!("motd=Hi on {port}\n"));
}

#[tokio::test]
async fn admins_manage_the_artifact_store_through_the_api_and_agents_install_from_it() {
    let control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    let admin = control.register_admin("keeper@example.com").await;
    let customer = control.register("customer@example.com").await;
    let token = admin.access_token.as_str();
    let jar = zlh_testkit::files::zip(&[(
        "fabric.mod.json",
        json!({"schemaVersion": 1, "id": "shelfmod", "name": "Shelf Mod", "version": "2.0.0"})
            .to_string()
            .as_bytes(),
    )]);
    let put = "/api/admin/artifacts/mod/shelfmod/2.0.0?file=shelfmod-2.0.0.jar";

    // Customers may not; what is not a kind, a name or a file name is refused, storing nothing.
    let (status, _) = control.send("PUT", put, &customer.access_token, jar.clone()).await;
    assert_eq!(status, 403);
    for bad in [
        "/api/admin/artifacts/plugin/shelfmod/2.0.0?file=a.jar",
        "/api/admin/artifacts/mod/..%2Fx/2.0.0?file=a.jar",
        "/api/admin/artifacts/mod/shelfmod/2.0.0?file=..%2Fa.jar",
        "/api/admin/artifacts/mod/shelfmod/2.0.0",
    ] {
        let (status, body) = control.send("PUT", bad, token, jar.clone()).await;
        assert_eq!(status, 400, "{bad}: {}", String::from_utf8_lossy(&body));
    }
    let (_, listed) = control.call("GET", "/api/admin/artifacts", Some(token), None).await;
    assert_eq!(listed, json!([]));

    let (status, added) = control.send("PUT", put, token, jar.clone()).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&added));
    let added: Value = serde_json::from_slice(&added).expect("json");
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(&jar).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        (&added["kind"], &added["sha256"], &added["size"]),
        (&json!("mod"), &json!(digest), &json!(jar.len()))
    );
    let (_, listed) = control.call("GET", "/api/admin/artifacts", Some(token), None).await;
    assert_eq!(listed, json!([added]));
    assert!(
        !control.data.path().join("artifact-uploads").read_dir().expect("uploads").any(|_| true),
        "nothing left"
    );

    // An agent installs it from the store, checked by its SHA-256.
    let id = control.create_sample_server(&admin, "Shelved").await["id"].as_i64().expect("id");
    let install = control
        .call(
            "POST",
            &format!("/api/servers/{id}/mods/install"),
            Some(token),
            Some(json!({"name": "shelfmod", "version": "2.0.0"})),
        )
        .await;
    assert_eq!(install.0, 202, "{}", install.1);
    let ended = control.wait_for_job(&admin, id, &install.1).await;
    assert_eq!(ended["state"], "succeeded", "{ended}");
    let (_, mods) = control.call("GET", &format!("/api/servers/{id}/mods"), Some(token), None).await;
    assert!(mods.to_string().contains("Shelf Mod"), "{mods}");

    let one = "/api/admin/artifacts/mod/shelfmod/2.0.0";
    assert_eq!(control.call("DELETE", one, Some(token), None).await.0, 204);
    assert_eq!(control.call("DELETE", one, Some(token), None).await.0, 404);
    let (_, listed) = control.call("GET", "/api/admin/artifacts", Some(token), None).await;
    assert_eq!(listed, json!([]));
}

#[tokio::test]
async fn a_control_plane_on_postgresql_does_what_one_on_sqlite_does() {
    let database = zlh_testkit::postgres::fresh_database();
    let spec = ControlSpec { database_url: Some(database), ..ControlSpec::default() };
    let mut control = TestControlPlane::start(zlh(), &spec).await;
    assert!(!control.data.path().join("zlh.db").exists(), "nothing in SQLite");
    assert!(control.admin(&["migrate"], "").contains("every migration"));
    control.admin(
        &["create-user", "--email", "ops@example.com", "--admin", "--password-stdin"],
        "ops password 12\n",
    );
    let ops = control.login("ops@example.com", "ops password 12").await;
    let user = control.register("pat@example.com").await;
    let id = control.create_sample_server(&user, "On Postgres").await["id"].as_i64().expect("id");
    assert_eq!(id, 101);
    control.wait_for_status(&user, id, "running", |s| s["state"] == "running").await;
    let token = Some(user.access_token.as_str());
    let (status, _) = control
        .call(
            "POST",
            &format!("/api/servers/{id}/console/command"),
            token,
            Some(json!({"command": "say from postgres"})),
        )
        .await;
    assert_eq!(status, 202);
    let mut console = control.console(&user, id, Some(0)).await;
    console.read_until("[Server] from postgres", SOON).await;
    let invite = json!({"email": "ops@example.com", "permissions": ["power"]});
    assert_eq!(control.call("POST", &format!("/api/servers/{id}/members"), token, Some(invite)).await.0, 201);
    let steps = json!({"name": "Hi", "cron": "0 4 * * *", "steps": [{"action": "command", "payload": "say scheduled"}]});
    let (status, schedule) =
        control.call("POST", &format!("/api/servers/{id}/schedules"), token, Some(steps)).await;
    assert_eq!(status, 201, "{schedule}");
    control.call("POST", &format!("/api/servers/{id}/schedules/{}/run", schedule["id"]), token, None).await;
    console.read_until("[Server] scheduled", SOON).await;

    // Restarted, it finds everything there: the account, its token, the server and its agent.
    control.kill9();
    control.launch().await;
    let (status, servers) = control.call("GET", "/api/servers", token, None).await;
    assert_eq!((status, servers.as_array().map(Vec::len)), (200, Some(1)), "{servers}");
    let (status, stopped) =
        control.call("POST", &format!("/api/servers/{id}/stop"), Some(&ops.access_token), None).await;
    assert!(status == 200 || status == 202, "{stopped}");
    control.wait_for_status(&user, id, "stopped", |s| s["state"] == "stopped").await;
    assert_eq!(control.call("DELETE", &format!("/api/servers/{id}"), token, None).await.0, 204);
}

#[tokio::test]
async fn a_host_moves_from_sqlite_to_postgresql_with_export() {
    let mut control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    let user = control.register("mover@example.com").await;
    let token = Some(user.access_token.as_str());
    let id = control.create_sample_server(&user, "Moving").await["id"].as_i64().expect("id");
    control.wait_for_status(&user, id, "running", |s| s["state"] == "running").await;
    let steps = json!({"name": "Nightly", "cron": "0 4 * * *", "steps": [{"action": "command", "payload": "say moved"}]});
    assert_eq!(
        control.call("POST", &format!("/api/servers/{id}/schedules"), token, Some(steps)).await.0,
        201
    );
    control.kill9();

    // Every table copied, counted and hashed on both sides; the URL (a password) stays out of
    // the command line and the output.
    let database = zlh_testkit::postgres::fresh_database();
    let exported = control.cli_with(&["admin", "export"], "", &[("ZLH_EXPORT_TO", &database)]);
    let printed = String::from_utf8_lossy(&exported.stdout).into_owned();
    assert!(exported.status.success(), "{}", String::from_utf8_lossy(&exported.stderr));
    let rows = |table: &str| {
        let line = printed.lines().find(|l| l.split_whitespace().next() == Some(table)).expect(table);
        line.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok()).expect("count")
    };
    assert_eq!((rows("users"), rows("servers"), rows("schedules")), (1, 1, 1), "{printed}");
    assert!(rows("sessions") >= 1 && printed.contains("every count and checksum read back the same"));
    assert!(
        printed
            .lines()
            .filter(|l| l.contains("sha256"))
            .all(|l| l.rsplit(' ').next().is_some_and(|h| h.len() == 64))
    );
    // Into a database that holds data already, nothing is copied, and it says why.
    let again = control.cli_with(&["admin", "export"], "", &[("ZLH_EXPORT_TO", &database)]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds data"), "{again:?}");
    assert!(!format!("{exported:?}{again:?}").contains(&database), "the URL is never printed");

    // On PostgreSQL, the host is as it was: the same token, server, agent and schedule.
    control.use_database(&database);
    control.launch().await;
    let (status, servers) = control.call("GET", "/api/servers", token, None).await;
    assert_eq!((status, servers[0]["id"].as_i64()), (200, Some(id)), "{servers}");
    control.wait_for_status(&user, id, "running on PostgreSQL", |s| s["state"] == "running").await;
    let (_, schedules) = control.call("GET", &format!("/api/servers/{id}/schedules"), token, None).await;
    assert_eq!(schedules[0]["name"], "Nightly");
    let second = control.create_sample_server(&user, "Made after").await["id"].as_i64().expect("id");
    assert!(second > id, "new ids go on after the copied ones");
}
