//! The server directory's file API. Every operation goes through one `cap-std` handle on the
//! directory, so nothing resolves outside it: not `..`, not an absolute path (both refused up
//! front with a clear error), not a symlink, even one the game created itself. Uploads and
//! edits are written to a temporary file in the same directory, fsynced, and renamed over the
//! target, so a reader sees the old file or the new one, never half of it.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use cap_std::fs::{Dir, OpenOptions, Permissions, PermissionsExt};
use serde::Serialize;

/// Temporary files of uploads start with this.
const UPLOAD_PREFIX: &str = ".zlh-upload-";
/// Staging directories of extractions start with this.
const STAGING_PREFIX: &str = ".zlh-extract-";

/// Why a file operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The path is malformed (absolute, `..`, NUL).
    #[error("{0}")]
    InvalidPath(String),
    /// The path resolves outside the server directory.
    #[error("that path leads outside the server's directory")]
    Outside,
    /// Nothing there.
    #[error("no such file or directory")]
    NotFound,
    /// Something is there already.
    #[error("something already exists there")]
    Exists,
    /// A directory to delete without `recursive` has entries.
    #[error("the directory is not empty; delete it with recursive=true")]
    NotEmpty,
    /// Larger than allowed.
    #[error("larger than the {0} bytes allowed")]
    TooLarge(u64),
    /// The disk is full.
    #[error("the disk is full")]
    NoSpace,
    /// The client stopped sending before the body was complete.
    #[error("the upload broke off; nothing was written")]
    Interrupted,
    /// The template keeps this path out of reach (its `file_denylist`).
    #[error("this server's template does not allow access to that file")]
    Denied,
    /// Anything else.
    #[error("{0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for FileError {
    fn from(error: std::io::Error) -> FileError {
        use std::io::ErrorKind;
        match error.kind() {
            ErrorKind::NotFound => FileError::NotFound,
            ErrorKind::AlreadyExists => FileError::Exists,
            ErrorKind::StorageFull => FileError::NoSpace,
            ErrorKind::DirectoryNotEmpty => FileError::NotEmpty,
            // cap-std's answer to anything that would resolve outside the directory.
            ErrorKind::PermissionDenied if error.to_string().contains("outside of the filesystem") => {
                FileError::Outside
            }
            _ if error.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => FileError::Outside,
            // Ordinary mistakes in a request, said plainly rather than as a 500.
            ErrorKind::NotADirectory => {
                FileError::InvalidPath("a part of that path is a file, not a directory".into())
            }
            ErrorKind::IsADirectory => FileError::InvalidPath("a directory is there".into()),
            ErrorKind::InvalidFilename => {
                FileError::InvalidPath(format!("a name is longer than {MAX_NAME} bytes"))
            }
            ErrorKind::InvalidInput => FileError::InvalidPath(error.to_string()),
            _ => FileError::Io(error),
        }
    }
}

/// A path inside the server directory, as the API takes it: relative, plain names only. An
/// empty path (or `.`) is the directory itself.
pub fn clean(path: &str) -> Result<PathBuf, FileError> {
    if path.contains('\0') {
        return Err(FileError::InvalidPath("paths cannot contain NUL".into()));
    }
    let raw = Path::new(path);
    if raw.is_absolute() {
        return Err(FileError::InvalidPath(
            "paths are relative to the server's directory (no leading /)".into(),
        ));
    }
    let mut clean = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(name) if name.len() > MAX_NAME => {
                return Err(FileError::InvalidPath(format!("a name is at most {MAX_NAME} bytes")));
            }
            Component::Normal(name) => clean.push(name),
            Component::CurDir => {}
            _ => return Err(FileError::InvalidPath("paths cannot go up with ..".into())),
        }
    }
    Ok(clean)
}

/// The longest file name (Linux's limit for one path component).
const MAX_NAME: usize = 255;

