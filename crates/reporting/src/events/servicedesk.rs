//! From the service desk: tickets created, updated, assigned, moved
//! between statuses, solved, answered for the first time, and rated.

use crm_proto::crm::common::v1::Event;
use crm_proto::crm::servicedesk::v1 as desk;
use crm_proto::events::DomainEvent;
use kit::db::TenantTx;
use kit::events::decode_data;
use kit::inbox::EventHandler;
use uuid::Uuid;

use super::occurred;
use crate::store::{freshness, tickets};

pub struct ServiceDeskEvents;

impl EventHandler for ServiceDeskEvents {
    async fn handle(&self, tx: &mut TenantTx, event: &Event) -> anyhow::Result<()> {
        let tenant = Uuid::parse_str(&event.tenant_id)?;
        let at = occurred(event);
        match event.r#type.as_str() {
            <desk::TicketCreated as DomainEvent>::TYPE => {
                let created: desk::TicketCreated = decode_data(event)?;
                if let Some(ticket) = created.ticket {
                    tickets::created(tx, tenant, &ticket, at).await?;
                }
            }
            <desk::TicketUpdated as DomainEvent>::TYPE => {
                let updated: desk::TicketUpdated = decode_data(event)?;
                if let Some(ticket) = updated.ticket {
                    tickets::updated(tx, tenant, &ticket, None).await?;
                }
            }
            <desk::TicketSolved as DomainEvent>::TYPE => {
                let solved: desk::TicketSolved = decode_data(event)?;
                if let Some(ticket) = solved.ticket {
                    tickets::updated(tx, tenant, &ticket, Some(at)).await?;
                }
            }
            <desk::TicketAssigned as DomainEvent>::TYPE => {
                let assigned: desk::TicketAssigned = decode_data(event)?;
                tickets::assigned(tx, tenant, &assigned).await?;
            }
            <desk::TicketStatusChanged as DomainEvent>::TYPE => {
                let changed: desk::TicketStatusChanged = decode_data(event)?;
                tickets::status(tx, tenant, &changed.ticket_id, changed.status).await?;
            }
            <desk::TicketReopened as DomainEvent>::TYPE => {
                let reopened: desk::TicketReopened = decode_data(event)?;
                tickets::status(tx, tenant, &reopened.ticket_id, reopened.status).await?;
            }
            <desk::TicketReplied as DomainEvent>::TYPE => {
                let replied: desk::TicketReplied = decode_data(event)?;
                if replied.first_response {
                    tickets::first_response(tx, tenant, &replied.ticket_id, at).await?;
                }
            }
            <desk::SatisfactionReceived as DomainEvent>::TYPE => {
                let rated: desk::SatisfactionReceived = decode_data(event)?;
                tickets::rated(tx, tenant, &rated.ticket_id, rated.score).await?;
            }
            _ => return Ok(()),
        }
        freshness::advance(tx, tenant, "servicedesk", at).await?;
        Ok(())
    }
}
