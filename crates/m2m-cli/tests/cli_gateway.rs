//! `m2m gateway` end to end: the real binary in front of a real API on loopback (open: it trusts
//! the gateway's `X-M2M-*` headers and echoes what it received), with the real `m2m serve` as
//! the issuer. Tokens come from `m2m token --for` against the gateway itself (the MCP flow).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::upstream::{self, Upstream};
use support::{
    Sandbox, ServerProcess, assert_sse_event_by_event,
    assert_streams_a_gib_each_way_in_flat_memory, closed_port, http, metric_sum, stderr, stdout,
    wait_until_listening,
};

/// `m2m serve` with client `svc` (scopes read and admin, allowed the gateway's resource), the
/// open API, and the gateway in front of it.
struct Stack {
    sb: Sandbox,
    _server: ServerProcess,
    issuer: String,
    upstream: Upstream,
    gateway: ServerProcess,
    port: u16,
    admin: u16,
    pem: PathBuf,
}

impl Stack {
    /// The resource identifier (`--audience`): the gateway's own origin.
    fn audience(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn metrics(&self) -> String {
        http(self.admin, "GET", "/metrics", "").1
    }

    /// `m2m token` for client `svc`: `--for` the gateway (discovery through it) or, with
    /// `for_gateway` false, the issuer's default audience (a token for another API).
    fn token(&self, scope: &str, for_gateway: bool) -> String {
        let o = self.token_output(scope, for_gateway);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).trim().to_owned()
    }

    fn token_output(&self, scope: &str, for_gateway: bool) -> std::process::Output {
        let target = if for_gateway {
            ["--for".to_owned(), self.audience()]
        } else {
            ["--issuer".to_owned(), self.issuer.clone()]
        };
        let pem = self.pem.to_str().unwrap();
        let mut args = vec!["token", &target[0], &target[1]];
        args.extend(["--client-id", "svc", "--key", pem, "--kid", "k1"]);
        args.extend(["--scope", scope, "--no-cache"]);
        self.sb.run(&args)
    }
}

fn start(extra: &[&str]) -> Stack {
    start_to(extra, None)
}

/// The stack; `upstream` overrides the gateway's upstream URL (a dead port).
fn start_to(extra: &[&str], upstream_url: Option<String>) -> Stack {
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &["--alg", "ES256"]);
    let port = closed_port();
    let admin = closed_port();
    let audience = format!("http://127.0.0.1:{port}");
    let o = sb.run(&[
        "clients",
        "add",
        "--clients",
        "clients.toml",
        "--id",
        "svc",
        "--jwks",
        jwks.to_str().unwrap(),
        "--scope",
        "read,admin",
        "--resource",
        &audience,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let server_port = closed_port();
    let server = ServerProcess(
        sb.cmd()
            .args(["serve", "--clients", "clients.toml"])
            .args(["--listen", &format!("127.0.0.1:{server_port}")])
            .args(["--replay-store", "memory", "--data-dir", "data"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn m2m serve"),
    );
    wait_until_listening(server_port);
    let issuer = format!("http://127.0.0.1:{server_port}");
    let upstream = upstream::start_open();
    let gateway = ServerProcess(
        sb.cmd()
            .args(["gateway", "--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--upstream",
                &upstream_url.unwrap_or_else(|| upstream.url()),
            ])
            .args(["--issuer", &issuer, "--audience", &audience])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn m2m gateway"),
    );
    wait_until_listening(port);
    wait_until_listening(admin);
    Stack {
        sb,
        _server: server,
        issuer,
        upstream,
        gateway,
        port,
        admin,
        pem,
    }
}

/// One HTTP/1.1 GET with extra header lines: (status, head, body).
fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("connection"))
    {
        request.push_str("Connection: close\r\n");
    }
    request.push_str("\r\n");
    s.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (status, head.to_owned(), body.to_owned())
}

/// The value of header `name` in a response head.
fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// The body of a chunked response, de-chunked (enough for the small JSON answers here).
fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|_| {
        let start = body.find('{').unwrap();
        let end = body.rfind('}').unwrap();
        serde_json::from_str(&body[start..=end]).unwrap()
    })
}

const SPOOFED: [(&str, &str); 3] = [
    ("X-M2M-Client-Id", "admin-client"),
    ("X-M2M-Sub", "root"),
    ("x-m2m-scope", "admin"),
];

