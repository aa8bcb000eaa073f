//! DPoP on API calls (RFC 9449 §7): the reqwest middleware, the tower layer and the blocking
//! source send `Authorization: DPoP <token>` with a fresh proof that a loopback API verifies
//! with m2m-core's validator (htm, htu as the client addressed it, ath, the key's thumbprint,
//! single-use jti), and a `401 use_dpop_nonce` costs exactly one retry, after which the nonce is
//! remembered. Tokens come from the shared verifying token endpoint in DPoP mode.
#![allow(clippy::unwrap_used)]
#![cfg_attr(
    not(all(
        feature = "reqwest-middleware",
        feature = "tower",
        feature = "blocking"
    )),
    allow(dead_code, unused_imports)
)]

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use m2m_client::source::TokenSource;
use m2m_client::{DpopKey, TokenClient};
use m2m_core::alg::Algorithm;
use m2m_core::clock::{Clock, SystemClock};
use m2m_core::validate::{DpopReason, DpopRequest, DpopValidator};
use m2m_testkit::token_endpoint::{Reply, TokenEndpoint};
use support::request::{CLIENT_ID, KID, key, signer};

/// The nonce the API asks for when it demands one.
const API_NONCE: &str = "api-nonce-1";

/// What the API saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    status: u16,
    jti: Option<String>,
    nonce: bool,
}

struct ApiState {
    /// The URL clients address (the proof's htu must match it).
    url: Mutex<String>,
    /// The thumbprint tokens are bound to.
    jkt: String,
    /// Demand this nonce (asked for once with 401 use_dpop_nonce when a proof lacks it).
    nonce: Option<String>,
    jtis: Mutex<HashSet<String>>,
    seen: Mutex<Vec<Seen>>,
}

struct Api {
    state: Arc<ApiState>,
}

