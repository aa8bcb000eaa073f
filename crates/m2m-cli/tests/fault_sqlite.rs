//! Faults of the SQLite replay store under the real `m2m serve` binary:
//!
//! - the store can no longer write (disk full) → every token request fails closed (503
//!   `temporarily_unavailable`, no token) and `/readyz` goes red; writes possible again → the
//!   server recovers by itself;
//! - the server is SIGKILLed mid-load and restarted on the same data dir → every assertion that
//!   got a token before the kill is refused after it.
//!
//! How "disk full" is made: `chmod 0444` cannot do it (root ignores file modes, and a running
//! server keeps its already-open read-write descriptor anyway), and mounting a tiny tmpfs needs
//! root, which CI may not have. Instead the test lowers the running server's `RLIMIT_FSIZE` with
//! `prlimit --pid` (allowed for one's own child, root or not): from then on the kernel refuses
//! every `write()` to a regular file at an offset past the limit with `EFBIG`, exactly where a
//! full disk gives `ENOSPC` — SQLite's WAL append fails and the transaction does not commit.
//! The server runs under `sh -c 'trap "" XFSZ; exec m2m …'` so the accompanying SIGXFSZ is
//! ignored (as a full disk sends no signal) and its stderr is a pipe (not limited).
#![allow(clippy::unwrap_used, missing_docs, clippy::print_stderr)]

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use support::fault::{Fixture, poll_until};

/// `prlimit --pid PID --fsize=SOFT:` (soft limit only, so it can be raised again).
fn set_fsize(pid: u32, soft: &str) {
    let out = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--fsize={soft}:")])
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!("prlimit failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => panic!("prlimit (util-linux) is needed for this test: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_that_cannot_write_fails_closed_and_readiness_goes_red() {
    let fx = Fixture::new();
    let server = fx.serve("sqlite", Some("trap '' XFSZ"));
    assert_eq!(server.readyz().await, Some(200), "{}", server.log());
    for _ in 0..5 {
        assert_eq!(server.token(&fx.assertion()).await.status, Some(200));
    }

    // "Disk full": no write to any file past byte 1 (WAL appends included).
    set_fsize(server.pid(), "1");
    for i in 0..20 {
        let o = server.token(&fx.assertion()).await;
        assert_eq!(
            (o.status, o.error.as_str(), o.has_token),
            (Some(503), "temporarily_unavailable", false),
            "request {i} while the store cannot write; log:\n{}",
            server.log()
        );
    }
    assert_eq!(
        server.readyz().await,
        Some(503),
        "readiness red while the store cannot write"
    );
    assert!(
        server.log().contains("replay store"),
        "the failure is logged: {}",
        server.log()
    );

    // Space again: the server recovers without a restart, and replays are still refused.
    set_fsize(server.pid(), "unlimited");
    let recovered = poll_until(Duration::from_secs(10), || async {
        server.readyz().await == Some(200)
    })
    .await;
    assert!(
        recovered.is_some(),
        "readiness back; log:\n{}",
        server.log()
    );
    let a = fx.assertion();
    assert_eq!(server.token(&a).await.status, Some(200), "{}", server.log());
    let replay = server.token(&a).await;
    assert_eq!((replay.status, replay.has_token), (Some(401), false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_load_then_restart_refuses_every_assertion_accepted_before() {
    let fx = Arc::new(Fixture::new());
    let mut server = fx.serve("sqlite", None);
    assert_eq!(server.readyz().await, Some(200), "{}", server.log());

    // 8 workers send fresh assertions back to back and keep every one that got a token.
    let stop = Arc::new(AtomicBool::new(false));
    let issued = Arc::new(AtomicUsize::new(0));
    let target = server.base();
    let http = server.http.clone();
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (fx, stop, issued, target, http) = (
            Arc::clone(&fx),
            Arc::clone(&stop),
            Arc::clone(&issued),
            target.clone(),
            http.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            let mut refused_connections = 0;
            while !stop.load(Ordering::SeqCst) && refused_connections < 50 {
                let a = fx.assertion();
                let r = http
                    .post(format!("{target}/oauth2/token"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!(
                        "grant_type=client_credentials&client_assertion_type=\
                         urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
                         &client_assertion={a}"
                    ))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        let body = r.text().await.unwrap_or_default();
                        if body.contains("access_token") {
                            accepted.push(a);
                            issued.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        refused_connections += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            accepted
        }));
    }
    // Kill once 300 tokens have been issued (bounded wait).
    let enough = poll_until(Duration::from_secs(60), || async {
        issued.load(Ordering::SeqCst) >= 300
    })
    .await;
    assert!(
        enough.is_some(),
        "300 tokens issued; log:\n{}",
        server.log()
    );
    server.sigkill(); // mid-load: requests are in flight
    stop.store(true, Ordering::SeqCst);
    let mut accepted = Vec::new();
    for w in workers {
        accepted.extend(w.await.unwrap());
    }
    assert!(
        accepted.len() >= 300,
        "enough tokens issued before the kill: {}",
        accepted.len()
    );

    // Restart on the same data dir (another port; the issuer is fixed, so the assertions stay
    // valid for their 60 s lifetime).
    let restarted = fx.serve("sqlite", None);
    assert_eq!(restarted.readyz().await, Some(200), "{}", restarted.log());
    let mut wrongly_accepted = 0;
    for a in &accepted {
        let o = restarted.token(a).await;
        if o.has_token || o.status == Some(200) {
            wrongly_accepted += 1;
        } else {
            assert_eq!(
                (o.status, o.error.as_str()),
                (Some(401), "invalid_client"),
                "a replay is refused as such"
            );
        }
    }
    assert_eq!(
        wrongly_accepted,
        0,
        "{wrongly_accepted} of {} assertions accepted before the SIGKILL were accepted again",
        accepted.len()
    );
    // The restarted server still issues tokens for fresh assertions.
    assert_eq!(restarted.token(&fx.assertion()).await.status, Some(200));
}
