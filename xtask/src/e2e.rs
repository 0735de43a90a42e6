//! What the end-to-end tests need besides Rust, installed by `cargo xtask test` itself (so a
//! fresh machine needs nothing else): Debian's Chromium, playwright-core from the npm registry
//! (pinned in `e2e/package-lock.json`), and a real code-server from the npm registry, packed as
//! an artifact the way official releases are laid out (`bin/code-server`, `node_modules`).
//! Each step is skipped when its result is already there.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::{run_command, workspace};

/// code-server's version (the newest that runs on Node 20).
pub(crate) const CODE_SERVER_VERSION: &str = "4.99.4";

/// Where the fixtures are, for the tests' environment.
#[derive(Debug)]
pub(crate) struct Fixtures {
    pub(crate) postgres: String,
    pub(crate) code_server_tgz: PathBuf,
    pub(crate) chromium: PathBuf,
    pub(crate) e2e_dir: PathBuf,
    pub(crate) screenshots: PathBuf,
}

impl Fixtures {
    /// The environment variables the tests read.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ZLH_TEST_POSTGRES", self.postgres.clone()),
            ("ZLH_TEST_CODE_SERVER_TGZ", self.code_server_tgz.display().to_string()),
            ("ZLH_CHROMIUM", self.chromium.display().to_string()),
            ("ZLH_E2E_DIR", self.e2e_dir.display().to_string()),
            ("ZLH_SCREENSHOTS", self.screenshots.display().to_string()),
            ("ZLH_TEST_DOCKER_HOST", format!("unix://{}", crate::docker::SOCKET)),
            ("ZLH_TEST_DOCKER_IMAGE", crate::docker::IMAGE.to_owned()),
            ("ZLH_TEST_DOCKER_TLS_HOST", crate::docker::tls_endpoint(&target_dir()).0),
            ("ZLH_TEST_DOCKER_TLS_DIR", crate::docker::tls_endpoint(&target_dir()).1),
        ]
    }
}

pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace().join("target"))
}

