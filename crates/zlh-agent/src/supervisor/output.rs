//! The pump from a holder connection into the agent: output into the console, the ready
//! pattern spotted, and the process's end reported to the supervisor.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use regex::Regex;
use tokio::net::unix::OwnedReadHalf;
use tokio::sync::mpsc;

use super::classify::strip_terminal_codes;
use crate::console::Console;
use crate::holder::protocol::{ExitInfo, FromHolder};

/// Longest partial line kept while looking for the ready pattern.
const MAX_PARTIAL_LINE: usize = 8 * 1024;

/// What the pump tells the supervisor, tagged with the run it belongs to.
#[derive(Debug)]
pub(crate) enum ProcessEvent {
    Ready {
        run: u64,
    },
    Exited {
        run: u64,
        exit: ExitInfo,
    },
    /// The holder connection broke without an exit report.
    Lost {
        run: u64,
    },
}

/// Looks for the ready pattern in complete lines of output.
#[derive(Debug)]
pub(crate) struct ReadyWatch {
    pattern: Regex,
    partial: Vec<u8>,
    /// Cleared once the pattern was seen; while clear, output costs no scanning.
    pub(crate) awaiting: Arc<AtomicBool>,
}

impl ReadyWatch {
    pub(crate) fn new(pattern: Regex, awaiting: Arc<AtomicBool>) -> ReadyWatch {
        ReadyWatch { pattern, partial: Vec::new(), awaiting }
    }

    /// Feeds output; true when a complete line matched.
    fn feed(&mut self, data: &[u8]) -> bool {
        if !self.awaiting.load(Ordering::Relaxed) {
            return false;
        }
        let mut rest = data;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&rest[..newline]);
            rest = &rest[newline + 1..];
            let line = strip_terminal_codes(&String::from_utf8_lossy(&self.partial));
            self.partial.clear();
            if self.pattern.is_match(&line) {
                self.awaiting.store(false, Ordering::Relaxed);
                return true;
            }
        }
        let room = MAX_PARTIAL_LINE.saturating_sub(self.partial.len());
        self.partial.extend_from_slice(&rest[..rest.len().min(room)]);
        false
    }
}

/// Reads a holder connection until it ends. Output goes straight into the console (never
/// through the supervisor's queue, so a busy supervisor cannot slow the game's output).
pub(crate) async fn pump(
    mut reader: OwnedReadHalf,
    console: Arc<Console>,
    console_base: u64,
    mut ready: Option<ReadyWatch>,
    run: u64,
    events: mpsc::Sender<ProcessEvent>,
) {
    loop {
        match FromHolder::read(&mut reader).await {
            Ok(Some(FromHolder::Output { offset, data })) => {
                console.append_at(console_base + offset, &data);
                if ready.as_mut().is_some_and(|watch| watch.feed(&data)) {
                    let _ = events.send(ProcessEvent::Ready { run }).await;
                }
            }
            Ok(Some(FromHolder::Exited(exit))) => {
                let _ = events.send(ProcessEvent::Exited { run, exit }).await;
                return;
            }
            Ok(Some(FromHolder::Hello(_))) => {}
            Ok(None) | Err(_) => {
                let _ = events.send(ProcessEvent::Lost { run }).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_pattern_needs_a_whole_line_and_fires_once() {
        let awaiting = Arc::new(AtomicBool::new(true));
        let mut watch = ReadyWatch::new(Regex::new(r"Done \(").expect("regex"), Arc::clone(&awaiting));
        assert!(!watch.feed(b"[12:00] Preparing\r\n[12:00] Do"));
        assert!(watch.feed(b"ne (1.5s)! For help\r\n"));
        assert!(!awaiting.load(Ordering::Relaxed));
        assert!(!watch.feed(b"Done (again)\n"));
    }
}
