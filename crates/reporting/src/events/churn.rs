//! The churn scan: computes the churn risk of customers (accounts with an
//! order) that are due (an order, ticket or activity about them came in, or
//! a day passed since the last computation), keeps it, and publishes `churn_risk.changed` when an
//! account's level moves (or is first found medium or high). Due rows sit
//! in `churn_due` outside row-level security, so one pass sees every
//! tenant; `SKIP LOCKED` lets pods share the work and computes each once.

use std::time::Duration;

use crm_proto::crm::reporting::v1::ChurnRiskChanged;
use kit::auth::CallerContext;
use kit::clock::Clock;
use kit::db::{set_tenant, Database};
use kit::outbox::Outbox;

use crate::domain::insights::{churn, ChurnLevel};
use crate::store::accounts;

/// How long a computed risk stands when nothing about the account happens:
/// "no order in 90 days" turns true with time alone.
pub const RECOMPUTE_AFTER: chrono::Duration = chrono::Duration::days(1);

pub struct ChurnScan {
    db: Database,
    outbox: Outbox,
    clock: Clock,
    interval: Duration,
}

impl ChurnScan {
    pub fn new(db: Database, outbox: Outbox, clock: Clock, interval: Duration) -> Self {
        Self {
            db,
            outbox,
            clock,
            interval,
        }
    }
}

impl kit::scan::Scan for ChurnScan {
    const NAME: &'static str = "churn risks";

    async fn try_once(&self) -> anyhow::Result<usize> {
        let now = self.clock.now();
        let mut tx = self.db.pool().begin().await?;
        let due = accounts::lock_churn_due(&mut tx, now, kit::scan::BATCH as i64).await?;
        for (tenant, account) in &due {
            set_tenant(&mut tx, *tenant).await?;
            let facts = accounts::churn_facts(&mut tx, *tenant, &[*account], now).await?;
            // Not (or no longer) a known account, or not a customer yet (no
            // order): nothing to compute.
            let Some((_, facts)) = facts.first().filter(|(_, f)| f.days_since_order.is_some())
            else {
                accounts::forget_churn(&mut tx, *tenant, *account).await?;
                continue;
            };
            let risk = churn(facts);
            let before =
                accounts::set_churn(&mut tx, *tenant, *account, &risk, now, RECOMPUTE_AFTER)
                    .await?
                    .and_then(ChurnLevel::from_i16);
            let changed = match before {
                Some(before) => before != risk.level,
                None => risk.level > ChurnLevel::Low,
            };
            if changed {
                let event = ChurnRiskChanged {
                    account_id: account.to_string(),
                    score: risk.score,
                    level: risk.level.name().to_owned(),
                    previous_level: before.map(|b| b.name().to_owned()).unwrap_or_default(),
                    reasons: risk.reasons.clone(),
                };
                let caller = CallerContext::system("reporting", *tenant);
                self.outbox
                    .enqueue(&mut tx, &caller, *account, now.timestamp(), &event)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(due.len())
    }

    fn interval(&self) -> Duration {
        self.interval
    }
}
