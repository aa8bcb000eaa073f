//! The caller's request body on its way upstream, passed on frame by frame: kept bytes (small
//! bodies, sendable twice) or the caller's stream (a streamed upload is never collected in
//! memory); and the same body as reqwest wants it (`Sync`) for the TLS/HTTP/2 path.

use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use http_body::{Frame, SizeHint};

/// The body of one upstream request: the kept bytes (one frame, exact length) or the caller's
/// body streamed. No boxing, so a small request costs no allocation here.
#[derive(Debug)]
pub(crate) enum SendBody {
    /// Bytes already in memory (`None` once sent).
    Kept(Option<Bytes>),
    /// The caller's body, polled as the upstream connection takes it.
    Streamed(Body),
}

impl SendBody {
    /// The body for reqwest, which wants `Sync`.
    pub(crate) fn into_reqwest(self) -> reqwest::Body {
        match self {
            SendBody::Kept(bytes) => reqwest::Body::from(bytes.unwrap_or_default()),
            SendBody::Streamed(body) => reqwest::Body::wrap(SyncBody::new(body)),
        }
    }
}

impl HttpBody for SendBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match self.get_mut() {
            SendBody::Kept(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            SendBody::Streamed(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            SendBody::Kept(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            SendBody::Streamed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            SendBody::Kept(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            SendBody::Streamed(body) => body.size_hint(),
        }
    }
}

/// An incoming [`Body`] made `Sync` for `reqwest::Body::wrap`. The mutex is never contended:
/// `poll_frame` reaches the body through `&mut` (no lock taken); only the size hint locks.
#[derive(Debug)]
pub(crate) struct SyncBody(Mutex<Body>);

impl SyncBody {
    pub(crate) fn new(body: Body) -> Self {
        SyncBody(Mutex::new(body))
    }
}

impl HttpBody for SyncBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let body = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        Pin::new(body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .size_hint()
    }
}
