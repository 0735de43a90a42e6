//! Accounts: registration, sign-in, rotating refresh tokens, revocation, limits, resets.

use std::time::Duration;

use serde_json::{Value, json};
use zlh_testkit::{ControlSpec, TestControlPlane};

use crate::zlh;

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_ends_the_session() {
    let control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    let user = control.register("eve@example.com").await;
    let (status, me) = control.call("GET", "/api/auth/me", Some(&user.access_token), None).await;
    assert_eq!((status, &me["email"], &me["role"]), (200, &json!("eve@example.com"), &json!("user")));

    let (status, second) = control
        .call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": user.refresh_token})))
        .await;
    assert_eq!(status, 200, "{second}");
    let second_refresh = second["refreshToken"].as_str().expect("rotated");
    assert_ne!(second_refresh, user.refresh_token);
    let second_access = second["accessToken"].as_str().expect("access");

    // The first refresh token again: someone copied it. The whole session ends.
    let (status, body) = control
        .call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": user.refresh_token})))
        .await;
    assert_eq!((status, code(&body)), (401, "token_reused"));
    let (status, body) =
        control.call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": second_refresh}))).await;
    assert_eq!((status, code(&body)), (401, "token_invalid"), "the successor died with the session");
    for token in [user.access_token.as_str(), second_access] {
        let (status, body) = control.call("GET", "/api/auth/me", Some(token), None).await;
        assert_eq!(
            (status, code(&body)),
            (401, "token_invalid"),
            "access tokens of the session are revoked too"
        );
    }
    // Other sessions of the same user are untouched.
    let other = control.login("eve@example.com", &user.password).await;
    assert_eq!(control.call("GET", "/api/auth/me", Some(&other.access_token), None).await.0, 200);
}

#[tokio::test]
async fn logout_revokes_and_forged_or_expired_tokens_are_refused() {
    let spec = ControlSpec { access_token_ttl: "1s".into(), ..ControlSpec::default() };
    let control = TestControlPlane::start(zlh(), &spec).await;
    let user = control.register("fay@example.com").await;

    let (status, body) = control.call("GET", "/api/auth/me", None, None).await;
    assert_eq!((status, code(&body)), (401, "unauthorized"));
    let mut parts: Vec<String> = user.access_token.split('.').map(str::to_owned).collect();
    parts[2] = parts[2].chars().rev().collect();
    let (status, body) = control.call("GET", "/api/auth/me", Some(&parts.join(".")), None).await;
    assert_eq!((status, code(&body)), (401, "token_invalid"), "forged signature");
    let (status, body) = control.call("GET", "/api/auth/me", Some("not.a.token"), None).await;
    assert_eq!((status, code(&body)), (401, "token_invalid"));

    // A one-second token expires (polled, not slept).
    zlh_testkit::eventually("the access token to expire", Duration::from_secs(5), || async {
        let (status, body) = control.call("GET", "/api/auth/me", Some(&user.access_token), None).await;
        (status == 401 && code(&body) == "token_expired").then_some(())
    })
    .await;

    let fresh = control.login("fay@example.com", &user.password).await;
    let (status, _) = control
        .call("POST", "/api/auth/logout", None, Some(json!({"refreshToken": fresh.refresh_token})))
        .await;
    assert_eq!(status, 204);
    let (status, body) = control
        .call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": fresh.refresh_token})))
        .await;
    assert_eq!((status, code(&body)), (401, "token_invalid"), "revoked by logout");
    let (status, body) = control.call("GET", "/api/auth/me", Some(&fresh.access_token), None).await;
    assert_eq!((status, code(&body)), (401, "token_invalid"));
}

#[tokio::test]
async fn registration_rules() {
    let control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    control.register("gus@example.com").await;
    let cases = [
        (json!({"email": "not-an-email", "password": "long enough password"}), 400, "invalid_email"),
        (json!({"email": "hal@example.com", "password": "short"}), 400, "weak_password"),
        (json!({"email": "hal@example.com"}), 400, "invalid_json"),
    ];
    for (request, status, expected) in cases {
        let (got, body) = control.call("POST", "/api/auth/register", None, Some(request.clone())).await;
        assert_eq!((got, code(&body)), (status, expected), "{request}");
    }

    let closed =
        TestControlPlane::start(zlh(), &ControlSpec { allow_registration: false, ..ControlSpec::default() })
            .await;
    let (status, body) = closed
        .call(
            "POST",
            "/api/auth/register",
            None,
            Some(json!({"email": "a@b.c", "password": "long enough password"})),
        )
        .await;
    assert_eq!((status, code(&body)), (403, "registration_disabled"));
    // The operator still creates accounts with the admin CLI.
    let output = closed.admin(
        &["create-user", "--email", "ops@example.com", "--admin", "--password-stdin"],
        "operator password 1\n",
    );
    assert!(output.contains("created user ops@example.com (admin)"), "{output}");
    let admin = closed.login("ops@example.com", "operator password 1").await;
    let (_, me) = closed.call("GET", "/api/auth/me", Some(&admin.access_token), None).await;
    assert_eq!(me["role"], "admin");
    let output = closed.admin(&["reset-password", "--email", "ops@example.com"], "");
    let generated = output.lines().find_map(|l| l.strip_prefix("password: ")).expect("a generated password");
    let (status, _) = closed.call("GET", "/api/auth/me", Some(&admin.access_token), None).await;
    assert_eq!(status, 401, "a reset ends every session");
    closed.login("ops@example.com", generated).await;
}

