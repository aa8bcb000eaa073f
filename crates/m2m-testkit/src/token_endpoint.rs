//! A real OAuth 2.0 token endpoint on 127.0.0.1 for client tests: it verifies every client
//! assertion the way an authorization server does, answers from a scripted queue of [`Reply`]s,
//! and records each request for the test to inspect.
//!
//! Why a verifying fake: a fake that accepts anything lets a client that sends a broken
//! assertion pass its tests. Each token request is checked for: method `POST`, the exact form
//! media type, `grant_type` and `client_assertion_type` present once with the right values, a
//! parseable assertion whose `kid` names a registered key and whose signature verifies with it
//! (through m2m-core, with the algorithm of the header), `iss` = `sub` = the client id, `aud` =
//! the expected audience (the token URL unless set), `now < exp <= now + 300 s`, and a non-empty
//! `jti` never seen before by this endpoint.
//!
//! A request that fails a check is answered `401 invalid_client` with the problems as
//! `error_description` and does not use up a scripted reply; with
//! [`EndpointBuilder::answer_invalid`] it is answered from the script anyway, so a test can show
//! that the endpoint did notice (the problems are in [`Request::problems`]).
//!
//! With [`EndpointBuilder::dpop`] every token request must also carry one `DPoP` proof (RFC
//! 9449) that m2m-core's validator accepts for `POST` to the token URL, with a `jti` never seen
//! before; a token reply then says `token_type: DPoP` (unless the reply sets another). With
//! [`EndpointBuilder::dpop_nonce`] a proof without the current nonce is answered `400
//! use_dpop_nonce` with a `DPoP-Nonce` header, as RFC 9449 §8 has it, before the script is
//! consulted.
//!
//! With [`EndpointBuilder::federated`] the endpoint expects a federated workload credential
//! instead of a signed assertion: the JWT the test wrote (set with
//! [`TokenEndpoint::expect_assertion`], compared byte for byte) as the client assertion of a
//! client-credentials request, or as the `assertion` of the RFC 7523 §2.1 jwt-bearer grant (with
//! no client assertion, and `client_id`, if sent, the builder's). A mismatch is a problem like
//! any other (answered `invalid_grant` for the grant form), and its text never holds the JWT.
//!
//! Replies are taken from the front of the queue; the last one repeats. Numbered tokens
//! (`token-<n>`, `nhs-token-<n>`) use the 1-based count of token requests received.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use m2m_core::alg::Algorithm;
use m2m_core::ids::{KeyEntry, KeySet, Kid};
use m2m_core::jwk::Jwks;
use m2m_core::jws::UnverifiedJws;
use m2m_core::key::PublicKey;
use m2m_core::validate::{DpopReason, DpopRequest, DpopValidator};
use m2m_core::wire::{
    CLIENT_ASSERTION_TYPE, FORM_MEDIA_TYPE, GRANT_CLIENT_CREDENTIALS, GRANT_JWT_BEARER,
    MAX_ASSERTION_LIFETIME,
};
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;

/// The token path unless [`EndpointBuilder::path`] sets another.
pub const DEFAULT_PATH: &str = "/oauth2/token";

/// One scripted answer: a status, a body, extra headers and an optional delay.
#[derive(Clone, Debug)]
pub struct Reply {
    status: u16,
    body: Body,
    headers: Vec<(String, String)>,
    delay: Duration,
}

#[derive(Clone, Debug)]
enum Body {
    /// A token response built when answering (numbered tokens, NHS's `issued_at` of now).
    Token {
        access_token: Option<String>,
        expires_in: Option<Value>,
        nhs: bool,
        token_type: Option<String>,
    },
    /// Bytes as given.
    Text(String),
}

impl Reply {
    /// `200 {"access_token": "token-<n>", "token_type": "Bearer", "expires_in": 600}`.
    pub fn token() -> Reply {
        Reply {
            status: 200,
            body: Body::Token {
                access_token: None,
                expires_in: Some(json!(600)),
                nhs: false,
                token_type: None,
            },
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            delay: Duration::ZERO,
        }
    }

