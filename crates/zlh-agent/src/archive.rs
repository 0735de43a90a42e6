//! Archives: unpacking `.tar.gz`, `.tar.zst` and `.zip` files that may be hostile, beneath one
//! directory; and packing a directory into a tar stream while hashing every file.
//!
//! Every write goes through a capability handle on the target directory (`cap-std`, which uses
//! `openat2(RESOLVE_BENEATH)` on Linux), so no path can resolve outside it, not even through
//! a symlink created earlier in the same archive. On top of that: entries with `..` or absolute
//! paths are refused, symlinks and hard links must point inside the archive, devices and FIFOs
//! are refused, modes lose setuid/setgid/sticky, and the unpacked size is capped in bytes,
//! entries and ratio to the compressed size (archive bombs).

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use cap_std::fs::{Dir, OpenOptions, Permissions, PermissionsExt};
use sha2::Digest as _;

use crate::durable::DirectWriter;
use crate::pipeline::{Recycling, recycling};

/// How much an archive may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Total bytes written.
    pub max_bytes: u64,
    /// Entries of any kind.
    pub max_entries: u64,
    /// Bytes written per compressed byte.
    pub max_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: 8 << 30, max_entries: 500_000, max_ratio: 200 }
    }
}

/// Why an archive was refused.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive is damaged or not a tar.gz.
    #[error("the archive is damaged or not a .tar.gz: {0}")]
    Corrupt(String),
    /// An entry tried to leave the target directory.
    #[error("the archive tries to write outside its directory ({0})")]
    Escape(String),
    /// An entry of a kind we do not unpack.
    #[error("the archive holds a device or special file ({0})")]
    SpecialFile(String),
    /// Past a size, entry or ratio limit.
    #[error("the archive unpacks to more than allowed ({0}); it looks like an archive bomb")]
    TooLarge(String),
    /// Reading or writing failed (disk full, permissions).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What was unpacked.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Unpacked {
    /// Regular files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// A path inside the archive made of plain names only, or why not.
fn clean_path(path: &Path) -> Result<PathBuf, ArchiveError> {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => clean.push(name),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(ArchiveError::Escape(path.display().to_string()));
            }
        }
    }
    Ok(clean)
}

/// Whether a symlink at `link` with this `target` stays inside the archive root.
fn link_stays_inside(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = link.parent().map_or(0, |p| p.components().count() as i64);
    for component in target.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::ParentDir => depth -= 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// Checks, once everything is unpacked, that every symlink the archive made resolves inside
/// `target` however links chain (`a -> .`, `b -> a/..`: each fine alone, outside together). A
/// link that leads outside, or into a loop, refuses the whole archive; a dangling one inside is
/// harmless.
fn links_resolve_inside(target: &Dir, links: &[PathBuf]) -> Result<(), ArchiveError> {
    for link in links {
        if let Err(error) = target.metadata(link) {
            let outside = error.to_string().contains("outside of the filesystem")
                || error.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error());
            if outside {
                return Err(ArchiveError::Escape(format!("{} leads outside the archive", link.display())));
            }
        }
    }
    Ok(())
}

/// Unpacks a `.tar.gz` read from `source` into `target`. `compressed_size` is the archive's
/// size, for the ratio limit.
pub fn unpack_tar_gz(
    source: impl Read,
    target: &Dir,
    compressed_size: u64,
    limits: Limits,
) -> Result<Unpacked, ArchiveError> {
    unpack_tar(flate2::read::GzDecoder::new(source), target, compressed_size, limits)
}

/// Unpacks a `.tar.zst` read from `source` into `target`.
pub fn unpack_tar_zst(
    source: impl Read,
    target: &Dir,
    compressed_size: u64,
    limits: Limits,
) -> Result<Unpacked, ArchiveError> {
    let decoder =
        zstd::stream::read::Decoder::new(source).map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
    unpack_tar(decoder, target, compressed_size, limits)
}

/// The archive formats we unpack, by file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.tar.gz`, `.tgz`.
    TarGz,
    /// `.tar.zst`.
    TarZst,
    /// `.zip`, `.jar`.
    Zip,
}

impl Format {
    /// The format a file name says, if any.
    pub fn of(name: &str) -> Option<Format> {
        let name = name.to_ascii_lowercase();
        if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Some(Format::TarGz)
        } else if name.ends_with(".tar.zst") {
            Some(Format::TarZst)
        } else if name.ends_with(".zip") || name.ends_with(".jar") {
            Some(Format::Zip)
        } else {
            None
        }
    }
}

/// Unpacks an archive file of `format` into `target`. A tar is read twice: first only to
/// count what it would write, so a bomb is refused before the disk is touched.
pub fn unpack_file(
    mut file: std::fs::File,
    format: Format,
    target: &Dir,
    limits: Limits,
) -> Result<Unpacked, ArchiveError> {
    use std::io::{BufReader, Seek};
    let size = file.metadata()?.len();
    match format {
        Format::TarGz => {
            count_tar(flate2::read::GzDecoder::new(BufReader::new(&file)), size, limits)?;
            file.rewind()?;
            unpack_tar_gz(BufReader::new(file), target, size, limits)
        }
        Format::TarZst => {
            let decoder = zstd::stream::read::Decoder::new(BufReader::new(&file))
                .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
            count_tar(decoder, size, limits)?;
            file.rewind()?;
            unpack_tar_zst(BufReader::new(file), target, size, limits)
        }
        Format::Zip => unpack_zip(file, target, size, limits),
    }
}

/// The most an archive of `compressed_size` bytes may unpack to.
fn byte_limit(limits: Limits, compressed_size: u64) -> u64 {
    limits.max_bytes.min(compressed_size.max(1).saturating_mul(limits.max_ratio))
}

