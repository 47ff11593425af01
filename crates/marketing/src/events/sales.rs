//! Events this service consumes from the sales service:
//! - `opportunity.won`: the deal's revenue is shared among the campaigns
//!   that touched its contacts before the win (every model), stored, and
//!   published as `attribution.computed`.

use chrono::{DateTime, Utc};
use crm_proto::crm::common::v1::{Event, Money};
use crm_proto::crm::marketing::v1::{AttributionComputed, AttributionShare};
use crm_proto::crm::sales::v1::OpportunityWon;
use crm_proto::events::DomainEvent;
use kit::auth::CallerContext;
use kit::db::TenantTx;
use kit::events::decode_data;
use kit::inbox::EventHandler;
use kit::outbox::Outbox;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::domain::attribution::shares;
use crate::store::attribution;

pub struct SalesEvents(pub Outbox);

impl EventHandler for SalesEvents {
    async fn handle(&self, tx: &mut TenantTx, event: &Event) -> anyhow::Result<()> {
        if event.r#type != <OpportunityWon as DomainEvent>::TYPE {
            return Ok(());
        }
        let tenant = Uuid::parse_str(&event.tenant_id)?;
        let won: OpportunityWon = decode_data(event)?;
        let opportunity = Uuid::parse_str(&won.opportunity_id)?;
        let money = won.amount.clone().unwrap_or_default();
        // A deal without an amount earns nothing to share.
        let Ok(amount) = money.amount.parse::<Decimal>() else {
            return Ok(());
        };
        let won_at = event
            .occurred_at
            .and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
            .unwrap_or_else(Utc::now);
        let contacts: Vec<Uuid> = won
            .contact_ids
            .iter()
            .filter_map(|c| Uuid::parse_str(c).ok())
            .collect();
        let touches = attribution::touches(tx, tenant, &contacts, won_at).await?;
        let own = match Uuid::parse_str(&won.campaign_id) {
            Ok(id) => attribution::existing(tx, tenant, &[id])
                .await?
                .into_iter()
                .next(),
            Err(_) => None,
        };
        let shared = shares(amount, &touches, own);
        attribution::replace(tx, tenant, opportunity, &money.currency, won_at, &shared).await?;
        if shared.is_empty() {
            return Ok(());
        }
        let computed = AttributionComputed {
            opportunity_id: won.opportunity_id.clone(),
            amount: Some(money.clone()),
            shares: shared
                .iter()
                .map(|(model, campaign, share)| AttributionShare {
                    campaign_id: campaign.to_string(),
                    model: *model as i32,
                    amount: Some(Money {
                        amount: share.normalize().to_string(),
                        currency: money.currency.clone(),
                    }),
                })
                .collect(),
        };
        let caller = CallerContext::system(crate::config::SERVICE, tenant);
        self.0
            .enqueue(tx, &caller, opportunity, event.aggregate_version, &computed)
            .await?;
        Ok(())
    }
}
