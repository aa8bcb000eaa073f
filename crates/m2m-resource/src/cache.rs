//! The verified-token cache: m2m clients reuse a token for its whole lifetime, so its signature
//! is checked once per process and later requests cost one SHA-256 and one map lookup.
//!
//! Rules: the key is the SHA-256 of the token (the token itself is never stored); an entry lives
//! until min(`exp`, a bound); the map is size-bounded (expired entries go first, then the ones
//! closest to expiry); entries verified with a key that leaves its issuer's JWKS are dropped
//! ([`VerifiedCache::retain_keys`]); negative introspection answers live in the same map, marked
//! as such, so they are never served as success. Pure apart from a std mutex held only for the
//! map operation (never across an await); time is passed in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_lc_rs::digest;
use m2m_core::clock::UnixTime;
use m2m_core::ids::KeySet;

use crate::identity::Caller;

/// The SHA-256 of a token: the cache key.
pub(crate) type TokenHash = [u8; 32];

/// The SHA-256 of `token`.
pub(crate) fn token_hash(token: &str) -> TokenHash {
    let d = digest::digest(&digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Which key verified a cached token, so a key rotation can drop what it verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum VerifiedBy {
    /// A JWKS key of the issuer at this index of the verifier's issuer list, named by `kid`, or
    /// by RFC 7638 thumbprint when the token had no `kid`.
    Key {
        /// Index of the issuer in the verifier's list.
        issuer: usize,
        /// The `kid`, if the token named one.
        kid: Option<String>,
        /// The key's RFC 7638 thumbprint.
        thumbprint: String,
    },
    /// An introspection answer (no key involved).
    Introspection,
}

/// What is cached under a token's hash.
#[derive(Clone, Debug)]
pub(crate) enum Cached {
    /// A verified token.
    Valid(Arc<Caller>),
    /// An introspection endpoint said `active: false`: refused without asking again, briefly.
    Inactive,
}

#[derive(Debug)]
struct Entry {
    value: Cached,
    until: UnixTime,
    by: VerifiedBy,
}

/// A bounded map from token hash to verification result.
#[derive(Debug)]
pub(crate) struct VerifiedCache {
    map: Mutex<HashMap<TokenHash, Entry>>,
    capacity: usize,
}

impl VerifiedCache {
    /// A cache of at most `capacity` entries (0 turns it off).
    pub(crate) fn new(capacity: usize) -> Self {
        VerifiedCache {
            map: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The cached result for `hash`, if its entry is still alive at `now`.
    pub(crate) fn get(&self, hash: &TokenHash, now: UnixTime) -> Option<Cached> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(hash) {
            Some(e) if now < e.until => Some(e.value.clone()),
            Some(_) => {
                map.remove(hash);
                None
            }
            None => None,
        }
    }

    /// Stores a result until `until`; when full, drops expired entries, then the ones that
    /// expire soonest (an attacker filling the cache with valid tokens of its own can only push
    /// out entries that were about to go anyway, and each of its entries cost a signature check).
    pub(crate) fn insert(
        &self,
        hash: TokenHash,
        value: Cached,
        until: UnixTime,
        by: VerifiedBy,
        now: UnixTime,
    ) {
        if self.capacity == 0 || until <= now {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.capacity && !map.contains_key(&hash) {
            map.retain(|_, e| now < e.until);
            while map.len() >= self.capacity {
                let Some(soonest) = map.iter().min_by_key(|(_, e)| e.until).map(|(k, _)| *k) else {
                    break;
                };
                map.remove(&soonest);
            }
        }
        map.insert(hash, Entry { value, until, by });
    }

    /// Drops the entries of issuer `issuer` verified by a key that is not in `keys` (a key left
    /// the JWKS: what it verified is no longer trusted), or all of them when `keys` is `None`
    /// (the issuer's keys are gone altogether).
    pub(crate) fn retain_keys(&self, issuer: usize, keys: Option<&KeySet>) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, e| match &e.by {
            VerifiedBy::Key {
                issuer: i,
                kid,
                thumbprint,
            } if *i == issuer => keys.is_some_and(|keys| {
                keys.iter().any(|k| match kid {
                    Some(kid) => k.kid.as_deref() == Some(kid.as_str()),
                    None => k.key.thumbprint() == *thumbprint,
                })
            }),
            _ => true,
        });
    }

    /// How many entries are held (for tests and metrics).
    pub(crate) fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use m2m_core::ids::{KeyEntry, Kid};
    use m2m_core::key::{KeySpec, PrivateKey};

    fn caller() -> Cached {
        Cached::Valid(Arc::new(Caller::for_tests("c", "c", &["read"])))
    }
    fn by(kid: &str) -> VerifiedBy {
        VerifiedBy::Key {
            issuer: 0,
            kid: Some(kid.to_owned()),
            thumbprint: String::new(),
        }
    }
    const T0: UnixTime = UnixTime::from_secs(1_000);

    #[test]
    fn entries_live_until_their_deadline() {
        let cache = VerifiedCache::new(10);
        let h = token_hash("a.b.c");
        cache.insert(h, caller(), UnixTime::from_secs(1_010), by("k"), T0);
        assert!(cache.get(&h, UnixTime::from_secs(1_009)).is_some());
        assert!(cache.get(&h, UnixTime::from_secs(1_010)).is_none());
        assert_eq!(cache.len(), 0, "an expired entry is removed when seen");
    }

    #[test]
    fn the_size_is_bounded_and_the_soonest_to_expire_goes_first() {
        let cache = VerifiedCache::new(2);
        cache.insert(
            token_hash("1"),
            caller(),
            UnixTime::from_secs(1_100),
            by("k"),
            T0,
        );
        cache.insert(
            token_hash("2"),
            caller(),
            UnixTime::from_secs(1_050),
            by("k"),
            T0,
        );
        cache.insert(
            token_hash("3"),
            caller(),
            UnixTime::from_secs(1_200),
            by("k"),
            T0,
        );
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&token_hash("2"), T0).is_none());
        assert!(cache.get(&token_hash("1"), T0).is_some());
        assert!(cache.get(&token_hash("3"), T0).is_some());
        let off = VerifiedCache::new(0);
        off.insert(
            token_hash("1"),
            caller(),
            UnixTime::from_secs(1_100),
            by("k"),
            T0,
        );
        assert_eq!(off.len(), 0);
    }

    #[test]
    fn entries_of_a_key_that_left_the_jwks_are_dropped() {
        let cache = VerifiedCache::new(10);
        cache.insert(
            token_hash("old"),
            caller(),
            UnixTime::from_secs(2_000),
            by("old"),
            T0,
        );
        cache.insert(
            token_hash("new"),
            caller(),
            UnixTime::from_secs(2_000),
            by("new"),
            T0,
        );
        cache.insert(
            token_hash("introspected"),
            caller(),
            UnixTime::from_secs(2_000),
            VerifiedBy::Introspection,
            T0,
        );
        let key = PrivateKey::generate(KeySpec::P256).unwrap();
        let keys = KeySet::new(vec![KeyEntry::new(
            Some(Kid::new("new")),
            key.public_key().clone(),
        )]);
        cache.retain_keys(0, Some(&keys));
        assert!(cache.get(&token_hash("old"), T0).is_none());
        assert!(cache.get(&token_hash("new"), T0).is_some());
        cache.retain_keys(0, None);
        assert!(cache.get(&token_hash("new"), T0).is_none());
        assert!(cache.get(&token_hash("introspected"), T0).is_some());
    }
}
