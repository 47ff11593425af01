//! Events this service consumes from the marketing service:
//! - `message.clicked`: the unconverted leads with the e-mail address the
//!   message went to (matched by hash: the event names no address) earn
//!   the `email_clicked` engagement and are rescored.

use crm_proto::crm::common::v1::Event;
use crm_proto::crm::marketing::v1 as marketing;
use crm_proto::events::DomainEvent;
use kit::access::Scope;
use kit::auth::CallerContext;
use kit::db::TenantTx;
use kit::events::decode_data;
use kit::inbox::EventHandler;
use uuid::Uuid;

use crate::grpc::SharedState;
use crate::store::leads;

pub struct MarketingEvents(pub SharedState);

impl EventHandler for MarketingEvents {
    async fn handle(&self, tx: &mut TenantTx, event: &Event) -> anyhow::Result<()> {
        let tenant = Uuid::parse_str(&event.tenant_id)?;
        if event.r#type != <marketing::MessageClicked as DomainEvent>::TYPE {
            return Ok(());
        }
        let clicked: marketing::MessageClicked = decode_data(event)?;
        if clicked.address_hash.is_empty() {
            return Ok(());
        }
        let at = event
            .occurred_at
            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
            .unwrap_or_else(chrono::Utc::now);
        let caller = CallerContext::system("sales", tenant);
        for lead in leads::unconverted_with_email(tx, tenant, &clicked.address_hash).await? {
            crate::grpc::leads::engage(
                &self.0,
                tx,
                &caller,
                &Scope::Tenant,
                lead,
                "email_clicked",
                at,
            )
            .await?;
        }
        Ok(())
    }
}