#[test]
fn a_valid_token_reaches_the_upstream_with_the_verified_identity_only() {
    let stack = start(&[]);
    let token = stack.token("read", true);
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("Authorization", bearer.as_str())];
    headers.extend(SPOOFED);
    let (status, _, body) = get(stack.port, "/headers", &headers);
    assert_eq!(status, 200, "{body}");
    let seen = json(&body);
    assert_eq!(seen["x-m2m-client-id"], "svc", "{seen}");
    assert_eq!(seen["x-m2m-sub"], "svc", "{seen}");
    assert_eq!(seen["x-m2m-scope"], "read", "{seen}");
    assert!(seen.get("authorization").is_none(), "stripped: {seen}");
    // A caller naming the identity headers in Connection cannot make the gateway drop its own.
    let (status, _, body) = get(
        stack.port,
        "/headers",
        &[
            ("Authorization", &bearer),
            ("Connection", "close, X-M2M-Sub, X-M2M-Client-Id"),
        ],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["x-m2m-sub"], "svc", "{body}");
    let m = stack.metrics();
    // Three decisions: `m2m token --for`'s discovery probe (refused: no token) and the two calls.
    assert_eq!(
        metric_sum(&m, "m2m_gateway_requests_checked_total"),
        3,
        "{m}"
    );
    assert!(
        m.contains("m2m_gateway_requests_checked_total{result=\"verified\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("m2m_gateway_upstream_responses_total{class=\"2xx\"} 2"),
        "{m}"
    );
    assert_eq!(http(stack.admin, "GET", "/healthz", "").0, 200);
}

#[test]
fn keep_authorization_passes_the_callers_token_on() {
    let stack = start(&["--keep-authorization"]);
    let token = stack.token("read", true);
    let bearer = format!("Bearer {token}");
    let (status, _, body) = get(stack.port, "/headers", &[("Authorization", &bearer)]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["authorization"], bearer.as_str());
}

#[test]
fn no_token_is_a_401_challenge_naming_the_served_rfc9728_document() {
    let stack = start(&[]);
    let (status, head, _) = get(stack.port, "/headers", &SPOOFED);
    assert_eq!(status, 401);
    let challenge = header(&head, "www-authenticate").unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(!challenge.contains("error="), "no error code: {challenge}");
    let url = format!("{}/.well-known/oauth-protected-resource", stack.audience());
    assert!(
        challenge.contains(&format!("resource_metadata=\"{url}\"")),
        "{challenge}"
    );
    // A bare-origin resource: the derived URL is the root well-known path.
    let (status, body) = http(
        stack.port,
        "GET",
        "/.well-known/oauth-protected-resource",
        "",
    );
    assert_eq!(status, 200, "{body}");
    let doc = json(&body);
    assert_eq!(doc["resource"], stack.audience().as_str(), "{doc}");
    assert_eq!(doc["authorization_servers"][0], stack.issuer.as_str());
    assert_eq!(doc["bearer_methods_supported"][0], "header");
    assert_eq!(stack.upstream.seen.lock().unwrap().requests, 0);
}

#[test]
fn a_resource_with_a_path_has_its_document_at_the_derived_and_root_urls() {
    // The audience names a path: RFC 9728 §3.1 inserts the well-known segment before it.
    let sb = Sandbox::new();
    let port = closed_port();
    let audience = format!("http://127.0.0.1:{port}/mcp");
    let upstream = upstream::start_open();
    let _gateway = ServerProcess(
        sb.cmd()
            .args(["gateway", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--upstream", &upstream.url()])
            .args(["--issuer", "https://as.example", "--audience", &audience])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_listening(port);
    let (status, head, _) = get(port, "/mcp", &[]);
    assert_eq!(status, 401);
    let derived = format!("http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp");
    assert!(
        header(&head, "www-authenticate")
            .unwrap()
            .contains(&format!("resource_metadata=\"{derived}\"")),
        "{head}"
    );
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let (status, body) = http(port, "GET", path, "");
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(json(&body)["resource"], audience.as_str());
        assert_eq!(
            json(&body)["authorization_servers"][0],
            "https://as.example"
        );
    }
}

#[test]
fn wrong_audience_is_invalid_token_and_a_missing_route_scope_is_insufficient_scope() {
    let stack = start(&["--route", "/admin=admin"]);
    let other = stack.token("read", false);
    let (status, head, _) = get(
        stack.port,
        "/headers",
        &[("Authorization", &format!("Bearer {other}"))],
    );
    assert_eq!(status, 401);
    let challenge = header(&head, "www-authenticate").unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("resource_metadata="), "{challenge}");

    let read = stack.token("read", true);
    let (status, head, _) = get(
        stack.port,
        "/admin/headers",
        &[("Authorization", &format!("Bearer {read}"))],
    );
    assert_eq!(status, 403);
    let challenge = header(&head, "www-authenticate").unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("admin"), "{challenge}");
    assert_eq!(stack.upstream.seen.lock().unwrap().requests, 0);
    // The same token is fine outside the route; one with the admin scope is fine inside.
    let (status, _, _) = get(
        stack.port,
        "/headers",
        &[("Authorization", &format!("Bearer {read}"))],
    );
    assert_eq!(status, 200);
    let admin = stack.token("read admin", true);
    let (status, _, _) = get(
        stack.port,
        "/admin/x",
        &[("Authorization", &format!("Bearer {admin}"))],
    );
    assert_eq!(status, 404, "forwarded: the API has no /admin/x");
    // The two refusals above and the discovery probes of the two `m2m token --for`.
    let m = stack.metrics();
    assert!(
        m.contains("m2m_gateway_requests_checked_total{result=\"refused\"} 4"),
        "{m}"
    );
}

