//! Kept-alive HTTP/1.1 connections to a cleartext upstream, each driven by the task of the
//! request that uses it.
//!
//! A pooled client (reqwest, hyper-util's legacy client) runs every connection in a task of its
//! own: the request is handed to that task through a channel, the response head and every body
//! chunk come back through others, and each hand-over is a wake-up and a reschedule — under load
//! most of a proxy's cost. Here the request's task (the listener connection's task, which also
//! writes the answer to the caller) polls the upstream connection itself: while it waits for the
//! response head, then in every poll of the response body. A connection goes back to the pool
//! when its response body has ended; an idle one is polled by nobody, and is checked (polled
//! once, then asked whether it takes a request) when it is taken, so one the upstream closed
//! meanwhile is dropped then and the request goes on another.

use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::body::SendBody;

/// At most this many idle connections are kept; one more returned is closed instead.
const MAX_IDLE: usize = 512;

/// The idle connections to one upstream (`host:port`), and how to open new ones.
pub(crate) struct Pool {
    /// A host name or an IP address (IPv6 without brackets), for `connect`.
    host: String,
    port: u16,
    connect_timeout: Duration,
    idle_timeout: Duration,
    /// Last in (back), first out: the most recently used connection is the likeliest to be
    /// open; the oldest (front) are closed once idle for `idle_timeout`, whenever a connection
    /// is returned.
    idle: Mutex<VecDeque<Idle>>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

struct Idle {
    conn: Box<Conn>,
    since: Instant,
}

/// One connection: the handle that sends requests and the state machine that does its I/O.
/// Boxed once when opened (it is large), so lending it out per request moves a pointer.
struct Conn {
    sender: http1::SendRequest<SendBody>,
    driver: http1::Connection<TokioIo<TcpStream>, SendBody>,
    /// False once `driver` has completed: the connection is closed.
    open: bool,
}

impl Conn {
    /// Does the connection's pending reads and writes in the current task; false once it is
    /// closed.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if self.open
            && let Poll::Ready(result) = Pin::new(&mut self.driver).poll(cx)
        {
            self.open = false;
            if let Err(e) = result {
                tracing::debug!(error = %e, "upstream connection closed with an error");
            }
        }
        self.open
    }

    /// Whether the connection takes a request right now (driven once first, which also notices
    /// a close by the upstream).
    fn ready_now(&mut self, cx: &mut Context<'_>) -> bool {
        self.drive(cx) && matches!(self.sender.poll_ready(cx), Poll::Ready(Ok(())))
    }

    /// Sends `request` and drives the connection until the response head has arrived. An error
    /// carries the request back when none of it was written.
    async fn send(
        &mut self,
        request: Request<SendBody>,
    ) -> Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<SendBody>>> {
        let mut response = std::pin::pin!(self.sender.try_send_request(request));
        poll_fn(|cx| {
            self.drive(cx);
            response.as_mut().poll(cx)
        })
        .await
    }
}

/// Why an upstream request failed (for the log; the caller only sees 502).
#[derive(Debug)]
pub(crate) enum SendError {
    /// No TCP connection (refused, unreachable, name not found).
    Connect(std::io::Error),
    /// No TCP connection within the connect timeout.
    ConnectTimeout,
    /// The connection failed or closed before the response head.
    Http(hyper::Error),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "cannot connect: {e}"),
            SendError::ConnectTimeout => f.write_str("cannot connect: timed out"),
            SendError::Http(e) => write!(f, "{e}"),
        }
    }
}

impl Pool {
    /// A pool for `host:port`.
    pub(crate) fn new(
        host: String,
        port: u16,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
        Pool {
            host,
            port,
            connect_timeout,
            idle_timeout,
            idle: Mutex::new(VecDeque::new()),
        }
    }