/// `clean`, for a path about to be created: its name must also be one people can type and
/// download again (no newline, tab or other control character).
pub fn clean_new(path: &str) -> Result<PathBuf, FileError> {
    let path = clean(path)?;
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    if name.chars().any(char::is_control) {
        return Err(FileError::InvalidPath(
            "names cannot contain control characters (newlines, tabs)".into(),
        ));
    }
    Ok(path)
}

fn or_dot(path: &Path) -> &Path {
    if path.as_os_str().is_empty() { Path::new(".") } else { path }
}

/// Opens a regular file beneath `root` for reading. Anything else is refused at once: a FIFO
/// (a game can make one) would hold the reading thread until someone writes to it, and a
/// device or socket is no file to serve. The open itself does not wait (`O_NONBLOCK`, which
/// changes nothing for reading a regular file).
pub(crate) fn open_regular(root: &Dir, path: &Path) -> std::io::Result<cap_std::fs::File> {
    use cap_std::fs::OpenOptionsExt;
    let mut options = OpenOptions::new();
    options.read(true).custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    let file = root.open_with(or_dot(path), &options)?;
    let metadata = file.metadata()?;
    if metadata.is_dir() {
        return Err(std::io::Error::new(std::io::ErrorKind::IsADirectory, "that is a directory"));
    }
    if !metadata.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "that is not a regular file (a pipe, socket or device); it cannot be read or copied",
        ));
    }
    Ok(file)
}

/// Temporaries of our own (uploads being written, archives being unpacked): never listed.
fn is_ours(name: &str) -> bool {
    name.starts_with(UPLOAD_PREFIX) || name.starts_with(STAGING_PREFIX)
}

/// One directory entry.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Name.
    pub name: String,
    /// `file`, `dir`, `symlink`, or `special` (a pipe, socket or device: never opened).
    pub kind: &'static str,
    /// Size in bytes (files).
    pub size: u64,
    /// Unix permission bits.
    pub mode: u32,
    /// Last modification (ms since the epoch).
    pub modified_ms: Option<u64>,
}

/// The server directory. The capability handle is opened per operation: a restore swaps the
/// directory, and a handle kept from before would still point at the old one.
#[derive(Debug)]
pub struct Files {
    root_path: PathBuf,
    /// The largest upload accepted.
    pub max_upload: u64,
    /// Who uploaded files belong to (a dev container's user), when not the agent's user.
    owner: Option<(u32, u32)>,
    /// The server's disk and its limit.
    disk: std::sync::Arc<crate::disk::Disk>,
    /// Paths the template keeps out of the owner's reach (`[game] file_denylist`).
    denylist: Vec<glob::Pattern>,
}

impl Files {
    /// The server directory at `root_path` (created if missing).
    pub fn open(root_path: &Path, max_upload: u64) -> std::io::Result<Files> {
        std::fs::create_dir_all(root_path)?;
        let disk = std::sync::Arc::new(crate::disk::Disk::new(None, Vec::new()));
        Ok(Files { root_path: root_path.to_owned(), max_upload, owner: None, disk, denylist: Vec::new() })
    }

    /// Refuses every path matching one of `patterns` (globs; a pattern that is not one is
    /// matched literally), or lying in a directory that matches.
    pub fn denying(mut self, patterns: &[String]) -> Files {
        self.denylist = patterns
            .iter()
            .map(|p| {
                glob::Pattern::new(p)
                    .unwrap_or_else(|_| glob::Pattern::new(&glob::Pattern::escape(p)).expect("escaped"))
            })
            .collect();
        self
    }

    /// `path` unless the denylist refuses it: the path itself, any directory above it, or
    /// any of their names may match.
    fn allowed(&self, path: PathBuf) -> Result<PathBuf, FileError> {
        let denied = path.ancestors().filter(|p| !p.as_os_str().is_empty()).any(|prefix| {
            let name = prefix.file_name().map(Path::new).unwrap_or(prefix);
            self.denylist.iter().any(|pattern| pattern.matches_path(prefix) || pattern.matches_path(name))
        });
        if denied {
            return Err(FileError::Denied);
        }
        Ok(path)
    }

