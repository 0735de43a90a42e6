//! Ownership: another user's server is a 404 on every route, exactly like a missing one.

use serde_json::{Value, json};
use zlh_testkit::{ConsoleClient, ControlSpec, TestControlPlane};

use crate::zlh;

#[tokio::test]
async fn every_server_route_is_a_404_for_another_user() {
    let control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    let owner = control.register("owner@example.com").await;
    let intruder = control.register("intruder@example.com").await;
    let server = control.create_sample_server(&owner, "Private").await;
    let id = server["id"].as_i64().expect("id");

    // Every route with a server id, from the API document the handlers generate.
    let (status, document) = control.call("GET", "/api/openapi.json", None, None).await;
    assert_eq!(status, 200);
    let mut walked = Vec::new();
    for (path, methods) in document["paths"].as_object().expect("paths") {
        if !path.contains("{id}") || path.ends_with("/console") {
            continue;
        }
        for method in methods.as_object().expect("methods").keys() {
            let concrete = path.replace("{id}", &id.to_string());
            let body = (method == "post").then(|| json!({"command": "say intruder"}));
            let (status, answer) = control
                .call(&method.to_uppercase(), &concrete, Some(&intruder.access_token), body.clone())
                .await;
            assert_eq!(
                (status, &answer["error"]["code"]),
                (404, &json!("not_found")),
                "{method} {path}: {answer}"
            );
            // And exactly what a server that does not exist answers.
            let missing = path.replace("{id}", "999999");
            let (status, nothing) =
                control.call(&method.to_uppercase(), &missing, Some(&intruder.access_token), body).await;
            assert_eq!((status, &nothing), (404, &answer), "{method} {path}");
            walked.push(format!("{method} {path}"));
        }
    }
    assert!(walked.len() >= 9, "walked only {walked:?}");

    // The console: no ticket for another user's server, and another server's ticket fails.
    let (status, _) = control.console_ticket(&intruder, id).await;
    assert_eq!(status, 404);
    let theirs = control.create_sample_server(&intruder, "Theirs").await;
    let (_, ticket) = control.console_ticket(&intruder, theirs["id"].as_i64().expect("id")).await;
    let url = format!(
        "{}/api/servers/{id}/console?ticket={}",
        control.url.replacen("http", "ws", 1),
        ticket["ticket"].as_str().expect("ticket")
    );
    let refused = ConsoleClient::open(&url, &[]).await.expect_err("refused");
    assert_eq!((refused.0, &refused.1["error"]["code"]), (401, &json!("invalid_ticket")));

    // Ids that are not ids are the same 404.
    for bad in ["abc", "-1", "101.5", "%20"] {
        let (status, body) =
            control.call("GET", &format!("/api/servers/{bad}"), Some(&owner.access_token), None).await;
        assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")), "{bad}");
    }
    // Nothing the intruder did touched the server, and lists stay private.
    let (_, mine) = control.call("GET", "/api/servers", Some(&owner.access_token), None).await;
    assert_eq!(mine.as_array().map(Vec::len), Some(1));
    assert_eq!(mine[0]["status"]["state"], "running");
    let (_, theirs_list) = control.call("GET", "/api/servers", Some(&intruder.access_token), None).await;
    assert!(theirs_list.as_array().expect("list").iter().all(|s| s["id"] != id));

    // An admin sees everyone's.
    control.admin(
        &["create-user", "--email", "root@example.com", "--admin", "--password-stdin"],
        "admin password 1\n",
    );
    let admin = control.login("root@example.com", "admin password 1").await;
    let (status, _) =
        control.call("GET", &format!("/api/servers/{id}"), Some(&admin.access_token), None).await;
    assert_eq!(status, 200);
    let (_, all): (u16, Value) = control.call("GET", "/api/servers", Some(&admin.access_token), None).await;
    assert_eq!(all.as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn invited_accounts_do_only_what_they_were_granted_and_lose_it_at_once() {
    let control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    let owner = control.register("owner@example.com").await;
    let friend = control.register("friend@example.com").await;
    let server = control.create_sample_server(&owner, "Shared").await;
    let id = server["id"].as_i64().expect("id");
    let members = format!("/api/servers/{id}/members");
    let call = |user: &zlh_testkit::ApiUser, method: &'static str, path: String, body: Option<Value>| {
        let token = user.access_token.clone();
        let control = &control;
        async move { control.call(method, &path, Some(&token), body).await }
    };
    let invite = |permissions: Value| json!({"email": "Friend@Example.com", "permissions": permissions});

    // What cannot be granted, what cannot be invited.
    for (body, status, code) in [
        (invite(json!(["manage"])), 400, "bad_request"),
        (invite(json!(["root"])), 400, "invalid_json"),
        (json!({"email": "not an address", "permissions": []}), 400, "invalid_email"),
        (json!({"email": "Owner@example.com", "permissions": []}), 409, "already_exists"),
    ] {
        let (got, answer) = call(&owner, "POST", members.clone(), Some(body.clone())).await;
        assert_eq!((got, &answer["error"]["code"]), (status, &json!(code)), "{body}: {answer}");
    }
    let (status, _) = call(&friend, "GET", format!("/api/servers/{id}"), None).await;
    assert_eq!(status, 404, "not invited yet");

    // Inviting an address says nothing of whether an account uses it: the same answer.
    let later = json!({"email": "later@example.com", "permissions": ["console"]});
    let (status, nobody) = call(&owner, "POST", members.clone(), Some(later)).await;
    assert_eq!(status, 201, "{nobody}");
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());

    // Invited to see only: the server is in their list, and every route that does something is
    // a 403 naming the missing permission.
    let (status, member) = call(&owner, "POST", members.clone(), Some(invite(json!([])))).await;
    assert_eq!(
        (status, &member["email"], &member["permissions"]),
        (201, &json!("friend@example.com"), &json!([]))
    );
    assert_eq!(keys(&member), keys(&nobody));
    let (status, again) = call(&owner, "POST", members.clone(), Some(invite(json!(["console"])))).await;
    assert_eq!((status, &again["error"]["code"]), (409, &json!("already_exists")));
    let (_, list) = call(&friend, "GET", "/api/servers".into(), None).await;
    assert_eq!(list.as_array().map(|l| l.len()), Some(1), "{list}");
    assert_eq!((&list[0]["id"], &list[0]["permissions"]), (&json!(id), &json!([])));
    let (_, mine) = call(&owner, "GET", format!("/api/servers/{id}"), None).await;
    assert!(mine["permissions"].as_array().expect("permissions").contains(&json!("manage")), "{mine}");

    let seeing = [
        "get /api/servers/{id}",
        "get /api/servers/{id}/status",
        "get /api/servers/{id}/activity",
        "get /api/servers/{id}/jobs",
        "get /api/servers/{id}/jobs/{jobId}",
        "delete /api/servers/{id}/members/{memberId}",
    ];
    let (_, document) = control.call("GET", "/api/openapi.json", None, None).await;
    let mut refused = Vec::new();
    for (path, methods) in document["paths"].as_object().expect("paths") {
        if !path.contains("{id}") || path.ends_with("/console") {
            continue;
        }
        for method in methods.as_object().expect("methods").keys() {
            let route = format!("{method} {path}");
            let concrete = path.replace("{id}", &id.to_string());
            let body = (method == "post" || method == "put").then(|| json!({"command": "say hi"}));
            let (status, answer) =
                control.call(&method.to_uppercase(), &concrete, Some(&friend.access_token), body).await;
            if seeing.contains(&route.as_str()) {
                assert_ne!(status, 403, "{route}: {answer}");
            } else {
                assert_eq!(
                    (status, &answer["error"]["code"]),
                    (403, &json!("forbidden")),
                    "{route}: {answer}"
                );
                refused.push(route);
            }
        }
    }
    assert!(refused.len() >= 30, "refused only {refused:?}");

    // Console granted: the console opens and takes commands; power is still not theirs.
    let friend_id = member["id"].as_i64().expect("member id");
    let (status, changed) = call(
        &owner,
        "PUT",
        format!("{members}/{friend_id}"),
        Some(json!({"permissions": ["console", "console"]})),
    )
    .await;
    assert_eq!((status, &changed["permissions"]), (200, &json!(["console"])));
    let mut console = control.console(&friend, id, None).await;
    let (status, _) = call(
        &friend,
        "POST",
        format!("/api/servers/{id}/console/command"),
        Some(json!({"command": "say from a friend"})),
    )
    .await;
    assert_eq!(status, 202);
    let (status, _) = call(&friend, "POST", format!("/api/servers/{id}/stop"), None).await;
    assert_eq!(status, 403);

    // Narrowed to files: the open console closes at once, files open.
    let (status, _) =
        call(&owner, "PUT", format!("{members}/{friend_id}"), Some(json!({"permissions": ["files"]}))).await;
    assert_eq!(status, 200);
    assert_eq!(console.closed(crate::SOON).await, Some(zlh_proto::console::CLOSE_SESSION_ENDED));
    let (status, _) = call(&friend, "POST", format!("/api/servers/{id}/console/ticket"), None).await;
    assert_eq!(status, 403);
    let (status, files) = call(&friend, "GET", format!("/api/servers/{id}/files?path=."), None).await;
    assert_eq!(status, 200, "{files}");

    // Removed: gone from their list, a 404 like any stranger's server.
    let mut console = {
        let (status, _) =
            call(&owner, "PUT", format!("{members}/{friend_id}"), Some(json!({"permissions": ["console"]})))
                .await;
        assert_eq!(status, 200);
        control.console(&friend, id, None).await
    };
    let (status, _) = call(&owner, "DELETE", format!("{members}/{friend_id}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(console.closed(crate::SOON).await, Some(zlh_proto::console::CLOSE_SESSION_ENDED));
    let (status, _) = call(&friend, "GET", format!("/api/servers/{id}"), None).await;
    assert_eq!(status, 404);
    let (_, list) = call(&friend, "GET", "/api/servers".into(), None).await;
    assert_eq!(list, json!([]));

    // An invited account may leave by itself; the owner's activity says who came and went.
    let (status, again) = call(&owner, "POST", members.clone(), Some(invite(json!(["backups"])))).await;
    assert_eq!(status, 201);
    let friend_id = again["id"].as_i64().expect("member id");
    let (status, _) = call(&friend, "DELETE", format!("{members}/{friend_id}"), None).await;
    assert_eq!(status, 204);
    let (_, activity) = call(&owner, "GET", format!("/api/servers/{id}/activity"), None).await;
    let actions: Vec<&str> =
        activity.as_array().expect("activity").iter().filter_map(|e| e["action"].as_str()).collect();
    for action in ["member_added", "member_changed", "member_removed"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }

    // The address invited before it had an account: the account that proves it sees the server.
    let later = control.register("later@example.com").await;
    let (_, list) = call(&later, "GET", "/api/servers".into(), None).await;
    assert_eq!((&list[0]["id"], &list[0]["permissions"]), (&json!(id), &json!(["console"])), "{list}");
}
