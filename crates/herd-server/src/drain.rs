//! Request bodies that a handler leaves unread are drained, so the client can finish sending and then read the
//! answer.
//!
//! A handler that refuses a request before reading its body (a bad credential in a header, a body over its
//! limit) drops the body. hyper then closes the connection after the response, while the client may still be
//! sending: its next write meets a reset, and many clients report that as a broken connection instead of the
//! 401 or 413 the server sent. Reading the rest of the body in the background (bounded in bytes and time,
//! never kept) lets the response be read and, when it all arrives, the connection be used again.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// At most this much of a body is read and discarded after its handler left it; past that the connection
/// is closed (a client sending more than the largest body any route reads is not one to wait for).
const DRAIN_BYTES: usize = crate::extract::LARGEST_BODY;
/// And for at most this long.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Wraps a request's body so that what its handler leaves unread is drained. Used as a `MapRequestLayer`
/// (a plain function on the request: no boxed future per request on the check-in hot path).
pub fn drain_unread(request: Request) -> Request {
    request.map(|body| Body::new(DrainOnDrop { inner: Some(body), finished: false }))
}

struct DrainOnDrop {
    inner: Option<Body>,
    finished: bool,
}

impl http_body::Body for DrainOnDrop {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        let polled = Pin::new(inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.finished = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map(http_body::Body::size_hint).unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else { return };
        if self.finished || http_body::Body::is_end_stream(&body) {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(body));
        }
    }
}

async fn drain(mut body: Body) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut drained = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            drained += frame.data_ref().map_or(0, Bytes::len);
            if drained > DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}
