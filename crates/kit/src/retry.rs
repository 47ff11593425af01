//! One retry policy for the work services retry by themselves (automation
//! runs, journey steps, webhook deliveries): doubling delays from a first
//! one, up to a cap, for a bounded number of attempts.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The delay after the first failure.
    pub first: Duration,
    /// Attempts in all, the first included.
    pub attempts: i32,
    /// No delay is longer.
    pub cap: Duration,
}

impl Backoff {
    /// Doubling from `first` for `attempts` attempts, at most an hour apart.
    pub fn doubling(first: Duration, attempts: i32) -> Self {
        Backoff {
            first,
            attempts,
            cap: Duration::from_secs(3600),
        }
    }

    /// The delay before the next attempt once `failed` attempts have
    /// failed; none when no attempt is left.
    pub fn after(&self, failed: i32) -> Option<Duration> {
        (failed < self.attempts).then(|| {
            let factor = 2u32.saturating_pow((failed - 1).clamp(0, 31).unsigned_abs());
            self.first
                .checked_mul(factor)
                .unwrap_or(self.cap)
                .min(self.cap)
        })
    }
}

impl crate::Error {
    /// Whether the other side may get over it (unavailable, internal):
    /// worth a retry, where a refusal is not.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            crate::Error::Unavailable(_) | crate::Error::Internal(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_stop_after_the_last_attempt() {
        let backoff = Backoff::doubling(Duration::from_secs(5), 4);
        let delays: Vec<Option<Duration>> = (1..=4).map(|failed| backoff.after(failed)).collect();
        assert_eq!(
            delays,
            vec![
                Some(Duration::from_secs(5)),
                Some(Duration::from_secs(10)),
                Some(Duration::from_secs(20)),
                None
            ]
        );
        let long = Backoff::doubling(Duration::from_secs(60), 100);
        assert_eq!(long.after(90), Some(Duration::from_secs(3600)));
    }
}