    /// NHS's success shape: `200 {"access_token": "nhs-token-<n>", "expires_in": "599",
    /// "token_type": "Bearer", "issued_at": "<now in ms>"}` (numbers as strings).
    pub fn nhs_token() -> Reply {
        Reply {
            body: Body::Token {
                access_token: None,
                expires_in: Some(json!("599")),
                nhs: true,
                token_type: None,
            },
            ..Reply::token()
        }
    }

    /// `status` with `body` as given and `Content-Type: application/json` (the body need not be
    /// JSON: broken bodies are a test case).
    pub fn json(status: u16, body: impl Into<String>) -> Reply {
        Reply::text(status, "application/json", body)
    }

    /// `status` with an RFC 6749 §5.2 error body `{"error": error}`.
    pub fn error(status: u16, error: &str) -> Reply {
        Reply::json(status, json!({ "error": error }).to_string())
    }

    /// `status` with `body` of `content_type` (an HTML proxy page, plain text).
    pub fn text(status: u16, content_type: &str, body: impl Into<String>) -> Reply {
        Reply {
            status,
            body: Body::Text(body.into()),
            headers: vec![("content-type".to_owned(), content_type.to_owned())],
            delay: Duration::ZERO,
        }
    }

    /// `status` with an empty body and no `Content-Type`.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            body: Body::Text(String::new()),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// A fixed access token instead of the numbered one (token replies only).
    pub fn access_token(mut self, token: impl Into<String>) -> Reply {
        if let Body::Token { access_token, .. } = &mut self.body {
            *access_token = Some(token.into());
        }
        self
    }

    /// Another `expires_in` member, or none (token replies only).
    pub fn expires_in(mut self, value: Option<Value>) -> Reply {
        if let Body::Token { expires_in, .. } = &mut self.body {
            *expires_in = value;
        }
        self
    }

    /// Another `token_type` (token replies only). Default: `DPoP` when the request carried a
    /// valid DPoP proof to an endpoint built with [`EndpointBuilder::dpop`], else `Bearer`.
    pub fn token_type(mut self, value: &str) -> Reply {
        if let Body::Token { token_type, .. } = &mut self.body {
            *token_type = Some(value.to_owned());
        }
        self
    }

    /// Adds a header (replacing one of the same name, e.g. `content-type`).
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        let name = name.to_ascii_lowercase();
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.to_owned()));
        self
    }

    /// Adds `Retry-After: <secs>`.
    pub fn retry_after(self, secs: u64) -> Reply {
        self.header("retry-after", &secs.to_string())
    }

    /// Waits `delay` before answering (tokio time, so paused-time tests control it).
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    fn render(&self, n: usize) -> Response {
        self.render_as(n, "Bearer")
    }

    /// Renders with `default_type` as the token reply's `token_type` unless it set its own.
    fn render_as(&self, n: usize, default_type: &str) -> Response {
        let text = match &self.body {
            Body::Text(text) => text.clone(),
            Body::Token {
                access_token,
                expires_in,
                nhs,
                token_type,
            } => {
                let prefix = if *nhs { "nhs-token" } else { "token" };
                let mut body = Map::new();
                let token = access_token
                    .clone()
                    .unwrap_or_else(|| format!("{prefix}-{n}"));
                body.insert("access_token".into(), json!(token));
                body.insert(
                    "token_type".into(),
                    json!(token_type.as_deref().unwrap_or(default_type)),
                );
                if let Some(e) = expires_in {
                    body.insert("expires_in".into(), e.clone());
                }
                if *nhs {
                    body.insert("issued_at".into(), json!(now_millis().to_string()));
                }
                Value::Object(body).to_string()
            }
        };
        let status = StatusCode::from_u16(self.status).expect("a valid HTTP status");
        let mut response = (status, text).into_response();
        // The body's default text/plain goes; only the reply's own headers are sent.
        response.headers_mut().remove("content-type");
        for (name, value) in &self.headers {
            response.headers_mut().insert(
                HeaderName::try_from(name.as_str()).expect("a valid header name"),
                HeaderValue::try_from(value.as_str()).expect("a valid header value"),
            );
        }
        response
    }
}

