//! Checks of the repository itself, so `cargo xtask test` is the whole gate.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() && path.file_name().is_some_and(|n| n != "target") {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&workspace().join("crates"), &mut files);
    rust_files(&workspace().join("xtask"), &mut files);
    files
}

#[test]
fn every_module_says_what_it_owns() {
    for file in sources() {
        let text = std::fs::read_to_string(&file).expect("read");
        assert!(
            text.starts_with("//!"),
            "{} must start with a `//!` line saying what it owns",
            file.display()
        );
    }
}

#[test]
fn no_stubs_or_debug_macros_outside_tests() {
    for file in sources() {
        let text = std::fs::read_to_string(&file).expect("read");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        if file.components().any(|c| c.as_os_str() == "tests") {
            continue;
        }
        for banned in ["todo!(", "unimplemented!(", "dbg!("] {
            assert!(!code.contains(banned), "{} contains {banned}", file.display());
        }
    }
}

#[test]
fn architecture_mentions_every_crate_and_dependency() {
    let architecture = std::fs::read_to_string(workspace().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    for entry in std::fs::read_dir(workspace().join("crates")).expect("crates").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            architecture.contains(&format!("crates/{name}")),
            "ARCHITECTURE.md does not describe crates/{name}"
        );
    }
    let manifest = std::fs::read_to_string(workspace().join("Cargo.toml")).expect("Cargo.toml");
    let dependencies = manifest
        .split("[workspace.dependencies]")
        .nth(1)
        .expect("dependencies")
        .split("\n[")
        .next()
        .unwrap_or_default();
    for line in dependencies.lines() {
        let Some((name, _)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        if name.starts_with("zlh") || name.is_empty() {
            continue;
        }
        assert!(
            architecture.contains(&format!("| {name}")) || architecture.contains(&format!(", {name}")),
            "ARCHITECTURE.md does not say why {name} is a dependency"
        );
    }
}

#[test]
fn ci_runs_the_readme_test_command() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("README.md");
    let ci = std::fs::read_to_string(workspace().join(".ci/run")).expect(".ci/run");
    assert!(readme.contains("cargo xtask test") && ci.contains("\ncargo xtask test\n"));
}

/// The control plane's modules and what each may import (`crate::<module>`), as
/// ARCHITECTURE.md states them. `None`: any module but the ones listed after it.
const CONTROL_LAYERS: &[(&str, &[&str])] = &[
    // The core: no HTTP types, and each layer only below it.
    ("config", &[]),
    ("auth", &[]),
    ("metrics", &[]),
    ("templates", &[]),
    ("artifacts", &[]),
    ("registry", &[]),
    ("drain", &[]),
    ("db", &["auth", "registry"]),
    ("cache", &["db", "registry"]),
    ("cluster", &["auth", "db"]),
    ("drivers", &["auth", "config", "registry"]),
    ("poller", &["cache", "cluster", "config", "drivers", "metrics", "registry"]),
    ("install", &["db", "drivers", "registry", "templates"]),
    ("schedules", &["config", "db", "registry"]),
    (
        "provision",
        &["artifacts", "cache", "config", "db", "drivers", "install", "poller", "registry", "templates"],
    ),
];

/// HTTP-facing modules; everything else in the control plane is core.
const CONTROL_HTTP: &[&str] = &["access", "activity", "api", "errors", "http", "ide", "portal", "lib"];

/// `crate::x` names a file imports (doc links included: they are dependencies too).
fn crate_imports(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .match_indices("crate::")
        .filter(|(at, _)| !text[..*at].ends_with("zlh_"))
        .map(|(at, _)| {
            text[at + "crate::".len()..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect()
        })
        .filter(|name: &String| !name.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_control_planes_layers_hold() {
    let src = workspace().join("crates/zlh-control/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for file in files {
        let relative = file.strip_prefix(&src).expect("inside src");
        let module = relative.iter().next().and_then(|c| Path::new(c).file_stem()).expect("module");
        let module = module.to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).expect("read");
        let imports = crate_imports(&text);
        if let Some((_, allowed)) = CONTROL_LAYERS.iter().find(|(name, _)| *name == module) {
            for import in imports.iter().filter(|i| **i != module) {
                assert!(
                    allowed.contains(&import.as_str()),
                    "{} (core module {module}) imports crate::{import}; see ARCHITECTURE.md's layers",
                    relative.display()
                );
            }
            for http in ["axum", "zlh_http"] {
                assert!(
                    !text.contains(&format!("{http}::")),
                    "{} (core module {module}) uses {http}: HTTP types stay in the HTTP layer",
                    relative.display()
                );
            }
        } else {
            assert!(
                CONTROL_HTTP.contains(&module.as_str()),
                "{}: module {module} is in neither the core's nor the HTTP layer's list",
                relative.display()
            );
        }
        let forbidden = match module.as_str() {
            "api" => Some("ide"),
            "ide" => Some("api"),
            _ => None,
        };
        if let Some(forbidden) = forbidden {
            assert!(
                !imports.contains(&forbidden.to_owned()),
                "{} imports crate::{forbidden}: api and ide share only access, errors and the core",
                relative.display()
            );
        }
    }
}
