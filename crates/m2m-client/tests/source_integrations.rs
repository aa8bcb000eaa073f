//! The integrations against real local servers: the reqwest middleware retries once on 401 with
//! a fresh token, the tower layer adds the header (and drops a rejected token), the blocking
//! source works without a runtime of the caller's.
#![allow(clippy::unwrap_used)]
// Each test needs its feature; with some features off, the shared helpers go unused.
#![cfg_attr(
    not(all(
        feature = "reqwest-middleware",
        feature = "tower",
        feature = "blocking"
    )),
    allow(dead_code, unused_imports)
)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::any;
use support::source::TokenServer;

/// A resource server: 401 for `token-1` (as if revoked), 200 echoing the body for other tokens.
struct Api {
    url: String,
    requests: Arc<AtomicUsize>,
}

async fn start_api() -> Api {
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&requests);
    let app = axum::Router::new().route(
        "/api",
        any(move |headers: HeaderMap, body: String| {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                    Some("Bearer token-1") => (StatusCode::UNAUTHORIZED, String::new()),
                    Some(v) if v.starts_with("Bearer token-") => {
                        (StatusCode::OK, format!("{v} {body}"))
                    }
                    _ => (StatusCode::BAD_REQUEST, String::new()),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Api { url, requests }
}

#[cfg(feature = "reqwest-middleware")]
#[tokio::test]
async fn middleware_retries_once_on_401_with_a_fresh_token() {
    use m2m_client::integrations::middleware::BearerMiddleware;

    let server = TokenServer::start().await;
    let api = start_api().await;
    let (source, _clock) = server.source();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BearerMiddleware::new(source.clone()))
        .build();
    let response = client.post(&api.url).body("hello").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "Bearer token-2 hello");
    assert_eq!(server.requests(), 2);
    assert_eq!(api.requests.load(Ordering::SeqCst), 2);
    // The fresh token is cached for the next request.
    let again = client.get(&api.url).send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(server.requests(), 2);
}

#[cfg(feature = "reqwest-middleware")]
#[tokio::test]
async fn middleware_retries_only_once() {
    use m2m_client::integrations::middleware::BearerMiddleware;
    use support::source::Behaviour;

    let server = TokenServer::start().await;
    // Every token is token-1, which the API always refuses.
    server.set(Behaviour {
        access_token: Some("token-1".into()),
        ..Behaviour::default()
    });
    let api = start_api().await;
    let (source, _clock) = server.source();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BearerMiddleware::new(source))
        .build();
    let response = client.get(&api.url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(api.requests.load(Ordering::SeqCst), 2);
    assert_eq!(server.requests(), 2);
}

#[cfg(feature = "tower")]
#[tokio::test]
async fn tower_layer_adds_the_header_and_drops_a_rejected_token() {
    use axum::body::Body;
    use axum::http::Request;
    use m2m_client::integrations::tower::BearerLayer;
    use tower::{Layer, Service};

    let server = TokenServer::start().await;
    let (source, _clock) = server.source();
    // The inner service is an axum router standing in for a hyper/tonic client.
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = Arc::clone(&seen);
    let inner = axum::Router::new().route(
        "/",
        any(move |headers: HeaderMap| {
            let log = Arc::clone(&log);
            async move {
                let auth = headers["authorization"].to_str().unwrap().to_owned();
                let status = if auth == "Bearer token-1" {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::OK
                };
                log.lock().unwrap().push(auth);
                status
            }
        }),
    );
    let mut service = BearerLayer::new(source).layer(inner);
    for expected in [401, 200, 200] {
        std::future::poll_fn(|cx| Service::<Request<Body>>::poll_ready(&mut service, cx))
            .await
            .unwrap();
        let request = Request::get("/").body(Body::empty()).unwrap();
        let response = service.call(request).await.unwrap();
        assert_eq!(response.status().as_u16(), expected);
    }
    assert_eq!(
        *seen.lock().unwrap(),
        ["Bearer token-1", "Bearer token-2", "Bearer token-2"]
    );
    assert_eq!(server.requests(), 2);
}

#[cfg(feature = "blocking")]
#[test]
fn blocking_source_without_a_caller_runtime() {
    use m2m_client::integrations::blocking::BlockingTokenSource;

    // The endpoint runs on its own runtime thread; the caller below is plain synchronous code.
    let server_rt = tokio::runtime::Runtime::new().unwrap();
    let server = server_rt.block_on(TokenServer::start());
    let client = server.client();
    let tokens = BlockingTokenSource::new(client).unwrap();
    assert_eq!(tokens.token().unwrap().secret(), "token-1");
    assert_eq!(tokens.token().unwrap().secret(), "token-1");
    tokens.invalidate();
    assert_eq!(tokens.token().unwrap().secret(), "token-2");
    assert_eq!(server.requests(), 2);
    drop(tokens);
}
