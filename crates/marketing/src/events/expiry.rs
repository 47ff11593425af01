//! Loyalty points expire: each member with earned lots sits in
//! `loyalty_expiry_schedule` until their oldest unspent lot is due; this
//! scan expires what is due (published as `loyalty.points_expired`) and
//! schedules the next. `SKIP LOCKED` lets several pods share it, and each
//! due member is handled once.

use std::time::Duration;

use kit::auth::CallerContext;
use kit::db::{set_tenant, Database};
use kit::outbox::Outbox;

use crate::grpc::loyalty::publish_change;
use crate::store::loyalty;

pub struct ExpiryScanner {
    db: Database,
    outbox: Outbox,
    interval: Duration,
}

impl ExpiryScanner {
    pub fn new(db: Database, outbox: Outbox, interval: Duration) -> Self {
        Self {
            db,
            outbox,
            interval,
        }
    }
}

impl kit::scan::Scan for ExpiryScanner {
    const NAME: &'static str = "loyalty points expiry";

    async fn try_once(&self) -> anyhow::Result<usize> {
        let mut tx = self.db.pool().begin().await?;
        let due = loyalty::lock_expiry_due(&mut tx, kit::scan::BATCH as i64).await?;
        for (tenant, program, contact) in &due {
            set_tenant(&mut tx, *tenant).await?;
            let caller = CallerContext::system(crate::config::SERVICE, *tenant);
            if let Some(change) = loyalty::expire_due(&mut tx, *tenant, *program, *contact).await? {
                publish_change(&self.outbox, &mut tx, &caller, &change).await?;
            }
        }
        tx.commit().await?;
        Ok(due.len())
    }

    fn interval(&self) -> Duration {
        self.interval
    }
}
