//! Engagement points fade (half-life), so a lead's score drops even when
//! nothing happens to it. Leads with recent engagements sit in
//! `lead_decay_schedule`; each day this scanner rescores them (publishing
//! `lead.score_changed` when the rounded score moves) until their last
//! engagement is 60 days old. `SKIP LOCKED` lets several pods share it.

use std::time::Duration;

use kit::auth::CallerContext;
use kit::db::set_tenant;

use crate::grpc::leads::rescore;
use crate::grpc::SharedState;
use crate::store::leads;

pub struct DecayScanner {
    state: SharedState,
    interval: Duration,
}

impl DecayScanner {
    pub fn new(state: SharedState, interval: Duration) -> Self {
        Self { state, interval }
    }
}

impl kit::scan::Scan for DecayScanner {
    const NAME: &'static str = "lead score decay";

    /// Rescores up to `kit::scan::BATCH` due leads; returns how many.
    async fn try_once(&self) -> anyhow::Result<usize> {
        let mut tx = self.state.db.pool().begin().await?;
        let due = leads::lock_decay_due(&mut tx, kit::scan::BATCH as i64).await?;
        for (tenant, lead, finished) in &due {
            set_tenant(&mut tx, *tenant).await?;
            let caller = CallerContext::system("sales", *tenant);
            rescore(&self.state, &mut tx, &caller, *lead).await?;
            leads::reschedule_decay(&mut tx, *tenant, *lead, *finished).await?;
        }
        tx.commit().await?;
        Ok(due.len())
    }

    fn interval(&self) -> Duration {
        self.interval
    }
}