/// Reads a tar stream without writing anything, refusing it when its entries or their sizes
/// go past the limits.
fn count_tar(source: impl Read, compressed_size: u64, limits: Limits) -> Result<(), ArchiveError> {
    let corrupt = |e: std::io::Error| ArchiveError::Corrupt(e.to_string());
    let byte_limit = byte_limit(limits, compressed_size);
    let (mut entries, mut bytes) = (0u64, 0u64);
    for entry in tar::Archive::new(source).entries().map_err(corrupt)? {
        let entry = entry.map_err(corrupt)?;
        entries += 1;
        bytes = bytes.saturating_add(entry.header().entry_size().map_err(corrupt)?);
        if entries > limits.max_entries {
            return Err(ArchiveError::TooLarge(format!("more than {} entries", limits.max_entries)));
        }
        if bytes > byte_limit {
            return Err(ArchiveError::TooLarge(format!("more than {byte_limit} bytes")));
        }
    }
    Ok(())
}

/// Unpacks a zip file into `target`, with the same checks as tar archives.
pub fn unpack_zip(
    file: std::fs::File,
    target: &Dir,
    compressed_size: u64,
    limits: Limits,
) -> Result<Unpacked, ArchiveError> {
    let corrupt = |e: zip::result::ZipError| ArchiveError::Corrupt(e.to_string());
    let mut archive = zip::ZipArchive::new(file).map_err(corrupt)?;
    if archive.len() as u64 > limits.max_entries {
        return Err(ArchiveError::TooLarge(format!("more than {} entries", limits.max_entries)));
    }
    let byte_limit = byte_limit(limits, compressed_size);
    // What the entries declare, before anything is written (what they really hold is counted
    // as they are written, too).
    let mut declared = 0u64;
    for index in 0..archive.len() {
        declared = declared.saturating_add(archive.by_index_raw(index).map_err(corrupt)?.size());
    }
    if declared > byte_limit {
        return Err(ArchiveError::TooLarge(format!("more than {byte_limit} bytes")));
    }
    let mut unpacked = Unpacked::default();
    let mut links = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(corrupt)?;
        let raw = PathBuf::from(entry.name().map_err(corrupt)?.into_owned());
        let path = clean_path(&raw)?;
        if path.as_os_str().is_empty() {
            continue;
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            target.create_dir_all(parent)?;
        }
        if entry.is_dir() {
            target.create_dir_all(&path)?;
            continue;
        }
        if target.symlink_metadata(&path).is_ok_and(|m| !m.is_dir()) {
            target.remove_file(&path)?;
        }
        if entry.is_symlink() {
            let mut link_target = String::new();
            entry.read_to_string(&mut link_target)?;
            if !link_stays_inside(&path, Path::new(&link_target)) {
                return Err(ArchiveError::Escape(format!("{} -> {link_target}", raw.display())));
            }
            target.symlink(&link_target, &path)?;
            links.push(path);
            continue;
        }
        let mut file = target.open_with(&path, OpenOptions::new().write(true).create_new(true))?;
        let room = byte_limit.saturating_sub(unpacked.bytes);
        let written = std::io::copy(&mut (&mut entry).take(room + 1), &mut file)?;
        if written > room {
            return Err(ArchiveError::TooLarge(format!("more than {byte_limit} bytes")));
        }
        unpacked.bytes += written;
        unpacked.files += 1;
        let mode = entry.unix_mode().unwrap_or(0o644) & 0o777;
        file.set_permissions(Permissions::from_mode(mode))?;
    }
    links_resolve_inside(target, &links)?;
    Ok(unpacked)
}

/// Unpacks an uncompressed tar stream into `target`.
pub fn unpack_tar(
    source: impl Read,
    target: &Dir,
    compressed_size: u64,
    limits: Limits,
) -> Result<Unpacked, ArchiveError> {
    unpack_tar_hashing(source, target, compressed_size, limits, None, false)
}

/// Unpacks a tar stream like [`unpack_tar`]; `on_file`, when given, hears of every regular
/// file written with the SHA-256 of what was written (to check a backup against its manifest
/// in the same pass). With `start_writeback`, each file's bytes start on their way to disk as
/// soon as they are written, for a caller that syncs the tree next.
pub fn unpack_tar_hashing(
    source: impl Read,
    target: &Dir,
    compressed_size: u64,
    limits: Limits,
    mut on_file: Option<&mut dyn FnMut(PackedFile)>,
    start_writeback: bool,
) -> Result<Unpacked, ArchiveError> {
    let mut archive = tar::Archive::new(source);
    let mut unpacked = Unpacked::default();
    let mut entries_seen = 0u64;
    let byte_limit = byte_limit(limits, compressed_size);
    let corrupt = |e: std::io::Error| ArchiveError::Corrupt(e.to_string());
    let mut links = Vec::new();
    // Directories get their modes and times once everything inside them is written.
    let mut directories = Vec::new();
    let mut parents = Parents { target: Arc::new(target.try_clone()?), last: None };
    std::thread::scope(|scope| {
        let mut writers = Writers::start(scope, start_writeback);
        let read = (|| {
            for entry in archive.entries().map_err(corrupt)? {
                let mut entry = entry.map_err(corrupt)?;
                entries_seen += 1;
                if entries_seen > limits.max_entries {
                    return Err(ArchiveError::TooLarge(format!("more than {} entries", limits.max_entries)));
                }
                let raw = entry.path().map_err(corrupt)?.into_owned();
                let path = clean_path(&raw)?;
                if path.as_os_str().is_empty() {
                    continue;
                }
                let kind = entry.header().entry_type();
                let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
                let mtime = entry.header().mtime().ok();
                if kind.is_dir() {
                    target.create_dir_all(&path)?;
                    directories.push((path, mode, mtime));
                    continue;
                }
                if kind.is_file() || kind == tar::EntryType::Continuous || kind == tar::EntryType::GNUSparse {
                    // An entry yields exactly the size its header gives, or fails.
                    let size = entry.size();
                    if size > byte_limit.saturating_sub(unpacked.bytes) {
                        return Err(ArchiveError::TooLarge(format!("more than {byte_limit} bytes")));
                    }
                    writers.wait_if_queued(&path)?;
                    let (dir, name) = parents.of(&path)?;
                    let place = Place { dir, name: name.to_owned(), mode, mtime };
                    let sha256 = write_entry(&mut entry, place, on_file.is_some(), &mut writers)?;
                    if let (Some(report), Some(sha256)) = (on_file.as_mut(), sha256) {
                        report(PackedFile { path: path.to_string_lossy().into_owned(), size, sha256 });
                    }
                    unpacked.bytes += size;
                    unpacked.files += 1;
                    continue;
                }
                // Links and replacements meet the files queued before them.
                writers.wait()?;
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    target.create_dir_all(parent)?;
                }
                // A later entry replaces an earlier one, but never by writing through it.
                if target.symlink_metadata(&path).is_ok_and(|m| !m.is_dir()) {
                    target.remove_file(&path)?;
                }
                if kind.is_symlink() {
                    let link_target = entry
                        .link_name()
                        .map_err(corrupt)?
                        .ok_or_else(|| ArchiveError::Corrupt("a symlink without a target".into()))?;
                    if !link_stays_inside(&path, &link_target) {
                        return Err(ArchiveError::Escape(format!(
                            "{} -> {}",
                            raw.display(),
                            link_target.display()
                        )));
                    }
                    target.symlink(&link_target, &path)?;
                    links.push(path);
                    // Two paths may now name one file: a single writer keeps their order.
                    writers.one_lane();
                } else if kind.is_hard_link() {
                    let original = entry
                        .link_name()
                        .map_err(corrupt)?
                        .ok_or_else(|| ArchiveError::Corrupt("a hard link without a target".into()))?;
                    let original = clean_path(&original)?;
                    target.hard_link(&original, target, &path)?;
                } else if matches!(
                    kind,
                    tar::EntryType::XGlobalHeader
                        | tar::EntryType::XHeader
                        | tar::EntryType::GNULongName
                        | tar::EntryType::GNULongLink
                ) {
                    continue;
                } else {
                    return Err(ArchiveError::SpecialFile(raw.display().to_string()));
                }
            }
            Ok(())
        })();
        // A writer's own error (a full disk) explains a failure better than the closed queue
        // the reader then met.
        writers.finish()?;
        read
    })?;
    links_resolve_inside(target, &links)?;
    // Deepest first (a directory appears before what it holds), so setting a child's time
    // does not move its parent's again.
    for (path, mode, mtime) in directories.iter().rev() {
        if let Some(mtime) = mtime {
            // Opened for reading: a handle of cap-std's `open_dir` cannot have its times set.
            set_mtime(&target.open(path)?, *mtime)?;
        }
        target.set_permissions(path, Permissions::from_mode(*mode))?;
    }
    Ok(unpacked)
}

