//! [`Backoff`]: the exponential backoff arithmetic shared by the token client's retries
//! (`retry`, full jitter) and the token source's refresh retries (`source::state`, equal
//! jitter). Pure: the random sample is passed in.

use std::time::Duration;

/// Delays that double from `base` per failure, never above `cap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// The ceiling after the first failure.
    pub(crate) base: Duration,
    /// The largest ceiling.
    pub(crate) cap: Duration,
}

impl Backoff {
    /// `min(cap, base * 2^(failures-1))` for failure number `failures` (1-based; the exponent
    /// stops at 30 so the shift cannot overflow).
    pub(crate) fn ceiling(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exp).min(self.cap)
    }

    /// A uniform draw from `[0, ceiling)`: `unit` is a uniform sample in `[0, 1)`.
    pub(crate) fn full_jitter(&self, failures: u32, unit: f64) -> Duration {
        self.ceiling(failures).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// A uniform draw from `[ceiling/2, ceiling)`: never less than half the ceiling.
    pub(crate) fn equal_jitter(&self, failures: u32, unit: f64) -> Duration {
        self.ceiling(failures)
            .mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps_and_jitters_within_the_ceiling() {
        let b = Backoff {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(5),
        };
        assert_eq!(b.ceiling(0), Duration::from_millis(200));
        assert_eq!(b.ceiling(1), Duration::from_millis(200));
        assert_eq!(b.ceiling(2), Duration::from_millis(400));
        assert_eq!(b.ceiling(6), Duration::from_secs(5));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(5));
        assert_eq!(b.full_jitter(2, 0.5), Duration::from_millis(200));
        assert_eq!(b.full_jitter(2, 7.0), Duration::from_millis(400));
        assert_eq!(b.equal_jitter(2, 0.0), Duration::from_millis(200));
        assert_eq!(b.equal_jitter(2, 0.5), Duration::from_millis(300));
    }
}
