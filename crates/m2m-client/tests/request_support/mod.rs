//! A real token endpoint on 127.0.0.1 for the request tests: it verifies every client assertion
//! (signature with the client's public key, iss/sub/aud/exp, jti uniqueness, exact Content-Type,
//! form fields), counts requests, and answers from a per-test script.
#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use m2m_client::TokenClientBuilder;
use m2m_core::alg::Algorithm;
use m2m_core::jws::UnverifiedJws;
use m2m_core::key::{KeySpec, PrivateKey};
use m2m_core::signer::{KeySigner, Signer};

pub const CLIENT_ID: &str = "test-api-key";
pub const KID: &str = "test-1";

/// One RSA-2048 key per test binary: generating is the slow part.
pub fn key() -> Arc<PrivateKey> {
    static KEY: OnceLock<Arc<PrivateKey>> = OnceLock::new();
    KEY.get_or_init(|| Arc::new(PrivateKey::generate(KeySpec::Rsa { bits: 2048 }).unwrap()))
        .clone()
}

pub fn signer(alg: Algorithm) -> Arc<dyn Signer> {
    Arc::new(KeySigner::new(key(), alg, Some(KID.to_owned())).unwrap())
}

/// A scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Sleep before answering (for timeout tests).
    pub delay: Option<Duration>,
}

impl Reply {
    pub fn json(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", "application/json".to_owned())],
            body: body.to_owned(),
            delay: None,
        }
    }
    pub fn nhs_ok() -> Reply {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        Reply::json(
            200,
            &format!(
                r#"{{"access_token":"nhs-access-token-1","expires_in":"599","token_type":"Bearer","issued_at":"{ms}"}}"#
            ),
        )
    }
    pub fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_owned()));
        self
    }
    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = Some(d);
        self
    }
}

/// What the server saw for one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: tokio::time::Instant,
    pub method: String,
    pub content_type: Option<String>,
    pub jti: Option<String>,
    pub alg: Option<String>,
    pub typ: Option<String>,
    pub form: Vec<(String, String)>,
    /// Every check that failed; must be empty for a well-behaved client.
    pub problems: Vec<String>,
}

pub struct ServerState {
    pub aud: Mutex<String>,
    pub script: Mutex<Vec<Reply>>,
    pub count: AtomicUsize,
    pub other_hits: AtomicUsize,
    pub seen: Mutex<Vec<Seen>>,
    pub jtis: Mutex<HashSet<String>>,
    /// Documents served on GET by path (discovery metadata).
    pub docs: Mutex<HashMap<String, String>>,
}

pub struct TestServer {
    pub url: String,
    pub state: Arc<ServerState>,
}