/// Bytes written to a file at a time while unpacking.
const COPY_BUFFER: usize = 1 << 20;

/// Reads a regular file's entry and hands it to the writers with the place it goes: whole when
/// small, else in [`COPY_BUFFER`] pieces. Returns the bytes' SHA-256 when `hash`.
fn write_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    place: Place,
    hash: bool,
    writers: &mut Writers<'_>,
) -> Result<Option<String>, ArchiveError> {
    let size = entry.size();
    let mut hasher = hash.then(sha2::Sha256::new);
    // Appends the entry's next `want` bytes to `buffer`.
    let mut read_into = |buffer: &mut Vec<u8>, want: u64| {
        let from = buffer.len();
        buffer.resize(from + want as usize, 0);
        entry.read_exact(&mut buffer[from..]).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                let path = entry.path().map(|p| p.display().to_string()).unwrap_or_default();
                ArchiveError::Corrupt(format!("the archive ends inside {path}"))
            }
            _ => ArchiveError::Corrupt(e.to_string()),
        })?;
        if let Some(hasher) = &mut hasher {
            hasher.update(&buffer[from..]);
        }
        Ok(())
    };
    if size <= COPY_BUFFER as u64 {
        writers.whole(place, |batch| read_into(batch, size))?;
    } else {
        writers.large(place)?;
        let mut read = 0u64;
        while read < size {
            let want = (size - read).min(COPY_BUFFER as u64);
            let mut piece = writers.buffer();
            read_into(&mut piece, want)?;
            writers.send(Piece::Bytes(piece))?;
            read += want;
        }
        writers.send(Piece::End)?;
    }
    Ok(hasher.map(|hasher| hex(hasher.finalize())))
}

/// The directory the last file went into, kept open: an archive lists a directory's files
/// together, so most files then resolve only their own name. The handle was opened beneath
/// the target and directories are never removed while unpacking, so it stays inside. Handles
/// are shared with the writers, which create the files in them.
struct Parents {
    target: Arc<Dir>,
    last: Option<(PathBuf, Arc<Dir>)>,
}

impl Parents {
    /// The directory `path` goes into (made when missing), and its name there.
    fn of<'p>(&mut self, path: &'p Path) -> std::io::Result<(Arc<Dir>, &'p Path)> {
        let name = Path::new(path.file_name().unwrap_or_default());
        let parent = path.parent().unwrap_or(Path::new(""));
        if parent.as_os_str().is_empty() {
            return Ok((Arc::clone(&self.target), name));
        }
        let (last, dir) = match self.last.take() {
            Some((last, dir)) if last == parent => (last, dir),
            _ => {
                self.target.create_dir_all(parent)?;
                (parent.to_owned(), Arc::new(self.target.open_dir(parent)?))
            }
        };
        Ok((Arc::clone(&self.last.insert((last, dir)).1), name))
    }
}

/// Creates `name` in `dir` for writing. A later entry replaces an earlier file or link, but
/// never by writing through it: `create_new` does not follow a link, and a name already
/// there is removed first.
fn create_replacing(dir: &Dir, name: &Path) -> std::io::Result<cap_std::fs::File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    match dir.open_with(name, &options) {
        Err(e)
            if e.kind() == std::io::ErrorKind::AlreadyExists
                && dir.symlink_metadata(name).is_ok_and(|m| !m.is_dir()) =>
        {
            dir.remove_file(name)?;
            dir.open_with(name, &options)
        }
        other => other,
    }
}

/// Where a regular file goes: created in `dir` by a writer thread, with its mode and time.
struct Place {
    dir: Arc<Dir>,
    name: PathBuf,
    mode: u32,
    mtime: Option<u64>,
}

impl Place {
    /// Creates the file, with its mode.
    fn create(&self) -> std::io::Result<std::fs::File> {
        let file = create_replacing(&self.dir, &self.name)?;
        file.set_permissions(Permissions::from_mode(self.mode))?;
        Ok(file.into_std())
    }
}

