//! Fault: the Redis replay store dies under a running `m2m serve` (the real binary) that is taking
//! requests. Every request sent after Redis is gone must fail closed — `503
//! temporarily_unavailable`, no token — and `/readyz` must go red; when Redis comes back on the
//! same port the server must resume by itself (no restart) within 2 s.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::fault::{Fixture, Outcome, poll_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_under_load_fails_closed_then_resumes_by_itself() {
    let Some(redis) = m2m_testkit::redis::RedisServer::start() else {
        return;
    };
    let port = redis.port();
    let fx = Fixture::new();
    let server = Arc::new(fx.serve(&redis.url(), None));
    assert_eq!(server.readyz().await, Some(200), "{}", server.log());

    // Load: 8 workers send fresh assertions back to back, each outcome tagged with whether the
    // request was *sent* after Redis was confirmed dead.
    let redis_dead = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let fx = Arc::new(fx);
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (server, fx, dead, stop) = (
            Arc::clone(&server),
            Arc::clone(&fx),
            Arc::clone(&redis_dead),
            Arc::clone(&stop),
        );
        workers.push(tokio::spawn(async move {
            let mut seen: Vec<(bool, Outcome)> = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let after_kill = dead.load(Ordering::SeqCst);
                seen.push((after_kill, server.token(&fx.assertion()).await));
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.kill(); // SIGKILL, and waits until the process is gone
    redis_dead.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut before = Vec::new();
    let mut after = Vec::new();
    for w in workers {
        for (after_kill, outcome) in w.await.unwrap() {
            if after_kill {
                after.push(outcome)
            } else {
                before.push(outcome)
            }
        }
    }
    assert!(
        before.iter().any(|o| o.status == Some(200) && o.has_token),
        "tokens were issued while Redis was up: {:?}",
        before.first()
    );
    assert!(
        after.len() >= 8,
        "requests were sent after the kill: {}",
        after.len()
    );
    for o in &after {
        assert_eq!(
            (o.status, o.error.as_str(), o.has_token),
            (Some(503), "temporarily_unavailable", false),
            "every request after the kill fails closed; log:\n{}",
            server.log()
        );
    }
    assert_eq!(
        server.readyz().await,
        Some(503),
        "readiness is red without Redis"
    );

    // Redis back on the same port (empty: no persistence). The server reconnects on its own.
    let _redis = m2m_testkit::redis::RedisServer::start_on_port(port).unwrap();
    let back = Instant::now();
    let recovered = poll_until(Duration::from_secs(2), || async {
        server.token(&fx.assertion()).await.status == Some(200)
    })
    .await;
    assert!(
        recovered.is_some(),
        "service did not resume within 2 s of Redis answering PING ({:?}); log:\n{}",
        back.elapsed(),
        server.log()
    );
    assert_eq!(server.readyz().await, Some(200));
    // And replay protection works again on the new Redis.
    let a = fx.assertion();
    assert_eq!(server.token(&a).await.status, Some(200));
    let replay = server.token(&a).await;
    assert_eq!(
        (replay.status, replay.has_token),
        (Some(401), false),
        "replay refused after recovery: {replay:?}"
    );
}
