//! The JWKS fetcher against a real host on 127.0.0.1 that counts requests: Cache-Control,
//! rotation (a new kid costs one refetch), rate-limited unknown-kid refetches, stale-if-error,
//! error back-off, a hanging host (timeout), a down host, 500s, junk, private members, an
//! oversize body, a refused redirect, and single flight under 1,000 concurrent callers.
//! Cache time is a `ManualClock`; the HTTP timeout is real time.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Host, Reply, ed_key};
use m2m_core::clock::{Clock, ManualClock, SystemClock};
use m2m_core::ids::KeySet;
use m2m_core::key::PrivateKey;
use m2m_discovery::{Error, FetchPolicy, JwksError, JwksFetcher, MAX_JWKS_BYTES};

const PATH: &str = "/jwks.json";
/// Scheduling slack on a shared, loaded machine: this is a bound, not a speed measurement.
const SLACK: Duration = Duration::from_secs(4);

struct Setup {
    host: Arc<Host>,
    clock: ManualClock,
    fetcher: Arc<JwksFetcher>,
    a: PrivateKey,
    b: PrivateKey,
}

async fn setup(policy: FetchPolicy) -> Setup {
    let host = Host::start().await;
    let clock = ManualClock::new(SystemClock.now());
    let fetcher = Arc::new(JwksFetcher::new(policy, Arc::new(clock.clone())).unwrap());
    Setup {
        host,
        clock,
        fetcher,
        a: ed_key(),
        b: ed_key(),
    }
}

impl Setup {
    async fn keys(&self, kid: &str) -> Result<KeySet, Error> {
        self.fetcher.keys(&self.host.url(PATH), Some(kid)).await
    }
    /// Whether the fetcher's answer holds `kid` (what a token check needs).
    async fn has(&self, kid: &str) -> bool {
        self.keys(kid).await.unwrap().by_kid(kid).is_some()
    }
    fn hits(&self) -> usize {
        self.host.hits(PATH)
    }
    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
}

#[tokio::test]
async fn cache_kid_refetch_and_stale_if_error() {
    let s = setup(FetchPolicy::default()).await;
    s.host.set(PATH, Reply::jwks(&[(&s.a, "a")]));

    // First call fetches; the next ones use the cache.
    assert!(s.has("a").await);
    assert!(s.has("a").await);
    assert_eq!(s.hits(), 1);

    // Unknown kid: one refetch, then no more within the minute.
    assert!(!s.has("b").await);
    assert_eq!(s.hits(), 2);
    s.host.set(PATH, Reply::jwks(&[(&s.a, "a"), (&s.b, "b")]));
    assert!(!s.has("b").await);
    assert_eq!(
        s.hits(),
        2,
        "unknown-kid refetch is limited to once a minute"
    );
    s.advance(61);
    assert!(s.has("b").await);
    assert_eq!(s.hits(), 3);

    // Cache expires (max-age=120); the host fails: the stale set is used.
    s.host.set(PATH, Reply::status(500));
    s.advance(121);
    assert!(s.has("a").await, "stale-if-error");
    assert_eq!(s.hits(), 4);
    // Within the error back-off the host is not asked again.
    assert!(s.has("a").await);
    assert_eq!(s.hits(), 4);

    // Beyond the stale window the keys are gone.
    s.advance(3700);
    let err = s.keys("a").await.unwrap_err();
    assert!(matches!(err, Error::Status { status: 500, .. }), "{err}");
    assert_eq!(s.hits(), 5);

    // The host recovers.
    s.host.set(PATH, Reply::jwks(&[(&s.a, "a")]));
    s.advance(11);
    assert!(s.has("a").await);
    assert_eq!(s.hits(), 6);
    assert_eq!(s.fetcher.fetch_count(), 6);
}

#[tokio::test]
async fn cache_control_sets_the_lifetime_within_floor_and_ceiling() {
    let s = setup(FetchPolicy::default()).await;
    s.host.set(
        PATH,
        Reply::json(common::jwks_json(&[(&s.a, "a")])).header("cache-control", "max-age=600"),
    );
    assert!(s.has("a").await);
    s.advance(599);
    assert!(s.has("a").await);
    assert_eq!(s.hits(), 1, "fresh for max-age");
    s.advance(1);
    assert!(s.has("a").await);
    assert_eq!(s.hits(), 2, "refetched at max-age");

    // max-age=0 is raised to the 60 s floor.
    s.host.set(
        PATH,
        Reply::json(common::jwks_json(&[(&s.a, "a")])).header("cache-control", "max-age=0"),
    );
    s.advance(600);
    assert!(s.has("a").await);
    assert_eq!(s.hits(), 3);
    s.advance(59);
    assert!(s.has("a").await);
    assert_eq!(s.hits(), 3, "the floor holds");

    // No Cache-Control: 300 s.
    s.host
        .set(PATH, Reply::json(common::jwks_json(&[(&s.a, "a")])));
    s.advance(1);
    assert!(s.has("a").await);
    assert_eq!(s.hits(), 4);
    s.advance(299);
    assert!(s.has("a").await);
    assert_eq!(s.hits(), 4);
    s.advance(1);
    assert!(s.has("a").await);
    assert_eq!(s.hits(), 5);
}

