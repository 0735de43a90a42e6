//! The artifact catalog (`devcontainer/_catalog.json`): runtimes and addons an agent may
//! install, each version with its URL, SHA-256 and size.
//!
//! ```json
//! { "schema": 1,
//!   "runtimes": { "node": { "description": "Node.js",
//!       "versions": { "20.20.2": { "url": "runtimes/node/20.20.2/node.tar.gz",
//!                                  "sha256": "…64 hex…", "size": 12345 } } } },
//!   "addons": { "code-server": { "versions": { "4.99.4": { … } } } } }
//! ```
//!
//! A relative `url` is relative to the catalog's own URL. Agents verify size and SHA-256
//! before unpacking anything; `Catalog::validate` rejects catalogs that could not be verified.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The catalog's file name inside the artifact store.
pub const CATALOG_PATH: &str = "devcontainer/_catalog.json";

/// The whole catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Format version; this is 1.
    #[serde(default = "schema_one")]
    pub schema: u32,
    /// Language runtimes (node, python, java, dotnet, go, ...).
    #[serde(default)]
    pub runtimes: BTreeMap<String, Package>,
    /// Services installed beside them (code-server).
    #[serde(default)]
    pub addons: BTreeMap<String, Package>,
    /// Game mods and plugins (`.jar` files).
    #[serde(default)]
    pub mods: BTreeMap<String, Package>,
}

fn schema_one() -> u32 {
    1
}

impl Default for Catalog {
    /// An empty catalog of the current schema.
    fn default() -> Self {
        Catalog {
            schema: schema_one(),
            runtimes: BTreeMap::new(),
            addons: BTreeMap::new(),
            mods: BTreeMap::new(),
        }
    }
}

/// One runtime or addon and its versions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// For people.
    #[serde(default)]
    pub description: String,
    /// Every version, by version string.
    pub versions: BTreeMap<String, Artifact>,
}

/// One downloadable file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// Absolute URL, or a path relative to the catalog.
    pub url: String,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
    /// Size of the file in bytes.
    pub size: u64,
}

/// Which half of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `runtimes`.
    Runtime,
    /// `addons`.
    Addon,
    /// `mods`.
    Mod,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 3] = [Kind::Runtime, Kind::Addon, Kind::Mod];

    /// The singular name people and the API use: `runtime`, `addon`, `mod`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Runtime => "runtime",
            Kind::Addon => "addon",
            Kind::Mod => "mod",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// A name usable as a directory and in URLs: letters, digits, `.`, `_`, `-`, `+`; no leading
/// dot.
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
}

impl Catalog {
    /// Parses and validates.
    pub fn parse(text: &str) -> Result<Catalog, String> {
        let catalog: Catalog =
            serde_json::from_str(text).map_err(|e| format!("the catalog is not valid JSON: {e}"))?;
        catalog.validate()?;
        Ok(catalog)
    }

    /// Every reason this catalog could not be trusted, or `Ok`.
    pub fn validate(&self) -> Result<(), String> {
        if self.schema != 1 {
            return Err(format!("unknown catalog schema {}", self.schema));
        }
        for (kind, packages) in [("runtime", &self.runtimes), ("addon", &self.addons), ("mod", &self.mods)] {
            for (name, package) in packages {
                if !is_safe_name(name) {
                    return Err(format!("{kind} name {name:?} is not a safe name"));
                }
                if package.versions.is_empty() {
                    return Err(format!("{kind} {name} has no versions"));
                }
                for (version, artifact) in &package.versions {
                    let what = format!("{kind} {name} {version}");
                    if !is_safe_name(version) {
                        return Err(format!("{what}: the version is not a safe name"));
                    }
                    if artifact.sha256.len() != 64
                        || !artifact.sha256.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
                    {
                        return Err(format!("{what}: sha256 must be 64 lower-case hex digits"));
                    }
                    if artifact.size == 0 {
                        return Err(format!("{what}: size must be the file's size in bytes"));
                    }
                    let url = artifact.url.as_str();
                    let absolute = url.starts_with("http://") || url.starts_with("https://");
                    if url.is_empty()
                        || (!absolute
                            && (url.starts_with('/') || url.split('/').any(|p| p == ".." || p.is_empty())))
                    {
                        return Err(format!("{what}: url must be http(s):// or a clean relative path"));
                    }
                }
            }
        }
        Ok(())
    }

