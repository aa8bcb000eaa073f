//! When to try a token request again and how long to wait first: bounded exponential backoff with
//! full jitter, and the server's `Retry-After`.
//!
//! Pure: the random sample and the current time are passed in, so the rules are testable without
//! sleeping. The sleeping itself happens in the client, through `tokio::time`.

use std::time::{Duration, SystemTime};

use crate::backoff::Backoff;

/// How many times to try and how long to wait between tries.
///
/// Defaults: 3 attempts in all, backoff base 200 ms, backoff cap 5 s, `Retry-After` honoured up
/// to 30 s. A server asking for a longer pause is not retried at all (waiting less than it asked
/// would only earn another 429); the error then carries its `Retry-After` for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    base: Duration,
    cap: Duration,
    max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// A policy that sends exactly one request.
    pub fn never() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// Total number of attempts, the first included (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The backoff before the second attempt is drawn from `[0, base)`, doubling each time.
    pub fn base_delay(mut self, base: Duration) -> Self {
        self.base = base;
        self
    }

    /// Upper bound of any backoff delay.
    pub fn max_delay(mut self, cap: Duration) -> Self {
        self.cap = cap;
        self
    }

    /// The longest `Retry-After` that is waited for; a longer one ends the retries.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// Total number of attempts allowed.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Full-jitter backoff after failed attempt number `attempt` (1-based): a uniform draw from
    /// `[0, min(cap, base * 2^(attempt-1)))`. `unit` is a uniform random sample in `[0, 1)`.
    pub fn backoff(&self, attempt: u32, unit: f64) -> Duration {
        Backoff {
            base: self.base,
            cap: self.cap,
        }
        .full_jitter(attempt, unit)
    }

    /// What to do after failed attempt number `attempt` (1-based) that ended with `error`.
    pub fn decide(&self, attempt: u32, error: &crate::Error, unit: f64) -> RetryDecision {
        if !error.is_retryable() || attempt >= self.max_attempts {
            return RetryDecision::GiveUp;
        }
        match error.retry_after() {
            Some(wait) if wait > self.max_retry_after => RetryDecision::GiveUp,
            Some(wait) => RetryDecision::RetryAfter(wait),
            None => RetryDecision::RetryAfter(self.backoff(attempt, unit)),
        }
    }
}

/// The outcome of [`RetryPolicy::decide`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Wait this long, then try again with a fresh assertion.
    RetryAfter(Duration),
    /// Return the error.
    GiveUp,
}

/// Reads a `Retry-After` value: delay-seconds, or an HTTP-date (IMF-fixdate) relative to `now`.
///
/// Returns `None` for anything unreadable (then ordinary backoff applies). A date in the past
/// means "now" (zero).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = parse_imf_fixdate(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 §5.6.7), the only date format senders must use.
fn parse_imf_fixdate(s: &str) -> Option<SystemTime> {
    let rest = s.get(5..)?; // "Sun, "
    if s.get(3..5)? != ", " {
        return None;
    }
    let mut parts = rest.split(' ');
    let day: u32 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':');
    let h: u64 = hms.next()?.parse().ok()?;
    let m: u64 = hms.next()?.parse().ok()?;
    let sec: u64 = hms.next()?.parse().ok()?;
    if parts.next()? != "GMT" || parts.next().is_some() || hms.next().is_some() {
        return None;
    }
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 || year < 1970 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + sec;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, ErrorResponse, TransportKind};

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = at(784_111_700);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        // 784111777 is Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110's example).
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(77))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", at(784_111_800)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", at(0)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Tue, 29 Feb 2028 12:00:00 GMT", at(0)),
            Some(Duration::from_secs(1_835_438_400))
        );
        for bad in [
            "",
            "-1",
            "1.5",
            "soon",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 UTC",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn backoff_is_bounded_full_jitter() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1, 0.0), Duration::ZERO);
        assert_eq!(p.backoff(1, 0.5), Duration::from_millis(100));
        assert_eq!(p.backoff(2, 0.5), Duration::from_millis(200));
        assert_eq!(p.backoff(3, 0.5), Duration::from_millis(400));
        assert!(p.backoff(40, 0.999_999) < Duration::from_secs(5));
        assert_eq!(p.backoff(40, 2.0), Duration::from_secs(5));
    }

    #[test]
    fn decisions() {
        let p = RetryPolicy::default();
        let busy = Error::ServerRejected(Box::new(ErrorResponse::new(503)));
        assert_eq!(
            p.decide(1, &busy, 0.5),
            RetryDecision::RetryAfter(Duration::from_millis(100))
        );
        assert_eq!(p.decide(3, &busy, 0.5), RetryDecision::GiveUp);
        let limited = |secs| {
            let mut r = ErrorResponse::new(429);
            r.retry_after = Some(Duration::from_secs(secs));
            Error::ServerRejected(Box::new(r))
        };
        assert_eq!(
            p.decide(1, &limited(7), 0.5),
            RetryDecision::RetryAfter(Duration::from_secs(7))
        );
        assert_eq!(p.decide(1, &limited(3600), 0.5), RetryDecision::GiveUp);
        let tls = Error::Transport {
            kind: TransportKind::Tls,
            message: String::new(),
        };
        assert_eq!(p.decide(1, &tls, 0.5), RetryDecision::GiveUp);
        assert_eq!(
            RetryPolicy::never().decide(1, &busy, 0.5),
            RetryDecision::GiveUp
        );
        assert_eq!(RetryPolicy::default().max_attempts(0).attempts(), 1);
    }
}
