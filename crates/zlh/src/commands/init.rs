//! `zlh init -- <command>`: PID 1 of a server's container.
//!
//! A container's first process has two jobs the kernel gives no one else: it adopts every
//! orphan (and must reap it, or zombies pile up), and when it exits the container ends. The
//! agent must be able to die (`kill -9`, a crash, an upgrade) without the game dying with it,
//! so the agent cannot be PID 1. This init runs the agent as its child, restarts it when it
//! exits, and reaps everything else. The agent's process holders (which keep the game and its
//! terminal) are orphaned when the agent dies, become this process's children, and live on
//! until the next agent reattaches to them.
//!
//! SIGTERM or SIGINT (`docker stop`) is passed to the agent, which stops the game gracefully
//! and exits; then init exits and the container ends.

use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rustix::process::{Pid, Signal, WaitOptions};

#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    /// The process to keep running (the agent) and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// How long a restarted agent waits after the last one exited, so a crash loop does not spin.
const RESTART_DELAY: Duration = Duration::from_secs(1);
/// How often init looks for exited children and signals.
const TICK: Duration = Duration::from_millis(50);

pub(crate) fn run(args: InitArgs) -> anyhow::Result<()> {
    let terminate = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&terminate)).context("cannot watch signals")?;
    }
    let mut agent = Some(spawn(&args.command)?);
    let mut exited_at = Instant::now();
    let mut forwarded = false;
    loop {
        if terminate.load(Ordering::SeqCst) && !forwarded {
            forwarded = true;
            if let Some(pid) = agent.as_ref().and_then(|a| Pid::from_raw(a.id() as i32)) {
                let _ = rustix::process::kill_process(pid, Signal::TERM);
            }
        }
        // Reap whatever exited: the agent, or an orphan this process adopted.
        while let Ok(Some((pid, _))) = rustix::process::wait(WaitOptions::NOHANG) {
            if agent.as_ref().is_some_and(|a| a.id() as i32 == pid.as_raw_nonzero().get()) {
                agent = None;
                exited_at = Instant::now();
            }
        }
        match &agent {
            None if terminate.load(Ordering::SeqCst) => return Ok(()),
            None if exited_at.elapsed() >= RESTART_DELAY => {
                eprintln!("zlh init: the agent exited; starting it again");
                agent = Some(spawn(&args.command)?);
            }
            _ => {}
        }
        std::thread::sleep(TICK);
    }
}

fn spawn(command: &[String]) -> anyhow::Result<Child> {
    let Some((program, arguments)) = command.split_first() else { bail!("init needs a command") };
    Command::new(program).args(arguments).spawn().with_context(|| format!("cannot start {program}"))
}
