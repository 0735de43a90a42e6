//! Backups of the server directory that can be trusted with a world.
//!
//! **Create**: while the game runs, its quiesce commands pause and flush saving (Minecraft:
//! `save-off`, `save-all flush` until "Saved the game", later `save-on`); the directory is
//! streamed into tar + zstd, every file hashed on the way, the manifest of hashes stored as
//! the last entry; the archive is written to a temporary file, fsynced and renamed; its own
//! SHA-256 goes into `<id>.json`. Old backups beyond `keep` are removed.
//!
//! **Restore**: unpack into a staging directory beside the server directory while the server
//! runs on, checking the archive's SHA-256 and every file against the manifest in that same
//! pass; a damaged backup ends here with nothing touched. Then stop the server, swap the two
//! directories with renames, start it again. A journal (`restore.json`) records the phase, so
//! an agent killed at any moment rolls back (before the server was stopped for the swap) or
//! finishes the swap (after) when it starts again, and then starts the server if it ran.
//! Wings deletes before it verifies; this never does.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zlh_proto::agent::{BackupRequest, BackupView, GameState};

use std::collections::HashMap;

use crate::archive::{ArchiveError, Hashing, Limits, PackedFile, hex, pack_tar, unpack_tar_hashing};
use crate::clock::{format_ms, now_ms};
use crate::config::{AgentConfig, Quiesce};
use crate::console::{Chunk, Console};
use crate::durable::{DirectWriter, SyncBeside, sync_dir, write_atomically};
use crate::jobs::Progress;
use crate::pipeline::{Recycling, recycling};
use crate::supervisor::Supervisor;

const MANIFEST: &str = ".zlh-backup-manifest.json";