    /// Sends `request` on an idle connection, else a new one, and answers the response whose
    /// body drives the connection. `reusable`: whether the connection may serve another request
    /// after this one (only when the request body was sent whole from memory: after a streamed
    /// upload that the upstream answered early, the connection could still be mid-body).
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut request: Request<SendBody>,
        reusable: bool,
    ) -> Result<Response<UpstreamBody>, SendError> {
        loop {
            let (mut conn, fresh) = match self.checkout().await {
                Some(conn) => (conn, false),
                None => (self.connect().await?, true),
            };
            match conn.send(request).await {
                Ok(response) => {
                    let lease = Lease {
                        conn,
                        pool: Arc::clone(self),
                        reusable,
                    };
                    return Ok(response.map(|incoming| UpstreamBody {
                        incoming,
                        lease: Some(lease),
                    }));
                }
                Err(mut e) => match e.take_message() {
                    // A kept-alive connection the upstream had closed: nothing was written, so
                    // the request goes on another connection.
                    Some(unsent) if !fresh => request = unsent,
                    _ => return Err(SendError::Http(e.into_error())),
                },
            }
        }
    }

    /// An idle connection that takes a request now; closed or busy ones found on the way are
    /// dropped.
    async fn checkout(&self) -> Option<Box<Conn>> {
        poll_fn(|cx| {
            Poll::Ready(loop {
                let Some(mut conn) = self.pop() else {
                    break None;
                };
                if conn.ready_now(cx) {
                    break Some(conn);
                }
            })
        })
        .await
    }

    fn pop(&self) -> Option<Box<Conn>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = idle.pop_back()?;
        if entry.since.elapsed() < self.idle_timeout {
            return Some(entry.conn);
        }
        // The newest is too old, so every other one is too: close them all (outside the lock).
        let stale = std::mem::take(&mut *idle);
        drop(idle);
        drop(stale);
        None
    }

    fn put(&self, conn: Box<Conn>) {
        let now = Instant::now();
        let mut closed = Vec::new();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while idle
            .front()
            .is_some_and(|e| now.duration_since(e.since) >= self.idle_timeout)
        {
            closed.extend(idle.pop_front());
        }
        if idle.len() < MAX_IDLE {
            idle.push_back(Idle { conn, since: now });
        } else {
            closed.push(Idle { conn, since: now });
        }
        drop(idle);
        drop(closed);
    }

    async fn connect(&self) -> Result<Box<Conn>, SendError> {
        let stream = tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| SendError::ConnectTimeout)?
        .map_err(SendError::Connect)?;
        // Requests are written whole; waiting for an ACK before the next would only add latency.
        let _ = stream.set_nodelay(true);
        let (sender, driver) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(SendError::Http)?;
        Ok(Box::new(Conn {
            sender,
            driver,
            open: true,
        }))
    }
}

/// A connection lent to one response body.
struct Lease {
    conn: Box<Conn>,
    pool: Arc<Pool>,
    reusable: bool,
}

/// An upstream response body that drives its connection as it is polled, and hands the
/// connection back to the pool once it has ended (dropped unfinished: the connection closes).
pub(crate) struct UpstreamBody {
    incoming: Incoming,
    lease: Option<Lease>,
}

impl fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamBody").finish_non_exhaustive()
    }
}

impl UpstreamBody {
    /// Gives the connection back (when the body `ended` and the connection can go on) or
    /// closes it.
    fn release(&mut self, ended: bool) {
        if let Some(lease) = self.lease.take()
            && ended
            && lease.reusable
            && lease.conn.open
        {
            lease.pool.put(lease.conn);
        }
    }
}

impl HttpBody for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let mut polled = Pin::new(&mut this.incoming).poll_frame(cx);
        // Nothing buffered yet: read from the connection here, then look again (the chunk read
        // is handed over within this poll, without a wake-up).
        if polled.is_pending()
            && let Some(lease) = this.lease.as_mut()
        {
            lease.conn.drive(cx);
            polled = Pin::new(&mut this.incoming).poll_frame(cx);
        }
        match &polled {
            Poll::Ready(None) => this.release(true),
            Poll::Ready(Some(Err(_))) => this.release(false),
            Poll::Ready(Some(Ok(_))) if this.incoming.is_end_stream() => this.release(true),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // A body without content (HEAD, 204, 304, `Content-Length: 0`) is never polled.
        let ended = self.incoming.is_end_stream();
        self.release(ended);
    }
}
