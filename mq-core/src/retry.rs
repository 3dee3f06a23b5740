//! Retry delays: [`Backoff`] (none, fixed, exponential with a cap) and jitter. Pure functions.

use std::time::Duration;

/// Delay policy between attempts of a failing task.
///
/// A fixed delay is exact; an exponential one is jittered (see [`jittered`](Self::jittered)).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mq_core::Backoff;
///
/// // `backoff = "fixed(5s)"`: every retry waits exactly 5 s.
/// let fixed = Backoff::Fixed(Duration::from_secs(5));
/// assert_eq!(fixed.jittered(3, 0.42), Duration::from_secs(5));
///
/// // `backoff = "exponential(1s, 10m)"`: 1 s, 2 s, 4 s ... each jittered to 50-100 %.
/// let exp = Backoff::Exponential { base: Duration::from_secs(1), cap: Duration::from_secs(600) };
/// assert_eq!(exp.jittered(2, 0.0), Duration::from_secs(2)); // half of 4 s
/// assert_eq!(exp.jittered(2, 0.5), Duration::from_secs(3));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// Retry immediately.
    None,
    /// Wait exactly this long before every retry, without jitter: a delay chosen on purpose
    /// (a rate limit's window, "try again in 5 s") is kept.
    Fixed(Duration),
    /// Wait `base * 2^(attempt)`, at most `cap`, jittered to 50-100 % of that so tasks that
    /// failed together (an outage) do not all retry at the same instant.
    Exponential {
        /// Delay before the first retry (before jitter).
        base: Duration,
        /// Upper bound of the delay (before jitter).
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

    /// The delay the worker waits before the retry after attempt `attempt` failed:
    /// [`Fixed`](Self::Fixed) and [`None`](Self::None) exactly as [`delay`](Self::delay) says;
    /// [`Exponential`](Self::Exponential) with "equal jitter", half the delay plus a random
    /// share of the other half, so that tasks failing together do not retry together. `unit`
    /// is a random number in `[0, 1)`.
    pub fn jittered(&self, attempt: u32, unit: f64) -> Duration {
        let d = self.delay(attempt);
        match self {
            Backoff::None | Backoff::Fixed(_) => d,
            Backoff::Exponential { .. } => {
                let half = d / 2;
                half + half.mul_f64(unit.clamp(0.0, 1.0))
            }
        }
    }
}

/// Exponential reconnect delay for loops that hit Redis errors: 100 ms doubling to 5 s.
pub(crate) fn error_backoff(failures: u32) -> Duration {
    Backoff::Exponential {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(5),
    }
    .delay(failures)
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
    fn exponential_jitter_stays_within_half_and_full_delay() {
        let b = Backoff::Exponential {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(60),
        };
        assert_eq!(b.jittered(0, 0.0), Duration::from_secs(1));
        assert_eq!(b.jittered(0, 0.999_999), Duration::from_micros(1_999_999));
        assert_eq!(b.jittered(1, 0.5), Duration::from_secs(3));
        assert_eq!(b.jittered(10, 0.0), Duration::from_secs(30));
    }

    #[test]
    fn fixed_and_none_are_exact() {
        let fixed = Backoff::Fixed(Duration::from_secs(5));
        for unit in [0.0, 0.25, 0.5, 0.999_999] {
            for attempt in [0, 1, 7] {
                assert_eq!(fixed.jittered(attempt, unit), Duration::from_secs(5));
                assert_eq!(Backoff::None.jittered(attempt, unit), Duration::ZERO);
            }
        }
    }
}
