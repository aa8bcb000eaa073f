//! The accept loop: each connection served by hyper's HTTP/1.1 with the time limits a public
//! token endpoint needs, and every connection drained on shutdown.
//!
//! `axum::serve` does the same minus the limits: it sets no header-read timeout, so a client that
//! trickles its headers (slowloris) or parks idle keep-alive connections holds a task and a file
//! descriptor each for as long as it likes, and enough of them stop the server from accepting.
//! HTTP/1.1 only: OAuth clients and the TLS proxies in front of a token endpoint speak it, and
//! hyper's HTTP/2 server has no bound on an idle connection, so serving cleartext HTTP/2 (which
//! `axum::serve` did, on prior knowledge) would reopen the hole.

use std::io;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Serves `app` on `listener` until `shutdown` fires (or its sender is dropped), then stops
/// accepting, lets in-flight requests finish, closes idle connections and returns.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    header_read_timeout: Duration,
    shutdown: oneshot::Receiver<()>,
) -> io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    // hyper starts this timer when it waits for a request's first byte, so it bounds both slow
    // headers and idle keep-alive connections.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
        };
        // Responses are written whole; waiting for an ACK before sending the next would only add
        // latency.
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(
            builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned(),
        );
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // Clients that go away, time out or speak garbage: theirs, not the server's.
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
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
