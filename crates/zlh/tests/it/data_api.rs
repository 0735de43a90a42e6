//! Server data through the API with real agents: files, uploads, archives, mods, backups.

use serde_json::{Value, json};
use zlh_testkit::files::{TarEntry, raw_tar_gz, snapshot, zip};
use zlh_testkit::{ApiUser, ControlSpec, TestControlPlane};

use crate::zlh;

/// A control plane whose agents accept uploads up to 1 MiB (and give up on one stalled for 2 s),
/// with one running sample server.
async fn server_with_data(email: &str) -> (TestControlPlane, ApiUser, i64) {
    let spec = ControlSpec {
        agent_defaults: format!(
            "{}[files]\nmax_upload_bytes = 1048576\nupload_stall_timeout = \"2s\"\n",
            ControlSpec::default().agent_defaults
        ),
        ..ControlSpec::default()
    };
    let control = TestControlPlane::start(zlh(), &spec).await;
    let user = control.register(email).await;
    let server = control.create_sample_server(&user, "Data").await;
    let id = server["id"].as_i64().expect("id");
    (control, user, id)
}

async fn job_succeeds(
    control: &TestControlPlane,
    user: &ApiUser,
    id: i64,
    (status, job): (u16, Value),
) -> Value {
    assert_eq!(status, 202, "{job}");
    let job = job.get("data").cloned().unwrap_or(job);
    let ended = control.wait_for_job(user, id, &job).await;
    assert_eq!(ended["state"], "succeeded", "{ended}");
    ended
}

