//! The browser tests' side of the Rust tests: runs a script of `e2e/` (playwright-core driving
//! Debian's Chromium) and reads the JSON it prints last; the fixtures they need.

use serde_json::Value;

use crate::TestControlPlane;

/// Where screenshots of this run go (kept as artifacts of the run, not committed).
pub fn screenshots() -> String {
    let dir = std::env::var("ZLH_SCREENSHOTS").unwrap_or_else(|_| std::env::temp_dir().display().to_string());
    std::fs::create_dir_all(&dir).expect("screenshots directory");
    dir
}

/// Runs `e2e/<script>` with node; returns the JSON of its last line.
pub async fn run_script(script: &str, args: &[&str], env: &[(&str, &str)]) -> Value {
    let e2e = std::env::var("ZLH_E2E_DIR").expect(
        "browser tests need their fixtures: run `cargo xtask test`, or `eval \"$(cargo xtask fixtures)\"` first",
    );
    let began = std::time::Instant::now();
    let output = tokio::process::Command::new("node")
        .arg(format!("{e2e}/{script}"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .await
        .expect("node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{script}: {:?}", began.elapsed());
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|_| panic!("{script} said: {stdout}\n{}", String::from_utf8_lossy(&output.stderr)))
}

/// The real code-server packed as an artifact by `cargo xtask fixtures`.
pub fn code_server_artifact() -> String {
    std::env::var("ZLH_TEST_CODE_SERVER_TGZ").expect(
        "this test needs a real code-server: run `cargo xtask test`, or `eval \"$(cargo xtask fixtures)\"` before single tests",
    )
}

/// Publishes what dev servers need into a control plane's artifact store: the real
/// code-server and a small runtime, `fakenode 1.0.0`.
pub fn publish_dev_artifacts(control: &TestControlPlane) {
    let code_server = code_server_artifact();
    control.cli(
        &[
            "artifacts",
            "add",
            "--kind",
            "addon",
            "--name",
            "code-server",
            "--version",
            "4.99.4",
            &code_server,
        ],
        "",
    );
    let runtime = control.data.path().join("fakenode-1.0.0.tar.gz");
    std::fs::write(&runtime, crate::artifacts::fake_runtime("fakenode", "1.0.0", 1024)).expect("runtime");
    let runtime = runtime.display().to_string();
    control.cli(
        &["artifacts", "add", "--kind", "runtime", "--name", "fakenode", "--version", "1.0.0", &runtime],
        "",
    );
}