#[test]
fn a_public_prefix_needs_no_token_and_still_gets_no_spoofed_identity() {
    let stack = start(&["--public", "/public"]);
    let (status, _, body) = get(stack.port, "/public/headers", &SPOOFED);
    assert_eq!(status, 200, "{body}");
    let seen = json(&body);
    for (name, _) in SPOOFED {
        assert!(
            seen.get(name.to_ascii_lowercase()).is_none(),
            "{name}: {seen}"
        );
    }
    // Whole segments only, and no way out of the prefix with dot segments.
    assert_eq!(get(stack.port, "/publicx", &[]).0, 401);
    assert_eq!(get(stack.port, "/public/../headers", &[]).0, 400);
    assert_eq!(get(stack.port, "/public/%2e%2e/headers", &[]).0, 400);
    assert_eq!(get(stack.port, "/public%2F..%2Fheaders", &[]).0, 401);
    let m = stack.metrics();
    assert!(
        m.contains("m2m_gateway_requests_checked_total{result=\"public\"} 1"),
        "{m}"
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn sse_arrives_event_by_event() {
    let stack = start(&[]);
    let token = stack.token("read", true);
    let url = format!("{}/sse", stack.audience());
    runtime().block_on(async {
        let r = reqwest::Client::new()
            .get(url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_sse_event_by_event(r).await;
    });
}

/// 1 GiB each way: the gateway's RSS stays within 64 MiB of where it started.
#[test]
fn large_upload_and_download_stream_with_flat_memory() {
    let stack = start(&[]);
    let token = stack.token("read", true);
    let bearer = format!("Bearer {token}");
    // Warm up (keys, verified-token cache, connections), then stream.
    assert_eq!(
        get(stack.port, "/headers", &[("Authorization", &bearer)]).0,
        200
    );
    assert_streams_a_gib_each_way_in_flat_memory(
        stack.gateway.0.id(),
        stack.port,
        Some(&bearer),
        &stack.audience(),
    );
}

#[test]
fn upstream_down_is_a_quick_502_without_detail() {
    let dead = closed_port();
    let stack = start_to(&[], Some(format!("http://127.0.0.1:{dead}")));
    let token = stack.token("read", true);
    let started = Instant::now();
    let (status, _, body) = get(
        stack.port,
        "/headers",
        &[("Authorization", &format!("Bearer {token}"))],
    );
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
    let m = stack.metrics();
    assert_eq!(
        metric_sum(&m, "m2m_gateway_upstream_errors_total"),
        1,
        "{m}"
    );
}

/// The MCP flow against the gateway: `m2m token --for` finds the issuer through the gateway's
/// challenge and document, sends `resource`, gets a token whose `aud` is the resource, and the
/// call through the gateway succeeds.
#[test]
fn token_for_the_gateway_discovers_the_issuer_and_the_call_succeeds() {
    let stack = start(&[]);
    let o = stack.token_output("read", true);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("authorization server {}", stack.issuer)),
        "{}",
        stderr(&o)
    );
    let token = stdout(&o).trim().to_owned();
    let decoded = stack.sb.run(&["decode", &token]);
    let claims =
        serde_json::from_str::<serde_json::Value>(&stdout(&decoded)).unwrap()["claims"].clone();
    assert_eq!(claims["aud"], stack.audience().as_str(), "{claims}");
    let (status, _, body) = get(
        stack.port,
        "/echo",
        &[("Authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(stack.upstream.seen.lock().unwrap().requests, 1);
}

#[test]
fn a_bad_route_rule_is_a_usage_error() {
    let sb = Sandbox::new();
    let o = sb.run(&[
        "gateway",
        "--listen",
        "127.0.0.1:1",
        "--upstream",
        "http://127.0.0.1:2",
        "--issuer",
        "https://as.example",
        "--audience",
        "https://api.example",
        "--route",
        "/admin",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("PREFIX=SCOPE"), "{}", stderr(&o));
}

/// Nothing the gateway logs, even at debug level, contains a token it verified or refused.
#[test]
fn tokens_never_appear_in_the_gateway_log() {
    let stack = start(&[]);
    let good = stack.token("read", true);
    let other = stack.token("read", false);
    let port = closed_port();
    // In a ServerProcess, so a failed assertion still stops it.
    let mut child = ServerProcess(
        stack
            .sb
            .cmd()
            .args(["-vv", "gateway", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--upstream", &stack.upstream.url()])
            .args(["--issuer", &stack.issuer, "--audience", &stack.audience()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_until_listening(port);
    for token in [&good, &other] {
        get(
            port,
            "/headers",
            &[("Authorization", &format!("Bearer {token}"))],
        );
    }
    std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    let mut log = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    child.0.wait().unwrap();
    assert!(
        log.contains("request refused"),
        "the refusal is logged: {log}"
    );
    for token in [&good, &other] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !log.contains(signature),
            "a token's signature is in the log"
        );
    }
}
