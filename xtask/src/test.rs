//! `cargo xtask test`: everything that must pass before a change lands.

use crate::{have, run_command};

pub(crate) fn run() -> anyhow::Result<()> {
    run_command("cargo", &["fmt", "--all", "--check"])?;
    run_command("cargo", &["clippy", "--workspace", "--all-targets", "--quiet", "--", "-D", "warnings"])?;
    if have("cargo-nextest") {
        run_command("cargo", &["nextest", "run", "--workspace", "--no-fail-fast"])
    } else {
        run_command("cargo", &["test", "--workspace", "--no-fail-fast"])
    }
}
