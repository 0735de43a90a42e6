//! Real games from Debian's packages (wesnothd, freeciv-server), created from the test eggs
//! through the API, in containers of the tests' engine (`zlh-test/debian-games:v1`, built by
//! `cargo xtask test` with mmdebstrap): install step, variables, ports, readiness, stop.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::{Value, json};
use zlh_testkit::docker::{GAMES_IMAGE, node_resources};
use zlh_testkit::{ApiUser, ControlSpec, TestControlPlane, eventually};

use crate::zlh;

/// Long enough for an install step and a game's first start on 2 busy cores.
const SLOW: Duration = Duration::from_secs(90);

/// A control plane on the tests' engine, the eggs' registry images mapped to the local one,
/// with the test eggs imported through the admin API (and one whose install step fails).
async fn games_control() -> TestControlPlane {
    let images = format!(
        "[images]\n\"registry.zerolaghub.invalid/installers:debian\" = \"{GAMES_IMAGE}\"\n\
         \"registry.zerolaghub.invalid/games/freeciv:3.0\" = \"{GAMES_IMAGE}\"\n"
    );
    let spec = ControlSpec {
        driver: "docker",
        provision_timeout: "60s".into(),
        extra_toml: images,
        ..ControlSpec::default()
    };
    let control = TestControlPlane::start(zlh(), &spec).await;
    let admin = control.register_admin("operator@example.com").await;
    let eggs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../zlh-control/tests/eggs");
    let wesnoth = std::fs::read_to_string(eggs.join("pelican-wesnoth.json")).expect("egg");
    let broken = wesnoth
        .replace("[ -f wesnothd.cfg ] || printf", "echo 'cannot fetch the map pack' >&2; exit 3; printf");
    let freeciv = std::fs::read_to_string(eggs.join("pelican-freeciv.yaml")).expect("egg");
    for body in
        [json!({"egg": wesnoth}), json!({"egg": freeciv}), json!({"egg": broken, "name": "broken-install"})]
    {
        let (status, imported) =
            call(&control, &admin, "POST", "/api/admin/templates/import", Some(body)).await;
        assert_eq!(status, 201, "{imported}");
    }
    control
}

async fn call(
    control: &TestControlPlane,
    user: &ApiUser,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    control.call(method, path, Some(&user.access_token), body).await
}

/// Waits until the install step is no longer running; its view.
async fn installed(control: &TestControlPlane, user: &ApiUser, id: i64) -> Value {
    eventually("the install step to end", SLOW, || async {
        let (_, install) = call(control, user, "GET", &format!("/api/servers/{id}/install"), None).await;
        (install["state"] != "installing").then_some(install)
    })
    .await
}

async fn state(control: &TestControlPlane, user: &ApiUser, id: i64, wanted: &str) -> Value {
    eventually(&format!("server {id} to be {wanted}"), SLOW, || async {
        let (_, status) = call(control, user, "GET", &format!("/api/servers/{id}/status"), None).await;
        (status["state"] == wanted && (wanted != "running" || status["ready"] == true)).then_some(status)
    })
    .await
}

