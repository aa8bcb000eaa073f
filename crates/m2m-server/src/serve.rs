//! The accept loop: each connection served by hyper's HTTP/1.1 with the time limits a public
//! token endpoint needs (header read, write stall, connection lifetime, connections per address),
//! and every connection drained on shutdown within a deadline. Public as [`serve_with_limits`]
//! so that other listeners of the `m2m` binary (`m2m proxy`) get the same limits.
//!
//! `axum::serve` does the same minus the limits: it sets no header-read timeout, so a client that
//! trickles its headers (slowloris) or parks idle keep-alive connections holds a task and a file
//! descriptor each for as long as it likes, and enough of them stop the server from accepting.
//! HTTP/1.1 only: OAuth clients and the TLS proxies in front of a token endpoint speak it, and
//! hyper's HTTP/2 server has no bound on an idle connection, so serving cleartext HTTP/2 (which
//! `axum::serve` did, on prior knowledge) would reopen the hole.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1::Builder;
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTION_LIFETIME, DEFAULT_MAX_CONNECTIONS_PER_IP,
    DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_WRITE_STALL_TIMEOUT, ServerConfig,
};
use crate::peer_cap::{PeerCap, PeerSlot};
use crate::write_stall::{ResetOnClose, StallGuard};

/// The per-connection limits of [`serve_with_limits`]; [`Default`] is what `m2m serve` uses
/// unless configured otherwise.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ConnectionLimits {
    /// hyper's header-read timeout: slow headers and idle keep-alive connections.
    pub header_read_timeout: Duration,
    /// A write that makes no progress for this long drops the connection.
    pub write_stall_timeout: Duration,
    /// After this, a connection takes no new request and closes once the current one is answered.
    pub max_connection_lifetime: Duration,
    /// How long shutdown waits for open connections before dropping them.
    pub shutdown_timeout: Duration,
    /// Connections one peer IP address may hold at once (`0`: no cap; Unix sockets have none).
    pub max_connections_per_ip: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            write_stall_timeout: DEFAULT_WRITE_STALL_TIMEOUT,
            max_connection_lifetime: DEFAULT_MAX_CONNECTION_LIFETIME,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
        }
    }
}

/// Where [`serve_with_limits`] accepts connections: a TCP listener or a Unix socket.
#[derive(Debug)]
#[non_exhaustive]
pub enum Listener {
    /// A bound TCP listener.
    Tcp(TcpListener),
    /// A bound Unix socket listener (its file mode is the caller's business).
    #[cfg(unix)]
    Unix(tokio::net::UnixListener),
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Self {
        Listener::Tcp(l)
    }
}

#[cfg(unix)]
impl From<tokio::net::UnixListener> for Listener {
    fn from(l: tokio::net::UnixListener) -> Self {
        Listener::Unix(l)
    }
}

