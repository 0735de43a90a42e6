//! Backups and restores on a real agent: consistency of a running world, one at a time,
//! damaged archives, `kill -9` of the agent mid-backup and mid-restore, and a full disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use zlh_testkit::files::snapshot;
use zlh_testkit::{AgentSpec, TestAgent, eventually};

use crate::{SOON, zlh};

/// The Minecraft quiesce hooks, as the templates have them.
const QUIESCE: &str = "\n[game.quiesce]\nbefore = [\"save-off\", \"save-all flush\"]\n\
                       wait_for = \"Saved the game\"\nafter = [\"save-on\"]\ntimeout = \"10s\"\n";

/// Incompressible bytes, so archives are as large as the tree.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A server tree: `large` files of `large_size` random bytes and `small` small text files.
fn fill(dir: &Path, large: usize, large_size: usize, small: usize) {
    std::fs::create_dir_all(dir.join("data/small")).expect("mkdir");
    for n in 0..large {
        std::fs::write(dir.join(format!("data/large-{n}.bin")), noise(large_size, n as u64 + 7))
            .expect("large");
    }
    for n in 0..small {
        std::fs::write(dir.join(format!("data/small/{n}.txt")), format!("small file {n}\n")).expect("small");
    }
}

async fn backup(agent: &TestAgent) -> Value {
    let (code, job) = agent.post("/backups", None).await;
    assert_eq!(code, 202, "{job}");
    let job = agent.wait_for_job(&job).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let (_, list) = agent.get("/backups").await;
    list.as_array().and_then(|l| l.last()).cloned().expect("a backup")
}

/// The generation every world file carries (`generation=N` on its first line).
fn generations(world: &Path) -> BTreeMap<String, String> {
    let mut files = vec![world.join("level.dat")];
    files.extend(std::fs::read_dir(world.join("region")).expect("region").flatten().map(|e| e.path()));
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).expect("world file");
            let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
            (
                path.file_name().unwrap_or_default().to_string_lossy().into_owned(),
                String::from_utf8_lossy(first).into_owned(),
            )
        })
        .collect()
}

fn unpack(archive: &Path) -> tempfile::TempDir {
    let into = tempfile::tempdir().expect("tempdir");
    let status = std::process::Command::new("tar")
        .args(["--zstd", "-xf"])
        .arg(archive)
        .arg("-C")
        .arg(into.path())
        .status()
        .expect("tar");
    assert!(status.success(), "tar --zstd -xf {}", archive.display());
    into
}

