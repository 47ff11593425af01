//! Events this service consumes from the customers service:
//! - `contact.merged` / `account.merged`: tickets move to the survivor;
//! - `contact.erased`: the person's tickets stay for statistics, without
//!   requester, subject, description or the conversation with them.
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
use crm_proto::events::DomainEvent;
use kit::db::TenantTx;
use kit::events::decode_data;
use kit::inbox::EventHandler;
use uuid::Uuid;

use crate::store::tickets::{self, Reference};

pub struct CustomerEvents;

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
