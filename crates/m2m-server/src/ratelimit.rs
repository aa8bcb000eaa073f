//! Per-client token buckets (pure: time is passed in). A bucket holds up to `per_minute`
//! tokens and refills continuously at `per_minute / 60` per second, so a client may burst its
//! whole minute's allowance and then proceeds at the steady rate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use m2m_core::clock::UnixTime;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: UnixTime,
    per_minute: u32,
}

/// Token buckets keyed by client id. The map only ever holds registered clients (the limit is
/// applied after the registry lookup), so it is bounded by the registry size.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// An empty limiter.
    pub(crate) fn new() -> Self {
        RateLimiter::default()
    }

    /// Takes one token for `client`. `per_minute == 0` means unlimited. `Err(retry_after)`
    /// (whole seconds, at least 1) when the bucket is empty.
    pub(crate) fn check(
        &self,
        client: &str,
        per_minute: u32,
        now: UnixTime,
    ) -> Result<(), Duration> {
        if per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(per_minute);
        let rate_per_ms = capacity / 60_000.0;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.entry(client.to_owned()).or_insert(Bucket {
            tokens: capacity,
            last: now,
            per_minute,
        });
        if bucket.per_minute != per_minute {
            // The limit changed (registry reload): start from a full bucket at the new size.
            *bucket = Bucket {
                tokens: capacity,
                last: now,
                per_minute,
            };
        }
        let elapsed = now.as_millis().saturating_sub(bucket.last.as_millis()) as f64;
        bucket.tokens = (bucket.tokens + elapsed * rate_per_ms).min(capacity);
        bucket.last = now.max(bucket.last);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = (1.0 - bucket.tokens) / rate_per_ms;
            Err(Duration::from_secs(
                (wait_ms / 1000.0).ceil().max(1.0) as u64
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills() {
        let rl = RateLimiter::new();
        let t0 = UnixTime::from_secs(1_000);
        for _ in 0..3 {
            assert!(rl.check("a", 3, t0).is_ok());
        }
        assert_eq!(rl.check("a", 3, t0), Err(Duration::from_secs(20)));
        assert!(rl.check("b", 3, t0).is_ok(), "buckets are per client");
        assert!(rl.check("a", 3, t0.add(Duration::from_secs(20))).is_ok());
        assert!(rl.check("a", 3, t0.add(Duration::from_secs(20))).is_err());
    }

    #[test]
    fn zero_is_unlimited() {
        let rl = RateLimiter::new();
        for _ in 0..10_000 {
            assert!(rl.check("a", 0, UnixTime::from_secs(1)).is_ok());
        }
    }
}