/// What the endpoint received in one token request, and what it found wrong with it.
#[derive(Clone, Debug)]
pub struct Request {
    /// When it arrived (tokio time: paused-time tests measure backoff with it).
    pub at: tokio::time::Instant,
    /// The HTTP method.
    pub method: String,
    /// Every header, names lower-case, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The form fields in order (repeats kept).
    pub form: Vec<(String, String)>,
    /// The assertion header's `alg`.
    pub alg: Option<String>,
    /// The assertion header's `typ`.
    pub typ: Option<String>,
    /// The assertion header's `kid`.
    pub kid: Option<String>,
    /// The assertion's `jti`.
    pub jti: Option<String>,
    /// The assertion's claims, when it parsed.
    pub claims: Option<Map<String, Value>>,
    /// The thumbprint of the DPoP proof's key, when a proof was sent and accepted.
    pub dpop_jkt: Option<String>,
    /// The `nonce` claim of the DPoP proof, when it had one.
    pub dpop_nonce: Option<String>,
    /// Why the DPoP proof was refused (the validator's reason, e.g. `nonce_missing`), if it was.
    pub dpop_refused: Option<String>,
    /// Every check that failed, each starting with the checked item (`aud …`, `signature: …`);
    /// empty for a well-behaved client.
    pub problems: Vec<String>,
}

impl Request {
    /// The value of form field `name` (the first, if repeated).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of header `name` (case-insensitive; the first, if repeated).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How a federated workload credential is presented (see [`EndpointBuilder::federated`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FederatedForm {
    /// As the client assertion of a client-credentials request (RFC 7523 §2.2).
    ClientAssertion,
    /// As the jwt-bearer grant (RFC 7523 §2.1).
    Grant,
}

/// How to start a [`TokenEndpoint`].
#[derive(Debug)]
pub struct EndpointBuilder {
    client_id: String,
    keys: Vec<KeyEntry>,
    path: String,
    audience: Option<String>,
    answer_invalid: bool,
    replies: Vec<Reply>,
    dpop: bool,
    dpop_nonce: Option<String>,
    federated: Option<FederatedForm>,
}

impl EndpointBuilder {
    /// Expects a federated credential in `form` instead of a signed client assertion: the JWT
    /// set with [`TokenEndpoint::expect_assertion`], byte for byte.
    pub fn federated(mut self, form: FederatedForm) -> Self {
        self.federated = Some(form);
        self
    }

    /// Requires a valid DPoP proof on every token request (see the module docs).
    pub fn dpop(mut self) -> Self {
        self.dpop = true;
        self
    }

    /// Requires DPoP proofs with `nonce`, asking for it with `400 use_dpop_nonce` (implies
    /// [`EndpointBuilder::dpop`]).
    pub fn dpop_nonce(mut self, nonce: &str) -> Self {
        self.dpop = true;
        self.dpop_nonce = Some(nonce.to_owned());
        self
    }

    /// Registers a verification key under `kid` (the assertion's `kid` must name it).
    pub fn key(mut self, kid: &str, key: PublicKey) -> Self {
        self.keys.push(KeyEntry::new(Some(Kid::new(kid)), key));
        self
    }

    /// Registers every key of a public JWKS (each under its `kid`).
    pub fn jwks(mut self, jwks: &Jwks) -> Self {
        for jwk in &jwks.keys {
            let key = PublicKey::from_jwk(jwk).expect("a usable public JWK");
            self.keys
                .push(KeyEntry::new(jwk.kid.clone().map(Kid::new), key));
        }
        self
    }

    /// Serves the token endpoint on `path` instead of [`DEFAULT_PATH`].
    pub fn path(mut self, path: &str) -> Self {
        self.path = path.to_owned();
        self
    }

    /// Expects `aud` = `audience` instead of the token URL.
    pub fn audience(mut self, audience: &str) -> Self {
        self.audience = Some(audience.to_owned());
        self
    }

    /// Answers invalid requests from the script too (their problems are still recorded): for
    /// tests that show the endpoint notices a bad assertion the client does not.
    pub fn answer_invalid(mut self) -> Self {
        self.answer_invalid = true;
        self
    }

    /// The scripted replies, in order; the last one repeats. Default: [`Reply::token`].
    pub fn replies(mut self, replies: impl IntoIterator<Item = Reply>) -> Self {
        self.replies = replies.into_iter().collect();
        self
    }

