//! The caller's request body as reqwest wants it (`Send + Sync`), passed on frame by frame: a
//! streamed upload is never collected in memory.

use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use http_body::{Frame, SizeHint};

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
