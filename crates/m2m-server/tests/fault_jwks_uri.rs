//! Faults of a client's `jwks_uri` host, beyond jwks_uri.rs (which covers the cache, unknown-kid
//! refetch, stale-if-error with a 500 after a success, the 10 MiB cap, redirects and cold
//! single-flight): a host that hangs, one that is down, one that answers 500 from the start, one
//! whose keys change, one that publishes private members. Each must give a bounded wait (the
//! request ends within the fetch timeout plus slack), a bounded number of fetches (counted at the
//! host and in `/metrics`), old keys only within their cache window, and a clear refusal
//! (`401 invalid_client`, "the client's JWKS could not be retrieved"). Cache time is a
//! `ManualClock`; the HTTP timeout is real time.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use m2m_core::alg::Algorithm;
use m2m_core::assertion::Audience;
use m2m_core::clock::{Clock, ManualClock, SystemClock};
use support::*;

/// The server's fetch timeout (`FetchPolicy::default().timeout`).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Scheduling slack on a shared, loaded machine: this is a bound, not a speed measurement.
const SLACK: Duration = Duration::from_secs(4);

#[derive(Default)]
struct Host {
    body: Mutex<String>,
    /// 0: serve the body; otherwise answer this status.
    status: AtomicU64,
    /// Delay before answering, in ms.
    delay_ms: AtomicU64,
    fetches: AtomicUsize,
}

async fn serve(State(host): State<Arc<Host>>) -> Response {
    host.fetches.fetch_add(1, Ordering::SeqCst);
    let delay = host.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    match host.status.load(Ordering::SeqCst) {
        0 => (
            [
                (header::CACHE_CONTROL, "max-age=120"),
                (header::CONTENT_TYPE, "application/json"),
            ],
            host.body.lock().unwrap().clone(),
        )
            .into_response(),
        s => StatusCode::from_u16(s as u16).unwrap().into_response(),
    }
}

async fn start_host() -> (Arc<Host>, String) {
    let host = Arc::new(Host::default());
    let app = Router::new()
        .route("/jwks.json", get(serve))
        .with_state(Arc::clone(&host));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (host, base)
}

fn set_keys(host: &Host, keys: &[(&m2m_core::key::PrivateKey, &str)]) {
    *host.body.lock().unwrap() = serde_json::to_string(&jwks(keys)).unwrap();
}

async fn server(jwks_uri: &str, clock: &ManualClock) -> TestServer {
    let mut setup = Setup::new(format!(
        "[[client]]\nid = \"remote\"\njwks_uri = \"{jwks_uri}\"\nalgs = [\"RS256\"]\n"
    ));
    setup.replay_store = "memory".into();
    setup.clock = Some(Arc::new(clock.clone()));
    start(setup, |_| {}).await
}

fn signed(clock: &ManualClock, key: &Arc<m2m_core::key::PrivateKey>, kid: &str) -> String {
    assertion(
        key,
        kid,
        Algorithm::Rs256,
        "remote",
        Audience::Issuer(ISSUER.into()),
        clock.now(),
    )
}

#[track_caller]
fn assert_unavailable(r: &Reply) {
    assert_eq!(
        (r.status, r.error().as_str(), r.description().as_str()),
        (
            401,
            "invalid_client",
            "the client's JWKS could not be retrieved"
        ),
        "{}",
        r.text
    );
    assert!(r.json().get("access_token").is_none());
}

