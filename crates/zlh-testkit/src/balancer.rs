//! Debian's haproxy in front of several control planes, as a host runs them: health checks on
//! `/health`, retries of requests that never reached a replica, WebSockets passed through.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::wait::eventually;

/// A running haproxy. Dropping it stops it.
#[derive(Debug)]
pub struct LoadBalancer {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl LoadBalancer {
    /// A free loopback port (for a balancer whose URL must be known before it starts).
    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
    }

    /// Starts haproxy on `port`, balancing over `backends` (`host:port`); returns once it
    /// accepts connections.
    pub async fn start(port: u16, backends: &[&str]) -> LoadBalancer {
        let dir = tempfile::tempdir().expect("tempdir");
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, address)| format!("    server r{i} {address} check inter 100ms fall 2 rise 1\n"))
            .collect();
        let config = format!(
            "global\n    maxconn 4096\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 60s\n    timeout server 60s\n\
             \x20   timeout tunnel 1h\n    retries 3\n    option redispatch 1\n    retry-on all-retryable-errors\n\
             frontend api\n    bind 127.0.0.1:{port}\n    default_backend replicas\n\
             backend replicas\n    balance roundrobin\n    option httpchk GET /health\n{servers}"
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).expect("write haproxy.cfg");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy (Debian's package; `cargo xtask test` installs it)");
        eventually("haproxy listens", Duration::from_secs(10), || async {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
        })
        .await;
        LoadBalancer { child, url: format!("http://127.0.0.1:{port}"), _dir: dir }
    }
}

impl Drop for LoadBalancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
