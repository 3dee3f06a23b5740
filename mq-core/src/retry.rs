//! Retry delays: [`Backoff`] (none, fixed, exponential with a cap) and jitter. Pure functions.

use std::time::Duration;

/// Delay policy between attempts of a failing task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// Retry immediately.
    None,
    /// Always wait the same time.
    Fixed(Duration),
    /// Wait `base * 2^(attempt)`, at most `cap`.
    Exponential {
        /// Delay before the first retry.
        base: Duration,
        /// Upper bound of the delay.
        cap: Duration,
    },
}

impl Backoff {
    /// The delay before retrying after attempt number `attempt` failed (0 = first run), without
    /// jitter.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use mq_core::Backoff;
    ///
    /// let b = Backoff::Exponential { base: Duration::from_secs(1), cap: Duration::from_secs(10) };
    /// assert_eq!(b.delay(0), Duration::from_secs(1));
    /// assert_eq!(b.delay(2), Duration::from_secs(4));
    /// assert_eq!(b.delay(50), Duration::from_secs(10));
    /// ```
    pub fn delay(&self, attempt: u32) -> Duration {
        match *self {
            Backoff::None => Duration::ZERO,
            Backoff::Fixed(d) => d,
            Backoff::Exponential { base, cap } => {
                let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
                base.checked_mul(factor).unwrap_or(cap).min(cap)
            }
        }
    }

    /// [`delay`](Self::delay) with "equal jitter": half the delay plus a random share of the
    /// other half, so that tasks failing together do not retry together. `unit` is a random
    /// number in `[0, 1)`.
    pub fn jittered(&self, attempt: u32, unit: f64) -> Duration {
        let d = self.delay(attempt);
        let half = d / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_doubles_then_caps() {
        let b = Backoff::Exponential {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        };
        let got: Vec<u128> = (0..6).map(|a| b.delay(a).as_millis()).collect();
        assert_eq!(got, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn fixed_and_none() {
        assert_eq!(
            Backoff::Fixed(Duration::from_secs(3)).delay(7),
            Duration::from_secs(3)
        );
        assert_eq!(Backoff::None.delay(7), Duration::ZERO);
    }

    #[test]
    fn jitter_stays_within_half_and_full_delay() {
        let b = Backoff::Fixed(Duration::from_secs(2));
        assert_eq!(b.jittered(0, 0.0), Duration::from_secs(1));
        assert_eq!(b.jittered(0, 0.999_999), Duration::from_micros(1_999_999));
        assert!(b.jittered(0, 0.5) >= Duration::from_secs(1));
    }
}