/// What a writer thread does, in order.
enum Piece {
    /// Small files read whole into one buffer, each ending where its offset says, batched so
    /// that a writer is woken once per MiB rather than per file.
    Files(Vec<u8>, Vec<(Place, usize)>),
    /// A large file: the `Bytes` that follow go into it, around the page cache (a restored
    /// world is read back later, if at all, and its fresh page cache costs CPU on every page).
    Begin(Place),
    /// The next [`COPY_BUFFER`] of the large file (or its last bytes): every write but the last
    /// begins on a page, as one that begins inside a page makes ext4 zero the rest of it first.
    Bytes(Vec<u8>),
    /// The large file is complete: its time is set and it is closed.
    End,
    /// Everything before is written: the writer says so.
    Mark(std::sync::mpsc::SyncSender<()>),
}

/// Threads that create and write files while the archive is read. Creating files is where a
/// restore spent most of its time when many files had just been deleted (ext4 without a
/// journal then looks past every recently freed inode for each new one), and copying into the
/// page cache and allocating blocks most of the rest: two threads share it on two cores.
///
/// Order holds where it matters: a name queued again waits for what was queued before it,
/// and so do links and replacements (see [`Writers::wait`]).
struct Writers<'scope> {
    queues: Vec<std::sync::mpsc::SyncSender<Piece>>,
    threads: Vec<std::thread::ScopedJoinHandle<'scope, std::io::Result<()>>>,
    /// The writer that gets the next piece; all of a large file's pieces go to one writer.
    turn: usize,
    /// How many writers take turns: one once the archive made a symlink.
    lanes: usize,
    /// The small files batched: their bytes, one after another, and where each goes and ends.
    batch: Vec<u8>,
    batched: Vec<(Place, usize)>,
    /// Buffers the writers are done with, to fill again: a fresh one for every MiB cost a
    /// page fault for every page.
    spent: std::sync::mpsc::Receiver<Vec<u8>>,
    /// The hashes of the paths queued since the writers last caught up.
    queued: std::collections::HashSet<u64>,
}

/// Writer threads, and pieces queued for each (a few MiB).
const WRITERS: usize = 2;
const QUEUED_PIECES: usize = 4;
/// The most small files in one batch.
const BATCHED_FILES: usize = 128;
/// A buffer's room: a batch is sent once it holds a [`COPY_BUFFER`], and a small file is at
/// most that.
const BUFFER_ROOM: usize = 2 * COPY_BUFFER;

impl<'scope> Writers<'scope> {
    fn start<'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        start_writeback: bool,
    ) -> Writers<'scope> {
        // Every buffer out at once can come back: those queued, those being written, one
        // being filled.
        let (give_back, spent) = std::sync::mpsc::sync_channel(WRITERS * (QUEUED_PIECES + 1) + 1);
        let (queues, threads) = (0..WRITERS)
            .map(|_| {
                let (queue, pieces) = std::sync::mpsc::sync_channel(QUEUED_PIECES);
                let give_back = give_back.clone();
                (queue, scope.spawn(move || write_pieces(pieces, give_back, start_writeback)))
            })
            .unzip();
        Writers {
            queues,
            threads,
            turn: 0,
            lanes: WRITERS,
            batch: Vec::with_capacity(BUFFER_ROOM),
            batched: Vec::new(),
            spent,
            queued: Default::default(),
        }
    }

    /// A buffer to fill: a spent one when there is one.
    fn buffer(&mut self) -> Vec<u8> {
        self.spent.try_recv().unwrap_or_else(|_| Vec::with_capacity(BUFFER_ROOM))
    }

    /// Queues a small file, its bytes appended to the batch by `fill`, sending the batch out
    /// once it is large enough.
    fn whole(
        &mut self,
        place: Place,
        fill: impl FnOnce(&mut Vec<u8>) -> Result<(), ArchiveError>,
    ) -> Result<(), ArchiveError> {
        fill(&mut self.batch)?;
        self.batched.push((place, self.batch.len()));
        if self.batch.len() >= COPY_BUFFER || self.batched.len() >= BATCHED_FILES {
            self.flush()?;
        }
        Ok(())
    }

    /// Starts a large file; its pieces follow with [`Writers::send`].
    fn large(&mut self, place: Place) -> Result<(), ArchiveError> {
        self.flush()?;
        self.send(Piece::Begin(place))
    }

    /// Waits for the writers when a file of the same path (inside the archive) is already
    /// queued: two writers must not race to create one name, the later entry wins.
    fn wait_if_queued(&mut self, path: &Path) -> Result<(), ArchiveError> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let key = BuildHasherDefault::<DefaultHasher>::default().hash_one(path);
        if !self.queued.insert(key) {
            self.wait()?;
            self.queued.insert(key);
        }
        Ok(())
    }

    /// Sends the batch of small files to the next writer.
    fn flush(&mut self) -> Result<(), ArchiveError> {
        if self.batched.is_empty() {
            return Ok(());
        }
        let next = self.buffer();
        let batch = Piece::Files(std::mem::replace(&mut self.batch, next), std::mem::take(&mut self.batched));
        self.send(batch)?;
        self.turn = (self.turn + 1) % self.lanes;
        Ok(())
    }

    /// Sends a piece to the writer whose turn it is.
    fn send(&mut self, piece: Piece) -> Result<(), ArchiveError> {
        let ends = matches!(piece, Piece::End);
        self.queues[self.turn]
            .send(piece)
            .map_err(|_| ArchiveError::Io(std::io::Error::other("a file writer stopped")))?;
        if ends {
            self.turn = (self.turn + 1) % self.lanes;
        }
        Ok(())
    }

    /// From now on one writer takes every file, in the archive's order (called with nothing
    /// queued, after [`Writers::wait`]).
    fn one_lane(&mut self) {
        (self.lanes, self.turn) = (1, 0);
    }

    /// Returns once every file queued is written, before a link (which may name one) or an
    /// entry that replaces one.
    fn wait(&mut self) -> Result<(), ArchiveError> {
        self.flush()?;
        let stopped = || ArchiveError::Io(std::io::Error::other("a file writer stopped"));
        let (marked, marks) = std::sync::mpsc::sync_channel(self.queues.len());
        for queue in &self.queues {
            queue.send(Piece::Mark(marked.clone())).map_err(|_| stopped())?;
        }
        drop(marked);
        for _ in &self.queues {
            marks.recv().map_err(|_| stopped())?;
        }
        self.queued.clear();
        Ok(())
    }

    /// Waits for everything queued to be written; the first writer's error, if any.
    fn finish(mut self) -> Result<(), ArchiveError> {
        let flushed = self.flush();
        drop(self.queues);
        self.threads.into_iter().try_for_each(|thread| {
            thread.join().unwrap_or_else(|_| Err(std::io::Error::other("a file writer failed")))
        })?;
        flushed
    }
}

