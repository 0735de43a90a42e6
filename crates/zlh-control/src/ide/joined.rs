//! A WebSocket to a hosted IDE once code-server switched protocols: bytes pass both ways
//! untouched (frames are not parsed) until either side closes or the session's access ends.
//!
//! Such a socket carries keystrokes, terminal echoes and the language server's answers, so its
//! round trip is what a person feels. Each direction gets a thread of its own, blocked reading
//! one socket and writing what it read to the other: a hop costs the two system calls that move
//! the bytes, where an event loop (ours, or nginx's) also waits in `epoll_wait` and runs its
//! scheduler around them. At most [`MAX_ON_THREADS`] sockets are relayed so (two threads
//! each); past that, the runtime relays them with `copy_bidirectional`.
//!
//! Each such thread asks the kernel for a short time slice ([`SLICE`]): a hop takes it a few
//! microseconds, and under Linux's EEVDF scheduler (6.12 and later) a shorter slice means an
//! earlier deadline, so a thread woken by a keystroke runs before one busy for milliseconds
//! rather than after it. Its share of the processor stays the same.

use std::future::Future;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// Sockets relayed on threads of their own at most: 1,024 threads, whatever customers open.
const MAX_ON_THREADS: usize = 512;
/// Each thread's stack: it only reads and writes.
const STACK: usize = 128 << 10;
/// The most read at a time.
const BUFFER: usize = 16 << 10;
/// The time slice each thread asks for: the shortest the kernel grants (0.1 ms; 0.7 ms and
/// more by default).
const SLICE: std::time::Duration = std::time::Duration::from_micros(100);

/// Sockets relayed on threads now.
static ON_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Relays between `client` and `upstream` until both directions ended, or `access_ends`
/// returns, which closes both.
pub(super) async fn relay(client: TcpStream, upstream: TcpStream, access_ends: impl Future<Output = ()>) {
    let Some(permit) = Permit::take() else {
        return on_runtime(client, upstream, access_ends).await;
    };
    let started = Sockets::blocking(client, upstream).and_then(|sockets| sockets.pipe(permit));
    let (sockets, both_ended) = match started {
        Ok(started) => started,
        Err(e) => {
            tracing::warn!(error = %e, "relaying an IDE WebSocket failed to start");
            return;
        }
    };
    let mut both_ended = std::pin::pin!(both_ended);
    tokio::select! {
        () = &mut both_ended => {}
        () = access_ends => {
            // Both threads' reads and writes return at once.
            sockets.shut_down();
            both_ended.await;
        }
    }
}

/// Relays between two streams on the runtime until either side closes or `access_ends`
/// returns; dropping them closes both.
pub(super) async fn on_runtime(
    mut client: impl AsyncRead + AsyncWrite + Unpin,
    mut upstream: impl AsyncRead + AsyncWrite + Unpin,
    access_ends: impl Future<Output = ()>,
) {
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        () = access_ends => {}
    }
}

/// A place among the sockets relayed on threads, given back when dropped.
struct Permit;

impl Permit {
    fn take() -> Option<Permit> {
        ON_THREADS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_ON_THREADS).then_some(n + 1))
            .ok()?;
        Some(Permit)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        ON_THREADS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The two sockets, out of the runtime's reactor and blocking.
struct Sockets {
    client: std::net::TcpStream,
    upstream: std::net::TcpStream,
}

impl Sockets {
    fn blocking(client: TcpStream, upstream: TcpStream) -> std::io::Result<Sockets> {
        let (client, upstream) = (client.into_std()?, upstream.into_std()?);
        client.set_nonblocking(false)?;
        upstream.set_nonblocking(false)?;
        Ok(Sockets { client, upstream })
    }

    /// Starts a thread for each direction; what resolves when both ended. The permit is given
    /// back when the last of them ends.
    fn pipe(self, permit: Permit) -> std::io::Result<(Sockets, impl Future<Output = ()>)> {
        let permit = std::sync::Arc::new(permit);
        let mut ended = Vec::new();
        for (from, to) in [(&self.client, &self.upstream), (&self.upstream, &self.client)] {
            let (from, to, permit) = (from.try_clone()?, to.try_clone()?, std::sync::Arc::clone(&permit));
            let (done, end) = oneshot::channel::<()>();
            let spawned = std::thread::Builder::new().name("zlh-ide-socket".into()).stack_size(STACK).spawn(
                move || {
                    ask_for_short_slice();
                    pipe(from, to);
                    drop((done, permit));
                },
            );
            if let Err(e) = spawned {
                // The thread started, if any, ends with the sockets.
                self.shut_down();
                return Err(e);
            }
            ended.push(end);
        }
        Ok((self, async move {
            for end in ended {
                let _ = end.await;
            }
        }))
    }

    fn shut_down(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }
}

/// Asks the scheduler for a [`SLICE`] for the calling thread, keeping its policy and nice
/// value. A kernel without custom slices (before 6.12) ignores the request or refuses it, and
/// a thread under another policy (an operator's `chrt`) is left alone: either way it relays
/// as before.
#[allow(unsafe_code)]
fn ask_for_short_slice() {
    let size = std::mem::size_of::<libc::sched_attr>() as u32;
    let mut attr = libc::sched_attr {
        size,
        sched_policy: 0,
        sched_flags: 0,
        sched_nice: 0,
        sched_priority: 0,
        sched_runtime: 0,
        sched_deadline: 0,
        sched_period: 0,
    };
    // SAFETY: `attr` is a `sched_attr` of `size` bytes that outlives both calls; pid 0 is
    // this thread.
    unsafe {
        if libc::syscall(libc::SYS_sched_getattr, 0, &mut attr, size, 0) != 0
            || attr.sched_policy != libc::SCHED_OTHER as u32
        {
            return;
        }
        attr.sched_runtime = SLICE.as_nanos() as u64;
        libc::syscall(libc::SYS_sched_setattr, 0, &attr, 0);
    }
}