#[tokio::test]
async fn changed_keys_old_key_only_within_its_cache_window() {
    let s = setup(FetchPolicy::default()).await;
    s.host.set(PATH, Reply::jwks(&[(&s.a, "a")]));
    assert!(s.has("a").await);

    // The publisher rotates: the host now has only key B.
    s.host.set(PATH, Reply::jwks(&[(&s.b, "b")]));
    // Key A stays usable while the cached set is fresh (max-age=120) ...
    s.advance(60);
    assert!(s.has("a").await);
    assert_eq!(s.hits(), 1);
    // ... key B is picked up at once through the unknown-kid refetch ...
    assert!(s.has("b").await);
    assert_eq!(s.hits(), 2);
    // ... and from that fetch on key A is gone, with no new fetch for its kid.
    assert!(!s.has("a").await);
    assert!(!s.has("a").await);
    assert_eq!(s.hits(), 2);

    // Without a new kid to trigger a refetch, a removed key lasts at most max-age.
    s.host.set(PATH, Reply::jwks(&[(&s.a, "a")]));
    s.advance(121);
    assert!(s.has("a").await);
    s.host.set(PATH, Reply::jwks(&[(&s.b, "b")]));
    s.advance(121);
    assert!(!s.has("a").await);
}

#[tokio::test]
async fn nhs_policy_never_refetches_for_an_unknown_kid() {
    let s = setup(FetchPolicy::nhs()).await;
    s.host.set(PATH, Reply::jwks(&[(&s.a, "a")]));
    assert!(s.has("a").await);
    s.host.set(PATH, Reply::jwks(&[(&s.a, "a"), (&s.b, "b")]));
    s.advance(3599);
    assert!(!s.has("b").await);
    assert_eq!(s.hits(), 1);
    s.advance(1);
    assert!(s.has("b").await);
    assert_eq!(s.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_unknown_kid_calls_make_one_fetch() {
    let s = setup(FetchPolicy::default()).await;
    // A little delay so the callers really overlap the fetch (not a timing assertion).
    s.host.set(
        PATH,
        Reply::jwks(&[(&s.a, "a")]).delayed(Duration::from_millis(50)),
    );
    let url = s.host.url(PATH);
    let storm = |kid: &'static str| {
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let (fetcher, url) = (Arc::clone(&s.fetcher), url.clone());
                tokio::spawn(async move { fetcher.keys(&url, Some(kid)).await })
            })
            .collect();
        async move {
            for task in tasks {
                let keys = task.await.unwrap().unwrap();
                assert!(keys.by_kid("a").is_some());
            }
        }
    };
    // Cold: one fetch for all of them.
    storm("unknown").await;
    assert_eq!(s.hits(), 1, "cold single flight");
    // That fetch was made for the kid and came back without it: it is this interval's
    // unknown-kid refetch, so callers after it are not sent to the host again.
    storm("unknown").await;
    assert_eq!(s.hits(), 1, "the cold fetch counts as the kid-miss refetch");
    // Next interval (the set is still fresh), a kid nobody publishes: exactly one refetch however
    // many ask.
    s.advance(61);
    storm("unknown").await;
    assert_eq!(s.hits(), 2, "one unknown-kid refetch");
    // And none more within the interval.
    storm("unknown").await;
    assert_eq!(s.hits(), 2, "rate-limited");
    assert_eq!(s.fetcher.fetch_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hanging_host_bounded_wait_one_fetch_then_backoff() {
    let timeout = Duration::from_secs(1);
    let s = setup(FetchPolicy::default().with_timeout(timeout)).await;
    s.host.set(
        PATH,
        Reply::jwks(&[(&s.a, "a")]).delayed(Duration::from_secs(60)),
    );

    // Ten concurrent cold calls: one fetch, and every call ends by the timeout.
    let started = Instant::now();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (fetcher, url) = (Arc::clone(&s.fetcher), s.host.url(PATH));
            tokio::spawn(async move { fetcher.keys(&url, Some("a")).await })
        })
        .collect();
    for task in tasks {
        let err = task.await.unwrap().unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("no answer within 1s"), "{err}");
    }
    let waited = started.elapsed();
    assert!(waited <= timeout + SLACK, "waited {waited:?}");
    assert_eq!(s.hits(), 1, "single flight");

    // Within the back-off (10 s of clock time) nobody waits on the host again.
    let started = Instant::now();
    for _ in 0..20 {
        assert!(matches!(s.keys("a").await, Err(Error::Timeout { .. })));
    }
    assert!(
        started.elapsed() < timeout,
        "answered from the remembered error"
    );
    assert_eq!(s.hits(), 1, "no fetch during back-off");

    // After the back-off: one new try, which the now prompt host answers.
    s.host.set(PATH, Reply::jwks(&[(&s.a, "a")]));
    s.advance(11);
    assert!(s.has("a").await);
    assert_eq!(s.hits(), 2);
}