    /// The packages of one kind.
    pub fn packages(&self, kind: Kind) -> &BTreeMap<String, Package> {
        match kind {
            Kind::Runtime => &self.runtimes,
            Kind::Addon => &self.addons,
            Kind::Mod => &self.mods,
        }
    }

    /// The packages of one kind, for changes.
    pub fn packages_mut(&mut self, kind: Kind) -> &mut BTreeMap<String, Package> {
        match kind {
            Kind::Runtime => &mut self.runtimes,
            Kind::Addon => &mut self.addons,
            Kind::Mod => &mut self.mods,
        }
    }

    /// One artifact.
    pub fn artifact(&self, kind: Kind, name: &str, version: &str) -> Option<&Artifact> {
        self.packages(kind).get(name)?.versions.get(version)
    }

    /// The highest version of a package, comparing dotted numbers numerically.
    pub fn latest(&self, kind: Kind, name: &str) -> Option<&str> {
        let package = self.packages(kind).get(name)?;
        package.versions.keys().max_by(|a, b| compare_versions(a, b)).map(String::as_str)
    }
}

/// Compares `1.10.2` and `1.9` as versions (numeric parts numerically).
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |v: &str| {
        v.split(['.', '-', '+']).map(|p| p.parse::<u64>().map_err(|_| p.to_owned())).collect::<Vec<_>>()
    };
    parts(a).cmp(&parts(b))
}

/// Resolves an artifact's URL against the catalog's URL.
pub fn resolve_url(catalog_url: &str, artifact_url: &str) -> String {
    if artifact_url.starts_with("http://") || artifact_url.starts_with("https://") {
        return artifact_url.to_owned();
    }
    let base = catalog_url.rsplit_once('/').map_or(catalog_url, |(base, _)| base);
    format!("{base}/{artifact_url}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(url: &str, sha256: &str, size: u64) -> String {
        format!(
            r#"{{"runtimes": {{"node": {{"versions": {{"20.1.0": {{"url": "{url}", "sha256": "{sha256}", "size": {size}}}}}}}}}}}"#
        )
    }

    #[test]
    fn good_catalogs_parse_and_bad_ones_say_why() {
        let hash = "a".repeat(64);
        let good = Catalog::parse(&catalog("runtimes/node/node.tar.gz", &hash, 10)).expect("valid");
        assert_eq!(good.latest(Kind::Runtime, "node"), Some("20.1.0"));
        for (text, reason) in [
            (catalog("x.tar.gz", "abc", 10), "sha256"),
            (catalog("x.tar.gz", &"A".repeat(64), 10), "sha256"),
            (catalog("x.tar.gz", &hash, 0), "size"),
            (catalog("../../etc/passwd", &hash, 10), "url"),
            (catalog("/etc/passwd", &hash, 10), "url"),
            (r#"{"runtimes": {"../x": {"versions": {}}}}"#.to_owned(), "safe name"),
            (r#"{"runtimes": {"node": {"versions": {}}}}"#.to_owned(), "no versions"),
            (r#"{"runtimes": [], "evil": 1}"#.to_owned(), "not valid JSON"),
            (r#"{"schema": 2}"#.to_owned(), "schema"),
        ] {
            let error = Catalog::parse(&text).expect_err(&text);
            assert!(error.contains(reason), "{error:?} should mention {reason:?}");
        }
    }

    #[test]
    fn versions_compare_numerically_and_urls_resolve() {
        assert_eq!(compare_versions("1.10.0", "1.9.9"), std::cmp::Ordering::Greater);
        assert_eq!(
            resolve_url("http://h:1/artifacts/devcontainer/_catalog.json", "runtimes/n.tar.gz"),
            "http://h:1/artifacts/devcontainer/runtimes/n.tar.gz"
        );
        assert_eq!(resolve_url("http://h/c.json", "https://cdn/x.tar.gz"), "https://cdn/x.tar.gz");
    }
}