    /// Starts the endpoint on the current tokio runtime (it lives as long as the runtime).
    pub async fn start(self) -> TokenEndpoint {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let (endpoint, app) = self.into_parts(addr);
        tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("serve the token endpoint");
        });
        endpoint
    }

    /// Starts the endpoint on its own thread and runtime, for tests without a runtime (e.g. ones
    /// that run the CLI binary); it shuts down when the [`TokenEndpoint`] is dropped.
    pub fn start_in_background(self) -> TokenEndpoint {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let (mut endpoint, app) = self.into_parts(addr);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the token endpoint");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = rx.await;
                    })
                    .await
                    .expect("serve the token endpoint");
            });
        });
        endpoint._shutdown = Some(tx);
        endpoint
    }

    fn into_parts(self, addr: SocketAddr) -> (TokenEndpoint, Router) {
        let base = format!("http://{addr}");
        let url = format!("{base}{}", self.path);
        let replies = if self.replies.is_empty() {
            vec![Reply::token()]
        } else {
            self.replies
        };
        let shared = Arc::new(Shared {
            client_id: self.client_id,
            keys: KeySet::new(self.keys),
            audience: Mutex::new(self.audience.unwrap_or_else(|| url.clone())),
            answer_invalid: self.answer_invalid,
            replies: Mutex::new(replies.into()),
            others: Mutex::default(),
            requests: AtomicUsize::new(0),
            verified: AtomicUsize::new(0),
            seen: Mutex::default(),
            jtis: Mutex::default(),
            gate: Mutex::default(),
            dpop: self.dpop,
            dpop_nonce: Mutex::new(self.dpop_nonce),
            dpop_jtis: Mutex::default(),
            url: url.clone(),
            federated: self.federated,
            expected_assertion: Mutex::default(),
        });
        let app = Router::new()
            .route(&self.path, any(token))
            .fallback(other)
            .with_state(Arc::clone(&shared));
        let endpoint = TokenEndpoint {
            addr,
            url,
            base,
            shared,
            _shutdown: None,
        };
        (endpoint, app)
    }
}

/// Another path's reply and how often it was asked for.
#[derive(Debug)]
struct Other {
    reply: Reply,
    hits: usize,
}

#[derive(Debug)]
struct Shared {
    client_id: String,
    keys: KeySet,
    audience: Mutex<String>,
    answer_invalid: bool,
    replies: Mutex<VecDeque<Reply>>,
    others: Mutex<HashMap<String, Other>>,
    requests: AtomicUsize,
    verified: AtomicUsize,
    seen: Mutex<Vec<Request>>,
    jtis: Mutex<HashSet<String>>,
    /// While set, token answers wait for a permit on it (see [`TokenEndpoint::hold`]).
    gate: Mutex<Option<Arc<Semaphore>>>,
    /// Whether token requests must carry a DPoP proof.
    dpop: bool,
    /// The nonce DPoP proofs must carry, if any.
    dpop_nonce: Mutex<Option<String>>,
    /// DPoP proof `jti`s seen (single use).
    dpop_jtis: Mutex<HashSet<String>>,
    /// The token URL, the `htu` proofs must name.
    url: String,
    /// Whether (and how) a federated credential is expected instead of a signed assertion.
    federated: Option<FederatedForm>,
    /// The federated JWT the test wrote.
    expected_assertion: Mutex<Option<String>>,
}

