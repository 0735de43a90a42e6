//! Outgoing messages (password resets, address confirmations) through a pluggable sender.
//!
//! The default sender appends each message as a JSON line to `outbox.log` in the data
//! directory (mode 0600): the operator reads it, or points a real mail relay at it later.
//! Reset links are secrets, so they go there and never into the service log, which is shipped
//! to log stores.

use std::io::Write;
use std::path::PathBuf;

/// A message to one person.
#[derive(Clone)]
pub struct Message {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Delivers messages.
pub trait Mailer: Send + Sync + std::fmt::Debug {
    /// Sends one message; errors are for the log, never for the requester.
    fn send(&self, message: &Message) -> std::io::Result<()>;
}

/// Appends messages to a file.
#[derive(Debug)]
pub struct OutboxMailer {
    path: PathBuf,
    lock: std::sync::Mutex<()>,
}

impl OutboxMailer {
    /// An outbox at `path`.
    pub fn new(path: PathBuf) -> OutboxMailer {
        OutboxMailer { path, lock: std::sync::Mutex::new(()) }
    }
}

impl Mailer for OutboxMailer {
    fn send(&self, message: &Message) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let _serialized = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut file = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path)?;
        let line = serde_json::json!({
            "at": zlh_proto::time::format_ms(zlh_proto::time::now_ms()),
            "to": message.to,
            "subject": message.subject,
            "body": message.body,
        });
        writeln!(file, "{line}")?;
        file.sync_data()
    }
}
