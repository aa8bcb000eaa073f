//! `m2m proxy` end to end: the real binary between a client and a real API on loopback that
//! verifies every token against the real `m2m serve` that issued it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use std::io::{Read as _, Write as _};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{
    ServerProcess, Stack, assert_sse_event_by_event, assert_streams_a_gib_each_way_in_flat_memory,
    closed_port, http, metric_sum, stderr, wait_until_listening,
};

/// A running proxy: the child, its listener port and its admin port.
struct Proxy {
    child: ServerProcess,
    port: u16,
    admin: u16,
}

impl Proxy {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn metrics(&self) -> String {
        http(self.admin, "GET", "/metrics", "").1
    }

    fn pid(&self) -> u32 {
        self.child.0.id()
    }
}

fn proxy_to(stack: &Stack, upstream: &str) -> Proxy {
    proxy_with(stack, upstream, stack.token_flags())
}

fn proxy_with(stack: &Stack, upstream: &str, token_flags: Vec<String>) -> Proxy {
    let port = closed_port();
    let admin = closed_port();
    let child = stack
        .sb
        .cmd()
        .args(["proxy", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--upstream", upstream])
        .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
        .args(token_flags)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn m2m proxy");
    let child = ServerProcess(child);
    wait_until_listening(port);
    wait_until_listening(admin);
    Proxy { child, port, admin }
}

fn proxy(stack: &Stack) -> Proxy {
    proxy_to(stack, &stack.upstream.url())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn thousand_concurrent_requests_make_one_token_request() {
    let stack = Stack::start();
    let proxy = proxy(&stack);
    let client = reqwest::Client::new();
    let statuses = runtime().block_on(async {
        let requests = (0..1000).map(|i| {
            let client = client.clone();
            let url = proxy.url("/echo");
            async move {
                let r = client
                    .post(url)
                    .body(format!("req {i}"))
                    .send()
                    .await
                    .unwrap();
                (
                    r.status().as_u16(),
                    r.text().await.unwrap() == format!("req {i}"),
                )
            }
        });
        futures_util::future::join_all(requests).await
    });
    assert!(statuses.iter().all(|s| *s == (200, true)), "{statuses:?}");
    assert_eq!(
        stack.token_requests(),
        1,
        "one token request for 1,000 requests"
    );
    let m = proxy.metrics();
    assert_eq!(metric_sum(&m, "m2m_proxy_requests_total"), 1000, "{m}");
    assert!(
        m.contains("m2m_proxy_upstream_responses_total{class=\"2xx\"} 1000"),
        "{m}"
    );
    assert!(
        m.contains("m2m_proxy_token_fetches_total{result=\"ok\"} 1"),
        "{m}"
    );
    assert_eq!(http(proxy.admin, "GET", "/healthz", "").0, 200);
}

#[test]
fn spoofed_credentials_and_hop_by_hop_headers_never_reach_the_upstream() {
    let stack = Stack::start();
    let proxy = proxy(&stack);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    write!(
        s,
        "GET /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer spoofed\r\nDPoP: spoofed-proof\r\n\
         Proxy-Authorization: Basic c3Bvb2Y=\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\n\
         Keep-Alive: timeout=5\r\nTE: trailers\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let seen = stack.upstream.seen.lock().unwrap();
    assert_eq!(seen.authorizations.len(), 1);
    assert!(
        seen.authorizations[0].starts_with("Bearer ey"),
        "the proxy's own token"
    );
    assert!(!seen.authorizations.iter().any(|a| a.contains("spoofed")));
    assert!(seen.dpop.is_empty(), "{:?}", seen.dpop);
    assert!(seen.hop_by_hop.is_empty(), "{:?}", seen.hop_by_hop);
}

#[test]
fn upstream_connection_is_kept_alive_across_requests() {
    let stack = Stack::start();
    let proxy = proxy(&stack);
    for _ in 0..20 {
        // A new connection to the proxy each time: only the upstream side can be reused.
        assert_eq!(http(proxy.port, "GET", "/echo", "").0, 200);
    }
    let seen = stack.upstream.seen.lock().unwrap();
    let mut peers = seen.peers.clone();
    peers.dedup();
    assert_eq!(
        peers.len(),
        1,
        "one upstream connection for 20 requests: {peers:?}"
    );
}

/// Nothing the proxy logs, even at debug level, contains a token it injected.
#[test]
fn tokens_never_appear_in_the_proxy_log() {
    let stack = Stack::start();
    let port = closed_port();
    let mut child = stack
        .sb
        .cmd()
        .args(["-vv", "proxy", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--upstream", &stack.upstream.url()])
        .args(stack.token_flags())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_listening(port);
    assert_eq!(http(port, "POST", "/reject-first", "x").0, 200);
    assert_eq!(http(port, "GET", "/echo", "").0, 200);
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    child.wait().unwrap();
    assert!(log.contains("invalid_token"), "the retry is logged: {log}");
    let seen = stack.upstream.seen.lock().unwrap();
    assert!(seen.authorizations.len() >= 3);
    for auth in &seen.authorizations {
        let token = auth.strip_prefix("Bearer ").unwrap();
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !log.contains(signature),
            "a token's signature is in the log"
        );
    }
}

#[test]
fn sse_arrives_event_by_event() {
    let stack = Stack::start();
    let proxy = proxy(&stack);
    runtime().block_on(async {
        let r = reqwest::get(proxy.url("/sse")).await.unwrap();
        assert_sse_event_by_event(r).await;
    });
}

/// 1 GiB each way: the proxy's RSS stays within 64 MiB of where it started.
#[test]
fn large_upload_and_download_stream_with_flat_memory() {
    let stack = Stack::start();
    let proxy = proxy(&stack);
    // Warm up (token, connections), then stream.
    assert_eq!(http(proxy.port, "GET", "/echo", "").0, 200);
    assert_streams_a_gib_each_way_in_flat_memory(proxy.pid(), proxy.port, None, &proxy.url(""));
}

#[test]
fn invalid_token_once_gets_a_new_token_and_one_retry() {
    let stack = Stack::start();
    let proxy = proxy(&stack);
    let (status, body) = http(proxy.port, "POST", "/reject-first", "small=body");
    assert_eq!((status, body.as_str()), (200, "small=body"));
    assert_eq!(
        stack.token_requests(),
        2,
        "the refused token and its replacement"
    );
    let seen = stack.upstream.seen.lock().unwrap();
    assert_eq!(seen.authorizations.len(), 2, "one retry");
    assert_ne!(seen.authorizations[0], seen.authorizations[1]);
    drop(seen);
    let m = proxy.metrics();
    assert_eq!(metric_sum(&m, "m2m_proxy_retries_total"), 1, "{m}");
}

/// An upstream that closes every connection after its answer, without `Connection: close` (as a
/// server does when its keep-alive timeout passes): the proxy notices the close when it takes
/// the pooled connection and opens a new one, so no request gets a 502.
#[test]
fn a_pooled_connection_the_upstream_closed_is_not_used_again() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let stack = Stack::start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            // Dropped here: closed right after the answer.
        }
    });
    let proxy = proxy_to(&stack, &format!("http://127.0.0.1:{port}"));
    for i in 0..3 {
        let (status, body) = http(proxy.port, "GET", "/x", "");
        assert_eq!((status, body.as_str()), (200, "ok"), "request {i}");
        // Let the close reach the proxy before the next request.
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3, "one connection each");
    let m = proxy.metrics();
    assert_eq!(metric_sum(&m, "m2m_proxy_upstream_errors_total"), 0, "{m}");
}

#[test]
fn upstream_down_is_a_quick_502_without_detail() {
    let stack = Stack::start();
    let dead = closed_port();
    let proxy = proxy_to(&stack, &format!("http://127.0.0.1:{dead}"));
    let started = Instant::now();
    let (status, body) = http(proxy.port, "GET", "/echo", "");
    assert_eq!(status, 502);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        !body.contains(&dead.to_string()) && !body.to_lowercase().contains("refused"),
        "{body}"
    );
    let m = proxy.metrics();
    assert_eq!(metric_sum(&m, "m2m_proxy_upstream_errors_total"), 1, "{m}");
}

