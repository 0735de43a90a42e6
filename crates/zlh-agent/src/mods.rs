//! Mods and plugins: the `.jar` files in the template's mods directory. A disabled one is
//! renamed `<file>.disabled`. Names and versions come from the jar's own metadata:
//! `fabric.mod.json` (Fabric), `META-INF/mods.toml` (Forge/NeoForge), `plugin.yml`
//! (Bukkit/Spigot/Paper).

use std::io::Read;
use std::path::{Path, PathBuf};

use zlh_proto::agent::ModView;

use crate::files::{FileError, Files};

const DISABLED: &str = ".disabled";

/// The mods directory of a server.
#[derive(Debug)]
pub struct Mods {
    dir: PathBuf,
}

/// What a jar says about itself: (name, version, loader).
type Metadata = (Option<String>, Option<String>, Option<&'static str>);

fn read_entry(archive: &mut zip::ZipArchive<std::fs::File>, name: &str) -> Option<String> {
    let mut entry = archive.by_name(name).ok()?;
    let mut text = String::new();
    entry.by_ref().take(1 << 20).read_to_string(&mut text).ok()?;
    Some(text)
}

fn metadata(file: std::fs::File) -> Metadata {
    let Ok(mut archive) = zip::ZipArchive::new(file) else { return (None, None, None) };
    if let Some(json) = read_entry(&mut archive, "fabric.mod.json")
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    {
        let text = |key: &str| json[key].as_str().map(str::to_owned);
        return (text("name").or_else(|| text("id")), text("version"), Some("fabric"));
    }
    if let Some(toml) =
        read_entry(&mut archive, "META-INF/mods.toml").and_then(|t| t.parse::<toml::Table>().ok())
    {
        let first =
            toml.get("mods").and_then(|m| m.as_array()).and_then(|m| m.first()).and_then(|m| m.as_table());
        let text = |key: &str| first.and_then(|m| m.get(key)).and_then(|v| v.as_str()).map(str::to_owned);
        let mut version = text("version");
        // `${file.jarVersion}` means: the jar manifest's Implementation-Version.
        if version.as_deref().is_some_and(|v| v.contains("${")) {
            version = read_entry(&mut archive, "META-INF/MANIFEST.MF").and_then(|m| {
                m.lines().find_map(|l| l.strip_prefix("Implementation-Version:").map(|v| v.trim().to_owned()))
            });
        }
        return (text("displayName").or_else(|| text("modId")), version, Some("forge"));
    }
    if let Some(yaml) = read_entry(&mut archive, "plugin.yml") {
        let field = |key: &str| {
            yaml.lines().find_map(|l| {
                l.strip_prefix(key)?.strip_prefix(':').map(|v| v.trim().trim_matches(['"', '\'']).to_owned())
            })
        };
        return (field("name"), field("version"), Some("bukkit"));
    }
    (None, None, None)
}

fn is_jar(name: &str) -> bool {
    name.ends_with(".jar") || name.ends_with(".jar.disabled")
}

/// A mod file name as the API takes it: a plain `.jar` (or disabled `.jar`) name.
fn check_name(file: &str) -> Result<(), FileError> {
    if file.contains('/') || file.starts_with('.') || !is_jar(file) {
        return Err(FileError::InvalidPath("a mod is a .jar file name in the mods directory".into()));
    }
    Ok(())
}

impl Mods {
    /// The mods of a server whose mods live in `dir` (relative to the server directory).
    pub fn new(dir: &Path) -> Mods {
        Mods { dir: dir.to_owned() }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }

    /// Every jar, with what its metadata says.
    pub fn list(&self, files: &Files) -> Result<Vec<ModView>, FileError> {
        let entries = match files.list(&self.dir.to_string_lossy()) {
            Err(FileError::NotFound) => return Ok(Vec::new()),
            other => other?,
        };
        let mut mods = Vec::new();
        for entry in entries.into_iter().filter(|e| e.kind == "file" && is_jar(&e.name)) {
            let (name, version, loader) =
                files.read(&self.path(&entry.name)).map(|(f, _)| metadata(f)).unwrap_or((None, None, None));
            mods.push(ModView {
                enabled: !entry.name.ends_with(DISABLED),
                file: entry.name,
                name,
                version,
                loader: loader.map(str::to_owned),
                size: entry.size,
            });
        }
        Ok(mods)
    }

    /// Enables or disables a mod by renaming it; returns its new file name.
    pub fn set_enabled(&self, files: &Files, file: &str, enabled: bool) -> Result<String, FileError> {
        check_name(file)?;
        let renamed = match (file.strip_suffix(DISABLED), enabled) {
            (Some(base), true) => base.to_owned(),
            (None, false) => format!("{file}{DISABLED}"),
            _ => return Ok(file.to_owned()),
        };
        files.rename(&self.path(file), &self.path(&renamed))?;
        Ok(renamed)
    }

    /// Removes a mod.
    pub fn remove(&self, files: &Files, file: &str) -> Result<(), FileError> {
        check_name(file)?;
        files.delete(&self.path(file), false)
    }

    /// The path (in the server directory) an uploaded or installed jar is written to.
    pub fn upload_path(&self, files: &Files, file: &str) -> Result<String, FileError> {
        check_name(file)?;
        if file.ends_with(DISABLED) {
            return Err(FileError::InvalidPath("upload the .jar itself".into()));
        }
        files.mkdir(&self.dir.to_string_lossy())?;
        Ok(self.path(file))
    }
}
