//! Redis-store behaviour beyond the shared conformance suite, against real `redis-server`
//! processes: Redis dying and coming back, several server instances sharing one Redis, the key
//! layout, and no password in errors.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use m2m_core::clock::{Clock, SystemClock, UnixTime};
use m2m_server::replay::{self, RedisStore, ReplayStore, StoreError};
use m2m_testkit::redis::RedisServer;

fn now() -> UnixTime {
    SystemClock.now()
}

fn in_a_minute(t: UnixTime) -> UnixTime {
    t.add(Duration::from_secs(60))
}

/// A hang guard, far above the store's own 1 s deadline: only trips if the store hangs.
const HANG_GUARD: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_is_an_error_and_recovery_is_automatic() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let port = server.port();
    let store = RedisStore::open(&server.url()).unwrap();
    let t = now();
    assert!(
        store
            .insert_if_absent("client", "before", in_a_minute(t), t)
            .await
            .unwrap()
    );

    server.kill();

    // Every call fails (never "inserted"), and within the store's own deadline.
    for jti in ["during-1", "during-2", "during-3"] {
        let result = tokio::time::timeout(
            HANG_GUARD,
            store.insert_if_absent("client", jti, in_a_minute(t), t),
        )
        .await
        .expect("the store must not hang while redis is down");
        let err = result.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Backend {
                    backend: "redis",
                    ..
                } | StoreError::Timeout {
                    backend: "redis",
                    ..
                }
            ),
            "{err:?}"
        );
    }
    let health = tokio::time::timeout(HANG_GUARD, store.health())
        .await
        .expect("health must not hang");
    assert!(health.is_err());

    // A new redis on the same port: the same store reconnects by itself.
    let server = RedisServer::start_on_port(port).unwrap();
    let mut recovered = false;
    for _ in 0..100 {
        if tokio::time::timeout(HANG_GUARD, store.health())
            .await
            .expect("no hang")
            .is_ok()
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        recovered,
        "the store did not reconnect to the restarted redis"
    );
    let t = now();
    assert!(
        store
            .insert_if_absent("client", "after", in_a_minute(t), t)
            .await
            .unwrap()
    );
    assert!(
        !store
            .insert_if_absent("client", "after", in_a_minute(t), t)
            .await
            .unwrap()
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_opened_before_redis_starts_works_once_it_does() {
    let port = m2m_testkit::net::free_port();
    let store = replay::open(
        &format!("redis://127.0.0.1:{port}/0"),
        std::path::Path::new("."),
    )
    .unwrap();
    let t = now();
    let early = tokio::time::timeout(
        HANG_GUARD,
        store.insert_if_absent("c", "j", in_a_minute(t), t),
    )
    .await
    .expect("no hang");
    if early.is_ok() {
        // Something else answered on that port; the test cannot say anything.
        return;
    }
    let Some(_server) = RedisServer::start_on_port(port) else {
        return;
    };
    store.health().await.unwrap();
    assert!(
        store
            .insert_if_absent("c", "j", in_a_minute(t), t)
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_server_instances_sharing_one_redis_let_exactly_one_through() {
    const TASKS: usize = 50;
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a: Arc<dyn ReplayStore> = Arc::new(RedisStore::open(&server.url()).unwrap());
    let b: Arc<dyn ReplayStore> = Arc::new(RedisStore::open(&server.url()).unwrap());
    let t = now();
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let handles: Vec<_> = (0..TASKS)
        .map(|i| {
            let store = Arc::clone(if i % 2 == 0 { &a } else { &b });
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .insert_if_absent("client", "shared-jti", in_a_minute(t), t)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for handle in handles {
        winners += usize::from(handle.await.unwrap());
    }
    assert_eq!(winners, 1);
    assert!(a.contains("client", "shared-jti", t).await.unwrap());
    assert!(b.contains("client", "shared-jti", t).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_namespaced_and_expire_with_the_assertion() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::open(&server.url()).unwrap();
    let t = now();
    assert!(
        store
            .insert_if_absent("client:x", "jti-1", t.add(Duration::from_secs(90)), t)
            .await
            .unwrap()
    );

    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = replay::redis::key("client:x", "jti-1");
    assert_eq!(key, "m2m:jti:8:client:x:jti-1");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 90_000, "PTTL {pttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_an_error_that_does_not_echo_it() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = format!("redis://:sup3r-secret@127.0.0.1:{}/", server.port());
    let store = RedisStore::open(&url).unwrap();
    assert!(!format!("{store:?}").contains("sup3r-secret"));
    let t = now();
    let err = store
        .insert_if_absent("c", "j", in_a_minute(t), t)
        .await
        .unwrap_err();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        text.push_str(&s.to_string());
        source = s.source();
    }
    assert!(!text.contains("sup3r-secret"), "{text}");
    assert!(!format!("{err:?}").contains("sup3r-secret"), "{err:?}");
}

#[test]
fn invalid_redis_urls_are_refused_at_open() {
    for spec in ["redis://", "redis://:pw@host:notaport"] {
        let err = replay::open(spec, std::path::Path::new(".")).unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidSpec { .. }),
            "{spec}: {err:?}"
        );
        assert!(!err.to_string().contains(":pw@"), "{err}");
    }
}
