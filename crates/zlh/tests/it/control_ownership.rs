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
