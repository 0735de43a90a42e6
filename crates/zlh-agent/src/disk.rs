//! The server's disk limit: how much of it is used, and whether the agent's own writes still fit.
//!
//! Where the driver gave the server a filesystem of its own (`enforced_by = "kernel"`), the
//! kernel stops every write past the limit with ENOSPC, whoever makes it; the agent only reads
//! the filesystem's usage (`statvfs`, one system call). Elsewhere (`measured`) the agent walks
//! the server's directories, at most once per [`MEASURE_EVERY`], and refuses its own writes
//! (uploads, extracts, backups, restores) that would go past the limit; the game itself can
//! outrun a measurement, which is why the API says which of the two a server has.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use zlh_proto::agent::DiskUsage;
use zlh_proto::agent_config::{DiskEnforcement, DiskSection};

/// How long a measured usage is trusted.
const MEASURE_EVERY: Duration = Duration::from_secs(10);

/// A disk with less room than this is full.
const FULL_BELOW: u64 = 1 << 20;

/// A server's disk and its limit.
#[derive(Debug)]
pub struct Disk {
    limit: Option<DiskSection>,
    /// What counts against the limit: the server's directory and its backups.
    paths: Vec<PathBuf>,
    measured: Mutex<Option<(Instant, u64)>>,
}

impl Disk {
    /// The disk of `paths` (the first is where the kernel's filesystem is read), limited by
    /// `limit` when there is one.
    pub fn new(limit: Option<DiskSection>, paths: Vec<PathBuf>) -> Disk {
        Disk { limit, paths, measured: Mutex::new(None) }
    }

    /// What the server uses of its limit; `None` without a limit. Blocks while measuring.
    pub fn usage(&self) -> Option<DiskUsage> {
        let limit = self.limit?;
        let used_bytes = match limit.enforced_by {
            // What cannot be written any more counts as used, the filesystem's own overhead
            // included: the server is full exactly when the kernel says so.
            DiskEnforcement::Kernel => limit.limit_bytes.saturating_sub(available(self.paths.first()?)?),
            DiskEnforcement::Measured => self.measured(),
        };
        Some(DiskUsage { used_bytes, limit_bytes: limit.limit_bytes, enforced_by: limit.enforced_by })
    }

    /// How many more bytes the agent may write, when it is the one keeping the limit
    /// (`measured`); `None` when the kernel keeps it or there is none.
    pub fn allowance(&self) -> Option<u64> {
        let usage = self.usage().filter(|u| u.enforced_by == DiskEnforcement::Measured)?;
        Some(usage.limit_bytes.saturating_sub(usage.used_bytes))
    }

    /// The most that may still be written: what a measured limit leaves, and never more than
    /// the filesystem has (where the kernel keeps the limit, the filesystem is the limit). An
    /// archive that would unpack to more is refused before it is unpacked.
    pub fn room(&self) -> u64 {
        let free = self.paths.first().and_then(|path| available(path)).unwrap_or(u64::MAX);
        self.allowance().map_or(free, |allowed| allowed.min(free))
    }

    /// Refuses work that writes (a backup, a restore, an extract) when the disk is full: less
    /// than [`FULL_BELOW`] left, which no such work fits in.
    pub fn has_room(&self) -> Result<(), DiskUsage> {
        match self.usage() {
            Some(usage) if usage.used_bytes + FULL_BELOW > usage.limit_bytes => Err(usage),
            _ => Ok(()),
        }
    }

    /// Forgets the last measurement, after the agent wrote or deleted something itself.
    pub fn changed(&self) {
        *self.measured.lock().expect("disk lock") = None;
    }

    fn measured(&self) -> u64 {
        let mut last = self.measured.lock().expect("disk lock");
        match *last {
            Some((at, bytes)) if at.elapsed() < MEASURE_EVERY => bytes,
            _ => {
                let bytes = self.paths.iter().map(|path| tree_size(path)).sum();
                *last = Some((Instant::now(), bytes));
                bytes
            }
        }
    }
}

/// Bytes that can still be written on the filesystem that holds `path`.
fn available(path: &Path) -> Option<u64> {
    let fs = rustix::fs::statvfs(path).ok()?;
    Some(fs.f_bavail * fs.f_frsize)
}

/// Bytes of disk a directory tree takes (allocated blocks, not apparent sizes), without
/// following symbolic links.
fn tree_size(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut pending = vec![path.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(metadata) = entry.metadata() else { continue };
            total += metadata.blocks() * 512;
            if metadata.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_measured_disk_counts_what_is_written_and_says_when_it_is_full() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limit = DiskSection {
            limit_bytes: 1 << 20,
            enforced_by: DiskEnforcement::Measured,
            own_filesystem: false,
        };
        let disk = Disk::new(Some(limit), vec![dir.path().to_owned()]);
        assert_eq!(disk.allowance(), Some(1 << 20));
        std::fs::create_dir(dir.path().join("world")).expect("mkdir");
        std::fs::write(dir.path().join("world/region"), vec![1u8; 2 << 20]).expect("write");
        // Trusted until told otherwise.
        assert_eq!(disk.allowance(), Some(1 << 20));
        disk.changed();
        let usage = disk.usage().expect("usage");
        assert!(usage.used_bytes >= 2 << 20, "{usage:?}");
        assert_eq!(disk.allowance(), Some(0));
        assert_eq!(disk.has_room(), Err(usage));
    }

    #[test]
    fn a_kernel_disk_is_read_from_the_filesystem_and_leaves_writes_to_the_kernel() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limit =
            DiskSection { limit_bytes: u64::MAX, enforced_by: DiskEnforcement::Kernel, own_filesystem: true };
        let disk = Disk::new(Some(limit), vec![dir.path().to_owned()]);
        assert!(disk.usage().expect("usage").used_bytes > 0);
        assert_eq!(disk.allowance(), None);
        assert_eq!(disk.has_room(), Ok(()));
        assert_eq!(Disk::new(None, vec![dir.path().to_owned()]).usage(), None);
    }
}
