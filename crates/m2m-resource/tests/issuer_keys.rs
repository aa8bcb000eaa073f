//! Trusted issuers' keys over real loopback HTTP: discovery, key rotation (a new kid → one
//! refetch, then accepted), 1,000 concurrent requests with a new or unknown kid → exactly one
//! JWKS download, an issuer that hangs, 500s or serves junk (bounded waits, stale keys within the
//! window, then refusal), and cached tokens dropped when their key leaves the JWKS.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use m2m_core::alg::Algorithm;
use m2m_core::clock::{Clock, ManualClock, UnixTime};
use m2m_core::key::{KeySpec, PrivateKey};
use m2m_core::validate::AccessTokenReason as R;
use m2m_discovery::FetchPolicy;
use m2m_resource::{Refusal, TrustedIssuer, Verifier};
use serde_json::json;
use support::{AUDIENCE, LoopbackIssuer, Mode, claims, jwks, now_secs, sign_with};

fn token(key: &PrivateKey, kid: &str, issuer: &str) -> String {
    sign_with(
        key,
        Algorithm::Es256,
        Some("at+jwt"),
        Some(kid),
        &claims(issuer),
    )
}

fn verifier(issuer: &str, policy: FetchPolicy, clock: Arc<dyn Clock>, cache: usize) -> Verifier {
    Verifier::builder(AUDIENCE)
        .issuer(TrustedIssuer::discover(issuer))
        .fetch_policy(policy)
        .clock(clock)
        .cache_capacity(cache)
        .build()
        .unwrap()
}

fn system() -> Arc<dyn Clock> {
    Arc::new(m2m_core::clock::SystemClock)
}

#[tokio::test]
async fn rotation_new_kid_is_one_refetch_then_accepted() {
    let k1 = PrivateKey::generate(KeySpec::P256).unwrap();
    let k2 = PrivateKey::generate(KeySpec::P256).unwrap();
    let issuer = LoopbackIssuer::start(Mode::Serve(jwks(&[(&k1, "k1")]))).await;
    let v = verifier(&issuer.url, FetchPolicy::default(), system(), 100);
    assert!(v.verify(&token(&k1, "k1", &issuer.url), &[]).await.is_ok());
    assert_eq!(issuer.fetches(), 1);
    issuer.set(Mode::Serve(jwks(&[(&k1, "k1"), (&k2, "k2")])));
    assert!(v.verify(&token(&k2, "k2", &issuer.url), &[]).await.is_ok());
    assert_eq!(issuer.fetches(), 2, "one refetch for the new kid");
    assert!(v.verify(&token(&k1, "k1", &issuer.url), &[]).await.is_ok());
    assert!(v.verify(&token(&k2, "k2", &issuer.url), &[]).await.is_ok());
    assert_eq!(issuer.fetches(), 2, "known kids never fetch");
}

#[tokio::test]
async fn a_thousand_concurrent_requests_with_a_new_kid_make_one_fetch() {
    let k1 = PrivateKey::generate(KeySpec::P256).unwrap();
    let k2 = PrivateKey::generate(KeySpec::P256).unwrap();
    let issuer = LoopbackIssuer::start(Mode::Serve(jwks(&[(&k1, "k1")]))).await;
    let v = verifier(&issuer.url, FetchPolicy::default(), system(), 100);
    assert!(v.verify(&token(&k1, "k1", &issuer.url), &[]).await.is_ok());
    issuer.set(Mode::Serve(jwks(&[(&k1, "k1"), (&k2, "k2")])));
    let rotated = token(&k2, "k2", &issuer.url);
    let unknown = token(&k2, "nope", &issuer.url);
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (v, t) = (v.clone(), rotated.clone());
        tasks.push(tokio::spawn(async move { v.verify(&t, &[]).await }));
    }
    for t in tasks {
        assert!(t.await.unwrap().is_ok());
    }
    assert_eq!(
        issuer.fetches(),
        2,
        "exactly one JWKS fetch for 1,000 callers"
    );
    // A kid no JWKS has: one refetch at most (already spent above within the interval → none),
    // then refused.
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (v, t) = (v.clone(), unknown.clone());
        tasks.push(tokio::spawn(async move { v.verify(&t, &[]).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap_err().reason(), Some(R::UnknownKid));
    }
    assert_eq!(
        issuer.fetches(),
        2,
        "the unknown-kid refetch is rate-limited per issuer"
    );
}

