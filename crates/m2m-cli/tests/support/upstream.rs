//! A real API on 127.0.0.1 for the `m2m proxy` and `m2m call` tests: it verifies every bearer
//! token's signature against `m2m serve`'s published JWKS (401 `invalid_token` otherwise) and
//! records what arrived, so a test can see exactly what the upstream saw. The `m2m gateway`
//! tests start it open ([`start_open`]: the gateway verifies, the API trusts its headers), and
//! `/headers` echoes the request headers as JSON.

#![allow(clippy::result_large_err)] // handlers answer with a whole Response either way

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use futures_util::StreamExt as _;
use m2m_core::alg::Algorithm;
use m2m_core::jwk::Jwks;
use m2m_core::jws::UnverifiedJws;
use m2m_core::key::PublicKey;

/// What the upstream saw.
#[derive(Default, Debug)]
pub struct Seen {
    /// Every `Authorization` header value, in order.
    pub authorizations: Vec<String>,
    /// Every `DPoP` header value.
    pub dpop: Vec<String>,
    /// Tokens to refuse once with 401 invalid_token (`/reject-first`).
    pub refused: Vec<String>,
    /// Requests that reached a handler.
    pub requests: usize,
    /// Hop-by-hop headers that arrived (they must not).
    pub hop_by_hop: Vec<String>,
    /// The peer address of each `/echo` request (the proxy's connection to this API).
    pub peers: Vec<SocketAddr>,
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Seen>>,
    _runtime: tokio::runtime::Runtime,
}

impl Upstream {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

#[derive(Clone)]
struct Api {
    /// `None`: open, every request accepted (behind `m2m gateway`).
    jwks: Option<Arc<Jwks>>,
    seen: Arc<Mutex<Seen>>,
}

/// Starts the API (its own runtime) trusting the JWKS served by `m2m serve` at `issuer`.
pub fn start(issuer: &str) -> Upstream {
    let runtime = runtime();
    let jwks_url = format!("{issuer}/.well-known/jwks.json");
    let jwks = runtime.block_on(async {
        let body = reqwest::get(&jwks_url)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        Jwks::from_slice(&body).unwrap()
    });
    serve(runtime, Some(Arc::new(jwks)))
}

/// Starts the API accepting every request without a token (what sits behind `m2m gateway`).
pub fn start_open() -> Upstream {
    serve(runtime(), None)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn serve(runtime: tokio::runtime::Runtime, jwks: Option<Arc<Jwks>>) -> Upstream {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let api = Api {
        jwks,
        seen: Arc::clone(&seen),
    };
    let app = Router::new()
        .route("/headers", any(headers))
        .route("/public/headers", any(headers))
        .route("/echo", any(echo))
        .route("/reject-first", any(reject_first))
        .route("/sse", get(sse))
        .route("/upload", any(upload))
        .route("/download/{bytes}", get(download))
        .route("/status/{code}", any(status))
        .route("/slow", get(slow))
        .with_state(api);
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    Upstream {
        addr,
        seen,
        _runtime: runtime,
    }
}

fn invalid_token() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            r#"Bearer realm="test", error="invalid_token""#,
        )],
        "invalid token\n",
    )
        .into_response()
}

impl Api {
    /// Records the request and checks its token: `Ok(token)` when it verifies.
    fn check(&self, headers: &HeaderMap) -> Result<String, Response> {
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        {
            let mut seen = self.seen.lock().unwrap();
            seen.requests += 1;
            if let Some(a) = &auth {
                seen.authorizations.push(a.clone());
            }
            if let Some(d) = headers.get("dpop").and_then(|v| v.to_str().ok()) {
                seen.dpop.push(d.to_owned());
            }
            for hop in [
                "connection",
                "keep-alive",
                "te",
                "upgrade",
                "proxy-authorization",
                "x-hop",
            ] {
                if headers.contains_key(hop) {
                    seen.hop_by_hop.push(hop.to_owned());
                }
            }
        }
        let Some(jwks) = &self.jwks else {
            return Ok(String::new());
        };
        let token = auth
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .ok_or_else(invalid_token)?;
        verify(token, jwks).map_err(|_| invalid_token())?;
        Ok(token.to_owned())
    }
}

