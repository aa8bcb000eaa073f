//! Shared helpers for the CLI tests: run the real `m2m` binary in an isolated environment, make
//! keys with it, and a real token endpoint on 127.0.0.1 that verifies assertions.
#![allow(dead_code, missing_docs, unreachable_pub, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use m2m_core::alg::Algorithm;
use m2m_core::jwk::Jwks;
use m2m_core::jws::UnverifiedJws;
use m2m_core::key::PublicKey;

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
        let o = self.run(&[
            "clients",
            "add",
            "--clients",
            "clients.toml",
            "--id",
            id,
            "--jwks",
            jwks.to_str().unwrap(),
        ]);
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

/// How the test token endpoint answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Verifies, then `{"access_token", "token_type": "Bearer", "expires_in": 600}`.
    Standard,
    /// Verifies, then NHS's success body (`"expires_in": "599"`, `issued_at` in ms).
    NhsSuccess,
    /// An NHS error body (alg), status 400.
    NhsAlgError,
    /// 200 with an HTML page.
    Html,
    /// 200, content-type JSON, body not JSON.
    InvalidJson,
    /// 200 JSON without access_token.
    NoAccessToken,
    /// Never answers within the client's timeout.
    Slow,
}

struct EndpointState {
    mode: Mode,
    jwks: Option<Jwks>,
    client_id: String,
    token_url: String,
    requests: AtomicUsize,
}

/// A real HTTP token endpoint on 127.0.0.1, on its own thread and runtime.
pub struct Endpoint {
    pub addr: SocketAddr,
    pub url: String,
    state: Arc<EndpointState>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Endpoint {
    pub fn start(mode: Mode, jwks_path: Option<&Path>, client_id: &str) -> Endpoint {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}/oauth2/token");
        let state = Arc::new(EndpointState {
            mode,
            jwks: jwks_path.map(|p| Jwks::from_slice(&std::fs::read(p).unwrap()).unwrap()),
            client_id: client_id.to_owned(),
            token_url: url.clone(),
            requests: AtomicUsize::new(0),
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new()
            .route("/oauth2/token", axum::routing::post(token))
            .route("/jwks.json", axum::routing::get(jwks_doc))
            .with_state(Arc::clone(&state));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Endpoint {
            addr,
            url,
            state,
            _shutdown: tx,
        }
    }

    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn jwks_doc(State(state): State<Arc<EndpointState>>) -> Response {
    let body = serde_json::to_value(state.jwks.clone().unwrap_or_default()).unwrap();
    json(StatusCode::OK, body)
}

async fn token(
    State(state): State<Arc<EndpointState>>,
    headers: axum::http::HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let n = state.requests.fetch_add(1, Ordering::SeqCst) + 1;
    match state.mode {
        Mode::Html => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body>Sign in</body></html>",
            )
                .into_response();
        }
        Mode::InvalidJson => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "{\"access_token\": ",
            )
                .into_response();
        }
        Mode::NoAccessToken => {
            return json(StatusCode::OK, serde_json::json!({"token_type": "Bearer"}));
        }
        Mode::NhsAlgError => {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({
                    "error": "invalid_request",
                    "error_description": "Invalid 'alg' header in client_assertion JWT - unsupported JWT algorithm - must be 'RS512'",
                    "message_id": "rrt-123-test"
                }),
            );
        }
        Mode::Slow => {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Mode::Standard | Mode::NhsSuccess => {}
    }
    // A real check, not an endpoint that accepts anything.
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let problem = if ct != "application/x-www-form-urlencoded" {
        Some(format!("content-type {ct}"))
    } else if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        Some("grant_type".to_owned())
    } else {
        match (form.get("client_assertion"), &state.jwks) {
            (Some(a), Some(jwks)) => match verify(a, jwks) {
                Err(e) => Some(e),
                Ok(claims) => {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap()
                        .as_secs();
                    let s = |n: &str| {
                        claims
                            .get(n)
                            .and_then(|v| v.as_str())
                            .unwrap_or("")
                            .to_owned()
                    };
                    let exp = claims.get("exp").and_then(|v| v.as_u64()).unwrap_or(0);
                    if s("iss") != state.client_id || s("sub") != state.client_id {
                        Some("iss/sub".to_owned())
                    } else if s("aud") != state.token_url {
                        Some(format!("aud {}", s("aud")))
                    } else if exp <= now || exp > now + 300 || s("jti").is_empty() {
                        Some("exp/jti".to_owned())
                    } else {
                        None
                    }
                }
            },
            _ => Some("no assertion or no keys".to_owned()),
        }
    };
    if let Some(p) = problem {
        return json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": "invalid_client", "error_description": p}),
        );
    }
    if state.mode == Mode::NhsSuccess {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        return json(
            StatusCode::OK,
            serde_json::json!({"access_token": format!("nhs-token-{n}"), "expires_in": "599", "token_type": "Bearer", "issued_at": ms.to_string()}),
        );
    }
    json(
        StatusCode::OK,
        serde_json::json!({"access_token": format!("token-{n}"), "token_type": "Bearer", "expires_in": 600}),
    )
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
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
