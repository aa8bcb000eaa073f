//! Clients with a `jwks_uri`, served by a real local axum JWKS server that counts fetches:
//! cache, unknown-kid refetch (rate-limited), stale-if-error, body cap, redirects, single-flight.
//! Time is a `ManualClock` shared by the server and the assertions.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use m2m_core::alg::Algorithm;
use m2m_core::assertion::Audience;
use m2m_core::clock::{Clock, ManualClock, SystemClock};
use support::*;

#[derive(Default)]
struct JwksHost {
    body: Mutex<String>,
    fail: Mutex<bool>,
    fetches: AtomicUsize,
}

async fn serve_jwks(State(host): State<Arc<JwksHost>>) -> Response {
    host.fetches.fetch_add(1, Ordering::SeqCst);
    // A little delay so concurrent requests really overlap the fetch (not a timing assertion).
    tokio::time::sleep(Duration::from_millis(50)).await;
    if *host.fail.lock().unwrap() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let body = host.body.lock().unwrap().clone();
    (
        [
            (header::CACHE_CONTROL, "max-age=120"),
            (header::CONTENT_TYPE, "application/json"),
        ],
        body,
    )
        .into_response()
}

async fn huge(State(host): State<Arc<JwksHost>>) -> Response {
    host.fetches.fetch_add(1, Ordering::SeqCst);
    // 10 MiB, streamed without Content-Length, so the cap must stop the download itself.
    let chunks = (0..160).map(|_| Ok::<_, std::io::Error>(vec![b' '; 64 * 1024]));
    Body::from_stream(futures_util::stream::iter(chunks)).into_response()
}

async fn start_host() -> (Arc<JwksHost>, String) {
    let host = Arc::new(JwksHost::default());
    let app = Router::new()
        .route("/jwks.json", get(serve_jwks))
        .route("/huge.json", get(huge))
        .route(
            "/redirect.json",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/jwks.json")]) }),
        )
        .with_state(Arc::clone(&host));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (host, base)
}

fn set_keys(host: &JwksHost, keys: &[(&m2m_core::key::PrivateKey, &str)]) {
    *host.body.lock().unwrap() = serde_json::to_string(&jwks(keys)).unwrap();
}

async fn start_with(host_base: &str, clock: &ManualClock) -> TestServer {
    let clients = format!(
        r#"
[[client]]
id = "remote"
jwks_uri = "{host_base}/jwks.json"
algs = ["RS256"]

[[client]]
id = "huge"
jwks_uri = "{host_base}/huge.json"
algs = ["RS256"]

[[client]]
id = "redirected"
jwks_uri = "{host_base}/redirect.json"
algs = ["RS256"]
"#
    );
    let mut setup = Setup::new(clients);
    setup.replay_store = "memory".into();
    setup.clock = Some(Arc::new(clock.clone()));
    start(setup, |_| {}).await
}

fn signed(
    clock: &ManualClock,
    client: &str,
    key: &Arc<m2m_core::key::PrivateKey>,
    kid: &str,
) -> String {
    assertion(
        key,
        kid,
        Algorithm::Rs256,
        client,
        Audience::Issuer(ISSUER.into()),
        clock.now(),
    )
}

#[tokio::test]
async fn cache_kid_refetch_and_stale_if_error() {
    let (host, base) = start_host().await;
    set_keys(&host, &[(&key_a(), "a")]);
    let clock = ManualClock::new(SystemClock.now());
    let t = start_with(&base, &clock).await;
    let fetches = || host.fetches.load(Ordering::SeqCst);

    // First request fetches; the next ones use the cache.
    assert_eq!(
        t.token(&signed(&clock, "remote", &key_a(), "a"))
            .await
            .status,
        200
    );
    assert_eq!(
        t.token(&signed(&clock, "remote", &key_a(), "a"))
            .await
            .status,
        200
    );
    assert_eq!(fetches(), 1);

    // Unknown kid: one refetch, then no more within the minute.
    let r = t.token(&signed(&clock, "remote", &key_b(), "b")).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (401, "invalid_client"),
        "{}",
        r.text
    );
    assert_eq!(fetches(), 2);
    set_keys(&host, &[(&key_a(), "a"), (&key_b(), "b")]);
    assert_eq!(
        t.token(&signed(&clock, "remote", &key_b(), "b"))
            .await
            .status,
        401
    );
    assert_eq!(
        fetches(),
        2,
        "unknown-kid refetch is limited to once a minute"
    );

    clock.advance(Duration::from_secs(61));
    assert_eq!(
        t.token(&signed(&clock, "remote", &key_b(), "b"))
            .await
            .status,
        200
    );
    assert_eq!(fetches(), 3);

    // Cache expires (max-age=120); the host fails: the stale set is used.
    *host.fail.lock().unwrap() = true;
    clock.advance(Duration::from_secs(121));
    let r = t.token(&signed(&clock, "remote", &key_a(), "a")).await;
    assert_eq!(r.status, 200, "stale-if-error: {}", r.text);
    assert_eq!(fetches(), 4);
    // Within the error back-off the host is not asked again.
    assert_eq!(
        t.token(&signed(&clock, "remote", &key_a(), "a"))
            .await
            .status,
        200
    );
    assert_eq!(fetches(), 4);

    // Beyond the stale window the client can no longer be authenticated.
    clock.advance(Duration::from_secs(3700));
    let r = t.token(&signed(&clock, "remote", &key_a(), "a")).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (401, "invalid_client"),
        "{}",
        r.text
    );
    assert_eq!(fetches(), 5);

    // The host recovers.
    *host.fail.lock().unwrap() = false;
    clock.advance(Duration::from_secs(11));
    assert_eq!(
        t.token(&signed(&clock, "remote", &key_a(), "a"))
            .await
            .status,
        200
    );
    assert_eq!(fetches(), 6);
}

