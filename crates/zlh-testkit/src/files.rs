//! Files for file-API tests: archives (well-formed and hostile), jars, and tree snapshots to
//! prove a directory is exactly as it was.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

/// A `.zip` (or `.jar`) of `(name, contents)`; names are written as given, `..` included.
pub fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for (name, contents) in entries {
        writer.start_file(*name, options).expect("zip entry");
        writer.write_all(contents).expect("zip write");
    }
    writer.finish().expect("zip").into_inner()
}

/// An entry of a hand-made tar, names written raw so that hostile ones (`../x`, `/x`) survive.
#[derive(Debug, Clone, Copy)]
pub enum TarEntry<'a> {
    /// A regular file.
    File(&'a str, &'a [u8]),
    /// A symbolic link to a target.
    Symlink(&'a str, &'a str),
    /// A hard link to a target.
    Hardlink(&'a str, &'a str),
}

/// A `.tar.gz` of entries, names unchecked.
pub fn raw_tar_gz(entries: &[TarEntry<'_>]) -> Vec<u8> {
    let mut builder =
        tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for entry in entries {
        let mut header = tar::Header::new_old();
        let (name, contents, kind, link) = match *entry {
            TarEntry::File(name, contents) => (name, contents, tar::EntryType::Regular, None),
            TarEntry::Symlink(name, target) => (name, &[][..], tar::EntryType::Symlink, Some(target)),
            TarEntry::Hardlink(name, target) => (name, &[][..], tar::EntryType::Link, Some(target)),
        };
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, contents).expect("append");
    }
    builder.into_inner().expect("tar").finish().expect("gzip")
}

/// Every entry beneath `dir`: path → `dir`, `link -> target`, or the SHA-256 and mode of a file.
pub fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, into: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path.strip_prefix(base).expect("beneath").display().to_string();
            let metadata = std::fs::symlink_metadata(&path).expect("metadata");
            if metadata.is_symlink() {
                let target = std::fs::read_link(&path).expect("link");
                into.insert(name, format!("link -> {}", target.display()));
            } else if metadata.is_dir() {
                into.insert(name, "dir".into());
                walk(base, &path, into);
            } else if !metadata.is_file() {
                into.insert(name, "special".into());
            } else {
                use std::os::unix::fs::PermissionsExt;
                let digest = Sha256::digest(std::fs::read(&path).expect("read"));
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                into.insert(name, format!("{hex} {:o}", metadata.permissions().mode() & 0o7777));
            }
        }
    }
    let mut tree = BTreeMap::new();
    walk(dir, dir, &mut tree);
    tree
}
