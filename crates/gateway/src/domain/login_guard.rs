//! What stands between an unauthenticated caller and the password hash:
//! per-IP and per-account login budgets checked before any database work,
//! and a bounded pool for argon2, which runs on blocking threads so a
//! flood of logins can neither starve the async workers nor queue without
//! end.
//!
//! Budgets are token buckets (governor): an IP may try `per_ip_per_minute`
//! logins a minute; an account (its e-mail, whoever asks) 5 in a burst and
//! then one a minute. Over budget is a 429 with `Retry-After`, before the
//! password is checked, so the failed-login audit rows an attacker can
//! cause are bounded by the same budget.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;

/// Attempts an account may have in a burst before it is slowed to one a minute.
pub const ACCOUNT_BURST: u32 = 5;
/// How long a caller waits for an argon2 slot before the gateway answers 503.
const HASH_QUEUE_WAIT: Duration = Duration::from_secs(5);

pub struct LoginGuard {
    by_ip: DefaultKeyedRateLimiter<IpAddr>,
    by_account: DefaultKeyedRateLimiter<String>,
    hashing: Arc<Semaphore>,
}

/// Why a login is not tried now.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Over budget: retry after this many seconds.
    TooMany { retry_after: u64 },
    /// Every argon2 slot is busy.
    Busy,
}

impl LoginGuard {
    pub fn new(per_ip_per_minute: u32) -> Self {
        let per_ip = NonZeroU32::new(per_ip_per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(ACCOUNT_BURST).unwrap_or(NonZeroU32::MIN);
        let slots = std::thread::available_parallelism().map_or(2, |n| n.get());
        LoginGuard {
            by_ip: RateLimiter::keyed(Quota::per_minute(per_ip)),
            by_account: RateLimiter::keyed(Quota::per_minute(NonZeroU32::MIN).allow_burst(burst)),
            hashing: Arc::new(Semaphore::new(slots)),
        }
    }

    /// Spends one attempt of `ip`'s and then of `account`'s budget.
    pub fn admit(&self, ip: Option<IpAddr>, account: &str) -> Result<(), Refusal> {
        // Keys of idle callers are dropped now and then, so sprayed
        // addresses and e-mails cannot grow the maps without bound.
        if self.by_account.len() > 100_000 || self.by_ip.len() > 100_000 {
            self.by_account.retain_recent();
            self.by_ip.retain_recent();
        }
        self.admit_address(ip)?;
        self.by_account
            .check_key(&account.to_owned())
            .map_err(too_many)
    }

    /// Spends one attempt of `ip`'s budget alone: checking a secret that is
    /// not a login (an API key the gateway has not seen recently).
    pub fn admit_address(&self, ip: Option<IpAddr>) -> Result<(), Refusal> {
        let Some(ip) = ip else { return Ok(()) };
        self.by_ip.check_key(&ip).map_err(too_many)
    }

    /// Runs `work` (argon2) on a blocking thread once a slot is free.
    pub async fn hash<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Refusal> {
        let permit = tokio::time::timeout(HASH_QUEUE_WAIT, self.hashing.clone().acquire_owned())
            .await
            .map_err(|_| Refusal::Busy)?
            .map_err(|_| Refusal::Busy)?;
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|_| Refusal::Busy)?;
        Ok(result)
    }
}

/// Over budget until `not_until`: retry after that many seconds (at least 1).
fn too_many(not_until: governor::NotUntil<governor::clock::QuantaInstant>) -> Refusal {
    Refusal::TooMany {
        retry_after: not_until
            .wait_time_from(governor::clock::DefaultClock::default().now())
            .as_secs()
            .max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_gets_a_burst_then_is_refused_whoever_asks() {
        let guard = LoginGuard::new(1000);
        for n in 0..ACCOUNT_BURST {
            let ip = IpAddr::from([10, 0, 0, n as u8]);
            assert_eq!(guard.admit(Some(ip), "ada@example.com"), Ok(()));
        }
        let refused = guard.admit(Some(IpAddr::from([10, 0, 0, 99])), "ada@example.com");
        assert!(matches!(refused, Err(Refusal::TooMany { retry_after }) if retry_after >= 1));
        assert_eq!(
            guard.admit(None, "grace@example.com"),
            Ok(()),
            "other accounts are not held up"
        );
    }

    #[test]
    fn an_ip_spraying_accounts_is_refused() {
        let guard = LoginGuard::new(3);
        let ip = Some(IpAddr::from([192, 0, 2, 1]));
        for n in 0..3 {
            assert_eq!(guard.admit(ip, &format!("user{n}@example.com")), Ok(()));
        }
        assert!(guard.admit(ip, "user9@example.com").is_err());
    }

    #[tokio::test]
    async fn hashing_runs_off_the_async_thread() {
        // A current-thread runtime: async code runs on this thread only.
        let guard = LoginGuard::new(10);
        let here = std::thread::current().id();
        let there = guard.hash(|| std::thread::current().id()).await.unwrap();
        assert_ne!(here, there);
    }
}