/// One accepted connection, before it is served.
enum Accepted {
    Tcp(tokio::net::TcpStream, IpAddr),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

impl Listener {
    async fn accept(&self) -> io::Result<Accepted> {
        match self {
            Listener::Tcp(l) => l
                .accept()
                .await
                .map(|(s, peer)| Accepted::Tcp(s, peer.ip())),
            #[cfg(unix)]
            Listener::Unix(l) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
        }
    }
}

impl ConnectionLimits {
    /// The limits `config` sets.
    pub(crate) fn from_config(config: &ServerConfig) -> Self {
        ConnectionLimits {
            header_read_timeout: config.header_read_timeout,
            write_stall_timeout: config.write_stall_timeout,
            max_connection_lifetime: config.max_connection_lifetime,
            shutdown_timeout: config.shutdown_timeout,
            max_connections_per_ip: config.max_connections_per_ip,
        }
    }
}

/// Serves `app` on `listener` with `limits` until `shutdown` completes, then stops accepting,
/// lets in-flight requests finish, closes idle connections and returns — at the latest
/// `limits.shutdown_timeout` later, dropping whatever connection is still open then.
///
/// This is `m2m serve`'s own accept loop (HTTP/1.1, header-read timeout, write-stall guard,
/// connection lifetime, per-address cap), for other listeners that face untrusted clients.
pub async fn serve_with_limits(
    listener: impl Into<Listener>,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve(
        listener.into(),
        TowerToHyperService::new(app),
        limits,
        shutdown,
    )
    .await
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What [`serve_service_with_limits`] serves on each connection: a hyper service answering
/// HTTP/1.1 requests, cloned per connection.
pub trait ConnService:
    Service<
        http::Request<Incoming>,
        Response = http::Response<Self::Body>,
        Error: Into<BoxError>,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
    /// The body of its responses.
    type Body: ResponseBody;
}

impl<S, B> ConnService for S
where
    S: Service<
            http::Request<Incoming>,
            Response = http::Response<B>,
            Error: Into<BoxError>,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static,
    B: ResponseBody,
{
    type Body = B;
}

/// The body of a [`ConnService`]'s responses.
pub trait ResponseBody:
    http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static
{
}

impl<B> ResponseBody for B where
    B: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static
{
}

/// [`serve_with_limits`] for a hyper service rather than a router: for a listener that answers
/// every request the same way (`m2m proxy` forwards them all), where routing would only cost
/// time per request.
pub async fn serve_service_with_limits<S>(
    listener: impl Into<Listener>,
    service: S,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    S: ConnService,
{
    serve(listener.into(), service, limits, shutdown).await
}

/// The loop behind [`serve_with_limits`] and [`serve_service_with_limits`].
pub(crate) async fn serve<F, S>(
    listener: Listener,
    app: S,
    limits: ConnectionLimits,
    shutdown: F,
) -> io::Result<()>
where
    F: Future,
    S: ConnService,
{
    // HTTP/1.1 only (see the module comment), on hyper's own HTTP/1 connection: the version
    // sniffing wrapper of hyper-util's `auto` builder only cost time per request here.
    let mut builder = Builder::new();
    // hyper starts this timer when it waits for a request's first byte, so it bounds both slow
    // headers and idle keep-alive connections.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let peers = PeerCap::new(limits.max_connections_per_ip);
    // Tells every connection task to close gracefully; a watch, so tasks started later see it too.
    let (closing_tx, closing_rx) = watch::channel(false);
    // Owns the connection tasks: shutdown waits on them, and dropping the set aborts the rest.
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            // Reap finished tasks so the set holds only live connections.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
        };
        let conn = Conn {
            builder: &builder,
            app: &app,
            limits,
            closing: closing_rx.clone(),
        };
        match accepted {
            Accepted::Tcp(stream, ip) => {
                let Some(slot) = peers.admit(ip) else {
                    refuse_over_cap(ip, limits.max_connections_per_ip);
                    continue;
                };
                // Responses are written whole; waiting for an ACK before sending the next would
                // only add latency.
                let _ = stream.set_nodelay(true);
                conn.spawn(&mut connections, stream, Some(slot));
            }
            #[cfg(unix)]
            Accepted::Unix(stream) => conn.spawn(&mut connections, stream, None),
        }
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            timeout = ?limits.shutdown_timeout,
            "shutdown: connections still open after the shutdown timeout; dropping them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// What serving one accepted connection needs from the loop.
struct Conn<'a, A> {
    builder: &'a Builder,
    app: &'a A,
    limits: ConnectionLimits,
    closing: watch::Receiver<bool>,
}

impl<A> Conn<'_, A>
where
    A: ConnService,
{
    /// Serves `stream` in a task of `connections`, holding `slot` (its place under the
    /// per-address cap) until the connection ends.
    fn spawn<S>(self, connections: &mut JoinSet<()>, stream: S, slot: Option<PeerSlot>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + ResetOnClose + Unpin + Send + 'static,
    {
        let io = TokioIo::new(StallGuard::new(stream, self.limits.write_stall_timeout));
        let connection = self.builder.serve_connection(io, self.app.clone());
        let mut closing = self.closing;
        let lifetime = self.limits.max_connection_lifetime;
        connections.spawn(async move {
            let _slot = slot;
            let mut connection = std::pin::pin!(connection);
            let finished = tokio::select! {
                result = connection.as_mut() => Some(result),
                () = tokio::time::sleep(lifetime) => None,
                _ = closing.wait_for(|closing| *closing) => None,
            };
            let result = match finished {
                Some(result) => result,
                // Lifetime over or server shutting down: no new request on this connection; the
                // one in flight is answered (its write still bounded by the stall guard).
                None => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                // Clients that go away, time out, stall or speak garbage: theirs, not the server's.
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    }
}

/// A connection over the per-address cap is closed at once, unanswered: the peer already holds
/// its share. Logged at debug only, as a flood of them would otherwise flood the log.
fn refuse_over_cap(ip: IpAddr, max: usize) {
    tracing::debug!(%ip, max, "connection refused: the address holds the most connections allowed");
}

/// What to do when `accept` fails: errors about one connection (it was reset before we took it)
/// are nothing; anything else (out of file descriptors, memory) is logged and retried after a
/// pause, as a busy loop would only make it worse.
async fn accept_failed(e: &io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept connections; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
