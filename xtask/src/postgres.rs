//! The tests' PostgreSQL: Debian's server, one cluster in `target/postgres/` run by the
//! `postgres` user (it refuses root), listening on 127.0.0.1 only, at a port chosen once and
//! kept in `target/postgres/port`; trust authentication (loopback, tests only) and no fsync
//! (tests' databases are thrown away). Started if it is not running; reused if it is.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The newest installed server's binaries (`/usr/lib/postgresql/<version>/bin`).
fn binaries() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("Debian's postgresql is not installed")?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).context("no PostgreSQL server under /usr/lib/postgresql")
}

fn as_postgres(program: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .stdout(std::io::stderr())
        .status()
        .with_context(|| format!("cannot run {}", program.display()))?;
    if !status.success() {
        bail!("{} {args:?} failed: {status}", program.display());
    }
    Ok(())
}

/// Starts (or finds running) the tests' cluster; its URL without a database
/// (`postgres://postgres@127.0.0.1:<port>`): each test makes a database of its own.
pub(crate) fn prepare(target: &Path) -> anyhow::Result<String> {
    crate::e2e::ensure_debian_packages(&["postgresql"])?;
    let bin = binaries()?;
    let dir = target.join("postgres");
    let data = dir.join("data");
    let port_file = dir.join("port");
    if !data.join("PG_VERSION").exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let status = Command::new("chown").arg("postgres:").arg(&dir).status()?;
        if !status.success() {
            bail!("cannot give {} to the postgres user", dir.display());
        }
        eprintln!("$ initdb {} (the tests' PostgreSQL)", data.display());
        let data = data.display().to_string();
        as_postgres(
            &bin.join("initdb"),
            &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
        )?;
    }
    let running = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join("pg_ctl"))
        .args(["status", "-D"])
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .status()?
        .success();
    let port = match std::fs::read_to_string(&port_file).ok().and_then(|p| p.trim().parse::<u16>().ok()) {
        Some(port) if running => port,
        _ => {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            std::fs::write(&port_file, port.to_string())?;
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400",
                dir.display()
            );
            eprintln!(
                "$ pg_ctl start (the tests' PostgreSQL on 127.0.0.1:{port}, log in {}/log)",
                dir.display()
            );
            let (data, log) = (data.display().to_string(), dir.join("log").display().to_string());
            as_postgres(&bin.join("pg_ctl"), &["-D", &data, "-l", &log, "-w", "-o", &options, "start"])?;
            port
        }
    };
    let url = format!("postgres://postgres@127.0.0.1:{port}");
    drop_test_databases(&url)?;
    Ok(url)
}

/// Drops what earlier runs' tests made (each makes databases named `zlh_test_*`).
fn drop_test_databases(url: &str) -> anyhow::Result<()> {
    let psql = |sql: &str| {
        Command::new("psql")
            .arg(format!("{url}/postgres"))
            .args(["-v", "ON_ERROR_STOP=1", "-Atqc", sql])
            .output()
    };
    let listed = psql("SELECT datname FROM pg_database WHERE datname LIKE 'zlh\\_test\\_%'")?;
    if !listed.status.success() {
        bail!("cannot list the tests' databases: {}", String::from_utf8_lossy(&listed.stderr));
    }
    for name in String::from_utf8_lossy(&listed.stdout).lines().filter(|n| !n.is_empty()) {
        let dropped = psql(&format!("DROP DATABASE IF EXISTS \"{name}\""))?;
        if !dropped.status.success() {
            bail!("cannot drop {name}: {}", String::from_utf8_lossy(&dropped.stderr));
        }
    }
    Ok(())
}
