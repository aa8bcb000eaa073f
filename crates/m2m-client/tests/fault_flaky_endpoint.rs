//! Fault: a flaky token endpoint (500, 503, 429, garbage, hanging) on 127.0.0.1, real time (the
//! shared verifying endpoint of m2m-testkit). `TokenClient::fetch` and `TokenSource` must retry a
//! bounded number of times (requests counted
//! at the endpoint), never storm it when many callers wait at once, end within a bounded time,
//! and fail with an error that says what happened. request_fetch.rs and source_cache.rs cover the
//! individual retry rules; this file is the end-to-end bound under each kind of failure.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use m2m_client::source::TokenSource;
use m2m_client::{RetryPolicy, TokenClient};
use m2m_core::alg::Algorithm;
use m2m_core::signer::KeySigner;
use m2m_testkit::keys;
use m2m_testkit::token_endpoint::{Reply, TokenEndpoint};

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

/// What the shared verifying endpoint answers in `mode`.
fn reply(mode: Mode) -> Reply {
    match mode {
        Mode::Ok => Reply::token().access_token("tok"),
        Mode::Status(s) => Reply::error(s, "temporarily_unavailable"),
        Mode::TooMany => Reply::status(429).retry_after(0),
        Mode::HtmlBadGateway => Reply::text(
            502,
            "text/html",
            "<html><body>502 Bad Gateway</body></html>",
        ),
        Mode::Garbage => Reply::json(200, "{not json"),
        Mode::Hang => Reply::status(200).delay(Duration::from_secs(30)),
    }
}

/// An endpoint answering `script`, then `then` for ever; it verifies every assertion of
/// [`client`].
async fn endpoint(script: &[Mode], then: Mode) -> (TokenEndpoint, String) {
    let e = TokenEndpoint::builder("svc")
        .key("k1", keys::p256().public_key().clone())
        .audience("https://issuer.test")
        .replies(script.iter().chain([&then]).map(|m| reply(*m)))
        .start()
        .await;
    let url = e.url().to_owned();
    (e, url)
}

const TIMEOUT: Duration = Duration::from_millis(300);
const MAX_DELAY: Duration = Duration::from_millis(50);
/// Scheduling slack on a shared, loaded machine: a bound, not a speed measurement.
const SLACK: Duration = Duration::from_secs(3);

fn client(url: &str, attempts: u32) -> TokenClient {
    let signer = KeySigner::new(keys::p256(), Algorithm::Es256, Some("k1".to_owned())).unwrap();
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
            e.requests(),
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
        assert_eq!(e.requests(), expected_requests, "{mode:?}: no late retry");
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
    assert_eq!(e.requests(), 5);

    // One attempt fewer than needed: a clear error, exactly that many requests.
    let (e, url) = endpoint(&script, Mode::Ok).await;
    let err = client(&url, 4).fetch().await.unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(e.requests(), 4);
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
    assert_eq!(e.requests(), 3, "200 callers, one refresh");

    // Callers right after the failure get the error without new requests (back-off).
    for _ in 0..200 {
        assert!(source.token().await.is_err());
    }
    assert!(
        e.requests() <= 6,
        "at most one more refresh: {}",
        e.requests()
    );

    // The endpoint recovers: a caller gets a token once the back-off has passed (bounded poll).
    e.set(reply(Mode::Ok));
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
    assert_eq!(e.requests(), 2);
}
