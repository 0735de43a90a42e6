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

/// A file written through it starts on its way to disk every [`WRITEBACK_EVERY`] bytes, so
/// that the fsync at its end waits for the last few MiB instead of writing them all.
pub(crate) struct WritingBack {
    pub(crate) file: std::fs::File,
    unstarted: usize,
}

const WRITEBACK_EVERY: usize = 8 << 20;

impl WritingBack {
    pub(crate) fn new(file: std::fs::File) -> WritingBack {
        WritingBack { file, unstarted: 0 }
    }
}

impl std::io::Write for WritingBack {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        let written = self.file.write(buffer)?;
        self.unstarted += written;
        if self.unstarted >= WRITEBACK_EVERY {
            self.unstarted = 0;
            start_writeback(&self.file)?;
        }
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}
