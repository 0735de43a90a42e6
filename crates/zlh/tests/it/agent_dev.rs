//! Development containers at the agent: provisioning, runtimes from the artifact store
//! (verified, atomic, guarded), the shell's environment.

use std::time::Duration;

use serde_json::{Value, json};
use zlh_proto::catalog::{Artifact, Kind};
use zlh_testkit::artifacts::{fake_runtime, tar_gz};
use zlh_testkit::{AgentSpec, ArtifactStore, Delivery, TestAgent, eventually, procs};

use crate::{SOON, zlh};

async fn wait_for_job(agent: &TestAgent, id: &str) -> Value {
    eventually(&format!("job {id} to end"), Duration::from_secs(30), || async {
        let (_, job) = agent.get(&format!("/jobs/{id}")).await;
        (job["state"] != "running").then_some(job)
    })
    .await
}

async fn install(agent: &TestAgent, runtime: &str, version: &str) -> Value {
    let (code, job) =
        agent.post("/dev/runtimes/install", Some(json!({"runtime": runtime, "version": version}))).await;
    assert_eq!(code, 202, "{job}");
    wait_for_job(agent, job["id"].as_str().expect("job id")).await
}

async fn say_hello(agent: &TestAgent) -> String {
    let mut console = agent.console(None).await;
    let marker = zlh_testkit::random_hex(4);
    console.type_keys(&format!("zlh-hello; echo done-{marker}\r")).await;
    console.read_until(&format!("\ndone-{marker}"), SOON).await;
    // The line may start with terminal escapes (bash's bracketed paste).
    let text = console.text();
    text.lines()
        .rev()
        .find_map(|l| l.find("hello from").map(|at| l[at..].trim().to_owned()))
        .unwrap_or_default()
}

#[tokio::test]
async fn a_dev_container_is_provisioned_before_it_is_ready() {
    let store = ArtifactStore::start().await;
    store.publish(Kind::Runtime, "fakenode", "1.0.0", fake_runtime("fakenode", "1.0.0", 256 << 10));
    let spec = AgentSpec::dev(&store.catalog_url, "runtime = \"fakenode\"\nversion = \"1.0.0\"");
    let agent = TestAgent::start(zlh(), &spec).await;

    let status = agent.wait_for_state("running", SOON).await;
    assert_eq!(status["provisioningComplete"], true);
    assert_eq!(status["runtimeInstalled"], true);
    assert_eq!(status["devProvisioned"], true);
    let workspace = agent.root.path().join("home/dev/workspace");
    assert_eq!(status["workspaceRoot"], workspace.display().to_string());
    assert!(status["devReadyAt"].is_string());
    assert_eq!(status["codeServerInstalled"], false);
    let (_, ready) = agent.get("/ready").await;
    assert_eq!(ready["ready"], true, "{ready}");

    // The shell: in the workspace, with HOME/USER/LOGNAME/TERM, and the runtime on PATH.
    assert_eq!(say_hello(&agent).await, "hello from fakenode 1.0.0");
    let mut console = agent.console(None).await;
    console.type_keys("echo \"[$PWD|$HOME|$USER|$LOGNAME|$TERM]\"\r").await;
    let home = agent.root.path().join("home/dev");
    console.read_until(&format!("[{}/workspace|{}|", home.display(), home.display()), SOON).await;
    console.read_until("|xterm-256color]", SOON).await;
    // Login shells get it through the profile the dev user's ~/.bash_profile sources.
    let profile =
        std::fs::read_to_string(agent.root.path().join("opt/zlh/zlh-runtimes.sh")).expect("profile");
    assert!(profile.contains("opt/zlh/runtimes/fakenode/current/bin"), "{profile}");
    let (_, installed) = agent.get("/dev/runtimes").await;
    assert_eq!(
        installed["runtimes"][0],
        json!({"name": "fakenode", "versions": ["1.0.0"], "current": "1.0.0", "previous": null})
    );
}