    /// Writes count against this disk's limit.
    pub fn on(mut self, disk: std::sync::Arc<crate::disk::Disk>) -> Files {
        self.disk = disk;
        self
    }

    /// Where the directory is.
    pub fn root_path(&self) -> &Path {
        &self.root_path
    }

    /// The disk the directory is on.
    pub fn disk(&self) -> &crate::disk::Disk {
        &self.disk
    }

    /// Uploaded files are given to this uid and gid.
    pub fn owned_by(mut self, owner: Option<(u32, u32)>) -> Files {
        self.owner = owner;
        self
    }

    /// A capability handle on the directory as it is now.
    pub fn dir(&self) -> std::io::Result<Dir> {
        Dir::open_ambient_dir(&self.root_path, cap_std::ambient_authority())
    }

    /// The entries of a directory, directories first, then by name.
    pub fn list(&self, path: &str) -> Result<Vec<Entry>, FileError> {
        let path = clean(path)?;
        let mut entries: Vec<Entry> = self
            .dir()?
            .read_dir(or_dot(&path))?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                if is_ours(&name) {
                    return None;
                }
                let metadata = entry.metadata().ok()?;
                let kind = if metadata.is_symlink() {
                    "symlink"
                } else if metadata.is_dir() {
                    "dir"
                } else if metadata.is_file() {
                    "file"
                } else {
                    "special"
                };
                let modified_ms = metadata
                    .modified()
                    .ok()
                    .and_then(|t| t.into_std().duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_millis() as u64);
                Some(Entry {
                    name,
                    kind,
                    size: metadata.len(),
                    mode: metadata.permissions().mode() & 0o7777,
                    modified_ms,
                })
            })
            .collect();
        entries.sort_by(|a, b| (a.kind != "dir", &a.name).cmp(&(b.kind != "dir", &b.name)));
        Ok(entries)
    }

    /// Opens a file for reading (following symlinks only within the directory).
    pub fn read(&self, path: &str) -> Result<(std::fs::File, u64), FileError> {
        let root = self.dir()?;
        let file = open_regular(&root, &self.allowed(clean(path)?)?)?;
        let length = file.metadata()?.len();
        Ok((file.into_std(), length))
    }

    /// A temporary file beside `path` and its name; `commit_upload` renames it into place.
    pub fn begin_upload(&self, path: &str) -> Result<Upload, FileError> {
        let root = self.dir()?;
        let path = self.allowed(clean_new(path)?)?;
        if path.file_name().is_none() {
            return Err(FileError::InvalidPath("a file needs a name".into()));
        }
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut bytes = [0u8; 8];
        let _ = getrandom::fill(&mut bytes);
        // Short whatever the name: a name near the 255-byte limit still gets its temporary.
        let temporary = parent.join(format!("{UPLOAD_PREFIX}{:016x}", u64::from_le_bytes(bytes)));
        let file = root.open_with(&temporary, OpenOptions::new().write(true).create_new(true))?;
        if let Some((uid, gid)) = self.owner.filter(|(uid, _)| *uid != rustix::process::geteuid().as_raw()) {
            // On the open file: no path to race with.
            let ids = (rustix::fs::Uid::from_raw(uid), rustix::fs::Gid::from_raw(gid));
            if let Err(e) = rustix::fs::fchown(&file, Some(ids.0), Some(ids.1)) {
                let _ = root.remove_file(&temporary);
                return Err(std::io::Error::from(e).into());
            }
        }
        Ok(Upload {
            file: file.into_std(),
            temporary,
            target: path,
            written: 0,
            limit: self.max_upload,
            room: self.disk.allowance(),
        })
    }

    /// Finishes an upload: fsync, rename over the target.
    pub fn commit_upload(&self, upload: Upload) -> Result<(), FileError> {
        let root = self.dir()?;
        let Upload { file, temporary, target, .. } = upload;
        let synced = file.sync_all();
        drop(file);
        if let Err(e) = synced {
            let _ = root.remove_file(&temporary);
            return Err(e.into());
        }
        if let Err(e) = root.rename(&temporary, &root, &target) {
            let _ = root.remove_file(&temporary);
            return Err(e.into());
        }
        self.disk.changed();
        Ok(())
    }

    /// Abandons an upload.
    pub fn abort_upload(&self, upload: Upload) {
        if let Ok(root) = self.dir() {
            let _ = root.remove_file(&upload.temporary);
        }
    }

    /// A new, empty hidden directory at the top of the server directory, to unpack into before
    /// anything visible changes; its relative path.
    pub fn staging_dir(&self) -> Result<PathBuf, FileError> {
        let mut bytes = [0u8; 8];
        let _ = getrandom::fill(&mut bytes);
        let name = PathBuf::from(format!("{STAGING_PREFIX}{:016x}", u64::from_le_bytes(bytes)));
        self.dir()?.create_dir(&name)?;
        Ok(name)
    }

    /// Moves everything in `from` into `to` (both relative; `to` is made if missing): files
    /// replace files of the same name, directories merge. Then `from` is removed.
    pub fn merge(&self, from: &Path, to: &Path) -> Result<(), FileError> {
        let root = self.dir()?;
        // The whole merge is checked before anything moves: it happens entirely or not at all.
        if root.symlink_metadata(or_dot(to)).is_ok_and(|m| !m.is_dir()) {
            return Err(FileError::Exists);
        }
        check_merge(&root, from, to)?;
        root.create_dir_all(or_dot(to))?;
        merge_tree(&root, from, to)?;
        Ok(root.remove_dir_all(from)?)
    }

    /// Removes what a killed agent's uploads and extractions left, anywhere in the directory
    /// (an upload's temporary sits beside its target). Only what is older than the sweep: an
    /// upload that begins while it runs (it runs beside the API, the tree may be large) stays.
    pub fn sweep(&self) {
        let Ok(root) = self.dir() else { return };
        let started = std::time::SystemTime::now();
        let mut pending = vec![PathBuf::new()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = root.read_dir(or_dot(&dir)) else { continue };
            for entry in entries.flatten() {
                let path = dir.join(entry.file_name());
                let Ok(metadata) = root.symlink_metadata(&path) else { continue };
                let name = entry.file_name().to_string_lossy().into_owned();
                let stale = metadata.modified().is_ok_and(|at| at.into_std() < started);
                if is_ours(&name) && stale {
                    tracing::warn!(path = %path.display(), "removing what an interrupted upload or extraction left");
                    let _ =
                        if metadata.is_dir() { root.remove_dir_all(&path) } else { root.remove_file(&path) };
                } else if metadata.is_dir() {
                    pending.push(path);
                }
            }
        }
    }

    /// Creates a directory (and its parents).
    pub fn mkdir(&self, path: &str) -> Result<(), FileError> {
        let root = self.dir()?;
        Ok(root.create_dir_all(self.allowed(clean_new(path)?)?)?)
    }

    /// Renames (moves) within the directory; the target must not exist.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), FileError> {
        let root = self.dir()?;
        let (from, to) = (self.allowed(clean(from)?)?, self.allowed(clean_new(to)?)?);
        if root.symlink_metadata(&to).is_ok() {
            return Err(FileError::Exists);
        }
        refuse_into_itself(&from, &to, "moved")?;
        Ok(root.rename(&from, &root, &to)?)
    }

    /// Copies a file or a directory tree; the target must not exist. Symlinks are copied as
    /// symlinks.
    pub fn copy(&self, from: &str, to: &str) -> Result<(), FileError> {
        let root = self.dir()?;
        let (from, to) = (self.allowed(clean(from)?)?, self.allowed(clean_new(to)?)?);
        if root.symlink_metadata(&to).is_ok() {
            return Err(FileError::Exists);
        }
        refuse_into_itself(&from, &to, "copied")?;
        if !root.symlink_metadata(or_dot(&from))?.is_dir() {
            // A single file: a pipe or device is refused, not copied.
            return copy_file(&root, &from, &to);
        }
        copy_tree(&root, &from, &to)
    }

    /// Deletes a file, a symlink, or (with `recursive`) a directory tree.
    pub fn delete(&self, path: &str, recursive: bool) -> Result<(), FileError> {
        let root = self.dir()?;
        let path = self.allowed(clean(path)?)?;
        if path.as_os_str().is_empty() {
            return Err(FileError::InvalidPath("the server's directory itself cannot be deleted".into()));
        }
        let metadata = root.symlink_metadata(&path)?;
        match (metadata.is_dir(), recursive) {
            (true, true) => root.remove_dir_all(&path)?,
            (true, false) => root.remove_dir(&path)?,
            (false, _) => root.remove_file(&path)?,
        }
        self.disk.changed();
        Ok(())
    }

    /// Sets permission bits (no setuid, setgid or sticky).
    pub fn chmod(&self, path: &str, mode: u32) -> Result<(), FileError> {
        let root = self.dir()?;
        let path = self.allowed(clean(path)?)?;
        if mode & !0o777 != 0 {
            return Err(FileError::InvalidPath("mode may only hold permission bits (0..=0o777)".into()));
        }
        Ok(root.set_permissions(&path, Permissions::from_mode(mode))?)
    }
}

