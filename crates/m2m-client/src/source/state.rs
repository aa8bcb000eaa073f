//! The pure rules of the token cache: when a token is refreshed, until when it may be served,
//! how long it lives when the server does not say, and how long to wait after a failed refresh.
//!
//! No I/O, no clock reads, no randomness of its own: the current time and the random samples are
//! passed in, so every rule is testable with exact numbers.

use std::time::Duration;

use m2m_core::clock::UnixTime;
use m2m_core::jws::UnverifiedJws;

use crate::backoff::Backoff;

/// How the cache schedules refreshes and retries. The defaults suit NHS (`expires_in` 599 s) and
/// most OAuth servers (300–3600 s).
///
/// # The refresh rule
///
/// For a token of lifetime `L` received at `t0`:
///
/// - **refresh point** `t0 + min(f·L, L − margin')`, with `f` drawn uniformly from
///   `[0.75, 0.85]` once per token (the jitter spreads the refreshes of a fleet of processes that
///   started together), and `margin' = min(margin, L/2)` (default `margin` 30 s; NHS's own
///   clients use 15–30 s). From this point one background refresh runs while callers keep
///   getting the cached token.
/// - **serve-until point** `t0 + L − safety'`, with `safety' = min(safety_margin, L/4)`
///   (default `safety_margin` 10 s; clamped so a 20 s token is still usable for 15 s). Past it
///   the token is never handed out: it could expire in flight, or on a server whose clock is a
///   little ahead.
/// - `L` is `expires_in`; when the server leaves it out, the `exp` claim of the access token if
///   it is a JWT (read without verification: the client only uses it for its own scheduling);
///   otherwise `default_lifetime` (60 s), short so a token of unknown lifetime is soon replaced.
///
/// NHS (`L` = 599 s): refresh between 449 s and 509 s, never served after 589 s.
///
/// # Failed refreshes
///
/// After failure number `n` the next attempt waits the server's `Retry-After` if it sent one
/// (capped at `max_retry_after`), else an exponential backoff with jitter:
/// `min(max_backoff, base_backoff · 2^(n−1))`, scaled by a random factor in `[0.5, 1]`. While
/// the cached token is still servable at most `max_refresh_attempts` refreshes are tried; once
/// it is no longer servable, a caller may trigger one fetch each time the wait has elapsed (and
/// gets the last error in between, without a request).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RefreshPolicy {
    pub(crate) margin: Duration,
    pub(crate) safety_margin: Duration,
    pub(crate) default_lifetime: Duration,
    pub(crate) jitter: (f64, f64),
    pub(crate) max_refresh_attempts: u32,
    pub(crate) base_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) max_retry_after: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            margin: Duration::from_secs(30),
            safety_margin: Duration::from_secs(10),
            default_lifetime: Duration::from_secs(60),
            jitter: (0.75, 0.85),
            max_refresh_attempts: 5,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl RefreshPolicy {
    /// Refresh at least this long before expiry (default 30 s; at most half the lifetime).
    pub fn margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// Never serve a token this close to its expiry (default 10 s; at most a quarter of the
    /// lifetime).
    pub fn safety_margin(mut self, safety: Duration) -> Self {
        self.safety_margin = safety;
        self
    }

    /// Lifetime assumed when neither `expires_in` nor a JWT `exp` says (default 60 s).
    pub fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.default_lifetime = lifetime;
        self
    }

    /// Refreshes tried while the cached token is still servable (default 5, at least 1).
    pub fn max_refresh_attempts(mut self, attempts: u32) -> Self {
        self.max_refresh_attempts = attempts.max(1);
        self
    }

    /// Backoff after the first failure (default 1 s), doubling per failure up to `max`
    /// (default 60 s).
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base_backoff = base;
        self.max_backoff = max.max(base);
        self
    }

    /// Longest `Retry-After` honoured as is (default 5 min); a longer one is cut to this, so a
    /// bogus value cannot stop refreshes for hours.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// When a token of lifetime `lifetime` received at `received_at` is refreshed and until when
    /// it is served. `unit` is a uniform random sample in `[0, 1)` that picks the jittered point.
    pub fn schedule(&self, received_at: UnixTime, lifetime: Duration, unit: f64) -> Schedule {
        let (lo, hi) = self.jitter;
        let fraction = lo + (hi - lo) * unit.clamp(0.0, 1.0);
        let margin = self.margin.min(lifetime / 2);
        let safety = self.safety_margin.min(lifetime / 4);
        let serve_for = lifetime.saturating_sub(safety);
        let refresh_after = lifetime
            .mul_f64(fraction)
            .min(lifetime.saturating_sub(margin))
            .min(serve_for);
        Schedule {
            refresh_at: received_at.add(refresh_after),
            serve_until: received_at.add(serve_for),
            expires_at: received_at.add(lifetime),
        }
    }

    /// The lifetime to schedule with: `expires_in`, else the JWT's `exp` (relative to `now`),
    /// else the default lifetime.
    pub fn lifetime(
        &self,
        expires_in: Option<Duration>,
        access_token: &str,
        now: UnixTime,
    ) -> Duration {
        expires_in
            .or_else(|| jwt_lifetime(access_token, now))
            .unwrap_or(self.default_lifetime)
    }

    /// How long to wait after failure number `failures` (1-based) before the next attempt.
    /// `unit` is a uniform random sample in `[0, 1)`.
    pub fn retry_delay(&self, failures: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_retry_after);
        }
        Backoff {
            base: self.base_backoff,
            cap: self.max_backoff,
        }
        .equal_jitter(failures, unit)
    }
}

