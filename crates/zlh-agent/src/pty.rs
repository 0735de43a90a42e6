//! Pseudo-terminals: open one and start a process with it as its controlling terminal.
//!
//! This is the one module with `unsafe` throughout (`durable` has one call): starting a child
//! in its own session with the PTY as its controlling terminal needs a `pre_exec` hook, which
//! runs between `fork` and `exec`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::Winsize;

/// Both ends of a fresh pseudo-terminal.
#[derive(Debug)]
pub(crate) struct Pty {
    /// The side the supervisor reads output from and writes input to (non-blocking).
    pub(crate) master: OwnedFd,
    /// The side the child gets as stdin, stdout and stderr.
    pub(crate) slave: OwnedFd,
}

/// Opens a pseudo-terminal of the given size.
pub(crate) fn open(cols: u16, rows: u16) -> io::Result<Pty> {
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let slave =
        rustix::fs::open(name.as_c_str(), OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC, Mode::empty())?;
    resize(&master, cols, rows)?;
    rustix::io::ioctl_fionbio(&master, true)?;
    Ok(Pty { master, slave })
}

/// Sets the terminal size (the child gets SIGWINCH).
pub(crate) fn resize(master: impl AsFd, cols: u16, rows: u16) -> io::Result<()> {
    let size = Winsize { ws_row: rows.max(1), ws_col: cols.max(1), ws_xpixel: 0, ws_ypixel: 0 };
    rustix::termios::tcsetwinsize(master, size)?;
    Ok(())
}

/// Starts `command` in a new session whose controlling terminal is `slave`, with the slave as
/// its stdin, stdout and stderr. The child's process group id equals its pid, so the whole
/// group can be signalled.
pub(crate) fn spawn(
    command: &mut tokio::process::Command,
    slave: &OwnedFd,
) -> io::Result<tokio::process::Child> {
    command
        .stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave.try_clone()?));
    // SAFETY: the hook runs in the forked child before exec and only makes two system calls
    // (setsid, ioctl TIOCSCTTY on fd 0), both async-signal-safe; it allocates nothing and
    // touches no lock.
    unsafe {
        command.pre_exec(|| {
            rustix::process::setsid()?;
            rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
            Ok(())
        });
    }
    command.spawn()
}

/// Registers the PTY master with tokio's reactor.
pub(crate) fn register(master: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` owns its descriptor, keeps it open until dropped, and always
    // returns the same descriptor from `as_raw_fd`, which is all `register` asks.
    unsafe { tokio::io::unix::AsyncFd::register(master) }.map_err(|e| e.into_parts().1)
}