/// Refuses to move or copy a directory into itself (a copy would fill the disk).
fn refuse_into_itself(from: &Path, to: &Path, what: &str) -> Result<(), FileError> {
    if to.starts_with(from) {
        return Err(FileError::InvalidPath(format!("a directory cannot be {what} into itself")));
    }
    Ok(())
}

/// Copies a tree; symlinks are copied as symlinks, pipes, sockets and devices left out. What
/// a directory holds is read before the copy is made, so a copy that lands inside its source
/// (through a symlink) never copies itself.
fn copy_tree(root: &Dir, from: &Path, to: &Path) -> Result<(), FileError> {
    let metadata = root.symlink_metadata(or_dot(from))?;
    if metadata.is_symlink() {
        root.symlink_contents(root.read_link_contents(from)?, to)?;
    } else if metadata.is_dir() {
        let names: Vec<_> =
            root.read_dir(or_dot(from))?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
        root.create_dir(to)?;
        for name in names {
            copy_tree(root, &from.join(&name), &to.join(&name))?;
        }
    } else if metadata.is_file() {
        copy_file(root, from, to)?;
    }
    Ok(())
}

/// Copies one regular file, with its permission bits.
fn copy_file(root: &Dir, from: &Path, to: &Path) -> Result<(), FileError> {
    let mut source = open_regular(root, from)?;
    let mut target = root.open_with(to, OpenOptions::new().write(true).create_new(true))?;
    std::io::copy(&mut source, &mut target)?;
    target.set_permissions(source.metadata()?.permissions())?;
    Ok(())
}

