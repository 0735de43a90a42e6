//! The portal in a real browser: a customer's whole day, through the UI only, against a real
//! control plane with real agents (`e2e/portal.mjs` drives Chromium; this sets the stage and
//! checks the outcome).

use serde_json::{Value, json};
use zlh_testkit::browser::{publish_dev_artifacts, run_script, screenshots};
use zlh_testkit::files::zip;
use zlh_testkit::{ControlSpec, TestControlPlane};

use crate::zlh;

#[tokio::test]
async fn a_customer_does_everything_in_a_real_browser() {
    // Crashed servers stay crashed (no automatic restart) so the page can show it. The customer
    // gets a dev server on the local driver because this operator says so.
    let spec = ControlSpec {
        provision_timeout: "240s".into(),
        agent_defaults: "[recovery]\nbackoff = [\"1h\"]\nmax_consecutive_crashes = 3\n".into(),
        extra_toml: "[local_driver]\ncustomer_dev_servers = true\n".into(),
        ..ControlSpec::default()
    };
    let mut control = TestControlPlane::prepare(zlh(), &spec);
    // An operator's template: the sample game, as slow to start as a modded server, so the
    // page can be seen reporting progress while the server is created.
    let templates = control.data.path().join("templates");
    std::fs::create_dir_all(&templates).expect("templates");
    let sample = include_str!("../../../zlh-control/templates/sample.toml");
    let slow =
        sample.replace("\"--world-files\"", "\"--ready-delay-ms\", \"3000\", \"--world-files\"").replace(
            "description = \"The ZeroLagHub sample game",
            "description = \"The sample game, slow to start",
        );
    // With a setting its owner chooses, written into a config file at each start.
    let slow = slow.replace(
        "[game]\n",
        "[[variables]]\nname = \"Message of the day\"\nenv = \"MOTD\"\ndefault = \"Welcome\"\n\
         rules = [\"required\", \"max:40\"]\n\n[game]\nconfig_files = [{ file = \"server.properties\", \
         parser = \"properties\", find = { motd = \"{{env.MOTD}}\" } }]\n",
    );
    assert_ne!(slow, sample);
    std::fs::write(templates.join("slow-sample.toml"), slow).expect("template");
    // And one whose game ignores being asked to stop, for minutes: Kill is what ends it.
    let stubborn = sample
        .replace("\"--world-files\"", "\"--ignore-stop\", \"--ignore-sigterm\", \"--world-files\"")
        .replace("stop_timeout = \"10s\"", "stop_timeout = \"10m\"")
        .replace("The ZeroLagHub sample game", "The sample game, deaf to stop");
    assert!(stubborn.contains("--ignore-stop") && stubborn.contains("10m"));
    std::fs::write(templates.join("stubborn-sample.toml"), stubborn).expect("template");
    control.launch().await;
    publish_dev_artifacts(&control);
    let intruder = control.register("intruder@example.com").await;
    control.admin(
        &["create-user", "--email", "operator@example.com", "--admin", "--password-stdin"],
        "operator password 1\n",
    );
    let jar = control.data.path().join("portalmod-1.0.0.jar");
    let metadata = json!({"schemaVersion": 1, "id": "portalmod", "name": "Portal Mod", "version": "1.0.0"});
    std::fs::write(&jar, zip(&[("fabric.mod.json", metadata.to_string().as_bytes())])).expect("jar");
    let archive = control.data.path().join("pack.zip");
    std::fs::write(&archive, zip(&[("pack/readme.txt", b"read me\n")])).expect("archive");
    // 200,000 bytes that are not UTF-8 text (the editor must refuse them, not mangle them).
    let binary = control.data.path().join("blob.bin");
    std::fs::write(&binary, (0..200_000u32).map(|i| (i.wrapping_mul(7919) % 251) as u8).collect::<Vec<u8>>())
        .expect("binary");
    let shots = format!("{}/portal", screenshots());
    // This run's screenshots only (a failed step leaves `failed-<step>.png`).
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).expect("screenshots");

    let owner = json!({"email": "player@example.com", "password": "a long enough password"});
    let stage = json!({
        "base": control.url,
        "owner": owner,
        "intruder": {"email": intruder.email, "password": intruder.password},
        "admin": {"email": "operator@example.com", "password": "operator password 1"},
        "jar": jar,
        "archive": archive,
        "outbox": control.data.path().join("outbox.log"),
        "runtime": "fakenode",
        "version": "1.0.0",
        "workspaceFile": "FROM_THE_PORTAL.md",
        "binary": binary,
        "egg": std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../zlh-control/tests/eggs/pelican-wesnoth.json"),
        "shots": shots,
    });
    let seen = run_script("portal.mjs", &[], &[("ZLH_PORTAL", &stage.to_string())]).await;
    eprintln!("{}", serde_json::to_string_pretty(&seen["steps"]).unwrap_or_default());
    assert_eq!(seen["ok"], true, "{seen}");
    assert_eq!(seen["consoleErrors"], json!([]), "{seen}");
    assert_eq!(seen["unnamedControls"], json!([]), "every control on every page has a name: {seen}");
    assert_eq!(seen["accessibility"], json!([]), "axe-core: nothing serious or critical on any page");
    assert!(seen["audited"].as_array().is_some_and(|a| a.len() >= 20), "pages audited: {}", seen["audited"]);
    assert!(seen["crashBadge"].as_str().unwrap_or_default().contains("mod_or_plugin_error"), "{seen}");
    assert!(seen["explorerRows"].to_string().contains("FROM_THE_PORTAL.md"), "{seen}");

    // What the browser did is what the API holds.
    let player = control.login("player@example.com", "a long enough password").await;
    let game = seen["ids"]["game"].as_i64().expect("game id");
    let (status, notes) = control
        .send(
            "GET",
            &format!("/api/servers/{game}/files/content?path=notes.txt"),
            &player.access_token,
            Vec::new(),
        )
        .await;
    assert_eq!((status, notes), (200, b"edited in the browser\n".to_vec()));
    // What the editor would not edit is as it was uploaded; an unchanged save wrote nothing,
    // and line ends stayed \r\n.
    let file = |name: &str| std::fs::read(control.server_dir(game).join(name)).expect("file");
    assert_eq!(file("blob.bin").len(), 200_000);
    assert_eq!(file("crlf.txt"), b"one\r\ntwo\r\nthree\r\n");
    assert_eq!(file("ops.txt"), b"op nobody\n", "a new file, made and written in the browser");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(control.server_dir(game).join("ops.txt")).expect("ops.txt").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let (_, variables) = control
        .call("GET", &format!("/api/servers/{game}/variables"), Some(&player.access_token), None)
        .await;
    assert_eq!(variables[0]["value"], "Changed in the portal", "{variables}");
    let properties =
        std::fs::read_to_string(control.server_dir(game).join("server.properties")).expect("props");
    assert_eq!(
        properties, "motd=Changed in the portal\n",
        "the setting saved in the portal, applied when the game started again (after its crash)"
    );
    let operator = control.login("operator@example.com", "operator password 1").await;
    let (_, templates) =
        control.call("GET", "/api/admin/templates", Some(&operator.access_token), None).await;
    let origin = |name: &str| {
        templates.as_array().and_then(|t| t.iter().find(|t| t["name"] == name)).map(|t| t["origin"].clone())
    };
    assert_eq!(origin("wesnoth-server-debian"), Some(json!("stored")), "{templates}");
    assert_eq!(origin("minecraft-java"), Some(json!("built_in")), "removed, then restored: {templates}");
    let (_, servers) = control.call("GET", "/api/servers", Some(&player.access_token), None).await;
    assert_eq!(servers.as_array().map(Vec::len), Some(2), "{servers}");
    // The suspended intruder's sessions ended, and signing in again is refused.
    let (status, refused): (u16, Value) =
        control.call("GET", "/api/servers", Some(&intruder.access_token), None).await;
    assert_eq!((status, &refused["error"]["code"]), (401, &json!("token_invalid")));
    let credentials = json!({"email": intruder.email, "password": intruder.password});
    let (status, refused) = control.call("POST", "/api/auth/login", None, Some(credentials)).await;
    assert_eq!((status, &refused["error"]["code"]), (403, &json!("account_suspended")));
}