/// Copies what `from` reads to `to`. When `from`'s peer finished sending, so does `to`'s
/// side (the other direction goes on); when either breaks, both close.
fn pipe(from: std::net::TcpStream, to: std::net::TcpStream) {
    let mut buffer = vec![0; BUFFER];
    loop {
        let read = match (&from).read(&mut buffer) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if (&to).write_all(&buffer[..read]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Two connected sockets: (what the relay holds, its peer).
    async fn connected() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let peer = TcpStream::connect(listener.local_addr().expect("address")).await.expect("connect");
        (listener.accept().await.expect("accept").0, peer)
    }

    async fn read_exactly(stream: &mut TcpStream, len: usize) -> Vec<u8> {
        let mut bytes = vec![0; len];
        stream.read_exact(&mut bytes).await.expect("read");
        bytes
    }

    /// The relay's behaviour on threads, and past the cap, on the runtime; each within 10 s.
    async fn each_way(test: impl AsyncFn()) {
        let within = |test| async { tokio::time::timeout(std::time::Duration::from_secs(10), test).await };
        within(test()).await.expect("on threads, within 10 s");
        let taken: Vec<Permit> = std::iter::from_fn(Permit::take).collect();
        assert_eq!(ON_THREADS.load(Ordering::Acquire), MAX_ON_THREADS);
        within(test()).await.expect("on the runtime, within 10 s");
        drop(taken);
    }

    #[tokio::test]
    async fn bytes_pass_both_ways_and_one_side_finishing_leaves_the_other_sending() {
        each_way(async || {
            let ((client, mut browser), (upstream, mut code_server)) = (connected().await, connected().await);
            let relayed = tokio::spawn(relay(client, upstream, std::future::pending()));
            browser.write_all(b"keystroke").await.expect("write");
            assert_eq!(read_exactly(&mut code_server, 9).await, b"keystroke");
            code_server.write_all(b"echo").await.expect("write");
            assert_eq!(read_exactly(&mut browser, 4).await, b"echo");
            // The browser finished sending: code-server reads the end, and may still answer.
            browser.shutdown().await.expect("shutdown");
            assert_eq!(code_server.read(&mut [0; 8]).await.expect("read"), 0);
            code_server.write_all(b"late").await.expect("write");
            assert_eq!(read_exactly(&mut browser, 4).await, b"late");
            drop(code_server);
            assert_eq!(browser.read(&mut [0; 8]).await.expect("read"), 0);
            relayed.await.expect("the relay ends once both directions ended");
        })
        .await;
    }

    #[tokio::test]
    async fn relaying_threads_run_with_a_short_slice() {
        let ((client, mut browser), (upstream, mut code_server)) = (connected().await, connected().await);
        let relayed = tokio::spawn(relay(client, upstream, std::future::pending()));
        // A byte each way: both threads are relaying, so past asking.
        browser.write_all(b"k").await.expect("write");
        assert_eq!(read_exactly(&mut code_server, 1).await, b"k");
        code_server.write_all(b"e").await.expect("write");
        assert_eq!(read_exactly(&mut browser, 1).await, b"e");
        let slices = relaying_threads_slices();
        assert!(slices.len() >= 2, "two relaying threads at least, found {slices:?}");
        assert!(slices.iter().all(|&slice| slice == SLICE.as_nanos() as u64), "slices {slices:?}");
        drop((browser, code_server));
        relayed.await.expect("the relay ends once both directions ended");
    }

    /// The slice, in nanoseconds, of each of this process's relaying threads, as the
    /// scheduler reports it.
    fn relaying_threads_slices() -> Vec<u64> {
        let tasks = std::fs::read_dir("/proc/self/task").expect("tasks");
        let task = |entry: std::io::Result<std::fs::DirEntry>| entry.expect("task").path();
        tasks
            .map(task)
            .filter(|task| {
                std::fs::read_to_string(task.join("comm")).is_ok_and(|comm| comm == "zlh-ide-socket\n")
            })
            .map(|task| {
                let sched = std::fs::read_to_string(task.join("sched")).expect("the scheduler's view");
                let slice = sched.lines().find_map(|line| line.strip_prefix("se.slice")).expect("se.slice");
                slice.trim_start_matches([' ', ':']).trim().parse().expect("a slice in nanoseconds")
            })
            .collect()
    }

    #[tokio::test]
    async fn access_ending_closes_both_sockets() {
        each_way(async || {
            let ((client, mut browser), (upstream, mut code_server)) = (connected().await, connected().await);
            let (end_access, access_ended) = oneshot::channel::<()>();
            let relayed = tokio::spawn(relay(client, upstream, async {
                let _ = access_ended.await;
            }));
            browser.write_all(b"before").await.expect("write");
            assert_eq!(read_exactly(&mut code_server, 6).await, b"before");
            end_access.send(()).expect("the relay waits");
            relayed.await.expect("the relay ends when access ends");
            assert_eq!(browser.read(&mut [0; 8]).await.expect("read"), 0);
            assert_eq!(code_server.read(&mut [0; 8]).await.expect("read"), 0);
        })
        .await;
    }
}
