//! Test-only helpers: real agents (the real `zlh` binary) on port 0 in temporary directories,
//! HTTP and console clients for them, and cleanup of every process a test leaves behind.
#![forbid(unsafe_code)]

pub mod agent;
pub mod artifacts;
pub mod balancer;
pub mod browser;
pub mod console;
pub mod control;
pub mod docker;
pub mod files;
pub mod ports;
pub mod postgres;
pub mod procs;
pub mod upstream;
pub mod wait;

pub use agent::{AgentSpec, TestAgent};
pub use artifacts::{ArtifactStore, Delivery};
pub use balancer::LoadBalancer;
pub use console::ConsoleClient;
pub use control::{ApiUser, ControlSpec, Replica, TestControlPlane};
pub use ports::PortRange;
pub use upstream::EchoUpstream;
pub use wait::eventually;

/// A random hex string, for secrets.
pub fn random_hex(bytes: usize) -> String {
    use std::io::Read;
    let mut buffer = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buffer)).expect("urandom");
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

/// Milliseconds since the epoch of an RFC 3339 timestamp from the API.
pub fn parse_time_ms(text: &str) -> u64 {
    let time = humantime::parse_rfc3339(text).expect("RFC 3339 timestamp");
    time.duration_since(std::time::UNIX_EPOCH).expect("after epoch").as_millis() as u64
}
