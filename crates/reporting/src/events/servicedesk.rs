//! From the service desk: tickets created, updated, assigned, moved
//! between statuses, solved, answered for the first time, rated and
//! breaching SLA targets (each makes its account's churn risk due), and
//! NPS answers.

use crm_proto::crm::common::v1::Event;
use crm_proto::crm::servicedesk::v1 as desk;
use crm_proto::events::DomainEvent;
use kit::db::TenantTx;
use kit::events::decode_data;
use kit::inbox::EventHandler;
use uuid::Uuid;

use super::{applied, occurred};
use crate::store::{accounts, tickets};

pub struct ServiceDeskEvents;

impl EventHandler for ServiceDeskEvents {
    async fn handle(&self, tx: &mut TenantTx, event: &Event) -> anyhow::Result<()> {
        let tenant = Uuid::parse_str(&event.tenant_id)?;
        let at = occurred(event);
        // The ticket each event is about: its account's churn risk is due.
        let ticket = match event.r#type.as_str() {
            <desk::TicketCreated as DomainEvent>::TYPE => {
                let created: desk::TicketCreated = decode_data(event)?;
                let ticket = created.ticket.unwrap_or_default();
                tickets::created(tx, tenant, &ticket, at).await?;
                ticket.id
            }
            <desk::TicketUpdated as DomainEvent>::TYPE => {
                let updated: desk::TicketUpdated = decode_data(event)?;
                let ticket = updated.ticket.unwrap_or_default();
                tickets::updated(tx, tenant, &ticket, None).await?;
                ticket.id
            }
            <desk::TicketSolved as DomainEvent>::TYPE => {
                let solved: desk::TicketSolved = decode_data(event)?;
                let ticket = solved.ticket.unwrap_or_default();
                tickets::updated(tx, tenant, &ticket, Some(at)).await?;
                ticket.id
            }
            <desk::TicketAssigned as DomainEvent>::TYPE => {
                let assigned: desk::TicketAssigned = decode_data(event)?;
                tickets::assigned(tx, tenant, &assigned).await?;
                assigned.ticket_id
            }
            <desk::TicketStatusChanged as DomainEvent>::TYPE => {
                let changed: desk::TicketStatusChanged = decode_data(event)?;
                tickets::status(tx, tenant, &changed.ticket_id, changed.status).await?;
                changed.ticket_id
            }
            <desk::TicketReopened as DomainEvent>::TYPE => {
                let reopened: desk::TicketReopened = decode_data(event)?;
                tickets::status(tx, tenant, &reopened.ticket_id, reopened.status).await?;
                reopened.ticket_id
            }
            <desk::TicketReplied as DomainEvent>::TYPE => {
                let replied: desk::TicketReplied = decode_data(event)?;
                if replied.first_response {
                    tickets::first_response(tx, tenant, &replied.ticket_id, at).await?;
                }
                replied.ticket_id
            }
            <desk::SatisfactionReceived as DomainEvent>::TYPE => {
                let rated: desk::SatisfactionReceived = decode_data(event)?;
                tickets::rated(tx, tenant, &rated.ticket_id, rated.score).await?;
                rated.ticket_id
            }
            <desk::SlaBreached as DomainEvent>::TYPE => {
                let breached: desk::SlaBreached = decode_data(event)?;
                let metric = breached.target.map(|t| t.metric).unwrap_or_default();
                tickets::breached(tx, tenant, &breached.ticket_id, metric, at).await?;
                breached.ticket_id
            }
            <desk::NpsReceived as DomainEvent>::TYPE => {
                let answer: desk::NpsReceived = decode_data(event)?;
                tickets::nps(tx, tenant, &answer, at).await?;
                String::new()
            }
            _ => return Ok(()),
        };
        accounts::churn_due_for_ticket(tx, tenant, &ticket).await?;
        applied(tx, tenant, "servicedesk", at).await?;
        Ok(())
    }
}