#[tokio::test]
async fn registration_reveals_no_account_and_proves_the_address() {
    let control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    let gus = control.register("gus@example.com").await;
    let register = async |email: &str, password: &str| {
        control
            .call("POST", "/api/auth/register", None, Some(json!({"email": email, "password": password})))
            .await
    };

    // Registering a taken address answers as a new one does; the owner is told, nothing changes.
    let (taken, taken_body) = register("GUS@example.com", "somebody else's password").await;
    let (fresh, fresh_body) = register("hal@example.com", "hal's own passphrase").await;
    assert_eq!((taken, fresh), (202, 202), "{taken_body} {fresh_body}");
    assert_eq!(taken_body, json!({"email": "gus@example.com"}));
    assert_eq!(fresh_body, json!({"email": "hal@example.com"}));
    let to_gus: Vec<Value> = control.outbox().into_iter().filter(|m| m["to"] == "gus@example.com").collect();
    assert_eq!(to_gus.len(), 2, "the verification, then the note: {to_gus:?}");
    assert!(to_gus[1]["subject"].as_str().is_some_and(|s| s.contains("already have")), "{to_gus:?}");
    assert!(!to_gus[1]["body"].as_str().unwrap_or_default().contains("token="), "no link into the account");
    control.login("gus@example.com", &gus.password).await;
    let (status, _) = control
        .call(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({"email": "gus@example.com", "password": "somebody else's password"})),
        )
        .await;
    assert_eq!(status, 401);

    // An unproven address cannot sign in, even with the right password; the link signs in once.
    let login = json!({"email": "hal@example.com", "password": "hal's own passphrase"});
    let (status, body) = control.call("POST", "/api/auth/login", None, Some(login.clone())).await;
    assert_eq!((status, code(&body)), (403, "email_unverified"), "{body}");
    assert!(body.get("accessToken").is_none());
    let wrong = json!({"email": "hal@example.com", "password": "not hal's passphrase"});
    let (status, body) = control.call("POST", "/api/auth/login", None, Some(wrong)).await;
    assert_eq!((status, code(&body)), (401, "invalid_credentials"), "a wrong password learns nothing more");
    let token = control.mailed_token("hal@example.com", "/verify-email").expect("link");
    let (status, session) =
        control.call("POST", "/api/auth/verify-email", None, Some(json!({"token": token}))).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["user"]["emailVerified"], true);
    let (status, body) =
        control.call("POST", "/api/auth/verify-email", None, Some(json!({"token": token}))).await;
    assert_eq!((status, code(&body)), (401, "token_invalid"), "single use");
    assert_eq!(control.call("POST", "/api/auth/login", None, Some(login)).await.0, 200);
    assert!(
        control.logs().iter().all(|line| !line.contains(&token)),
        "verification tokens never reach the service log"
    );
}

