//! Disk quotas the kernel enforces, for an engine on this machine: every server's data is an
//! ext4 filesystem of its own, in a sparse image file mounted through a loop device, so a write
//! past its size fails with ENOSPC whoever makes it (the game included), without the project
//! quotas that XFS or ext4 offer only on kernels built with them.
//!
//! ```text
//! <dir>/<id>.ext4    the image: as large as the quota, taking only what is written
//! <dir>/<id>/        where it is mounted, and bound into the container as its data
//! ```
//!
//! The mount point itself is root's and closed (mode 0): a container started before its image
//! is mounted (a reboot, before the control plane is back) can write nothing to the host's disk;
//! the driver mounts the image and restarts that container when it adopts the server.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::DriverError;

/// Servers' filesystem images in one directory.
#[derive(Debug, Clone)]
pub(super) struct LoopDisks {
    dir: PathBuf,
}

impl LoopDisks {
    /// Images in `dir`, when this process can make and mount them (root, loop devices,
    /// `mkfs.ext4`); `None` otherwise.
    pub(super) fn here(dir: PathBuf) -> Option<LoopDisks> {
        let able = rustix::process::geteuid().is_root()
            && Path::new("/dev/loop-control").exists()
            && Command::new("mkfs.ext4").arg("-V").output().is_ok_and(|o| o.status.success());
        // Absolute and resolved, as the mount table says it.
        let dir = std::fs::create_dir_all(&dir).and_then(|()| dir.canonicalize()).ok()?;
        able.then_some(LoopDisks { dir })
    }

    fn image(&self, server_id: i64) -> PathBuf {
        self.dir.join(format!("{server_id}.ext4"))
    }

    /// Where a server's filesystem is mounted.
    pub(super) fn mount_point(&self, server_id: i64) -> PathBuf {
        self.dir.join(server_id.to_string())
    }

    /// Makes a server's filesystem of `mb` MiB, its root owned by `uid:gid`, and mounts it.
    pub(super) fn create(&self, server_id: i64, mb: u32, (uid, gid): (u64, u64)) -> Result<(), DriverError> {
        let image = self.image(server_id);
        let made = (|| {
            std::fs::create_dir_all(&self.dir)?;
            std::fs::File::create_new(&image)?.set_len(u64::from(mb) << 20)?;
            // No blocks kept for root: the server may use all of it. Inode tables and the
            // journal are left unwritten (checksums tell the kernel they are empty, and the
            // mount tells it not to zero them later): a sparse image costs what is written.
            let options = format!("root_owner={uid}:{gid},lazy_itable_init=1,lazy_journal_init=1");
            run(Command::new("mkfs.ext4").args(["-q", "-F", "-m", "0", "-E", &options]).arg(&image))
        })();
        if let Err(e) = made.and_then(|()| self.mount(server_id)) {
            tracing::error!(server_id, error = %e, "cannot make the server's filesystem");
            let _ = std::fs::remove_file(&image);
            return Err(DriverError("the server's disk could not be made".into()));
        }
        // Not the server's business.
        let _ = std::fs::remove_dir(self.mount_point(server_id).join("lost+found"));
        Ok(())
    }

    /// Mounts a server's filesystem unless it is; whether it had to.
    pub(super) fn ensure_mounted(&self, server_id: i64) -> Result<bool, DriverError> {
        if is_mount_point(&self.mount_point(server_id)) {
            return Ok(false);
        }
        self.mount(server_id).map(|()| true).map_err(|e| {
            tracing::error!(server_id, error = %e, "cannot mount the server's filesystem");
            DriverError("the server's disk could not be mounted".into())
        })
    }

    fn mount(&self, server_id: i64) -> std::io::Result<()> {
        let point = self.mount_point(server_id);
        if !point.exists() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().mode(0o000).create(&point)?;
        }
        run(Command::new("mount")
            .args(["-t", "ext4", "-o", "loop,nosuid,nodev,noatime,noinit_itable"])
            .arg(self.image(server_id))
            .arg(&point))
    }

    /// Unmounts and deletes a server's filesystem (the loop device goes with the mount).
    pub(super) fn remove(&self, server_id: i64) -> Result<(), DriverError> {
        let point = self.mount_point(server_id);
        let removed = (|| {
            if is_mount_point(&point) {
                run(Command::new("umount").arg(&point))?;
            }
            for outcome in [std::fs::remove_dir(&point), std::fs::remove_file(self.image(server_id))] {
                match outcome {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            Ok(())
        })();
        removed.map_err(|e| {
            tracing::error!(server_id, error = %e, "cannot remove the server's filesystem");
            DriverError("the server's disk could not be removed".into())
        })
    }
}

/// Runs a system command, its output kept for the error.
fn run(command: &mut Command) -> std::io::Result<()> {
    let output = command.output()?;
    if output.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&output.stderr);
    Err(std::io::Error::other(format!("{command:?} failed: {}", said.trim())))
}

/// Whether something is mounted at `path`.
fn is_mount_point(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    // Field 5 is the mount point (spaces escaped as \040, which our paths do not have).
    mounts.lines().any(|line| line.split(' ').nth(4).is_some_and(|point| Path::new(point) == path))
}