async fn metric(t: &TestServer, name: &str) -> u64 {
    let text = t.get("/metrics").await.text;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} in {text}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hanging_host_bounded_wait_one_fetch_then_backoff() {
    let (host, base) = start_host().await;
    set_keys(&host, &[(&key_a(), "a")]);
    host.delay_ms.store(60_000, Ordering::SeqCst);
    let clock = ManualClock::new(SystemClock.now());
    let t = Arc::new(server(&format!("{base}/jwks.json"), &clock).await);

    // Ten concurrent cold requests: one fetch, and every request ends by the fetch timeout.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (t, a) = (Arc::clone(&t), signed(&clock, &key_a(), "a"));
        tasks.push(tokio::spawn(async move { t.token(&a).await }));
    }
    for task in tasks {
        assert_unavailable(&task.await.unwrap());
    }
    let waited = started.elapsed();
    assert!(
        waited <= FETCH_TIMEOUT + SLACK,
        "requests waited {waited:?}, bound is the {FETCH_TIMEOUT:?} fetch timeout"
    );
    assert_eq!(host.fetches.load(Ordering::SeqCst), 1, "single flight");

    // Within the error back-off (10 s of server time) nobody waits on the host again.
    let started = Instant::now();
    for _ in 0..20 {
        assert_unavailable(&t.token(&signed(&clock, &key_a(), "a")).await);
    }
    assert!(
        started.elapsed() < FETCH_TIMEOUT,
        "answered from the remembered error"
    );
    assert_eq!(
        host.fetches.load(Ordering::SeqCst),
        1,
        "no fetch during back-off"
    );
    assert_eq!(metric(&t, "m2m_jwks_fetches_total").await, 1);

    // After the back-off: one new try (which the now prompt host answers).
    host.delay_ms.store(0, Ordering::SeqCst);
    clock.advance(Duration::from_secs(11));
    assert_eq!(t.token(&signed(&clock, &key_a(), "a")).await.status, 200);
    assert_eq!(host.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn down_host_fails_fast_and_is_not_hammered() {
    // A port with nothing listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let clock = ManualClock::new(SystemClock.now());
    let t = server(&format!("http://127.0.0.1:{port}/jwks.json"), &clock).await;
    let started = Instant::now();
    for _ in 0..50 {
        assert_unavailable(&t.token(&signed(&clock, &key_a(), "a")).await);
    }
    assert!(
        started.elapsed() <= FETCH_TIMEOUT + SLACK,
        "connection refused is not retried in a loop"
    );
    assert_eq!(
        metric(&t, "m2m_jwks_fetches_total").await,
        1,
        "one attempt per back-off"
    );
    clock.advance(Duration::from_secs(11));
    assert_unavailable(&t.token(&signed(&clock, &key_a(), "a")).await);
    assert_eq!(metric(&t, "m2m_jwks_fetches_total").await, 2);
}

#[tokio::test]
async fn host_answering_500_from_the_start_bounded_fetches() {
    let (host, base) = start_host().await;
    host.status.store(500, Ordering::SeqCst);
    let clock = ManualClock::new(SystemClock.now());
    let t = server(&format!("{base}/jwks.json"), &clock).await;
    // 100 requests over 60 s of server time: one fetch per 10 s back-off at most.
    for i in 0..100 {
        assert_unavailable(&t.token(&signed(&clock, &key_a(), "a")).await);
        if i % 10 == 9 {
            clock.advance(Duration::from_secs(6));
        }
    }
    let fetches = host.fetches.load(Ordering::SeqCst);
    assert!(
        (1..=7).contains(&fetches),
        "{fetches} fetches for 100 requests over 60 s"
    );
    assert!(metric(&t, "m2m_jwks_fetch_errors_total").await >= 100);
}

#[tokio::test]
async fn changed_keys_old_key_only_within_its_cache_window() {
    let (host, base) = start_host().await;
    set_keys(&host, &[(&key_a(), "a")]);
    let clock = ManualClock::new(SystemClock.now());
    let t = server(&format!("{base}/jwks.json"), &clock).await;
    assert_eq!(t.token(&signed(&clock, &key_a(), "a")).await.status, 200);

    // The client rotates: the host now publishes only key B.
    set_keys(&host, &[(&key_b(), "b")]);
    // Key A stays usable while the cached set is fresh (max-age=120) ...
    clock.advance(Duration::from_secs(60));
    assert_eq!(t.token(&signed(&clock, &key_a(), "a")).await.status, 200);
    assert_eq!(host.fetches.load(Ordering::SeqCst), 1);
    // ... key B is picked up at once through the unknown-kid refetch ...
    assert_eq!(t.token(&signed(&clock, &key_b(), "b")).await.status, 200);
    assert_eq!(host.fetches.load(Ordering::SeqCst), 2);
    // ... and from that fetch on key A is gone.
    let r = t.token(&signed(&clock, &key_a(), "a")).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (401, "invalid_client"),
        "{}",
        r.text
    );
    // A's kid again: the unknown-kid refetch is rate-limited, so no new fetch.
    assert_eq!(t.token(&signed(&clock, &key_a(), "a")).await.status, 401);
    assert_eq!(host.fetches.load(Ordering::SeqCst), 2);

    // Without a new kid to trigger a refetch, a removed key lasts at most max-age.
    set_keys(&host, &[(&key_a(), "a")]);
    clock.advance(Duration::from_secs(121));
    assert_eq!(t.token(&signed(&clock, &key_a(), "a")).await.status, 200);
    set_keys(&host, &[(&key_b(), "b")]);
    clock.advance(Duration::from_secs(121));
    assert_eq!(t.token(&signed(&clock, &key_a(), "a")).await.status, 401);
}

#[tokio::test]
async fn published_private_members_are_refused() {
    let (host, base) = start_host().await;
    // A JWKS with the RFC 7515 A.3 private P-256 key (its `d` included).
    *host.body.lock().unwrap() = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"a",
 "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
 "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
 "d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}]}"#
        .to_owned();
    let clock = ManualClock::new(SystemClock.now());
    let t = server(&format!("{base}/jwks.json"), &clock).await;
    let r = t.token(&signed(&clock, &key_a(), "a")).await;
    assert_unavailable(&r);
    assert!(!r.text.contains("jpsQnnGQ"));
}
