//! Requests whose body a handler did not read to the end (an upload refused part-way, a
//! request refused before its body was looked at). Two things go wrong with them unless taken
//! care of:
//! - Closing a connection with unread bytes makes the kernel send a reset, and a client still
//!   sending its body then gets a broken pipe instead of the answer (a 413 for a too-large
//!   upload became a 502 through the control plane). So the rest of the body is read and
//!   thrown away in the background, for a bounded time, as nginx's lingering close does.
//! - A client may already have put the connection back in its pool; the answer says
//!   `Connection: close`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::header::{CONNECTION, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body::{Frame, SizeHint};

/// Adds `Connection: close` to the answer when the request's body was not read to its end.
pub async fn close_when_body_unread(request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let finished = Arc::new(AtomicBool::new(false));
    let request = request.map(|inner| Body::new(Tracked { inner, finished: Arc::clone(&finished) }));
    let mut response = next.run(request).await;
    if !finished.load(Ordering::Acquire) && response.status() != StatusCode::SWITCHING_PROTOCOLS {
        response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// How long the unread rest of a body is read and thrown away, at most.
const LINGER: Duration = Duration::from_secs(30);

/// A body that notes when it has been read to its end, and drains what is left when it is
/// dropped before.
struct Tracked {
    inner: Body,
    finished: Arc<AtomicBool>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.finished.load(Ordering::Acquire) {
            return;
        }
        let rest = std::mem::replace(&mut self.inner, Body::empty()).into_data_stream();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let deadline = tokio::time::Instant::now() + LINGER;
                let mut rest = std::pin::pin!(rest);
                while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, rest.next()).await {}
            });
        }
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.finished.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
