//! The JWKS cache as a pure state machine: [`decide`] says what to do with a request for keys
//! (serve the cached set, repeat the remembered error, or fetch), and [`record`] folds a fetch's
//! result into the state. No I/O and no clock of its own, so every rule is tested with exact
//! times; [`crate::fetch::JwksFetcher`] wraps it with HTTP, locks and single flight.
//!
//! The rules, in order:
//! - a fresh set that has the asked kid (or no kid asked) is served;
//! - a fresh set lacking the kid is refetched once, at most once per unknown-kid interval, and
//!   never by a caller that waited for someone else's fetch (that fetch already answered it);
//!   any fetch made for a kid that came back without it (the first, cold fetch included) is that
//!   interval's refetch, so a cold unknown kid costs one download, not two;
//! - after a failed fetch, for the error back-off (and for callers who waited on that fetch),
//!   the host is not asked again: callers get the stale set while it is within its
//!   stale-if-error window, else the same error;
//! - otherwise an expired or absent set is fetched.

use std::time::Duration;

use m2m_core::clock::UnixTime;
use m2m_core::ids::KeySet;

use crate::error::Error;
use crate::fetch_policy::FetchPolicy;

/// The cached state of one URL.
#[derive(Clone, Debug, Default)]
pub struct EntryState {
    keys: Option<KeySet>,
    fresh_until: UnixTime,
    /// `fresh_until` plus the stale-if-error window: the last moment a stale set may be served.
    usable_until: UnixTime,
    last_unknown_kid_refetch: Option<UnixTime>,
    /// The last fetch's error and when it happened (cleared by a success).
    last_error: Option<(Error, UnixTime)>,
}

impl EntryState {
    /// The cached keys, fresh or not.
    pub fn keys(&self) -> Option<&KeySet> {
        self.keys.as_ref()
    }
    /// Until when the cached keys are fresh.
    pub fn fresh_until(&self) -> UnixTime {
        self.fresh_until
    }
    /// Until when the cached keys may be served while refetching fails.
    pub fn usable_until(&self) -> UnixTime {
        self.usable_until
    }
    /// The last fetch's error, if it failed.
    pub fn last_error(&self) -> Option<&Error> {
        self.last_error.as_ref().map(|(e, _)| e)
    }
}

/// Why a fetch is needed (for logs and metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchReason {
    /// Nothing cached yet.
    Cold,
    /// The cached set expired.
    Expired,
    /// The cached set is fresh but lacks the asked kid (a rotation, probably).
    UnknownKid,
}

/// What to do with a request for keys.
#[derive(Clone, Debug)]
pub enum Action {
    /// Answer with these keys (the caller still looks the kid up; it may be absent).
    Serve(KeySet),
    /// Answer with this error (remembered from a recent failed fetch).
    Fail(Error),
    /// Fetch now, then [`record`] the result.
    Fetch(FetchReason),
}

/// Decides what to do for a request at `now` for `kid`. `fetched_while_waiting` is whether
/// another caller completed a fetch of this URL while this one waited for its turn (single
/// flight): its result is then this caller's answer too, so nothing is fetched again.
pub fn decide(
    state: &EntryState,
    now: UnixTime,
    kid: Option<&str>,
    fetched_while_waiting: bool,
    policy: &FetchPolicy,
) -> Action {
    let recent_error = state
        .last_error
        .as_ref()
        .filter(|(_, at)| fetched_while_waiting || now < at.add(policy.error_backoff()))
        .map(|(e, _)| e);
    let Some(keys) = &state.keys else {
        return match recent_error {
            Some(err) => Action::Fail(err.clone()),
            None => Action::Fetch(FetchReason::Cold),
        };
    };
    let fresh = now < state.fresh_until;
    if fresh {
        let has_kid = kid.is_none_or(|k| keys.by_kid(k).is_some());
        if has_kid || fetched_while_waiting {
            return Action::Serve(keys.clone());
        }
        let allowed = policy.refetch_on_unknown_kid()
            && state
                .last_unknown_kid_refetch
                .is_none_or(|t| now >= t.add(policy.unknown_kid_interval()));
        return if allowed {
            Action::Fetch(FetchReason::UnknownKid)
        } else {
            Action::Serve(keys.clone())
        };
    }
    match recent_error {
        // A fetch just failed (ours to wait for, or within the back-off): share its outcome.
        Some(_) if now < state.usable_until => Action::Serve(keys.clone()),
        Some(err) => Action::Fail(err.clone()),
        None => Action::Fetch(FetchReason::Expired),
    }
}

