//! `cargo xtask bench [agent|console|poller|replicas|ide|backup|docker]`: measurements against real processes, printed as tables.
//! Release binaries; figures depend on the machine, so compare rows of one run.

mod agent;
mod backup;
mod console;
mod docker;
mod ide;
mod poller;
mod replicas;

use std::path::PathBuf;

use crate::{run_command, workspace};

pub(crate) use poller::simulate as simulate_agents;

pub(crate) fn run(names: Vec<String>) -> anyhow::Result<()> {
    run_command("cargo", &["build", "--release", "--quiet", "-p", "zlh"])?;
    let zlh: PathBuf = workspace().join("target/release/zlh");
    let wanted = |name: &str| names.is_empty() || names.iter().any(|n| n == name);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        if wanted("agent") {
            agent::run(&zlh).await?;
        }
        if wanted("console") {
            console::run(&zlh).await?;
        }
        if wanted("poller") {
            poller::run(&zlh).await?;
        }
        if wanted("replicas") {
            replicas::run(&zlh).await?;
        }
        if wanted("ide") {
            ide::run(&zlh).await?;
        }
        if wanted("backup") {
            backup::run(&zlh).await?;
        }
        if wanted("docker") {
            docker::run(&zlh).await?;
        }
        anyhow::Ok(())
    })
}

/// Prints a table in Markdown, so it can be pasted into notes as is.
fn print_table(title: &str, headers: &[&str], rows: &[Vec<String>]) {
    println!("\n### {title}\n");
    println!("| {} |", headers.join(" | "));
    println!("|{}|", headers.iter().map(|_| "---").collect::<Vec<_>>().join("|"));
    for row in rows {
        println!("| {} |", row.join(" | "));
    }
}

/// CPU time (user and system) a process has used so far, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    stat_cpu_seconds(&format!("/proc/{pid}/stat"), (11, 12))
}

/// CPU time (user and system) this process's children used, those it waited for, in seconds.
fn waited_children_cpu_seconds() -> f64 {
    stat_cpu_seconds("/proc/self/stat", (13, 14))
}

/// The sum of two tick fields of a `stat` file (counted after the command's name), in seconds.
fn stat_cpu_seconds(path: &str, (user, system): (usize, usize)) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(") ").map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(user) + ticks(system)) / rustix::param::clock_ticks_per_second() as f64
}

/// A field of `/proc/<pid>/status` in kB (VmRSS, VmHWM, ...), as MiB.
fn proc_status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)?.trim_start_matches(':').trim().strip_suffix(" kB")?.parse::<f64>().ok()
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The median and the 90th percentile of some durations, in milliseconds.
fn median_p90(mut values: Vec<f64>) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9))
}
