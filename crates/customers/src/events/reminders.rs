//! Publishes `task.due` when a task's reminder time comes. Pending
//! reminders are kept in `task_reminders` (ids and times only, outside row
//! level security) so one scheduler can see every tenant's; each is turned
//! into an event inside the tenant's scope and removed in the same
//! transaction, and `SKIP LOCKED` lets several pods share the work.

use std::time::Duration;

use crm_proto::crm::customers::v1::TaskDue;
use kit::auth::CallerContext;
use kit::db::{set_tenant, Database};
use kit::outbox::Outbox;

use crate::domain::access::Scope;
use crate::store::activities;

#[derive(Clone)]
pub struct ReminderScheduler {
    db: Database,
    outbox: Outbox,
}

impl ReminderScheduler {
    pub fn new(db: Database, outbox: Outbox) -> Self {
        Self { db, outbox }
    }
}

impl kit::scan::Scan for ReminderScheduler {
    const NAME: &'static str = "task reminders";

    /// Publishes the reminders due now (at most `kit::scan::BATCH`); returns how many.
    async fn try_once(&self) -> anyhow::Result<usize> {
        let mut tx = self.db.pool().begin().await?;
        let due = activities::lock_due_reminders(&mut tx, kit::scan::BATCH as i64).await?;
        for (tenant, task_id) in &due {
            set_tenant(&mut tx, *tenant).await?;
            if let Some(task) =
                activities::find(&mut tx, *tenant, &Scope::Tenant, None, *task_id, false).await?
            {
                let open = task.task.as_ref().is_some_and(|t| t.completed_at.is_none());
                if open {
                    let caller = CallerContext::system("customers", *tenant);
                    let version = task.audit.as_ref().map(|a| a.version).unwrap_or(1);
                    self.outbox
                        .enqueue(
                            &mut tx,
                            &caller,
                            *task_id,
                            version,
                            &TaskDue { task: Some(task) },
                        )
                        .await?;
                }
            }
            activities::forget_reminder(&mut tx, *tenant, *task_id).await?;
        }
        tx.commit().await?;
        Ok(due.len())
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(15)
    }
}