impl TestServer {
    /// Starts a server answering `/token` from `script` (the last reply repeats). `aud` defaults
    /// to the token URL.
    pub async fn start(script: Vec<Reply>) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let state = Arc::new(ServerState {
            aud: Mutex::new(url.clone()),
            script: Mutex::new(script),
            count: AtomicUsize::new(0),
            other_hits: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            jtis: Mutex::new(HashSet::new()),
            docs: Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route("/token", any(token))
            .route("/elsewhere", any(elsewhere))
            .fallback(document)
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TestServer { url, state }
    }

    /// `http://127.0.0.1:port`, no trailing slash.
    pub fn base(&self) -> String {
        self.url.trim_end_matches("/token").to_owned()
    }

    /// Serves `body` as JSON on GET `path`.
    pub fn serve_doc(&self, path: &str, body: &str) {
        self.state
            .docs
            .lock()
            .unwrap()
            .insert(path.to_owned(), body.to_owned());
    }

    pub fn expect_aud(&self, aud: &str) {
        *self.state.aud.lock().unwrap() = aud.to_owned();
    }

    pub fn requests(&self) -> usize {
        self.state.count.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Panics if any request failed verification.
    pub fn assert_all_valid(&self) {
        for (i, s) in self.seen().iter().enumerate() {
            assert!(s.problems.is_empty(), "request {i}: {:?}", s.problems);
        }
    }

    /// A builder aimed at this server, RS512 with kid, fast retries.
    pub fn client(&self) -> TokenClientBuilder {
        m2m_client::TokenClient::builder()
            .token_url(&self.url)
            .client_id(CLIENT_ID)
            .signer(signer(Algorithm::Rs512))
            .retry_policy(m2m_client::RetryPolicy::default().base_delay(Duration::from_millis(5)))
    }
}

async fn document(State(state): State<Arc<ServerState>>, uri: Uri) -> Response {
    match state.docs.lock().unwrap().get(uri.path()) {
        Some(body) => Reply::json(200, body).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn elsewhere(State(state): State<Arc<ServerState>>) -> Response {
    state.other_hits.fetch_add(1, Ordering::SeqCst);
    Reply::nhs_ok().into_response()
}

async fn token(
    State(state): State<Arc<ServerState>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let index = state.count.fetch_add(1, Ordering::SeqCst);
    let seen = verify(&state, &method, &headers, &body);
    state.seen.lock().unwrap().push(seen);
    let reply = {
        let script = state.script.lock().unwrap();
        script.get(index).or(script.last()).cloned().unwrap()
    };
    if let Some(d) = reply.delay {
        tokio::time::sleep(d).await;
    }
    reply.into_response()
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = (StatusCode::from_u16(self.status).unwrap(), self.body).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value.parse().unwrap());
        }
        response
    }
}

fn verify(state: &ServerState, method: &Method, headers: &HeaderMap, body: &[u8]) -> Seen {
    let mut problems = Vec::new();
    let content_type = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    if method != Method::POST {
        problems.push(format!("method {method}"));
    }
    if content_type.as_deref() != Some("application/x-www-form-urlencoded") {
        problems.push(format!("content-type {content_type:?}"));
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let field = |name: &str| {
        let values: Vec<&String> = form
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v)
            .collect();
        match values.as_slice() {
            [v] => Some((*v).clone()),
            _ => None,
        }
    };
    if field("grant_type").as_deref() != Some("client_credentials") {
        problems.push("grant_type".to_owned());
    }
    if field("client_assertion_type").as_deref()
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        problems.push("client_assertion_type".to_owned());
    }
    let mut seen = Seen {
        at: tokio::time::Instant::now(),
        method: method.to_string(),
        content_type,
        jti: None,
        alg: None,
        typ: None,
        form: form.clone(),
        problems: Vec::new(),
    };
    let Some(assertion) = field("client_assertion") else {
        problems.push("client_assertion missing".to_owned());
        seen.problems = problems;
        return seen;
    };
    let jws = match UnverifiedJws::parse(&assertion) {
        Ok(j) => j,
        Err(e) => {
            problems.push(format!("unparseable assertion: {e}"));
            seen.problems = problems;
            return seen;
        }
    };
    seen.alg = jws.alg().map(str::to_owned);
    seen.typ = jws.typ().map(str::to_owned);
    let alg = jws.alg().and_then(Algorithm::from_name);
    match alg {
        Some(alg) => {
            if let Err(e) = jws.verify(key().public_key(), alg) {
                problems.push(format!("signature: {e}"));
            }
        }
        None => problems.push(format!("alg {:?}", jws.alg())),
    }
    if jws.kid() != Some(KID) {
        problems.push(format!("kid {:?}", jws.kid()));
    }
    let claims = jws.claims().unwrap();
    let s = |name: &str| claims.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    if s("iss").as_deref() != Some(CLIENT_ID) || s("sub").as_deref() != Some(CLIENT_ID) {
        problems.push(format!("iss/sub {:?}/{:?}", s("iss"), s("sub")));
    }
    let aud = state.aud.lock().unwrap().clone();
    if s("aud").as_deref() != Some(aud.as_str()) {
        problems.push(format!("aud {:?} != {aud:?}", claims.get("aud")));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    match claims.get("exp").and_then(|v| v.as_u64()) {
        Some(exp) if exp >= now && exp <= now + 310 => {}
        other => problems.push(format!("exp {other:?} (now {now})")),
    }
    match s("jti") {
        Some(jti) if !jti.is_empty() => {
            if !state.jtis.lock().unwrap().insert(jti.clone()) {
                problems.push(format!("replayed jti {jti}"));
            }
            seen.jti = Some(jti);
        }
        other => problems.push(format!("jti {other:?}")),
    }
    seen.problems = problems;
    seen
}

/// A loopback port with nothing listening: bind, note the port, drop the listener.
pub async fn dead_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/token")
}
