//! Stateless rotating DPoP server nonces (RFC 9449 §8) for `m2m serve --dpop-nonce`.
//!
//! A nonce is the HMAC-SHA256, under a random key made when the process starts, of the number of
//! the time window it belongs to. Nothing is stored: the server recomputes the nonce of the
//! current and of the previous window and accepts either, so a nonce handed out just before a
//! window ends still works for a whole window after it. Clients that hold a stale nonce get
//! `400 use_dpop_nonce` with the current one and retry once.
//!
//! The key lives only in this process: instances behind a load balancer each have their own
//! nonces, and a restart invalidates the nonces in circulation (each client pays one retry).
//! Pure apart from the key: `now` is always passed in.

use std::time::Duration;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use base64::Engine as _;
use m2m_core::clock::UnixTime;

/// How long one nonce window lasts. A nonce is accepted in its own window and the next one, so
/// for between one and two windows: long enough that a client refreshing a 10-minute token
/// rarely needs the retry, short enough that a captured nonce dies soon.
pub(crate) const NONCE_WINDOW: Duration = Duration::from_secs(300);

/// What the HMAC covers besides the window number, so these MACs mean nothing elsewhere.
const DOMAIN: &[u8] = b"m2m dpop nonce v1\0";

/// Bytes of the HMAC kept in a nonce: 128 bits cannot be guessed.
const NONCE_BYTES: usize = 16;

/// The nonce issuer and checker. `Debug` does not show the key.
pub(crate) struct NonceSource {
    key: hmac::Key,
    window: Duration,
}

impl std::fmt::Debug for NonceSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceSource")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// The nonces a proof may carry at one instant: the current window's and the previous one's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Accepted {
    /// The current window's nonce: the one the server hands out.
    pub(crate) current: String,
    /// The previous window's nonce, still accepted.
    pub(crate) previous: String,
}

impl NonceSource {
    /// A source with a fresh random key and [`NONCE_WINDOW`].
    pub(crate) fn generate() -> Result<Self, crate::error::Error> {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new()).map_err(|_| {
            crate::error::Error::Config("cannot generate the DPoP nonce key".to_owned())
        })?;
        Ok(NonceSource {
            key,
            window: NONCE_WINDOW,
        })
    }

    /// A source with a given key and window (tests).
    #[cfg(test)]
    fn with_key(key: &[u8], window: Duration) -> Self {
        NonceSource {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            window,
        }
    }

    /// The nonces accepted at `now`.
    pub(crate) fn accepted(&self, now: UnixTime) -> Accepted {
        let index = now.as_secs() / self.window.as_secs().max(1);
        Accepted {
            current: self.nonce(index),
            previous: self.nonce(index.saturating_sub(1)),
        }
    }

    fn nonce(&self, index: u64) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(DOMAIN);
        ctx.update(&index.to_be_bytes());
        let tag = ctx.sign();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&tag.as_ref()[..NONCE_BYTES])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_100;

    fn at(secs: u64) -> UnixTime {
        UnixTime::from_secs(secs)
    }

    #[test]
    fn a_nonce_is_accepted_in_its_window_and_the_next_then_not() {
        let source = NonceSource::with_key(b"k", Duration::from_secs(60));
        let start = T0 - T0 % 60;
        let first = source.accepted(at(start));
        // The same all through the window.
        assert_eq!(source.accepted(at(start + 59)), first);
        // Next window: a new current one, and the old one still accepted.
        let second = source.accepted(at(start + 60));
        assert_ne!(second.current, first.current);
        assert_eq!(second.previous, first.current);
        // Two windows on: the first nonce is gone.
        let third = source.accepted(at(start + 120));
        assert_ne!(third.current, first.current);
        assert_ne!(third.previous, first.current);
    }

    #[test]
    fn nonces_depend_on_the_key_and_are_url_safe() {
        let a = NonceSource::with_key(b"key-a", NONCE_WINDOW).accepted(at(T0));
        let b = NonceSource::with_key(b"key-b", NONCE_WINDOW).accepted(at(T0));
        assert_ne!(a.current, b.current);
        assert_eq!(a.current.len(), 22);
        assert!(
            a.current
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        let generated = NonceSource::generate().expect("a random key");
        assert!(!format!("{generated:?}").contains("key:"));
    }
}