/// What a fetch led to.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The new set, now cached.
    Fetched(KeySet),
    /// The fetch failed, but the cached set is still fresh (an unknown-kid refetch failed).
    KeptFresh {
        /// The cached set.
        keys: KeySet,
        /// The fetch's error.
        error: Error,
    },
    /// The fetch failed and the expired set is served within its stale-if-error window.
    ServedStale {
        /// The cached set.
        keys: KeySet,
        /// The fetch's error.
        error: Error,
    },
    /// The fetch failed and nothing usable is cached.
    Failed(Error),
}

impl Outcome {
    /// The answer for the caller.
    pub fn into_result(self) -> Result<KeySet, Error> {
        match self {
            Outcome::Fetched(keys)
            | Outcome::KeptFresh { keys, .. }
            | Outcome::ServedStale { keys, .. } => Ok(keys),
            Outcome::Failed(err) => Err(err),
        }
    }
}

/// Folds a fetch into the state. `started` is when [`decide`] asked for it (an unknown-kid
/// refetch counts from then), `now` when it ended; `kid` is the one the fetch was made for;
/// `result` is the keys with their cache lifetime (from [`FetchPolicy::ttl_for`]) or the error.
///
/// A fetch of any reason that was made for a kid and came back without it has already asked the
/// host about that kid: it counts as the interval's unknown-kid refetch. Without this, callers
/// arriving just after a cold fetch for an unknown kid would each see a fresh set lacking it and
/// one of them would download it again.
pub fn record(
    state: &mut EntryState,
    reason: FetchReason,
    started: UnixTime,
    kid: Option<&str>,
    result: Result<(KeySet, Duration), Error>,
    now: UnixTime,
    policy: &FetchPolicy,
) -> Outcome {
    let answered_a_kid_miss = match (&result, kid) {
        (Ok((keys, _)), Some(kid)) => keys.by_kid(kid).is_none(),
        _ => false,
    };
    if reason == FetchReason::UnknownKid || answered_a_kid_miss {
        state.last_unknown_kid_refetch = Some(started);
    }
    match result {
        Ok((keys, ttl)) => {
            state.keys = Some(keys.clone());
            state.fresh_until = now.add(ttl);
            state.usable_until = state.fresh_until.add(policy.stale_if_error());
            state.last_error = None;
            Outcome::Fetched(keys)
        }
        Err(error) => {
            state.last_error = Some((error.clone(), now));
            match state.keys.clone() {
                Some(keys) if now < state.fresh_until => Outcome::KeptFresh { keys, error },
                Some(keys) if now < state.usable_until => Outcome::ServedStale { keys, error },
                _ => Outcome::Failed(error),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use m2m_core::ids::{KeyEntry, Kid};
    use m2m_core::key::{KeySpec, PrivateKey};

    use super::*;

    const T0: u64 = 1_800_000_000;

    fn at(secs: u64) -> UnixTime {
        UnixTime::from_secs(T0 + secs)
    }

    fn set(kids: &[&str]) -> KeySet {
        let key = PrivateKey::generate(KeySpec::Ed25519)
            .unwrap()
            .public_key()
            .clone();
        KeySet::new(
            kids.iter()
                .map(|k| KeyEntry::new(Some(Kid::from(*k)), key.clone()))
                .collect(),
        )
    }

    fn down() -> Error {
        Error::Status {
            url: "https://h/jwks".into(),
            status: 500,
        }
    }

    fn kids(action: &Action) -> Vec<String> {
        match action {
            Action::Serve(keys) => keys
                .iter()
                .filter_map(|e| e.kid.as_ref().map(|k| k.to_string()))
                .collect(),
            other => panic!("expected Serve, got {other:?}"),
        }
    }

    /// A state holding `kids`, fetched at `at(0)` with a 120 s lifetime.
    fn cached(kids: &[&str], p: &FetchPolicy) -> EntryState {
        let mut s = EntryState::default();
        let out = record(
            &mut s,
            FetchReason::Cold,
            at(0),
            None,
            Ok((set(kids), Duration::from_secs(120))),
            at(0),
            p,
        );
        assert!(matches!(out, Outcome::Fetched(_)));
        s
    }

    #[test]
    fn cold_state_fetches() {
        let p = FetchPolicy::default();
        let s = EntryState::default();
        assert!(matches!(
            decide(&s, at(0), Some("a"), false, &p),
            Action::Fetch(FetchReason::Cold)
        ));
    }

    #[test]
    fn fresh_hit_is_served_until_the_last_second() {
        let p = FetchPolicy::default();
        let s = cached(&["a"], &p);
        assert_eq!(kids(&decide(&s, at(0), Some("a"), false, &p)), ["a"]);
        assert_eq!(kids(&decide(&s, at(119), None, false, &p)), ["a"]);
        assert_eq!(s.fresh_until(), at(120));
        assert_eq!(s.usable_until(), at(120 + 3600));
    }

    #[test]
    fn expiry_fetches_again() {
        let p = FetchPolicy::default();
        let s = cached(&["a"], &p);
        assert!(matches!(
            decide(&s, at(120), Some("a"), false, &p),
            Action::Fetch(FetchReason::Expired)
        ));
    }

    #[test]
    fn unknown_kid_refetch_allowed_once_then_rate_limited() {
        let p = FetchPolicy::default();
        let mut s = cached(&["a"], &p);
        assert!(matches!(
            decide(&s, at(10), Some("b"), false, &p),
            Action::Fetch(FetchReason::UnknownKid)
        ));
        // The refetch still lacks b.
        record(
            &mut s,
            FetchReason::UnknownKid,
            at(10),
            None,
            Ok((set(&["a"]), Duration::from_secs(120))),
            at(11),
            &p,
        );
        // Within 60 s of the refetch's start: served as is, not fetched.
        assert_eq!(kids(&decide(&s, at(69), Some("b"), false, &p)), ["a"]);
        // 60 s after it: one more refetch is allowed.
        assert!(matches!(
            decide(&s, at(70), Some("b"), false, &p),
            Action::Fetch(FetchReason::UnknownKid)
        ));
    }

    #[test]
    fn a_cold_fetch_for_a_kid_it_lacks_counts_as_the_unknown_kid_refetch() {
        let p = FetchPolicy::default();
        let mut s = EntryState::default();
        assert!(matches!(
            decide(&s, at(0), Some("b"), false, &p),
            Action::Fetch(FetchReason::Cold)
        ));
        record(
            &mut s,
            FetchReason::Cold,
            at(0),
            Some("b"),
            Ok((set(&["a"]), Duration::from_secs(120))),
            at(1),
            &p,
        );
        // A caller arriving after the fetch (it did not wait for it) is not sent to the host again.
        assert_eq!(kids(&decide(&s, at(2), Some("b"), false, &p)), ["a"]);
        assert_eq!(kids(&decide(&s, at(59), Some("c"), false, &p)), ["a"]);
        // The interval counts from the cold fetch's start.
        assert!(matches!(
            decide(&s, at(60), Some("b"), false, &p),
            Action::Fetch(FetchReason::UnknownKid)
        ));
    }

    #[test]
    fn a_cold_fetch_that_has_the_kid_leaves_the_refetch_free() {
        // A rotation just after start-up is still one refetch away.
        let p = FetchPolicy::default();
        let mut s = EntryState::default();
        record(
            &mut s,
            FetchReason::Cold,
            at(0),
            Some("a"),
            Ok((set(&["a"]), Duration::from_secs(120))),
            at(0),
            &p,
        );
        assert!(matches!(
            decide(&s, at(1), Some("b"), false, &p),
            Action::Fetch(FetchReason::UnknownKid)
        ));
    }

    #[test]
    fn unknown_kid_is_not_refetched_by_a_caller_who_waited_for_a_fetch() {
        let p = FetchPolicy::default();
        let s = cached(&["a"], &p);
        assert_eq!(kids(&decide(&s, at(1), Some("zz"), true, &p)), ["a"]);
    }

    #[test]
    fn unknown_kid_refetch_can_be_turned_off() {
        let p = FetchPolicy::nhs();
        let s = cached(&["a"], &p);
        assert_eq!(kids(&decide(&s, at(1), Some("b"), false, &p)), ["a"]);
    }

    #[test]
    fn failed_unknown_kid_refetch_keeps_the_fresh_set() {
        let p = FetchPolicy::default();
        let mut s = cached(&["a"], &p);
        let out = record(
            &mut s,
            FetchReason::UnknownKid,
            at(5),
            None,
            Err(down()),
            at(6),
            &p,
        );
        assert!(matches!(out, Outcome::KeptFresh { .. }), "{out:?}");
        assert_eq!(kids(&decide(&s, at(7), Some("a"), false, &p)), ["a"]);
    }

    #[test]
    fn stale_if_error_within_the_bound() {
        let p = FetchPolicy::default();
        let mut s = cached(&["a"], &p);
        let out = record(
            &mut s,
            FetchReason::Expired,
            at(200),
            None,
            Err(down()),
            at(200),
            &p,
        );
        assert!(matches!(out, Outcome::ServedStale { .. }), "{out:?}");
        // During the back-off the stale set is served without asking the host.
        assert_eq!(kids(&decide(&s, at(209), Some("a"), false, &p)), ["a"]);
        // After it, the host is tried again.
        assert!(matches!(
            decide(&s, at(210), Some("a"), false, &p),
            Action::Fetch(FetchReason::Expired)
        ));
        // A failure just before the window closes still serves the stale set.
        let out = record(
            &mut s,
            FetchReason::Expired,
            at(3719),
            None,
            Err(down()),
            at(3719),
            &p,
        );
        assert!(matches!(out, Outcome::ServedStale { .. }), "{out:?}");
    }

    #[test]
    fn stale_if_error_ends_after_the_bound() {
        let p = FetchPolicy::default();
        let mut s = cached(&["a"], &p);
        // usable_until = 120 + 3600 = 3720.
        let out = record(
            &mut s,
            FetchReason::Expired,
            at(3720),
            None,
            Err(down()),
            at(3720),
            &p,
        );
        assert!(matches!(
            out,
            Outcome::Failed(Error::Status { status: 500, .. })
        ));
        assert!(matches!(
            decide(&s, at(3725), Some("a"), false, &p),
            Action::Fail(Error::Status { status: 500, .. })
        ));
    }

    #[test]
    fn error_backoff_without_a_cached_set() {
        let p = FetchPolicy::default();
        let mut s = EntryState::default();
        let out = record(
            &mut s,
            FetchReason::Cold,
            at(0),
            None,
            Err(down()),
            at(5),
            &p,
        );
        assert!(matches!(out, Outcome::Failed(_)));
        // Back-off counts from the failure's end (5 s) for 10 s.
        assert!(matches!(
            decide(&s, at(14), None, false, &p),
            Action::Fail(_)
        ));
        assert!(matches!(
            decide(&s, at(15), None, false, &p),
            Action::Fetch(FetchReason::Cold)
        ));
        // A caller who waited on that very fetch shares its error even after the back-off.
        assert!(matches!(
            decide(&s, at(99), None, true, &p),
            Action::Fail(_)
        ));
        // A success clears the error.
        record(
            &mut s,
            FetchReason::Cold,
            at(15),
            None,
            Ok((set(&["a"]), Duration::from_secs(60))),
            at(15),
            &p,
        );
        assert!(s.last_error().is_none());
        assert_eq!(kids(&decide(&s, at(16), Some("a"), false, &p)), ["a"]);
    }
}
