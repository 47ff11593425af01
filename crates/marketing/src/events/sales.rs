//! Events this service consumes from the sales service:
//! - `opportunity.won`: the deal's revenue is shared among the campaigns
//!   that touched its contacts before the win (every model), stored, and
//!   published as `attribution.computed`;
//! - `order.created` / `payment.recorded`: loyalty points for the deal's
//!   first contact in every program with a rule for the event, once per
//!   order or payment (the order's contact is remembered for its payments).

use chrono::{DateTime, Utc};
use crm_proto::crm::common::v1::{Event, Money};
use crm_proto::crm::marketing::v1::{AttributionComputed, AttributionShare};
use crm_proto::crm::marketing::v1::{EarnEvent, LoyaltyProgram};
use crm_proto::crm::sales::v1::{OpportunityWon, OrderCreated, PaymentRecorded};
use crm_proto::events::DomainEvent;
use kit::auth::CallerContext;
use kit::db::TenantTx;
use kit::events::decode_data;
use kit::inbox::EventHandler;
use kit::outbox::Outbox;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::domain::attribution::shares;
use crate::domain::loyalty::earned;
use crate::store::{attribution, loyalty};

pub struct SalesEvents(pub Outbox);

impl EventHandler for SalesEvents {
    async fn handle(&self, tx: &mut TenantTx, event: &Event) -> anyhow::Result<()> {
        let tenant = Uuid::parse_str(&event.tenant_id)?;
        match event.r#type.as_str() {
            <OpportunityWon as DomainEvent>::TYPE => self.won(tx, tenant, event).await,
            <OrderCreated as DomainEvent>::TYPE => {
                let created: OrderCreated = decode_data(event)?;
                let order = created.order.unwrap_or_default();
                let Some(contact) = created.contact_ids.first() else {
                    return Ok(());
                };
                let (order_id, contact) = (Uuid::parse_str(&order.id)?, Uuid::parse_str(contact)?);
                loyalty::remember_order(tx, tenant, order_id, contact).await?;
                let source = format!("order:{order_id}");
                self.earn(
                    tx,
                    tenant,
                    EarnEvent::OrderCreated,
                    contact,
                    order.total,
                    &source,
                )
                .await
            }
            <PaymentRecorded as DomainEvent>::TYPE => {
                let recorded: PaymentRecorded = decode_data(event)?;
                let (payment, invoice) = (
                    recorded.payment.unwrap_or_default(),
                    recorded.invoice.unwrap_or_default(),
                );
                let Ok(order) = Uuid::parse_str(&invoice.order_id) else {
                    return Ok(());
                };
                let Some(contact) = loyalty::contact_of_order(tx, tenant, order).await? else {
                    return Ok(());
                };
                let source = format!("payment:{}", payment.id);
                self.earn(
                    tx,
                    tenant,
                    EarnEvent::PaymentRecorded,
                    contact,
                    payment.amount,
                    &source,
                )
                .await
            }
            _ => Ok(()),
        }
    }
}

impl SalesEvents {
    /// Points for `contact` in every program with a rule for `on`.
    async fn earn(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        on: EarnEvent,
        contact: Uuid,
        amount: Option<Money>,
        source: &str,
    ) -> anyhow::Result<()> {
        let amount = amount.and_then(|m| Some((m.amount.parse::<Decimal>().ok()?, m.currency)));
        let caller = CallerContext::system(crate::config::SERVICE, tenant);
        let programs: Vec<LoyaltyProgram> =
            loyalty::list_programs(tx, tenant, None, i64::MAX).await?;
        for program in &programs {
            let Some(rule) = program.earn_rules.iter().find(|r| r.event == on as i32) else {
                continue;
            };
            let points = earned(
                rule,
                amount.as_ref().map(|(a, c)| (*a, c.as_str())),
                &program.currency,
            );
            if points == 0 {
                continue;
            }
            let earning = loyalty::Earning {
                program,
                contact,
                points,
                reason: "earned by purchase",
                source: Some(source),
            };
            if let Some(change) = loyalty::earn(tx, tenant, earning, &caller.subject).await? {
                crate::grpc::loyalty::publish_change(&self.0, tx, &caller, &change).await?;
            }
        }
        Ok(())
    }

    async fn won(&self, tx: &mut TenantTx, tenant: Uuid, event: &Event) -> anyhow::Result<()> {
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
