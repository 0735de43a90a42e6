//! End-to-end tests of the real `zlh` binary: real agents, holders and sample games as
//! processes, real sockets on port 0, real PTYs.

mod agent_backup;
mod agent_console;
mod agent_crash;
mod agent_dev;
mod agent_http;
mod agent_power;
mod agent_reattach;
mod control_auth;
mod control_ide;
mod control_lifecycle;
mod control_ownership;
mod control_replicas;
mod control_resilience;
mod control_schedules;
mod data_api;
mod docker;
mod games;
mod portal;
mod tidy;

use std::path::Path;
use std::time::Duration;

/// The binary under test.
fn zlh() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_zlh"))
}

/// Generous upper bound for things that take milliseconds on an idle machine.
const SOON: Duration = Duration::from_secs(10);
