//! The console stream: an offset-addressed scrollback ring that writers never wait on.
//!
//! Every byte of a console gets an offset; offsets only grow. The ring keeps the newest
//! `capacity` bytes. Readers ([`Follower`]) keep their own cursor and copy from the ring when
//! it grows, so a slow or stalled reader costs the writer nothing: it falls behind, and when its
//! cursor drops out of the ring it is told about the gap and skips ahead. The same type backs
//! the holder's buffer (output while no agent is attached) and the agent's scrollback that
//! viewers resume from with `?since=`.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

/// A fixed-size byte ring whose contents are the stream offsets `[start, end)`.
#[derive(Debug)]
pub struct Ring {
    buffer: Box<[u8]>,
    start: u64,
    end: u64,
}

/// What a reader gets for its cursor.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Bytes starting at `offset`.
    Data {
        /// Offset of the first byte.
        offset: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// `[from, to)` fell out of the ring; the reader continues at `to`.
    Gap {
        /// First lost offset.
        from: u64,
        /// First offset available.
        to: u64,
    },
}

impl Ring {
    /// An empty ring whose first byte will have offset `start`.
    pub fn new(capacity: usize, start: u64) -> Ring {
        Ring { buffer: vec![0; capacity.max(1)].into_boxed_slice(), start, end: start }
    }

    /// Oldest offset still held.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Offset the next byte will get.
    pub fn end(&self) -> u64 {
        self.end
    }

    fn capacity(&self) -> u64 {
        self.buffer.len() as u64
    }

    /// Appends bytes, dropping the oldest ones beyond capacity.
    pub fn append(&mut self, data: &[u8]) {
        let cap = self.buffer.len();
        let (skipped, kept) =
            if data.len() > cap { (data.len() - cap, &data[data.len() - cap..]) } else { (0, data) };
        let first = self.end + skipped as u64;
        let position = (first % self.capacity()) as usize;
        let head = kept.len().min(cap - position);
        self.buffer[position..position + head].copy_from_slice(&kept[..head]);
        self.buffer[..kept.len() - head].copy_from_slice(&kept[head..]);
        self.end += data.len() as u64;
        self.start = self.start.max(self.end.saturating_sub(self.capacity()));
    }

    /// Forgets everything and continues at `offset` (when the source itself skipped ahead).
    pub fn jump_to(&mut self, offset: u64) {
        self.start = offset;
        self.end = offset;
    }

    /// Up to `max` bytes from `cursor`, a gap if `cursor` fell out of the ring, or `None` when
    /// there is nothing new. A cursor past the end reads as the end.
    pub fn read(&self, cursor: u64, max: usize) -> Option<Chunk> {
        if cursor < self.start {
            return Some(Chunk::Gap { from: cursor, to: self.start });
        }
        if cursor >= self.end {
            return None;
        }
        let len = ((self.end - cursor) as usize).min(max);
        let position = (cursor % self.capacity()) as usize;
        let head = len.min(self.buffer.len() - position);
        let mut bytes = Vec::with_capacity(len);
        bytes.extend_from_slice(&self.buffer[position..position + head]);
        bytes.extend_from_slice(&self.buffer[..len - head]);
        Some(Chunk::Data { offset: cursor, bytes })
    }

    /// Everything held from `from` (clamped to the ring) to the end.
    pub fn tail_from(&self, from: u64) -> Vec<u8> {
        let from = from.clamp(self.start, self.end);
        match self.read(from, usize::MAX) {
            Some(Chunk::Data { bytes, .. }) => bytes,
            _ => Vec::new(),
        }
    }
}

/// A ring shared between one writer and many followers.
#[derive(Debug)]
pub struct Console {
    ring: Mutex<Ring>,
    /// The ring's end offset, so followers can wait for growth without polling.
    end: watch::Sender<u64>,
}

