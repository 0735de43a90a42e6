//! `cargo xtask test`: everything that must pass before a change lands.

use std::process::Command;

use anyhow::bail;

use crate::{e2e, have, run_command, workspace};

pub(crate) fn run() -> anyhow::Result<()> {
    let fixtures = e2e::prepare()?;
    run_command("cargo", &["fmt", "--all", "--check"])?;
    run_command("cargo", &["clippy", "--workspace", "--all-targets", "--quiet", "--", "-D", "warnings"])?;
    let args: &[&str] = if have("cargo-nextest") {
        &["nextest", "run", "--workspace", "--no-fail-fast"]
    } else {
        &["test", "--workspace", "--no-fail-fast"]
    };
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new("cargo").args(args).envs(fixtures.env()).current_dir(workspace()).status()?;
    if !status.success() {
        bail!("tests failed: {status}");
    }
    eprintln!("screenshots of this run: {}", fixtures.screenshots.display());
    Ok(())
}
