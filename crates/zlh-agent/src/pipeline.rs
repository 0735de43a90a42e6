//! Queues between the threads of a backup or restore pipeline (read, hash, compress, write).

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// A bounded queue from one stage to the next, and the way back for the buffers the next is
/// done with: a buffer filled again costs nothing, a fresh MiB a page fault for every page.
pub(crate) struct Recycling<T> {
    pub(crate) to_next: SyncSender<T>,
    pub(crate) received: Receiver<T>,
    pub(crate) give_back: SyncSender<Vec<u8>>,
    pub(crate) spent: Receiver<Vec<u8>>,
}

/// `queued` items on their way; the way back has room for those, the one being filled and the
/// one being read, so that giving a buffer back never waits.
pub(crate) fn recycling<T>(queued: usize) -> Recycling<T> {
    let (to_next, received) = sync_channel(queued);
    let (give_back, spent) = sync_channel(queued + 2);
    Recycling { to_next, received, give_back, spent }
}
