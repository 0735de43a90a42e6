//! Installed runtimes and addons, one directory per version, switched atomically.
//!
//! ```text
//! <base>/<name>/<version>/     the unpacked artifact (with .zlh-package.json once complete)
//! <base>/<name>/current        symlink to the version in use
//! <base>/<name>/previous       symlink to the version a rollback returns to
//! <base>/.staging/             downloads and unpacking in progress
//! ```
//!
//! An install downloads into staging, verifies size and SHA-256, unpacks there, marks the
//! result complete, and only then renames it into place and swaps `current` (a rename too).
//! A crash at any moment leaves the old `current` working; staging is emptied at start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use zlh_proto::agent::InstalledPackage;
use zlh_proto::catalog::{Kind, compare_versions, is_safe_name};

use crate::archive::{Limits, unpack_tar_gz};
use crate::artifacts::{ArtifactClient, ArtifactError};
use crate::durable::sync_dir;
use crate::jobs::Progress;

const MARKER: &str = ".zlh-package.json";

/// Installed packages of one kind.
#[derive(Debug)]
pub struct PackageStore {
    base: PathBuf,
    kind: Kind,
    /// One install at a time per package name.
    guards: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Why a package could not be installed, switched or removed.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The name or version is not one the catalog could hold.
    #[error("{0:?} {1:?} is not a valid name and version")]
    InvalidName(String, String),
    /// That version is not installed.
    #[error("{0} {1} is not installed")]
    NotInstalled(String, String),
    /// No earlier version to return to.
    #[error("{0} has no previous version")]
    NoPrevious(String),
    /// The catalog does not have it.
    #[error("{0} {1} is not in the artifact catalog")]
    NotInCatalog(String, String),
    /// The version is the current one.
    #[error("{0} {1} is in use: switch to another version first")]
    InUse(String, String),
    /// An install of the same package is running.
    #[error("{0} is being installed; try again when that install is done")]
    Busy(String),
    /// The artifact store did not deliver.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// The artifact is not an archive we unpack.
    #[error("unpacking failed: {0}")]
    Unpack(String),
    /// The disk said no.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// One change at a time per package: held while an install, switch or removal runs.
#[derive(Debug)]
pub struct PackageTurn {
    _held: tokio::sync::OwnedMutexGuard<()>,
}

fn io_error(what: &'static str) -> impl Fn(std::io::Error) -> PackageError {
    move |source| PackageError::Io { what, source }
}

impl PackageStore {
    /// Opens (creating) `base` and clears what an interrupted install left in staging.
    pub fn open(base: PathBuf, kind: Kind) -> std::io::Result<PackageStore> {
        std::fs::create_dir_all(&base)?;
        let staging = base.join(".staging");
        if staging.exists() {
            std::fs::remove_dir_all(&staging)?;
        }
        Ok(PackageStore { base, kind, guards: Mutex::new(HashMap::new()) })
    }

    fn guard(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut guards = self.guards.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(guards.entry(name.to_owned()).or_default())
    }

    fn package_dir(&self, name: &str) -> PathBuf {
        self.base.join(name)
    }

    /// The directory of the version in use.
    pub fn current(&self, name: &str) -> Option<PathBuf> {
        let link = self.package_dir(name).join("current");
        link.join(MARKER).exists().then_some(link)
    }

    fn link_target(&self, name: &str, link: &str) -> Option<String> {
        let target = std::fs::read_link(self.package_dir(name).join(link)).ok()?;
        target.file_name().map(|n| n.to_string_lossy().into_owned())
    }

    /// Whether a version is installed completely.
    pub fn is_installed(&self, name: &str, version: &str) -> bool {
        self.package_dir(name).join(version).join(MARKER).exists()
    }

    /// The right to change a package now, or `Busy` while an install of it runs.
    pub fn turn_now(&self, name: &str) -> Result<PackageTurn, PackageError> {
        let held = self.guard(name).try_lock_owned().map_err(|_| PackageError::Busy(name.into()))?;
        Ok(PackageTurn { _held: held })
    }

    /// The right to change a package, once the install running now (if any) is done.
    pub async fn turn(&self, name: &str) -> PackageTurn {
        PackageTurn { _held: self.guard(name).lock_owned().await }
    }

