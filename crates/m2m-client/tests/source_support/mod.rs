//! A real token endpoint for the TokenSource tests: axum on 127.0.0.1 that verifies each client
//! assertion's signature with m2m-core, counts requests, and answers as the test tells it to
//! (200 with a given `expires_in` or access token, an error status with `Retry-After`, slowly).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use m2m_client::source::TokenSource;
use m2m_client::{RetryPolicy, TokenClient};
use m2m_core::alg::Algorithm;
use m2m_core::assertion::CLIENT_ASSERTION_TYPE;
use m2m_core::clock::{Clock, ManualClock, SystemClock, UnixTime};
use m2m_core::jws::UnverifiedJws;
use m2m_core::key::{KeySpec, PrivateKey, PublicKey};
use m2m_core::signer::KeySigner;
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "test-client";
pub const KID: &str = "test-key-1";
/// Where the manual clocks of these tests start.
pub const T0: UnixTime = UnixTime::from_secs(1_700_000_000);

/// How the endpoint answers the next requests.
#[derive(Clone, Debug)]
pub struct Behaviour {
    /// HTTP status; 200 issues a token.
    pub status: u16,
    /// `expires_in` of a 200 answer (None: left out).
    pub expires_in: Option<u64>,
    /// A fixed access token instead of `tok-<n>`.
    pub access_token: Option<String>,
    /// `Retry-After` of an error answer.
    pub retry_after: Option<u64>,
    /// Delay before answering.
    pub delay: Duration,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            status: 200,
            expires_in: Some(600),
            access_token: None,
            retry_after: None,
            delay: Duration::ZERO,
        }
    }
}

pub struct ServerState {
    /// Every request received, valid or not.
    pub requests: AtomicUsize,
    /// Requests whose assertion verified.
    pub verified: AtomicUsize,
    behaviour: Mutex<Behaviour>,
    /// While set, token answers wait for a permit on it (see [`TokenServer::hold`]).
    gate: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
    public_key: PublicKey,
    token_url: String,
}

/// A running token endpoint plus the key its client signs with.
pub struct TokenServer {
    pub token_url: String,
    pub state: Arc<ServerState>,
    pub key: Arc<PrivateKey>,
}