#[tokio::test]
async fn files_travel_both_ways_and_archives_run_as_jobs() {
    let (control, user, id) = server_with_data("files@example.com").await;
    let (token, base) = (user.access_token.as_str(), format!("/api/servers/{id}"));
    let call = |method: &'static str, path: String, body: Option<Value>| {
        let control = &control;
        async move { control.call(method, &path, Some(token), body).await }
    };

    assert_eq!(call("POST", format!("{base}/files/mkdir"), Some(json!({"path": "config"}))).await.0, 201);
    let properties = b"motd=hello\nmax-players=20\n".to_vec();
    let (status, _) = control
        .send(
            "PUT",
            &format!("{base}/files/content?path=config/server.properties"),
            token,
            properties.clone(),
        )
        .await;
    assert_eq!(status, 201);
    let (status, listing) = call("GET", format!("{base}/files?path=config"), None).await;
    assert_eq!(status, 200, "{listing}");
    assert_eq!(listing[0]["name"], "server.properties");
    assert_eq!(listing[0]["size"], properties.len());
    let (status, downloaded) = control
        .send("GET", &format!("{base}/files/content?path=config%2Fserver.properties"), token, Vec::new())
        .await;
    assert_eq!((status, downloaded), (200, properties.clone()));

    // Rename, copy, chmod, then the root lists all of it, directories first.
    let rename = json!({"from": "config/server.properties", "to": "config/game.properties"});
    assert_eq!(call("POST", format!("{base}/files/rename"), Some(rename)).await.0, 204);
    assert_eq!(
        call("POST", format!("{base}/files/copy"), Some(json!({"from": "config", "to": "config-copy"})))
            .await
            .0,
        201
    );
    let chmod = json!({"path": "config/game.properties", "mode": 0o600});
    assert_eq!(call("POST", format!("{base}/files/chmod"), Some(chmod)).await.0, 204);
    let (_, listing) = call("GET", format!("{base}/files?path=config"), None).await;
    assert_eq!((&listing[0]["name"], &listing[0]["mode"]), (&json!("game.properties"), &json!(0o600)));
    let (_, copied) = control
        .send("GET", &format!("{base}/files/content?path=config-copy/game.properties"), token, Vec::new())
        .await;
    assert_eq!(copied, properties);

    // Compress and extract run as jobs; what comes out is what went in.
    let compress = json!({"paths": ["config"], "to": "config.tar.gz"});
    let job = job_succeeds(
        &control,
        &user,
        id,
        call("POST", format!("{base}/files/compress"), Some(compress)).await,
    )
    .await;
    assert_eq!(job["kind"], "compress");
    let extract = json!({"path": "config.tar.gz", "to": "unpacked"});
    job_succeeds(&control, &user, id, call("POST", format!("{base}/files/extract"), Some(extract)).await)
        .await;
    let (_, unpacked) = control
        .send("GET", &format!("{base}/files/content?path=unpacked/config/game.properties"), token, Vec::new())
        .await;
    assert_eq!(unpacked, properties);
    let (_, jobs) = call("GET", format!("{base}/jobs"), None).await;
    assert!(jobs.as_array().expect("jobs").len() >= 2, "{jobs}");

    // A zip bomb (a small archive that unpacks huge) is stopped by the ratio limit.
    let bomb = zip(&[("zeros.bin", &vec![0u8; 64 << 20][..])]);
    assert!(bomb.len() < 1 << 20, "the bomb is {} bytes", bomb.len());
    assert_eq!(control.send("PUT", &format!("{base}/files/content?path=bomb.zip"), token, bomb).await.0, 201);
    let (status, job) =
        call("POST", format!("{base}/files/extract"), Some(json!({"path": "bomb.zip", "to": "boom"}))).await;
    assert_eq!(status, 202, "{job}");
    let ended = control.wait_for_job(&user, id, &job).await;
    assert_eq!(ended["state"], "failed", "{ended}");
    assert!(ended["message"].as_str().unwrap_or_default().contains("archive bomb"), "{ended}");
    let (_, root) = call("GET", format!("{base}/files"), None).await;
    assert!(!root.to_string().contains("boom") && !root.to_string().contains("zlh-extract"), "{root}");

    // Too large an upload: 413, and nothing of it left behind. At 100 times the limit the agent
    // refuses it before reading, and the answer still arrives (not a reset, not a 502).
    let (status, answer) =
        control.send("PUT", &format!("{base}/files/content?path=big.bin"), token, vec![7u8; 100 << 20]).await;
    let answer: Value = serde_json::from_slice(&answer).expect("json");
    assert_eq!((status, &answer["error"]["code"]), (413, &json!("payload_too_large")), "{answer}");
    let server_dir = control.server_dir(id);
    let leftovers: Vec<String> = snapshot(&server_dir)
        .into_keys()
        .filter(|p| p.contains("zlh-upload") || p.contains("big.bin"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Delete: a directory needs `recursive`; then it is gone.
    let (status, refused) = call("DELETE", format!("{base}/files?path=config-copy"), None).await;
    assert_eq!((status, &refused["error"]["code"]), (409, &json!("directory_not_empty")), "{refused}");
    assert_eq!(call("DELETE", format!("{base}/files?path=config-copy&recursive=true"), None).await.0, 204);
    let (_, root) = call("GET", format!("{base}/files"), None).await;
    let names: Vec<&str> = root.as_array().expect("root").iter().filter_map(|e| e["name"].as_str()).collect();
    assert!(
        names.contains(&"config") && names.contains(&"world") && !names.contains(&"config-copy"),
        "{names:?}"
    );
}

fn fabric_jar(id: &str, version: &str) -> Vec<u8> {
    let metadata = json!({"schemaVersion": 1, "id": id, "name": format!("{id} mod"), "version": version});
    zip(&[("fabric.mod.json", metadata.to_string().as_bytes()), ("a/B.class", b"\xca\xfe\xba\xbe")])
}

#[tokio::test]
async fn mods_install_from_the_store_or_an_upload_and_toggle() {
    let (control, user, id) = server_with_data("mods@example.com").await;
    let (token, base) = (user.access_token.as_str(), format!("/api/servers/{id}"));

    // Upload a Fabric mod and a Bukkit plugin; their own metadata names them.
    let (status, _) = control
        .send(
            "PUT",
            &format!("{base}/mods/upload?name=coolmod-1.2.0.jar"),
            token,
            fabric_jar("coolmod", "1.2.0"),
        )
        .await;
    assert_eq!(status, 201);
    let plugin = zip(&[("plugin.yml", b"name: Greeter\nversion: '0.3'\nmain: a.B\n")]);
    assert_eq!(
        control.send("PUT", &format!("{base}/mods/upload?name=greeter.jar"), token, plugin).await.0,
        201
    );
    let forge = zip(&[(
        "META-INF/mods.toml",
        b"modLoader=\"javafml\"\n[[mods]]\nmodId=\"ironbits\"\nversion=\"${file.jarVersion}\"\ndisplayName=\"Iron Bits\"\n",
    ), ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\nImplementation-Version: 4.5.6\n")]);
    assert_eq!(
        control.send("PUT", &format!("{base}/mods/upload?name=ironbits.jar"), token, forge).await.0,
        201
    );

    // Install from the artifact store: downloaded, SHA-256 checked, then in place.
    let stored = control.data.path().join("lithium.jar");
    std::fs::write(&stored, fabric_jar("lithium", "0.11.2")).expect("jar");
    control.cli(
        &[
            "artifacts",
            "add",
            "--kind",
            "mod",
            "--name",
            "lithium",
            "--version",
            "0.11.2",
            &stored.display().to_string(),
        ],
        "",
    );
    let install = json!({"name": "lithium", "version": "0.11.2"});
    job_succeeds(
        &control,
        &user,
        id,
        control.call("POST", &format!("{base}/mods/install"), Some(token), Some(install)).await,
    )
    .await;
    let unknown = json!({"name": "lithium", "version": "9.9.9"});
    let (status, job) =
        control.call("POST", &format!("{base}/mods/install"), Some(token), Some(unknown)).await;
    assert_eq!(status, 202);
    let failed = control.wait_for_job(&user, id, &job).await;
    assert_eq!(failed["state"], "failed");
    assert!(
        failed["message"].as_str().unwrap_or_default().contains("not in the artifact catalog"),
        "{failed}"
    );

    let (status, mods) = control.call("GET", &format!("{base}/mods"), Some(token), None).await;
    assert_eq!(status, 200);
    let summary: Vec<(String, String, String, bool)> = mods
        .as_array()
        .expect("mods")
        .iter()
        .map(|m| {
            let text = |k: &str| m[k].as_str().unwrap_or("-").to_owned();
            (
                text("file"),
                text("name"),
                format!("{} {}", text("loader"), text("version")),
                m["enabled"] == true,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("coolmod-1.2.0.jar".into(), "coolmod mod".into(), "fabric 1.2.0".into(), true),
            ("greeter.jar".into(), "Greeter".into(), "bukkit 0.3".into(), true),
            ("ironbits.jar".into(), "Iron Bits".into(), "forge 4.5.6".into(), true),
            ("lithium-0.11.2.jar".into(), "lithium mod".into(), "fabric 0.11.2".into(), true),
        ]
    );

    // Disable, enable, remove.
    let (status, disabled) =
        control.call("POST", &format!("{base}/mods/greeter.jar/disable"), Some(token), None).await;
    assert_eq!((status, &disabled), (200, &json!({"file": "greeter.jar.disabled", "enabled": false})));
    let (_, mods) = control.call("GET", &format!("{base}/mods"), Some(token), None).await;
    assert!(
        mods.as_array()
            .expect("mods")
            .iter()
            .any(|m| m["file"] == "greeter.jar.disabled" && m["enabled"] == false)
    );
    let (status, enabled) =
        control.call("POST", &format!("{base}/mods/greeter.jar.disabled/enable"), Some(token), None).await;
    assert_eq!((status, &enabled), (200, &json!({"file": "greeter.jar", "enabled": true})));
    assert_eq!(
        control.call("DELETE", &format!("{base}/mods/coolmod-1.2.0.jar"), Some(token), None).await.0,
        204
    );
    let (status, gone) =
        control.call("DELETE", &format!("{base}/mods/coolmod-1.2.0.jar"), Some(token), None).await;
    assert_eq!((status, &gone["error"]["code"]), (404, &json!("not_found")));
    assert!(control.server_dir(id).join("mods/greeter.jar").is_file());
}

#[tokio::test]
async fn backups_answer_in_one_envelope_and_restore_what_was_saved() {
    let (control, user, id) = server_with_data("backups@example.com").await;
    let (token, base) = (user.access_token.as_str(), format!("/api/game/servers/{id}/backups"));
    let files = format!("/api/servers/{id}/files");
    control.send("PUT", &format!("{files}/content?path=notes.txt"), token, b"before".to_vec()).await;
    // A private directory and times from long ago: a restore brings back modes and times too.
    let (private, key) =
        (control.server_dir(id).join("private"), control.server_dir(id).join("private/key.txt"));
    std::fs::create_dir(&private).expect("mkdir");
    std::fs::write(&key, "secret").expect("key");
    let long_ago = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    std::fs::File::options().write(true).open(&key).expect("key").set_modified(long_ago).expect("mtime");
    std::fs::File::open(&private).expect("dir").set_modified(long_ago).expect("mtime");
    std::fs::set_permissions(&private, std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod");

    let (status, created) = control.call("POST", &base, Some(token), None).await;
    assert_eq!((status, &created["ok"]), (202, &json!(true)), "{created}");
    assert_eq!(created["data"]["kind"], "backup");
    job_succeeds(&control, &user, id, (status, created)).await;
    let (status, listed) = control.call("GET", &base, Some(token), None).await;
    assert_eq!((status, &listed["ok"]), (200, &json!(true)), "{listed}");
    let backup = listed["data"][0].clone();
    assert_eq!(backup["quiesced"], true, "a running sample server is quiesced: {backup}");
    assert!(backup["files"].as_u64().expect("files") >= 2, "{backup}");
    let before = snapshot(&control.server_dir(id));

    // Change the world, then restore: exactly the saved tree, and the server runs again.
    control.send("PUT", &format!("{files}/content?path=notes.txt"), token, b"after".to_vec()).await;
    control.send("PUT", &format!("{files}/content?path=new.txt"), token, b"new".to_vec()).await;
    control
        .call(
            "POST",
            &format!("/api/servers/{id}/console/command"),
            Some(token),
            Some(json!({"command": "save-off"})),
        )
        .await;
    let backup_id = backup["id"].as_str().expect("id");
    let restore = control.call("POST", &format!("{base}/restore?id={backup_id}"), Some(token), None).await;
    assert_eq!(restore.1["ok"], true, "{}", restore.1);
    let ended = job_succeeds(&control, &user, id, restore).await;
    assert_eq!(ended["kind"], "restore");
    assert_eq!(ended["message"], format!("restored backup {backup_id}"), "{ended}");
    control.wait_for_status(&user, id, "running after the restore", |s| s["state"] == "running").await;
    let (_, notes) = control.send("GET", &format!("{files}/content?path=notes.txt"), token, Vec::new()).await;
    assert_eq!(notes, b"before");
    let after = snapshot(&control.server_dir(id));
    let differing: Vec<&String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| !k.starts_with("world/") && before.get(*k) != after.get(*k))
        .collect();
    assert!(differing.is_empty(), "the restored tree differs in {differing:?}");
    use std::os::unix::fs::PermissionsExt;
    let (dir, file) = (std::fs::metadata(&private).expect("dir"), std::fs::metadata(&key).expect("key"));
    assert_eq!(dir.permissions().mode() & 0o777, 0o700, "the directory's mode");
    assert_eq!((dir.modified().ok(), file.modified().ok()), (Some(long_ago), Some(long_ago)), "times");

    // Errors in the same envelope, with the agent's status.
    let (status, missing) =
        control.call("POST", &format!("{base}/restore?id=20990101000000-ffff"), Some(token), None).await;
    assert_eq!(
        (status, &missing["ok"], &missing["error"]["code"]),
        (404, &json!(false), &json!("not_found")),
        "{missing}"
    );
    let (status, bad) =
        control.call("POST", &base, Some(token), Some(json!({"exclude": "not a list"}))).await;
    assert_eq!((status, &bad["ok"]), (400, &json!(false)), "{bad}");
    let (status, deleted) = control.call("DELETE", &format!("{base}/{backup_id}"), Some(token), None).await;
    assert_eq!((status, &deleted), (200, &json!({"ok": true, "data": {"id": backup_id, "deleted": true}})));
    let (_, listed) = control.call("GET", &base, Some(token), None).await;
    assert_eq!(listed, json!({"ok": true, "data": []}));
}

#[tokio::test]
async fn backups_are_named_locked_against_retention_and_downloaded() {
    let spec = ControlSpec {
        agent_defaults: format!("{}[backups]\nkeep = 2\n", ControlSpec::default().agent_defaults),
        ..ControlSpec::default()
    };
    let control = TestControlPlane::start(zlh(), &spec).await;
    let user = control.register("keeper@example.com").await;
    let id = control.create_sample_server(&user, "Kept").await["id"].as_i64().expect("id");
    let (token, base) = (user.access_token.as_str(), format!("/api/game/servers/{id}/backups"));
    let listed = async || {
        let (_, listed) = control.call("GET", &base, Some(token), None).await;
        listed["data"].as_array().expect("backups").clone()
    };
    let take = async |body: Option<Value>| {
        let created = control.call("POST", &base, Some(token), body).await;
        job_succeeds(&control, &user, id, created).await;
    };

    let (status, bad) = control.call("POST", &base, Some(token), Some(json!({"name": "a\u{7}b"}))).await;
    assert_eq!((status, &bad["error"]["code"]), (400, &json!("bad_request")), "{bad}");
    take(Some(json!({"name": "  Before the update ", "locked": true}))).await;
    let first = listed().await[0].clone();
    assert_eq!((&first["name"], &first["locked"]), (&json!("Before the update"), &json!(true)), "{first}");
    // Retention keeps two: the oldest unlocked one goes, the locked one stays.
    take(None).await;
    let second = listed().await[1]["id"].clone();
    take(None).await;
    let kept = listed().await;
    let ids: Vec<&Value> = kept.iter().map(|b| &b["id"]).collect();
    assert_eq!(ids.len(), 2, "{kept:?}");
    assert!(ids.contains(&&first["id"]) && !ids.contains(&&second), "{kept:?}");

    // A locked backup is not deleted; renamed and unlocked, it is.
    let first_id = first["id"].as_str().expect("id");
    let one = format!("{base}/{first_id}");
    let (status, refused) = control.call("DELETE", &one, Some(token), None).await;
    assert_eq!(
        (status, &refused["ok"], &refused["error"]["code"]),
        (409, &json!(false), &json!("backup_locked"))
    );
    let (status, bad) = control.call("PATCH", &one, Some(token), Some(json!({"lock": false}))).await;
    assert_eq!(status, 400, "{bad}");

    // Downloaded by an API client, and through a single-use link by a browser: the archive
    // whose SHA-256 the backup recorded.
    let (status, archive) = control.send("GET", &format!("{one}/download"), token, Vec::new()).await;
    assert_eq!(status, 200);
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(&archive).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(json!(digest), first["sha256"]);
    assert_eq!(&archive[..4], &[0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");
    let (status, link) = control.call("POST", &format!("{one}/download"), Some(token), None).await;
    assert_eq!(status, 200, "{link}");
    let url = format!("{}{}", control.url, link["url"].as_str().expect("url"));
    let http = reqwest::Client::new();
    let browser = http.get(&url).send().await.expect("download");
    assert_eq!(browser.status(), 200);
    assert!(browser.headers()["content-disposition"].to_str().expect("header").contains(".tar.zst"));
    assert_eq!(browser.bytes().await.expect("body").to_vec(), archive);
    let again = http.get(&url).send().await.expect("again");
    assert_eq!(again.status(), 401, "a link is used once");
    let (status, _) =
        control.call("GET", &format!("{base}/20990101000000-ffff/download"), Some(token), None).await;
    assert_eq!(status, 404);

    let change = json!({"name": "Renamed", "locked": false});
    let (status, changed) = control.call("PATCH", &one, Some(token), Some(change)).await;
    assert_eq!(
        (status, &changed["data"]["name"], &changed["data"]["locked"]),
        (200, &json!("Renamed"), &json!(false))
    );
    let (status, _) = control.call("DELETE", &one, Some(token), None).await;
    assert_eq!(status, 200);
    assert_eq!(listed().await.len(), 1);
}

/// Every file route, with every way out of the server directory we know: each is refused, and
/// nothing outside changes.
#[tokio::test]
async fn no_file_route_reaches_outside_the_server_directory() {
    let (control, user, id) = server_with_data("escape@example.com").await;
    let (token, base) = (user.access_token.as_str(), format!("/api/servers/{id}"));
    let server_dir = control.server_dir(id);
    // Outside: a sibling of the server directory (inside the agent's root) with a secret.
    let outside = server_dir.parent().expect("parent").join("outside");
    std::fs::create_dir_all(&outside).expect("outside");
    std::fs::write(outside.join("secret.txt"), "outside secret").expect("secret");
    // Links the game itself could have made: relative, absolute, to a directory, to a file.
    for (link, target) in [
        ("up", "../outside".to_owned()),
        ("abs", outside.display().to_string()),
        ("secret-link.txt", outside.join("secret.txt").display().to_string()),
        ("etc", "/etc".to_owned()),
    ] {
        std::os::unix::fs::symlink(target, server_dir.join(link)).expect("symlink");
    }
    std::fs::write(server_dir.join("inside.txt"), "inside").expect("inside");
    std::fs::create_dir_all(server_dir.join("mods")).expect("mods");
    let watched = control.data.path().join(format!("servers/{id}/root"));
    let everything_but_the_server = || {
        snapshot(&watched)
            .into_iter()
            .filter(|(path, _)| !path.starts_with("opt/zlh/server") && !path.starts_with("var/"))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let before = everything_but_the_server();

    let escapes = [
        "..",
        "../outside/secret.txt",
        "/etc/passwd",
        "%2Fetc%2Fpasswd",
        "..%2Foutside%2Fsecret.txt",
        "%2e%2e/outside/secret.txt",
        "world/../../outside/secret.txt",
        "up/secret.txt",
        "abs/secret.txt",
        "etc/passwd",
        "nul%00byte",
    ];
    let mut refused = Vec::new();
    // The links themselves may be replaced, renamed or copied (as links): only reading through
    // them must fail.
    for link in ["up", "abs", "etc", "secret-link.txt"] {
        for route in [format!("{base}/files?path={link}"), format!("{base}/files/content?path={link}")] {
            let (status, body) = control.send("GET", &route, token, Vec::new()).await;
            refused.push(assert_refused(format!("GET {route}"), status, &body));
        }
        let (status, body) = control
            .call(
                "POST",
                &format!("{base}/files/chmod"),
                Some(token),
                Some(json!({"path": link, "mode": 0o777})),
            )
            .await;
        refused.push(assert_refused(format!("chmod {link}"), status, body.to_string().as_bytes()));
    }
    for path in escapes {
        for (method, route) in [
            ("GET", format!("{base}/files?path={path}")),
            ("GET", format!("{base}/files/content?path={path}")),
            ("PUT", format!("{base}/files/content?path={path}")),
            ("PUT", format!("{base}/files/content?path={path}/pwned.txt")),
            ("DELETE", format!("{base}/files?path={path}/secret.txt")),
            ("PUT", format!("{base}/mods/upload?name={path}")),
            ("POST", format!("{base}/mods/{path}/enable")),
            ("DELETE", format!("{base}/mods/{path}")),
        ] {
            let (status, body) = control.send(method, &route, token, b"pwned".to_vec()).await;
            refused.push(assert_refused(format!("{method} {route}"), status, &body));
        }
        let plain = path.replace("%2F", "/").replace("%2e", ".").replace("%00", "\0");
        for (route, body) in [
            ("mkdir", json!({"path": format!("{plain}/made")})),
            ("rename", json!({"from": "inside.txt", "to": plain})),
            ("rename", json!({"from": plain, "to": "stolen.txt"})),
            ("copy", json!({"from": plain, "to": "stolen.txt"})),
            ("copy", json!({"from": "inside.txt", "to": format!("{plain}/copied.txt")})),
            ("chmod", json!({"path": plain, "mode": 0o777})),
            ("compress", json!({"paths": [plain], "to": "stolen.tar.gz"})),
            ("compress", json!({"paths": ["inside.txt"], "to": format!("{plain}/out.tar.gz")})),
            ("extract", json!({"path": plain, "to": "x"})),
        ] {
            let (status, answer) =
                control.call("POST", &format!("{base}/files/{route}"), Some(token), Some(body.clone())).await;
            let code = answer["error"]["code"].as_str().unwrap_or_default();
            if status == 202 {
                panic!("{route} {body} started a job: {answer}");
            }
            assert!(
                [400, 403, 404, 409].contains(&status)
                    && ["invalid_path", "path_outside_root", "not_found", "already_exists"].contains(&code),
                "{route} {body} was not refused: {status} {answer}"
            );
            refused.push(format!("{route} {body}"));
        }
    }

    // Hostile archives: entries that climb out, absolute entries, links out then through.
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        ("climb.tar.gz", raw_tar_gz(&[TarEntry::File("../outside/evil.txt", b"evil")])),
        ("absolute.tar.gz", raw_tar_gz(&[TarEntry::File("/tmp/zlh-evil.txt", b"evil")])),
        (
            "link-then-write.tar.gz",
            raw_tar_gz(&[
                TarEntry::Symlink("door", "../../outside"),
                TarEntry::File("door/evil.txt", b"evil"),
            ]),
        ),
        ("hardlink.tar.gz", raw_tar_gz(&[TarEntry::Hardlink("hard.txt", "../outside/secret.txt")])),
        ("slip.zip", zip(&[("../../outside/evil.txt", b"evil")])),
        ("absolute.zip", zip(&[("/tmp/zlh-evil.txt", b"evil")])),
    ];
    for (name, bytes) in hostile {
        assert_eq!(
            control.send("PUT", &format!("{base}/files/content?path={name}"), token, bytes).await.0,
            201
        );
        let (status, job) = control
            .call(
                "POST",
                &format!("{base}/files/extract"),
                Some(token),
                Some(json!({"path": name, "to": "x"})),
            )
            .await;
        assert_eq!(status, 202, "{job}");
        let ended = control.wait_for_job(&user, id, &job).await;
        assert_eq!(ended["state"], "failed", "{name} was unpacked: {ended}");
        refused.push(format!("extract {name}"));
    }

    assert_eq!(everything_but_the_server(), before, "something outside the server directory changed");
    assert!(!std::path::Path::new("/tmp/zlh-evil.txt").exists());
    assert_eq!(std::fs::read_to_string(outside.join("secret.txt")).expect("secret"), "outside secret");
    // Links inside that stay inside still work.
    std::os::unix::fs::symlink("inside.txt", server_dir.join("alias.txt")).expect("symlink");
    let (status, body) =
        control.send("GET", &format!("{base}/files/content?path=alias.txt"), token, Vec::new()).await;
    assert_eq!((status, body), (200, b"inside".to_vec()));
    assert!(refused.len() > 200, "{}", refused.len());
}

fn assert_refused(what: String, status: u16, body: &[u8]) -> String {
    let code = serde_json::from_slice::<Value>(body).map(|b| b["error"]["code"].clone()).unwrap_or_default();
    assert!(
        [400, 403, 404].contains(&status)
            && ["invalid_path", "path_outside_root", "not_found", "bad_request"]
                .contains(&code.as_str().unwrap_or("")),
        "{what} was not refused: {status} {}",
        String::from_utf8_lossy(body)
    );
    what
}

#[tokio::test]
async fn odd_names_get_a_clear_answer() {
    let (control, user, id) = server_with_data("names@example.com").await;
    let token = user.access_token.as_str();
    let upload = async |name: &str| {
        let path = format!("/api/servers/{id}/files/content?path={}", urlencoding(name));
        let (status, body) = control.send("PUT", &path, token, b"data".to_vec()).await;
        (status, serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null))
    };
    // Up to the filesystem's 255 bytes a name is fine, however long.
    assert_eq!(upload(&"n".repeat(255)).await.0, 201);
    for name in ["n".repeat(256), "two\nlines.txt".to_owned(), "tab\there".to_owned()] {
        let (status, body) = upload(&name).await;
        assert_eq!((status, &body["error"]["code"]), (400, &json!("invalid_path")), "{name:?}: {body}");
    }
    // A name the game itself wrote (with a newline) still downloads.
    std::fs::write(control.server_dir(id).join("made\nby game"), "from the game").expect("write");
    let path = format!("/api/servers/{id}/files/content?path={}", urlencoding("made\nby game"));
    let (status, body) = control.send("GET", &path, token, Vec::new()).await;
    assert_eq!((status, body.as_slice()), (200, b"from the game".as_slice()));
    let left: Vec<String> = std::fs::read_dir(control.server_dir(id))
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".zlh-upload"))
        .collect();
    assert!(left.is_empty(), "no temporary left: {left:?}");
}

/// Percent-encodes a query value.
fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn ordinary_mistakes_get_clear_answers_and_change_nothing() {
    let (control, user, id) = server_with_data("mistakes@example.com").await;
    let token = user.access_token.as_str();
    let files = format!("/api/servers/{id}/files");
    let dir = control.server_dir(id);
    std::fs::create_dir_all(dir.join("w/sub")).expect("mkdir");
    std::fs::write(dir.join("w/sub/a.txt"), "a").expect("write");
    std::fs::write(dir.join("plain.txt"), "plain").expect("write");
    // The running game saves its own world meanwhile; everything else must stay as it is.
    let not_the_world = |dir: &std::path::Path| {
        let mut files = snapshot(dir);
        files.retain(|name, _| !name.starts_with("world"));
        files
    };
    let before = not_the_world(&dir);
    let json_call = async |method: &str, path: &str, body: Value| {
        control.call(method, &format!("{files}{path}"), Some(token), Some(body)).await
    };
    let mut answers = vec![
        (
            "list through a file",
            control.call("GET", &format!("{files}?path=plain.txt/x"), Some(token), None).await,
        ),
        ("mkdir through a file", json_call("POST", "/mkdir", json!({"path": "plain.txt/d"})).await),
        (
            "move a directory into itself",
            json_call("POST", "/rename", json!({"from": "w", "to": "w/inner"})).await,
        ),
        ("copy a directory into itself", json_call("POST", "/copy", json!({"from": "w", "to": "w/c"})).await),
        (
            "copy everything into a part of it",
            json_call("POST", "/copy", json!({"from": "", "to": "w/all"})).await,
        ),
    ];
    for (what, path) in [("upload onto a directory", "w"), ("upload through a file", "plain.txt/new")] {
        let (status, body) =
            control.send("PUT", &format!("{files}/content?path={path}"), token, b"x".to_vec()).await;
        answers.push((what, (status, serde_json::from_slice(&body).unwrap_or(Value::Null))));
    }
    for (what, (status, body)) in answers {
        assert_eq!((status, &body["error"]["code"]), (400, &json!("invalid_path")), "{what}: {body}");
    }
    assert_eq!(not_the_world(&dir), before, "nothing changed");

    // An upload whose client stalls: its temporary is never listed, and it goes.
    let stalled = reqwest::Body::wrap_stream(futures_util::StreamExt::chain(
        futures_util::stream::iter([Ok::<_, std::io::Error>(vec![b'x'; 1024])]),
        futures_util::stream::pending(),
    ));
    let request = control
        .http
        .put(format!("{}{files}/content?path=w/stalled.bin", control.url))
        .bearer_auth(token)
        .body(stalled)
        .send();
    let upload = tokio::spawn(request);
    let temporaries = || -> Vec<String> {
        std::fs::read_dir(dir.join("w"))
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".zlh-upload-"))
            .collect()
    };
    zlh_testkit::eventually("the upload's temporary", std::time::Duration::from_secs(5), || async {
        (!temporaries().is_empty()).then_some(())
    })
    .await;
    let (_, listed) = control.call("GET", &format!("{files}?path=w"), Some(token), None).await;
    assert!(!listed.to_string().contains(".zlh-upload-"), "{listed}");
    zlh_testkit::eventually(
        "the stalled upload to be given up",
        std::time::Duration::from_secs(15),
        || async { temporaries().is_empty().then_some(()) },
    )
    .await;
    upload.abort();
    assert!(!dir.join("w/stalled.bin").exists());

    // A pipe (a game can make one) is never opened: clear refusals, and the agent keeps answering.
    for fifo in ["pipe", "mods/trap.jar", "trap.zip", "w/pipe"] {
        std::fs::create_dir_all(dir.join(fifo).parent().expect("parent")).expect("mkdir");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join(fifo),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from(0o644),
            0,
        )
        .expect("mkfifo");
    }
    let (status, body) = control.send("GET", &format!("{files}/content?path=pipe"), token, Vec::new()).await;
    let answers = [
        ("download a pipe", (status, serde_json::from_slice(&body).unwrap_or(Value::Null))),
        ("copy a pipe", json_call("POST", "/copy", json!({"from": "pipe", "to": "pipe2"})).await),
        ("extract a pipe", json_call("POST", "/extract", json!({"path": "trap.zip", "to": "x"})).await),
    ];
    for (what, (status, body)) in answers {
        assert_eq!((status, &body["error"]["code"]), (400, &json!("invalid_path")), "{what}: {body}");
    }
    let (status, mods) = control.call("GET", &format!("/api/servers/{id}/mods"), Some(token), None).await;
    assert_eq!(status, 200, "{mods}");
    assert!(!mods.to_string().contains("trap.jar"), "a pipe is no mod: {mods}");
    let (_, listed) = control.call("GET", &format!("{files}?path="), Some(token), None).await;
    let pipe =
        listed.as_array().expect("list").iter().find(|e| e["name"] == "pipe").cloned().unwrap_or_default();
    assert_eq!(pipe["kind"], "special", "{listed}");
    // A directory holding a pipe copies without it.
    assert_eq!(json_call("POST", "/copy", json!({"from": "w", "to": "w2"})).await.0, 201);
    assert!(dir.join("w2/sub/a.txt").exists() && !dir.join("w2/pipe").exists());
    let (status, _) = control.call("GET", &format!("/api/servers/{id}/status"), Some(token), None).await;
    assert_eq!(status, 200);

    // An extraction that cannot merge whole merges nothing: the 51st entry is a file where a
    // directory is.
    std::fs::create_dir_all(dir.join("batch/clash")).expect("mkdir");
    std::fs::write(dir.join("batch/clash/keep.txt"), "keep").expect("write");
    let names: Vec<String> =
        (0..50).map(|n| format!("batch/f{n:02}.txt")).chain(["batch/clash".to_owned()]).collect();
    let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), b"new".as_slice())).collect();
    let archive = zip(&entries);
    assert_eq!(control.send("PUT", &format!("{files}/content?path=batch.zip"), token, archive).await.0, 201);
    let before = not_the_world(&dir);
    let (status, job) = json_call("POST", "/extract", json!({"path": "batch.zip", "to": ""})).await;
    assert_eq!(status, 202, "{job}");
    let ended = control.wait_for_job(&user, id, &job).await;
    assert_eq!(ended["state"], "failed", "{ended}");
    assert!(ended["message"].as_str().unwrap_or_default().contains("clashes"), "{ended}");
    assert_eq!(not_the_world(&dir), before, "not one file of it merged");
}