#[tokio::test]
async fn down_host_fails_fast_and_is_not_hammered() {
    // A port with nothing listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let clock = ManualClock::new(SystemClock.now());
    let fetcher = JwksFetcher::new(FetchPolicy::default(), Arc::new(clock.clone())).unwrap();
    let url = url::Url::parse(&format!("http://127.0.0.1:{port}/jwks.json")).unwrap();
    let started = Instant::now();
    for _ in 0..50 {
        let err = fetcher.keys(&url, Some("a")).await.unwrap_err();
        assert!(matches!(err, Error::Transport { .. }), "{err}");
    }
    assert!(started.elapsed() <= Duration::from_secs(5) + SLACK);
    assert_eq!(fetcher.fetch_count(), 1, "one attempt per back-off");
    clock.advance(Duration::from_secs(11));
    assert!(fetcher.keys(&url, Some("a")).await.is_err());
    assert_eq!(fetcher.fetch_count(), 2);
}

#[tokio::test]
async fn host_answering_500_from_the_start_bounded_fetches() {
    let s = setup(FetchPolicy::default()).await;
    s.host.set(PATH, Reply::status(500));
    // 100 calls over 60 s of clock time: one fetch per 10 s back-off at most.
    for i in 0..100 {
        let err = s.keys("a").await.unwrap_err();
        assert!(matches!(err, Error::Status { status: 500, .. }), "{err}");
        if i % 10 == 9 {
            s.advance(6);
        }
    }
    assert!((1..=7).contains(&s.hits()), "{} fetches", s.hits());
}

#[tokio::test]
async fn junk_and_private_members_are_refused_without_echoing_the_body() {
    let s = setup(FetchPolicy::default()).await;
    s.host
        .set(PATH, Reply::json("<html>secret-looking junk</html>"));
    let err = s.keys("a").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidJwks {
                source: JwksError::Malformed { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.to_string().contains("secret-looking"), "{err}");

    // A JWKS with the RFC 7515 A.3 private P-256 key (its `d` included).
    s.host.set(
        PATH,
        Reply::json(
            r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"a",
 "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
 "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
 "d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}]}"#,
        ),
    );
    s.advance(11);
    let err = s.keys("a").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidJwks {
                source: JwksError::PrivateMembers { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.to_string().contains("jpsQnnGQ"), "{err}");
    assert!(!format!("{err:?}").contains("jpsQnnGQ"), "{err:?}");
}

#[tokio::test]
async fn oversized_bodies_are_refused_while_streaming() {
    let s = setup(FetchPolicy::default()).await;
    // 10 MiB without Content-Length: the cap must stop the download itself.
    s.host.set(
        "/huge.json",
        Reply {
            status: 200,
            stream_bytes: Some(10 * 1024 * 1024),
            ..Reply::default()
        },
    );
    let err = s
        .fetcher
        .keys(&s.host.url("/huge.json"), None)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::TooLarge {
            url: s.host.url("/huge.json").to_string(),
            limit: MAX_JWKS_BYTES
        }
    );
    // Announced by Content-Length: refused before reading.
    s.host
        .set("/big.json", Reply::json(" ".repeat(MAX_JWKS_BYTES + 1)));
    let err = s
        .fetcher
        .keys(&s.host.url("/big.json"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    // A smaller cap is a tightening anyone may set.
    let small = setup(FetchPolicy::default().with_max_body_bytes(50)).await;
    small.host.set(PATH, Reply::jwks(&[(&small.a, "a")]));
    assert!(matches!(
        small.keys("a").await,
        Err(Error::TooLarge { limit: 50, .. })
    ));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let s = setup(FetchPolicy::default()).await;
    s.host.set(PATH, Reply::jwks(&[(&s.a, "a")]));
    s.host.set(
        "/redirect.json",
        Reply::status(302).header("location", PATH),
    );
    let err = s
        .fetcher
        .keys(&s.host.url("/redirect.json"), Some("a"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Status { status: 302, .. }), "{err}");
    assert!(
        err.to_string().contains("redirects are not followed"),
        "{err}"
    );
    assert_eq!(s.hits(), 0, "the redirect target was never fetched");
}

#[tokio::test]
async fn urls_the_policy_refuses_are_never_fetched() {
    let s = setup(FetchPolicy::default()).await;
    let insecure = url::Url::parse("http://example.com/jwks.json").unwrap();
    let err = s.fetcher.keys(&insecure, None).await.unwrap_err();
    assert!(matches!(err, Error::InsecureHttp { .. }), "{err}");
    let bare = s.host.url("/");
    let err = s.fetcher.keys(&bare, None).await.unwrap_err();
    assert!(matches!(err, Error::UrlWithoutPath { .. }), "{err}");
    assert_eq!(s.fetcher.fetch_count(), 0);
    assert_eq!(s.host.hits("/"), 0);
}
