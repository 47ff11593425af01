//! Events this service consumes from the customers service, to keep its
//! consent replica and memberships right:
//! - `contact.created` / `contact.updated`: the contact's consent per
//!   channel (a merge's survivor arrives this way with the merged consent);
//! - `contact.consent_changed`: one channel, as of the event's time;
//! - `contact.merged`: the merged contact's memberships, loyalty points and
//!   history move to the survivor (balances add up, the tier follows) and
//!   its consent goes;
//! - `contact.erased`: the person's consent and memberships go, their
//!   suppressed addresses keep only a hash (still recognised, not
//!   readable), their send recipients lose address and variables
//!   (messages still queued for them are cancelled), the form
//!   submissions that gave one of their addresses go, and so do their
//!   loyalty accounts and history (coupon redemptions stay counted), and
//!   their automation runs and journey enrolments.

pub mod automation;
pub mod expiry;
pub mod journeys;
pub mod mailer;
pub mod sales;
pub mod sender;
pub mod sms;
pub mod webhook;

use chrono::{DateTime, Utc};
use crm_proto::crm::common::v1::Event;
use crm_proto::crm::customers::v1 as customers;
use crm_proto::events::DomainEvent;
use kit::db::TenantTx;
use kit::events::decode_data;
use kit::inbox::EventHandler;
use uuid::Uuid;

use crate::store::{consent, loyalty, members};

pub struct CustomerEvents(pub kit::outbox::Outbox);

fn time(t: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
}

/// The dates date-triggered rules look at: the birthday and every custom
/// field holding a date (`YYYY-MM-DD`).
async fn record_dates(
    tx: &mut TenantTx,
    tenant: Uuid,
    contact: Option<&customers::Contact>,
) -> anyhow::Result<()> {
    let Some(contact) = contact else {
        return Ok(());
    };
    let date = |text: &str| chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok();
    let mut dates = Vec::new();
    if let Some(birthday) = date(&contact.birthday) {
        dates.push(("birthday".to_owned(), birthday));
    }
    for (name, value) in &contact.custom_fields {
        if let Some(prost_types::value::Kind::StringValue(text)) = &value.kind {
            if let Some(day) = date(text) {
                dates.push((format!("custom_fields.{name}"), day));
            }
        }
    }
    let id = Uuid::parse_str(&contact.id)?;
    crate::store::automations::replace_dates(tx, tenant, id, &dates).await?;
    Ok(())
}

/// Every channel's consent the contact record carries.
async fn record_all(
    tx: &mut TenantTx,
    tenant: Uuid,
    contact: Option<&customers::Contact>,
    fallback: DateTime<Utc>,
) -> anyhow::Result<()> {
    let Some(contact) = contact else {
        return Ok(());
    };
    let id = Uuid::parse_str(&contact.id)?;
    for c in &contact.consents {
        let at = time(c.updated_at.as_ref()).unwrap_or(fallback);
        consent::record(tx, tenant, id, c.channel, c.status, &c.source, at).await?;
    }
    Ok(())
}

impl EventHandler for CustomerEvents {
    async fn handle(&self, tx: &mut TenantTx, event: &Event) -> anyhow::Result<()> {
        let tenant = Uuid::parse_str(&event.tenant_id)?;
        let occurred = time(event.occurred_at.as_ref()).unwrap_or_else(Utc::now);
        match event.r#type.as_str() {
            <customers::ContactCreated as DomainEvent>::TYPE => {
                let created: customers::ContactCreated = decode_data(event)?;
                record_all(tx, tenant, created.contact.as_ref(), occurred).await?;
                record_dates(tx, tenant, created.contact.as_ref()).await?;
            }
            <customers::ContactUpdated as DomainEvent>::TYPE => {
                let updated: customers::ContactUpdated = decode_data(event)?;
                record_all(tx, tenant, updated.contact.as_ref(), occurred).await?;
                record_dates(tx, tenant, updated.contact.as_ref()).await?;
            }
            <customers::ContactDeleted as DomainEvent>::TYPE => {
                let deleted: customers::ContactDeleted = decode_data(event)?;
                let contact = Uuid::parse_str(&deleted.contact_id)?;
                crate::store::automations::forget_dates(tx, tenant, contact).await?;
            }
            <customers::ConsentChanged as DomainEvent>::TYPE => {
                let changed: customers::ConsentChanged = decode_data(event)?;
                let contact = Uuid::parse_str(&changed.contact_id)?;
                consent::record(
                    tx,
                    tenant,
                    contact,
                    changed.channel,
                    changed.status,
                    &changed.source,
                    occurred,
                )
                .await?;
            }
            <customers::ContactMerged as DomainEvent>::TYPE => {
                let merged: customers::ContactMerged = decode_data(event)?;
                let (from, to) = (
                    Uuid::parse_str(&merged.merged_id)?,
                    Uuid::parse_str(&merged.survivor_id)?,
                );
                members::repoint_contact(tx, tenant, from, to).await?;
                consent::forget(tx, tenant, from).await?;
                crate::store::automations::forget_dates(tx, tenant, from).await?;
                let caller = kit::auth::CallerContext::system(crate::config::SERVICE, tenant);
                for program in loyalty::repoint_contact(tx, tenant, from, to).await? {
                    if let Some(program) = loyalty::find_program(tx, tenant, program).await? {
                        if let Some((previous, tier)) =
                            loyalty::retier(tx, tenant, &program, to).await?
                        {
                            let event = crm_proto::crm::marketing::v1::LoyaltyTierChanged {
                                program_id: program.id.clone(),
                                contact_id: to.to_string(),
                                previous_tier: previous,
                                tier,
                            };
                            self.0.enqueue(tx, &caller, to, 1, &event).await?;
                        }
                    }
                }
            }
            <customers::ContactErased as DomainEvent>::TYPE => {
                let erased: customers::ContactErased = decode_data(event)?;
                let contact = Uuid::parse_str(&erased.contact_id)?;
                // Recipients before memberships: the sender records an
                // outcome in that order, and the other order deadlocks
                // with it.
                let sends = crate::store::messages::erase_contact(tx, tenant, contact).await?;
                members::remove_contact(tx, tenant, contact).await?;
                consent::forget(tx, tenant, contact).await?;
                consent::erase_addresses(tx, tenant, &erased.contact_point_hashes).await?;
                crate::store::forms::erase_points(tx, tenant, &erased.contact_point_hashes).await?;
                loyalty::forget_contact(tx, tenant, contact).await?;
                crate::store::automations::erase_contact(tx, tenant, contact).await?;
                crate::store::journeys::erase_contact(tx, tenant, contact).await?;
                // A send whose last queued message was the person's is over.
                let caller = kit::auth::CallerContext::system(crate::config::SERVICE, tenant);
                for send in sends {
                    sender::publish_if_completed(&self.0, tx, &caller, send).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}