/// Why a backup operation could not even start.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Another backup or restore runs.
    #[error("a backup or restore of this server is already running")]
    Busy,
    /// No such backup.
    #[error("no such backup")]
    NotFound,
    /// A locked backup cannot be deleted.
    #[error("this backup is locked: unlock it first")]
    Locked,
    /// Its description could not be rewritten.
    #[error("the backup's description could not be saved: {0}")]
    Io(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    files: Vec<PackedFile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Phase {
    /// Unpacking into staging: the server directory is untouched.
    Unpacking,
    /// Staging is complete and verified: the swap may be half done.
    Swapping,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Journal {
    backup_id: String,
    phase: Phase,
    was_running: bool,
}

/// Backups of one server directory.
#[derive(Debug)]
pub struct Backups {
    dir: PathBuf,
    server_root: PathBuf,
    journal: PathBuf,
    /// Present while the game's saving is paused for a backup, so that a killed agent's
    /// successor resumes it.
    paused_mark: PathBuf,
    keep: usize,
    exclude: Vec<String>,
    level: i32,
    quiesce: Option<Quiesce>,
    stop_wait: std::time::Duration,
    /// The server's data is a filesystem of its own: flushing it flushes only the server's writes.
    own_filesystem: bool,
    busy: Arc<tokio::sync::Mutex<()>>,
}

/// The right to run one backup or restore.
pub type Turn = tokio::sync::OwnedMutexGuard<()>;

fn disk_full_aware(e: std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::StorageFull { "the disk is full".into() } else { e.to_string() }
}

impl Backups {
    /// Backups of `config`'s server directory, kept in `config.backups.dir`.
    pub fn new(config: &AgentConfig) -> std::io::Result<Backups> {
        let dir = config.under_root(&config.backups.dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Backups {
            journal: config.state_path().join("restore.json"),
            paused_mark: config.state_path().join("backup-paused-saving"),
            dir,
            server_root: config.server_root(),
            keep: config.backups.keep.max(1),
            exclude: config.backups.exclude.clone(),
            level: config.backups.level,
            quiesce: config.game.quiesce.clone(),
            stop_wait: config.game.stop_timeout
                + config.game.term_timeout
                + std::time::Duration::from_secs(10),
            own_filesystem: config.disk.is_some_and(|disk| disk.own_filesystem),
            busy: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    fn staging(&self) -> PathBuf {
        self.server_root.with_extension("zlh-restore-new")
    }

    fn old(&self) -> PathBuf {
        self.server_root.with_extension("zlh-restore-old")
    }

    /// Where an old tree goes to be removed in the background: a name of its own, so a
    /// restore that follows never meets a removal still running.
    fn trash(&self) -> PathBuf {
        self.server_root.with_extension(format!("{TRASH}{}", backup_id()))
    }

    /// Moves the old tree out of the way and removes it on a thread of its own: removing
    /// 40,000 files takes longer than the restore did, and nothing waits for it. An agent
    /// killed meanwhile removes it when it starts again ([`Backups::sweep`]).
    fn discard_old(&self) {
        let (old, trash) = (self.old(), self.trash());
        match std::fs::rename(&old, &trash) {
            Ok(()) => remove_in_background(trash),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => {
                let _ = std::fs::remove_dir_all(old);
            }
        }
    }

    /// Takes the turn, or says another operation has it.
    pub fn try_turn(&self) -> Result<Turn, BackupError> {
        Arc::clone(&self.busy).try_lock_owned().map_err(|_| BackupError::Busy)
    }

    /// Every backup, oldest first.
    pub fn list(&self) -> Vec<BackupView> {
        let mut backups: Vec<BackupView> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
            .filter(|b: &BackupView| self.dir.join(format!("{}.tar.zst", b.id)).exists())
            .collect();
        backups.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        backups
    }

    fn view(&self, id: &str) -> Result<BackupView, BackupError> {
        if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(BackupError::NotFound);
        }
        self.list().into_iter().find(|b| b.id == id).ok_or(BackupError::NotFound)
    }

    /// Deletes a backup, unless it is locked.
    pub fn delete(&self, id: &str) -> Result<(), BackupError> {
        if self.view(id)?.locked {
            return Err(BackupError::Locked);
        }
        let _ = std::fs::remove_file(self.dir.join(format!("{id}.json")));
        let _ = std::fs::remove_file(self.dir.join(format!("{id}.tar.zst")));
        Ok(())
    }

    /// Renames, locks or unlocks a backup (its description is rewritten atomically).
    pub fn change(
        &self,
        id: &str,
        name: Option<Option<String>>,
        locked: Option<bool>,
    ) -> Result<BackupView, BackupError> {
        let mut view = self.view(id)?;
        if let Some(name) = name {
            view.name = name;
        }
        if let Some(locked) = locked {
            view.locked = locked;
        }
        self.describe(&view).map_err(BackupError::Io)?;
        Ok(view)
    }

    /// The archive of a backup, to download.
    pub fn archive(&self, id: &str) -> Result<(BackupView, PathBuf), BackupError> {
        let view = self.view(id)?;
        let path = self.dir.join(format!("{id}.tar.zst"));
        Ok((view, path))
    }

    /// Writes a backup's description: once it is there, the backup exists.
    fn describe(&self, view: &BackupView) -> Result<(), String> {
        let json = serde_json::to_vec_pretty(view).map_err(|e| e.to_string())?;
        write_atomically(&self.dir.join(format!("{}.json", view.id)), &json).map_err(disk_full_aware)
    }

    /// Takes a backup (with the turn taken).
    pub async fn create(
        &self,
        _turn: Turn,
        supervisor: &Supervisor,
        request: BackupRequest,
        progress: &Progress,
    ) -> Result<BackupView, String> {
        let BackupRequest { exclude, name, locked } = request;
        let running = supervisor.status().state == GameState::Running;
        let quiesced = match (&self.quiesce, running) {
            (Some(quiesce), true) => {
                progress.say("pausing saves");
                write_atomically(&self.paused_mark, b"").map_err(disk_full_aware)?;
                if let Err(e) = quiesce_before(supervisor, quiesce).await {
                    let _ = std::fs::remove_file(&self.paused_mark);
                    return Err(e);
                }
                true
            }
            _ => false,
        };
        let id = backup_id();
        let patterns: Vec<glob::Pattern> = self
            .exclude
            .iter()
            .chain(&exclude)
            .map(|g| glob::Pattern::new(g).map_err(|e| format!("exclude pattern {g:?}: {e}")))
            .collect::<Result<_, _>>()?;
        let (dir, server_root, level, task_id, task_progress) =
            (self.dir.clone(), self.server_root.clone(), self.level, id.clone(), progress.clone());
        progress.say("writing the backup");
        let packed = tokio::task::spawn_blocking(move || {
            pack(&dir, &server_root, &task_id, level, &patterns, &task_progress)
        })
        .await;
        if quiesced {
            self.resume_saving(supervisor).await;
        }
        let (files, bytes, size_bytes, sha256) = packed.map_err(|e| e.to_string())??;
        let view = BackupView {
            id: id.clone(),
            created_at: format_ms(now_ms()),
            size_bytes,
            files,
            bytes,
            sha256,
            quiesced,
            name,
            locked,
        };
        self.describe(&view)?;
        // Retention: the oldest unlocked backups go while there are more than `keep`; locked
        // ones count, but stay.
        let backups = self.list();
        let unlocked = backups.iter().filter(|b| !b.locked);
        for old in unlocked.take(backups.len().saturating_sub(self.keep)) {
            tracing::info!(backup = %old.id, "removing an old backup beyond the kept number");
            let _ = self.delete(&old.id);
        }
        tracing::info!(backup = %id, files, bytes, size_bytes, quiesced, "backup written");
        Ok(view)
    }

    /// Restores a backup (with the turn taken). The archive is unpacked into a staging
    /// directory beside the server's while the server runs on, every file checked against the
    /// manifest and the archive against its checksum in that same pass; only a backup that
    /// passed is swapped in, with the server stopped for the two renames and started again.
    pub async fn restore(
        &self,
        _turn: Turn,
        id: &str,
        supervisor: &Supervisor,
        progress: &Progress,
    ) -> Result<(), String> {
        let view = self.view(id).map_err(|e| e.to_string())?;
        let archive = self.dir.join(format!("{id}.tar.zst"));
        let was_running = matches!(supervisor.status().state, GameState::Running | GameState::Starting);
        self.write_journal(&Journal { backup_id: id.to_owned(), phase: Phase::Unpacking, was_running })?;
        progress.say("unpacking and verifying the backup");
        let began = std::time::Instant::now();
        let (staging, task_progress) = (self.staging(), progress.clone());
        let own_filesystem = self.own_filesystem;
        let unpacked = tokio::task::spawn_blocking(move || {
            unpack_verified(&archive, &staging, &view, &task_progress)?;
            make_durable(&staging, own_filesystem).map_err(disk_full_aware)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|unpacked| unpacked);
        let unpacked_ms = began.elapsed().as_millis() as u64;
        let outcome = match unpacked {
            Ok(()) => self.stop_and_swap(id, supervisor, progress).await,
            Err(e) => Err(e),
        };
        if outcome.is_ok() {
            progress.say(&format!("restored backup {id}"));
        }
        match &outcome {
            Ok(()) => tracing::info!(
                backup = id,
                unpacked_ms,
                swapped_ms = began.elapsed().as_millis() as u64,
                "backup restored"
            ),
            Err(e) => {
                tracing::error!(backup = id, error = %e, "restore failed; the server's files are as they were");
                let _ = std::fs::remove_dir_all(self.staging());
            }
        }
        // The old tree goes after the server is back (less downtime), the journal last: an
        // agent killed before then starts the server again and removes the old tree.
        if was_running {
            let _ = supervisor.start().await;
        }
        if outcome.is_ok() {
            self.discard_old();
        }
        let _ = std::fs::remove_file(&self.journal);
        outcome
    }

    async fn stop_and_swap(
        &self,
        id: &str,
        supervisor: &Supervisor,
        progress: &Progress,
    ) -> Result<(), String> {
        let state = supervisor.status().state;
        if matches!(state, GameState::Running | GameState::Starting | GameState::Stopping) {
            progress.say("stopping the server");
            supervisor
                .stop_and_wait(self.stop_wait)
                .await
                .map_err(|e| format!("the server could not be stopped: {e}"))?;
        }
        // From here on the staging tree wins, even over a killed agent.
        let was_running = state != GameState::Stopped;
        self.write_journal(&Journal { backup_id: id.to_owned(), phase: Phase::Swapping, was_running })?;
        progress.say("swapping");
        self.swap().map_err(disk_full_aware)
    }

    /// The swap: server → old, staging → server. Safe to run again on any partial state of
    /// itself.
    fn swap(&self) -> std::io::Result<()> {
        swap_trees(&self.server_root, &self.staging(), &self.old(), |from, to| std::fs::rename(from, to))
    }

    /// The swap, then the old tree removed.
    fn finish_swap(&self) -> std::io::Result<()> {
        self.swap()?;
        match std::fs::remove_dir_all(self.old()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn write_journal(&self, journal: &Journal) -> Result<(), String> {
        let bytes = serde_json::to_vec(journal).map_err(|e| e.to_string())?;
        write_atomically(&self.journal, &bytes).map_err(disk_full_aware)
    }

    /// Resumes the game's saving after a backup (or after a killed agent's backup).
    pub async fn resume_saving(&self, supervisor: &Supervisor) {
        if let Some(quiesce) = &self.quiesce {
            for command in &quiesce.after {
                let _ = supervisor.console_command(command.clone()).await;
            }
        }
        let _ = std::fs::remove_file(&self.paused_mark);
    }

    /// At agent start, before the supervisor: removes what a killed backup left, and finishes
    /// or rolls back a restore a killed agent left.
    pub fn recover(&self) -> Recovery {
        self.sweep();
        Recovery {
            start_game: self.recover_restore() == Some(true),
            resume_saving: self.paused_mark.exists(),
        }
    }

    /// Removes what this agent's interrupted backups left, by their names: unfinished
    /// archives (`<id>.tar.zst.part`), descriptions never renamed into place (`<id>.tmp`), and
    /// archives whose description was never written. A file of any other name (an archive an
    /// operator copied in) is never touched.
    fn sweep(&self) {
        self.sweep_trash();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = |suffix: &str| name.strip_suffix(suffix).filter(|id| is_backup_id(id));
            let orphan = if let Some(id) = ours(".tar.zst") {
                !self.dir.join(format!("{id}.json")).exists()
            } else {
                ours(".tar.zst.part").is_some() || ours(".tmp").is_some()
            };
            if orphan {
                tracing::warn!(file = %name, "removing what an interrupted backup left");
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// Removes, in the background, the old trees of restores whose removal an agent's stop
    /// cut short.
    fn sweep_trash(&self) {
        let (Some(parent), Some(name)) = (self.server_root.parent(), self.server_root.file_name()) else {
            return;
        };
        let prefix = format!("{}.{TRASH}", name.to_string_lossy());
        for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().strip_prefix(&prefix).is_some_and(is_backup_id) {
                remove_in_background(entry.path());
            }
        }
    }

    /// Returns whether the server was running before the interrupted restore.
    fn recover_restore(&self) -> Option<bool> {
        let journal: Journal = serde_json::from_slice(&std::fs::read(&self.journal).ok()?).ok()?;
        match journal.phase {
            Phase::Unpacking => {
                tracing::warn!(backup = %journal.backup_id, "an interrupted restore is rolled back: the server's files were untouched");
                let _ = std::fs::remove_dir_all(self.staging());
            }
            Phase::Swapping => {
                tracing::warn!(backup = %journal.backup_id, "an interrupted restore is finished: its files were complete and verified");
                if let Err(e) = self.finish_swap() {
                    tracing::error!(error = %e, "finishing the interrupted restore failed");
                }
            }
        }
        let _ = std::fs::remove_file(&self.journal);
        Some(journal.was_running)
    }
}

/// Swaps `staging` in for `server`, keeping the server's tree at `old`; `rename` is
/// `std::fs::rename` (a test makes it fail). When putting staging in place fails, the old tree
/// goes back: the server directory never stays missing.
fn swap_trees(
    server: &Path,
    staging: &Path,
    old: &Path,
    rename: impl Fn(&Path, &Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let parent = server.parent().unwrap_or(Path::new("/")).to_owned();
    if !staging.exists() {
        return Ok(());
    }
    let moved_aside = server.exists();
    if moved_aside {
        let _ = std::fs::remove_dir_all(old);
        rename(server, old)?;
        sync_dir(&parent);
    }
    if let Err(e) = rename(staging, server) {
        if moved_aside {
            rename(old, server)?;
            sync_dir(&parent);
        }
        return Err(e);
    }
    sync_dir(&parent);
    Ok(())
}

/// What the agent must do once its supervisor runs, after [`Backups::recover`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// An interrupted restore stopped the server: start it again.
    pub start_game: bool,
    /// An interrupted backup left the game's saving paused: resume it.
    pub resume_saving: bool,
}

/// Whether `id` has the form [`backup_id`] makes: `YYYYMMDDhhmmss-xxxx`.
fn is_backup_id(id: &str) -> bool {
    let Some((stamp, suffix)) = id.split_once('-') else { return false };
    stamp.len() == 14
        && stamp.bytes().all(|b| b.is_ascii_digit())
        && suffix.len() == 4
        && suffix.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn backup_id() -> String {
    let stamp: String = format_ms(now_ms()).chars().filter(char::is_ascii_digit).take(14).collect();
    let mut bytes = [0u8; 2];
    let _ = getrandom::fill(&mut bytes);
    format!("{stamp}-{:04x}", u16::from_le_bytes(bytes))
}

/// Writes the archive; returns (files, bytes, archive size, archive SHA-256).
fn pack(
    dir: &Path,
    server_root: &Path,
    id: &str,
    level: i32,
    exclude: &[glob::Pattern],
    progress: &Progress,
) -> Result<(u64, u64, u64, String), String> {
    let part = dir.join(format!("{id}.tar.zst.part"));
    let outcome = (|| -> std::io::Result<(u64, u64, u64, String)> {
        std::fs::create_dir_all(server_root)?;
        let root = cap_std::fs::Dir::open_ambient_dir(server_root, cap_std::ambient_authority())?;
        // The total for progress is counted beside the packing, not before it.
        let total = Arc::new(std::sync::OnceLock::new());
        std::thread::spawn({
            let (total, server_root) = (Arc::clone(&total), server_root.to_owned());
            move || total.set(tree_size(&server_root))
        });
        let archive = DirectWriter::new(std::fs::File::create(&part)?)?;
        // Stages on their own threads, like `tar | zstd > file`: this one reads files into a
        // tar stream (`pack_tar` hashes them on another); `compress_beside` compresses it on
        // one and hashes, writes and syncs the archive on the next.
        let (output, written) = compress_beside(archive, level)?;
        let packed = (|| {
            let mut builder = tar::Builder::new(output);
            let skip = |path: &Path| exclude.iter().any(|p| p.matches_path(path));
            let mut done = 0u64;
            let files = pack_tar(&root, &[PathBuf::new()], &mut builder, &skip, &mut |size| {
                done += size;
                progress.set(done, total.get().copied());
            })
            .map_err(std::io::Error::other)?;
            let manifest = serde_json::to_vec(&Manifest { version: 1, files: files.clone() })?;
            let mut header = tar::Header::new_gnu();
            header.set_size(manifest.len() as u64);
            header.set_mode(0o600);
            builder.append_data(&mut header, MANIFEST, &manifest[..])?;
            builder.into_inner()?.flush()?;
            std::io::Result::Ok(files)
        })();
        // The writer's own error (a full disk) explains a failure better than the broken
        // channel the packer then saw.
        let written = written.join().map_err(|_| std::io::Error::other("the archive writer failed"))?;
        let (size, sha256, file) = written?;
        let files = packed?;
        let synced = std::time::Instant::now();
        file.sync_all()?;
        tracing::debug!(sync_ms = synced.elapsed().as_millis() as u64, "the archive is on disk");
        drop(file);
        std::fs::rename(&part, dir.join(format!("{id}.tar.zst")))?;
        sync_dir(dir);
        Ok((files.len() as u64, files.iter().map(|f| f.size).sum(), size, sha256))
    })();
    if outcome.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    outcome.map_err(|e| format!("the backup could not be written ({}); nothing was kept", disk_full_aware(e)))
}

fn tree_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// Unpacks a backup into `staging` (made afresh) in one pass, checking the archive's own
/// SHA-256 and every file against the manifest. Any difference is an error; the caller then
/// removes staging, and nothing else was touched.
fn unpack_verified(
    archive: &Path,
    staging: &Path,
    view: &BackupView,
    progress: &Progress,
) -> Result<(), String> {
    let began = std::time::Instant::now();
    let damaged = |why: String| format!("the backup is damaged or unreadable ({why}); nothing was changed");
    let _ = std::fs::remove_dir_all(staging);
    std::fs::create_dir_all(staging).map_err(disk_full_aware)?;
    let dir =
        cap_std::fs::Dir::open_ambient_dir(staging, cap_std::ambient_authority()).map_err(disk_full_aware)?;
    let file = std::fs::File::open(archive).map_err(|e| damaged(e.to_string()))?;
    let size = file.metadata().map_err(|e| damaged(e.to_string()))?.len();
    // Decompression (and the archive's checksum) runs on a thread of its own, beside the
    // unpacking and hashing of files, as `tar --zstd` runs zstd beside tar.
    let (decompressed, checksum) = decompress_beside(file);
    // Our own archive: room for its files and for its manifest, a line per file of at most a
    // 4096-byte path and a few hundred bytes of JSON (77 MB for half a million map tiles).
    let manifest_room = view.files.saturating_mul(4096 + 256).saturating_add(64 << 10);
    let limits = Limits {
        max_bytes: view.bytes.saturating_add(manifest_room),
        max_ratio: u64::MAX,
        max_entries: u64::MAX,
    };
    let mut seen: HashMap<String, PackedFile> = HashMap::new();
    let mut done = 0u64;
    progress.set(0, Some(view.bytes));
    let mut record = |file: PackedFile| {
        done += file.size;
        progress.set(done, Some(view.bytes));
        seen.insert(file.path.clone(), file);
    };
    let unpacked = unpack_tar_hashing(decompressed, &dir, size, limits, Some(&mut record), true);
    match unpacked {
        Err(ArchiveError::Io(e)) if e.kind() == std::io::ErrorKind::StorageFull => {
            return Err(disk_full_aware(e));
        }
        Err(e) => return Err(damaged(e.to_string())),
        Ok(_) => {}
    }
    let sha256 = checksum
        .join()
        .map_err(|_| damaged("its reader failed".into()))?
        .map_err(|e| damaged(e.to_string()))?;
    if sha256 != view.sha256 {
        return Err(damaged("its checksum does not match".into()));
    }
    seen.remove(MANIFEST).ok_or_else(|| damaged("it has no manifest".into()))?;
    let manifest: Manifest = std::fs::read(staging.join(MANIFEST))
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_slice(&text).map_err(|e| e.to_string()))
        .map_err(|e| damaged(format!("its manifest: {e}")))?;
    std::fs::remove_file(staging.join(MANIFEST)).map_err(|e| e.to_string())?;
    if manifest.files.len() != seen.len() {
        return Err(damaged("it holds other files than its manifest lists".into()));
    }
    if let Some(file) = manifest.files.iter().find(|file| seen.get(&file.path) != Some(*file)) {
        return Err(damaged(format!("{} does not match its manifest", file.path)));
    }
    tracing::debug!(unpacked_ms = began.elapsed().as_millis() as u64, "unpacked and verified");
    Ok(())
}

/// Puts a tree on disk before a swap makes it the server's. On a filesystem of the server's
/// own, one `syncfs` (it holds nothing else); on a shared one, every file and directory of
/// the tree is synced by itself, several at a time, so nobody else's writes are flushed with it.
fn make_durable(tree: &Path, own_filesystem: bool) -> std::io::Result<()> {
    if own_filesystem {
        let opened = std::fs::File::open(tree)?;
        return rustix::fs::syncfs(&opened).map_err(std::io::Error::from);
    }
    let mut paths = Vec::new();
    let mut pending = vec![tree.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                paths.push(entry.path());
            }
        }
        // A directory's own sync makes its entries (the names) durable.
        paths.push(dir);
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let sync_some = || -> std::io::Result<()> {
            while let Some(path) = paths.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                std::fs::File::open(path)?.sync_all()?;
            }
            Ok(())
        };
        // A sync thread needs little stack: 64 of the default 2 MiB would reserve 128 MiB for nothing.
        let workers = (0..SYNC_THREADS)
            .map(|_| std::thread::Builder::new().stack_size(SYNC_STACK).spawn_scoped(scope, sync_some))
            .collect::<std::io::Result<Vec<_>>>()?;
        workers.into_iter().try_for_each(|worker| {
            worker.join().unwrap_or_else(|_| Err(std::io::Error::other("a sync thread failed")))
        })
    })
}

/// Files synced at once. Each sync of a file whose journal commit is already on disk still
/// asks the disk to flush its cache, and the block layer merges the flushes asked for while
/// one is under way: the more at once, the fewer flushes (syncing 40,400 files already on
/// disk took 107 µs a file one at a time, 8.2–9.4 µs 16 at a time, 6.5–7.7 µs 64 at a time;
/// the syncs ending a 1 GiB restore took 600–700 ms 16 at a time, 500–560 ms 64 at a time).
const SYNC_THREADS: usize = 64;
/// Each sync thread's stack.
const SYNC_STACK: usize = 256 << 10;

/// The part of a trash directory's name before its unique suffix.
const TRASH: &str = "zlh-trash-";

/// Removes a directory tree on a thread of its own.
fn remove_in_background(tree: PathBuf) {
    std::thread::spawn(move || {
        if let Err(e) = std::fs::remove_dir_all(&tree) {
            tracing::warn!(tree = %tree.display(), error = %e, "an old tree could not be removed");
        }
    });
}

/// Sends what is written to it, in chunks of at least [`CHUNK`] bytes, to the other side of a
/// channel, which gives spent chunks back to be filled again (a fresh MiB for every chunk cost
/// the packer page faults). [`Write::flush`] sends what is left.
struct ChannelWriter {
    chunks: std::sync::mpsc::SyncSender<Vec<u8>>,
    spent: std::sync::mpsc::Receiver<Vec<u8>>,
    filling: Vec<u8>,
}

/// The bytes a stage hands the next at a time.
const CHUNK: usize = 1 << 20;

/// Chunks on their way from one stage to the next.
const QUEUED_CHUNKS: usize = 8;

impl Write for ChannelWriter {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        if self.filling.capacity() == 0 {
            self.filling = self.spent.try_recv().unwrap_or_default();
        }
        self.filling.extend_from_slice(buffer);
        if self.filling.len() >= CHUNK {
            self.flush()?;
        }
        Ok(buffer.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.filling.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.filling);
        self.chunks.send(chunk).map_err(|_| std::io::Error::other("the archive writer stopped"))
    }
}

/// An archive written: its size, SHA-256, and the file (to fsync).
type Written = (u64, String, std::fs::File);

/// Compresses a tar stream into `archive` on a thread of its own, as `zstd` beside `tar`, and
/// hands what it compressed to a third that hashes it, writes it and syncs it as it goes: a
/// writer for the stream, and the archive's size, SHA-256 and file once the writer was
/// flushed and dropped.
///
/// Every chunk of the stream (a MiB or a little more) becomes a zstd frame of its own, with
/// its checksum; `zstd -d` and every decoder read the frames one after another. Streaming
/// one frame, zstd compressed most of the stream from its window's copy of it (the
/// "external dictionary" path, 43 % of the compressor's time); a whole chunk at once is
/// compressed where it lies. Matches across chunks are lost, yet the bench's archive came
/// out no larger (499.3 MiB against 499.6).
fn compress_beside(
    archive: DirectWriter,
    level: i32,
) -> std::io::Result<(ChannelWriter, std::thread::JoinHandle<std::io::Result<Written>>)> {
    let Recycling { to_next, received: chunks, give_back, spent } = recycling(QUEUED_CHUNKS);
    let output = ChannelWriter { chunks: to_next, spent, filling: Vec::new() };
    let Recycling { to_next: to_disk, received: frames, give_back: give_back_frame, spent: spent_frames } =
        recycling(QUEUED_FRAMES);
    let disk = std::thread::Builder::new()
        .name("zlh-archive-disk".into())
        .spawn(move || write_behind(archive, frames, give_back_frame))?;
    let compressor = std::thread::Builder::new().name("zlh-compress".into()).spawn(move || {
        let compressed = (move || {
            let mut zstd = zstd::bulk::Compressor::new(level)?;
            zstd.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
            for mut chunk in chunks {
                // A spent frame's buffer again rather than a fresh one, whose pages would fault.
                let mut frame = spent_frames.try_recv().unwrap_or_default();
                frame.reserve(zstd::zstd_safe::compress_bound(chunk.len()));
                zstd.compress_to_buffer(&chunk[..], &mut frame)?;
                to_disk.send(frame).map_err(|_| std::io::Error::other("the archive writer stopped"))?;
                chunk.clear();
                let _ = give_back.try_send(chunk);
            }
            std::io::Result::Ok(())
        })();
        // The disk's own error (a full disk) explains a failure better than a broken channel.
        match disk.join().map_err(|_| std::io::Error::other("the archive writer failed"))? {
            Ok(written) => compressed.map(|()| written),
            Err(e) => Err(e),
        }
    })?;
    Ok((output, compressor))
}

/// Writes chunks of the archive to its file, hashing them, and has it synced every
/// [`SYNC_BEHIND`] bytes on a thread beside: the disk writes while the packing goes on, and
/// the final fsync finds little left. (On a loop-mounted image, nothing else would write the
/// bytes out until that fsync: it took 660–690 ms of a 2.8 s create.) Synced on this thread
/// every 64 MiB, each sync stalled the whole pipeline for about 70 ms of every 300.
fn write_behind(
    mut archive: DirectWriter,
    chunks: std::sync::mpsc::Receiver<Vec<u8>>,
    give_back: std::sync::mpsc::SyncSender<Vec<u8>>,
) -> std::io::Result<Written> {
    let synced = archive.file().try_clone()?;
    let syncer = SyncBeside::start(move || synced.sync_data())?;
    let (mut hasher, mut count, mut unsynced) = (Sha256::new(), 0u64, 0u64);
    let written = (|| {
        for mut chunk in chunks {
            archive.write_all(&chunk)?;
            hasher.update(&chunk);
            count += chunk.len() as u64;
            unsynced += chunk.len() as u64;
            if unsynced >= SYNC_BEHIND {
                syncer.ask();
                unsynced = 0;
            }
            chunk.clear();
            let _ = give_back.try_send(chunk);
        }
        archive.finish()
    })();
    let synced = syncer.finish();
    let file = written?;
    synced?;
    Ok((count, hex(hasher.finalize()), file))
}

/// Archive bytes written between syncs behind the writer.
const SYNC_BEHIND: u64 = 16 << 20;

/// Compressed chunks on their way to the disk: enough for the compressor to go on while a sync
/// behind holds the writes up (on a loop-mounted image the writes wait for the flush).
const QUEUED_FRAMES: usize = 16;

/// Chunks of decompressed bytes, read on the other side of a channel, which gets spent chunks
/// back to fill again.
struct ChannelReader {
    chunks: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    give_back: std::sync::mpsc::SyncSender<Vec<u8>>,
    current: std::io::Cursor<Vec<u8>>,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let read = self.current.read(buffer)?;
            if read > 0 || buffer.is_empty() {
                return Ok(read);
            }
            match self.chunks.recv() {
                Ok(chunk) => {
                    let spent = std::mem::replace(&mut self.current, std::io::Cursor::new(chunk?));
                    let _ = self.give_back.try_send(spent.into_inner());
                }
                Err(_) => return Ok(0),
            }
        }
    }
}

/// Decompresses a `.tar.zst` on a thread of its own: the decompressed stream, and the SHA-256
/// of the whole archive file once it was read to its end.
fn decompress_beside(
    file: std::fs::File,
) -> (ChannelReader, std::thread::JoinHandle<std::io::Result<String>>) {
    use std::io::Read;
    let Recycling { to_next: sender, received: chunks, give_back, spent } = recycling(4);
    let reader = std::thread::spawn(move || {
        let mut hashing = Hashing::new(file);
        let decoded: std::io::Result<()> = (|| {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(std::io::BufReader::with_capacity(
                1 << 20,
                &mut hashing,
            ))?;
            loop {
                // A spent chunk again rather than a fresh MiB, whose every page would fault.
                let mut chunk = spent.try_recv().unwrap_or_default();
                chunk.resize(1 << 20, 0);
                let read = decoder.read(&mut chunk)?;
                if read == 0 {
                    return Ok(());
                }
                chunk.truncate(read);
                if sender.send(Ok(chunk)).is_err() {
                    return Ok(()); // The unpacker stopped early; its error says why.
                }
            }
        })();
        if let Err(e) = decoded {
            let _ = sender.send(Err(std::io::Error::new(e.kind(), e.to_string())));
            return Err(e);
        }
        std::io::copy(&mut hashing, &mut std::io::sink())?;
        Ok(hashing.hex())
    });
    (ChannelReader { chunks, give_back, current: std::io::Cursor::new(Vec::new()) }, reader)
}

/// Pauses and flushes saving, waiting for the confirmation line.
async fn quiesce_before(supervisor: &Supervisor, quiesce: &Quiesce) -> Result<(), String> {
    let console: Arc<Console> = Arc::clone(supervisor.console());
    let mut follower = console.follow(Some(console.bounds().1));
    for command in &quiesce.before {
        supervisor.console_command(command.clone()).await.map_err(|e| format!("cannot pause saving: {e}"))?;
    }
    let Some(pattern) = &quiesce.wait_for else { return Ok(()) };
    let wait = async {
        let mut partial = Vec::new();
        while let Some(chunk) = follower.next(64 * 1024).await {
            let Chunk::Data { bytes, .. } = chunk else { continue };
            partial.extend_from_slice(&bytes);
            while let Some(newline) = partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = partial.drain(..=newline).collect();
                let line = crate::supervisor::classify::strip_terminal_codes(&String::from_utf8_lossy(&line));
                if pattern.is_match(&line) {
                    return true;
                }
            }
        }
        false
    };
    match tokio::time::timeout(quiesce.timeout, wait).await {
        Ok(true) => Ok(()),
        _ => {
            for command in &quiesce.after {
                let _ = supervisor.console_command(command.clone()).await;
            }
            Err(format!(
                "the server did not confirm its save within {}",
                humantime::format_duration(quiesce.timeout)
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backups_in(root: &Path) -> Backups {
        let toml = format!(
            "listen = \"127.0.0.1:0\"\nsecret = \"0123456789abcdef\"\nroot = {:?}\n[game]\nargv = [\"true\"]\n",
            root.display().to_string()
        );
        let config = AgentConfig::load(&toml, Vec::new()).expect("config");
        std::fs::create_dir_all(config.state_path()).expect("state");
        Backups::new(&config).expect("backups")
    }

    fn tree(files: &[(&str, &str)], at: &Path) {
        std::fs::create_dir_all(at).expect("mkdir");
        for (name, text) in files {
            std::fs::write(at.join(name), text).expect("write");
        }
    }

    fn read(at: &Path) -> Vec<(String, String)> {
        let mut files: Vec<(String, String)> = std::fs::read_dir(at)
            .expect("read_dir")
            .flatten()
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read_to_string(e.path()).expect("read"),
                )
            })
            .collect();
        files.sort();
        files
    }

    fn journal(backups: &Backups, phase: Phase) {
        backups.write_journal(&Journal { backup_id: "b".into(), phase, was_running: true }).expect("journal");
    }

    /// Every moment a killed agent can leave a restore in: the next start ends with the
    /// complete old tree (staging incomplete) or the complete new one (staging complete).
    #[test]
    fn an_interrupted_restore_is_finished_or_rolled_back_from_any_moment() {
        let old = [("a", "old a"), ("b", "old b")];
        let new = [("a", "new a"), ("c", "new c")];
        let expect = |files: &[(&str, &str)]| {
            files.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect::<Vec<_>>()
        };
        // (phase, server tree, staging tree, old tree, expected result)
        type Moment<'a> = (
            Phase,
            Option<&'a [(&'a str, &'a str)]>,
            Option<&'a [(&'a str, &'a str)]>,
            Option<&'a [(&'a str, &'a str)]>,
            &'a [(&'a str, &'a str)],
        );
        let moments: [Moment<'_>; 5] = [
            // Killed while unpacking: staging is partial, the server untouched.
            (Phase::Unpacking, Some(&old), Some(&[("a", "new a")]), None, &old),
            // Killed before the swap began.
            (Phase::Swapping, Some(&old), Some(&new), None, &new),
            // Killed between the two renames: no server directory at all.
            (Phase::Swapping, None, Some(&new), Some(&old), &new),
            // Killed after both renames, before the old tree was removed.
            (Phase::Swapping, Some(&new), None, Some(&old), &new),
            // Killed while removing the old tree.
            (Phase::Swapping, Some(&new), None, Some(&[("b", "old b")]), &new),
        ];
        for (index, (phase, server, staging, previous, result)) in moments.into_iter().enumerate() {
            let root = tempfile::tempdir().expect("tempdir");
            let backups = backups_in(root.path());
            let _ = std::fs::remove_dir_all(&backups.server_root);
            for (files, at) in [
                (server, backups.server_root.clone()),
                (staging, backups.staging()),
                (previous, backups.old()),
            ] {
                if let Some(files) = files {
                    tree(files, &at);
                }
            }
            journal(&backups, phase);
            let recovery = backups.recover();
            assert!(recovery.start_game, "moment {index}: the server ran before the restore");
            assert_eq!(read(&backups.server_root), expect(result), "moment {index}");
            assert!(!backups.staging().exists() && !backups.old().exists(), "moment {index}: leftovers");
            assert!(!backups.journal.exists(), "moment {index}: the journal is done");
            assert_eq!(
                backups.recover(),
                Recovery { start_game: false, resume_saving: false },
                "moment {index}"
            );
        }
    }

    #[test]
    fn a_swap_that_fails_halfway_puts_the_old_tree_back() {
        let root = tempfile::tempdir().expect("tempdir");
        let (server, staging, old) =
            (root.path().join("server"), root.path().join("new"), root.path().join("old"));
        tree(&[("world", "old world")], &server);
        tree(&[("world", "new world")], &staging);
        let calls = std::cell::Cell::new(0);
        let failing_second = |from: &Path, to: &Path| {
            calls.set(calls.get() + 1);
            if calls.get() == 2 {
                Err(std::io::Error::other("the disk went away"))
            } else {
                std::fs::rename(from, to)
            }
        };
        let error = swap_trees(&server, &staging, &old, failing_second).expect_err("the second rename fails");
        assert_eq!(error.to_string(), "the disk went away");
        assert_eq!(read(&server), [("world".to_owned(), "old world".to_owned())], "the old tree is back");
        assert!(!old.exists() && staging.exists(), "staging stays for the error path to remove");
    }

    #[test]
    fn what_a_killed_backup_left_is_swept() {
        let root = tempfile::tempdir().expect("tempdir");
        let backups = backups_in(root.path());
        let ours =
            ["20261201010101-0001", "20261201010102-00a2", "20261201010103-0003", "20261201010104-0004"];
        let names = [
            format!("{}.tar.zst.part", ours[0]),
            format!("{}.tar.zst", ours[1]),
            format!("{}.tar.zst", ours[2]),
            format!("{}.json", ours[2]),
            format!("{}.tmp", ours[3]),
            // An operator's own files, whatever their names say.
            "world-export.tar.zst".to_owned(),
            "notes.tmp".to_owned(),
            "old.tar.zst.part".to_owned(),
        ];
        for name in &names {
            std::fs::write(backups.dir.join(name), "x").expect("write");
        }
        assert!(is_backup_id(&backup_id()));
        std::fs::write(&backups.paused_mark, "").expect("mark");
        // An old tree whose removal was cut short, and an operator's directory of a like name.
        let (trash, look_alike) = (backups.trash(), backups.server_root.with_extension("zlh-trash-mine"));
        for dir in [&trash, &look_alike] {
            tree(&[("level.dat", "x")], &dir.join("world"));
        }
        assert_eq!(backups.recover(), Recovery { start_game: false, resume_saving: true });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while trash.exists() {
            assert!(std::time::Instant::now() < deadline, "the old tree was not removed");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(look_alike.join("world/level.dat").exists(), "an operator's directory stays");
        let mut left: Vec<String> = std::fs::read_dir(&backups.dir)
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let kept = [names[3].as_str(), &names[2], "notes.tmp", "old.tar.zst.part", "world-export.tar.zst"];
        assert_eq!(left, kept);
    }
}
