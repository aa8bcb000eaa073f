//! The caller's request body on its way upstream, passed on frame by frame: kept bytes (small
//! bodies, sendable twice) or the caller's stream (a streamed upload is never collected in
//! memory); and the same body as reqwest wants it (`Sync`) for the TLS/HTTP/2 path.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use bytes::BytesMut;
use http_body::{Frame, SizeHint};

/// Reads a small body whole: at most `limit` bytes (`None` past it, or when the body fails).
/// A body that comes in one frame (the usual case for a small one) is kept as it came, without
/// a copy; several frames are joined. Trailers are dropped, as the upstream request is sent
/// with a `Content-Length`.
pub(crate) async fn collect_small<B>(mut body: B, limit: usize) -> Option<Bytes>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    let mut kept = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let Ok(data) = frame.ok()?.into_data() else {
            continue;
        };
        let total = joined.as_ref().map_or(kept.len(), BytesMut::len) + data.len();
        if total > limit {
            return None;
        }
        match joined.as_mut() {
            Some(j) => j.extend_from_slice(&data),
            None if kept.is_empty() => kept = data,
            None => {
                let mut j = BytesMut::with_capacity(total);
                j.extend_from_slice(&kept);
                j.extend_from_slice(&data);
                joined = Some(j);
            }
        }
    }
    Some(joined.map_or(kept, BytesMut::freeze))
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A body that yields the given chunks, one frame each.
    struct Frames(VecDeque<Bytes>);

    impl HttpBody for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.get_mut().0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    fn frames(chunks: &[&'static str]) -> Frames {
        Frames(
            chunks
                .iter()
                .map(|c| Bytes::from_static(c.as_bytes()))
                .collect(),
        )
    }

    fn collect(body: Frames, limit: usize) -> Option<Bytes> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .ok()?
            .block_on(collect_small(body, limit))
    }

    #[test]
    fn one_frame_is_kept_as_it_came_and_several_are_joined_up_to_the_limit() {
        let one = Bytes::from_static(b"hello");
        let kept = collect(Frames(VecDeque::from([one.clone()])), 5);
        assert_eq!(
            kept.as_ref().map(|b| b.as_ptr()),
            Some(one.as_ptr()),
            "no copy"
        );
        assert_eq!(
            collect(frames(&["ab", "", "cd", "e"]), 5).as_deref(),
            Some(&b"abcde"[..])
        );
        assert_eq!(collect(frames(&["", "ab"]), 5).as_deref(), Some(&b"ab"[..]));
        assert_eq!(collect(frames(&[]), 5).as_deref(), Some(&b""[..]));
        assert_eq!(collect(frames(&["abc", "def"]), 5), None, "past the limit");
        assert_eq!(
            collect(frames(&["abcdef"]), 5),
            None,
            "one frame past the limit"
        );
    }
}
