//! The in-memory replay store: a bounded map plus an expiry-ordered index, purged by a background
//! task (the shape of mini-redis's `Db`). For a single `m2m serve` process that may forget
//! everything on restart (tests, demos, load tests).
//!
//! At capacity it fails closed: [`StoreError::Full`] (the server answers 503) instead of evicting
//! a live entry, because an evicted `jti` could be replayed. Expired entries are always purged
//! first, so `Full` means `capacity` assertions are really live at once.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use m2m_core::clock::{Clock, SystemClock, UnixTime};
use tokio::sync::Notify;

use super::{ReplayStore, StoreError, StoreFuture};

/// Default maximum number of entries. At ~150 bytes an entry this is ~150 MB at worst, and it
/// allows 1,000,000 assertions live at once: with 60-second assertions that is ~16,000 tokens a
/// second, far above what one process issues.
pub const DEFAULT_CAPACITY: usize = 1_000_000;

/// How many expired entries an insert purges on its way, so the map shrinks even without the
/// background task, while one insert's extra work stays bounded.
const LAZY_PURGE_BATCH: usize = 16;

/// The longest the background task sleeps with nothing due, so a clock that jumps (an injected or
/// adjusted clock) is noticed.
const MAX_PURGE_SLEEP: Duration = Duration::from_secs(60);

/// A `(client_id, jti)` pair. Two fields, never a concatenation, so `"a"`+`"bc"` ≠ `"ab"`+`"c"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    client_id: Box<str>,
    jti: Box<str>,
}

#[derive(Debug, Default)]
struct State {
    /// Key → when it expires.
    entries: HashMap<Key, UnixTime>,
    /// The same entries ordered by expiry, so purging finds the expired ones without a scan.
    /// The key breaks ties between entries with the same expiry.
    expirations: BTreeSet<(UnixTime, Key)>,
    /// Set when the store is dropped; tells the purge task to stop.
    shutdown: bool,
}

impl State {
    /// Removes up to `limit` entries expired at `now`; returns how many were removed.
    fn purge(&mut self, now: UnixTime, limit: usize) -> usize {
        let mut removed = 0;
        while removed < limit {
            match self.expirations.first() {
                Some((when, _)) if *when <= now => {}
                _ => break,
            }
            if let Some((_, key)) = self.expirations.pop_first() {
                self.entries.remove(&key);
                removed += 1;
            }
        }
        removed
    }

    fn next_expiration(&self) -> Option<UnixTime> {
        self.expirations.first().map(|(when, _)| *when)
    }
}

#[derive(Debug)]
struct Shared {
    /// A std mutex, not tokio's: every critical section is short and never awaits (as mini-redis
    /// argues), and a std mutex is faster.
    state: Mutex<State>,
    /// Wakes the purge task when an earlier expiry arrives or the store shuts down.
    background_task: Notify,
    capacity: usize,
    /// Time source of the purge task (requests pass their own `now`).
    clock: Arc<dyn Clock>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding the lock, and the map and the index are each left
        // valid after every single call, so recovering a poisoned lock is safe (and keeps
        // refusing replays rather than refusing everything).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn insert_if_absent(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let key = Key {
            client_id: client_id.into(),
            jti: jti.into(),
        };
        let mut state = self.lock();
        state.purge(now, LAZY_PURGE_BATCH);

        let previous = state.entries.get(&key).copied();
        if let Some(previous) = previous
            && previous > now
        {
            return Ok(false);
        }
        if expires_at <= now {
            // Nothing to keep: it would be expired at once. Drop a stale entry if there was one.
            if let Some(previous) = previous {
                state.entries.remove(&key);
                state.expirations.remove(&(previous, key));
            }
            return Ok(true);
        }
        match previous {
            Some(previous) => {
                // An expired entry for this key: reuse its slot.
                state.expirations.remove(&(previous, key.clone()));
            }
            None if state.entries.len() >= self.capacity => {
                state.purge(now, usize::MAX);
                if state.entries.len() >= self.capacity {
                    return Err(StoreError::Full {
                        capacity: self.capacity,
                    });
                }
            }
            None => {}
        }
        let notify = state.next_expiration().is_none_or(|next| expires_at < next);
        state.entries.insert(key.clone(), expires_at);
        state.expirations.insert((expires_at, key));
        drop(state);
        if notify {
            self.background_task.notify_one();
        }
        Ok(true)
    }

    fn contains(&self, client_id: &str, jti: &str, now: UnixTime) -> bool {
        let key = Key {
            client_id: client_id.into(),
            jti: jti.into(),
        };
        self.lock()
            .entries
            .get(&key)
            .is_some_and(|expires_at| *expires_at > now)
    }

    /// Purges everything expired. `None`: the store was dropped, stop. `Some(next)`: when the
    /// next entry expires (`Some(None)`: nothing to wait for).
    fn purge_expired(&self) -> Option<Option<UnixTime>> {
        let mut state = self.lock();
        if state.shutdown {
            return None;
        }
        state.purge(self.clock.now(), usize::MAX);
        Some(state.next_expiration())
    }
}

