//! Time limits against slow and idle clients, on a real server over loopback TCP: headers that
//! never finish and idle keep-alive connections are closed after `header_read_timeout`, a body
//! that never arrives gets 408 after `body_read_timeout`, a client that never reads its answers
//! is dropped after `write_stall_timeout`, a busy connection closes after
//! `max_connection_lifetime`, one address holds at most `max_connections_per_ip` connections,
//! and shutdown waits neither for idle connections nor (beyond `shutdown_timeout`) for stalled
//! ones. Raw sockets, because an HTTP client library would not misbehave on purpose.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

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

/// Requests a slow reader pipelines: their answers (a few KiB of metrics each) are far more than
/// the kernel buffers of both ends hold, so the server's writes must stall.
const PIPELINED: usize = 4000;
const METRICS_REQUEST: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// A connection with a tiny receive buffer (so a tiny TCP window) that pipelines [`PIPELINED`]
/// requests from a background task and never reads: the slow-read attack.
async fn slow_reader(t: &TestServer) -> tokio::net::tcp::OwnedReadHalf {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket
        .connect(t.server.as_ref().unwrap().local_addr())
        .await
        .unwrap();
    let (read, mut write) = stream.into_split();
    tokio::spawn(async move {
        for _ in 0..PIPELINED {
            if write.write_all(METRICS_REQUEST).await.is_err() {
                break;
            }
        }
        // Keep the write half (and so the connection) open until the test ends.
        std::future::pending::<()>().await;
    });
    read
}

