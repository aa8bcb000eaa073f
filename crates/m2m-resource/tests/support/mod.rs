//! What the m2m-resource tests share: tokens signed by the independent `jsonwebtoken` crate, and
//! a real loopback issuer (RFC 8414 metadata + JWKS over HTTP) whose behaviour a test scripts
//! (serve keys, hang, 500, junk) and whose JWKS downloads it counts.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use m2m_core::alg::Algorithm;
use m2m_core::ids::{KeyEntry, KeySet, Kid};
use m2m_core::key::PrivateKey;
use serde_json::{Map, Value, json};

pub const AUDIENCE: &str = "https://api.example.com";

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A test key for `alg` (RS256 → RSA-2048, ES256 → P-256, EdDSA → Ed25519).
pub fn key_for(alg: Algorithm) -> Arc<PrivateKey> {
    match alg {
        Algorithm::Es256 => m2m_testkit::keys::p256(),
        Algorithm::EdDsa => m2m_testkit::keys::ed25519(),
        _ => m2m_testkit::keys::rsa2048(),
    }
}

/// The JWK of `key` with `kid`.
pub fn jwk(key: &PrivateKey, kid: &str) -> Value {
    let mut jwk = key.public_key().to_jwk();
    jwk.kid = Some(kid.to_owned());
    serde_json::to_value(jwk).unwrap()
}

pub fn jwks(keys: &[(&PrivateKey, &str)]) -> Value {
    json!({ "keys": keys.iter().map(|(k, kid)| jwk(k, kid)).collect::<Vec<_>>() })
}

pub fn keyset(keys: &[(&PrivateKey, &str)]) -> KeySet {
    KeySet::new(
        keys.iter()
            .map(|(k, kid)| KeyEntry::new(Some(Kid::new(*kid)), k.public_key().clone()))
            .collect(),
    )
}

/// Good RFC 9068 claims for `issuer`.
pub fn claims(issuer: &str) -> Map<String, Value> {
    let now = now_secs();
    let Value::Object(m) = json!({
        "iss": issuer, "sub": "svc", "client_id": "svc", "aud": AUDIENCE,
        "iat": now, "exp": now + 300, "jti": format!("j-{now}-{}", rand_suffix()),
        "scope": "read write",
    }) else {
        unreachable!()
    };
    m
}

fn rand_suffix() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A token signed by `jsonwebtoken` with the key for `alg`, header `typ` and `kid` as given.
pub fn sign(
    alg: Algorithm,
    typ: Option<&str>,
    kid: Option<&str>,
    claims: &Map<String, Value>,
) -> String {
    sign_with(&key_for(alg), alg, typ, kid, claims)
}

pub fn sign_with(
    key: &PrivateKey,
    alg: Algorithm,
    typ: Option<&str>,
    kid: Option<&str>,
    claims: &Map<String, Value>,
) -> String {
    let pem = key.to_pkcs8_pem().unwrap();
    let (jalg, enc) = match alg {
        Algorithm::Es256 => (
            jsonwebtoken::Algorithm::ES256,
            jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()),
        ),
        Algorithm::EdDsa => (
            jsonwebtoken::Algorithm::EdDSA,
            jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes()),
        ),
        _ => (
            jsonwebtoken::Algorithm::RS256,
            jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()),
        ),
    };
    let mut h = jsonwebtoken::Header::new(jalg);
    h.typ = typ.map(str::to_owned);
    h.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&h, claims, &enc.unwrap()).unwrap()
}

/// What the loopback issuer's JWKS endpoint does.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Serve this JWKS.
    Serve(Value),
    /// Never answer.
    Hang,
    /// 500.
    Fail,
    /// 200 with a body that is not a JWKS.
    Junk,
}

#[derive(Debug)]
pub struct IssuerState {
    pub mode: Mutex<Mode>,
    pub fetches: AtomicU64,
    pub issuer: Mutex<String>,
}

/// A real issuer on 127.0.0.1: `/.well-known/oauth-authorization-server` and `/jwks`.
pub struct LoopbackIssuer {
    pub url: String,
    pub state: Arc<IssuerState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LoopbackIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LoopbackIssuer {
    pub async fn start(mode: Mode) -> LoopbackIssuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(IssuerState {
            mode: Mutex::new(mode),
            fetches: AtomicU64::new(0),
            issuer: Mutex::new(url.clone()),
        });
        let app = Router::new()
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .route("/jwks", get(jwks_handler))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        LoopbackIssuer { url, state, task }
    }

    pub fn set(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn fetches(&self) -> u64 {
        self.state.fetches.load(Ordering::SeqCst)
    }
}

async fn metadata(State(state): State<Arc<IssuerState>>) -> Response {
    let issuer = state.issuer.lock().unwrap().clone();
    axum::Json(json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
    }))
    .into_response()
}

async fn jwks_handler(State(state): State<Arc<IssuerState>>) -> Response {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    let mode = state.mode.lock().unwrap().clone();
    match mode {
        Mode::Serve(v) => axum::Json(v).into_response(),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        Mode::Fail => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Mode::Junk => "<html>not a jwks</html>".into_response(),
    }
}
