//! The CLI tests' own helpers: run the real `m2m` binary in an isolated environment, make keys
//! with it, and point it at the shared verifying token endpoint (`m2m_testkit::token_endpoint`).
//! `fault` drives `m2m serve` children for the process-level fault tests; `hygiene` holds the
//! secret-leak scans.
#![allow(dead_code, missing_docs, unreachable_pub, clippy::unwrap_used)]

pub mod fault;
pub mod hygiene;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use m2m_core::alg::Algorithm;
use m2m_core::jwk::Jwks;
use m2m_core::jws::UnverifiedJws;
use m2m_core::key::PublicKey;
pub use m2m_testkit::token_endpoint::{Reply, TokenEndpoint};

/// Environment variables a developer's shell could set that would change what the tests see.
const ISOLATE: &[&str] = &[
    "M2M_PROFILE",
    "M2M_TOKEN_URL",
    "M2M_ENV",
    "M2M_ISSUER",
    "M2M_CLIENT_ID",
    "M2M_KEY",
    "M2M_KID",
    "M2M_ALG",
    "M2M_AUD",
    "M2M_LIFETIME",
    "M2M_SCOPE",
    "M2M_KEY_PASSPHRASE",
    "M2M_CONFIG",
    "M2M_NO_CACHE",
    "M2M_TIMEOUT",
    "M2M_ATTEMPTS",
    "M2M_OUT",
    "M2M_BITS",
    "M2M_LINT",
    "M2M_DANGEROUS_ALLOW_INSECURE_HTTP",
    "M2M_DPOP",
    "M2M_DPOP_KEY",
    "M2M_ASSERTION_FILE",
    "M2M_ASSERTION_CMD",
    "M2M_ASSERTION_TIMEOUT",
    "M2M_ASSERTION_ENV",
    "M2M_ASSERTION_GITHUB",
    "M2M_ASSERTION_AUDIENCE",
    "M2M_GRANT",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "RUST_LOG",
];

/// A sandbox: its own HOME, config and cache dirs.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Sandbox {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_m2m"));
        for var in ISOLATE {
            cmd.env_remove(var);
        }
        cmd.env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join("config"))
            .env("XDG_CACHE_HOME", self.path().join("cache"))
            .current_dir(self.path());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run m2m")
    }

    /// `m2m clients add --clients clients.toml --id ID --jwks JWKS`, which must succeed.
    pub fn register(&self, id: &str, jwks: &Path) {
        self.register_with(id, jwks, &[]);
    }

    /// `register` with more `clients add` flags (`--scope`, `--resource`, `--dpop`, …).
    pub fn register_with(&self, id: &str, jwks: &Path, extra: &[&str]) {
        let jwks = jwks.to_str().unwrap();
        let mut args = vec!["clients", "add", "--clients", "clients.toml", "--id", id];
        args.extend(["--jwks", jwks]);
        args.extend(extra);
        let o = self.run(&args);
        assert!(o.status.success(), "clients add failed: {}", stderr(&o));
    }

    /// `m2m keygen --bits 2048` (small and quick); returns (pem, jwks) paths.
    pub fn keygen(&self, kid: &str, extra: &[&str]) -> (PathBuf, PathBuf) {
        let out = self.path().join("keys");
        let mut args = vec!["keygen", "--kid", kid, "--out", out.to_str().unwrap()];
        if !extra.contains(&"--alg") {
            args.extend(["--bits", "2048"]);
        }
        args.extend(extra);
        let o = self.run(&args);
        assert!(o.status.success(), "keygen failed: {}", stderr(&o));
        (
            out.join(format!("{kid}.pem")),
            out.join(format!("{kid}.jwks.json")),
        )
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit code and that stderr mentions `needle`; returns stderr.
#[track_caller]
pub fn assert_fails(o: &Output, code: i32, needle: &str) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "exit code; stderr: {err}");
    assert!(
        err.starts_with("error: "),
        "stderr starts with error: — {err}"
    );
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "stderr should mention {needle:?}: {err}"
    );
    assert!(
        o.stdout.is_empty(),
        "stdout must stay empty on error: {}",
        stdout(o)
    );
    err
}

