//! The memory cgroup's OOM-kill counter, to tell a kernel OOM kill from any other SIGKILL, and
//! a container's memory and CPU use.
//!
//! cgroup v1 reports `oom_kill N` in `memory.oom_control`, cgroup v2 in `memory.events`.
//! Without a readable cgroup the agent simply cannot recognise kernel OOM kills (the JVM's own
//! `OutOfMemoryError` is still recognised from the output). Inside a container the cgroup the
//! host names is mounted as the root of the hierarchy, which is where the counter is then read.

use std::path::{Path, PathBuf};

/// The counter file of the memory cgroup that process `pid` belongs to.
pub(crate) fn oom_counter_for(pid: u32) -> Option<PathBuf> {
    let membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mut v2 = None;
    for line in membership.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let relative = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            // In a container the process's own cgroup is mounted at the controller's root, so
            // the host's path to it (`/docker/<id>`) is not there: the root's counter is ours.
            let root = Path::new("/sys/fs/cgroup/memory");
            let file = [root.join(relative), root.to_owned()]
                .into_iter()
                .map(|dir| dir.join("memory.oom_control"))
                .find(|file| file.exists());
            if file.is_some() {
                return file;
            }
        } else if controllers.is_empty() {
            v2 = [Path::new("/sys/fs/cgroup"), Path::new("/sys/fs/cgroup/unified")]
                .iter()
                .flat_map(|root| [root.join(relative), root.to_path_buf()])
                .map(|dir| dir.join("memory.events"))
                .find(|file| file.exists());
        }
    }
    v2
}

/// Reads the `oom_kill` count from a counter file.
pub(crate) fn read_oom_kills(file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| line.strip_prefix("oom_kill ")?.trim().parse().ok())
}

/// Memory in use (page cache that can be dropped excluded) and CPU seconds used by the
/// container the agent runs in: the root of the mounted hierarchy, which is the container's own
/// cgroup (cgroup v1 or v2).
pub(crate) fn container_usage() -> (Option<u64>, Option<f64>) {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let number = |text: Option<String>| text?.trim().parse::<u64>().ok();
    let stat_field = |text: Option<String>, name: &str| {
        text?.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<u64>().ok())
    };
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let memory = number(read("/sys/fs/cgroup/memory.current")).map(|current| {
            current
                .saturating_sub(stat_field(read("/sys/fs/cgroup/memory.stat"), "inactive_file").unwrap_or(0))
        });
        let cpu = stat_field(read("/sys/fs/cgroup/cpu.stat"), "usage_usec").map(|us| us as f64 / 1e6);
        return (memory, cpu);
    }
    let memory = number(read("/sys/fs/cgroup/memory/memory.usage_in_bytes")).map(|usage| {
        let stat = read("/sys/fs/cgroup/memory/memory.stat");
        usage.saturating_sub(stat_field(stat, "total_inactive_file").unwrap_or(0))
    });
    let cpu = ["/sys/fs/cgroup/cpuacct/cpuacct.usage", "/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage"]
        .into_iter()
        .find_map(|path| number(read(path)))
        .map(|ns| ns as f64 / 1e9);
    (memory, cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_is_parsed_from_either_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v1 = dir.path().join("memory.oom_control");
        std::fs::write(&v1, "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").expect("write");
        assert_eq!(read_oom_kills(&v1), Some(3));
        let v2 = dir.path().join("memory.events");
        std::fs::write(&v2, "low 0\nhigh 0\nmax 5\noom 2\noom_kill 2\noom_group_kill 0\n").expect("write");
        assert_eq!(read_oom_kills(&v2), Some(2));
    }

    #[test]
    fn this_process_has_a_readable_counter_when_cgroups_are_mounted() {
        if let Some(file) = oom_counter_for(std::process::id()) {
            assert!(read_oom_kills(&file).is_some(), "{}", file.display());
        }
    }
}
