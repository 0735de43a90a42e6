//! The tests' container engine (started by `cargo xtask test`), through the `docker` command:
//! what a test inspects of a server's container, and cleanup of everything a node left.

use std::process::Command;

/// The engine `cargo xtask` starts.
pub const SOCKET: &str = "/run/zlh-test-docker/docker.sock";
/// The engine's command line, written by `cargo xtask` so a test can restart it as it was.
pub const ARGS_FILE: &str = "/run/zlh-test-docker/dockerd.json";
/// The image `cargo xtask` builds for servers in tests.
pub const IMAGE: &str = "zlh-test/base:v1";
/// The image with real games from Debian (wesnothd, freeciv-server) that the test eggs name.
pub const GAMES_IMAGE: &str = "zlh-test/debian-games:v1";

/// The engine's endpoint (`ZLH_TEST_DOCKER_HOST`, else the one `cargo xtask` starts).
pub fn host() -> String {
    std::env::var("ZLH_TEST_DOCKER_HOST").unwrap_or_else(|_| format!("unix://{SOCKET}"))
}

/// The image servers run in (`ZLH_TEST_DOCKER_IMAGE`, else the one `cargo xtask` builds).
pub fn image() -> String {
    std::env::var("ZLH_TEST_DOCKER_IMAGE").unwrap_or_else(|_| IMAGE.to_owned())
}

/// The tests' engine as a remote engine is reached (TCP with mutual TLS), as `[docker]` keys:
/// with the client's certificate, or (`with_certificate: false`) without one.
pub fn tls_endpoint(with_certificate: bool) -> String {
    let host =
        std::env::var("ZLH_TEST_DOCKER_TLS_HOST").expect("ZLH_TEST_DOCKER_TLS_HOST (cargo xtask test)");
    let dir =
        std::path::PathBuf::from(std::env::var("ZLH_TEST_DOCKER_TLS_DIR").expect("ZLH_TEST_DOCKER_TLS_DIR"));
    let file = |name: &str| serde_json::to_string(&dir.join(name).display().to_string()).expect("json");
    let (cert, key) = if with_certificate {
        (file("cert.pem"), file("key.pem"))
    } else {
        (file("server.pem"), file("server-key.pem"))
    };
    format!("endpoint = \"{host}\"\ntls = {{ ca = {}, cert = {cert}, key = {key} }}", file("ca.pem"))
}

/// Runs `docker <args>` against the tests' engine; its status and stdout.
pub fn docker(args: &[&str]) -> (bool, String) {
    let output = Command::new("docker").args(args).env("DOCKER_HOST", host()).output().expect("docker");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// `docker inspect` of a container or volume, as JSON.
pub fn inspect(name: &str) -> serde_json::Value {
    let (ok, text) = docker(&["inspect", name]);
    assert!(ok, "docker inspect {name}");
    serde_json::from_str::<serde_json::Value>(&text).expect("inspect JSON")[0].clone()
}

/// The containers and volumes of a node.
pub fn node_resources(node: &str) -> (Vec<String>, Vec<String>) {
    let filter = format!("label=zlh.node={node}");
    let (_, containers) = docker(&["ps", "-aq", "--filter", &filter]);
    let (_, volumes) = docker(&["volume", "ls", "-q", "--filter", &filter]);
    let lines = |text: String| text.lines().map(str::to_owned).collect::<Vec<_>>();
    (lines(containers), lines(volumes))
}

/// Removes every container and volume of a node.
pub fn remove_node(node: &str) {
    let (containers, volumes) = node_resources(node);
    for container in containers {
        docker(&["rm", "-f", "-v", &container]);
    }
    for volume in volumes {
        docker(&["volume", "rm", "-f", &volume]);
    }
}

/// Unmounts every filesystem mounted beneath `dir` (servers' own disks, with their loop devices),
/// once their containers are gone.
pub fn unmount_under(dir: &std::path::Path) {
    let Ok(dir) = dir.canonicalize() else { return };
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for point in mounts.lines().filter_map(|line| line.split(' ').nth(4)) {
        if std::path::Path::new(point).starts_with(&dir) {
            let _ = Command::new("umount").arg(point).status();
        }
    }
}

/// Starts `dockerd <args>` in a session of its own (it outlives the caller, like a system
/// service), appending to `log`, and waits until it answers.
pub fn start_engine(args: &[String], log: &std::path::Path) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|e| e.to_string())?;
    Command::new("dockerd")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start dockerd: {e}"))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !docker(&["info"]).0 {
        if std::time::Instant::now() > deadline {
            return Err("dockerd did not answer within a minute: see its log".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    Ok(())
}

/// Restarts the tests' engine as `cargo xtask` started it (what `systemctl restart docker`
/// does to a node's servers): stops it, waits for it to exit, starts it again.
pub fn restart_engine() {
    let args: Vec<String> =
        serde_json::from_slice(&std::fs::read(ARGS_FILE).expect("the engine's command line")).expect("args");
    let pid_file = std::path::Path::new(SOCKET).with_file_name("docker.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file).expect("pid").trim().parse().expect("pid");
    let pid = rustix::process::Pid::from_raw(pid).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM dockerd");
    // Gone, or a zombie: its parent (`cargo xtask test`, still running) reaps it only at the end.
    let running = || {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero())).unwrap_or_default();
        stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while running() {
        assert!(std::time::Instant::now() < deadline, "dockerd did not stop within a minute");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let log = std::path::Path::new(SOCKET).with_file_name("dockerd-restarted.log");
    start_engine(&args, &log).expect("dockerd starts again");
}