/// A running token endpoint. See the module docs for what it checks.
#[derive(Debug)]
pub struct TokenEndpoint {
    addr: SocketAddr,
    url: String,
    base: String,
    shared: Arc<Shared>,
    /// Dropping it shuts down a background endpoint.
    _shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TokenEndpoint {
    /// An endpoint for client `client_id` (the expected `iss` and `sub`); register its keys on
    /// the builder.
    pub fn builder(client_id: &str) -> EndpointBuilder {
        EndpointBuilder {
            client_id: client_id.to_owned(),
            keys: Vec::new(),
            path: DEFAULT_PATH.to_owned(),
            audience: None,
            answer_invalid: false,
            replies: Vec::new(),
            dpop: false,
            dpop_nonce: None,
            federated: None,
        }
    }

    /// The federated JWT the next requests must present (byte for byte), for an endpoint built
    /// with [`EndpointBuilder::federated`].
    pub fn expect_assertion(&self, jwt: &str) {
        *lock(&self.shared.expected_assertion) = Some(jwt.to_owned());
    }

    /// Requires `nonce` in DPoP proofs from now on (the next proof without it is answered `400
    /// use_dpop_nonce`): a nonce rotation.
    pub fn set_dpop_nonce(&self, nonce: &str) {
        *lock(&self.shared.dpop_nonce) = Some(nonce.to_owned());
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The token URL, `http://127.0.0.1:PORT/<path>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Replaces the script with `reply` (answering every later request).
    pub fn set(&self, reply: Reply) {
        *lock(&self.shared.replies) = VecDeque::from([reply]);
    }

    /// Appends `reply` to the script.
    pub fn push(&self, reply: Reply) {
        lock(&self.shared.replies).push_back(reply);
    }

    /// Expects `aud` = `audience` from now on.
    pub fn expect_audience(&self, audience: &str) {
        *lock(&self.shared.audience) = audience.to_owned();
    }

    /// Answers any request to `path` (other than the token path) with `reply`, counting them
    /// (discovery documents, a JWKS, a redirect target).
    pub fn serve(&self, path: &str, reply: Reply) {
        lock(&self.shared.others).insert(path.to_owned(), Other { reply, hits: 0 });
    }

    /// How many requests `path` (served with [`TokenEndpoint::serve`]) received.
    pub fn hits(&self, path: &str) -> usize {
        lock(&self.shared.others).get(path).map_or(0, |o| o.hits)
    }

    /// Holds every token answer until [`TokenEndpoint::release`]: makes "the request is still
    /// in flight" a fact rather than a race.
    pub fn hold(&self) {
        *lock(&self.shared.gate) = Some(Arc::new(Semaphore::new(0)));
    }

    /// Lets held and later answers through.
    pub fn release(&self) {
        if let Some(gate) = lock(&self.shared.gate).take() {
            gate.close();
        }
    }

    /// Token requests received, valid or not.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Token requests that passed every check.
    pub fn verified(&self) -> usize {
        self.shared.verified.load(Ordering::SeqCst)
    }

    /// Every token request received, in order.
    pub fn seen(&self) -> Vec<Request> {
        lock(&self.shared.seen).clone()
    }

    /// Panics if any token request failed a check.
    #[track_caller]
    pub fn assert_all_valid(&self) {
        for (i, request) in self.seen().iter().enumerate() {
            assert!(
                request.problems.is_empty(),
                "request {i}: {:?}",
                request.problems
            );
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not hide the endpoint's state from the next assertion.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn now_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis()
}

async fn other(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    let reply = {
        let mut others = lock(&shared.others);
        match others.get_mut(uri.path()) {
            Some(o) => {
                o.hits += 1;
                Some((o.reply.clone(), o.hits))
            }
            None => None,
        }
    };
    match reply {
        Some((reply, n)) => reply.render(n),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn token(
    State(shared): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let n = shared.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let request = inspect(&shared, &method, &headers, &body);
    let problems = request.problems.join("; ");
    let proof_ok = shared.dpop && request.dpop_jkt.is_some();
    let nonce_wanted = request.dpop_refused.as_deref().is_some_and(|r| {
        r == DpopReason::NonceMissing.as_str() || r == DpopReason::NonceMismatch.as_str()
    });
    lock(&shared.seen).push(request);
    if nonce_wanted && problems.is_empty() {
        let nonce = lock(&shared.dpop_nonce).clone().unwrap_or_default();
        let body = json!({"error": "use_dpop_nonce", "error_description": "DPoP proof must carry the server's nonce"});
        return Reply::json(400, body.to_string())
            .header("dpop-nonce", &nonce)
            .render(n);
    }
    if problems.is_empty() {
        shared.verified.fetch_add(1, Ordering::SeqCst);
    } else if !shared.answer_invalid {
        // RFC 7523 §3.1: a refused grant is invalid_grant; a refused client, invalid_client.
        let error = if shared.federated == Some(FederatedForm::Grant) {
            "invalid_grant"
        } else {
            "invalid_client"
        };
        let body = json!({"error": error, "error_description": problems});
        return Reply::json(401, body.to_string()).render(n);
    }
    let reply = {
        let mut replies = lock(&shared.replies);
        if replies.len() > 1 {
            replies.pop_front()
        } else {
            replies.front().cloned()
        }
    }
    .expect("a scripted reply");
    let gate = lock(&shared.gate).clone();
    if let Some(gate) = gate {
        // Closed on release: acquiring then fails and the answer goes out.
        let _ = gate.acquire().await;
    }
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    reply.render_as(n, if proof_ok { "DPoP" } else { "Bearer" })
}

/// Runs every check on one token request and records what it saw.
fn inspect(shared: &Shared, method: &Method, headers: &HeaderMap, body: &[u8]) -> Request {
    let mut problems = Vec::new();
    let header_list: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (k.as_str().to_owned(), value)
        })
        .collect();
    let content_type = headers
        .get("content-type")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if method != Method::POST {
        problems.push(format!("method {method}"));
    }
    if content_type.as_deref() != Some(FORM_MEDIA_TYPE) {
        problems.push(format!("content-type {content_type:?}"));
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let mut request = Request {
        at: tokio::time::Instant::now(),
        method: method.to_string(),
        headers: header_list,
        content_type,
        form,
        alg: None,
        typ: None,
        kid: None,
        jti: None,
        claims: None,
        dpop_jkt: None,
        dpop_nonce: None,
        dpop_refused: None,
        problems: Vec::new(),
    };
    check_assertion(shared, &mut request, &mut problems);
    if shared.dpop {
        check_dpop(shared, headers, &mut request, &mut problems);
    }
    request.problems = problems;
    request
}

/// The value of a form field that must appear exactly once.
fn single<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let mut values = form.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
    match (values.next(), values.next()) {
        (Some(v), None) => Some(v.as_str()),
        _ => None,
    }
}

/// A federated credential in the expected form, equal to the JWT the test wrote.
fn check_federated(
    shared: &Shared,
    form_wanted: FederatedForm,
    request: &Request,
    problems: &mut Vec<String>,
) {
    let form = &request.form;
    let presented = match form_wanted {
        FederatedForm::Grant => {
            if single(form, "grant_type") != Some(GRANT_JWT_BEARER) {
                problems.push("grant_type (expected the jwt-bearer grant)".to_owned());
            }
            if form.iter().any(|(k, _)| k.starts_with("client_assertion")) {
                problems.push("client_assertion sent with the jwt-bearer grant".to_owned());
            }
            single(form, "assertion")
        }
        FederatedForm::ClientAssertion => {
            if single(form, "grant_type") != Some(GRANT_CLIENT_CREDENTIALS) {
                problems.push("grant_type".to_owned());
            }
            if single(form, "client_assertion_type") != Some(CLIENT_ASSERTION_TYPE) {
                problems.push("client_assertion_type".to_owned());
            }
            if form.iter().any(|(k, _)| k == "assertion") {
                problems.push("assertion sent with a client assertion".to_owned());
            }
            single(form, "client_assertion")
        }
    };
    if let Some(id) = single(form, "client_id")
        && id != shared.client_id
    {
        problems.push(format!("client_id {id:?}"));
    }
    let expected = lock(&shared.expected_assertion).clone();
    match (presented, expected) {
        (None, _) => problems.push("assertion missing (or repeated)".to_owned()),
        (Some(_), None) => problems.push("no assertion expected yet".to_owned()),
        (Some(p), Some(e)) if p.as_bytes() != e.as_bytes() => problems.push(format!(
            "assertion differs from the one the test wrote ({} bytes, expected {})",
            p.len(),
            e.len()
        )),
        _ => {}
    }
}

fn check_assertion(shared: &Shared, request: &mut Request, problems: &mut Vec<String>) {
    if let Some(form_wanted) = shared.federated {
        check_federated(shared, form_wanted, request, problems);
        return;
    }
    let form = request.form.clone();
    if single(&form, "grant_type") != Some(GRANT_CLIENT_CREDENTIALS) {
        problems.push("grant_type".to_owned());
    }
    if single(&form, "client_assertion_type") != Some(CLIENT_ASSERTION_TYPE) {
        problems.push("client_assertion_type".to_owned());
    }
    let Some(assertion) = single(&form, "client_assertion") else {
        problems.push("client_assertion missing".to_owned());
        return;
    };
    let jws = match UnverifiedJws::parse(assertion) {
        Ok(jws) => jws,
        Err(e) => {
            problems.push(format!("unparseable assertion: {e}"));
            return;
        }
    };
    request.alg = jws.alg().map(str::to_owned);
    request.typ = jws.typ().map(str::to_owned);
    request.kid = jws.kid().map(str::to_owned);
    let key = jws.kid().and_then(|kid| shared.keys.by_kid(kid));
    match (jws.alg().and_then(Algorithm::from_name), key) {
        (Some(alg), Some(entry)) => {
            if let Err(e) = jws.verify(&entry.key, alg) {
                problems.push(format!("signature: {e}"));
            }
        }
        (None, _) => problems.push(format!("alg {:?}", jws.alg())),
        (_, None) => problems.push(format!("kid {:?}", jws.kid())),
    }
    let claims = match jws.claims() {
        Ok(claims) => claims,
        Err(e) => {
            problems.push(format!("claims: {e}"));
            return;
        }
    };
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(shared.client_id.as_str())
        || text("sub") != Some(shared.client_id.as_str())
    {
        problems.push(format!("iss/sub {:?}/{:?}", text("iss"), text("sub")));
    }
    let audience = lock(&shared.audience).clone();
    if text("aud") != Some(audience.as_str()) {
        problems.push(format!("aud {:?} != {audience:?}", claims.get("aud")));
    }
    let now = now_secs();
    match claims.get("exp").and_then(Value::as_u64) {
        Some(exp) if exp > now && exp <= now + MAX_ASSERTION_LIFETIME.as_secs() => {}
        other => problems.push(format!("exp {other:?} (now {now})")),
    }
    match text("jti") {
        Some(jti) if !jti.is_empty() => {
            if !lock(&shared.jtis).insert(jti.to_owned()) {
                problems.push(format!("replayed jti {jti}"));
            }
            request.jti = Some(jti.to_owned());
        }
        other => problems.push(format!("jti {other:?}")),
    }
    request.claims = Some(claims);
}

/// The DPoP proof of a token request, checked by m2m-core's validator: one `DPoP` header, `POST`
/// to the token URL, the current nonce if one is required, a `jti` never seen before. A missing
/// or stale nonce is not a problem (the client cannot know it before the first answer): it is
/// recorded in [`Request::dpop_refused`] and answered `use_dpop_nonce`.
fn check_dpop(
    shared: &Shared,
    headers: &HeaderMap,
    request: &mut Request,
    problems: &mut Vec<String>,
) {
    let proofs: Vec<&HeaderValue> = headers.get_all("dpop").iter().collect();
    let proof = match proofs.as_slice() {
        [one] => one.to_str().unwrap_or_default(),
        [] => {
            problems.push("dpop: no DPoP header".to_owned());
            return;
        }
        _ => {
            problems.push("dpop: more than one DPoP header".to_owned());
            return;
        }
    };
    if let Ok(jws) = UnverifiedJws::parse(proof)
        && let Ok(claims) = jws.claims()
    {
        request.dpop_nonce = claims
            .get("nonce")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    let nonce = lock(&shared.dpop_nonce).clone();
    let nonces: Vec<&str> = nonce.as_deref().into_iter().collect();
    let now =
        m2m_core::clock::UnixTime::from_millis(u64::try_from(now_millis()).unwrap_or(u64::MAX));
    let check = DpopRequest::new("POST", &shared.url).nonces(&nonces);
    match DpopValidator::default().validate(proof, &check, now) {
        Ok(verified) => {
            if !lock(&shared.dpop_jtis).insert(verified.jti.clone()) {
                problems.push(format!("dpop: replayed proof jti {}", verified.jti));
            }
            request.dpop_jkt = Some(verified.jkt);
        }
        Err(rejection) => {
            request.dpop_refused = Some(rejection.reason.as_str().to_owned());
            if !matches!(
                rejection.reason,
                DpopReason::NonceMissing | DpopReason::NonceMismatch
            ) {
                problems.push(format!("dpop: {rejection}"));
            }
        }
    }
}