impl TokenServer {
    /// Starts an endpoint on a free loopback port, on the current tokio runtime.
    pub async fn start() -> TokenServer {
        let key = Arc::new(PrivateKey::generate(KeySpec::P256).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let token_url = format!("http://{}/oauth2/token", listener.local_addr().unwrap());
        let state = Arc::new(ServerState {
            requests: AtomicUsize::new(0),
            verified: AtomicUsize::new(0),
            behaviour: Mutex::new(Behaviour::default()),
            gate: Mutex::new(None),
            public_key: key.public_key().clone(),
            token_url: token_url.clone(),
        });
        let app = axum::Router::new()
            .route("/oauth2/token", post(token))
            .with_state(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TokenServer {
            token_url,
            state,
            key,
        }
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.state.behaviour.lock().unwrap() = behaviour;
    }

    /// Holds every token answer until [`TokenServer::release`]: makes "the refresh is still in
    /// flight" a fact rather than a race.
    pub fn hold(&self) {
        *self.state.gate.lock().unwrap() = Some(Arc::new(tokio::sync::Semaphore::new(0)));
    }

    /// Lets held and future answers through.
    pub fn release(&self) {
        if let Some(gate) = self.state.gate.lock().unwrap().take() {
            gate.close();
        }
    }

    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    pub fn verified(&self) -> usize {
        self.state.verified.load(Ordering::SeqCst)
    }

    /// A client for this endpoint that sends exactly one request per fetch.
    pub fn client(&self) -> TokenClient {
        self.client_with(RetryPolicy::never())
    }

    pub fn client_with(&self, retry: RetryPolicy) -> TokenClient {
        let signer =
            KeySigner::new(Arc::clone(&self.key), Algorithm::Es256, Some(KID.into())).unwrap();
        TokenClient::builder()
            .token_url(&self.token_url)
            .client_id(CLIENT_ID)
            .signer(Arc::new(signer))
            .retry_policy(retry)
            // Paused-time tests must not see a request timeout fire while real I/O is pending.
            .timeout(None)
            .connect_timeout(None)
            .build()
            .unwrap()
    }

    /// A source on this endpoint with a manual clock starting at [`T0`].
    pub fn source(&self) -> (TokenSource, ManualClock) {
        let clock = ManualClock::new(T0);
        let source = TokenSource::builder(Arc::new(self.client()))
            .clock(Arc::new(clock.clone()))
            .build();
        (source, clock)
    }
}

async fn token(
    State(state): State<Arc<ServerState>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let n = state.requests.fetch_add(1, Ordering::SeqCst) + 1;
    if let Err(reason) = verify(&state, &form) {
        let body = json!({"error": "invalid_client", "error_description": reason});
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    state.verified.fetch_add(1, Ordering::SeqCst);
    let b = state.behaviour.lock().unwrap().clone();
    let gate = state.gate.lock().unwrap().clone();
    if let Some(gate) = gate {
        // Closed on release: acquire then fails and the answer goes out.
        let _ = gate.acquire().await;
    }
    if !b.delay.is_zero() {
        tokio::time::sleep(b.delay).await;
    }
    let status = StatusCode::from_u16(b.status).unwrap();
    if b.status != 200 {
        let mut headers = HeaderMap::new();
        if let Some(secs) = b.retry_after {
            headers.insert("retry-after", HeaderValue::from(secs));
        }
        let body = json!({"error": "temporarily_unavailable"});
        return (status, headers, axum::Json(body)).into_response();
    }
    let mut body = json!({
        "access_token": b.access_token.unwrap_or_else(|| format!("tok-{n}")),
        "token_type": "Bearer",
    });
    if let Some(e) = b.expires_in {
        // NHS sends it as a string.
        body["expires_in"] = Value::String(e.to_string());
    }
    (status, axum::Json(body)).into_response()
}

/// Checks the request the way a real authorization server does: form, signature, claims.
fn verify(state: &ServerState, form: &HashMap<String, String>) -> Result<(), String> {
    let field = |name: &str| form.get(name).map(String::as_str);
    if field("grant_type") != Some("client_credentials") {
        return Err("grant_type".into());
    }
    if field("client_assertion_type") != Some(CLIENT_ASSERTION_TYPE) {
        return Err("client_assertion_type".into());
    }
    let jws = UnverifiedJws::parse(field("client_assertion").ok_or("no assertion")?)
        .map_err(|e| e.to_string())?;
    if jws.alg() != Some("ES256") || jws.kid() != Some(KID) {
        return Err("alg/kid".into());
    }
    jws.verify(&state.public_key, Algorithm::Es256)
        .map_err(|e| format!("signature: {e}"))?;
    let claims = jws.claims().map_err(|e| e.to_string())?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(CLIENT_ID) || text("sub") != Some(CLIENT_ID) {
        return Err("iss/sub".into());
    }
    if text("aud") != Some(state.token_url.as_str()) {
        return Err("aud".into());
    }
    let exp = claims.get("exp").and_then(Value::as_u64).ok_or("exp")?;
    if exp <= SystemClock.now().as_secs() {
        return Err("expired assertion".into());
    }
    Ok(())
}

/// A JWT access token (signed by a throwaway key) expiring at `exp`.
pub fn jwt_access_token(exp: UnixTime) -> String {
    let key = Arc::new(PrivateKey::generate(KeySpec::P256).unwrap());
    let signer = KeySigner::new(key, Algorithm::Es256, None).unwrap();
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), json!("svc"));
    claims.insert("exp".into(), json!(exp.as_secs()));
    m2m_core::jws::sign_compact(&serde_json::Map::new(), &claims, &signer).unwrap()
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
