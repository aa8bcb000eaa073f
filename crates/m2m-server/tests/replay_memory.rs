//! Memory-store behaviour beyond the shared conformance suite: what happens at the capacity
//! bound (fail closed with `StoreError::Full`, never evict a live entry).
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use m2m_core::clock::{ManualClock, UnixTime};
use m2m_server::replay::{MemoryStore, ReplayStore, StoreError, memory};

const T0: UnixTime = UnixTime::from_secs(1_700_000_000);

fn at(secs: u64) -> UnixTime {
    T0.add(Duration::from_secs(secs))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_capacity_new_pairs_fail_closed_and_live_entries_stay() {
    let store = MemoryStore::with_clock(3, Arc::new(ManualClock::new(T0)));
    assert_eq!(store.capacity(), 3);
    for jti in ["a", "b", "c"] {
        assert!(
            store
                .insert_if_absent("client", jti, at(60), at(0))
                .await
                .unwrap()
        );
    }

    let err = store
        .insert_if_absent("client", "d", at(60), at(1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Full { capacity: 3 }), "{err:?}");
    assert!(err.to_string().contains("full"), "{err}");

    // Nothing was evicted: every live entry is still refused as a replay…
    for jti in ["a", "b", "c"] {
        assert!(
            !store
                .insert_if_absent("client", jti, at(60), at(1))
                .await
                .unwrap(),
            "{jti}"
        );
        assert!(store.contains("client", jti, at(1)).await.unwrap(), "{jti}");
    }
    // …and the refused pair was not recorded.
    assert!(!store.contains("client", "d", at(1)).await.unwrap());
    assert_eq!(store.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_frees_up_as_entries_expire() {
    let store = MemoryStore::with_clock(3, Arc::new(ManualClock::new(T0)));
    assert!(
        store
            .insert_if_absent("client", "short", at(10), at(0))
            .await
            .unwrap()
    );
    assert!(
        store
            .insert_if_absent("client", "long-1", at(60), at(0))
            .await
            .unwrap()
    );
    assert!(
        store
            .insert_if_absent("client", "long-2", at(60), at(0))
            .await
            .unwrap()
    );
    assert!(matches!(
        store.insert_if_absent("client", "new", at(70), at(5)).await,
        Err(StoreError::Full { .. })
    ));
    // "short" has expired at 10 s: its slot is reclaimed, the live ones are kept.
    assert!(
        store
            .insert_if_absent("client", "new", at(70), at(10))
            .await
            .unwrap()
    );
    assert!(
        !store
            .insert_if_absent("client", "long-1", at(60), at(10))
            .await
            .unwrap()
    );
    assert_eq!(store.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusing_an_expired_pair_needs_no_extra_capacity() {
    let store = MemoryStore::with_clock(1, Arc::new(ManualClock::new(T0)));
    assert!(
        store
            .insert_if_absent("client", "j", at(10), at(0))
            .await
            .unwrap()
    );
    assert!(
        store
            .insert_if_absent("client", "j", at(20), at(10))
            .await
            .unwrap()
    );
    assert!(
        !store
            .insert_if_absent("client", "j", at(30), at(19))
            .await
            .unwrap()
    );
    assert_eq!(store.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_at_capacity_never_exceed_it() {
    let store: Arc<dyn ReplayStore> =
        Arc::new(MemoryStore::with_clock(100, Arc::new(ManualClock::new(T0))));
    let handles: Vec<_> = (0..400)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .insert_if_absent("client", &format!("j{i}"), at(60), at(0))
                    .await
            })
        })
        .collect();
    let (mut new, mut full) = (0, 0);
    for handle in handles {
        match handle.await.unwrap() {
            Ok(true) => new += 1,
            Err(StoreError::Full { .. }) => full += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((new, full), (100, 300));
}

#[test]
fn default_capacity_is_documented_value() {
    assert_eq!(memory::DEFAULT_CAPACITY, 1_000_000);
    // Works without a Tokio runtime (no purge task; lazy purge only).
    let store = MemoryStore::new(memory::DEFAULT_CAPACITY);
    assert!(store.is_empty());
}