/// Verifies a compact JWS against a public JWKS file; returns the claims.
pub fn verify_with_jwks(
    token: &str,
    jwks_path: &Path,
) -> serde_json::Map<String, serde_json::Value> {
    let jwks = Jwks::from_slice(&std::fs::read(jwks_path).unwrap()).unwrap();
    verify(token, &jwks).expect("assertion verifies")
}

fn verify(token: &str, jwks: &Jwks) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let jws = UnverifiedJws::parse(token).map_err(|e| e.to_string())?;
    let kid = jws.kid().ok_or("no kid")?;
    let jwk = jwks.find(kid).ok_or("unknown kid")?;
    let alg = Algorithm::from_name(jws.alg().ok_or("no alg")?).ok_or("bad alg")?;
    let key = PublicKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    jws.verify(&key, alg).map_err(|e| e.to_string())?;
    jws.claims().map_err(|e| e.to_string())
}

/// A token endpoint on 127.0.0.1 (its own thread and runtime, so the sync CLI tests can use
/// it) for `client_id`, verifying assertions with the keys of the public JWKS at `jwks_path`, and
/// answering `reply`.
pub fn endpoint(reply: Reply, jwks_path: &Path, client_id: &str) -> TokenEndpoint {
    let jwks = Jwks::from_slice(&std::fs::read(jwks_path).unwrap()).unwrap();
    TokenEndpoint::builder(client_id)
        .jwks(&jwks)
        .replies([reply])
        .start_in_background()
}

/// NHS's answer to an assertion signed with anything but RS512.
pub fn nhs_alg_error() -> Reply {
    Reply::json(
        400,
        serde_json::json!({
            "error": "invalid_request",
            "error_description": "Invalid 'alg' header in client_assertion JWT - unsupported JWT algorithm - must be 'RS512'",
            "message_id": "rrt-123-test"
        })
        .to_string(),
    )
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    m2m_testkit::net::free_port()
}

