//! Consumes the sales service's events: a won opportunity makes its
//! account a customer (lifecycle stage `customer`), published like any
//! other lifecycle change. Accounts already at `customer` or beyond
//! (`evangelist`) stay where they are.

use crm_proto::crm::common::v1::Event;
use crm_proto::crm::customers::v1::{Entity, LifecycleStage, LifecycleStageChanged};
use crm_proto::crm::sales::v1::OpportunityWon;
use crm_proto::events::DomainEvent as _;
use kit::auth::CallerContext;
use kit::db::TenantTx;
use kit::events::decode_data;
use kit::inbox::EventHandler;
use kit::outbox::Outbox;
use uuid::Uuid;

pub struct SalesEvents(pub Outbox);

impl EventHandler for SalesEvents {
    async fn handle(&self, tx: &mut TenantTx, event: &Event) -> anyhow::Result<()> {
        if event.r#type != OpportunityWon::TYPE {
            return Ok(());
        }
        let won: OpportunityWon = decode_data(event)?;
        let Ok(account) = Uuid::parse_str(&won.account_id) else {
            return Ok(()); // a deal without an account changes no account
        };
        let tenant = Uuid::parse_str(&event.tenant_id)?;
        let customer = LifecycleStage::Customer as i32;
        let current: Option<(i32,)> = sqlx::query_as(
            "SELECT lifecycle_stage FROM accounts WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE",
        )
        .bind(tenant)
        .bind(account)
        .fetch_optional(&mut **tx)
        .await?;
        let Some((from,)) = current else {
            return Ok(()); // deleted or merged away: nothing to promote
        };
        if from == customer || from == LifecycleStage::Evangelist as i32 {
            return Ok(());
        }
        let (version,): (i64,) = sqlx::query_as(
            "UPDATE accounts SET lifecycle_stage = $3, updated_at = now(), updated_by = 'system:customers', version = version + 1 \
             WHERE tenant_id = $1 AND id = $2 RETURNING version",
        )
        .bind(tenant)
        .bind(account)
        .bind(customer)
        .fetch_one(&mut **tx)
        .await?;
        let changed = Some((from, version));
        if let Some((from, version)) = changed {
            let caller = CallerContext::system("customers", tenant);
            let change = LifecycleStageChanged {
                entity: Entity::Account as i32,
                id: account.to_string(),
                from,
                to: customer,
            };
            self.0
                .enqueue(tx, &caller, account, version, &change)
                .await?;
        }
        Ok(())
    }
}