async fn file(control: &TestControlPlane, user: &ApiUser, id: i64, path: &str) -> (u16, String) {
    let (status, bytes) = control
        .send("GET", &format!("/api/servers/{id}/files/content?path={path}"), &user.access_token, Vec::new())
        .await;
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn real_games_from_eggs_install_take_their_variables_listen_and_stop_as_their_eggs_say() {
    let control = games_control().await;
    let user = control.register("player@example.com").await;
    let (_, templates) = call(&control, &user, "GET", "/api/templates", None).await;
    let freeciv =
        templates.as_array().expect("list").iter().find(|t| t["name"] == "freeciv-debian").expect("freeciv");
    assert_eq!(freeciv["install"], true);
    assert_eq!(freeciv["images"].as_array().map(Vec::len), Some(2));
    let shown: Vec<&str> = freeciv["variables"]
        .as_array()
        .expect("variables")
        .iter()
        .filter_map(|v| v["env"].as_str())
        .collect();
    assert_eq!(shown, ["IDENTITY", "AI_PLAYERS"], "a variable that is not user_viewable is not shown");

    // A value breaking its rules refuses the creation, leaving nothing behind.
    for (variables, code) in [
        (json!({"IDENTITY": "Not A Host Name!"}), "invalid_variable"),
        (json!({"METASERVER": "http://evil.invalid"}), "variable_not_editable"),
    ] {
        let body =
            json!({"name": "civ", "type": "game", "template": "freeciv-debian", "variables": variables});
        let (status, error) = call(&control, &user, "POST", "/api/servers", Some(body)).await;
        assert_eq!((status / 100, error["error"]["code"].as_str()), (4, Some(code)), "{error}");
    }
    let (_, servers) = call(&control, &user, "GET", "/api/servers", None).await;
    assert_eq!(servers, json!([]));
    assert_eq!(node_resources(&control.node), (Vec::new(), Vec::new()));

    // Freeciv: the owner picks the registry image (mapped to a local one by the operator),
    // names it, and does not start it yet.
    let body = json!({"name": "civ", "type": "game", "template": "freeciv-debian",
        "image": "Debian 12 (registry)", "variables": {"IDENTITY": "civ.example.org"}});
    let (status, civ) = call(&control, &user, "POST", "/api/servers", Some(body)).await;
    assert_eq!(status, 201, "{civ}");
    let civ_id = civ["id"].as_i64().expect("id");
    let port = civ["ports"][0]["port"].as_u64().expect("port") as u16;
    assert_eq!(civ["install"], "installing");
    let (status, refused) =
        call(&control, &user, "POST", &format!("/api/servers/{civ_id}/start"), None).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("install_in_progress")), "{refused}");
    let install = installed(&control, &user, civ_id).await;
    assert_eq!(install["state"], Value::Null, "{install}");
    assert!(
        install["log"].as_str().is_some_and(|l| l.contains("installing Freeciv for civ.example.org")),
        "{install}"
    );
    let (_, made) = file(&control, &user, civ_id, "installed.txt").await;
    assert_eq!(made.trim(), format!("installed for civ.example.org on port {port}"));
    let (_, status) = call(&control, &user, "GET", &format!("/api/servers/{civ_id}/status"), None).await;
    assert_eq!(status["state"], "stopped", "created without start: it waits");

    // Variables: read, refused when they break a rule or are not the owner's, saved otherwise.
    let path = format!("/api/servers/{civ_id}/variables");
    let (_, variables) = call(&control, &user, "GET", &path, None).await;
    assert_eq!(variables[0]["value"], "civ.example.org");
    assert_eq!(variables[1]["value"], "5");
    for (values, code) in [
        (json!({"AI_PLAYERS": "40"}), "invalid_variable"),
        (json!({"AI_PLAYERS": "3", "IDENTITY": "x y"}), "invalid_variable"),
        (json!({"METASERVER": "http://evil.invalid"}), "variable_not_editable"),
    ] {
        let (status, error) = call(&control, &user, "PUT", &path, Some(json!({ "values": values }))).await;
        assert_eq!((status / 100, error["error"]["code"].as_str()), (4, Some(code)), "{error}");
    }
    let (status, variables) =
        call(&control, &user, "PUT", &path, Some(json!({"values": {"AI_PLAYERS": "3"}}))).await;
    assert_eq!((status, &variables[1]["value"]), (200, &json!("3")), "{variables}");
    assert_eq!(variables[0]["value"], "civ.example.org", "a refused request changed nothing");

    // Started: the config file says what the variables say, it is ready once it listens, and
    // players reach it on its port.
    let (status, _) = call(&control, &user, "POST", &format!("/api/servers/{civ_id}/start"), None).await;
    assert_eq!(status, 202);
    state(&control, &user, civ_id, "running").await;
    let (_, serv) = file(&control, &user, civ_id, "server.serv").await;
    assert!(serv.contains("set aifill 3\n") && serv.contains("set timeout 60"), "{serv}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "freeciv listens on {port}");
    let (status, denied) = file(&control, &user, civ_id, "saves/game.sav.bak").await;
    assert_eq!(status, 403, "{denied}");

    // Stopped with its egg's console command, `quit`, long before SIGTERM would come.
    let mut console = control.console(&user, civ_id, Some(0)).await;
    let asked = std::time::Instant::now();
    let (status, _) = call(&control, &user, "POST", &format!("/api/servers/{civ_id}/stop"), None).await;
    assert_eq!(status, 202);
    console.read_until("Goodbye.", SLOW).await;
    state(&control, &user, civ_id, "stopped").await;
    assert!(asked.elapsed() < Duration::from_secs(25), "stopped by quit, not by the 30 s fallback");

    // Wesnoth: started as soon as its install is done; the MOTD variable lands in its config
    // file; the real wesnothd handshake answers on its port; SIGINT stops it.
    let body = json!({"name": "wes", "type": "game", "template": "wesnoth-server-debian", "start": true,
        "variables": {"MOTD": "Hello from ZeroLagHub", "THREADS": "2"}});
    let (status, wes) = call(&control, &user, "POST", "/api/servers", Some(body)).await;
    assert_eq!(status, 201, "{wes}");
    let wes_id = wes["id"].as_i64().expect("id");
    let wes_port = wes["ports"][0]["port"].as_u64().expect("port") as u16;
    state(&control, &user, wes_id, "running").await;
    let (_, cfg) = file(&control, &user, wes_id, "wesnothd.cfg").await;
    assert!(
        cfg.contains("motd=\"Hello from ZeroLagHub\"") && cfg.contains("fifo_path=\"wesnothd.fifo\""),
        "{cfg}"
    );
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", wes_port)).expect("wesnothd listens");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(&[0, 0, 0, 0]).expect("handshake");
    let mut answer = [0u8; 4];
    stream.read_exact(&mut answer).expect("wesnothd answers the handshake with a connection number");
    let (status, _) = file(&control, &user, wes_id, "wesnothd.fifo").await;
    assert_eq!(status, 403, "the egg's file_denylist keeps the fifo out of reach");
    let (status, _) = call(&control, &user, "POST", &format!("/api/servers/{wes_id}/stop"), None).await;
    assert_eq!(status, 202);
    state(&control, &user, wes_id, "stopped").await;
    let (_, crashes) = call(&control, &user, "GET", &format!("/api/servers/{wes_id}/crashes"), None).await;
    assert_eq!(crashes["crashes"], json!([]), "a stop by SIGINT is no crash");

    // A failing install says why, keeps the server from starting, and can be retried.
    let body = json!({"name": "broken", "type": "game", "template": "broken-install", "start": true});
    let (status, broken) = call(&control, &user, "POST", "/api/servers", Some(body)).await;
    assert_eq!(status, 201, "{broken}");
    let broken_id = broken["id"].as_i64().expect("id");
    let install = installed(&control, &user, broken_id).await;
    assert_eq!(install["state"], "failed");
    assert_eq!(install["message"], "the install script exited with code 3: cannot fetch the map pack");
    let (status, refused) =
        call(&control, &user, "POST", &format!("/api/servers/{broken_id}/start"), None).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("install_failed")), "{refused}");
    let (status, again) =
        call(&control, &user, "POST", &format!("/api/servers/{broken_id}/install"), None).await;
    assert_eq!((status, &again["state"]), (202, &json!("installing")), "{again}");
    assert_eq!(installed(&control, &user, broken_id).await["state"], "failed");

    for id in [civ_id, wes_id, broken_id] {
        let (status, _) = call(&control, &user, "DELETE", &format!("/api/servers/{id}"), None).await;
        assert_eq!(status, 204);
    }
    assert_eq!(
        node_resources(&control.node),
        (Vec::new(), Vec::new()),
        "installers included, nothing is left"
    );
}
