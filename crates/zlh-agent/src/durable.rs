//! Writes that survive a crash: a whole new file or the old one, never half of either.

use std::path::Path;

/// Writes `bytes` to `path` through a fsynced temporary file and a rename, then fsyncs the
/// directory, so a crash at any moment leaves either the old or the new file.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let temporary = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// Makes a directory's entries (renames, new files) durable; best effort.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
}

/// Starts writing a file's dirty pages to disk without waiting for them, so that a later
/// fsync finds them written (or on their way) instead of writing them all itself.
#[allow(unsafe_code)]
pub(crate) fn start_writeback(file: &impl std::os::fd::AsFd) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is borrowed for the call and the call touches no memory of ours.
    let status =
        unsafe { libc::sync_file_range(file.as_fd().as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    if status == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}