#[test]
fn no_token_is_a_503_and_nothing_reaches_the_upstream() {
    let stack = Stack::start();
    let flags: Vec<String> = stack
        .token_flags()
        .into_iter()
        .map(|f| {
            if f == "svc" {
                "unregistered".to_owned()
            } else {
                f
            }
        })
        .collect();
    let proxy = proxy_with(&stack, &stack.upstream.url(), flags);
    let (status, body) = http(proxy.port, "GET", "/echo", "");
    assert_eq!(status, 503, "{body}");
    assert!(
        !body.contains("invalid_client"),
        "no token-endpoint detail: {body}"
    );
    assert_eq!(stack.upstream.seen.lock().unwrap().requests, 0);
    let m = proxy.metrics();
    assert!(
        m.contains("m2m_proxy_token_fetches_total{result=\"error\"} 1"),
        "{m}"
    );
}

#[test]
fn token_endpoint_down_with_a_valid_cached_token_keeps_requests_flowing() {
    let mut stack = Stack::start();
    let proxy = proxy(&stack);
    assert_eq!(http(proxy.port, "GET", "/echo", "").0, 200);
    drop(stack.server.take()); // m2m serve is gone
    for _ in 0..20 {
        assert_eq!(http(proxy.port, "GET", "/echo", "").0, 200);
    }
}

#[test]
fn non_loopback_listen_is_refused_without_the_dangerous_flag() {
    let stack = Stack::start();
    let o = stack
        .sb
        .cmd()
        .args([
            "proxy",
            "--listen",
            "0.0.0.0:8787",
            "--upstream",
            &stack.upstream.url(),
        ])
        .args(stack.token_flags())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not a loopback address"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("--dangerous-listen-any"),
        "{}",
        stderr(&o)
    );
}

#[cfg(unix)]
#[test]
fn unix_socket_is_0600_serves_and_is_removed_on_sigterm() {
    use std::os::unix::fs::PermissionsExt as _;
    let stack = Stack::start();
    let path = stack.sb.path().join("proxy.sock");
    let mut child = stack
        .sb
        .cmd()
        .args(["proxy", "--listen", &format!("unix:{}", path.display())])
        .args(["--upstream", &stack.upstream.url()])
        .args(stack.token_flags())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..400 {
        if path.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    write!(
        s,
        "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // SIGTERM: clean shutdown, exit 0, socket file gone.
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!path.exists());
}
