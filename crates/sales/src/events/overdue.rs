//! Publishes `invoice.overdue` once for each invoice whose due date has
//! passed unpaid. Open invoices' due dates sit in `invoice_due_dates` (ids
//! and dates only, outside row-level security) so one pass sees every
//! tenant; each invoice is marked inside its tenant's scope and its row
//! removed in the same transaction. `SKIP LOCKED` lets pods share the work.
//! The pass runs every `interval` (a minute by default), so "daily"
//! detection happens within a minute of the date turning.

use std::time::Duration;

use chrono::Utc;
use crm_proto::crm::sales::v1::InvoiceOverdue;
use kit::auth::CallerContext;
use kit::db::{set_tenant, Database};
use kit::outbox::Outbox;

use crate::store::commerce;

pub struct OverdueScanner {
    db: Database,
    outbox: Outbox,
    interval: Duration,
}

impl OverdueScanner {
    pub fn new(db: Database, outbox: Outbox, interval: Duration) -> Self {
        Self {
            db,
            outbox,
            interval,
        }
    }
}

impl kit::scan::Scan for OverdueScanner {
    const NAME: &'static str = "overdue invoices";

    /// Reports up to `kit::scan::BATCH` overdue invoices; returns how many were looked at.
    async fn try_once(&self) -> anyhow::Result<usize> {
        let today = Utc::now().date_naive();
        let mut tx = self.db.pool().begin().await?;
        let due = commerce::lock_past_due(&mut tx, today, kit::scan::BATCH as i64).await?;
        for (tenant, invoice_id) in &due {
            set_tenant(&mut tx, *tenant).await?;
            if let Some(invoice) = commerce::mark_overdue(&mut tx, *tenant, *invoice_id).await? {
                let days = chrono::NaiveDate::parse_from_str(&invoice.due_on, "%Y-%m-%d")
                    .map(|d| (today - d).num_days() as i32)
                    .unwrap_or_default();
                let caller = CallerContext::system("sales", *tenant);
                let version = invoice.audit.as_ref().map(|a| a.version).unwrap_or(1);
                let event = InvoiceOverdue {
                    invoice: Some(invoice),
                    days_overdue: days,
                };
                self.outbox
                    .enqueue(&mut tx, &caller, *invoice_id, version, &event)
                    .await?;
            }
            commerce::forget_due_date(&mut tx, *tenant, *invoice_id).await?;
        }
        tx.commit().await?;
        Ok(due.len())
    }

    fn interval(&self) -> Duration {
        self.interval
    }
}