impl Api {
    fn url(&self) -> String {
        self.state.url.lock().unwrap().clone()
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

fn challenge(error: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(r#"DPoP algs="ES256", error="{error}""#)).unwrap()
}

/// The resource server: verifies the DPoP scheme, the proof and its jti; asks for a nonce.
async fn verify(
    State(state): State<Arc<ApiState>>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let record = |status: StatusCode, jti: Option<String>, nonce: bool| {
        state.seen.lock().unwrap().push(Seen {
            status: status.as_u16(),
            jti,
            nonce,
        });
    };
    let refuse = |error: &str| {
        let mut r = StatusCode::UNAUTHORIZED.into_response();
        r.headers_mut().insert("www-authenticate", challenge(error));
        r
    };
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(token) = auth.strip_prefix("DPoP ") else {
        record(StatusCode::UNAUTHORIZED, None, false);
        return refuse("invalid_token");
    };
    let proofs: Vec<_> = headers.get_all("dpop").iter().collect();
    let [proof] = proofs.as_slice() else {
        record(StatusCode::UNAUTHORIZED, None, false);
        return refuse("invalid_dpop_proof");
    };
    let url = state.url.lock().unwrap().clone();
    let nonces: Vec<&str> = state.nonce.iter().map(String::as_str).collect();
    let request = DpopRequest::new(method.as_str(), &url)
        .access_token(token)
        .bound_to(&state.jkt)
        .nonces(&nonces);
    match DpopValidator::default().validate(proof.to_str().unwrap(), &request, SystemClock.now()) {
        Ok(verified) => {
            if !state.jtis.lock().unwrap().insert(verified.jti.clone()) {
                record(StatusCode::UNAUTHORIZED, Some(verified.jti), false);
                return refuse("invalid_dpop_proof");
            }
            record(StatusCode::OK, Some(verified.jti), !nonces.is_empty());
            (StatusCode::OK, format!("ok {method}")).into_response()
        }
        Err(e)
            if matches!(
                e.reason,
                DpopReason::NonceMissing | DpopReason::NonceMismatch
            ) =>
        {
            record(StatusCode::UNAUTHORIZED, None, false);
            let mut r = refuse("use_dpop_nonce");
            r.headers_mut()
                .insert("dpop-nonce", HeaderValue::from_static(API_NONCE));
            r
        }
        Err(e) => {
            record(StatusCode::BAD_REQUEST, None, false);
            (
                StatusCode::UNAUTHORIZED,
                format!("refused: {}", e.reason.as_str()),
            )
                .into_response()
        }
    }
}

fn api_router(state: &Arc<ApiState>) -> axum::Router {
    axum::Router::new()
        .route("/api", any(verify))
        .with_state(Arc::clone(state))
}

fn api_state(jkt: &str, demand_nonce: bool) -> Arc<ApiState> {
    Arc::new(ApiState {
        url: Mutex::new(String::new()),
        jkt: jkt.to_owned(),
        nonce: demand_nonce.then(|| API_NONCE.to_owned()),
        jtis: Mutex::default(),
        seen: Mutex::default(),
    })
}

/// Starts the API on a loopback port of the current runtime.
async fn start_api(jkt: &str, demand_nonce: bool) -> Api {
    let state = api_state(jkt, demand_nonce);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    *state.url.lock().unwrap() = format!("http://{}/api", listener.local_addr().unwrap());
    let app = api_router(&state);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Api { state }
}

/// A DPoP token endpoint and a client with `dpop`.
async fn token_endpoint() -> TokenEndpoint {
    TokenEndpoint::builder(CLIENT_ID)
        .key(KID, key().public_key().clone())
        .replies([Reply::token()])
        .dpop()
        .start()
        .await
}

fn client(endpoint: &TokenEndpoint, dpop: &DpopKey) -> TokenClient {
    TokenClient::builder()
        .token_url(endpoint.url())
        .client_id(CLIENT_ID)
        .signer(signer(Algorithm::Rs256))
        .dpop(dpop.clone())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_dpop_token_knows_its_key_and_a_bearer_answer_stays_bearer() {
    let dpop = DpopKey::ephemeral().unwrap();
    let server = token_endpoint().await;
    let source = TokenSource::new(client(&server, &dpop));
    let token = source.token().await.unwrap();
    assert!(token.is_dpop());
    assert_eq!(token.dpop_key().unwrap().thumbprint(), dpop.thumbprint());
    let debug = format!("{token:?}");
    assert!(!debug.contains(token.secret()), "{debug}");

    // A server that answers Bearer to a DPoP request: accepted, sent as Bearer.
    let bearer = TokenEndpoint::builder(CLIENT_ID)
        .key(KID, key().public_key().clone())
        .replies([Reply::token().token_type("Bearer")])
        .dpop()
        .start()
        .await;
    let source = TokenSource::new(client(&bearer, &dpop));
    let token = source.token().await.unwrap();
    assert!(!token.is_dpop());
    let auth = token
        .authorization("GET", "https://api.example/", None, SystemClock.now())
        .unwrap();
    assert!(auth.authorization().starts_with("Bearer "));
    assert_eq!(auth.dpop(), None);
}

#[cfg(feature = "reqwest-middleware")]
#[tokio::test]
async fn middleware_sends_verified_proofs_and_retries_once_for_a_nonce() {
    use m2m_client::integrations::middleware::BearerMiddleware;

    let dpop = DpopKey::ephemeral().unwrap();
    let server = token_endpoint().await;
    let api = start_api(dpop.thumbprint(), true).await;
    let source = TokenSource::new(client(&server, &dpop));
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BearerMiddleware::new(source))
        .build();
    let response = http.post(api.url()).body("x").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok POST");
    let seen = api.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].status, 401);
    assert!(seen[1].status == 200 && seen[1].nonce);
    // The nonce is remembered: the next request goes through at once, with a fresh proof.
    let again = http.get(format!("{}?q=1", api.url())).send().await.unwrap();
    assert_eq!(again.status(), 200);
    let seen = api.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_ne!(seen[1].jti, seen[2].jti);
    assert_eq!(server.requests(), 1);
    server.assert_all_valid();
}

#[cfg(feature = "reqwest-middleware")]
#[tokio::test]
async fn middleware_a_proof_per_request_without_a_nonce() {
    use m2m_client::integrations::middleware::BearerMiddleware;

    let dpop = DpopKey::ephemeral().unwrap();
    let server = token_endpoint().await;
    let api = start_api(dpop.thumbprint(), false).await;
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BearerMiddleware::new(TokenSource::new(client(
            &server, &dpop,
        ))))
        .build();
    for _ in 0..3 {
        assert_eq!(http.get(api.url()).send().await.unwrap().status(), 200);
    }
    let seen = api.seen();
    assert_eq!(seen.len(), 3);
    let jtis: HashSet<_> = seen.iter().map(|s| s.jti.clone()).collect();
    assert_eq!(jtis.len(), 3);
}