#[tokio::test]
async fn upgrade_side_by_side_switch_roll_back_and_remove() {
    let store = ArtifactStore::start().await;
    for version in ["1.0.0", "2.0.0"] {
        store.publish(Kind::Runtime, "fakenode", version, fake_runtime("fakenode", version, 1024));
    }
    let agent = TestAgent::start(
        zlh(),
        &AgentSpec::dev(&store.catalog_url, "runtime = \"fakenode\"\nversion = \"1.0.0\""),
    )
    .await;
    agent.wait_for_state("running", SOON).await;

    let job = install(&agent, "fakenode", "2.0.0").await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["done"], job["total"]);
    // The running shell sees the upgrade at once: PATH names `current`, which moved.
    assert_eq!(say_hello(&agent).await, "hello from fakenode 2.0.0");
    let (_, installed) = agent.get("/dev/runtimes").await;
    assert_eq!(
        installed["runtimes"][0],
        json!({"name": "fakenode", "versions": ["1.0.0", "2.0.0"], "current": "2.0.0", "previous": "1.0.0"})
    );

    let (code, rolled) = agent.post("/dev/runtimes/rollback", Some(json!({"runtime": "fakenode"}))).await;
    assert_eq!((code, &rolled["current"]), (200, &json!("1.0.0")));
    assert_eq!(say_hello(&agent).await, "hello from fakenode 1.0.0");
    let in_use =
        agent.request(reqwest::Method::DELETE, "/dev/runtimes/fakenode/1.0.0").send().await.expect("delete");
    let code = in_use.status().as_u16();
    let body: Value = in_use.json().await.expect("error body");
    assert_eq!((code, &body["error"]["code"]), (409, &json!("in_use")), "the version in use stays");
    let (code, body) =
        agent.post("/dev/runtimes/switch", Some(json!({"runtime": "fakenode", "version": "7.0.0"}))).await;
    assert_eq!((code, &body["error"]["code"]), (404, &json!("not_found")), "{body}");
    let (code, _) =
        agent.post("/dev/runtimes/switch", Some(json!({"runtime": "fakenode", "version": "2.0.0"}))).await;
    assert_eq!(code, 200);
    let response =
        agent.request(reqwest::Method::DELETE, "/dev/runtimes/fakenode/1.0.0").send().await.expect("delete");
    assert_eq!(response.status(), 204);
    let (_, installed) = agent.get("/dev/runtimes").await;
    assert_eq!(installed["runtimes"][0]["versions"], json!(["2.0.0"]));
    assert_eq!(installed["runtimes"][0]["previous"], Value::Null);
    // Installing what is installed downloads nothing and only switches.
    let downloads = store.downloads("fakenode", "2.0.0");
    assert_eq!(install(&agent, "fakenode", "2.0.0").await["state"], "succeeded");
    assert_eq!(store.downloads("fakenode", "2.0.0"), downloads);
}