#[tokio::test]
async fn an_unknown_kid_from_cold_makes_exactly_one_fetch_for_a_thousand_callers() {
    let k1 = PrivateKey::generate(KeySpec::P256).unwrap();
    let issuer = LoopbackIssuer::start(Mode::Serve(jwks(&[(&k1, "k1")]))).await;
    let v = verifier(&issuer.url, FetchPolicy::default(), system(), 100);
    let unknown = token(&k1, "nope", &issuer.url);
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (v, t) = (v.clone(), unknown.clone());
        tasks.push(tokio::spawn(async move { v.verify(&t, &[]).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap_err().reason(), Some(R::UnknownKid));
    }
    // The cold fetch was made for the unknown kid, so it is this interval's kid-miss refetch too:
    // callers that arrived after it finished are not sent to the issuer again.
    assert_eq!(
        issuer.fetches(),
        1,
        "exactly one JWKS fetch for 1,000 cold callers"
    );
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (v, t) = (v.clone(), unknown.clone());
        tasks.push(tokio::spawn(async move { v.verify(&t, &[]).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap_err().reason(), Some(R::UnknownKid));
    }
    assert_eq!(issuer.fetches(), 1, "no further fetch within the interval");
}

#[tokio::test]
async fn a_hanging_issuer_is_a_bounded_wait_then_refusal() {
    let k1 = PrivateKey::generate(KeySpec::P256).unwrap();
    let issuer = LoopbackIssuer::start(Mode::Hang).await;
    let policy = FetchPolicy::default().with_timeout(Duration::from_millis(500));
    let v = verifier(&issuer.url, policy, system(), 100);
    let started = Instant::now();
    let err = v
        .verify(&token(&k1, "k1", &issuer.url), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, Refusal::Unavailable(_)), "{err:?}");
    assert_eq!(err.status(), 401);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn junk_and_500_are_refusals_not_acceptance() {
    let k1 = PrivateKey::generate(KeySpec::P256).unwrap();
    for mode in [Mode::Junk, Mode::Fail] {
        let issuer = LoopbackIssuer::start(mode.clone()).await;
        let v = verifier(&issuer.url, FetchPolicy::default(), system(), 100);
        let err = v
            .verify(&token(&k1, "k1", &issuer.url), &[])
            .await
            .unwrap_err();
        assert!(matches!(err, Refusal::Unavailable(_)), "{mode:?}: {err:?}");
        assert!(
            !err.description().contains("html"),
            "no upstream detail: {err:?}"
        );
    }
}

/// Waits (real time) until `cond` holds: for the verifier's background recheck.
async fn eventually(mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition never held");
}

#[tokio::test]
async fn a_failing_issuer_serves_stale_keys_for_the_window_then_refuses() {
    let k1 = PrivateKey::generate(KeySpec::P256).unwrap();
    let issuer = LoopbackIssuer::start(Mode::Serve(jwks(&[(&k1, "k1")]))).await;
    let clock = ManualClock::new(UnixTime::from_secs(now_secs()));
    // Cache off: every request goes to the keys.
    let v = verifier(
        &issuer.url,
        FetchPolicy::default(),
        Arc::new(clock.clone()),
        0,
    );
    let mut c = claims(&issuer.url);
    c.insert("exp".into(), json!(now_secs() + 4 * 3600));
    let t = sign_with(&k1, Algorithm::Es256, Some("at+jwt"), Some("k1"), &c);
    assert!(v.verify(&t, &[]).await.is_ok());
    issuer.set(Mode::Fail);
    // 10 min on: the JWKS (5 min default lifetime) is stale; the refetch fails; stale keys serve.
    clock.advance(Duration::from_secs(600));
    assert!(
        v.verify(&t, &[]).await.is_ok(),
        "stale keys within the 1 h window"
    );
    assert_eq!(issuer.fetches(), 2);
    // Past the window: the token is refused.
    clock.advance(Duration::from_secs(2 * 3600));
    assert!(matches!(
        v.verify(&t, &[]).await,
        Err(Refusal::Unavailable(_))
    ));
    assert_eq!(issuer.fetches(), 3);
    // The issuer comes back: accepted again (after the error back-off).
    issuer.set(Mode::Serve(jwks(&[(&k1, "k1")])));
    clock.advance(Duration::from_secs(60));
    assert!(v.verify(&t, &[]).await.is_ok());
}

#[tokio::test]
async fn cached_tokens_are_dropped_when_their_key_leaves_the_jwks() {
    let k1 = PrivateKey::generate(KeySpec::P256).unwrap();
    let k2 = PrivateKey::generate(KeySpec::P256).unwrap();
    let issuer = LoopbackIssuer::start(Mode::Serve(jwks(&[(&k1, "k1")]))).await;
    let clock = ManualClock::new(UnixTime::from_secs(now_secs()));
    let v = verifier(
        &issuer.url,
        FetchPolicy::default(),
        Arc::new(clock.clone()),
        100,
    );
    let old = token(&k1, "k1", &issuer.url);
    assert!(v.verify(&old, &[]).await.is_ok());
    assert_eq!(v.cached_tokens(), 1);
    // k1 is rotated out; a k2 token triggers the refetch, which drops what k1 verified.
    issuer.set(Mode::Serve(jwks(&[(&k2, "k2")])));
    assert!(v.verify(&token(&k2, "k2", &issuer.url), &[]).await.is_ok());
    assert_eq!(v.cached_tokens(), 1, "only the k2 token is left");
    assert_eq!(
        v.verify(&old, &[]).await.unwrap_err().reason(),
        Some(R::UnknownKid)
    );
}

#[tokio::test]
async fn discovery_checks_the_issuer_exactly() {
    let k1 = PrivateKey::generate(KeySpec::P256).unwrap();
    let issuer = LoopbackIssuer::start(Mode::Serve(jwks(&[(&k1, "k1")]))).await;
    *issuer.state.issuer.lock().unwrap() = "https://impostor.example".to_owned();
    let v = verifier(&issuer.url, FetchPolicy::default(), system(), 100);
    let err = v
        .verify(&token(&k1, "k1", &issuer.url), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, Refusal::Unavailable(_)), "{err:?}");
    assert_eq!(
        issuer.fetches(),
        0,
        "no JWKS from a mismatched metadata document"
    );
}

#[tokio::test]
async fn a_busy_issuer_is_rechecked_in_the_background() {
    let k1 = PrivateKey::generate(KeySpec::P256).unwrap();
    let k2 = PrivateKey::generate(KeySpec::P256).unwrap();
    let issuer = LoopbackIssuer::start(Mode::Serve(jwks(&[(&k1, "k1")]))).await;
    let clock = ManualClock::new(UnixTime::from_secs(now_secs()));
    // JWKS lifetime 10 s, so the fetcher downloads when the recheck asks after 45 s.
    let policy = FetchPolicy::default()
        .dangerous_min_ttl(Duration::from_secs(1))
        .with_default_ttl(Duration::from_secs(10));
    let v = verifier(&issuer.url, policy, Arc::new(clock.clone()), 0);
    let t = token(&k1, "k1", &issuer.url);
    assert!(v.verify(&t, &[]).await.is_ok());
    // k1 leaves the JWKS. Within the snapshot's age the request is served from it while a
    // background recheck runs.
    issuer.set(Mode::Serve(jwks(&[(&k2, "k2")])));
    clock.advance(Duration::from_secs(45));
    assert!(
        v.verify(&t, &[]).await.is_ok(),
        "served from the snapshot, no wait"
    );
    eventually(|| issuer.fetches() == 2).await;
    let mut refused = false;
    for _ in 0..100 {
        if v.verify(&t, &[]).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        refused,
        "the recheck replaced the snapshot: k1 tokens are refused"
    );
}
