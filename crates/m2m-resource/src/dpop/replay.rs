//! Single use of DPoP proofs (RFC 9449 §11.1): the [`ProofReplayStore`] trait and the in-memory
//! store of one process ([`MemoryProofStore`]); the Redis store, shared by several instances of
//! an API, is in [`crate::dpop::redis`].
//!
//! A proof is accepted for its `iat` window (by default five minutes), so its `(jkt, jti)` pair is
//! kept that long ([`m2m_core::validate::VerifiedProof::replay_until`]); a second use within it is
//! a replay. Every store fails closed: when it cannot answer, or is full, the request is refused
//! (503) rather than let a proof through twice.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use m2m_core::clock::UnixTime;

/// The future every [`ProofReplayStore`] method returns; boxed so the store can be a trait object
/// chosen at start-up.
pub type ReplayFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ReplayError>> + Send + 'a>>;

/// Remembers `(jkt, jti)` pairs of accepted proofs until they could no longer be accepted.
pub trait ProofReplayStore: Send + Sync + fmt::Debug + 'static {
    /// Atomically records `(jkt, jti)` until `until`: `Ok(true)` if it was new (or only an
    /// expired entry was there), `Ok(false)` for a replay. Two concurrent calls for one pair never
    /// both see `true`.
    fn insert_if_absent<'a>(
        &'a self,
        jkt: &'a str,
        jti: &'a str,
        until: UnixTime,
        now: UnixTime,
    ) -> ReplayFuture<'a, bool>;

    /// `"memory"` or `"redis"`, for logs.
    fn kind(&self) -> &'static str;
}

/// Why a store could not answer. The request is refused with 503: without an answer, a replay
/// cannot be ruled out.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The in-memory store holds `capacity` live entries; it refuses rather than evict one (an
    /// evicted pair could be replayed).
    #[error("the DPoP replay store is full ({capacity} live proofs)")]
    Full {
        /// The configured capacity.
        capacity: usize,
    },
    /// The backend did not answer in time.
    #[error("the {backend} DPoP replay store did not answer within {after:?}")]
    Timeout {
        /// `"redis"`.
        backend: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// The backend failed or answered something unexpected (no keys or passwords in the text).
    #[error("the {backend} DPoP replay store failed: {detail}")]
    Backend {
        /// `"redis"`.
        backend: &'static str,
        /// What happened.
        detail: String,
    },
}

/// Default capacity of [`MemoryProofStore`]: with the default 5-minute window (plus 60 s of clock
/// skew ahead) it holds every proof of about 2,700 requests a second; at roughly 150 bytes an
/// entry that is at most ~150 MB.
pub const DEFAULT_MEMORY_CAPACITY: usize = 1_000_000;

/// How many expired entries an insert purges on its way, so the map shrinks with the traffic
/// while one insert's extra work stays bounded (a full purge runs only when the store is full).
const PURGE_BATCH: usize = 16;

/// A `(jkt, jti)` pair, two fields (never concatenated), so no two pairs share a key.
type Key = (Box<str>, Box<str>);

#[derive(Debug, Default)]
struct State {
    /// Pair → until when it is kept.
    entries: HashMap<Key, UnixTime>,
    /// The same entries by expiry, so purging finds the expired ones without a scan.
    expirations: BTreeSet<(UnixTime, Key)>,
}

impl State {
    fn purge(&mut self, now: UnixTime, limit: usize) {
        for _ in 0..limit {
            match self.expirations.first() {
                Some((when, _)) if *when <= now => {}
                _ => return,
            }
            if let Some((_, key)) = self.expirations.pop_first() {
                self.entries.remove(&key);
            }
        }
    }
}

/// The in-memory store: one process's proofs, bounded, forgotten on restart. Several instances
/// of an API behind a load balancer need the shared Redis store instead, or a proof used at one
/// instance could be replayed at another.
#[derive(Debug)]
pub struct MemoryProofStore {
    /// A std mutex: every critical section is a few map operations and never awaits.
    state: Mutex<State>,
    capacity: usize,
}

impl Default for MemoryProofStore {
    fn default() -> Self {
        MemoryProofStore::new(DEFAULT_MEMORY_CAPACITY)
    }
}

impl MemoryProofStore {
    /// A store holding at most `capacity` live proofs.
    pub fn new(capacity: usize) -> Self {
        MemoryProofStore {
            state: Mutex::new(State::default()),
            capacity,
        }
    }

    /// How many pairs are held (live or not yet purged).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no pair is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn insert(
        &self,
        jkt: &str,
        jti: &str,
        until: UnixTime,
        now: UnixTime,
    ) -> Result<bool, ReplayError> {
        let mut state = self.lock();
        state.purge(now, PURGE_BATCH);
        let key: Key = (jkt.into(), jti.into());
        if let Some(&expires) = state.entries.get(&key) {
            if expires > now {
                return Ok(false);
            }
            state.expirations.remove(&(expires, key.clone()));
            state.entries.remove(&key);
        }
        if state.entries.len() >= self.capacity {
            state.purge(now, usize::MAX);
            if state.entries.len() >= self.capacity {
                return Err(ReplayError::Full {
                    capacity: self.capacity,
                });
            }
        }
        state.expirations.insert((until, key.clone()));
        state.entries.insert(key, until);
        Ok(true)
    }
}

impl ProofReplayStore for MemoryProofStore {
    fn insert_if_absent<'a>(
        &'a self,
        jkt: &'a str,
        jti: &'a str,
        until: UnixTime,
        now: UnixTime,
    ) -> ReplayFuture<'a, bool> {
        let result = self.insert(jkt, jti, until, now);
        Box::pin(async move { result })
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(s: u64) -> UnixTime {
        UnixTime::from_secs(1_800_000_000 + s)
    }

    #[tokio::test]
    async fn a_pair_is_single_use_until_it_expires() {
        let s = MemoryProofStore::new(10);
        assert!(s.insert_if_absent("k", "j", at(300), at(0)).await.unwrap());
        assert!(!s.insert_if_absent("k", "j", at(300), at(1)).await.unwrap());
        assert!(
            !s.insert_if_absent("k", "j", at(300), at(299))
                .await
                .unwrap()
        );
        // Another key may use the same jti; pairs are not concatenated.
        assert!(s.insert_if_absent("k2", "j", at(300), at(1)).await.unwrap());
        assert!(s.insert_if_absent("kj", "", at(300), at(1)).await.unwrap());
        // Expired: the proof could not be accepted any more, so the pair may be recorded again.
        assert!(
            s.insert_if_absent("k", "j", at(600), at(300))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_full_store_refuses_rather_than_evicts() {
        let s = MemoryProofStore::new(2);
        assert!(s.insert_if_absent("k", "1", at(100), at(0)).await.unwrap());
        assert!(s.insert_if_absent("k", "2", at(200), at(0)).await.unwrap());
        assert!(matches!(
            s.insert_if_absent("k", "3", at(100), at(1)).await,
            Err(ReplayError::Full { capacity: 2 })
        ));
        // Once one expires there is room again, and the live one is still a replay.
        assert!(
            s.insert_if_absent("k", "3", at(300), at(100))
                .await
                .unwrap()
        );
        assert!(
            !s.insert_if_absent("k", "2", at(300), at(100))
                .await
                .unwrap()
        );
        assert_eq!(s.len(), 2);
    }
}
