//! Backup create and restore of a 1 GiB tree (many small files and a few large ones) through
//! a real agent, against `tar --zstd` on the same tree in the same run: wall time, throughput
//! and peak memory. The agent also hashes every file (create) and checks every file against
//! the manifest and the archive against its checksum (restore); tar does neither.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use zlh_testkit::{AgentSpec, TestAgent};

use crate::run_command;

use super::{cpu_seconds, print_table, proc_status_mib};

const SMALL_FILES: usize = 40_000;
const LARGE_FILES: usize = 4;
const LARGE_SIZE: usize = 160 << 20;
/// Rounds of each measurement; the best is reported (the page cache is warm for all).
const ROUNDS: usize = 3;

/// Data that compresses about 2:1, like world files: blocks of noise and of repeated text.
struct Filler(u64);

impl Filler {
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 4096);
        while out.len() < len {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            if (self.0 >> 40).is_multiple_of(2) {
                let mut state = self.0;
                out.extend((0..4096).map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                }));
                self.0 = state;
            } else {
                out.extend(b"minecraft:stone minecraft:dirt ".iter().cycle().take(4096));
            }
        }
        out.truncate(len);
        out
    }
}

/// Writes the tree; returns its bytes.
fn make_tree(root: &Path) -> anyhow::Result<u64> {
    let mut filler = Filler(0x9e37_79b9_7f4a_7c15);
    let mut total = 0u64;
    for n in 0..SMALL_FILES {
        let dir = root.join(format!("world/region-{:03}", n % 200));
        if n < 200 {
            std::fs::create_dir_all(&dir)?;
        }
        let size = 2048 + (n * 7919) % 14336;
        std::fs::write(dir.join(format!("chunk-{n}.dat")), filler.bytes(size))?;
        total += size as u64;
    }
    std::fs::create_dir_all(root.join("large"))?;
    for n in 0..LARGE_FILES {
        std::fs::write(root.join(format!("large/{n}.bin")), filler.bytes(LARGE_SIZE))?;
        total += LARGE_SIZE as u64;
    }
    Ok(total)
}