#[cfg(feature = "tower")]
#[tokio::test]
async fn tower_layer_sends_verified_proofs_and_the_retrying_layer_does_the_nonce_round() {
    use axum::http::Request;
    use m2m_client::integrations::tower::BearerLayer;
    use tower::{Layer, Service as _, ServiceExt};

    let dpop = DpopKey::ephemeral().unwrap();
    let server = token_endpoint().await;
    let source = TokenSource::new(client(&server, &dpop));
    // The inner service is the API's router itself (standing in for a hyper client): the
    // request's absolute URI is what the proof names.
    let url = "http://api.example/api";
    let plain = api_state(dpop.thumbprint(), false);
    *plain.url.lock().unwrap() = url.to_owned();
    let mut svc = BearerLayer::new(source.clone()).layer(api_router(&plain));
    for _ in 0..2 {
        let request = Request::get(url).body(axum::body::Body::empty()).unwrap();
        let response = ServiceExt::<Request<axum::body::Body>>::ready(&mut svc)
            .await
            .unwrap()
            .call(request)
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(plain.seen.lock().unwrap().len(), 2);

    let demanding = api_state(dpop.thumbprint(), true);
    *demanding.url.lock().unwrap() = url.to_owned();
    let mut svc = BearerLayer::new(source.clone())
        .retrying()
        .layer(api_router(&demanding));
    let request = Request::put(url).body("body".to_owned()).unwrap();
    let response = ServiceExt::<Request<String>>::ready(&mut svc)
        .await
        .unwrap()
        .call(request)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = demanding.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].status, 401);
    assert!(seen[1].nonce);

    // Without retry, the nonce round answers 401 but the nonce is remembered for the next one.
    let once = api_state(dpop.thumbprint(), true);
    *once.url.lock().unwrap() = url.to_owned();
    let mut svc = BearerLayer::new(source).layer(api_router(&once));
    let first = Request::get(url).body(axum::body::Body::empty()).unwrap();
    let response = ServiceExt::<Request<axum::body::Body>>::ready(&mut svc)
        .await
        .unwrap()
        .call(first)
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let second = Request::get(url).body(axum::body::Body::empty()).unwrap();
    let response = ServiceExt::<Request<axum::body::Body>>::ready(&mut svc)
        .await
        .unwrap()
        .call(second)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.requests(), 1);
}

/// One HTTP/1.1 request over a plain socket: status, headers, body.
#[cfg(feature = "blocking")]
fn send_blocking(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, String) {
    use std::io::{Read, Write};

    let parsed = url::Url::parse(url).unwrap();
    let addr = format!("{}:{}", parsed.host_str().unwrap(), parsed.port().unwrap());
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut request = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 0\r\n",
        parsed.path(),
        parsed.host_str().unwrap()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

#[cfg(feature = "blocking")]
#[test]
fn blocking_source_authorizes_with_verified_proofs_and_reads_the_nonce_round() {
    use m2m_client::authorization::Retry;
    use m2m_client::integrations::blocking::BlockingTokenSource;

    let dpop = DpopKey::ephemeral().unwrap();
    let server_rt = tokio::runtime::Runtime::new().unwrap();
    let (server, api) = server_rt.block_on(async {
        (
            token_endpoint().await,
            start_api(dpop.thumbprint(), true).await,
        )
    });
    let tokens = BlockingTokenSource::new(client(&server, &dpop)).unwrap();
    let url = api.url();
    let token = tokens.token().unwrap();
    assert!(token.is_dpop());
    let send = |token: &m2m_client::source::Token| {
        let auth = tokens.authorize(token, "GET", &url).unwrap();
        let proof = auth.dpop().unwrap().to_owned();
        send_blocking(
            &url,
            "GET",
            &[("Authorization", auth.authorization()), ("DPoP", &proof)],
        )
    };
    let (status, headers, _) = send(&token);
    let header = |name: &str| {
        headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    let decision = tokens.answered(
        &token,
        &url,
        status,
        header("www-authenticate"),
        header("dpop-nonce").first().copied(),
    );
    assert_eq!(decision, Retry::WithNonce);
    let (status, _, body) = send(&token);
    assert_eq!((status, body.as_str()), (200, "ok GET"));
    // Remembered: the next request passes at once.
    let (status, _, _) = send(&tokens.token().unwrap());
    assert_eq!(status, 200);
    let seen = api.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(server.requests(), 1);
    drop(tokens);
}