fn level_generation(server: &Path) -> u64 {
    let text = std::fs::read_to_string(server.join("world/level.dat")).unwrap_or_default();
    text.trim().strip_prefix("generation=").and_then(|g| g.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn a_backup_of_a_running_world_is_consistent_and_saving_resumes() {
    // The world is rewritten file by file every 2 ms: a copy that ignores the game would mix
    // generations.
    let game = ["--world-files", "8", "--world-file-size", "131072", "--save-interval-ms", "2"];
    let spec = AgentSpec { extra_toml: QUIESCE.into(), ..AgentSpec::with_game_args(&game) };
    let agent = TestAgent::start(zlh(), &spec).await;
    agent.start_and_wait().await;
    for _ in 0..3 {
        let taken = backup(&agent).await;
        assert_eq!(taken["quiesced"], true, "{taken}");
        let unpacked =
            unpack(&agent.backups_dir().join(format!("{}.tar.zst", taken["id"].as_str().expect("id"))));
        let world = generations(&unpacked.path().join("world"));
        assert_eq!(world.len(), 9, "{world:?}");
        let first = world.values().next().cloned().unwrap_or_default();
        assert!(world.values().all(|g| *g == first), "a backup mixed generations: {world:?}");
        assert!(unpacked.path().join(".zlh-backup-manifest.json").is_file());
    }
    // `save-on` went out after each: the world keeps being saved.
    let now = level_generation(&agent.server_dir());
    eventually("the world is saved again", SOON, || async {
        (level_generation(&agent.server_dir()) > now + 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn only_one_backup_or_restore_runs_at_a_time() {
    // The game never confirms the save, so the first backup holds its turn for a second.
    let never = QUIESCE.replace("Saved the game", "this line never comes").replace("10s", "1s");
    let game = ["--world-files", "1", "--save-interval-ms", "20"];
    let spec = AgentSpec { extra_toml: never, ..AgentSpec::with_game_args(&game) };
    let agent = TestAgent::start(zlh(), &spec).await;
    agent.start_and_wait().await;
    let (code, first) = agent.post("/backups", None).await;
    assert_eq!(code, 202, "{first}");
    for (method, path) in [("POST", "/backups"), ("DELETE", "/backups/20260101000000-abcd")] {
        let response = agent.request(method.parse().expect("method"), path).send().await.expect("request");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("json");
        assert_eq!(
            (status, &body["error"]["code"]),
            (409, &json!("backup_in_progress")),
            "{method} {path}: {body}"
        );
    }
    let ended = agent.wait_for_job(&first).await;
    assert_eq!(ended["state"], "failed");
    assert!(ended["message"].as_str().unwrap_or_default().contains("did not confirm"), "{ended}");
    // Saving was turned back on, and nothing was kept.
    let now = level_generation(&agent.server_dir());
    eventually("the world is saved again", SOON, || async {
        (level_generation(&agent.server_dir()) > now).then_some(())
    })
    .await;
    assert_eq!(agent.get("/backups").await.1, json!([]));
    assert_eq!(std::fs::read_dir(agent.backups_dir()).expect("dir").count(), 0);
}

#[tokio::test]
async fn a_damaged_backup_is_refused_before_anything_is_touched() {
    let agent = TestAgent::start(zlh(), &AgentSpec::default()).await;
    fill(&agent.server_dir(), 2, 1 << 20, 20);
    let before = agent.start_and_wait().await;
    let taken = backup(&agent).await;
    let archive = agent.backups_dir().join(format!("{}.tar.zst", taken["id"].as_str().expect("id")));
    let mut bytes = std::fs::read(&archive).expect("archive");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&archive, bytes).expect("damage");
    std::fs::write(agent.server_dir().join("data/small/0.txt"), "changed since the backup").expect("change");
    let tree = snapshot(&agent.server_dir());

    let (code, job) =
        agent.post(&format!("/backups/restore?id={}", taken["id"].as_str().expect("id")), None).await;
    assert_eq!(code, 202, "{job}");
    let ended = agent.wait_for_job(&job).await;
    assert_eq!(ended["state"], "failed");
    assert!(ended["message"].as_str().unwrap_or_default().contains("damaged"), "{ended}");
    let after = agent.status().await;
    assert_eq!(
        (&after["state"], &after["pid"]),
        (&json!("running"), &before["pid"]),
        "the server was never stopped"
    );
    assert_eq!(snapshot(&agent.server_dir()), tree);
    let parent = agent.server_dir().parent().expect("parent").to_owned();
    assert_eq!(std::fs::read_dir(parent).expect("parent").count(), 1, "no staging directory");

    let (code, missing) = agent.post("/backups/restore?id=../../etc", None).await;
    assert_eq!((code, &missing["error"]["code"]), (404, &json!("not_found")));
}

#[tokio::test]
async fn kill_9_during_a_backup_leaves_no_half_backup_and_saving_resumes() {
    let game = ["--world-files", "2", "--save-interval-ms", "20"];
    let spec = AgentSpec { extra_toml: QUIESCE.into(), ..AgentSpec::with_game_args(&game) };
    let mut agent = TestAgent::prepare(zlh(), &spec);
    fill(&agent.server_dir(), 12, 4 << 20, 200);
    agent.launch().await;
    let before = agent.start_and_wait().await;
    let (code, job) = agent.post("/backups", None).await;
    assert_eq!(code, 202, "{job}");
    let id = job["id"].as_str().expect("id").to_owned();
    eventually("the backup is under way", SOON, || async {
        let (_, job) = agent.get(&format!("/jobs/{id}")).await;
        (job["done"].as_u64().unwrap_or(0) > 0 || job["state"] != "running").then_some(())
    })
    .await;
    agent.kill9();
    let left: Vec<String> = std::fs::read_dir(agent.backups_dir())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into())
        .collect();
    eprintln!("the killed backup left {left:?}");

    agent.launch().await;
    assert_eq!(agent.get("/backups").await.1, json!([]), "no half backup is listed");
    assert_eq!(std::fs::read_dir(agent.backups_dir()).expect("dir").count(), 0, "and none is kept");
    let status = agent.status().await;
    assert_eq!((&status["state"], &status["pid"]), (&json!("running"), &before["pid"]));
    let now = level_generation(&agent.server_dir());
    eventually("saving resumed", SOON, || async {
        (level_generation(&agent.server_dir()) > now).then_some(())
    })
    .await;
    let taken = backup(&agent).await;
    assert_eq!(taken["files"], 12 + 200 + 3, "{taken}");
}

/// Brings the tree to "state B": one file changed, one removed, one added (idempotent).
fn change(server: &Path) {
    std::fs::write(server.join("data/small/1.txt"), "state B\n").expect("change");
    let _ = std::fs::remove_file(server.join("data/small/2.txt"));
    std::fs::write(server.join("data/added.txt"), "added in state B\n").expect("add");
}

fn journal(agent: &TestAgent) -> PathBuf {
    agent.state_dir().join("restore.json")
}

#[tokio::test]
async fn kill_9_at_any_moment_of_a_restore_leaves_the_old_or_the_new_tree() {
    let mut agent = TestAgent::prepare(zlh(), &AgentSpec::default());
    let server = agent.server_dir();
    fill(&server, 8, 4 << 20, 300);
    agent.launch().await;
    agent.start_and_wait().await;
    let taken = backup(&agent).await;
    let restored = snapshot(&server);
    change(&server);
    let unrestored = snapshot(&server);
    let id = taken["id"].as_str().expect("id").to_owned();
    let staging = server.with_extension("zlh-restore-new");

    // Where to kill: once the journal exists (the server is being stopped or unpacked), once
    // staging holds files, once the job is done; and at once.
    let points = ["at once", "journal written", "unpacking", "done"];
    let mut outcomes = Vec::new();
    for point in points {
        change(&server);
        assert_eq!(snapshot(&server), unrestored);
        let (code, job) = agent.post(&format!("/backups/restore?id={id}"), None).await;
        assert_eq!(code, 202, "{job}");
        eventually(point, Duration::from_secs(30), || async {
            let reached = match point {
                "at once" => true,
                "journal written" => journal(&agent).exists(),
                "unpacking" => std::fs::read_dir(&staging).map(|d| d.count() > 0).unwrap_or(false),
                _ => {
                    agent.get(&format!("/jobs/{}", job["id"].as_str().unwrap_or_default())).await.1["state"]
                        != "running"
                }
            };
            reached.then_some(())
        })
        .await;
        agent.kill9();
        let interrupted = journal(&agent).exists();

        agent.launch().await;
        agent.wait_for_state("running", Duration::from_secs(20)).await;
        let tree = snapshot(&server);
        let outcome = if tree == restored {
            "restored"
        } else if tree == unrestored {
            "untouched"
        } else {
            panic!("killed at {point:?}: the tree is a mix of old and new");
        };
        assert!(
            !staging.exists() && !server.with_extension("zlh-restore-old").exists(),
            "{point}: leftovers"
        );
        // The old tree is removed in the background, by the restore or by the next start.
        let parent = server.parent().expect("parent").to_owned();
        eventually("the old tree is removed", Duration::from_secs(30), || {
            let trash = std::fs::read_dir(&parent)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().contains(".zlh-trash-"));
            async move { (!trash).then_some(()) }
        })
        .await;
        assert!(!journal(&agent).exists(), "{point}: the journal was finished");
        if matches!(point, "journal written" | "unpacking") {
            assert!(interrupted, "{point}: the kill landed mid-restore");
        }
        outcomes.push(format!("{point}: {outcome}"));
    }
    eprintln!("{outcomes:?}");
    assert_eq!(outcomes.last().map(String::as_str), Some("done: restored"));
}

/// A tmpfs of `size` mounted at `at` for a test; unmounted (and the agent's root removed) on
/// drop, after the agent is gone.
struct Tmpfs(Vec<PathBuf>, PathBuf);

impl Tmpfs {
    fn mount(root: &Path, mounts: &[(&Path, &str)]) -> Tmpfs {
        let mut mounted = Vec::new();
        for (at, size) in mounts {
            std::fs::create_dir_all(at).expect("mount point");
            let status = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(at)
                .status()
                .expect("mount");
            assert!(status.success(), "mount -t tmpfs at {} (the test needs root)", at.display());
            mounted.push(at.to_path_buf());
        }
        Tmpfs(mounted, root.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        for at in &self.0 {
            let _ = std::process::Command::new("umount").arg("-l").arg(at).status();
        }
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

#[tokio::test]
async fn a_full_disk_fails_cleanly_and_loses_nothing() {
    let spec =
        AgentSpec { extra_toml: "\n[files]\nmax_upload_bytes = 67108864\n".into(), ..AgentSpec::default() };
    let mut agent = TestAgent::prepare(zlh(), &spec);
    let server = agent.server_dir();
    let root = agent.root.path().to_owned();
    let _disks =
        Tmpfs::mount(&root, &[(server.parent().expect("parent"), "24m"), (&agent.backups_dir(), "6m")]);
    fill(&server, 3, 2 << 20, 10);
    agent.launch().await;
    agent.start_and_wait().await;

    // A backup larger than its disk: the job fails, nothing is kept, the server runs on.
    let (code, job) = agent.post("/backups", None).await;
    assert_eq!(code, 202);
    let failed = agent.wait_for_job(&job).await;
    assert_eq!(failed["state"], "failed");
    assert!(failed["message"].as_str().unwrap_or_default().contains("disk is full"), "{failed}");
    assert_eq!(std::fs::read_dir(agent.backups_dir()).expect("dir").count(), 0);
    assert_eq!(agent.status().await["state"], "running");

    // An upload larger than the free space: 507, the old file intact, no temporary left.
    std::fs::remove_file(server.join("data/large-2.bin")).expect("smaller tree");
    let tree = snapshot(&server);
    let response = agent
        .request(reqwest::Method::PUT, "/files/content?path=data/large-0.bin")
        .body(noise(30 << 20, 99))
        .send()
        .await
        .expect("upload");
    // The client, still sending when the disk filled, reads the answer (the agent reads on and
    // throws the rest away) rather than a broken pipe.
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("json");
    assert_eq!((status, &body["error"]["code"]), (507, &json!("insufficient_storage")), "{body}");
    assert_eq!(snapshot(&server), tree);

    // A restore that cannot unpack for lack of space: the tree as it was, the server running.
    let taken = backup(&agent).await;
    std::fs::write(server.join("filler.bin"), vec![0u8; 17 << 20]).expect("filler");
    std::fs::write(server.join("data/small/0.txt"), "changed").expect("change");
    let tree = snapshot(&server);
    let (code, job) =
        agent.post(&format!("/backups/restore?id={}", taken["id"].as_str().expect("id")), None).await;
    assert_eq!(code, 202);
    let failed = agent.wait_for_job(&job).await;
    assert_eq!(failed["state"], "failed");
    assert!(failed["message"].as_str().unwrap_or_default().contains("disk is full"), "{failed}");
    assert_eq!(snapshot(&server), tree);
    assert!(!server.with_extension("zlh-restore-new").exists());
    agent.wait_for_state("running", SOON).await;
    drop(agent);
}

#[tokio::test]
async fn a_measured_disk_limit_refuses_the_agents_own_writes_past_it() {
    // Where the kernel cannot hold a quota, the agent measures and keeps it for what it writes.
    let spec = AgentSpec {
        extra_toml: "\n[disk]\nlimit_bytes = 8388608\nenforced_by = \"measured\"\n".into(),
        ..AgentSpec::default()
    };
    let agent = TestAgent::start(zlh(), &spec).await;
    let server = agent.server_dir();
    let status = agent.status().await;
    assert_eq!(status["usage"]["disk"]["enforcedBy"], "measured", "{status}");
    assert_eq!(status["usage"]["disk"]["limitBytes"], 8 << 20, "{status}");
    assert_eq!(status["usage"]["memoryBytes"], Value::Null, "not in a container: no cgroup of its own");

    let upload = |path: &str, bytes: usize| {
        agent
            .request(reqwest::Method::PUT, &format!("/files/content?path={path}"))
            .body(noise(bytes, 7))
            .send()
    };
    let pack = zlh_testkit::artifacts::tar_gz(&[("big.bin", &noise(3 << 19, 9), 0o644)]);
    let uploaded = agent.request(reqwest::Method::PUT, "/files/content?path=pack.tar.gz").body(pack).send();
    assert_eq!(uploaded.await.expect("upload").status().as_u16(), 201);
    assert_eq!(upload("fits.bin", 5 << 20).await.expect("upload").status().as_u16(), 201);
    // An archive that would unpack past the limit is refused before anything is unpacked.
    let (code, job) =
        agent.post("/files/extract", Some(json!({"path": "pack.tar.gz", "to": "unpacked"}))).await;
    assert_eq!(code, 202, "{job}");
    let ended = agent.wait_for_job(&job).await;
    assert_eq!(ended["state"], "failed", "{ended}");
    assert!(ended["message"].as_str().unwrap_or_default().contains("more than"), "{ended}");
    let names: Vec<String> = std::fs::read_dir(&server)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n == "unpacked" || n.starts_with(".zlh-extract")), "{names:?}");
    let deleted =
        agent.request(reqwest::Method::DELETE, "/files?path=pack.tar.gz").send().await.expect("delete");
    assert_eq!(deleted.status().as_u16(), 204);
    // Past the limit: refused while it is written, with the usage; nothing of it kept.
    let response = upload("too-much.bin", 5 << 20).await.expect("upload");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("json");
    assert_eq!((status, &body["error"]["code"]), (507, &json!("quota_exceeded")), "{body}");
    let used = body["error"]["disk"]["usedBytes"].as_u64().unwrap_or(0);
    assert!((5 << 20..8 << 20).contains(&used), "{body}");
    assert!(!server.join("too-much.bin").exists());

    // Full: a backup is refused before it starts; after a delete there is room again.
    assert_eq!(upload("rest.bin", (3 << 20) - (64 << 10)).await.expect("upload").status().as_u16(), 201);
    let (code, refused) = agent.post("/backups", None).await;
    assert_eq!((code, &refused["error"]["code"]), (507, &json!("quota_exceeded")), "{refused}");
    let deleted =
        agent.request(reqwest::Method::DELETE, "/files?path=fits.bin").send().await.expect("delete");
    assert_eq!(deleted.status().as_u16(), 204);
    let (code, job) = agent.post("/backups", None).await;
    assert_eq!(code, 202, "{job}");
    assert_eq!(agent.wait_for_job(&job).await["state"], "succeeded");
}

/// Map-tile plugins make trees of hundreds of thousands of files; the manifest of such a
/// backup (tens of MB) must not count against the restore's limits.
#[tokio::test]
async fn a_backup_of_half_a_million_files_restores() {
    const DIRS: usize = 500;
    const PER_DIR: usize = 1000;
    // In memory: this disk takes a minute to create half a million files, twice.
    let spec = AgentSpec { root_in: Some("/dev/shm".into()), ..AgentSpec::default() };
    let agent = TestAgent::start(zlh(), &spec).await;
    let tiles = agent.server_dir().join("plugins/dynmap/web/tiles");
    let made = tiles.clone();
    tokio::task::spawn_blocking(move || {
        for d in 0..DIRS {
            let dir = made.join(format!("world/{d:03}"));
            std::fs::create_dir_all(&dir).expect("mkdir");
            for f in 0..PER_DIR {
                std::fs::write(dir.join(format!("{d}_{f}.png")), format!("{d}:{f}")).expect("tile");
            }
        }
    })
    .await
    .expect("tiles");
    let long = Duration::from_secs(600);
    let run = async |path: &str| {
        let (code, job) = agent.post(path, None).await;
        assert_eq!(code, 202, "{job}");
        let id = job["id"].as_str().expect("job id").to_owned();
        eventually(&format!("{path} ends"), long, || async {
            let (_, job) = agent.get(&format!("/jobs/{id}")).await;
            (job["state"] != "running").then_some(job)
        })
        .await
    };
    let made = run("/backups").await;
    assert_eq!(made["state"], "succeeded", "{made}");
    let (_, list) = agent.get("/backups").await;
    let taken = list.as_array().and_then(|l| l.last()).cloned().expect("a backup");
    assert!(taken["files"].as_u64().expect("files") >= (DIRS * PER_DIR) as u64, "{taken}");

    std::fs::write(tiles.join("world/007/7_7.png"), "changed").expect("change");
    std::fs::remove_file(tiles.join("world/499/499_999.png")).expect("remove");
    let restored = run(&format!("/backups/restore?id={}", taken["id"].as_str().expect("id"))).await;
    assert_eq!(restored["state"], "succeeded", "every backup that reports success restores: {restored}");
    assert_eq!(std::fs::read_to_string(tiles.join("world/007/7_7.png")).expect("tile"), "7:7");
    assert_eq!(std::fs::read_to_string(tiles.join("world/499/499_999.png")).expect("tile"), "499:999");
    let count = std::fs::read_dir(tiles.join("world"))
        .expect("world")
        .flatten()
        .map(|d| std::fs::read_dir(d.path()).expect("dir").count())
        .sum::<usize>();
    assert_eq!(count, DIRS * PER_DIR);
}

/// Bytes the kernel holds written but not yet on disk (`Dirty` in /proc/meminfo).
fn dirty_bytes() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
    let line = meminfo.lines().find(|l| l.starts_with("Dirty:")).expect("Dirty");
    line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).expect("kB") * 1024
}

/// A restore makes its own files durable, not everything on the filesystem: a server beside
/// it (or any program) keeps its unflushed writes to itself. (One at a time with the
/// container tests, whose engine flushes whole filesystems when it unmounts.)
#[tokio::test]
async fn a_restore_flushes_only_its_own_files() {
    let agent = TestAgent::start(zlh(), &AgentSpec::default()).await;
    fill(&agent.server_dir(), 1, 1 << 20, 10);
    let taken = backup(&agent).await;
    // Someone else's writes on the same filesystem, not on disk yet.
    let neighbour = tempfile::tempdir().expect("tempdir");
    std::fs::write(neighbour.path().join("world.bin"), noise(256 << 20, 3)).expect("write");
    let before = dirty_bytes();
    assert!(before >= 200 << 20, "the neighbour's writes are in memory: {before}");
    let (code, job) =
        agent.post(&format!("/backups/restore?id={}", taken["id"].as_str().expect("id")), None).await;
    assert_eq!(code, 202, "{job}");
    assert_eq!(agent.wait_for_job(&job).await["state"], "succeeded");
    let after = dirty_bytes();
    assert!(after >= 200 << 20, "the restore flushed the neighbour's writes too: {before} -> {after} bytes");
}
