//! Events this service consumes from the customers service:
//! - `contact.merged` / `account.merged`: tickets move to the survivor;
//! - `contact.erased`: the person's tickets stay for statistics, without
//!   requester, subject, description or the conversation with them;
//!
//! and from sales ([`SalesEvents`]): `order.created`, the after-sales
//! context of tickets.
//!
//! What it publishes is in `proto/crm/servicedesk/v1/events.proto`; the
//! SLA clocks and their scanner are in [`sla`], routing in [`routing`], the
//! e-mail channel in [`mail`].

pub mod intake;
pub mod mail;
pub mod routing;
pub mod sla;
pub mod tasks;

use crm_proto::crm::common::v1::Event;
use crm_proto::crm::customers::v1 as customers;
use crm_proto::crm::sales::v1 as sales;
use crm_proto::crm::servicedesk::v1::KnownOrder;
use crm_proto::events::DomainEvent;
use kit::db::TenantTx;
use kit::events::decode_data;
use kit::inbox::EventHandler;
use uuid::Uuid;

use crate::store::orders;
use crate::store::tickets::{self, Reference};

pub struct CustomerEvents;

/// Sales' orders, kept as the desk's projection (`store::orders`).
pub struct SalesEvents;

impl EventHandler for SalesEvents {
    async fn handle(&self, tx: &mut TenantTx, event: &Event) -> anyhow::Result<()> {
        if event.r#type != <sales::OrderCreated as DomainEvent>::TYPE {
            return Ok(());
        }
        let created: sales::OrderCreated = decode_data(event)?;
        let order = created.order.unwrap_or_default();
        if Uuid::parse_str(&order.id).is_err() {
            tracing::warn!(event = %event.id, "an order.created event without an order id");
            return Ok(());
        }
        let ordered_at = order
            .audit
            .as_ref()
            .and_then(|a| a.created_at.as_ref())
            .or(event.occurred_at.as_ref())
            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
            .unwrap_or_else(chrono::Utc::now);
        let known = KnownOrder {
            id: order.id,
            account_id: created.account_id,
            contact_ids: created.contact_ids,
            total: order.total,
            opportunity_id: order.opportunity_id,
            ordered_at: None,
        };
        let tenant = Uuid::parse_str(&event.tenant_id)?;
        orders::record(tx, tenant, &known, ordered_at).await?;
        Ok(())
    }
}

impl EventHandler for CustomerEvents {
    async fn handle(&self, tx: &mut TenantTx, event: &Event) -> anyhow::Result<()> {
        let tenant = Uuid::parse_str(&event.tenant_id)?;
        match event.r#type.as_str() {
            <customers::ContactMerged as DomainEvent>::TYPE => {
                let merged: customers::ContactMerged = decode_data(event)?;
                let (from, to) = (
                    Uuid::parse_str(&merged.merged_id)?,
                    Uuid::parse_str(&merged.survivor_id)?,
                );
                tickets::repoint(tx, tenant, Reference::Requester, from, to).await?;
            }
            <customers::AccountMerged as DomainEvent>::TYPE => {
                let merged: customers::AccountMerged = decode_data(event)?;
                let (from, to) = (
                    Uuid::parse_str(&merged.merged_id)?,
                    Uuid::parse_str(&merged.survivor_id)?,
                );
                tickets::repoint(tx, tenant, Reference::Account, from, to).await?;
            }
            <customers::AccountUpdated as DomainEvent>::TYPE => {
                let updated: customers::AccountUpdated = decode_data(event)?;
                if let Some(account) = updated.account {
                    let id = Uuid::parse_str(&account.id)?;
                    let facts = crate::domain::sla::account_facts(&account);
                    tickets::refresh_account_facts(tx, tenant, id, &facts).await?;
                }
            }
            <customers::ContactErased as DomainEvent>::TYPE => {
                let erased: customers::ContactErased = decode_data(event)?;
                let contact = Uuid::parse_str(&erased.contact_id)?;
                tickets::erase_requester(tx, tenant, contact).await?;
            }
            _ => {}
        }
        Ok(())
    }
}