impl Console {
    /// A shared console whose first byte will have offset `start`.
    pub fn new(capacity: usize, start: u64) -> Arc<Console> {
        Arc::new(Console { ring: Mutex::new(Ring::new(capacity, start)), end: watch::channel(start).0 })
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        // A panic while holding this lock cannot leave the ring inconsistent (every method
        // finishes its writes before returning), so a poisoned lock is still usable.
        self.ring.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends output. Never waits for readers.
    pub fn append(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = {
            let mut ring = self.ring();
            ring.append(data);
            ring.end()
        };
        self.end.send_replace(end);
    }

    /// Appends bytes that belong at `offset`: a part already held is skipped, and a jump past
    /// the end (the source lost bytes) leaves a gap.
    pub fn append_at(&self, offset: u64, data: &[u8]) {
        let end = {
            let mut ring = self.ring();
            if offset > ring.end() {
                ring.jump_to(offset);
            }
            let already_held = (ring.end() - offset) as usize;
            if already_held < data.len() {
                ring.append(&data[already_held..]);
            }
            ring.end()
        };
        self.end.send_replace(end);
    }

    /// `(start, end)` of what is held.
    pub fn bounds(&self) -> (u64, u64) {
        let ring = self.ring();
        (ring.start(), ring.end())
    }

    /// Everything held from `from` to the end.
    pub fn tail_from(&self, from: u64) -> Vec<u8> {
        self.ring().tail_from(from)
    }

    /// A reader starting at `since` (clamped to the end), or at the oldest byte held.
    pub fn follow(self: &Arc<Self>, since: Option<u64>) -> Follower {
        let (start, end) = self.bounds();
        let cursor = since.map_or(start, |since| since.min(end));
        Follower { console: Arc::clone(self), end: self.end.subscribe(), cursor }
    }
}

/// One reader of a [`Console`], with its own cursor.
#[derive(Debug)]
pub struct Follower {
    console: Arc<Console>,
    end: watch::Receiver<u64>,
    cursor: u64,
}

impl Follower {
    /// The next offset this follower will read.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Reads what is there now without waiting.
    pub fn try_next(&mut self, max: usize) -> Option<Chunk> {
        self.end.borrow_and_update();
        let chunk = self.console.ring().read(self.cursor, max)?;
        self.cursor = match &chunk {
            Chunk::Data { offset, bytes } => offset + bytes.len() as u64,
            Chunk::Gap { to, .. } => *to,
        };
        Some(chunk)
    }

    /// Waits for the next chunk. Returns `None` once the console is gone.
    pub async fn next(&mut self, max: usize) -> Option<Chunk> {
        loop {
            if let Some(chunk) = self.try_next(max) {
                return Some(chunk);
            }
            self.end.changed().await.ok()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(offset: u64, bytes: &[u8]) -> Option<Chunk> {
        Some(Chunk::Data { offset, bytes: bytes.to_vec() })
    }

    #[test]
    fn ring_keeps_the_newest_bytes_across_the_wrap() {
        let mut ring = Ring::new(8, 100);
        ring.append(b"abcdef");
        assert_eq!(ring.read(100, 64), data(100, b"abcdef"));
        ring.append(b"ghij");
        assert_eq!((ring.start(), ring.end()), (102, 110));
        assert_eq!(ring.read(102, 64), data(102, b"cdefghij"));
        assert_eq!(ring.read(100, 64), Some(Chunk::Gap { from: 100, to: 102 }));
        assert_eq!(ring.read(108, 1), data(108, b"i"));
        assert_eq!(ring.read(110, 64), None);
    }

    #[test]
    fn ring_takes_writes_larger_than_itself() {
        let mut ring = Ring::new(4, 0);
        ring.append(b"0123456789");
        assert_eq!((ring.start(), ring.end()), (6, 10));
        assert_eq!(ring.tail_from(0), b"6789");
        ring.append(b"ab");
        assert_eq!(ring.tail_from(7), b"89ab");
    }

    #[test]
    fn jump_leaves_a_gap_for_old_cursors() {
        let mut ring = Ring::new(16, 0);
        ring.append(b"hello");
        ring.jump_to(50);
        ring.append(b"world");
        assert_eq!(ring.read(5, 64), Some(Chunk::Gap { from: 5, to: 50 }));
        assert_eq!(ring.read(50, 64), data(50, b"world"));
    }

    #[test]
    fn append_at_skips_what_is_held_and_jumps_over_losses() {
        let console = Console::new(64, 10);
        console.append_at(10, b"abc");
        console.append_at(11, b"bcde");
        assert_eq!(console.tail_from(0), b"abcde");
        console.append_at(20, b"xy");
        assert_eq!(console.bounds(), (20, 22));
    }

    #[tokio::test]
    async fn followers_resume_exactly_and_wait_for_more() {
        let console = Console::new(1024, 0);
        console.append(b"one\n");
        let mut follower = console.follow(Some(2));
        assert_eq!(follower.next(64).await, data(2, b"e\n"));
        let waiter = tokio::spawn(async move { follower.next(64).await });
        console.append(b"two\n");
        assert_eq!(waiter.await.expect("join"), data(4, b"two\n"));
    }
}
