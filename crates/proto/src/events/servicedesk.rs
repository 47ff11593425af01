//! Events of `crm.servicedesk.v1`, published on
//! `crm.servicedesk.<entity>.<verb>`.

use super::domain_events;
use crate::crm::servicedesk::v1 as pb;

domain_events!("crm.servicedesk.v1", pb, {
    TicketCreated => "crm.servicedesk.ticket.created.v1",
    TicketUpdated => "crm.servicedesk.ticket.updated.v1",
    TicketAssigned => "crm.servicedesk.ticket.assigned.v1",
    TicketStatusChanged => "crm.servicedesk.ticket.status_changed.v1",
    TicketSolved => "crm.servicedesk.ticket.solved.v1",
    TicketReopened => "crm.servicedesk.ticket.reopened.v1",
    TicketReplied => "crm.servicedesk.ticket.replied.v1",
    TicketMerged => "crm.servicedesk.ticket.merged.v1",
    SlaWarning => "crm.servicedesk.sla.warning.v1",
    SlaBreached => "crm.servicedesk.sla.breached.v1",
    SlaEscalated => "crm.servicedesk.sla.escalated.v1",
    ArticlePublished => "crm.servicedesk.article.published.v1",
    SatisfactionReceived => "crm.servicedesk.csat.received.v1",
    TicketJobCompleted => "crm.servicedesk.ticket_job.completed.v1",
    RootCauseCreated => "crm.servicedesk.root_cause.created.v1",
    NpsReceived => "crm.servicedesk.nps.received.v1",
});
