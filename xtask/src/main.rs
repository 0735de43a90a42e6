//! Repository tasks, behind `cargo xtask`:
//!
//! - `cargo xtask test`: the whole gate (what CI runs): installs what the tests need, then
//!   tidy checks, clippy and every test.
//! - `cargo xtask bench`: builds release binaries and prints the benchmark tables.
//! - `cargo xtask fixtures`: installs what browser and code-server tests need and prints
//!   their environment (`eval "$(cargo xtask fixtures)"` before running single tests).
//! - `cargo xtask vendor`: copies the portal's pinned npm packages (xterm.js) into
//!   `crates/zlh-control/portal/vendor/`, after a version change in its `package.json`.

mod bench;
mod docker;
mod e2e;
mod postgres;
mod test;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

fn main() -> anyhow::Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    match task.as_str() {
        "test" => test::run(),
        "bench" => bench::run(std::env::args().skip(2).collect()),
        // For running single tests by hand: `eval "$(cargo xtask fixtures)"`.
        "fixtures" => {
            for (key, value) in e2e::prepare()?.env() {
                println!("export {key}={value:?}");
            }
            Ok(())
        }
        "vendor" => e2e::portal_vendor(true),
        // Internal: simulated agents for `bench poller`.
        "sim-agents" => {
            bench::simulate_agents(std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(1000))
        }
        _ => {
            bail!(
                "usage: cargo xtask <test|bench [agent|console|poller|replicas|ide|backup|docker]|fixtures|vendor>"
            )
        }
    }
}

/// The workspace root.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_owned()
}

/// Runs a command in the workspace, echoing it; fails if it fails.
fn run_command(program: &str, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(workspace())
        .status()
        .with_context(|| format!("cannot run {program}"))?;
    if !status.success() {
        bail!("{program} {} failed: {status}", args.join(" "));
    }
    Ok(())
}

/// Whether a program is on PATH.
fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .is_ok_and(|o| o.status.success())
}