fn verify(token: &str, jwks: &Jwks) -> Result<(), String> {
    let jws = UnverifiedJws::parse(token).map_err(|e| e.to_string())?;
    let kid = jws.kid().ok_or("no kid")?;
    let jwk = jwks.find(kid).ok_or("unknown kid")?;
    let alg = Algorithm::from_name(jws.alg().ok_or("no alg")?).ok_or("bad alg")?;
    let key = PublicKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    jws.verify(&key, alg).map_err(|e| e.to_string())
}

/// The request's headers as a JSON object (name → value; repeated names joined with `, `).
async fn headers(State(api): State<Api>, request: Request) -> Response {
    if let Err(r) = api.check(request.headers()) {
        return r;
    }
    let mut map = serde_json::Map::new();
    for (name, value) in request.headers() {
        let value = value.to_str().unwrap_or("<binary>").to_owned();
        match map.get_mut(name.as_str()) {
            Some(serde_json::Value::String(v)) => {
                v.push_str(", ");
                v.push_str(&value);
            }
            _ => {
                map.insert(name.as_str().to_owned(), value.into());
            }
        }
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::Value::Object(map).to_string(),
    )
        .into_response()
}

async fn echo(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    if let Err(r) = api.check(request.headers()) {
        return r;
    }
    api.seen.lock().unwrap().peers.push(peer);
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap();
    (StatusCode::OK, body).into_response()
}

/// Refuses the first token it sees, for good (the client must come back with a new one), and
/// echoes the body for any other valid token.
async fn reject_first(State(api): State<Api>, request: Request) -> Response {
    let token = match api.check(request.headers()) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let refuse = {
        let mut seen = api.seen.lock().unwrap();
        if seen.refused.is_empty() {
            seen.refused.push(token.clone());
        }
        seen.refused.contains(&token)
    };
    if refuse {
        return invalid_token();
    }
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap();
    (StatusCode::OK, body).into_response()
}

/// Three server-sent events, 400 ms apart.
async fn sse(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(r) = api.check(&headers) {
        return r;
    }
    let events = futures_util::stream::iter(0..3).then(|i| async move {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        Ok::<_, std::convert::Infallible>(Bytes::from(format!("data: event {i}\n\n")))
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(events),
    )
        .into_response()
}

/// Counts the uploaded bytes without keeping them.
async fn upload(State(api): State<Api>, request: Request) -> Response {
    if let Err(r) = api.check(request.headers()) {
        return r;
    }
    let mut stream = request.into_body().into_data_stream();
    let mut n: u64 = 0;
    while let Some(chunk) = stream.next().await {
        n += chunk.unwrap().len() as u64;
    }
    n.to_string().into_response()
}

/// `bytes` bytes of zeros, streamed in 64 KiB chunks.
async fn download(State(api): State<Api>, headers: HeaderMap, Path(bytes): Path<u64>) -> Response {
    if let Err(r) = api.check(&headers) {
        return r;
    }
    const CHUNK: u64 = 64 * 1024;
    let chunks = bytes.div_ceil(CHUNK);
    let stream = futures_util::stream::iter(0..chunks).map(move |i| {
        let len = CHUNK.min(bytes - i * CHUNK) as usize;
        Ok::<_, std::convert::Infallible>(Bytes::from(vec![0u8; len]))
    });
    Body::from_stream(stream).into_response()
}

async fn status(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(code): Path<u16>,
    Query(_q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if let Err(r) = api.check(&headers) {
        return r;
    }
    (
        StatusCode::from_u16(code).unwrap(),
        [("x-upstream", "yes")],
        format!("status {code}\n"),
    )
        .into_response()
}

async fn slow(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(r) = api.check(&headers) {
        return r;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    "slow\n".into_response()
}
