//! SQLite-store behaviour beyond the shared conformance suite: replay protection survives a
//! restart, the purge keeps the file bounded, spec paths, and failures surface as errors.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use m2m_core::clock::{ManualClock, UnixTime};
use m2m_server::replay::{self, ReplayStore, SqliteStore, StoreError};

const T0: UnixTime = UnixTime::from_secs(1_700_000_000);

fn at(secs: u64) -> UnixTime {
    T0.add(Duration::from_secs(secs))
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open_with_clock(path, Arc::new(ManualClock::new(T0))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_jti_is_still_refused_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay.sqlite3");

    let store = open(&path);
    assert!(
        store
            .insert_if_absent("client", "jti-1", at(60), at(0))
            .await
            .unwrap()
    );
    assert!(
        store
            .insert_if_absent("client", "short", at(5), at(0))
            .await
            .unwrap()
    );
    drop(store);

    let store = open(&path);
    assert!(
        !store
            .insert_if_absent("client", "jti-1", at(60), at(1))
            .await
            .unwrap()
    );
    assert!(store.contains("client", "jti-1", at(1)).await.unwrap());
    // Expiry is also kept: after it, the pair may be recorded again.
    assert!(
        store
            .insert_if_absent("client", "short", at(65), at(5))
            .await
            .unwrap()
    );
    assert!(
        store
            .insert_if_absent("client", "jti-1", at(120), at(60))
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jti_recorded_through_open_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let now = m2m_core::clock::Clock::now(&m2m_core::clock::SystemClock);
    let exp = now.add(Duration::from_secs(60));
    let store = replay::open("sqlite", dir.path()).unwrap();
    assert!(
        store
            .insert_if_absent("client", "jti", exp, now)
            .await
            .unwrap()
    );
    drop(store);
    let store = replay::open("sqlite", dir.path()).unwrap();
    assert!(
        !store
            .insert_if_absent("client", "jti", exp, now)
            .await
            .unwrap()
    );
}

/// Size of the database and its WAL, in bytes.
fn file_size(path: &Path) -> u64 {
    let wal = path.with_extension("sqlite3-wal");
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    len(path) + len(&wal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_expired_rows_keeps_the_file_bounded() {
    const PER_ROUND: u64 = 5_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay.sqlite3");
    let store = open(&path);

    let mut sizes = Vec::new();
    for round in 0..6u64 {
        // Every round's rows expire before the next round starts.
        let start = at(round * 100);
        for i in 0..PER_ROUND {
            let jti = format!("round-{round}-jti-{i:08}-padding-to-a-realistic-uuid-length");
            assert!(
                store
                    .insert_if_absent("client", &jti, start.add(Duration::from_secs(60)), start)
                    .await
                    .unwrap()
            );
        }
        let purged = store
            .purge_expired(start.add(Duration::from_secs(99)))
            .await
            .unwrap();
        // The lazy purge inside inserts may already have removed some.
        assert!(purged as u64 <= PER_ROUND);
        assert_eq!(store.row_count().await.unwrap(), 0, "round {round}");
        sizes.push(file_size(&path));
    }
    // Freed pages are reused: later rounds do not grow the file beyond the first round's size
    // (plus a little slack for b-tree shape differences).
    let first = sizes[1];
    for (round, size) in sizes.iter().enumerate().skip(2) {
        assert!(
            *size <= first + first / 4,
            "round {round}: {size} bytes vs {first} after round 1: {sizes:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_only_expired_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("r.sqlite3"));
    for i in 0..2_500 {
        assert!(
            store
                .insert_if_absent("c", &format!("old-{i}"), at(10), at(0))
                .await
                .unwrap()
        );
    }
    assert!(
        store
            .insert_if_absent("c", "live", at(100), at(0))
            .await
            .unwrap()
    );
    // More than one batch: the purge loops until nothing expired is left.
    let purged = store.purge_expired(at(10)).await.unwrap();
    assert!(purged > 1_000, "{purged}");
    assert_eq!(store.row_count().await.unwrap(), 1);
    assert!(
        !store
            .insert_if_absent("c", "live", at(100), at(50))
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_path_spec_creates_parent_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a").join("b").join("replay.db");
    let spec = format!("sqlite:{}", path.display());
    let store = replay::open(&spec, Path::new("/nonexistent-unused")).unwrap();
    assert_eq!(store.kind(), "sqlite");
    store.health().await.unwrap();
    assert!(path.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_a_database_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay.sqlite3");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Backend {
                backend: "sqlite",
                ..
            }
        ),
        "{err:?}"
    );
}

/// Fail closed: when the database stops working under the store, inserts are errors, never
/// "inserted", and health says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_database_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay.sqlite3");
    let store = open(&path);
    assert!(
        store
            .insert_if_absent("client", "before", at(60), at(0))
            .await
            .unwrap()
    );

    // Another connection drops the tables behind the store's back.
    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute_batch("DROP TABLE m2m_replay; DROP TABLE m2m_health;")
        .unwrap();
    drop(other);

    let err = store
        .insert_if_absent("client", "after", at(60), at(1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Backend {
                backend: "sqlite",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("record a jti"), "{err}");
    assert!(store.contains("client", "before", at(1)).await.is_err());
    assert!(store.health().await.is_err());
}

/// A working store in `dir`, and a second connection (standing for another process) holding an
/// exclusive lock on its file.
async fn store_locked_by_another_connection(dir: &Path) -> (SqliteStore, rusqlite::Connection) {
    let path = dir.join("replay.sqlite3");
    let store = open(&path);
    store.health().await.unwrap();
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE;").unwrap();
    (store, other)
}

/// A second process holding the write lock makes a request fail after the busy timeout rather
/// than hang forever or report success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let (store, other) = store_locked_by_another_connection(dir.path()).await;
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        store.insert_if_absent("client", "jti", at(60), at(0)),
    )
    .await
    .expect("the store must give up on a locked database");
    assert!(result.is_err(), "{result:?}");
    other.execute_batch("ROLLBACK;").unwrap();

    assert!(
        store
            .insert_if_absent("client", "jti", at(60), at(0))
            .await
            .unwrap()
    );
}

/// The writer's queue is bounded: while the database is locked by another process, requests
/// beyond the queue's capacity are refused at once (503 upstream) instead of piling up; the
/// queued ones are served once the lock goes, and every answer matches the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_store_refuses_beyond_its_queue() {
    use m2m_server::replay::sqlite::{MAX_BATCH, QUEUE_CAPACITY};

    let dir = tempfile::tempdir().unwrap();
    let (store, other) = store_locked_by_another_connection(dir.path()).await;
    let jtis: Vec<String> = (0..QUEUE_CAPACITY + MAX_BATCH + 500)
        .map(|i| format!("jti-{i}"))
        .collect();
    // The futures queue their requests when created, so all are queued (or refused) before the
    // first is awaited. The lock goes well within the busy timeout.
    let pending: Vec<_> = jtis
        .iter()
        .map(|jti| store.insert_if_absent("client", jti, at(60), at(0)))
        .collect();
    let unlock = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        other.execute_batch("ROLLBACK;").unwrap();
    });
    let results = futures_util::future::join_all(pending).await;
    unlock.join().unwrap();

    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(e) if e.to_string().contains("queue a request")))
        .count();
    let recorded = results.iter().filter(|r| matches!(r, Ok(true))).count();
    assert!(refused >= 500, "{refused} refused at once");
    assert_eq!(
        refused + recorded,
        results.len(),
        "every other request was served"
    );
    assert_eq!(store.row_count().await.unwrap(), recorded as u64);
}