fn write_pieces(
    pieces: std::sync::mpsc::Receiver<Piece>,
    give_back: std::sync::mpsc::SyncSender<Vec<u8>>,
    start_writeback: bool,
) -> std::io::Result<()> {
    use std::io::Write;
    let give_back = |mut buffer: Vec<u8>| {
        buffer.clear();
        let _ = give_back.try_send(buffer);
    };
    let done = |file: &std::fs::File, mtime: Option<u64>| {
        if let Some(mtime) = mtime {
            set_mtime(file, mtime)?;
        }
        if start_writeback {
            crate::durable::start_writeback(file)?;
        }
        Ok::<_, std::io::Error>(())
    };
    let mut large = None;
    for piece in pieces {
        match piece {
            Piece::Files(bytes, files) => {
                let mut from = 0;
                for (place, end) in files {
                    let mut file = place.create()?;
                    file.write_all(&bytes[from..end])?;
                    done(&file, place.mtime)?;
                    from = end;
                }
                give_back(bytes);
            }
            Piece::Begin(place) => large = Some((DirectWriter::new(place.create()?)?, place.mtime)),
            Piece::Bytes(bytes) => match &mut large {
                Some((file, _)) => {
                    file.write_all(&bytes)?;
                    give_back(bytes);
                }
                None => return Err(std::io::Error::other("bytes for no file")),
            },
            Piece::End => {
                if let Some((file, mtime)) = large.take() {
                    done(&file.finish()?, mtime)?;
                }
            }
            Piece::Mark(marked) => {
                let _ = marked.send(());
            }
        }
    }
    Ok(())
}

/// Lower-case hex of a digest.
pub(crate) fn hex(digest: impl AsRef<[u8]>) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    digest
        .as_ref()
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

/// Sets what was modified when to `seconds` since the epoch, as the archive stored it (the
/// access time stays).
fn set_mtime(handle: impl std::os::fd::AsFd, seconds: u64) -> std::io::Result<()> {
    use rustix::fs::{Timespec, Timestamps, UTIME_OMIT};
    let times = Timestamps {
        last_access: Timespec { tv_sec: 0, tv_nsec: UTIME_OMIT },
        last_modification: Timespec { tv_sec: seconds.min(i64::MAX as u64) as i64, tv_nsec: 0 },
    };
    rustix::fs::futimens(handle, &times).map_err(std::io::Error::from)
}

/// One file in a packed archive: what was stored, as the manifest of a backup records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PackedFile {
    /// Path inside the archive.
    pub path: String,
    /// Bytes stored.
    pub size: u64,
    /// SHA-256 of the bytes stored, lower-case hex.
    pub sha256: String,
}

/// Counts, and hashes, the bytes read through it.
pub(crate) struct Hashing<R> {
    pub(crate) inner: R,
    pub(crate) hasher: sha2::Sha256,
    pub(crate) count: u64,
}

impl<R> Hashing<R> {
    /// Hashes what is read from `inner`.
    pub(crate) fn new(inner: R) -> Hashing<R> {
        use sha2::Digest;
        Hashing { inner, hasher: sha2::Sha256::new(), count: 0 }
    }

    /// The SHA-256 so far, lower-case hex.
    pub(crate) fn hex(self) -> String {
        hex(self.hasher.finalize())
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        let read = self.inner.read(buffer)?;
        self.hasher.update(&buffer[..read]);
        self.count += read as u64;
        Ok(read)
    }
}

/// Writes `paths` (files or directories, relative to `source`) into a tar stream, never
/// following symlinks (they are stored as symlinks), skipping what `skip` says, hashing every
/// file as it goes in (on a thread of its own: hashing was half of a packer's time).
/// `on_file` hears the size of every file stored. A file that shrinks while it is read is
/// padded with zeros, so the archive stays well formed; the manifest hashes what was stored.
pub fn pack_tar<W: std::io::Write>(
    source: &Dir,
    paths: &[PathBuf],
    out: &mut tar::Builder<W>,
    skip: &dyn Fn(&Path) -> bool,
    on_file: &mut dyn FnMut(u64),
) -> Result<Vec<PackedFile>, ArchiveError> {
    std::thread::scope(|scope| {
        let (mut hashes, digests) = HashBatches::start(scope);
        let mut packed = pack_hashed(source, paths, out, skip, on_file, &mut hashes)?;
        hashes.send()?;
        drop(hashes);
        let digests =
            digests.join().map_err(|_| ArchiveError::Io(std::io::Error::other("the file hasher failed")))?;
        if digests.len() != packed.len() {
            return Err(ArchiveError::Io(std::io::Error::other("the file hasher stopped early")));
        }
        for (file, sha256) in packed.iter_mut().zip(digests) {
            file.sha256 = sha256;
        }
        Ok(packed)
    })
}