/// A server child process (only the one the test started), killed when the test ends.
pub struct ServerProcess(pub std::process::Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request on loopback with a form body: (status, body).
pub fn http(port: u16, method: &str, path: &str, form: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// One HTTP/1.1 request with `Host: 127.0.0.1:PORT` and extra headers: (status, head, body).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(text.as_bytes()).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (status, head.to_owned(), body.to_owned())
}

/// Every value of header `name` in a response head.
pub fn headers(head: &str, name: &str) -> Vec<String> {
    head.lines()
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
        .collect()
}

/// `m2m serve` (rfc profile, memory replay store) with client `svc` registered from a fresh
/// key, plus the test API trusting its keys: what the `call` and `proxy` tests run against.
pub struct Stack {
    pub sb: Sandbox,
    pub server: Option<ServerProcess>,
    pub server_port: u16,
    pub upstream: upstream::Upstream,
    pub pem: PathBuf,
}

impl Stack {
    pub fn start() -> Stack {
        let sb = Sandbox::new();
        let (pem, jwks) = sb.keygen("k1", &[]);
        sb.register("svc", &jwks);
        let server_port = closed_port();
        let child = sb
            .cmd()
            .args(["serve", "--clients", "clients.toml"])
            .args(["--listen", &format!("127.0.0.1:{server_port}")])
            .args(["--replay-store", "memory", "--data-dir", "data"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn m2m serve");
        let server = ServerProcess(child);
        wait_until_listening(server_port);
        let upstream = upstream::start(&format!("http://127.0.0.1:{server_port}"));
        Stack {
            sb,
            server: Some(server),
            server_port,
            upstream,
            pem,
        }
    }

    /// The token flags for client `svc` (discovery from the issuer).
    pub fn token_flags(&self) -> Vec<String> {
        [
            "--issuer",
            &format!("http://127.0.0.1:{}", self.server_port),
            "--client-id",
            "svc",
            "--key",
            self.pem.to_str().unwrap(),
            "--kid",
            "k1",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    /// Token requests `m2m serve` has answered (from its /metrics).
    pub fn token_requests(&self) -> u64 {
        let (_, metrics) = http(self.server_port, "GET", "/metrics", "");
        metric_sum(&metrics, "m2m_token_requests_total")
    }
}

/// The sum of a metric's samples (all label sets) in Prometheus text.
pub fn metric_sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Waits until something accepts connections on the loopback port.
pub fn wait_until_listening(port: u16) {
    for _ in 0..400 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("nothing started listening on {port}");
}

/// A process's resident memory in KiB, from /proc (the streaming tests' flat-memory check).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Streams 1 GiB up (`POST /upload` in 64 KiB writes, the test API answers the byte count) and
/// 1 GiB down (`GET download_url`, read chunk by chunk) through the forwarder listening on
/// `port` (process `pid`), with `authorization` on both requests when given, and checks that
/// its RSS, sampled from /proc every 20 ms, stays within 64 MiB of where it started: a proxy
/// that buffered a body would grow by the body.
pub fn assert_streams_a_gib_each_way_in_flat_memory(
    pid: u32,
    port: u16,
    authorization: Option<&str>,
    download_url: &str,
) {
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    const SIZE: u64 = 1024 * 1024 * 1024;
    let baseline = rss_kib(pid);
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut max = 0;
            while !done.load(Ordering::Relaxed) {
                max = max.max(rss_kib(pid));
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            max
        })
    };
    let auth_line = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /upload HTTP/1.1\r\nHost: x\r\n{auth_line}Connection: close\r\n\
         Content-Length: {SIZE}\r\n\r\n"
    )
    .unwrap();
    let piece = vec![7u8; 64 * 1024];
    for _ in 0..SIZE / piece.len() as u64 {
        s.write_all(&piece).unwrap();
    }
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with(&SIZE.to_string()), "{response}");
    let received = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut request = reqwest::Client::new().get(format!("{download_url}/download/{SIZE}"));
        if let Some(a) = authorization {
            request = request.header("authorization", a);
        }
        let mut r = request.send().await.unwrap();
        assert_eq!(r.status(), 200);
        let mut n = 0u64;
        while let Some(chunk) = r.chunk().await.unwrap() {
            n += chunk.len() as u64;
        }
        n
    });
    assert_eq!(received, SIZE);
    done.store(true, Ordering::Relaxed);
    let max = sampler.join().unwrap();
    assert!(
        max < baseline + 64 * 1024,
        "RSS grew from {baseline} KiB to {max} KiB while streaming 2 x 1 GiB"
    );
}

/// Reads the test API's `/sse` answer (three events, sent 400 ms apart) as it arrives and checks
/// that each event came on its own, not all at the end: what MCP's Streamable HTTP needs from
/// anything between client and server.
pub async fn assert_sse_event_by_event(mut r: reqwest::Response) {
    use std::time::{Duration, Instant};
    assert_eq!(r.status(), 200);
    let start = Instant::now();
    let mut arrivals = Vec::new();
    let mut text = String::new();
    while let Some(chunk) = r.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            arrivals.push((text[..end].to_owned(), start.elapsed()));
            text.drain(..end + 2);
        }
    }
    let names: Vec<&str> = arrivals.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names, ["data: event 0", "data: event 1", "data: event 2"]);
    assert!(arrivals[0].1 < Duration::from_millis(300), "{arrivals:?}");
    assert!(arrivals[1].1 >= Duration::from_millis(300), "{arrivals:?}");
    assert!(
        arrivals[2].1 - arrivals[1].1 >= Duration::from_millis(300),
        "{arrivals:?}"
    );
}