/// Whether every entry of `from` can move into `to`: nothing replaces a directory unless it
/// is a directory too, and no directory lands where a file is. `to` may not exist yet.
fn check_merge(root: &Dir, from: &Path, to: &Path) -> Result<(), FileError> {
    for entry in root.read_dir(from)? {
        let name = entry?.file_name();
        let (source, target) = (from.join(&name), to.join(&name));
        let source_is_dir = root.symlink_metadata(&source)?.is_dir();
        let Ok(existing) = root.symlink_metadata(&target) else { continue };
        match (source_is_dir, existing.is_dir()) {
            (true, true) => check_merge(root, &source, &target)?,
            (false, false) => {}
            _ => {
                return Err(FileError::InvalidPath(format!(
                    "{} clashes with what is there (a file where a directory is, or the reverse); nothing was changed",
                    target.display()
                )));
            }
        }
    }
    Ok(())
}

fn merge_tree(root: &Dir, from: &Path, to: &Path) -> Result<(), FileError> {
    for entry in root.read_dir(from)? {
        let name = entry?.file_name();
        let (source, target) = (from.join(&name), to.join(&name));
        let source_is_dir = root.symlink_metadata(&source)?.is_dir();
        match root.symlink_metadata(&target) {
            Ok(existing) if existing.is_dir() && source_is_dir => merge_tree(root, &source, &target)?,
            Ok(existing) if existing.is_dir() => return Err(FileError::Exists),
            _ => root.rename(&source, root, &target)?,
        }
    }
    Ok(())
}

