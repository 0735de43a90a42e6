//! Game port ranges for control planes under test. Tests run in parallel processes and their
//! sample games really listen, so each control plane gets a range no other running test has:
//! slots below the kernel's ephemeral range, claimed with a file created exclusively (and
//! reclaimed when the process that claimed it is gone).

use std::io::Write;
use std::path::PathBuf;

/// Ports per slot.
const SLOT_SIZE: u16 = 50;
/// The first port of the first slot; slots end below 32768, where ephemeral ports begin.
const FIRST: u16 = 10_000;
const SLOTS: u16 = (32_000 - FIRST) / SLOT_SIZE;

/// A claimed range of ports, released when dropped.
#[derive(Debug)]
pub struct PortRange {
    /// Its first port.
    pub first: u16,
    /// Its last port.
    pub last: u16,
    claim: PathBuf,
}

impl PortRange {
    /// Claims a free range.
    pub fn claim() -> PortRange {
        let dir = std::env::temp_dir().join("zlh-test-ports");
        std::fs::create_dir_all(&dir).expect("port slot directory");
        let start = (std::process::id() as u16).wrapping_mul(7919) % SLOTS;
        for offset in 0..SLOTS {
            let slot = (start + offset) % SLOTS;
            let claim = dir.join(format!("slot-{slot}"));
            if let Ok(owner) = std::fs::read_to_string(&claim)
                && !std::path::Path::new(&format!("/proc/{}", owner.trim())).exists()
            {
                let _ = std::fs::remove_file(&claim);
            }
            let Ok(mut file) = std::fs::OpenOptions::new().write(true).create_new(true).open(&claim) else {
                continue;
            };
            file.write_all(std::process::id().to_string().as_bytes()).expect("write port claim");
            let first = FIRST + slot * SLOT_SIZE;
            return PortRange { first, last: first + SLOT_SIZE - 1, claim };
        }
        panic!("every test port range is claimed");
    }
}

impl Drop for PortRange {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.claim);
    }
}
