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
