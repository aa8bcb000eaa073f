//! Fault: a flaky token endpoint (500, 503, 429, garbage, hanging) on 127.0.0.1, real time.
//! `TokenClient::fetch` and `TokenSource` must retry a bounded number of times (requests counted
//! at the endpoint), never storm it when many callers wait at once, end within a bounded time,
//! and fail with an error that says what happened. request_fetch.rs and source_cache.rs cover the
//! individual retry rules; this file is the end-to-end bound under each kind of failure.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use m2m_client::source::TokenSource;
use m2m_client::{RetryPolicy, TokenClient};
use m2m_core::alg::Algorithm;
use m2m_core::key::{KeySpec, PrivateKey};
use m2m_core::signer::KeySigner;

#[derive(Clone, Copy, Debug)]
enum Mode {
    Ok,
    Status(u16),
    /// 429 with `Retry-After: 0`.
    TooMany,
    /// 502 with an HTML page (a proxy's error page).
    HtmlBadGateway,
    /// 200 with a body that is not JSON.
    Garbage,
    /// Answers after 30 s (far beyond the client's timeout).
    Hang,
}

struct Endpoint {
    script: Mutex<VecDeque<Mode>>,
    then: Mutex<Mode>,
    requests: AtomicUsize,
}

async fn token(State(e): State<Arc<Endpoint>>) -> Response {
    e.requests.fetch_add(1, Ordering::SeqCst);
    let mode = e
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(*e.then.lock().unwrap());
    match mode {
        Mode::Ok => (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"access_token":"tok","token_type":"Bearer","expires_in":600}"#,
        )
            .into_response(),
        Mode::Status(s) => (
            StatusCode::from_u16(s).unwrap(),
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"error":"temporarily_unavailable"}"#,
        )
            .into_response(),
        Mode::TooMany => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "0")],
            "",
        )
            .into_response(),
        Mode::HtmlBadGateway => (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>502 Bad Gateway</body></html>",
        )
            .into_response(),
        Mode::Garbage => {
            ([(header::CONTENT_TYPE, "application/json")], "{not json").into_response()
        }
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::OK.into_response()
        }
    }
}