#[tokio::test]
async fn concurrent_cold_requests_share_one_fetch() {
    let (host, base) = start_host().await;
    set_keys(&host, &[(&key_a(), "a")]);
    let clock = ManualClock::new(SystemClock.now());
    let t = start_with(&base, &clock).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (http, url, f) = (
            t.http.clone(),
            t.url("/oauth2/token"),
            form(&signed(&clock, "remote", &key_a(), "a")),
        );
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .form(&f)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(host.fetches.load(Ordering::SeqCst), 1, "single-flight");
}

#[tokio::test]
async fn oversized_and_redirected_jwks_are_refused() {
    let (host, base) = start_host().await;
    set_keys(&host, &[(&key_a(), "a")]);
    let clock = ManualClock::new(SystemClock.now());
    let t = start_with(&base, &clock).await;
    let r = t.token(&signed(&clock, "huge", &key_a(), "a")).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (401, "invalid_client"),
        "{}",
        r.text
    );
    let r = t.token(&signed(&clock, "redirected", &key_a(), "a")).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (401, "invalid_client"),
        "{}",
        r.text
    );
    assert_eq!(
        host.fetches.load(Ordering::SeqCst),
        1,
        "the redirect target was never fetched"
    );
    let metrics = t.get("/metrics").await.text;
    assert!(
        metrics.contains("m2m_jwks_fetch_errors_total 2"),
        "{metrics}"
    );
}

/// F8: a fetched JWKS holding a key m2m cannot use (an X25519 encryption key without `use`)
/// next to the client's real key still authenticates the client; the odd key is skipped.
#[tokio::test]
async fn a_key_m2m_cannot_use_is_skipped_not_fatal() {
    let (host, base) = start_host().await;
    let mut set = jwks(&[(&key_a(), "a")]);
    let x25519: m2m_core::jwk::Jwk = serde_json::from_str(
        r#"{"kty":"OKP","crv":"X25519","x":"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo","kid":"x"}"#,
    )
    .unwrap();
    set.keys.insert(0, x25519);
    *host.body.lock().unwrap() = serde_json::to_string(&set).unwrap();
    let clock = ManualClock::new(SystemClock.now());
    let t = start_with(&base, &clock).await;
    let r = t.token(&signed(&clock, "remote", &key_a(), "a")).await;
    assert_eq!(r.status, 200, "{r:?}");
}

/// I5: a key published with `alg` RS512 does not verify an RS256 assertion, although the
/// client's `algs` allows RS256 and the signature is valid.
#[tokio::test]
async fn a_published_alg_is_binding() {
    let (host, base) = start_host().await;
    let mut set = jwks(&[(&key_a(), "a")]);
    set.keys[0].alg = Some("RS512".to_owned());
    *host.body.lock().unwrap() = serde_json::to_string(&set).unwrap();
    let clock = ManualClock::new(SystemClock.now());
    let t = start_with(&base, &clock).await;
    let r = t.token(&signed(&clock, "remote", &key_a(), "a")).await;
    assert_eq!(r.status, 401, "{r:?}");

    set.keys[0].alg = Some("RS256".to_owned());
    *host.body.lock().unwrap() = serde_json::to_string(&set).unwrap();
    let t = start_with(&base, &ManualClock::new(SystemClock.now())).await;
    let r = t.token(&signed(&clock, "remote", &key_a(), "a")).await;
    assert_eq!(r.status, 200, "{r:?}");
}
