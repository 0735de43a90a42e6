//! The control plane's listener. A connection whose first request is for a hosted IDE
//! (`dev-<id>.<suffix>`) moves to the IDE's thread ([`super::worker`]) and is served by the
//! IDE's fast path for as long as its requests are plain; every other connection, and such a
//! one from its first request that is not, goes to hyper and the router with the bytes read so
//! far ([`Rewind`]). Connections cross between the two runtimes as std sockets, each
//! registered with the reactor of the runtime that serves it.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::fast::{self, Served};
use super::worker::Worker;
use crate::ControlPlane;

/// How long a new connection may take to send its first request's head.
const FIRST_HEAD_WITHIN: Duration = Duration::from_secs(30);

/// A connection for hyper and the router: its socket, what was read of it, its peer.
type Arrival = (std::net::TcpStream, Vec<u8>, SocketAddr);

/// Connections for hyper and the router, as axum's server accepts them.
#[derive(Debug)]
pub struct Front {
    arrivals: mpsc::Receiver<Arrival>,
    local: SocketAddr,
    accepting: tokio::task::AbortHandle,
    worker: Option<Arc<Worker>>,
}

/// Accepts connections on `listener`: hosted IDEs' are served on the IDE's thread, the others
/// handed to axum's server through the [`Front`].
pub fn listen(listener: TcpListener, control: Arc<ControlPlane>) -> std::io::Result<Front> {
    let local = listener.local_addr()?;
    let (handoff, arrivals) = mpsc::channel(1024);
    let worker = control.ide.host_suffix.is_some().then(Worker::start).transpose()?.map(Arc::new);
    let ide = worker.clone();
    let accepting = tokio::spawn(async move {
        loop {
            let (stream, address) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, most often: wait for some to close.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // No Nagle: small WebSocket frames (consoles, the IDE) must not wait for an ACK.
            let _ = stream.set_nodelay(true);
            let Some(ide) = &ide else {
                if !hand_over(&handoff, stream, Vec::new(), address).await {
                    return;
                }
                continue;
            };
            let (control, handoff, ide) = (Arc::clone(&control), handoff.clone(), Arc::clone(ide));
            tokio::spawn(async move {
                match first_request(&control, stream).await {
                    Some(First::Router(stream, read)) => {
                        hand_over(&handoff, stream, read, address).await;
                    }
                    Some(First::Ide(stream, read, server_id)) => {
                        let Ok(stream) = stream.into_std() else { return };
                        let main = ide.main().clone();
                        ide.spawn(async move {
                            let Ok(stream) = TcpStream::from_std(stream) else { return };
                            if let Served::HandOver(stream, read) =
                                fast::serve(&control, &main, stream, read, server_id).await
                            {
                                hand_over(&handoff, stream, read, address).await;
                            }
                        });
                    }
                    None => {}
                }
            });
        }
    });
    Ok(Front { arrivals, local, accepting: accepting.abort_handle(), worker })
}

impl Front {
    /// The IDE's thread, if hosted IDEs are served: it serves their sockets for as long as it
    /// is held, which may be longer than axum's server holds the listener (a stop lets open
    /// sockets finish).
    pub(crate) fn ide_worker(&self) -> Option<Arc<Worker>> {
        self.worker.clone()
    }
}

/// Sends a connection to hyper and the router; false once axum's server stopped accepting.
async fn hand_over(
    handoff: &mpsc::Sender<Arrival>,
    stream: TcpStream,
    read: Vec<u8>,
    address: SocketAddr,
) -> bool {
    match stream.into_std() {
        Ok(stream) => handoff.send((stream, read, address)).await.is_ok(),
        Err(_) => true,
    }
}

/// Where a connection goes after its first request.
enum First {
    /// To hyper and the router, with what was read.
    Router(TcpStream, Vec<u8>),
    /// To the IDE's fast path for server `i64`, with what was read.
    Ide(TcpStream, Vec<u8>, i64),
}

/// Reads a connection's first request head: whether it is for a hosted IDE, unless it ended.
async fn first_request(control: &ControlPlane, mut stream: TcpStream) -> Option<First> {
    use tokio::io::AsyncReadExt;
    let suffix = control.ide.host_suffix.as_deref()?;
    let mut buffer = Vec::with_capacity(8192);
    let deadline = tokio::time::Instant::now() + FIRST_HEAD_WITHIN;
    let server_id = loop {
        let read = tokio::time::timeout_at(deadline, stream.read_buf(&mut buffer)).await;
        if !matches!(read, Ok(Ok(1..))) {
            return None;
        }
        let mut headers = [httparse::EMPTY_HEADER; 100];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buffer) {
            Ok(httparse::Status::Complete(_)) => {
                let host = request.headers.iter().find(|h| h.name.eq_ignore_ascii_case("host"));
                let host = host.and_then(|h| std::str::from_utf8(h.value).ok()).unwrap_or_default();
                break super::hosted_server(host, suffix);
            }
            Ok(httparse::Status::Partial) if buffer.len() < 64 << 10 => {}
            _ => break None,
        }
        buffer.reserve(8192);
    };
    Some(match server_id {
        Some(server_id) => First::Ide(stream, buffer, server_id),
        None => First::Router(stream, buffer),
    })
}

impl axum::serve::Listener for Front {
    type Io = Rewind;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Rewind, SocketAddr) {
        loop {
            let Some((stream, read, address)) = self.arrivals.recv().await else {
                return std::future::pending().await;
            };
            // Registered with this (the main) runtime's reactor.
            match TcpStream::from_std(stream) {
                Ok(stream) => return (Rewind::new(stream, read), address),
                Err(e) => tracing::warn!(error = %e, "a connection could not be served"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

impl Drop for Front {
    /// axum's server drops its listener when it stops: new connections are refused from then.
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// A connection whose first bytes were already read: they are read again first.
#[derive(Debug)]
pub struct Rewind {
    read: Vec<u8>,
    at: usize,
    stream: TcpStream,
}

impl Rewind {
    fn new(stream: TcpStream, read: Vec<u8>) -> Rewind {
        Rewind { read, at: 0, stream }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.read.len() {
            let n = buf.remaining().min(self.read.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.read[at..at + n]);
            self.at += n;
            if self.at == self.read.len() {
                self.read = Vec::new();
                self.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
