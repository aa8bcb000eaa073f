//! A cap on refusal log lines per second (pure: time is passed in). Refusals need no
//! authentication, so one info line per refusal let a flood write hundreds of megabytes of log
//! (docs/security.md); past the cap lines are counted instead, and the next line logged is
//! preceded by one summary of how many were suppressed. Metrics count every refusal regardless.

use std::sync::Mutex;

use m2m_core::clock::UnixTime;

/// Refusal lines logged per second before the rest of that second is only counted.
pub(crate) const REFUSAL_LOG_LINES_PER_SECOND: u32 = 50;

/// What to do with one log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Log it; first log a summary of the `suppressed` lines before it, if any.
    Log {
        /// Lines suppressed since the last one logged.
        suppressed: u64,
    },
    /// Do not log it (it has been counted).
    Suppress,
}

#[derive(Debug, Default)]
struct Window {
    start_ms: u64,
    logged: u32,
    suppressed: u64,
}

/// Admits at most `per_second` lines in each one-second window.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    per_second: u32,
    window: Mutex<Window>,
}

impl LogLimiter {
    /// A limiter admitting `per_second` lines a second.
    pub(crate) fn new(per_second: u32) -> Self {
        LogLimiter {
            per_second,
            window: Mutex::new(Window::default()),
        }
    }

    /// Whether the line at `now` may be logged.
    pub(crate) fn admit(&self, now: UnixTime) -> Verdict {
        let now_ms = now.as_millis();
        let mut w = self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if now_ms.saturating_sub(w.start_ms) >= 1000 || now_ms < w.start_ms {
            w.start_ms = now_ms;
            w.logged = 0;
        }
        if w.logged < self.per_second {
            w.logged += 1;
            Verdict::Log {
                suppressed: std::mem::take(&mut w.suppressed),
            }
        } else {
            w.suppressed += 1;
            Verdict::Suppress
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn at_most_n_lines_a_second_then_a_summary() {
        let limiter = LogLimiter::new(3);
        let t0 = UnixTime::from_secs(1_000);
        let verdicts: Vec<Verdict> = (0..1_000).map(|_| limiter.admit(t0)).collect();
        let logged = verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Log { .. }))
            .count();
        assert_eq!(logged, 3);
        // Still the same second: suppressed.
        assert_eq!(
            limiter.admit(t0.add(Duration::from_millis(999))),
            Verdict::Suppress
        );
        // The next second: logged, carrying the count of what was suppressed.
        assert_eq!(
            limiter.admit(t0.add(Duration::from_secs(1))),
            Verdict::Log { suppressed: 998 }
        );
        assert_eq!(
            limiter.admit(t0.add(Duration::from_secs(1))),
            Verdict::Log { suppressed: 0 }
        );
    }
}
