//! A graceful stop, so that a rolling restart behind a load balancer loses nothing.
//!
//! On SIGTERM a replica first *leaves*: `/health` answers 503 so the balancer sends new
//! requests elsewhere, while for `drain_delay` it still answers whatever arrives (a balancer
//! notices at its next check). Then it *closes*: it stops accepting, lets requests in flight
//! finish, and ends its consoles with close code 1012 (the portal reconnects at once, through
//! another replica, resuming with `?since=`) and its IDE sockets (code-server reconnects by
//! itself). What is still open after [`FINISH_WITHIN`] is cut.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;

/// How long open sockets get to close once the replica closes.
pub const FINISH_WITHIN: Duration = Duration::from_secs(5);

/// Where a replica is in its stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Taking requests.
    Serving,
    /// Still answering, while the balancer learns it goes.
    Leaving,
    /// Sockets end now.
    Closing,
}

/// The phase, and the sockets still open.
#[derive(Debug)]
pub struct Drain {
    phase: watch::Sender<Phase>,
    open: Arc<AtomicUsize>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain { phase: watch::channel(Phase::Serving).0, open: Arc::new(AtomicUsize::new(0)) }
    }
}

impl Drain {
    /// The phase now.
    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Moves to `phase`.
    pub fn enter(&self, phase: Phase) {
        tracing::info!(?phase, "draining");
        self.phase.send_replace(phase);
    }

    /// Counts a socket as open until the guard drops; the guard tells it when to close.
    pub fn socket(&self) -> OpenSocket {
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenSocket { phase: self.phase.subscribe(), open: Arc::clone(&self.open) }
    }

    /// Waits until every socket closed, or [`FINISH_WITHIN`] passed; how many were still open.
    pub async fn sockets_closed(&self) -> usize {
        let deadline = tokio::time::Instant::now() + FINISH_WITHIN;
        while self.open.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.open.load(Ordering::Relaxed)
    }
}

/// One open socket (a console or an IDE WebSocket).
#[derive(Debug)]
pub struct OpenSocket {
    phase: watch::Receiver<Phase>,
    open: Arc<AtomicUsize>,
}

impl OpenSocket {
    /// Resolves when the socket must close.
    pub async fn closing(&mut self) {
        if self.phase.wait_for(|phase| *phase == Phase::Closing).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}