/// [`pack_tar`]'s walk: every file's bytes also go to `hashes`; the files' `sha256` is left empty.
fn pack_hashed<W: std::io::Write>(
    source: &Dir,
    paths: &[PathBuf],
    out: &mut tar::Builder<W>,
    skip: &dyn Fn(&Path) -> bool,
    on_file: &mut dyn FnMut(u64),
    hashes: &mut HashBatches,
) -> Result<Vec<PackedFile>, ArchiveError> {
    let mut packed = Vec::new();
    let mut pending: Vec<PathBuf> = paths.to_vec();
    while let Some(path) = pending.pop() {
        if skip(&path) {
            continue;
        }
        // A file the game removes while we pack is simply not in the archive, as with tar.
        let vanished = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
        let at = if path.as_os_str().is_empty() { Path::new(".") } else { path.as_path() };
        let metadata = match source.symlink_metadata(at) {
            Err(e) if vanished(&e) => continue,
            other => other?,
        };
        let mut header = tar::Header::new_gnu();
        header.set_mtime(
            metadata
                .modified()
                .ok()
                .and_then(|t| t.into_std().duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs()),
        );
        {
            use cap_std::fs::PermissionsExt as _;
            header.set_mode(metadata.permissions().mode() & 0o777);
        }
        let name = path.to_string_lossy().into_owned();
        if metadata.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            if !name.is_empty() {
                out.append_data(&mut header, format!("{name}/"), std::io::empty())?;
            }
            let entries = match source.read_dir(at) {
                Err(e) if vanished(&e) => continue,
                other => other?,
            };
            let mut children: Vec<PathBuf> =
                entries.filter_map(|entry| entry.ok().map(|e| path.join(e.file_name()))).collect();
            children.sort();
            children.reverse();
            pending.extend(children);
        } else if metadata.is_symlink() {
            let link = source.read_link_contents(&path)?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            out.append_link(&mut header, &name, &link)?;
        } else if metadata.is_file() {
            let size = metadata.len();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(size);
            let file = match source.open(&path) {
                Err(e) if vanished(&e) => {
                    tracing::debug!(path = %name, "a file vanished while it was packed");
                    continue;
                }
                other => other?.into_std(),
            };
            // The header (and a long name's extension entry) through the builder, the bytes
            // by hand: the builder copies through a `dyn Read`, 8 KiB and a syscall at a time.
            out.append_data(&mut header, &name, std::io::empty())?;
            copy_stored(file, size, out.get_mut(), hashes)?;
            hashes.end_file()?;
            on_file(size);
            packed.push(PackedFile { path: name, size, sha256: String::new() });
        }
    }
    Ok(packed)
}

/// Bytes of files, and where each file ends, sent to a hashing thread in batches of about
/// [`HASH_BATCH`] (many small files, or part of a large one); it sends spent buffers back.
/// Files are read straight into a batch, and what was read goes on into the tar stream from
/// there: no copy of its own for the hasher.
struct HashBatches {
    /// [`BATCH_ROOM`] long, always (filled once, when new), of which `filled` are in use.
    batch: Vec<u8>,
    filled: usize,
    ends: Vec<usize>,
    to_hasher: std::sync::mpsc::SyncSender<Batch>,
    spent: std::sync::mpsc::Receiver<Vec<u8>>,
}

/// A batch for the hasher: a buffer, how much of it is filled, and where each file ends.
type Batch = (Vec<u8>, usize, Vec<usize>);

const HASH_BATCH: usize = 1 << 20;
/// A batch's buffer: a batch is sent once it holds [`HASH_BATCH`], and a read adds at most
/// [`PACK_BUFFER`].
const BATCH_ROOM: usize = HASH_BATCH + PACK_BUFFER;
/// Batches on their way to the hasher.
const QUEUED_BATCHES: usize = 8;

impl HashBatches {
    /// Starts the hashing thread: the batches to send it, and the files' SHA-256s, in order.
    fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
    ) -> (HashBatches, std::thread::ScopedJoinHandle<'scope, Vec<String>>) {
        let Recycling { to_next: to_hasher, received: batches, give_back, spent } = recycling(QUEUED_BATCHES);
        let digests = scope.spawn(move || hash_batches(batches, give_back));
        let batch = vec![0; BATCH_ROOM];
        (HashBatches { batch, filled: 0, ends: Vec::new(), to_hasher, spent }, digests)
    }

    /// Reads at most `max` (at most [`PACK_BUFFER`]) bytes of `file` into the batch, and
    /// returns them: none once the file has ended. [`HashBatches::send_if_full`] follows, once
    /// they went on into the tar stream.
    fn read_from(&mut self, file: &mut impl Read, max: usize) -> std::io::Result<&[u8]> {
        let (from, max) = (self.filled, max.min(PACK_BUFFER));
        let read = loop {
            match file.read(&mut self.batch[from..from + max]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        self.filled += read;
        Ok(&self.batch[from..from + read])
    }

    /// Adds `bytes` (at most [`PACK_BUFFER`]) to the batch.
    fn add(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.batch[self.filled..self.filled + bytes.len()].copy_from_slice(bytes);
        self.filled += bytes.len();
        self.send_if_full()
    }

    fn send_if_full(&mut self) -> std::io::Result<()> {
        if self.filled >= HASH_BATCH { self.send() } else { Ok(()) }
    }

    fn end_file(&mut self) -> std::io::Result<()> {
        self.ends.push(self.filled);
        if self.ends.len() >= BATCHED_FILES { self.send() } else { Ok(()) }
    }

    /// Sends what is batched, continuing in a spent buffer when there is one.
    fn send(&mut self) -> std::io::Result<()> {
        let next = self.spent.try_recv().unwrap_or_else(|_| vec![0; BATCH_ROOM]);
        let batch = (std::mem::replace(&mut self.batch, next), self.filled, std::mem::take(&mut self.ends));
        self.filled = 0;
        self.to_hasher.send(batch).map_err(|_| std::io::Error::other("the file hasher stopped"))
    }
}

/// The hashing thread: one SHA-256 per file end.
fn hash_batches(
    batches: std::sync::mpsc::Receiver<Batch>,
    give_back: std::sync::mpsc::SyncSender<Vec<u8>>,
) -> Vec<String> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut digests = Vec::new();
    for (bytes, filled, ends) in batches {
        let mut from = 0;
        for end in ends {
            hasher.update(&bytes[from..end]);
            digests.push(hex(hasher.finalize_reset()));
            from = end;
        }
        hasher.update(&bytes[from..filled]);
        let _ = give_back.try_send(bytes);
    }
    digests
}

