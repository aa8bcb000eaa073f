//! [`StallGuard`]: a stream (TCP or Unix) whose writes fail once they have made no progress for a
//! set time.
//!
//! hyper's timers run only while it waits for a request. A client that pipelines requests and
//! never reads the answers closes its TCP window: hyper's write then waits forever, and the
//! connection holds a task, a file descriptor and up to a few MiB of kernel send buffer for as long
//! as the client likes (and stops a graceful shutdown). The guard turns "no write progress for
//! `limit`" into an I/O error, so hyper drops the connection; see docs/security.md (DoS row).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// What the guard does to a stalled stream before failing it.
pub(crate) trait ResetOnClose {
    /// Makes closing the stream drop its unsent data at once (a TCP reset), where that means
    /// anything.
    fn reset_on_close(&self);
}

impl ResetOnClose for TcpStream {
    fn reset_on_close(&self) {
        let _ = self.set_zero_linger();
    }
}

/// A Unix socket has no linger to set: its buffer goes with the socket.
#[cfg(unix)]
impl ResetOnClose for tokio::net::UnixStream {
    fn reset_on_close(&self) {}
}

/// A stream (a [`TcpStream`] or a Unix socket) whose `poll_write`/`poll_flush` fail with [`io::ErrorKind::TimedOut`] once a
/// write has been pending for `limit` without any byte going out. Reads are untouched (hyper's
/// header-read timeout and the body timeout bound those).
#[derive(Debug)]
pub(crate) struct StallGuard<S = TcpStream> {
    stream: S,
    limit: Duration,
    /// Armed when a write first returns `Pending`; disarmed by any progress. Boxed so the guard
    /// stays `Unpin` (no pin projection needed).
    deadline: Pin<Box<Sleep>>,
    armed: bool,
}

impl<S: ResetOnClose> StallGuard<S> {
    /// Wraps `stream`; `limit` is the longest a write may make no progress.
    pub(crate) fn new(stream: S, limit: Duration) -> Self {
        StallGuard {
            stream,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
            armed: false,
        }
    }

    /// Turns the inner result into a stall error when it stays `Pending` past the deadline.
    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        inner: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if inner.is_ready() {
            self.armed = false;
            return inner;
        }
        if !self.armed {
            self.armed = true;
            self.deadline.as_mut().reset(Instant::now() + self.limit);
        }
        ready!(self.deadline.as_mut().poll(cx));
        // The peer holds unread data in our send buffer: close with a reset rather than leave
        // the kernel probing a zero window on an orphaned socket with that buffer.
        self.stream.reset_on_close();
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the client read nothing for {:?}: write stalled, connection dropped",
                self.limit
            ),
        )))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + ResetOnClose + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let inner = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.guard(cx, inner)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let inner = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.guard(cx, inner)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let inner = Pin::new(&mut self.stream).poll_flush(cx);
        self.guard(cx, inner)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let inner = Pin::new(&mut self.stream).poll_shutdown(cx);
        self.guard(cx, inner)
    }
}