/// Resets a process's peak RSS (VmHWM), so the next reading is the peak of what follows.
fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// Runs a command to its end; returns its wall time and the largest sum of the peak RSS of it
/// and its children seen while it ran (tar runs zstd as a child).
fn run_measured(command: &mut Command) -> anyhow::Result<(Duration, f64)> {
    let began = Instant::now();
    let mut child = command.spawn()?;
    let mut peaks = std::collections::HashMap::<u32, f64>::new();
    loop {
        if let Some(status) = child.try_wait()? {
            anyhow::ensure!(status.success(), "{command:?} failed: {status}");
            return Ok((began.elapsed(), peaks.values().sum()));
        }
        let children =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id())).unwrap_or_default();
        for pid in
            std::iter::once(child.id()).chain(children.split_whitespace().filter_map(|p| p.parse().ok()))
        {
            let peak = proc_status_mib(pid, "VmHWM");
            if peak.is_finite() {
                let seen = peaks.entry(pid).or_insert(0.0);
                *seen = seen.max(peak);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts a job on the agent and waits for it; returns its wall time and the agent's peak RSS.
async fn agent_job(agent: &TestAgent, path: &str) -> anyhow::Result<(Duration, f64, Value)> {
    reset_peak(agent.pid());
    let cpu_before = cpu_seconds(agent.pid());
    let faults_before = minor_faults(agent.pid());
    let began = Instant::now();
    let (code, job) = agent.post(path, None).await;
    anyhow::ensure!(code == 202, "{path}: {code} {job}");
    let id = job["id"].as_str().unwrap_or_default().to_owned();
    loop {
        let (_, job) = agent.get(&format!("/jobs/{id}")).await;
        if job["state"] != "running" {
            anyhow::ensure!(job["state"] == "succeeded", "{path}: {job}");
            eprintln!(
                "{path}: {:.2} s wall, {:.2} s of CPU, {} page faults",
                began.elapsed().as_secs_f64(),
                cpu_seconds(agent.pid()) - cpu_before,
                minor_faults(agent.pid()) - faults_before
            );
            return Ok((began.elapsed(), proc_status_mib(agent.pid(), "VmHWM"), job));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Writes out what earlier steps left in the page cache, so that its writeback does not fall
/// into the next measurement.
fn settle() -> anyhow::Result<()> {
    anyhow::ensure!(Command::new("sync").status()?.success(), "sync failed");
    Ok(())
}

/// The page faults a process has taken so far that read nothing from disk (a page of memory
/// touched for the first time, mostly).
fn minor_faults(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    after_name.split_whitespace().nth(7).and_then(|f| f.parse().ok()).unwrap_or(0)
}

/// Waits until the agent has removed the trees its restores replaced (beside the server's).
async fn wait_for_removal(server: &Path) -> anyhow::Result<()> {
    let (parent, name) = (server.parent().unwrap_or(server), server.file_name().unwrap_or_default());
    let trash = format!("{}.zlh-trash-", name.to_string_lossy());
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let left = std::fs::read_dir(parent)?
            .flatten()
            .any(|entry| entry.file_name().to_string_lossy().starts_with(&trash));
        if !left {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "the agent's old tree was not removed in 5 minutes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh ext4 filesystem for the bench's trees and archives, made as the driver makes a
/// server's disk (an image through a loop device, with its journal), so both tools meet the
/// filesystem servers live on, and nothing deleted before the bench. This machine's own
/// (ext4 without a journal) makes a file created after a mass deletion cost several times
/// more, whichever tool creates it: the comparison would be decided by what came before.
/// The image is written whole first (a server's is sparse): a write to a part of it never
/// written before costs the machine's filesystem an allocation, and whichever tool first
/// wrote past the space the other had freed took twice as long.
struct Disk {
    dir: tempfile::TempDir,
}

/// The disk's size: the tree, its backups, tar's archive and one extract, a restore's staging
/// beside the tree it replaces, and room to spare.
const DISK_MIB: usize = 8 << 10;

impl Disk {
    fn mount() -> anyhow::Result<Disk> {
        let dir = tempfile::Builder::new().prefix("zlh-bench-disk-").tempdir()?;
        let (image, point) = (dir.path().join("disk.ext4"), dir.path().join("mounted"));
        {
            use std::io::Write;
            let mut file = std::fs::File::create_new(&image)?;
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..DISK_MIB {
                file.write_all(&zeros)?;
            }
            file.sync_all()?;
        }
        std::fs::create_dir(&point)?;
        let (image, point) = (image.to_string_lossy(), point.to_string_lossy());
        // `nodiscard`: mkfs would punch the image's blocks out again.
        let options = "lazy_itable_init=1,lazy_journal_init=1,nodiscard";
        run_command("mkfs.ext4", &["-q", "-F", "-m", "0", "-E", options, &image])?;
        run_command("mount", &["-t", "ext4", "-o", "loop,noatime,noinit_itable", &image, &point])?;
        Ok(Disk { dir })
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("mounted")
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        let _ = run_command("umount", &[&self.path().to_string_lossy()]);
    }
}

fn best(runs: &[(Duration, f64)]) -> (Duration, f64) {
    let time = runs.iter().map(|r| r.0).min().unwrap_or_default();
    let memory = runs.iter().map(|r| r.1).fold(0.0, f64::max);
    (time, memory)
}

pub(super) async fn run(zlh: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        rustix::process::geteuid().is_root(),
        "the backup bench mounts a filesystem of its own: run it as root"
    );
    let disk = Disk::mount()?;
    let spec = AgentSpec { root_in: Some(disk.path()), ..AgentSpec::default() };
    let mut agent = TestAgent::prepare(zlh, &spec);
    let server = agent.server_dir();
    eprintln!("writing a 1 GiB tree ...");
    let bytes = make_tree(&server)?;
    let files = SMALL_FILES + LARGE_FILES;
    agent.launch().await;
    let scratch = tempfile::Builder::new().prefix("zlh-bench-backup-").tempdir_in(disk.path())?;
    let tar_archive = scratch.path().join("tree.tar.zst");
    let tar_create = |threads: Option<&str>| {
        let mut command = Command::new("tar");
        match threads {
            Some(zstd) => command.args(["-I", zstd]),
            None => command.arg("--zstd"),
        };
        command.arg("-cf").arg(&tar_archive).arg("-C").arg(&server).arg(".");
        settle()?;
        run_measured(&mut command)
    };

    let (mut zlh_create, mut tar_default, mut tar_t2, mut tar_fastest, mut syncs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut last_backup, mut tar_default_size) = (Value::Null, 0);
    for _ in 0..ROUNDS {
        tar_default.push(tar_create(None)?);
        tar_default_size = std::fs::metadata(&tar_archive)?.len();
        syncs.push(run_measured(&mut Command::new("sync"))?.0);
        tar_t2.push(tar_create(Some("zstd -T2"))?);
        tar_fastest.push(tar_create(Some("zstd -1"))?);
        settle()?;
        let (time, memory, _) = agent_job(&agent, "/backups").await?;
        zlh_create.push((time, memory));
        let (_, list) = agent.get("/backups").await;
        last_backup = list.as_array().and_then(|l| l.last()).cloned().unwrap_or_default();
    }
    // The archive both restores start from is at the agent's level.
    let tar_size = std::fs::metadata(&tar_archive)?.len();

    // Restores alternate, the first of a pair swapping each round. Nothing is deleted while
    // either runs: tar extracts into a new directory each time, and the agent's removal of the
    // tree it replaced (in the background) is waited for.
    let id = last_backup["id"].as_str().unwrap_or_default().to_owned();
    let (mut tar_extract, mut zlh_restore) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        for tar_now in [round % 2 == 0, round % 2 == 1] {
            settle()?;
            if tar_now {
                let into = scratch.path().join(format!("extract-{round}"));
                std::fs::create_dir_all(&into)?;
                let (time, memory) = run_measured(
                    Command::new("tar").arg("--zstd").arg("-xf").arg(&tar_archive).arg("-C").arg(&into),
                )?;
                let (sync_time, _) = run_measured(&mut Command::new("sync"))?;
                tar_extract.push((time + sync_time, memory));
                // As the agent removes the tree a restore replaced.
                std::fs::remove_dir_all(&into)?;
            } else {
                let (time, memory, _) = agent_job(&agent, &format!("/backups/restore?id={id}")).await?;
                zlh_restore.push((time, memory));
                wait_for_removal(&server).await?;
            }
        }
        let (tar, zlh) = (tar_extract[round].0.as_secs_f64(), zlh_restore[round].0.as_secs_f64());
        eprintln!("restore round {round}: tar -x + sync {tar:.2} s, zlh {zlh:.2} s ({:.2}×)", tar / zlh);
    }
    // The same agent told what the driver tells it of such a disk: the filesystem is the
    // server's alone, so one `syncfs` makes a restored tree durable instead of an fsync a file.
    agent.signal_and_wait(rustix::process::Signal::TERM, Duration::from_secs(30)).await;
    let config = agent.root.path().join("agent.toml");
    let own_disk = "\n[disk]\nlimit_bytes = 17179869184\nenforced_by = \"kernel\"\nown_filesystem = true\n";
    std::fs::write(&config, std::fs::read_to_string(&config)? + own_disk)?;
    agent.launch().await;
    let mut zlh_restore_own = Vec::new();
    for _ in 0..ROUNDS {
        settle()?;
        let (time, memory, _) = agent_job(&agent, &format!("/backups/restore?id={id}")).await?;
        zlh_restore_own.push((time, memory));
        wait_for_removal(&server).await?;
    }
    for line in agent.logs().iter().filter(|l| l.contains("_ms\"")) {
        eprintln!("{line}");
    }

    let mib = bytes as f64 / (1 << 20) as f64;
    let row = |what: &str, (time, memory): (Duration, f64), reference: Duration| {
        vec![
            what.to_owned(),
            format!("{:.2} s", time.as_secs_f64()),
            format!("{:.0} MiB/s", mib / time.as_secs_f64()),
            format!("{:.2}×", reference.as_secs_f64() / time.as_secs_f64()),
            format!("{memory:.0} MiB"),
        ]
    };
    let tar_create_best = best(&tar_default);
    let tar_extract_best = best(&tar_extract);
    print_table(
        &format!(
            "Backups of a {:.2} GiB tree ({files} files; archives: zlh {:.1} MiB, tar --zstd {:.1} MiB, tar at zstd -1 {:.1} MiB); creates and restores best of {ROUNDS}",
            mib / 1024.0,
            last_backup["sizeBytes"].as_f64().unwrap_or(0.0) / (1 << 20) as f64,
            tar_default_size as f64 / (1 << 20) as f64,
            tar_size as f64 / (1 << 20) as f64
        ),
        &["operation", "wall time", "throughput", "speed vs tar --zstd", "peak memory (RSS)"],
        &[
            row("create: tar --zstd (zstd -3, 1 thread)", tar_create_best, tar_create_best.0),
            row(
                "create: tar --zstd, then sync",
                (tar_create_best.0 + syncs.iter().min().copied().unwrap_or_default(), tar_create_best.1),
                tar_create_best.0,
            ),
            row("create: tar -I 'zstd -T2'", best(&tar_t2), tar_create_best.0),
            row("create: tar -I 'zstd -1' (the agent's level)", best(&tar_fastest), tar_create_best.0),
            row(
                "create: zlh agent (zstd -1 on a worker, SHA-256 of every file and the archive, fsync)",
                best(&zlh_create),
                tar_create_best.0,
            ),
            row("restore: tar --zstd -x into an empty dir, then sync", tar_extract_best, tar_extract_best.0),
            row(
                "restore: zlh agent (checks every file + archive, staging, fsync of each, swap)",
                best(&zlh_restore),
                tar_extract_best.0,
            ),
            row(
                "restore: the same, told the filesystem is the server's own (one syncfs)",
                best(&zlh_restore_own),
                tar_extract_best.0,
            ),
        ],
    );
    Ok(())
}