/// An upload in progress.
#[derive(Debug)]
pub struct Upload {
    file: std::fs::File,
    temporary: PathBuf,
    target: PathBuf,
    written: u64,
    limit: u64,
    /// What is left of a measured disk limit.
    room: Option<u64>,
}

impl Upload {
    /// Appends a chunk, refusing past the limit.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), FileError> {
        self.written += chunk.len() as u64;
        if self.written > self.limit {
            return Err(FileError::TooLarge(self.limit));
        }
        if self.room.is_some_and(|room| self.written > room) {
            return Err(FileError::NoSpace);
        }
        self.file.write_all(chunk).map_err(FileError::from)
    }
}

/// So archives can be written straight into an upload (same limit).
impl Write for Upload {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        Upload::write(self, buffer).map_err(|e| match e {
            FileError::Io(e) => e,
            other => std::io::Error::other(other.to_string()),
        })?;
        Ok(buffer.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_or_refused() {
        assert_eq!(clean("world/region").expect("plain"), PathBuf::from("world/region"));
        assert_eq!(clean("./world/./x").expect("dots"), PathBuf::from("world/x"));
        assert_eq!(clean("").expect("root"), PathBuf::new());
        for bad in ["/etc/passwd", "../x", "world/../../x", "a\0b"] {
            assert!(clean(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_denylist_keeps_its_files_out_of_reach() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("secrets")).expect("mkdir");
        std::fs::write(dir.path().join("secrets/key"), "k").expect("write");
        std::fs::write(dir.path().join("world.sqlite-journal"), "j").expect("write");
        std::fs::write(dir.path().join("server.cfg"), "c").expect("write");
        let files = Files::open(dir.path(), 1 << 20).expect("open").denying(&[
            "*.sqlite-journal".into(),
            "secrets".into(),
            "[broken".into(),
        ]);
        let denied = |result: Result<(), FileError>| matches!(result, Err(FileError::Denied));
        assert!(denied(files.read("world.sqlite-journal").map(|_| ())));
        assert!(denied(files.read("secrets/key").map(|_| ())));
        assert!(denied(files.delete("secrets", true)));
        assert!(denied(files.rename("server.cfg", "secrets/cfg")));
        assert!(denied(files.copy("secrets/key", "key")));
        assert!(denied(files.chmod("world.sqlite-journal", 0o600)));
        assert!(denied(files.begin_upload("[broken").map(|_| ())), "a bad pattern is matched as written");
        assert!(files.read("server.cfg").is_ok());
    }

    #[test]
    fn symlinks_never_lead_outside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = dir.path().join("server");
        std::fs::create_dir_all(server.join("world")).expect("mkdir");
        std::fs::write(dir.path().join("secret.txt"), "outside").expect("secret");
        std::os::unix::fs::symlink("../../secret.txt", server.join("world/escape")).expect("link");
        std::os::unix::fs::symlink("/etc", server.join("etc")).expect("abs link");
        let files = Files::open(&server, 1024).expect("open");
        assert!(
            matches!(files.read("world/escape"), Err(FileError::Outside)),
            "{:?}",
            files.read("world/escape")
        );
        assert!(matches!(files.list("etc"), Err(FileError::Outside)));
        assert!(matches!(files.chmod("world/escape", 0o777), Err(FileError::Outside)));
        let mut upload = files.begin_upload("world/escape").expect("a temp file beside it");
        upload.write(b"x").expect("write");
        files.commit_upload(upload).expect("replaces the link itself, not its target");
        assert_eq!(std::fs::read_to_string(dir.path().join("secret.txt")).expect("secret"), "outside");
    }
}