/// Reads `read` until it closes; returns how many responses it carried.
async fn responses_until_closed(read: &mut tokio::net::tcp::OwnedReadHalf) -> usize {
    let mut received = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match tokio::time::timeout(PATIENCE, read.read(&mut buf)).await {
            Err(_) => panic!("connection still open after {PATIENCE:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
    received
        .windows(b"HTTP/1.1 200".len())
        .filter(|w| *w == b"HTTP/1.1 200")
        .count()
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_after_the_write_stall_timeout() {
    let mut setup = Setup::new(RFC_CLIENTS);
    setup.replay_store = "memory".into();
    setup.header_read_timeout = Some(LIMIT);
    setup.write_stall_timeout = Some(LIMIT);
    let t = start(setup, rfc_prepare).await;
    let mut read = slow_reader(&t).await;
    // Well past the stall limit: the server has given up on this connection by now. Had it not,
    // reading now would let it answer every pipelined request.
    tokio::time::sleep(LIMIT * 6).await;
    let answered = responses_until_closed(&mut read).await;
    assert!(
        answered < PIPELINED,
        "all {answered} requests were answered: the stalled connection was kept"
    );
    assert_eq!(t.get("/healthz").await.status, 200);
}

#[tokio::test]
async fn shutdown_drops_a_stalled_connection_after_the_shutdown_timeout() {
    let mut setup = Setup::new(RFC_CLIENTS);
    setup.replay_store = "memory".into();
    // The stall guard alone would not end it within the test: the shutdown deadline must.
    setup.write_stall_timeout = Some(Duration::from_secs(600));
    setup.shutdown_timeout = Some(LIMIT);
    let mut t = start(setup, rfc_prepare).await;
    let _read = slow_reader(&t).await;
    tokio::time::sleep(LIMIT * 3).await;
    let started = Instant::now();
    tokio::time::timeout(PATIENCE, t.stop())
        .await
        .expect("shutdown waited for a client that never reads");
    assert!(started.elapsed() < PATIENCE);
}

#[tokio::test]
async fn a_busy_connection_closes_after_its_lifetime() {
    let mut setup = Setup::new(RFC_CLIENTS);
    setup.replay_store = "memory".into();
    setup.max_connection_lifetime = Some(LIMIT);
    let t = start(setup, rfc_prepare).await;
    let mut stream = connect(&t).await;
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    // A request every 50 ms: never idle, so only the lifetime can close it.
    loop {
        assert!(
            started.elapsed() < PATIENCE,
            "connection still served after {PATIENCE:?}"
        );
        if stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .is_err()
        {
            break;
        }
        match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
            Err(_) => panic!("no answer"),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(started.elapsed() >= LIMIT / 2, "closed before its lifetime");
}

#[tokio::test]
async fn one_address_holds_at_most_max_connections_per_ip() {
    let mut setup = Setup::new(RFC_CLIENTS);
    setup.replay_store = "memory".into();
    setup.max_connections_per_ip = Some(2);
    let t = start(setup, rfc_prepare).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut buf = [0u8; 4096];
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(&t).await;
        stream.write_all(request).await.unwrap();
        let n = stream.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(stream);
    }
    // The third is closed unanswered.
    let mut third = connect(&t).await;
    let _ = third.write_all(request).await;
    let (received, _) = read_until_closed(&mut third).await;
    assert!(
        received.is_empty(),
        "over the cap yet answered: {received:?}"
    );
    // Closing one frees its slot (once the server has noticed the close).
    drop(held.pop());
    let started = Instant::now();
    loop {
        let mut stream = connect(&t).await;
        let _ = stream.write_all(request).await;
        let n = stream.read(&mut buf).await.unwrap_or(0);
        if buf[..n].starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the freed slot was never reused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `request` on a fresh connection and returns the first response (status line, headers
/// and the JSON body), read until the body's closing brace or the connection closes.
async fn first_response(t: &TestServer, request: &[u8]) -> String {
    let mut stream = connect(t).await;
    stream.write_all(request).await.unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if text.contains("\r\n\r\n") && text.trim_end().ends_with('}') {
            return text;
        }
        match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
            Err(_) => panic!("no complete response within {PATIENCE:?}: {text:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return text,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// I3: a malformed chunked body is a 400 that says so, not "413 larger than 16384 bytes".
#[tokio::test]
async fn a_malformed_chunked_body_is_a_400_not_a_413() {
    let t = start_limited().await;
    for chunk_size in ["zz", "fffffffffffffffffffffff"] {
        let request = format!(
            "POST /oauth2/token HTTP/1.1\r\nHost: localhost\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n\
             Transfer-Encoding: chunked\r\n\r\n{chunk_size}\r\nabc\r\n0\r\n\r\n"
        );
        let response = first_response(&t, request.as_bytes()).await;
        assert!(
            response.starts_with("HTTP/1.1 400"),
            "{chunk_size}: {response}"
        );
        assert!(response.contains("could not be read"), "{response}");
        assert!(!response.contains("larger than"), "{response}");
    }
}

/// I3: a `Content-Type` with bytes outside visible ASCII is reported as unreadable, not as
/// missing. I2: two `Content-Type` headers are refused (400), on the token endpoint and on
/// introspection, even when the first one is the form type.
#[tokio::test]
async fn content_type_must_be_one_readable_header() {
    let t = start_limited().await;
    let body = "grant_type=client_credentials";
    let request = |path: &str, content_types: &[&[u8]]| {
        let mut r = format!("POST {path} HTTP/1.1\r\nHost: localhost\r\n").into_bytes();
        for ct in content_types {
            r.extend_from_slice(b"Content-Type: ");
            r.extend_from_slice(ct);
            r.extend_from_slice(b"\r\n");
        }
        r.extend_from_slice(format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
        r
    };
    let unreadable: &[u8] = b"application/x-www-form-urlencoded; a=\xff";
    let response = first_response(&t, &request("/oauth2/token", &[unreadable])).await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains("not readable"), "{response}");
    assert!(!response.contains("no Content-Type"), "{response}");

    let form: &[u8] = b"application/x-www-form-urlencoded";
    for path in ["/oauth2/token", "/oauth2/introspect"] {
        let response = first_response(&t, &request(path, &[form, b"application/json"])).await;
        assert!(response.starts_with("HTTP/1.1 400"), "{path}: {response}");
        assert!(response.contains("invalid_request"), "{path}: {response}");
        assert!(
            response.contains("more than one Content-Type"),
            "{path}: {response}"
        );
    }
}