/// Writes `size` bytes of `file` to `out` and to `hashes`, then the padding to the next tar
/// block. A file that shrank while it was read is stored padded with zeros.
fn copy_stored(
    mut file: std::fs::File,
    size: u64,
    out: &mut impl std::io::Write,
    hashes: &mut HashBatches,
) -> std::io::Result<()> {
    let mut left = size;
    while left > 0 {
        let want = PACK_BUFFER.min(usize::try_from(left).unwrap_or(usize::MAX));
        let read = hashes.read_from(&mut file, want)?;
        let stored = if read.is_empty() {
            let zeros = &[0; PACK_BUFFER][..want];
            hashes.add(zeros)?;
            out.write_all(zeros)?;
            want
        } else {
            out.write_all(read)?;
            let stored = read.len();
            hashes.send_if_full()?;
            stored
        };
        left -= stored as u64;
    }
    let padding = (TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK;
    out.write_all(&[0; TAR_BLOCK as usize][..padding as usize])
}

/// A tar stream's unit: every header and every file's padded bytes.
const TAR_BLOCK: u64 = 512;

/// The bytes [`copy_stored`] reads from a file at a time.
const PACK_BUFFER: usize = 256 << 10;

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a tar.gz in memory, with entries written raw so that hostile names survive.
    fn archive(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut builder =
            tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for (name, kind, data, link) in entries {
            let mut header = tar::Header::new_gnu();
            header.as_gnu_mut().expect("gnu").name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o4755);
            if let Some(link) = link {
                header.as_gnu_mut().expect("gnu").linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
            header.set_cksum();
            builder.append(&header, *data).expect("append");
        }
        builder.into_inner().expect("tar").finish().expect("gzip")
    }

    fn unpack(bytes: &[u8]) -> (tempfile::TempDir, Result<Unpacked, ArchiveError>) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("target")).expect("mkdir");
        let target =
            Dir::open_ambient_dir(dir.path().join("target"), cap_std::ambient_authority()).expect("open");
        let result = unpack_tar_gz(bytes, &target, bytes.len() as u64, Limits::default());
        (dir, result)
    }

    use tar::EntryType::{Directory, Link, Regular, Symlink};

    /// Every file's SHA-256 is of its own bytes, however files fall into the hasher's batches:
    /// empty ones, one larger than a batch, and more small ones than a batch holds.
    #[test]
    fn packed_files_are_hashed_each_by_itself() {
        use sha2::Digest;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut files: Vec<(String, Vec<u8>)> = vec![
            ("empty".into(), Vec::new()),
            ("large".into(), (0..3 * HASH_BATCH + 7).map(|i| (i % 251) as u8).collect()),
        ];
        files.extend((0..3 * BATCHED_FILES).map(|n| (format!("small/{n:04}"), vec![n as u8; n % 700])));
        std::fs::create_dir(dir.path().join("small")).expect("mkdir");
        for (name, bytes) in &files {
            std::fs::write(dir.path().join(name), bytes).expect("write");
        }
        let source = Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).expect("open");
        let mut builder = tar::Builder::new(Vec::new());
        let mut sizes = 0;
        let packed =
            pack_tar(&source, &[PathBuf::new()], &mut builder, &|_| false, &mut |size| sizes += size)
                .expect("packed");
        assert_eq!(packed.len(), files.len());
        for (name, bytes) in &files {
            let file = packed.iter().find(|f| &f.path == name).expect("packed");
            assert_eq!(
                (file.size, &file.sha256),
                (bytes.len() as u64, &hex(sha2::Sha256::digest(bytes))),
                "{name}"
            );
        }
        assert_eq!(sizes, files.iter().map(|(_, b)| b.len() as u64).sum::<u64>());
        // And the stream holds those bytes, each file where its header says.
        let stream = builder.into_inner().expect("tar");
        let mut unpacked = 0;
        for entry in tar::Archive::new(&stream[..]).entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let name = entry.path().expect("path").to_string_lossy().into_owned();
            if let Some((_, bytes)) = files.iter().find(|(n, _)| *n == name) {
                let mut read = Vec::new();
                entry.read_to_end(&mut read).expect("read");
                assert!(read == *bytes, "{name} unpacks as packed");
                unpacked += 1;
            }
        }
        assert_eq!(unpacked, files.len());
    }

    /// A file that shrank between its header and its bytes is stored at the header's size,
    /// zeros after what was left, so the stream stays whole for every file after it.
    #[test]
    fn a_file_that_shrank_is_stored_padded_to_its_header() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("log"), b"twelve bytes").expect("write");
        let file = std::fs::File::open(dir.path().join("log")).expect("open");
        std::thread::scope(|scope| {
            let (mut hashes, digests) = HashBatches::start(scope);
            let mut out = Vec::new();
            copy_stored(file, 700, &mut out, &mut hashes).expect("copied");
            hashes.end_file().expect("end");
            hashes.send().expect("send");
            drop(hashes);
            let mut stored = b"twelve bytes".to_vec();
            stored.resize(700, 0);
            assert_eq!(out.len(), 1024, "padded to whole tar blocks");
            assert!(out[..700] == stored[..] && out[700..].iter().all(|b| *b == 0));
            use sha2::Digest;
            assert_eq!(digests.join().expect("hasher"), vec![hex(sha2::Sha256::digest(&stored))]);
        });
    }

    /// A bomb is refused before one byte of it is written, tar or zip alike.
    #[test]
    fn a_bomb_is_counted_before_anything_is_written() {
        let zeros = vec![0u8; 1 << 20];
        let tar = archive(&[("a.bin", Regular, &zeros, None), ("b.bin", Regular, &zeros, None)]);
        let zip = {
            use std::io::Write;
            let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            for name in ["a.bin", "b.bin"] {
                writer.start_file(name, zip::write::SimpleFileOptions::default()).expect("entry");
                writer.write_all(&zeros).expect("write");
            }
            writer.finish().expect("zip").into_inner()
        };
        let limits = Limits { max_bytes: 3 << 19, ..Limits::default() };
        for (format, bytes) in [(Format::TarGz, tar), (Format::Zip, zip)] {
            let dir = tempfile::tempdir().expect("tempdir");
            std::fs::write(dir.path().join("bomb"), &bytes).expect("archive");
            std::fs::create_dir(dir.path().join("target")).expect("mkdir");
            let target =
                Dir::open_ambient_dir(dir.path().join("target"), cap_std::ambient_authority()).expect("open");
            let file = std::fs::File::open(dir.path().join("bomb")).expect("open");
            let refused = unpack_file(file, format, &target, limits);
            assert!(matches!(refused, Err(ArchiveError::TooLarge(_))), "{format:?}: {refused:?}");
            let written = std::fs::read_dir(dir.path().join("target")).expect("target").count();
            assert_eq!(written, 0, "{format:?}: nothing was written");
        }
    }

    #[test]
    fn a_normal_runtime_unpacks_with_its_links_and_modes() {
        let bytes = archive(&[
            ("node-20/", Directory, b"", None),
            ("node-20/bin/node", Regular, b"#!/bin/sh\necho node\n", None),
            ("node-20/bin/npm", Symlink, b"", Some("../lib/npm-cli.js")),
            ("node-20/lib/npm-cli.js", Regular, b"cli", None),
            ("node-20/bin/nodejs", Link, b"", Some("node-20/bin/node")),
        ]);
        let (dir, result) = unpack(&bytes);
        assert_eq!(result.expect("unpacks"), Unpacked { files: 2, bytes: 23 });
        let node = dir.path().join("target/node-20/bin/node");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&node).expect("node").permissions().mode() & 0o7777,
            0o755,
            "setuid stripped"
        );
        assert_eq!(std::fs::read(dir.path().join("target/node-20/bin/npm")).expect("via symlink"), b"cli");
        assert_eq!(
            std::fs::read(dir.path().join("target/node-20/bin/nodejs")).expect("hard link"),
            std::fs::read(node).expect("node")
        );
    }

    /// Files are created and written by several threads, yet the archive's order holds: a
    /// later entry of a name wins, small or large, even where a symlink makes a second name
    /// for one file, and a hard link finds the file queued just before it.
    #[test]
    fn later_entries_win_however_the_writers_share_the_files() {
        let large = vec![1u8; 2 * COPY_BUFFER + 5];
        let names: Vec<String> = (0..3 * BATCHED_FILES).map(|n| format!("w/{n}")).collect();
        let mut entries: Vec<(&str, tar::EntryType, &[u8], Option<&str>)> =
            names.iter().map(|name| (name.as_str(), Regular, &b"first"[..], None)).collect();
        entries.extend([
            ("w/7", Regular, &b"second"[..], None),
            ("big", Regular, &large[..], None),
            ("big", Regular, &b"small now"[..], None),
            ("small", Regular, &b"small first"[..], None),
            ("small", Regular, &large[..], None),
            ("hard", Link, &b""[..], Some("w/9")),
            ("alias", Symlink, &b""[..], Some("w")),
            ("alias/8", Regular, &b"through the link"[..], None),
            ("w/8", Regular, &b"last"[..], None),
            ("alias/10", Regular, &b"through the link"[..], None),
        ]);
        let (dir, result) = unpack(&archive(&entries));
        result.expect("unpacks");
        let read = |name: &str| std::fs::read(dir.path().join("target").join(name)).expect(name);
        assert_eq!(read("w/0"), b"first");
        assert_eq!(read("w/7"), b"second");
        assert_eq!(read("big"), b"small now");
        assert_eq!(read("small"), large);
        assert_eq!(read("hard"), b"first");
        assert_eq!(read("w/8"), b"last");
        assert_eq!(read("w/10"), b"through the link");
    }

    #[test]
    fn hostile_archives_are_refused_and_nothing_lands_outside() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("dot-dot", archive(&[("a/../../outside.txt", Regular, b"x", None)])),
            ("absolute", archive(&[("/tmp/zlh-absolute-escape.txt", Regular, b"x", None)])),
            ("symlink out", archive(&[("link", Symlink, b"", Some("../"))])),
            ("absolute symlink", archive(&[("etc", Symlink, b"", Some("/etc"))])),
            (
                "write through an earlier symlink",
                archive(&[("up", Symlink, b"", Some("dir/../..")), ("up/outside.txt", Regular, b"x", None)]),
            ),
            ("hard link out", archive(&[("passwd", Link, b"", Some("../../../../etc/passwd"))])),
            (
                "a chain of links, each inside on its own",
                archive(&[("lk1", Symlink, b"", Some(".")), ("lk2", Symlink, b"", Some("lk1/.."))]),
            ),
            (
                "a deeper chain",
                archive(&[
                    ("lk1", Symlink, b"", Some(".")),
                    ("lk2", Symlink, b"", Some("lk1")),
                    ("lk3", Symlink, b"", Some("lk2/..")),
                ]),
            ),
            ("device", archive(&[("dev", tar::EntryType::Char, b"", None)])),
            ("garbage", b"this is not a tar.gz at all".to_vec()),
        ];
        for (name, bytes) in cases {
            let (dir, result) = unpack(&bytes);
            assert!(result.is_err(), "{name} must be refused");
            assert!(!dir.path().join("outside.txt").exists(), "{name} escaped");
            assert!(!Path::new("/tmp/zlh-absolute-escape.txt").exists(), "{name} escaped");
        }
    }

    #[test]
    fn bombs_are_stopped_by_ratio_and_size() {
        let zeros = vec![0u8; 4 << 20];
        let bytes = archive(&[("zeros", Regular, &zeros, None)]);
        assert!(bytes.len() < 64 << 10, "compresses well: {}", bytes.len());
        let dir = tempfile::tempdir().expect("tempdir");
        let target = Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).expect("open");
        let limits = Limits { max_ratio: 10, ..Limits::default() };
        let error = unpack_tar_gz(&bytes[..], &target, bytes.len() as u64, limits).expect_err("bomb");
        assert!(matches!(error, ArchiveError::TooLarge(_)), "{error}");
        let limits = Limits { max_bytes: 1 << 20, max_ratio: u64::MAX, ..Limits::default() };
        assert!(matches!(
            unpack_tar_gz(&bytes[..], &target, bytes.len() as u64, limits),
            Err(ArchiveError::TooLarge(_))
        ));
    }
}
