//! Small readers of `/proc`: process identity, resource use, and listening sockets.

use zlh_proto::agent::ResourceUse;

/// Fields of `/proc/<pid>/stat` after the command name (which may contain spaces).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    Some(after_name.split_whitespace().map(str::to_owned).collect())
}

/// The kernel's start time of a process (clock ticks after boot): with the pid, it identifies a
/// process even after its pid is reused.
pub(crate) fn start_ticks(pid: u32) -> Option<u64> {
    // Field 22 of stat; the fields after the name start at field 3.
    stat_fields(pid)?.get(22 - 3)?.parse().ok()
}

/// Whether `pid` is still the process that started at `ticks`.
pub(crate) fn is_same_process(pid: u32, ticks: Option<u64>) -> bool {
    match (start_ticks(pid), ticks) {
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Resident memory and CPU time of a process.
pub(crate) fn resource_use(pid: u32) -> Option<ResourceUse> {
    let fields = stat_fields(pid)?;
    let ticks: u64 = fields.get(14 - 3)?.parse::<u64>().ok()? + fields.get(15 - 3)?.parse::<u64>().ok()?;
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(ResourceUse {
        memory_bytes: resident_pages * rustix::param::page_size() as u64,
        cpu_seconds: ticks as f64 / rustix::param::clock_ticks_per_second() as f64,
    })
}

/// Bytes received and sent on every network interface but loopback, in this network
/// namespace (a container's own).
pub(crate) fn network_totals() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/net/dev").ok()?;
    let mut totals = (0, 0);
    // Two header lines, then `name: rx_bytes packets ... (8 receive fields) tx_bytes ...`.
    for line in text.lines().skip(2) {
        let (name, counters) = line.split_once(':')?;
        if name.trim() == "lo" {
            continue;
        }
        let counters: Vec<u64> = counters.split_whitespace().filter_map(|c| c.parse().ok()).collect();
        totals.0 += counters.first()?;
        totals.1 += counters.get(8)?;
    }
    Some(totals)
}

/// Whether something in this network namespace listens on `port`: a TCP socket in `LISTEN`,
/// or for UDP any socket bound to it (from `/proc/net/{tcp,udp}{,6}`); for `both`, either.
pub(crate) fn listening(port: u16, protocol: zlh_proto::api::PortProtocol) -> bool {
    use zlh_proto::api::PortProtocol;
    // The state column: 0A is LISTEN for TCP; 07 (unconnected) is how a bound UDP socket shows.
    let bound = |table: &str, state: &str| {
        std::fs::read_to_string(format!("/proc/net/{table}")).is_ok_and(|text| {
            text.lines().skip(1).any(|line| {
                let mut fields = line.split_whitespace().skip(1);
                let local = fields.next().unwrap_or_default();
                let port_hex = local.rsplit(':').next().unwrap_or_default();
                u16::from_str_radix(port_hex, 16) == Ok(port) && fields.nth(1) == Some(state)
            })
        })
    };
    let tcp = || bound("tcp", "0A") || bound("tcp6", "0A");
    let udp = || bound("udp", "07") || bound("udp6", "07");
    match protocol {
        PortProtocol::Tcp => tcp(),
        PortProtocol::Udp => udp(),
        // A port for both is published for both; the game may use either.
        PortProtocol::Both => tcp() || udp(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        let ticks = start_ticks(pid).expect("start ticks");
        assert!(is_same_process(pid, Some(ticks)));
        assert!(!is_same_process(pid, Some(ticks + 1)));
        assert!(resource_use(pid).expect("usage").memory_bytes > 0);
    }
}
