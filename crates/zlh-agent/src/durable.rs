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

/// Syncs on a thread of its own whenever asked, so that the writer goes on meanwhile: behind a
/// long write, the final sync then finds little left. (On a loop-mounted image, a server's
/// disk, nothing else writes the bytes out before that sync.)
pub(crate) struct SyncBeside {
    asked: std::sync::mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl SyncBeside {
    /// Calls `sync` each time it is asked to.
    pub(crate) fn start(
        mut sync: impl FnMut() -> std::io::Result<()> + Send + 'static,
    ) -> std::io::Result<SyncBeside> {
        // One request waiting while a sync runs is enough: the next covers everything before it.
        let (asked, requests) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("zlh-sync".into())
            .spawn(move || requests.into_iter().try_for_each(|()| sync()))?;
        Ok(SyncBeside { asked, thread })
    }

    /// Asks for a sync (a failed one is heard in [`SyncBeside::finish`]).
    pub(crate) fn ask(&self) {
        let _ = self.asked.try_send(());
    }

    /// Waits for the sync under way; the first error, if any.
    pub(crate) fn finish(self) -> std::io::Result<()> {
        drop(self.asked);
        self.thread.join().unwrap_or_else(|_| Err(std::io::Error::other("a sync thread failed")))
    }
}

/// A file written straight to the disk (`O_DIRECT`), a MiB at a time from one aligned
/// buffer, rather than through the page cache: an archive, or a restored world's large files,
/// of hundreds of MiB would otherwise take as much fresh page cache (on the bench's virtual
/// machine a page touched for the first time costs about 10 µs: 500 MiB took 1.2 s of CPU
/// buffered, 0.03 s direct) and push the game's other files out of it. Where the filesystem
/// refuses `O_DIRECT`, or a write does, the rest goes through the page cache; so does the
/// last, partial block, in [`DirectWriter::finish`]. The file still needs its fsync.
pub(crate) struct DirectWriter {
    file: std::fs::File,
    direct: bool,
    /// [`BLOCK`] bytes from `start` are aligned to [`ALIGN`].
    buffer: Vec<u8>,
    start: usize,
    filled: usize,
}

/// The bytes written at a time.
const BLOCK: usize = 1 << 20;
/// The alignment `O_DIRECT` needs of memory, offsets and lengths (a page covers every disk).
const ALIGN: usize = 4096;

impl DirectWriter {
    /// Writes `file`, new and empty, opened for writing.
    pub(crate) fn new(file: std::fs::File) -> std::io::Result<DirectWriter> {
        let flags = rustix::fs::fcntl_getfl(&file)?;
        let direct = match rustix::fs::fcntl_setfl(&file, flags | rustix::fs::OFlags::DIRECT) {
            Ok(()) => true,
            Err(rustix::io::Errno::INVAL) => false,
            Err(e) => return Err(e.into()),
        };
        let buffer = vec![0; BLOCK + ALIGN];
        let start = buffer.as_ptr().align_offset(ALIGN);
        Ok(DirectWriter { file, direct, buffer, start, filled: 0 })
    }

    /// Whether the file is written around the page cache.
    #[cfg(test)]
    fn is_direct(&self) -> bool {
        self.direct
    }

    /// Writes what is buffered, and returns the file.
    pub(crate) fn finish(mut self) -> std::io::Result<std::fs::File> {
        if self.filled > 0 {
            if self.direct {
                through_page_cache(&self.file)?;
                self.direct = false;
            }
            self.write_out()?;
        }
        Ok(self.file)
    }

    /// The file written (to sync what was written so far, which leaves out a partial block
    /// still in the buffer).
    pub(crate) fn file(&self) -> &std::fs::File {
        &self.file
    }

    fn write_out(&mut self) -> std::io::Result<()> {
        use std::io::Write;
        let mut rest = &self.buffer[self.start..self.start + self.filled];
        self.filled = 0;
        while !rest.is_empty() {
            match (&self.file).write(rest) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(written) => rest = &rest[written..],
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // A write `O_DIRECT` refuses (one left unaligned by a short write before it):
                // the same bytes again, through the page cache.
                Err(e)
                    if self.direct && e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) =>
                {
                    through_page_cache(&self.file)?;
                    self.direct = false;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Turns `O_DIRECT` off for `file`'s later writes.
fn through_page_cache(file: &std::fs::File) -> std::io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(file)?;
    Ok(rustix::fs::fcntl_setfl(file, flags - rustix::fs::OFlags::DIRECT)?)
}

impl std::io::Write for DirectWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let taken = bytes.len().min(BLOCK - self.filled);
        let at = self.start + self.filled;
        self.buffer[at..at + taken].copy_from_slice(&bytes[..taken]);
        self.filled += taken;
        if self.filled == BLOCK {
            self.write_out()?;
        }
        Ok(taken)
    }

    /// Keeps a partial block: `O_DIRECT` writes whole ones; [`DirectWriter::finish`] writes it.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn a_direct_file_holds_every_byte_written_partial_block_included() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("archive");
        let mut writer = DirectWriter::new(std::fs::File::create(&path).expect("create")).expect("direct");
        assert!(writer.is_direct(), "ext4 and tmpfs (since Linux 6.6) take O_DIRECT");
        let bytes: Vec<u8> = (0..3 * BLOCK + BLOCK / 2 + 5).map(|i| (i % 251) as u8).collect();
        for piece in bytes.chunks(100_003) {
            writer.write_all(piece).expect("write");
        }
        writer.flush().expect("flush");
        writer.finish().expect("finish").sync_all().expect("sync");
        assert_eq!(std::fs::read(&path).expect("read"), bytes, "every byte, in order");
    }

    /// A sync asked for is done before `finish` returns, and a failed one is not lost.
    #[test]
    fn a_sync_beside_runs_when_asked_and_reports_failure() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let count = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        let syncer = SyncBeside::start(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .expect("thread");
        assert_eq!(count.load(Ordering::SeqCst), 0, "not before it is asked");
        syncer.ask();
        syncer.finish().expect("synced");
        assert!(count.load(Ordering::SeqCst) >= 1);

        let failing = SyncBeside::start(|| Err(std::io::ErrorKind::StorageFull.into())).expect("thread");
        failing.ask();
        failing.ask();
        let error = failing.finish().expect_err("the failure is heard");
        assert_eq!(error.kind(), std::io::ErrorKind::StorageFull);
    }
}