/// The three instants of a cached token's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// From here one background refresh is started.
    pub refresh_at: UnixTime,
    /// From here the token is never served.
    pub serve_until: UnixTime,
    /// The token's own expiry as the client computed it.
    pub expires_at: UnixTime,
}

/// The remaining lifetime of a JWT access token from its `exp` claim, if it is a JWT with one
/// in the future. Not verified: only the client's own scheduling depends on it.
pub fn jwt_lifetime(access_token: &str, now: UnixTime) -> Option<Duration> {
    let claims = UnverifiedJws::parse(access_token).ok()?.claims().ok()?;
    let exp = claims.get("exp")?;
    let exp_secs = exp.as_u64().or_else(|| {
        exp.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    })?;
    let exp = UnixTime::from_secs(exp_secs);
    (exp > now).then(|| exp.since(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixTime = UnixTime::from_secs(1_700_000_000);

    fn secs_after(t: UnixTime) -> f64 {
        t.since(T0).as_secs_f64()
    }

    #[test]
    fn nhs_599_seconds() {
        let p = RefreshPolicy::default();
        let lo = p.schedule(T0, Duration::from_secs(599), 0.0);
        let hi = p.schedule(T0, Duration::from_secs(599), 0.999_999);
        assert!((secs_after(lo.refresh_at) - 449.25).abs() < 0.01);
        assert!((secs_after(hi.refresh_at) - 509.15).abs() < 0.01);
        assert_eq!(lo.serve_until, T0.add(Duration::from_secs(589)));
        assert_eq!(lo.expires_at, T0.add(Duration::from_secs(599)));
    }

    #[test]
    fn margin_wins_for_medium_tokens() {
        // 100 s: 80% would be 80 s, but the refresh must start 30 s before expiry.
        let s = RefreshPolicy::default().schedule(T0, Duration::from_secs(100), 0.5);
        assert_eq!(s.refresh_at, T0.add(Duration::from_secs(70)));
        assert_eq!(s.serve_until, T0.add(Duration::from_secs(90)));
    }

    #[test]
    fn short_tokens_are_clamped() {
        let s = RefreshPolicy::default().schedule(T0, Duration::from_secs(20), 0.5);
        assert_eq!(s.refresh_at, T0.add(Duration::from_secs(10)));
        assert_eq!(s.serve_until, T0.add(Duration::from_secs(15)));
        let z = RefreshPolicy::default().schedule(T0, Duration::ZERO, 0.5);
        assert_eq!(z.serve_until, T0);
        assert!(z.refresh_at <= z.serve_until);
    }

    #[test]
    fn refresh_never_after_serve_until() {
        let p = RefreshPolicy::default();
        for secs in [1, 2, 5, 13, 40, 41, 59, 60, 61, 119, 120, 599, 3600, 86_400] {
            for unit in [0.0, 0.5, 0.999] {
                let s = p.schedule(T0, Duration::from_secs(secs), unit);
                assert!(s.refresh_at <= s.serve_until, "{secs} {unit}");
                assert!(s.serve_until < s.expires_at, "{secs}");
                assert!(s.refresh_at > T0, "{secs}");
            }
        }
    }

    #[test]
    fn backoff_grows_bounded_and_honours_retry_after() {
        let p = RefreshPolicy::default();
        assert_eq!(p.retry_delay(1, None, 0.0), Duration::from_millis(500));
        assert_eq!(p.retry_delay(1, None, 1.0), Duration::from_secs(1));
        assert_eq!(p.retry_delay(3, None, 1.0), Duration::from_secs(4));
        assert_eq!(p.retry_delay(50, None, 1.0), Duration::from_secs(60));
        assert_eq!(
            p.retry_delay(3, Some(Duration::from_secs(5)), 0.0),
            Duration::from_secs(5)
        );
        assert_eq!(
            p.retry_delay(1, Some(Duration::from_secs(86_400)), 0.0),
            Duration::from_secs(300)
        );
    }

    #[test]
    fn lifetime_sources() {
        let p = RefreshPolicy::default();
        assert_eq!(
            p.lifetime(Some(Duration::from_secs(599)), "opaque", T0),
            Duration::from_secs(599)
        );
        assert_eq!(p.lifetime(None, "opaque", T0), Duration::from_secs(60));
        // header {"alg":"none"} . {"exp": T0 + 900} . sig
        let header = m2m_core::jws::base64url_encode(br#"{"alg":"RS256"}"#);
        let claims = m2m_core::jws::base64url_encode(
            format!(r#"{{"exp":{}}}"#, T0.as_secs() + 900).as_bytes(),
        );
        let jwt = format!("{header}.{claims}.c2ln");
        assert_eq!(p.lifetime(None, &jwt, T0), Duration::from_secs(900));
        // An exp in the past is ignored: the default applies.
        assert_eq!(
            p.lifetime(None, &jwt, T0.add(Duration::from_secs(1000))),
            Duration::from_secs(60)
        );
    }
}
