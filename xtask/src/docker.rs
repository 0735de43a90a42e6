//! A Docker engine for the tests, started by `cargo xtask test` itself: Debian's `docker.io`,
//! its own socket and data root (so it never touches an engine the machine already runs), and
//! a small Debian image built offline from Debian's packages with `mmdebstrap`, then imported.
//! Each step is skipped when its result is already there.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The tests' engine.
pub(crate) const SOCKET: &str = zlh_testkit::docker::SOCKET;
/// The image servers run in during tests: Debian's minimal base, plus what code-server needs.
pub(crate) const IMAGE: &str = zlh_testkit::docker::IMAGE;

fn docker(args: &[&str]) -> Command {
    let mut command = Command::new("docker");
    command.args(args).env("DOCKER_HOST", format!("unix://{SOCKET}"));
    command
}

fn quietly(mut command: Command) -> bool {
    command.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Starts the engine (unless it answers) and builds the image (unless it exists).
pub(crate) fn prepare(target: &Path) -> anyhow::Result<()> {
    crate::e2e::ensure_debian_packages(&["docker.io", "mmdebstrap", "openssl"])?;
    let run = Path::new(SOCKET).parent().expect("socket directory");
    if quietly(docker(&["info"])) && !run.join(TLS_ENDPOINT_FILE).exists() {
        // Started by an older xtask, without the TLS listener the tests now use.
        stop_engine(run)?;
    }
    if !quietly(docker(&["info"])) {
        start_engine(target)?;
    }
    for image in [&BASE, &GAMES] {
        if !quietly(docker(&["image", "inspect", image.name])) {
            build_image(target, image)?;
        }
    }
    // Made once here: test control planes starting at the same moment would each create one
    // (the engine accepts two networks of one name, then refuses to use either).
    if !quietly(docker(&["network", "inspect", NETWORK])) {
        let options = "com.docker.network.bridge.enable_icc=false";
        if !quietly(docker(&["network", "create", "--driver", "bridge", "-o", options, NETWORK])) {
            bail!("cannot create the servers' network {NETWORK}");
        }
    }
    Ok(())
}

/// The network the tests' servers join (the driver's `[docker] network`).
const NETWORK: &str = "zlh-test";

/// Where the engine's TCP endpoint (mutual TLS, as a remote engine is reached) is written.
const TLS_ENDPOINT_FILE: &str = "tls-endpoint";

/// The engine's TLS endpoint and the directory with the client's `ca.pem`, `cert.pem` and
/// `key.pem`, for the tests' environment.
pub(crate) fn tls_endpoint(target: &Path) -> (String, String) {
    let run = Path::new(SOCKET).parent().expect("socket directory");
    let endpoint = std::fs::read_to_string(run.join(TLS_ENDPOINT_FILE)).unwrap_or_default();
    (endpoint.trim().to_owned(), target.join("docker-tls").display().to_string())
}

fn stop_engine(run: &Path) -> anyhow::Result<()> {
    let pid = std::fs::read_to_string(run.join("docker.pid")).context("the engine's pid file")?;
    let pid = rustix::process::Pid::from_raw(pid.trim().parse()?).context("the engine's pid")?;
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(60);
    while rustix::process::test_kill_process(pid).is_ok() {
        if Instant::now() > deadline {
            bail!("dockerd did not stop within a minute");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// A CA, a certificate for the engine (127.0.0.1) and one for its clients, made once.
fn certificates(dir: &Path) -> anyhow::Result<()> {
    if dir.join("cert.pem").exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let openssl = |args: &[&str]| -> anyhow::Result<()> {
        let mut command = Command::new("openssl");
        command.args(args).current_dir(dir);
        if !quietly(command) {
            bail!("openssl {} failed", args.join(" "));
        }
        Ok(())
    };
    let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        &[
            &[
                "req",
                "-x509",
                "-days",
                "3650",
                "-subj",
                "/CN=zlh-test-ca",
                "-keyout",
                "ca-key.pem",
                "-out",
                "ca.pem",
            ][..],
            &key,
        ]
        .concat(),
    )?;
    for (name, extensions) in [
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
        ("cert", "extendedKeyUsage=clientAuth"),
    ] {
        let (csr, pem, private) = (format!("{name}.csr"), format!("{name}.pem"), format!("{name}-key.pem"));
        let private = if name == "cert" { "key.pem".to_owned() } else { private };
        openssl(
            &[
                &["req", "-subj", &format!("/CN=zlh-test-{name}"), "-keyout", &private, "-out", &csr][..],
                &key,
            ]
            .concat(),
        )?;
        std::fs::write(dir.join(format!("{name}.ext")), extensions)?;
        openssl(&[
            "x509",
            "-req",
            "-days",
            "3650",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &pem,
        ])?;
    }
    Ok(())
}

fn start_engine(target: &Path) -> anyhow::Result<()> {
    let run = Path::new(SOCKET).parent().expect("socket directory");
    std::fs::create_dir_all(run)?;
    let tls = target.join("docker-tls");
    certificates(&tls)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let data = target.join("docker");
    std::fs::create_dir_all(&data)?;
    eprintln!("$ dockerd (tests' engine at {SOCKET}, log in target/dockerd.log)");
    let path = |p: &Path| p.display().to_string();
    let args: Vec<String> = [
        vec!["--host".into(), format!("unix://{SOCKET}")],
        vec!["--data-root".into(), path(&data), "--exec-root".into(), path(&run.join("exec"))],
        vec!["--pidfile".into(), path(&run.join("docker.pid"))],
        // As a remote engine is reached: TCP with mutual TLS.
        vec!["--host".into(), format!("tcp://127.0.0.1:{port}"), "--tlsverify".into()],
        vec![
            "--tlscacert".into(),
            path(&tls.join("ca.pem")),
            "--tlscert".into(),
            path(&tls.join("server.pem")),
        ],
        vec!["--tlskey".into(), path(&tls.join("server-key.pem"))],
        // No default bridge: servers get a network of their own from the driver.
        vec!["--bridge".into(), "none".into()],
    ]
    .concat();
    // Kept, so a test can restart the engine as it was started.
    std::fs::write(zlh_testkit::docker::ARGS_FILE, serde_json::to_vec(&args)?)?;
    zlh_testkit::docker::start_engine(&args, &target.join("dockerd.log")).map_err(anyhow::Error::msg)?;
    std::fs::write(run.join(TLS_ENDPOINT_FILE), format!("tcp://127.0.0.1:{port}"))?;
    Ok(())
}

/// An image the tests run servers in, built from Debian's packages.
struct Image {
    name: &'static str,
    /// Its root filesystem's cached tar under `target/e2e`.
    rootfs: &'static str,
    /// Packages beyond the minimal base.
    packages: &'static str,
}

/// The base of servers and dev containers.
const BASE: Image = Image { name: IMAGE, rootfs: "zlh-base-v1", packages: "libstdc++6,ca-certificates" };
/// Real games from Debian, for the egg tests: wesnothd (TCP, stopped by SIGINT) and
/// freeciv-server (TCP, stopped by its `quit` command).
const GAMES: Image = Image {
    name: zlh_testkit::docker::GAMES_IMAGE,
    rootfs: "zlh-games-v1",
    packages: "libstdc++6,ca-certificates,wesnoth-1.16-server,freeciv-server",
};

fn build_image(target: &Path, image: &Image) -> anyhow::Result<()> {
    let rootfs = target.join(format!("e2e/{}.tar", image.rootfs));
    if !rootfs.exists() {
        std::fs::create_dir_all(target.join("e2e"))?;
        let partial = target.join(format!("e2e/{}.partial.tar", image.rootfs));
        eprintln!("$ mmdebstrap --variant=minbase bookworm (the tests' image {})", image.name);
        let status = Command::new("mmdebstrap")
            .args(["--variant=minbase", "--format=tar", "--quiet"])
            .arg(format!("--include={}", image.packages))
            // Documentation, manuals and translations are most of a game's packages.
            .args(
                ["doc", "man", "locale", "info"]
                    .map(|dir| format!("--dpkgopt=path-exclude=/usr/share/{dir}/*")),
            )
            .arg("bookworm")
            .arg(&partial)
            .arg("http://deb.debian.org/debian")
            .stdout(std::io::stderr())
            .status()
            .context("cannot run mmdebstrap")?;
        if !status.success() {
            bail!("mmdebstrap failed: {status}");
        }
        std::fs::rename(&partial, &rootfs)?;
    }
    let mut import = docker(&["import"]);
    import.arg(&rootfs).arg(image.name).stdout(Stdio::null());
    if !import.status().is_ok_and(|s| s.success()) {
        bail!("docker import of {} failed", rootfs.display());
    }
    Ok(())
}
