//! Time limits against slow and idle clients, on a real server over loopback TCP: headers that
//! never finish and idle keep-alive connections are closed after `header_read_timeout`, a body
//! that never arrives gets 408 after `body_read_timeout`, and shutdown does not wait for idle
//! connections. Raw sockets, because an HTTP client library would not misbehave on purpose.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_millis(400);
/// Far above LIMIT: a connection still open after this was not cut off.
const PATIENCE: Duration = Duration::from_secs(10);

async fn start_limited() -> TestServer {
    let mut setup = Setup::new(RFC_CLIENTS);
    setup.replay_store = "memory".into();
    setup.header_read_timeout = Some(LIMIT);
    setup.body_read_timeout = Some(LIMIT);
    start(setup, rfc_prepare).await
}

async fn connect(t: &TestServer) -> TcpStream {
    TcpStream::connect(t.server.as_ref().unwrap().local_addr())
        .await
        .unwrap()
}

/// Reads until the server closes the connection; returns what it sent and when it closed.
async fn read_until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "connection still open after {PATIENCE:?}; received {:?}",
                String::from_utf8_lossy(&received)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

/// Opens a connection, sends `request` and waits until the server closes it; returns what the
/// server sent. Fails when the server closed it too early to be the limit at work, or never.
async fn send_and_wait_for_close(t: &TestServer, request: &[u8]) -> String {
    let mut stream = connect(t).await;
    stream.write_all(request).await.unwrap();
    let (received, after) = read_until_closed(&mut stream).await;
    assert!(
        after >= LIMIT / 2,
        "closed after {after:?}: before the limit"
    );
    received
}

#[tokio::test]
async fn headers_that_never_finish_are_cut_off() {
    let t = start_limited().await;
    // Slowloris: a request line and one header, then nothing.
    send_and_wait_for_close(&t, b"POST /oauth2/token HTTP/1.1\r\nHost: localhost\r\n").await;
    // The server still serves everyone else.
    assert_eq!(t.get("/healthz").await.status, 200);
    assert_eq!(t.token(&good("svc")).await.status, 200);
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let t = start_limited().await;
    let response =
        send_and_wait_for_close(&t, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response:?}");
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408() {
    let t = start_limited().await;
    let response = send_and_wait_for_close(
        &t,
        b"POST /oauth2/token HTTP/1.1\r\nHost: localhost\r\n\
          Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\n\
          grant_type=client_credentials",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response:?}");
    assert!(
        response.contains("\"error\":\"invalid_request\""),
        "{response:?}"
    );
    assert!(response.contains("did not arrive within"), "{response:?}");

    let metrics = t.get("/metrics").await.text;
    assert!(
        metrics.contains(r#"m2m_token_requests_total{outcome="rejected",reason="body_timeout"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn shutdown_does_not_wait_for_idle_connections() {
    let mut setup = Setup::new(RFC_CLIENTS);
    setup.replay_store = "memory".into();
    // The default limits (10 s): shutdown must close the idle connection itself.
    let mut t = start(setup, rfc_prepare).await;
    let mut idle = connect(&t).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), t.stop())
        .await
        .expect("shutdown waited for an idle keep-alive connection");
    assert!(started.elapsed() < Duration::from_secs(5));
    let (_, _) = read_until_closed(&mut idle).await;
}
