//! From marketing: campaigns (created, changed, status, costs), their
//! members, each message's fate (sent, delivered, opened, clicked,
//! bounced, unsubscribed) and revenue attribution.

use crm_proto::crm::common::v1::Event;
use crm_proto::crm::marketing::v1 as marketing;
use crm_proto::events::DomainEvent;
use kit::db::TenantTx;
use kit::events::decode_data;
use kit::inbox::EventHandler;
use uuid::Uuid;

use super::{applied, occurred};
use crate::store::marketing::{self as store, Fate};

pub struct MarketingEvents;

impl EventHandler for MarketingEvents {
    async fn handle(&self, tx: &mut TenantTx, event: &Event) -> anyhow::Result<()> {
        let tenant = Uuid::parse_str(&event.tenant_id)?;
        let at = occurred(event);
        match event.r#type.as_str() {
            <marketing::CampaignCreated as DomainEvent>::TYPE => {
                let created: marketing::CampaignCreated = decode_data(event)?;
                if let Some(campaign) = created.campaign {
                    store::campaign(tx, tenant, &campaign, at).await?;
                }
            }
            <marketing::CampaignUpdated as DomainEvent>::TYPE => {
                let updated: marketing::CampaignUpdated = decode_data(event)?;
                if let Some(campaign) = updated.campaign {
                    store::campaign(tx, tenant, &campaign, at).await?;
                }
            }
            <marketing::CampaignStatusChanged as DomainEvent>::TYPE => {
                let changed: marketing::CampaignStatusChanged = decode_data(event)?;
                store::status(tx, tenant, &changed.campaign_id, changed.status).await?;
            }
            <marketing::CampaignCostAdded as DomainEvent>::TYPE => {
                let added: marketing::CampaignCostAdded = decode_data(event)?;
                let campaign = added.cost.map(|c| c.campaign_id).unwrap_or_default();
                let total = added.actual_cost.unwrap_or_default();
                store::cost(tx, tenant, &campaign, &total.amount).await?;
            }
            <marketing::CampaignMembersAdded as DomainEvent>::TYPE => {
                let added: marketing::CampaignMembersAdded = decode_data(event)?;
                for member in &added.members {
                    store::member(tx, tenant, member).await?;
                }
            }
            <marketing::MemberStatusChanged as DomainEvent>::TYPE => {
                let changed: marketing::MemberStatusChanged = decode_data(event)?;
                if let Some(member) = changed.member {
                    store::member(tx, tenant, &member).await?;
                }
            }
            <marketing::MemberRemoved as DomainEvent>::TYPE => {
                let removed: marketing::MemberRemoved = decode_data(event)?;
                store::member_removed(tx, tenant, &removed.member_id).await?;
            }
            <marketing::MessageSent as DomainEvent>::TYPE => {
                let sent: marketing::MessageSent = decode_data(event)?;
                let (recipient, campaign) = (&sent.recipient_id, &sent.campaign_id);
                store::sent(tx, tenant, recipient, campaign, sent.channel, at).await?;
            }
            <marketing::MessageDelivered as DomainEvent>::TYPE => {
                let m: marketing::MessageDelivered = decode_data(event)?;
                store::fate(tx, tenant, &m.recipient_id, Fate::Delivered, at).await?;
            }
            <marketing::MessageOpened as DomainEvent>::TYPE => {
                let m: marketing::MessageOpened = decode_data(event)?;
                store::fate(tx, tenant, &m.recipient_id, Fate::Opened, at).await?;
            }
            <marketing::MessageClicked as DomainEvent>::TYPE => {
                let m: marketing::MessageClicked = decode_data(event)?;
                // A click is also an open the pixel may have missed.
                store::fate(tx, tenant, &m.recipient_id, Fate::Opened, at).await?;
                store::fate(tx, tenant, &m.recipient_id, Fate::Clicked, at).await?;
            }
            <marketing::MessageBounced as DomainEvent>::TYPE => {
                let m: marketing::MessageBounced = decode_data(event)?;
                store::fate(tx, tenant, &m.recipient_id, Fate::Bounced, at).await?;
            }
            <marketing::MessageUnsubscribed as DomainEvent>::TYPE => {
                let m: marketing::MessageUnsubscribed = decode_data(event)?;
                store::fate(tx, tenant, &m.recipient_id, Fate::Unsubscribed, at).await?;
            }
            <marketing::AttributionComputed as DomainEvent>::TYPE => {
                let computed: marketing::AttributionComputed = decode_data(event)?;
                store::attributed(tx, tenant, &computed).await?;
            }
            _ => return Ok(()),
        }
        applied(tx, tenant, "marketing", at).await?;
        Ok(())
    }
}
