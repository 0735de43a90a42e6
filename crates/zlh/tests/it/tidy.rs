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
