//! TokenSource against a real local token endpoint: single flight on a cold cache and at every
//! refresh, refresh-ahead, outages (bounded retries, never an expired token), Retry-After,
//! invalidate, and lifetimes taken from a JWT access token.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use m2m_client::RetryPolicy;
use m2m_client::source::{Token, TokenSource};
use m2m_core::clock::{ManualClock, UnixTime};
use support::source::{Behaviour, T0, TokenServer, jwt_access_token, secs};

/// `n` concurrent `token()` calls from spawned tasks; every result must be Ok.
async fn burst(source: &TokenSource, n: usize) -> Vec<Token> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let s = source.clone();
            tokio::spawn(async move { s.token().await })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap().unwrap());
    }
    out
}

fn all_equal(tokens: &[Token], expected: &str) {
    assert!(
        tokens.iter().all(|t| t.secret() == expected),
        "expected every caller to get {expected}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_cache_1000_concurrent_callers_one_request() {
    let server = TokenServer::start().await;
    // Slow enough that all callers pile up behind the one fetch.
    server.set(Behaviour {
        delay: Duration::from_millis(200),
        ..Behaviour::default()
    });
    let (source, _clock) = server.source();
    let tokens = burst(&source, 1000).await;
    all_equal(&tokens, "token-1");
    assert_eq!(server.requests(), 1);
    assert_eq!(server.verified(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_per_refresh_over_ten_lifetimes() {
    let server = TokenServer::start().await;
    server.set(Behaviour {
        delay: Duration::from_millis(50),
        expires_in: Some(600),
        ..Behaviour::default()
    });
    let (source, clock) = server.source();
    all_equal(&burst(&source, 1000).await, "token-1");
    let mut received = T0;
    for lifetime in 1..=10usize {
        let current = format!("token-{lifetime}");
        let next = format!("token-{}", lifetime + 1);
        if lifetime % 2 == 1 {
            // Refresh-ahead: inside [refresh point, serve-until) everyone gets the current
            // token at once while one background refresh runs.
            clock.set(received.add(secs(540)));
            server.hold();
            all_equal(&burst(&source, 1000).await, &current);
            server.release();
            source.wait_for_refresh().await;
            assert_eq!(server.requests(), lifetime + 1, "lifetime {lifetime}");
            all_equal(&burst(&source, 1000).await, &next);
        } else {
            // Past serve-until: nobody may get the old token; all wait for one fetch.
            clock.set(received.add(secs(595)));
            all_equal(&burst(&source, 1000).await, &next);
            assert_eq!(server.requests(), lifetime + 1, "lifetime {lifetime}");
        }
        received = clock_now(&clock);
    }
    assert_eq!(server.requests(), 11);
    assert_eq!(server.verified(), 11);
}

fn clock_now(clock: &ManualClock) -> UnixTime {
    use m2m_core::clock::Clock;
    clock.now()
}

/// Steps the clock by `step` until `until`, calling `token()` once per step and letting any
/// refresh finish; returns the instants at which the endpoint saw a request.
async fn walk(
    server: &TokenServer,
    source: &TokenSource,
    clock: &ManualClock,
    until: UnixTime,
    step: Duration,
    expect: &str,
) -> Vec<UnixTime> {
    let mut attempts = Vec::new();
    while clock_now(clock) < until {
        let before = server.requests();
        let token = source.token().await.unwrap();
        assert_eq!(token.secret(), expect);
        source.wait_for_refresh().await;
        if server.requests() > before {
            attempts.push(clock_now(clock));
        }
        clock.advance(step);
    }
    attempts
}

#[tokio::test]
async fn outage_serves_old_token_bounded_retries_then_errors_never_expired() {
    let server = TokenServer::start().await;
    server.set(Behaviour {
        expires_in: Some(3600),
        ..Behaviour::default()
    });
    let (source, clock) = server.source();
    assert_eq!(source.token().await.unwrap().secret(), "token-1");
    server.set(Behaviour {
        status: 503,
        ..Behaviour::default()
    });
    // From before the latest refresh point (3060 s) to just before serve-until (3590 s).
    clock.set(T0.add(secs(3000)));
    let attempts = walk(
        &server,
        &source,
        &clock,
        T0.add(secs(3589)),
        secs(1),
        "token-1",
    )
    .await;
    // Default policy: 5 refresh attempts while the token is servable, with growing backoff.
    assert_eq!(attempts.len(), 5, "attempts at {attempts:?}");
    assert_eq!(server.requests(), 6);
    for pair in attempts.windows(2) {
        assert!(pair[1].since(pair[0]) >= Duration::from_millis(500));
    }
    // Past serve-until: the old token is never handed out.
    clock.set(T0.add(secs(3590)));
    let err = source.token().await.unwrap_err();
    assert_eq!(err.error().status(), Some(503));
    let requests = server.requests();
    // During the backoff, callers get the error without a new request (no stampede).
    for _ in 0..100 {
        assert!(source.token().await.is_err());
    }
    clock.set(T0.add(secs(3600 + 10)));
    assert!(source.token().await.is_err());
    assert!(server.requests() <= requests + 1);
    // The endpoint recovers: after the backoff, the next caller gets a new token.
    server.set(Behaviour::default());
    clock.set(T0.add(secs(3600 + 200)));
    let fresh = source.token().await.unwrap();
    assert_ne!(fresh.secret(), "token-1");
}

#[tokio::test]
async fn retry_after_5_is_respected() {
    let server = TokenServer::start().await;
    server.set(Behaviour {
        expires_in: Some(3600),
        ..Behaviour::default()
    });
    let (source, clock) = server.source();
    source.token().await.unwrap();
    server.set(Behaviour {
        status: 429,
        retry_after: Some(5),
        ..Behaviour::default()
    });
    clock.set(T0.add(secs(3100)));
    let attempts = walk(
        &server,
        &source,
        &clock,
        T0.add(secs(3160)),
        Duration::from_millis(500),
        "token-1",
    )
    .await;
    assert_eq!(attempts.len(), 5, "attempts at {attempts:?}");
    for pair in attempts.windows(2) {
        assert_eq!(pair[1].since(pair[0]), secs(5), "attempts at {attempts:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn client_retries_inside_one_refresh_honour_retry_after_in_paused_time() {
    // The TokenClient's own retries sleep (tokio time, paused here): one TokenSource attempt is
    // three requests, five seconds apart as the server asked.
    let server = TokenServer::start().await;
    server.set(Behaviour {
        status: 503,
        retry_after: Some(5),
        ..Behaviour::default()
    });
    let clock = ManualClock::new(T0);
    let client = server.client_with(RetryPolicy::default().max_attempts(3));
    let source = TokenSource::builder(Arc::new(client))
        .clock(Arc::new(clock.clone()))
        .build();
    let started = tokio::time::Instant::now();
    let err = source.token().await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(server.requests(), 3);
    assert!(started.elapsed() >= secs(10));
    // Within the source's own backoff (Retry-After 5 s), no new request.
    assert!(source.token().await.is_err());
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn invalidate_drops_the_token() {
    let server = TokenServer::start().await;
    let (source, _clock) = server.source();
    let first = source.token().await.unwrap();
    assert_eq!(source.token().await.unwrap().secret(), "token-1");
    source.invalidate();
    let second = source.token().await.unwrap();
    assert_eq!(second.secret(), "token-2");
    // A 401 to the old token does not throw away the new one.
    source.invalidate_token(&first);
    assert_eq!(source.token().await.unwrap().secret(), "token-2");
    source.invalidate_token(&second);
    assert_eq!(source.token().await.unwrap().secret(), "token-3");
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn missing_expires_in_uses_jwt_exp_else_60_seconds() {
    let server = TokenServer::start().await;
    let jwt = jwt_access_token(T0.add(secs(300)));
    server.set(Behaviour {
        expires_in: None,
        access_token: Some(jwt.clone()),
        ..Behaviour::default()
    });
    let (source, clock) = server.source();
    assert_eq!(source.token().await.unwrap().secret(), jwt);
    assert_eq!(
        source.token().await.unwrap().expires_at(),
        T0.add(secs(300))
    );
    // 200 s: well before the refresh point of a 300 s token; a 60 s default would have expired.
    clock.set(T0.add(secs(200)));
    source.token().await.unwrap();
    source.wait_for_refresh().await;
    assert_eq!(server.requests(), 1);

    // An opaque token without expires_in lives 60 s, served until 50 s.
    server.set(Behaviour {
        expires_in: None,
        ..Behaviour::default()
    });
    source.invalidate();
    let opaque = source.token().await.unwrap();
    assert_eq!(opaque.expires_at(), T0.add(secs(260)));
    clock.set(T0.add(secs(200 + 51)));
    let next = source.token().await.unwrap();
    assert_ne!(next.secret(), opaque.secret());
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn token_debug_is_redacted() {
    let server = TokenServer::start().await;
    let (source, _clock) = server.source();
    let token = source.token().await.unwrap();
    let shown = format!("{token:?} {source:?}");
    assert!(!shown.contains("token-1"), "{shown}");
}

#[test]
fn no_runtime_is_an_error_not_a_panic() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(TokenServer::start());
    let (source, _clock) = server.source();
    // Poll the future outside any runtime context.
    let result = futures_util::FutureExt::now_or_never(source.token());
    match result {
        Some(Err(e)) => assert!(e.to_string().contains("tokio runtime"), "{e}"),
        other => panic!("expected an error, got {other:?}"),
    }
}