async fn endpoint(script: &[Mode], then: Mode) -> (Arc<Endpoint>, String) {
    let e = Arc::new(Endpoint {
        script: Mutex::new(script.iter().copied().collect()),
        then: Mutex::new(then),
        requests: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route("/oauth2/token", axum::routing::post(token))
        .with_state(Arc::clone(&e));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/oauth2/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (e, url)
}

const TIMEOUT: Duration = Duration::from_millis(300);
const MAX_DELAY: Duration = Duration::from_millis(50);
/// Scheduling slack on a shared, loaded machine: a bound, not a speed measurement.
const SLACK: Duration = Duration::from_secs(3);

fn client(url: &str, attempts: u32) -> TokenClient {
    let key = Arc::new(PrivateKey::generate(KeySpec::P256).unwrap());
    let signer = KeySigner::new(key, Algorithm::Es256, Some("k1".to_owned())).unwrap();
    TokenClient::builder()
        .token_url(url)
        .client_id("svc")
        .audience("https://issuer.test")
        .signer(Arc::new(signer))
        .timeout(Some(TIMEOUT))
        .retry_policy(
            RetryPolicy::default()
                .max_attempts(attempts)
                .base_delay(Duration::from_millis(10))
                .max_delay(MAX_DELAY),
        )
        .build()
        .unwrap()
}

/// The longest a fetch with `attempts` attempts may take.
fn bound(attempts: u32) -> Duration {
    (TIMEOUT + MAX_DELAY) * attempts + SLACK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_under_each_failure_is_bounded_and_says_why() {
    // (mode, requests the endpoint may see for 3 attempts, words the error must contain)
    let cases: &[(Mode, usize, &[&str])] = &[
        (Mode::Status(500), 3, &["500"]),
        (Mode::Status(503), 3, &["503", "temporarily_unavailable"]),
        (Mode::TooMany, 3, &["429"]),
        (Mode::HtmlBadGateway, 3, &["502"]),
        (Mode::Garbage, 1, &["json"]),
        (Mode::Hang, 3, &["timed out"]),
    ];
    for &(mode, expected_requests, words) in cases {
        let (e, url) = endpoint(&[], mode).await;
        let c = client(&url, 3);
        let started = Instant::now();
        let err = c.fetch().await.unwrap_err();
        let took = started.elapsed();
        let message = err.to_string().to_lowercase();
        assert_eq!(
            e.requests.load(Ordering::SeqCst),
            expected_requests,
            "{mode:?}: requests; error: {message}"
        );
        assert!(took <= bound(3), "{mode:?}: took {took:?}");
        for w in words {
            assert!(
                message.contains(w),
                "{mode:?}: {message:?} should mention {w:?}"
            );
        }
        // Wait out the hanging handler's connection count: nothing more arrives later.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            e.requests.load(Ordering::SeqCst),
            expected_requests,
            "{mode:?}: no late retry"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_failures_then_success_within_the_attempts() {
    let script = [
        Mode::Status(500),
        Mode::TooMany,
        Mode::HtmlBadGateway,
        Mode::Hang,
    ];
    let (e, url) = endpoint(&script, Mode::Ok).await;
    let response = client(&url, 5).fetch().await.unwrap();
    assert_eq!(response.access_token().secret(), "tok");
    assert_eq!(e.requests.load(Ordering::SeqCst), 5);

    // One attempt fewer than needed: a clear error, exactly that many requests.
    let (e, url) = endpoint(&script, Mode::Ok).await;
    let err = client(&url, 4).fetch().await.unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(e.requests.load(Ordering::SeqCst), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_source_outage_many_callers_no_storm_then_recovers() {
    let (e, url) = endpoint(&[], Mode::Status(503)).await;
    let source = Arc::new(TokenSource::new(client(&url, 3)));

    // 200 callers at once during an outage: one refresh (single flight) of 3 attempts.
    let started = Instant::now();
    let mut callers = Vec::new();
    for _ in 0..200 {
        let s = Arc::clone(&source);
        callers.push(tokio::spawn(async move { s.token().await }));
    }
    for c in callers {
        let err = c.await.unwrap().unwrap_err();
        assert_eq!(err.error().status(), Some(503), "{err}");
        assert!(err.is_retryable());
    }
    assert!(started.elapsed() <= bound(3));
    assert_eq!(
        e.requests.load(Ordering::SeqCst),
        3,
        "200 callers, one refresh"
    );

    // Callers right after the failure get the error without new requests (back-off).
    for _ in 0..200 {
        assert!(source.token().await.is_err());
    }
    assert!(
        e.requests.load(Ordering::SeqCst) <= 6,
        "at most one more refresh: {}",
        e.requests.load(Ordering::SeqCst)
    );

    // The endpoint recovers: a caller gets a token once the back-off has passed (bounded poll).
    *e.then.lock().unwrap() = Mode::Ok;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(t) = source.token().await {
            assert_eq!(t.secret(), "tok");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "recovered within the back-off bound"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_source_hanging_endpoint_callers_bounded_by_the_timeout() {
    let (e, url) = endpoint(&[], Mode::Hang).await;
    let source = Arc::new(TokenSource::new(client(&url, 2)));
    let started = Instant::now();
    let mut callers = Vec::new();
    for _ in 0..50 {
        let s = Arc::clone(&source);
        callers.push(tokio::spawn(async move { s.token().await }));
    }
    for c in callers {
        let err = c.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
    }
    assert!(started.elapsed() <= bound(2), "{:?}", started.elapsed());
    assert_eq!(e.requests.load(Ordering::SeqCst), 2);
}
