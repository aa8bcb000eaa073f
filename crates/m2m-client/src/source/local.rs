//! The hot path's per-thread token copies: each thread hands out clones of its own copy of the
//! cached token, so concurrent callers never increment the same reference count.
//!
//! Why: a single shared `Arc<str>` cloned by every caller makes each `token()` a contended
//! atomic read-modify-write on one cache line, and two threads then run slower than one. Reading
//! the current token id (an `AtomicU64` load, which only shares the line read-only) and cloning
//! a thread-owned copy keeps the fast path free of shared writes.
//!
//! The copies are keyed by the token's process-wide unique id (never reused), so a copy can
//! only ever be served while its id is the source's current one; a few stale copies stay in
//! memory until their slot is reused.

use std::cell::RefCell;

use m2m_core::clock::UnixTime;

use super::Token;

/// Slots per thread: one per `TokenSource` a thread uses at once, in practice one or two.
const SLOTS: usize = 4;

struct Slot {
    refresh_at: UnixTime,
    token: Token,
}

thread_local! {
    static COPIES: RefCell<[Option<Slot>; SLOTS]> = const { RefCell::new([None, None, None, None]) };
}

/// What this thread holds for token `id`.
pub(super) enum Lookup {
    /// A copy, still before its refresh point.
    Fresh(Token),
    /// A copy at or past its refresh point: the caller must take the slow path.
    Due,
    /// No copy on this thread yet.
    Missing,
}

/// This thread's copy of token `id`, if it has one.
pub(super) fn get(id: u64, now: UnixTime) -> Lookup {
    COPIES
        .try_with(|cell| {
            let Ok(slots) = cell.try_borrow() else {
                return Lookup::Missing;
            };
            match slots.iter().flatten().find(|s| s.token.id == id) {
                Some(s) if now < s.refresh_at => Lookup::Fresh(s.token.clone()),
                Some(_) => Lookup::Due,
                None => Lookup::Missing,
            }
        })
        // The thread is shutting down and its locals are gone: the slow path still works.
        .unwrap_or(Lookup::Missing)
}

/// Makes this thread's own copy of `token` and returns a clone of it.
pub(super) fn put(token: &Token, refresh_at: UnixTime) -> Token {
    let copy = token.deep_copy();
    let _ = COPIES.try_with(|cell| {
        if let Ok(mut slots) = cell.try_borrow_mut() {
            // Ids only grow, so the smallest is the oldest: replace an empty slot or that one.
            let victim = slots
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.as_ref().map_or(0, |s| s.token.id))
                .map_or(0, |(i, _)| i);
            slots[victim] = Some(Slot {
                refresh_at,
                token: copy.clone(),
            });
        }
    });
    copy
}
