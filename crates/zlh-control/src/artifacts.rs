//! The artifact store `zlh up` serves: `<data_dir>/artifacts/`, with the catalog at
//! `devcontainer/_catalog.json` and each file at `devcontainer/<kind>s/<name>/<version>/`.
//! `zlh artifacts add|list|remove` maintain it; every change rewrites the catalog atomically
//! and validates it first.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};
use zlh_proto::catalog::{Artifact, CATALOG_PATH, Catalog, Kind, Package, is_safe_name};

/// Why the artifact store or its catalog could not be read or changed; says which file and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ArtifactError(pub String);

/// A directory of artifacts and their catalog.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    dir: PathBuf,
    /// One change of the catalog at a time in this process (each reads, changes and rewrites it).
    changing: std::sync::Arc<std::sync::Mutex<()>>,
}

fn kind_dir(kind: Kind) -> &'static str {
    match kind {
        Kind::Runtime => "runtimes",
        Kind::Addon => "addons",
        Kind::Mod => "mods",
    }
}

impl ArtifactStore {
    /// The store in `dir`.
    pub fn new(dir: PathBuf) -> ArtifactStore {
        ArtifactStore { dir, changing: Default::default() }
    }

    /// Where uploads wait before `add` copies them in: beside the store (the same filesystem),
    /// not in it (the store is served to anyone).
    pub fn uploads(&self) -> PathBuf {
        self.dir.with_file_name("artifact-uploads")
    }

    /// The catalog; an empty one when there is none yet.
    pub fn catalog(&self) -> Result<Catalog, ArtifactError> {
        match std::fs::read_to_string(self.dir.join(CATALOG_PATH)) {
            Ok(text) => Catalog::parse(&text).map_err(ArtifactError),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Catalog::default()),
            Err(e) => Err(ArtifactError(format!("cannot read the catalog: {e}"))),
        }
    }

    fn save(&self, catalog: &Catalog) -> Result<(), ArtifactError> {
        catalog.validate().map_err(ArtifactError)?;
        let path = self.dir.join(CATALOG_PATH);
        let text = serde_json::to_string_pretty(catalog).map_err(|e| ArtifactError(e.to_string()))?;
        write_durably(&path, text.as_bytes())
            .map_err(|e| ArtifactError(format!("cannot write the catalog: {e}")))
    }

    /// Copies `file` into the store (hashing it on the way) and lists it in the catalog.
    pub fn add(&self, kind: Kind, name: &str, version: &str, file: &Path) -> Result<Artifact, ArtifactError> {
        if !is_safe_name(name) || !is_safe_name(version) {
            return Err(ArtifactError(format!(
                "{name:?} and {version:?} must be names of letters, digits, '.', '_', '-', '+'"
            )));
        }
        let file_name = file
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| is_safe_name(n))
            .ok_or_else(|| ArtifactError(format!("{} needs a plain file name", file.display())))?;
        let relative = format!("{}/{name}/{version}/{file_name}", kind_dir(kind));
        let target = self.dir.join("devcontainer").join(&relative);
        let parent = target.parent().ok_or_else(|| ArtifactError("no parent".into()))?;
        std::fs::create_dir_all(parent)
            .map_err(|e| ArtifactError(format!("cannot create {}: {e}", parent.display())))?;
        let mut source = std::fs::File::open(file)
            .map_err(|e| ArtifactError(format!("cannot read {}: {e}", file.display())))?;
        let temporary = target.with_extension("part");
        let mut copy = std::fs::File::create(&temporary)
            .map_err(|e| ArtifactError(format!("cannot write into the store: {e}")))?;
        let (mut hasher, mut size, mut buffer) = (Sha256::new(), 0u64, vec![0u8; 1 << 20]);
        loop {
            let read = source
                .read(&mut buffer)
                .map_err(|e| ArtifactError(format!("cannot read {}: {e}", file.display())))?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            copy.write_all(&buffer[..read])
                .map_err(|e| ArtifactError(format!("cannot write into the store: {e}")))?;
            size += read as u64;
        }
        copy.sync_all().map_err(|e| ArtifactError(format!("cannot write into the store: {e}")))?;
        std::fs::rename(&temporary, &target)
            .map_err(|e| ArtifactError(format!("cannot write into the store: {e}")))?;
        let artifact = Artifact {
            url: relative,
            sha256: hasher.finalize().iter().map(|b| format!("{b:02x}")).collect(),
            size,
        };
        let _changing = self.changing.lock().unwrap_or_else(|p| p.into_inner());
        let mut catalog = self.catalog()?;
        let package = catalog.packages_mut(kind).entry(name.to_owned()).or_insert_with(Package::default);
        package.versions.insert(version.to_owned(), artifact.clone());
        self.save(&catalog)?;
        Ok(artifact)
    }

    /// Removes a version from the catalog and its file from the store.
    pub fn remove(&self, kind: Kind, name: &str, version: &str) -> Result<(), ArtifactError> {
        let _changing = self.changing.lock().unwrap_or_else(|p| p.into_inner());
        let mut catalog = self.catalog()?;
        let packages = catalog.packages_mut(kind);
        let package =
            packages.get_mut(name).ok_or_else(|| ArtifactError(format!("{name} is not in the catalog")))?;
        let artifact = package
            .versions
            .remove(version)
            .ok_or_else(|| ArtifactError(format!("{name} {version} is not in the catalog")))?;
        if package.versions.is_empty() {
            packages.remove(name);
        }
        self.save(&catalog)?;
        if let Some(path) = self.file(&format!("devcontainer/{}", artifact.url)) {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }

    /// The file behind a URL path under `/artifacts/`, if it is a plain path to an existing file.
    pub fn file(&self, relative: &str) -> Option<PathBuf> {
        let path = Path::new(relative);
        if relative.is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
            return None;
        }
        let full = self.dir.join(path);
        let metadata = std::fs::symlink_metadata(&full).ok()?;
        metadata.is_file().then_some(full)
    }
}

fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_are_hashed_listed_and_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ArtifactStore::new(dir.path().join("artifacts"));
        let file = dir.path().join("node-20.tar.gz");
        std::fs::write(&file, b"not really a tarball").expect("write");
        let artifact = store.add(Kind::Runtime, "node", "20.20.2", &file).expect("add");
        assert_eq!(artifact.size, 20);
        let expected: String =
            Sha256::digest(b"not really a tarball").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(artifact.sha256, expected);
        let catalog = store.catalog().expect("catalog");
        assert_eq!(catalog.artifact(Kind::Runtime, "node", "20.20.2"), Some(&artifact));
        assert!(store.file(&format!("devcontainer/{}", artifact.url)).is_some());
        assert!(store.file("../secrets/token.key").is_none() && store.file("/etc/passwd").is_none());
        assert!(store.add(Kind::Runtime, "../evil", "1", &file).is_err());
        store.remove(Kind::Runtime, "node", "20.20.2").expect("remove");
        assert!(store.catalog().expect("catalog").runtimes.is_empty());
        assert!(store.remove(Kind::Runtime, "node", "20.20.2").is_err());
    }
}