#[tokio::test]
async fn tampered_truncated_interrupted_and_hostile_artifacts_change_nothing() {
    let store = ArtifactStore::start().await;
    store.publish(Kind::Runtime, "fakenode", "1.0.0", fake_runtime("fakenode", "1.0.0", 1024));
    let good = fake_runtime("fakenode", "9.9.9", 256 << 10);
    let honest = Artifact {
        url: "fakenode/9.9.9/fakenode-9.9.9.tar.gz".into(),
        sha256: String::new(),
        size: good.len() as u64,
    };
    let sha = |bytes: &[u8]| {
        use sha2::Digest;
        sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let mut tampered = good.clone();
    let last = tampered.len() - 100;
    tampered[last] ^= 0xff;
    let hostile = tar_gz(&[("fakenode-6.6.6/bin/zlh-hello", b"#!/bin/sh\necho pwned\n", 0o755)]);
    let mut hostile_raw = hostile.clone();
    // Rewrite the name inside the archive into an escape ("../../../..") of the same length.
    let escaped = {
        let mut builder =
            tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        let mut header = tar::Header::new_gnu();
        let name = b"../../../../../outside-the-root.txt";
        header.as_gnu_mut().expect("gnu").name[..name.len()].copy_from_slice(name);
        header.set_size(5);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder.append(&header, &b"pwned"[..]).expect("append");
        builder.into_inner().expect("tar").finish().expect("gzip")
    };
    hostile_raw.clear();
    let cases = [
        (
            "9.9.1",
            tampered.clone(),
            Artifact {
                sha256: sha(&good),
                url: "fakenode/9.9.1/fakenode-9.9.1.tar.gz".into(),
                ..honest.clone()
            },
            Delivery::Whole,
            "SHA-256 does not match",
        ),
        (
            "9.9.2",
            good[..good.len() / 2].to_vec(),
            Artifact {
                sha256: sha(&good),
                url: "fakenode/9.9.2/fakenode-9.9.2.tar.gz".into(),
                ..honest.clone()
            },
            Delivery::Whole,
            "ended after",
        ),
        (
            "9.9.3",
            good.clone(),
            Artifact {
                sha256: sha(&good),
                url: "fakenode/9.9.3/fakenode-9.9.3.tar.gz".into(),
                ..honest.clone()
            },
            Delivery::BreakHalfway,
            "broke off",
        ),
        (
            "9.9.4",
            good.clone(),
            Artifact { sha256: sha(&good), size: 1000, url: "fakenode/9.9.4/fakenode-9.9.4.tar.gz".into() },
            Delivery::Whole,
            "larger than the catalog",
        ),
        (
            "9.9.5",
            escaped.clone(),
            Artifact {
                sha256: sha(&escaped),
                size: escaped.len() as u64,
                url: "fakenode/9.9.5/fakenode-9.9.5.tar.gz".into(),
            },
            Delivery::Whole,
            "outside its directory",
        ),
    ];
    for (version, bytes, artifact, delivery, _) in &cases {
        store.publish_as(Kind::Runtime, "fakenode", version, bytes.clone(), artifact.clone(), *delivery);
    }
    let agent = TestAgent::start(
        zlh(),
        &AgentSpec::dev(&store.catalog_url, "runtime = \"fakenode\"\nversion = \"1.0.0\""),
    )
    .await;
    agent.wait_for_state("running", SOON).await;
    for (version, _, _, _, reason) in &cases {
        let job = install(&agent, "fakenode", version).await;
        assert_eq!(job["state"], "failed", "{version}: {job}");
        assert!(job["message"].as_str().expect("message").contains(reason), "{version}: {job}");
    }
    let (code, job) =
        agent.post("/dev/runtimes/install", Some(json!({"runtime": "fakenode", "version": "7.7.7"}))).await;
    assert_eq!(code, 202);
    let job = wait_for_job(&agent, job["id"].as_str().expect("id")).await;
    assert!(job["message"].as_str().expect("message").contains("not in the artifact catalog"), "{job}");

    let (_, installed) = agent.get("/dev/runtimes").await;
    assert_eq!(
        installed["runtimes"][0],
        json!({"name": "fakenode", "versions": ["1.0.0"], "current": "1.0.0", "previous": null})
    );
    assert_eq!(say_hello(&agent).await, "hello from fakenode 1.0.0");
    let staging = agent.root.path().join("opt/zlh/runtimes/.staging");
    assert!(std::fs::read_dir(&staging).map_or(true, |mut d| d.next().is_none()), "staging is cleaned");
    assert!(!agent.root.path().join("outside-the-root.txt").exists());
    assert!(!agent.root.path().parent().expect("parent").join("outside-the-root.txt").exists());
}

#[tokio::test]
async fn kill_9_in_the_middle_of_an_install_leaves_the_old_runtime_usable() {
    let store = ArtifactStore::start().await;
    store.publish(Kind::Runtime, "fakenode", "1.0.0", fake_runtime("fakenode", "1.0.0", 1024));
    let slow = fake_runtime("fakenode", "2.0.0", 4 << 20);
    let artifact = Artifact {
        url: "fakenode/2.0.0/fakenode-2.0.0.tar.gz".into(),
        sha256: {
            use sha2::Digest;
            sha2::Sha256::digest(&slow).iter().map(|b| format!("{b:02x}")).collect()
        },
        size: slow.len() as u64,
    };
    store.publish_as(Kind::Runtime, "fakenode", "2.0.0", slow, artifact, Delivery::Trickle(20));
    let mut agent = TestAgent::start(
        zlh(),
        &AgentSpec::dev(&store.catalog_url, "runtime = \"fakenode\"\nversion = \"1.0.0\""),
    )
    .await;
    agent.wait_for_state("running", SOON).await;
    let (_, job) =
        agent.post("/dev/runtimes/install", Some(json!({"runtime": "fakenode", "version": "2.0.0"}))).await;
    let id = job["id"].as_str().expect("id").to_owned();
    eventually("the download to be under way", SOON, || async {
        let (_, job) = agent.get(&format!("/jobs/{id}")).await;
        (job["done"].as_u64().unwrap_or(0) > 0).then_some(())
    })
    .await;
    agent.kill9();
    agent.launch().await;
    agent.wait_for_state("running", SOON).await;
    let (_, installed) = agent.get("/dev/runtimes").await;
    assert_eq!(
        installed["runtimes"][0],
        json!({"name": "fakenode", "versions": ["1.0.0"], "current": "1.0.0", "previous": null})
    );
    assert_eq!(say_hello(&agent).await, "hello from fakenode 1.0.0");
    let staging = agent.root.path().join("opt/zlh/runtimes/.staging");
    assert!(std::fs::read_dir(&staging).map_or(true, |mut d| d.next().is_none()), "staging emptied at start");
}

#[tokio::test]
async fn two_installs_of_one_runtime_never_race() {
    let store = ArtifactStore::start().await;
    store.publish(Kind::Runtime, "fakenode", "1.0.0", fake_runtime("fakenode", "1.0.0", 1024));
    store.publish(Kind::Runtime, "fakenode", "3.0.0", fake_runtime("fakenode", "3.0.0", 1 << 20));
    let agent = TestAgent::start(
        zlh(),
        &AgentSpec::dev(&store.catalog_url, "runtime = \"fakenode\"\nversion = \"1.0.0\""),
    )
    .await;
    agent.wait_for_state("running", SOON).await;
    let request =
        || agent.post("/dev/runtimes/install", Some(json!({"runtime": "fakenode", "version": "3.0.0"})));
    let (first, second) = tokio::join!(request(), request());
    // One runs; the other is refused while it does (409), or, arriving after it, finds the
    // version installed and only switches.
    let mut succeeded = 0;
    for (code, answer) in [first, second] {
        match code {
            202 => {
                let job = wait_for_job(&agent, answer["id"].as_str().expect("job id")).await;
                assert_eq!(job["state"], "succeeded", "{job}");
                succeeded += 1;
            }
            _ => assert_eq!((code, &answer["error"]["code"]), (409, &json!("install_in_progress"))),
        }
    }
    assert!(succeeded >= 1);
    assert_eq!(store.downloads("fakenode", "3.0.0"), 1, "never two downloads of one install");
    assert_eq!(say_hello(&agent).await, "hello from fakenode 3.0.0");
}

#[tokio::test]
async fn a_failed_provisioning_is_an_error_with_the_reason() {
    let store = ArtifactStore::start().await;
    let agent = TestAgent::start(
        zlh(),
        &AgentSpec::dev(&store.catalog_url, "runtime = \"nonexistent\"\nversion = \"1.0\""),
    )
    .await;
    let status = agent.wait_for_state("error", SOON).await;
    assert!(
        status["lastError"].as_str().expect("reason").contains("not in the artifact catalog"),
        "{status}"
    );
    assert_eq!(status["provisioningComplete"], false);
    let (_, ready) = agent.get("/ready").await;
    assert_eq!(ready["ready"], false);
    assert!(procs::processes_under(agent.root.path()).iter().all(|p| *p == agent.pid()), "no shell started");
}