#[tokio::test]
async fn failed_sign_ins_are_rate_limited_without_revealing_accounts() {
    let spec = ControlSpec { max_failed_logins: 3, ..ControlSpec::default() };
    let control = TestControlPlane::start(zlh(), &spec).await;
    let user = control.register("ivy@example.com").await;
    let wrong = json!({"email": "ivy@example.com", "password": "wrong password!"});
    let unknown = json!({"email": "nobody@example.com", "password": "wrong password!"});
    let (status, body) = control.call("POST", "/api/auth/login", None, Some(unknown)).await;
    let (status2, body2) = control.call("POST", "/api/auth/login", None, Some(wrong.clone())).await;
    assert_eq!((status, &body), (status2, &body2), "unknown account and wrong password look alike");
    assert_eq!((status, code(&body)), (401, "invalid_credentials"));
    for _ in 0..2 {
        control.call("POST", "/api/auth/login", None, Some(wrong.clone())).await;
    }
    let response = control
        .http
        .post(format!("{}/api/auth/login", control.url))
        .json(&json!({"email": "ivy@example.com", "password": user.password}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 429, "even the right password waits out the limit");
    assert!(response.headers().get("retry-after").is_some());
    assert_eq!(code(&response.json::<Value>().await.expect("json")), "rate_limited");
}

#[tokio::test]
async fn password_change_and_reset_end_other_sessions() {
    let control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    let user = control.register("jo@example.com").await;
    let elsewhere = control.login("jo@example.com", &user.password).await;

    let (status, body) = control
        .call(
            "POST",
            "/api/auth/password",
            Some(&user.access_token),
            Some(json!({"currentPassword": "nope nope nope", "newPassword": "a brand new password"})),
        )
        .await;
    assert_eq!((status, code(&body)), (401, "invalid_credentials"));
    let (status, session) = control
        .call(
            "POST",
            "/api/auth/password",
            Some(&user.access_token),
            Some(json!({"currentPassword": user.password, "newPassword": "a brand new password"})),
        )
        .await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(control.call("GET", "/api/auth/me", Some(&elsewhere.access_token), None).await.0, 401);
    let current = session["accessToken"].as_str().expect("new session");
    assert_eq!(control.call("GET", "/api/auth/me", Some(current), None).await.0, 200);

    // Reset: the answer never tells whether the account exists; the link goes to the outbox.
    for email in ["jo@example.com", "nobody@example.com"] {
        let (status, _) = control
            .call("POST", "/api/auth/password-reset/request", None, Some(json!({"email": email})))
            .await;
        assert_eq!(status, 202);
    }
    let resets: Vec<Value> = control
        .outbox()
        .into_iter()
        .filter(|m| m["body"].as_str().is_some_and(|b| b.contains("/reset-password")))
        .collect();
    assert_eq!(resets.len(), 1, "{resets:?}");
    assert_eq!(resets[0]["to"], "jo@example.com");
    let token = control.mailed_token("jo@example.com", "/reset-password").expect("reset link");
    assert!(
        control.logs().iter().all(|line| !line.contains(&token)),
        "reset tokens never reach the service log"
    );

    let confirm = json!({"token": token, "newPassword": "reset password 123"});
    assert_eq!(
        control.call("POST", "/api/auth/password-reset/confirm", None, Some(confirm.clone())).await.0,
        204
    );
    let (status, body) = control.call("POST", "/api/auth/password-reset/confirm", None, Some(confirm)).await;
    assert_eq!((status, code(&body)), (401, "token_invalid"), "single use");
    assert_eq!(
        control.call("GET", "/api/auth/me", Some(current), None).await.0,
        401,
        "the reset ended every session"
    );
    control.login("jo@example.com", "reset password 123").await;
}

#[tokio::test]
async fn guessing_slows_down_and_never_locks_the_owner_out() {
    let spec = ControlSpec { max_failed_logins: 3, ..ControlSpec::default() };
    let control = TestControlPlane::start(zlh(), &spec).await;
    let owner = control.register("uma@example.com").await;
    let from = |address: [u8; 4]| {
        reqwest::Client::builder().local_address(std::net::IpAddr::from(address)).build().expect("client")
    };
    let attempt = async |client: &reqwest::Client, password: &str| {
        let body = json!({"email": "uma@example.com", "password": password});
        let answer =
            client.post(format!("{}/api/auth/login", control.url)).json(&body).send().await.expect("login");
        let wait = answer.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        (answer.status().as_u16(), wait)
    };
    // An attacker on 127.0.0.1 guesses: after the free failures, each wait is longer.
    let attacker = from([127, 0, 0, 1]);
    let mut waits = Vec::new();
    for _ in 0..6 {
        match attempt(&attacker, "a wrong guess!").await {
            (401, None) => {}
            (429, Some(wait)) => {
                waits.push(wait);
                // Waiting it out lets the next guess through (and then fail).
                tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        waits.len() >= 2 && waits.windows(2).all(|w| w[1] >= w[0]) && waits.last() > waits.first(),
        "{waits:?}"
    );
    // The owner, from another address, signs in at once.
    assert_eq!(attempt(&from([127, 0, 0, 2]), &owner.password).await.0, 200);

    // A stolen session cannot guess the password either.
    let change = json!({"currentPassword": "not it at all", "newPassword": "an entirely new password"});
    let mut codes = Vec::new();
    for _ in 0..5 {
        let (_, body) =
            control.call("POST", "/api/auth/password", Some(&owner.access_token), Some(change.clone())).await;
        codes.push(code(&body).to_owned());
    }
    assert!(codes.iter().any(|c| c == "rate_limited"), "{codes:?}");
}

#[tokio::test]
async fn new_accounts_and_servers_have_limits() {
    let spec =
        ControlSpec { registrations_per_address: 2, max_servers_per_user: 2, ..ControlSpec::default() };
    let control = TestControlPlane::start(zlh(), &spec).await;
    let customer = control.register("first@example.com").await;
    control.register("second@example.com").await;
    let third = json!({"email": "third@example.com", "password": "a long enough passphrase"});
    let (status, body) = control.call("POST", "/api/auth/register", None, Some(third)).await;
    assert_eq!((status, code(&body)), (429, "rate_limited"), "{body}");

    // Two servers at most, even when three are asked for at once.
    let token = Some(customer.access_token.as_str());
    let body = |name: &str| Some(json!({"name": name, "type": "game", "template": "sample", "start": true}));
    let (a, b, c) = tokio::join!(
        control.call("POST", "/api/servers", token, body("a")),
        control.call("POST", "/api/servers", token, body("b")),
        control.call("POST", "/api/servers", token, body("c")),
    );
    let mut statuses = vec![a.0, b.0, c.0];
    statuses.sort();
    assert_eq!(statuses, [201, 201, 403], "{a:?} {b:?} {c:?}");
    let refused = [a, b, c].into_iter().find(|(status, _)| *status == 403).expect("refused").1;
    assert_eq!(code(&refused), "forbidden");
    let (_, list) = control.call("GET", "/api/servers", token, None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(2));

    // Console tickets: as many unused ones as consoles a browser opens, not endless.
    let id = list[0]["id"].as_i64().expect("id");
    for _ in 0..20 {
        assert_eq!(control.console_ticket(&customer, id).await.0, 200);
    }
    let (status, body) = control.console_ticket(&customer, id).await;
    assert_eq!((status, code(&body)), (429, "rate_limited"), "{body}");
}

#[tokio::test]
async fn weak_passwords_are_refused() {
    let control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    for weak in ["aaaaaaaaaa", "1111111111", "0123456789", "password123", "qwertyuiop", "walter the great"] {
        let body = json!({"email": "walter@example.com", "password": weak});
        let (status, answer) = control.call("POST", "/api/auth/register", None, Some(body)).await;
        assert_eq!((status, code(&answer)), (400, "weak_password"), "{weak}: {answer}");
    }
    let user = control.register("vera@example.com").await;
    let same = json!({"currentPassword": user.password, "newPassword": user.password});
    let (status, answer) =
        control.call("POST", "/api/auth/password", Some(&user.access_token), Some(same)).await;
    assert_eq!((status, code(&answer)), (400, "weak_password"), "{answer}");
}

#[tokio::test]
async fn consoles_end_with_the_session_that_opened_them() {
    let control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    let user = control.register("wes@example.com").await;
    let server = control.create_sample_server(&user, "Watched").await;
    let id = server["id"].as_i64().expect("id");
    let mut console = control.console(&user, id, None).await;
    console.read_until("Done (", crate::SOON).await;
    // Signing out ends the session; the open console ends with it.
    let (status, _) = control
        .call("POST", "/api/auth/logout", None, Some(json!({"refreshToken": user.refresh_token})))
        .await;
    assert_eq!(status, 204);
    let began = std::time::Instant::now();
    while console.read_frame(crate::SOON).await.is_some() {}
    assert!(began.elapsed() < crate::SOON, "the console was closed, not left open");
}

#[tokio::test]
async fn the_activity_log_says_who_did_what_from_where() {
    let control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    let admin = control.register_admin("boss@example.com").await;
    let player = control.register("player@example.com").await;
    let wrong = json!({"email": player.email, "password": "not-the-password-at-all"});
    assert_eq!(control.call("POST", "/api/auth/login", None, Some(wrong)).await.0, 401);
    let player = control.login(&player.email, &player.password).await;
    let token = Some(player.access_token.as_str());
    let server = control.create_sample_server(&player, "logged").await;
    let id = server["id"].as_i64().expect("id");
    let base = format!("/api/servers/{id}");
    let (status, _) = control
        .send("PUT", &format!("{base}/files/content?path=notes.txt"), &player.access_token, b"hi".to_vec())
        .await;
    assert_eq!(status, 201);
    // An admin acts on the player's server: it is in the player's log, naming the admin.
    let (status, _) = control.call("POST", &format!("{base}/stop"), Some(&admin.access_token), None).await;
    assert!(status == 200 || status == 202, "{status}");

    let (status, log) = control.call("GET", "/api/account/activity", token, None).await;
    assert_eq!(status, 200, "{log}");
    let entries = log.as_array().expect("entries");
    let actions: Vec<&str> = entries.iter().filter_map(|e| e["action"].as_str()).collect();
    for action in ["sign_in_failed", "sign_in", "server_created", "files_changed", "power"] {
        assert!(actions.contains(&action), "{action} missing from {actions:?}");
    }
    assert_eq!(actions[0], "power", "newest first: {actions:?}");
    assert_eq!((&entries[0]["actorId"], &entries[0]["detail"]), (&json!(admin.id), &json!("stop")));
    assert!(entries.iter().all(|e| e["address"] == "127.0.0.1" && e["userId"] == player.id), "{log}");
    let text = log.to_string();
    assert!(!text.contains(&player.password) && !text.contains(&player.access_token), "no secret: {text}");

    // A server's log is its owner's (and admins'); another account's is a 404, its own 403.
    let (status, server_log) = control.call("GET", &format!("{base}/activity"), token, None).await;
    assert_eq!(status, 200);
    assert!(server_log.as_array().expect("entries").iter().all(|e| e["serverId"] == id), "{server_log}");
    let stranger = control.register("stranger@example.com").await;
    let (status, _) =
        control.call("GET", &format!("{base}/activity"), Some(&stranger.access_token), None).await;
    assert_eq!(status, 404);
    let path = format!("/api/admin/users/{}/activity", player.id);
    assert_eq!(control.call("GET", &path, Some(&admin.access_token), None).await.0, 200);
    assert_eq!(control.call("GET", &path, token, None).await.0, 403);
}

#[tokio::test]
async fn api_keys_are_shown_once_scoped_hashed_and_revocable() {
    let control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    let user = control.register("scripter@example.com").await;
    let token = Some(user.access_token.as_str());
    let server = control.create_sample_server(&user, "scripted").await;
    let id = server["id"].as_i64().expect("id");
    let make = |name: &str, scope: &str| {
        control.call("POST", "/api/account/api-keys", token, Some(json!({"name": name, "scope": scope})))
    };
    let (status, reader) = make("reader", "read").await;
    assert_eq!(status, 201, "{reader}");
    let (_, writer) = make("writer", "write").await;
    let (read_key, write_key) = (reader["key"].as_str().expect("key"), writer["key"].as_str().expect("key"));
    assert!(read_key.starts_with("zlh_") && read_key.len() > 30, "{reader}");
    let (_, listed) = control.call("GET", "/api/account/api-keys", token, None).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    assert!(!listed.to_string().contains(read_key) && !listed.to_string().contains(write_key), "shown once");

    // A read key reads; a write key acts; neither manages the account or opens a console.
    let (status, servers) = control.call("GET", "/api/servers", Some(read_key), None).await;
    assert_eq!((status, &servers[0]["id"]), (200, &json!(id)));
    let stop = format!("/api/servers/{id}/stop");
    let (status, refused) = control.call("POST", &stop, Some(read_key), None).await;
    assert_eq!((status, &refused["error"]["code"]), (403, &json!("forbidden")), "{refused}");
    let (status, _) = control.call("POST", &stop, Some(write_key), None).await;
    assert!(status == 200 || status == 202, "{status}");
    for (method, path) in [
        ("POST", "/api/account/api-keys".to_owned()),
        ("GET", "/api/account/api-keys".to_owned()),
        ("POST", format!("/api/servers/{id}/console/ticket")),
        ("POST", "/api/auth/password".to_owned()),
    ] {
        let body = Some(json!({"name": "x", "scope": "write", "currentPassword": "x", "newPassword": "y"}));
        let (status, _) = control.call(method, &path, Some(write_key), body).await;
        assert_eq!(status, 403, "{method} {path}");
    }

    // Only a hash of each key is kept.
    for file in ["zlh.db", "zlh.db-wal"] {
        let bytes = std::fs::read(control.data.path().join(file)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(read_key) && !text.contains(write_key), "{file} holds a key");
    }

    // Revoked: refused at once. Nobody else can revoke yours.
    let other = control.register("other@example.com").await;
    let path = format!("/api/account/api-keys/{}", reader["id"]);
    assert_eq!(control.call("DELETE", &path, Some(&other.access_token), None).await.0, 404);
    assert_eq!(control.call("DELETE", &path, token, None).await.0, 204);
    let (status, refused) = control.call("GET", "/api/servers", Some(read_key), None).await;
    assert_eq!((status, &refused["error"]["code"]), (401, &json!("token_invalid")), "{refused}");
    let (_, listed) = control.call("GET", "/api/account/api-keys", token, None).await;
    assert_eq!(listed[0]["name"], "writer", "{listed}");
    assert!(listed[0]["lastUsedAt"].is_string(), "{listed}");
}

/// The code an authenticator app shows `offset` seconds from now for a base32 secret.
fn authenticator(secret: &str, offset: i64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret).expect("base32 secret");
    let totp = totp_rs::Builder::new().with_secret(secret).build().expect("totp");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    totp.generate(now.saturating_add_signed(offset)).to_string()
}

#[tokio::test]
async fn two_factor_sign_in_takes_a_fresh_code_or_a_recovery_code() {
    let control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    let user = control.register("tia@example.com").await;
    let token = Some(user.access_token.as_str());
    let (_, status) = control.call("GET", "/api/account/totp", token, None).await;
    assert_eq!(status, json!({"enabled": false, "recoveryCodesLeft": 0, "required": false}));

    // Setting it up takes the password again, then a code from the app.
    let wrong = json!({"password": "not the password"});
    let (status, body) = control.call("POST", "/api/account/totp", token, Some(wrong)).await;
    assert_eq!((status, code(&body)), (401, "invalid_credentials"));
    let (status, enrolment) =
        control.call("POST", "/api/account/totp", token, Some(json!({"password": user.password}))).await;
    assert_eq!(status, 200, "{enrolment}");
    let secret = enrolment["secret"].as_str().expect("secret").to_owned();
    assert!(
        enrolment["otpauthUrl"].as_str().is_some_and(|url| url.starts_with("otpauth://totp/ZeroLagHub:"))
    );
    assert!(enrolment["qrSvg"].as_str().is_some_and(|svg| svg.contains("<svg")));
    let stale = json!({"code": authenticator(&secret, -3600)});
    let (status, body) = control.call("POST", "/api/account/totp/confirm", token, Some(stale)).await;
    assert_eq!((status, code(&body)), (401, "totp_invalid"));
    let first = authenticator(&secret, 0);
    let (status, codes) =
        control.call("POST", "/api/account/totp/confirm", token, Some(json!({"code": first}))).await;
    assert_eq!(status, 200, "{codes}");
    let recovery: Vec<String> = codes["recoveryCodes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);

    // Sign-in now asks for a code; a code works once (the confirming one is used), a stale or
    // made-up one never.
    let sign_in = async |code: Option<&str>| {
        let mut body = json!({"email": "tia@example.com", "password": user.password});
        if let Some(code) = code {
            body["totpCode"] = json!(code);
        }
        control.call("POST", "/api/auth/login", None, Some(body)).await
    };
    let (status, body) = sign_in(None).await;
    assert_eq!((status, code(&body)), (401, "totp_required"), "{body}");
    assert!(body.get("accessToken").is_none());
    for refused in [first.as_str(), &authenticator(&secret, -3600), "123456", "nothing-like-it"] {
        let (status, body) = sign_in(Some(refused)).await;
        assert_eq!((status, code(&body)), (401, "totp_invalid"), "{refused}: {body}");
    }
    let (status, body) = sign_in(Some(&authenticator(&secret, 30))).await;
    assert_eq!(status, 200, "the next code: {body}");
    assert_eq!(body["user"]["twoFactor"], true);
    // A recovery code, however typed, works once.
    let typed = recovery[0].to_uppercase().replace('-', " ");
    assert_eq!(sign_in(Some(&typed)).await.0, 200);
    assert_eq!(code(&sign_in(Some(&typed)).await.1), "totp_invalid");
    let (_, status) = control.call("GET", "/api/account/totp", token, None).await;
    assert_eq!(status["recoveryCodesLeft"], 9);

    // A key never manages the second factor.
    let (_, key) = control
        .call("POST", "/api/account/api-keys", token, Some(json!({"name": "script", "scope": "write"})))
        .await;
    let key = key["key"].as_str().expect("key");
    let (status, _) = control
        .call("POST", "/api/account/totp/disable", Some(key), Some(json!({"password": user.password})))
        .await;
    assert_eq!(status, 403);

    // An admin requires it of everyone: an account without it can only set it up.
    let admin = control.register_admin("root@example.com").await;
    let everyone = json!({"requireTwoFactor": "everyone"});
    let (status, _) = control.call("PUT", "/api/admin/settings", token, Some(everyone.clone())).await;
    assert_eq!(status, 403, "only admins");
    let (status, body) =
        control.call("PUT", "/api/admin/settings", Some(&admin.access_token), Some(everyone.clone())).await;
    assert_eq!((status, code(&body)), (403, "two_factor_required"), "an admin cannot lock themselves out");
    let admin_token = Some(admin.access_token.as_str());
    let (_, enrolment) = control
        .call("POST", "/api/account/totp", admin_token, Some(json!({"password": admin.password})))
        .await;
    let confirm = json!({"code": authenticator(enrolment["secret"].as_str().expect("secret"), 0)});
    assert_eq!(control.call("POST", "/api/account/totp/confirm", admin_token, Some(confirm)).await.0, 200);
    let (status, _) = control.call("PUT", "/api/admin/settings", admin_token, Some(everyone)).await;
    assert_eq!(status, 200);
    let other = control.register("uli@example.com").await;
    let (status, body) = control.call("GET", "/api/servers", Some(&other.access_token), None).await;
    assert_eq!((status, code(&body)), (403, "two_factor_required"), "{body}");
    assert_eq!(control.call("GET", "/api/auth/me", Some(&other.access_token), None).await.0, 200);
    let (_, status) = control.call("GET", "/api/account/totp", Some(&other.access_token), None).await;
    assert_eq!(status["required"], true);
    assert_eq!(control.call("GET", "/api/servers", token, None).await.0, 200, "tia has it");
    let off = json!({"password": user.password});
    let (status, body) = control.call("POST", "/api/account/totp/disable", token, Some(off.clone())).await;
    assert_eq!((status, code(&body)), (403, "two_factor_required"), "required: it stays on");

    // Not required: it can be turned off; an admin can reset it too (a lost phone).
    let none = json!({"requireTwoFactor": "none"});
    assert_eq!(
        control.call("PUT", "/api/admin/settings", Some(&admin.access_token), Some(none)).await.0,
        200
    );
    assert_eq!(control.call("POST", "/api/account/totp/disable", token, Some(off)).await.0, 204);
    assert_eq!(sign_in(None).await.0, 200);
    let (status, enrolment) =
        control.call("POST", "/api/account/totp", token, Some(json!({"password": user.password}))).await;
    assert_eq!(status, 200);
    let again = enrolment["secret"].as_str().expect("secret").to_owned();
    let confirm = json!({"code": authenticator(&again, 0)});
    assert_eq!(control.call("POST", "/api/account/totp/confirm", token, Some(confirm)).await.0, 200);
    let path = format!("/api/admin/users/{}/reset-two-factor", user.id);
    let (status, view) = control.call("POST", &path, Some(&admin.access_token), None).await;
    assert_eq!((status, &view["twoFactor"]), (200, &json!(false)), "{view}");
    assert_eq!(sign_in(None).await.0, 200);
    // The operator does it for an admin from the shell.
    let output = control.admin(&["reset-two-factor", "--email", "root@example.com"], "");
    assert!(output.contains("two-factor sign-in of root@example.com turned off"), "{output}");
    control.login("root@example.com", &admin.password).await;

    let (_, activity) = control.call("GET", "/api/account/activity", token, None).await;
    let actions: Vec<&str> =
        activity.as_array().expect("log").iter().filter_map(|e| e["action"].as_str()).collect();
    for expected in ["two_factor_enabled", "recovery_code_used", "two_factor_disabled", "sign_in_failed"] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    let logs = control.logs().join("\n");
    for secret in [&secret, &again, &recovery[1]] {
        assert!(!logs.contains(secret.as_str()), "secrets never reach the log");
    }
}

#[tokio::test]
async fn the_portal_session_is_in_http_only_cookies_and_needs_the_portal_header() {
    let control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    let user = control.register("cora@example.com").await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", control.url);
    // What a browser keeps of `Set-Cookie` and sends back as `Cookie`.
    let jar = |answer: &reqwest::Response| -> Vec<String> {
        answer.headers().get_all("set-cookie").iter().map(|v| v.to_str().expect("ascii").to_owned()).collect()
    };
    let cookie_header = |set: &[String]| -> String {
        set.iter().map(|c| c.split(';').next().expect("pair").to_owned()).collect::<Vec<_>>().join("; ")
    };
    let login = json!({"email": "cora@example.com", "password": user.password});
    let answer = http
        .post(url("/api/auth/login"))
        .header("x-zlh-session", "cookie")
        .json(&login)
        .send()
        .await
        .expect("login");
    assert_eq!(answer.status(), 200);
    let set = jar(&answer);
    let body: Value = answer.json().await.expect("json");
    assert!(body.get("accessToken").is_none() && body.get("refreshToken").is_none(), "{body}");
    assert_eq!(body["user"]["email"], "cora@example.com");
    assert_eq!(set.len(), 2, "{set:?}");
    for cookie in &set {
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    }
    assert!(set.iter().any(|c| c.starts_with("zlh_access=") && c.contains("Path=/api;")), "{set:?}");
    assert!(set.iter().any(|c| c.starts_with("zlh_refresh=") && c.contains("Path=/api/auth;")), "{set:?}");
    let cookies = cookie_header(&set);

    // With the header the cookie signs in; without it (a form or link from another page) it
    // is refused, reads and writes alike.
    let send = async |method: reqwest::Method, path: &str, with_header: bool| {
        let mut request = http.request(method, url(path)).header("cookie", &cookies).json(&json!({}));
        if with_header {
            request = request.header("x-zlh-session", "cookie");
        }
        request.send().await.expect("request")
    };
    assert_eq!(send(reqwest::Method::GET, "/api/servers", true).await.status(), 200);
    assert_eq!(send(reqwest::Method::POST, "/api/servers", false).await.status(), 403);
    assert_eq!(send(reqwest::Method::GET, "/api/servers", false).await.status(), 403);
    assert_eq!(send(reqwest::Method::POST, "/api/auth/refresh", false).await.status(), 401);

    // Refresh rotates both cookies; sign-out (with the new ones) ends the session and removes them.
    let answer = send(reqwest::Method::POST, "/api/auth/refresh", true).await;
    assert_eq!(answer.status(), 200);
    let rotated = cookie_header(&jar(&answer));
    assert_ne!(rotated, cookies);
    let answer = http
        .post(url("/api/auth/logout"))
        .header("cookie", &rotated)
        .header("x-zlh-session", "cookie")
        .json(&json!({}))
        .send()
        .await
        .expect("logout");
    assert_eq!(answer.status(), 204);
    let cleared = jar(&answer);
    assert!(cleared.len() == 2 && cleared.iter().all(|c| c.contains("Max-Age=0")), "{cleared:?}");
    let answer = http
        .get(url("/api/servers"))
        .header("cookie", &rotated)
        .header("x-zlh-session", "cookie")
        .send()
        .await
        .expect("list");
    assert_eq!(answer.status(), 401, "the session ended");
}

#[tokio::test]
async fn admins_make_promote_demote_and_delete_accounts() {
    let control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    let admin = control.register_admin("root@example.com").await;
    let token = Some(admin.access_token.as_str());
    let customer = control.register("customer@example.com").await;
    let (status, _) = control
        .call(
            "POST",
            "/api/admin/users",
            Some(&customer.access_token),
            Some(json!({"email": "x@example.com", "role": "user"})),
        )
        .await;
    assert_eq!(status, 403);

    let (status, made) = control
        .call("POST", "/api/admin/users", token, Some(json!({"email": "New@Example.com", "role": "user"})))
        .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["user"]["email"], "new@example.com");
    let password = made["password"].as_str().expect("a password shown once").to_owned();
    let new = control.login("new@example.com", &password).await;
    let (_, me) = control.call("GET", "/api/auth/me", Some(&new.access_token), None).await;
    assert_eq!(me["passwordGenerated"], true, "they are asked for a password of their own: {me}");
    let (status, taken) = control
        .call("POST", "/api/admin/users", token, Some(json!({"email": "new@example.com", "role": "user"})))
        .await;
    assert_eq!((status, &taken["error"]["code"]), (409, &json!("already_exists")));

    let id = made["user"]["id"].as_i64().expect("id");
    let (status, promoted) =
        control.call("PATCH", &format!("/api/admin/users/{id}"), token, Some(json!({"role": "admin"}))).await;
    assert_eq!((status, &promoted["role"]), (200, &json!("admin")), "{promoted}");
    let (status, _) = control.call("GET", "/api/admin/users", Some(&new.access_token), None).await;
    assert_eq!(status, 200, "a promotion holds at once");
    let (status, _) =
        control.call("PATCH", &format!("/api/admin/users/{id}"), token, Some(json!({"role": "user"}))).await;
    assert_eq!(status, 200);
    let (status, _) = control.call("GET", "/api/admin/users", Some(&new.access_token), None).await;
    assert_eq!(status, 403, "so does a demotion");
    let own = format!("/api/admin/users/{}", admin.id);
    let (status, _) = control.call("PATCH", &own, token, Some(json!({"role": "user"}))).await;
    assert_eq!(status, 400, "an admin cannot demote themselves (a host keeps an admin)");

    // An account that owns servers is deleted only after them; then its sessions end.
    let server = control.create_sample_server(&new, "theirs").await;
    let (status, refused) = control.call("DELETE", &format!("/api/admin/users/{id}"), token, None).await;
    assert_eq!((status, &refused["error"]["code"]), (409, &json!("in_use")), "{refused}");
    let (status, _) = control.call("DELETE", &format!("/api/servers/{}", server["id"]), token, None).await;
    assert_eq!(status, 204);
    let (status, _) = control.call("DELETE", &format!("/api/admin/users/{id}"), token, None).await;
    assert_eq!(status, 204);
    let (status, _) = control.call("GET", "/api/servers", Some(&new.access_token), None).await;
    assert_eq!(status, 401);
    let (_, users) = control.call("GET", "/api/admin/users", token, None).await;
    assert!(!users.to_string().contains("new@example.com"), "{users}");
}