    /// Installs a version from the catalog (unless installed) and makes it current.
    pub async fn install(
        &self,
        _turn: PackageTurn,
        client: &ArtifactClient,
        name: &str,
        version: &str,
        progress: &Progress,
    ) -> Result<(), PackageError> {
        if !is_safe_name(name) || !is_safe_name(version) {
            return Err(PackageError::InvalidName(name.into(), version.into()));
        }
        if self.is_installed(name, version) {
            progress.say(&format!("{name} {version} is already installed"));
            return self.switch(name, version);
        }
        progress.say("reading the catalog");
        let catalog = client.catalog().await?;
        let artifact = catalog
            .artifact(self.kind, name, version)
            .ok_or_else(|| PackageError::NotInCatalog(name.into(), version.into()))?
            .clone();
        let staging = self.base.join(".staging").join(format!("{name}-{version}-{:x}", random_suffix()));
        std::fs::create_dir_all(&staging).map_err(io_error("cannot create the staging directory"))?;
        let outcome = async {
            let download = staging.join("download");
            progress.say(&format!("downloading {name} {version}"));
            client.download(&artifact, &download, progress).await?;
            progress.say(&format!("unpacking {name} {version}"));
            let content = staging.join("content");
            std::fs::create_dir(&content).map_err(io_error("cannot create the staging directory"))?;
            let (download_path, content_path) = (download.clone(), content.clone());
            tokio::task::spawn_blocking(move || {
                let file = std::fs::File::open(&download_path)?;
                let size = file.metadata()?.len();
                let dir = cap_std::fs::Dir::open_ambient_dir(&content_path, cap_std::ambient_authority())?;
                unpack_tar_gz(std::io::BufReader::new(file), &dir, size, Limits::default())
                    .map_err(std::io::Error::other)
            })
            .await
            .map_err(|e| PackageError::Unpack(e.to_string()))?
            .map_err(|e| PackageError::Unpack(e.to_string()))?;
            let root = single_top_directory(&content).unwrap_or(content);
            let marker = serde_json::json!({ "name": name, "version": version, "sha256": artifact.sha256 });
            crate::durable::write_atomically(&root.join(MARKER), marker.to_string().as_bytes())
                .map_err(io_error("cannot mark the install complete"))?;
            let target = self.package_dir(name).join(version);
            std::fs::create_dir_all(self.package_dir(name))
                .map_err(io_error("cannot create the package directory"))?;
            if target.exists() {
                // An unmarked leftover of an install interrupted after its rename.
                std::fs::remove_dir_all(&target).map_err(io_error("cannot replace an unfinished install"))?;
            }
            std::fs::rename(&root, &target).map_err(io_error("cannot move the install into place"))?;
            sync_dir(&self.package_dir(name));
            Ok::<(), PackageError>(())
        }
        .await;
        let _ = std::fs::remove_dir_all(&staging);
        outcome?;
        progress.say(&format!("switching to {name} {version}"));
        self.switch(name, version)?;
        progress.say(&format!("{name} {version} installed"));
        tracing::info!(package = name, version, "installed");
        Ok(())
    }

    /// Makes an installed version current; the old current becomes `previous`.
    pub fn switch(&self, name: &str, version: &str) -> Result<(), PackageError> {
        if !self.is_installed(name, version) {
            return Err(PackageError::NotInstalled(name.into(), version.into()));
        }
        let old = self.link_target(name, "current");
        replace_link(&self.package_dir(name), "current", version)
            .map_err(io_error("cannot switch versions"))?;
        if let Some(old) = old.filter(|old| old != version) {
            replace_link(&self.package_dir(name), "previous", &old)
                .map_err(io_error("cannot record the previous version"))?;
        }
        sync_dir(&self.package_dir(name));
        Ok(())
    }

    /// Returns to the previous version; returns it.
    pub fn rollback(&self, name: &str) -> Result<String, PackageError> {
        let _turn = self.turn_now(name)?;
        let previous =
            self.link_target(name, "previous").ok_or_else(|| PackageError::NoPrevious(name.into()))?;
        self.switch(name, &previous)?;
        Ok(previous)
    }

    /// Makes an installed version current, unless an install of the package is running.
    pub fn switch_now(&self, name: &str, version: &str) -> Result<(), PackageError> {
        let _turn = self.turn_now(name)?;
        self.switch(name, version)
    }

    /// Removes a version that is not current.
    pub fn remove(&self, name: &str, version: &str) -> Result<(), PackageError> {
        let _turn = self.turn_now(name)?;
        if !is_safe_name(name) || !is_safe_name(version) || !self.package_dir(name).join(version).exists() {
            return Err(PackageError::NotInstalled(name.into(), version.into()));
        }
        if self.link_target(name, "current").as_deref() == Some(version) {
            return Err(PackageError::InUse(name.into(), version.into()));
        }
        if self.link_target(name, "previous").as_deref() == Some(version) {
            let _ = std::fs::remove_file(self.package_dir(name).join("previous"));
        }
        std::fs::remove_dir_all(self.package_dir(name).join(version)).map_err(io_error("cannot remove it"))
    }

    /// Every installed package.
    pub fn list(&self) -> Vec<InstalledPackage> {
        let Ok(entries) = std::fs::read_dir(&self.base) else { return Vec::new() };
        let mut packages: Vec<InstalledPackage> = entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_str()?.to_owned();
                if name.starts_with('.') {
                    return None;
                }
                let mut versions: Vec<String> = std::fs::read_dir(entry.path())
                    .ok()?
                    .flatten()
                    .filter(|v| v.path().join(MARKER).exists() && !v.path().is_symlink())
                    .filter_map(|v| v.file_name().to_str().map(str::to_owned))
                    .collect();
                versions.sort_by(|a, b| compare_versions(a, b));
                let current = self.link_target(&name, "current");
                let previous = self.link_target(&name, "previous");
                (!versions.is_empty()).then_some(InstalledPackage { name, versions, current, previous })
            })
            .collect();
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        packages
    }

    /// The `bin` directories of every current version (or the version directory itself when it
    /// has no `bin`), for `PATH`.
    pub fn bin_dirs(&self) -> Vec<PathBuf> {
        self.list()
            .iter()
            .filter_map(|p| self.current(&p.name))
            .map(|current| if current.join("bin").is_dir() { current.join("bin") } else { current })
            .collect()
    }
}

/// Points `dir/name` at `target` atomically: a new link under a temporary name, renamed over.
fn replace_link(dir: &Path, name: &str, target: &str) -> std::io::Result<()> {
    let temporary = dir.join(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&temporary);
    std::os::unix::fs::symlink(target, &temporary)?;
    std::fs::rename(&temporary, dir.join(name))
}

/// Archives usually hold one top directory (`node-v20.20.2-linux-x64/`); installs use what is
/// inside it.
fn single_top_directory(content: &Path) -> Option<PathBuf> {
    let mut entries = std::fs::read_dir(content).ok()?.flatten();
    let only = entries.next()?;
    (entries.next().is_none() && only.file_type().ok()?.is_dir()).then(|| only.path())
}

fn random_suffix() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}
