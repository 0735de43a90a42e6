//! Starting the `zlh` daemons a test runs, and finding and killing the processes it started,
//! including those that deliberately outlive their agent (holders and games).

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Pids of processes whose command line or working directory mentions `dir`.
pub fn processes_under(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != std::process::id())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(&needle) || cwd.starts_with(dir)
        })
        .collect()
}

/// Sends SIGKILL to `pid`.
pub fn kill9(pid: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// SIGKILL to a child (if there is one), then reaps it.
pub fn kill_child(child: Option<std::process::Child>) {
    if let Some(mut child) = child {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// SIGTERM to a child (if there is one), then waits until it has exited (its graceful stop),
/// letting other tasks run.
pub async fn terminate(child: Option<Child>) {
    if let Some(mut child) = child {
        signal(child.id(), rustix::process::Signal::TERM);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while child.try_wait().ok().flatten().is_none() {
            assert!(tokio::time::Instant::now() < deadline, "{} did not exit within 30 s", child.id());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Sends `signal` to `pid`.
pub fn signal(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Whether `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Spawns a `zlh` daemon (`command`, which logs JSON lines on stdout), keeps each line in
/// `logs`, and waits up to `timeout` for the line whose message is `listening`; returns the
/// child and the address that line names.
pub async fn spawn_listening(
    mut command: Command,
    listening: &'static str,
    logs: Arc<Mutex<Vec<String>>>,
    timeout: Duration,
) -> (Child, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let (address_tx, address_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line)
                && json["message"] == listening
            {
                let _ = address_tx.send(json["address"].as_str().unwrap_or_default().to_owned());
            }
            logs.lock().expect("logs").push(line);
        }
    });
    let address = tokio::task::spawn_blocking(move || address_rx.recv_timeout(timeout))
        .await
        .expect("join")
        .unwrap_or_else(|_| panic!("no {listening:?} line within {timeout:?}"));
    (child, address)
}