/// Installs Debian packages that are missing.
pub(crate) fn ensure_debian_packages(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !Command::new("dpkg").args(["-s", p]).output().is_ok_and(|o| o.status.success()))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !rustix::process::geteuid().is_root() {
        bail!("the tests need the Debian packages {missing:?}: install them, or run as root");
    }
    run_command("apt-get", &["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(&missing);
    eprintln!("$ apt-get {}", args.join(" "));
    let status = Command::new("apt-get").args(&args).env("DEBIAN_FRONTEND", "noninteractive").status()?;
    if !status.success() {
        bail!("apt-get install {missing:?} failed: {status}");
    }
    Ok(())
}

/// The portal's copies of its npm packages: (file in the package, copy in `portal/vendor/`).
const PORTAL_VENDOR: &[(&str, &str)] = &[
    ("@xterm/xterm/lib/xterm.mjs", "xterm.mjs"),
    ("@xterm/xterm/css/xterm.css", "xterm.css"),
    ("@xterm/addon-fit/lib/addon-fit.mjs", "addon-fit.mjs"),
    ("@codemirror/state/dist/index.js", "codemirror/state.js"),
    ("@codemirror/view/dist/index.js", "codemirror/view.js"),
    ("@codemirror/commands/dist/index.js", "codemirror/commands.js"),
    ("@codemirror/language/dist/index.js", "codemirror/language.js"),
    ("@codemirror/search/dist/index.js", "codemirror/search.js"),
    ("@codemirror/lang-json/dist/index.js", "codemirror/lang-json.js"),
    ("@codemirror/lang-yaml/dist/index.js", "codemirror/lang-yaml.js"),
    ("@codemirror/streamparser/dist/index.js", "codemirror/streamparser.js"),
    ("@codemirror/legacy-modes/mode/properties.js", "codemirror/mode-properties.js"),
    ("@codemirror/legacy-modes/mode/toml.js", "codemirror/mode-toml.js"),
    ("@codemirror/legacy-modes/mode/shell.js", "codemirror/mode-shell.js"),
    ("@lezer/common/dist/index.js", "codemirror/lezer-common.js"),
    ("@lezer/highlight/dist/index.js", "codemirror/lezer-highlight.js"),
    ("@lezer/lr/dist/index.js", "codemirror/lezer-lr.js"),
    ("@lezer/json/dist/index.js", "codemirror/lezer-json.js"),
    ("@lezer/yaml/dist/index.js", "codemirror/lezer-yaml.js"),
    ("style-mod/src/style-mod.js", "codemirror/style-mod.js"),
    ("w3c-keyname/index.js", "codemirror/w3c-keyname.js"),
    ("crelt/index.js", "codemirror/crelt.js"),
    ("@marijn/find-cluster-break/src/index.js", "codemirror/find-cluster-break.js"),
];

fn npm_ci(dir: &Path) -> anyhow::Result<()> {
    let status = Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(dir).status()?;
    if !status.success() {
        bail!("npm ci in {} failed: {status}", dir.display());
    }
    Ok(())
}

/// Installs the portal's pinned npm packages and copies their files into `portal/vendor/`
/// (`copy`), or checks that the copies there are exactly those files.
pub(crate) fn portal_vendor(copy: bool) -> anyhow::Result<()> {
    let portal = workspace().join("crates/zlh-control/portal");
    npm_ci(&portal)?;
    for (package_file, copied) in PORTAL_VENDOR {
        let (source, target) =
            (portal.join("node_modules").join(package_file), portal.join("vendor").join(copied));
        if copy {
            std::fs::create_dir_all(target.parent().unwrap_or(&portal))?;
            std::fs::copy(&source, &target)?;
        } else if std::fs::read(&source)? != std::fs::read(&target).unwrap_or_default() {
            bail!(
                "portal/vendor/{copied} is not the pinned npm package's {package_file}: run `cargo xtask vendor`"
            );
        }
    }
    Ok(())
}

pub(crate) fn prepare() -> anyhow::Result<Fixtures> {
    // haproxy: the load balancer in front of several control planes in the replica tests.
    ensure_debian_packages(&["chromium", "zstd", "haproxy"])?;
    portal_vendor(false)?;
    let e2e_dir = workspace().join("e2e");
    if ["playwright-core", "axe-core"].iter().any(|p| !e2e_dir.join("node_modules").join(p).exists()) {
        npm_ci(&e2e_dir)?;
    }
    let fixtures_dir = target_dir().join("e2e");
    std::fs::create_dir_all(&fixtures_dir)?;
    let code_server_tgz = fixtures_dir.join(format!("code-server-{CODE_SERVER_VERSION}.tar.gz"));
    if !code_server_tgz.exists() {
        let prefix = fixtures_dir.join("code-server");
        let script = workspace().join("scripts/install-code-server.sh");
        // Its output goes to stderr: stdout of `cargo xtask fixtures` is for `eval`.
        let status = Command::new("bash").arg(&script).arg(&prefix).stdout(std::io::stderr()).status()?;
        if !status.success() {
            bail!("installing code-server failed: {status}");
        }
        pack_code_server(&prefix, &code_server_tgz)?;
    }
    let screenshots = fixtures_dir.join("screenshots");
    std::fs::create_dir_all(&screenshots)?;
    crate::docker::prepare(&target_dir())?;
    let postgres = crate::postgres::prepare(&target_dir())?;
    Ok(Fixtures {
        postgres,
        code_server_tgz,
        chromium: PathBuf::from("/usr/bin/chromium"),
        e2e_dir,
        screenshots,
    })
}

/// Packs an npm-installed code-server like an official release: `code-server-<v>/bin/code-server`
/// (which runs the bundled `lib/node` when there is one, else `node` from `PATH`) and
/// `node_modules/`.
fn pack_code_server(prefix: &Path, tgz: &Path) -> anyhow::Result<()> {
    let staging = prefix.join("package");
    std::fs::create_dir_all(staging.join("bin"))?;
    let launcher = staging.join("bin/code-server");
    std::fs::write(
        &launcher,
        "#!/bin/sh\n# code-server, packed the way official releases are.\nhere=$(cd \"$(dirname \"$0\")/..\" && pwd)\n\
         node=\"$here/lib/node\"; [ -x \"$node\" ] || node=node\n\
         exec \"$node\" \"$here/node_modules/code-server/out/node/entry.js\" \"$@\"\n",
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&launcher, std::fs::Permissions::from_mode(0o755))?;
    let top = format!("code-server-{CODE_SERVER_VERSION}");
    let partial = tgz.with_extension("part");
    let transform = format!("s,^,{top}/,");
    let status = Command::new("tar")
        .args(["--use-compress-program=gzip -1", "-cf"])
        .arg(&partial)
        .args(["--transform", &transform, "-C"])
        .arg(prefix)
        .arg("node_modules")
        .arg("-C")
        .arg(&staging)
        .arg("bin")
        .status()
        .context("cannot run tar")?;
    if !status.success() {
        bail!("packing code-server failed: {status}");
    }
    std::fs::rename(&partial, tgz)?;
    Ok(())
}