/// The bounded in-memory [`ReplayStore`]. See the [module docs](self).
#[derive(Debug)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

impl MemoryStore {
    /// A store holding at most `capacity` entries, purged on the wall clock.
    ///
    /// Called inside a Tokio runtime it spawns the purge task; outside one, inserts still purge
    /// expired entries lazily and at capacity.
    pub fn new(capacity: usize) -> Self {
        Self::with_clock(capacity, Arc::new(SystemClock))
    }

    /// Like [`MemoryStore::new`], with the purge task reading `clock`.
    pub fn with_clock(capacity: usize, clock: Arc<dyn Clock>) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            background_task: Notify::new(),
            capacity,
            clock,
        });
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(purge_expired_tasks(Arc::clone(&shared)));
        }
        MemoryStore { shared }
    }

    /// The maximum number of entries.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// How many entries are held, expired-but-not-yet-purged ones included.
    pub fn len(&self) -> usize {
        self.shared.lock().entries.len()
    }

    /// Whether no entries are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[cfg(test)]
    fn shared_weak(&self) -> std::sync::Weak<Shared> {
        Arc::downgrade(&self.shared)
    }
}

impl Drop for MemoryStore {
    /// Stops the purge task (it holds its own `Arc<Shared>`, so it would otherwise keep the map
    /// alive forever).
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.background_task.notify_one();
    }
}

/// The purge task: purge, then sleep until the next expiry or until woken.
async fn purge_expired_tasks(shared: Arc<Shared>) {
    while let Some(next) = shared.purge_expired() {
        let wait = match next {
            Some(when) => when.since(shared.clock.now()).min(MAX_PURGE_SLEEP),
            None => MAX_PURGE_SLEEP,
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shared.background_task.notified() => {}
        }
    }
}

impl ReplayStore for MemoryStore {
    fn insert_if_absent<'a>(
        &'a self,
        client_id: &'a str,
        jti: &'a str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> StoreFuture<'a, bool> {
        let result = self
            .shared
            .insert_if_absent(client_id, jti, expires_at, now);
        Box::pin(std::future::ready(result))
    }

    fn contains<'a>(
        &'a self,
        client_id: &'a str,
        jti: &'a str,
        now: UnixTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(std::future::ready(Ok(self
            .shared
            .contains(client_id, jti, now))))
    }

    fn health(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use m2m_core::clock::ManualClock;

    const T0: UnixTime = UnixTime::from_secs(1_700_000_000);

    fn at(ms: u64) -> UnixTime {
        UnixTime::from_millis(T0.as_millis() + ms)
    }

    #[test]
    fn lazy_purge_without_runtime_bounds_the_map() {
        let store = MemoryStore::new(10);
        for i in 0..10 {
            assert!(
                store
                    .shared
                    .insert_if_absent("c", &i.to_string(), at(100), at(0))
                    .unwrap()
            );
        }
        // Full of live entries: fail closed.
        assert!(matches!(
            store.shared.insert_if_absent("c", "x", at(200), at(50)),
            Err(StoreError::Full { capacity: 10 })
        ));
        // Once they expire, a new insert purges them.
        assert!(
            store
                .shared
                .insert_if_absent("c", "x", at(200), at(100))
                .unwrap()
        );
        assert_eq!(store.len(), 1);
        let state = store.shared.lock();
        assert_eq!(state.entries.len(), state.expirations.len());
    }

    #[test]
    fn past_expiry_does_not_shorten_a_live_entry() {
        let store = MemoryStore::new(10);
        assert!(
            store
                .shared
                .insert_if_absent("c", "j", at(100), at(0))
                .unwrap()
        );
        assert!(
            !store
                .shared
                .insert_if_absent("c", "j", at(0), at(10))
                .unwrap()
        );
        assert!(store.shared.contains("c", "j", at(99)));
        assert!(!store.shared.contains("c", "j", at(100)));
    }

    #[tokio::test]
    async fn background_task_purges_and_stops_on_drop() {
        let clock = ManualClock::new(at(0));
        let store = MemoryStore::with_clock(100, Arc::new(clock.clone()));
        for i in 0..50 {
            assert!(
                store
                    .shared
                    .insert_if_absent("c", &i.to_string(), at(100), at(0))
                    .unwrap()
            );
        }
        assert_eq!(store.len(), 50);
        clock.set(at(100));
        // The task sleeps (real time) until the first expiry it saw, then purges on the clock.
        for _ in 0..1_000 {
            if store.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(store.is_empty(), "the purge task did not purge");

        let weak = store.shared_weak();
        drop(store);
        for _ in 0..1_000 {
            if weak.upgrade().is_none() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the purge task still holds the store after it was dropped");
    }
}
