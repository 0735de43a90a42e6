//! The replicas on one database: which are alive, and which of them polls each agent.
//!
//! Each replica beats in the store every quarter poll interval; one silent for an interval (and
//! for at least two beats) is gone, and its agents go to the others. Agents are divided among
//! live replicas by rendezvous hashing: a server goes to the replica with the highest hash of
//! (replica, server), so only a leaver's or a newcomer's share moves. The hash is fixed (FNV-1a
//! and a finalizer), not `std`'s, so two builds agree during a rolling upgrade.
//!
//! A newcomer is counted by the others once it has beaten for [`Cluster::silent_for`], and takes
//! its share itself half an interval later still: by then every other replica has seen it at a
//! beat and let its share go, so no agent is polled by two replicas at once.
//!
//! On SQLite there is one control plane (the file is not shared between hosts): it is alone
//! from the start, and a predecessor that died is simply gone.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::db::{Store, StoreResult};

/// Who polls what, as of the last beat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct View {
    /// Replicas that poll, sorted; empty until this replica has settled (or when it cannot
    /// reach the store at all).
    owners: Vec<String>,
    /// Every live replica, this one included.
    live: Vec<String>,
}

/// This replica's membership.
#[derive(Debug)]
pub struct Cluster {
    id: String,
    joined_at_ms: i64,
    interval: Duration,
    store: Arc<dyn Store>,
    /// Whether other replicas may share the database (PostgreSQL).
    shared: bool,
    /// Set once it left: it beats no more.
    left: std::sync::atomic::AtomicBool,
    view: watch::Sender<View>,
}

impl Cluster {
    /// A new replica polling every `interval`, not yet counted by anyone; alone for good unless
    /// the database is `shared`.
    pub fn new(store: Arc<dyn Store>, interval: Duration, shared: bool) -> Cluster {
        let id = format!("replica-{}", crate::auth::random_token(9));
        let view =
            if shared { View::default() } else { View { owners: vec![id.clone()], live: vec![id.clone()] } };
        Cluster {
            id,
            joined_at_ms: zlh_proto::time::now_ms(),
            interval,
            store,
            shared,
            left: std::sync::atomic::AtomicBool::new(false),
            view: watch::channel(view).0,
        }
    }

    /// This replica's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// How often it beats: a quarter interval, so a dead replica is noticed within an interval
    /// and a quarter of its last beat.
    pub fn beat_every(&self) -> Duration {
        (self.interval / 4).max(Duration::from_millis(250))
    }

    /// How long a replica may be silent before the others take its agents.
    pub fn silent_for(&self) -> Duration {
        self.interval.max(self.beat_every() * 2)
    }

    /// Beats, and updates who polls what; the live replicas.
    pub async fn beat(&self) -> StoreResult<Vec<String>> {
        if !self.shared || self.left.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(self.live());
        }
        let now = zlh_proto::time::now_ms();
        let silent_for = self.silent_for().as_millis() as i64;
        let live = self.store.beat(&self.id, self.joined_at_ms, now, now - silent_for).await?;
        if self.left.load(std::sync::atomic::Ordering::SeqCst) {
            // It left while this beat was on its way: gone again.
            self.store.leave(&self.id).await?;
            return Ok(Vec::new());
        }
        let alone = live.iter().all(|(id, _)| *id == self.id);
        let settled_self =
            alone || now - self.joined_at_ms >= silent_for + (self.interval / 2).as_millis() as i64;
        let owners = if settled_self {
            live.iter()
                .filter(|(id, joined_at)| *id == self.id || now - joined_at >= silent_for)
                .map(|(id, _)| id.clone())
                .collect()
        } else {
            Vec::new()
        };
        let view = View { owners, live: live.into_iter().map(|(id, _)| id).collect() };
        self.view.send_if_modified(|current| {
            let changed = *current != view;
            *current = view.clone();
            changed
        });
        Ok(view.live)
    }

    /// Whether this replica polls `server_id`'s agent now.
    pub fn owns(&self, server_id: i64) -> bool {
        let view = self.view.borrow();
        let owner = view.owners.iter().max_by_key(|replica| score(replica, server_id));
        owner.is_some_and(|owner| *owner == self.id)
    }

    /// Whether no other replica is alive (as of the last beat).
    pub fn alone(&self) -> bool {
        self.view.borrow().live.iter().all(|id| *id == self.id)
    }

    /// The live replicas as of the last beat.
    pub fn live(&self) -> Vec<String> {
        self.view.borrow().live.clone()
    }

    /// Tells when who polls what changes.
    pub fn changes(&self) -> Changes {
        Changes(self.view.subscribe())
    }

    /// Leaves: the others take this replica's agents at their next beat.
    pub async fn leave(&self) {
        self.left.store(true, std::sync::atomic::Ordering::SeqCst);
        self.view.send_replace(View::default());
        if !self.shared {
            return;
        }
        if let Err(e) = self.store.leave(&self.id).await {
            tracing::warn!(error = %e, "cannot say this replica leaves; the others notice when it is silent");
        }
    }
}

/// Changes of who polls what, for one task.
#[derive(Debug)]
pub struct Changes(watch::Receiver<View>);

impl Changes {
    /// Resolves at the next change (never, once the cluster is gone).
    pub async fn changed(&mut self) {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The rendezvous score of a replica for a server: FNV-1a over both, then a finalizer (so
/// similar ids spread).
fn score(replica: &str, server_id: i64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in replica.bytes().chain(server_id.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^ (hash >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(replicas: &[&str], server_id: i64) -> String {
        (*replicas.iter().max_by_key(|r| score(r, server_id)).expect("one")).to_owned()
    }

    #[test]
    fn agents_spread_evenly_and_only_a_leavers_share_moves() {
        let three = ["replica-a", "replica-b", "replica-c"];
        let mut counts = std::collections::HashMap::new();
        for id in 0..3000 {
            *counts.entry(owner(&three, id)).or_insert(0) += 1;
        }
        assert!(counts.values().all(|n| (850..=1150).contains(n)), "{counts:?}");
        let two = ["replica-a", "replica-c"];
        for id in 0..3000 {
            let before = owner(&three, id);
            if before != "replica-b" {
                assert_eq!(owner(&two, id), before, "server {id} moved though its replica stayed");
            }
        }
    }
}
