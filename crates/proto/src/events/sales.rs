//! Events of `crm.sales.v1`, published on `crm.sales.<entity>.<verb>`.

use super::domain_events;
use crate::crm::sales::v1 as pb;

domain_events!("crm.sales.v1", pb, {
    LeadCreated => "crm.sales.lead.created.v1",
    LeadAssigned => "crm.sales.lead.assigned.v1",
    LeadScoreChanged => "crm.sales.lead.score_changed.v1",
    LeadQualified => "crm.sales.lead.qualified.v1",
    LeadConverted => "crm.sales.lead.converted.v1",
    OpportunityCreated => "crm.sales.opportunity.created.v1",
    OpportunityUpdated => "crm.sales.opportunity.updated.v1",
    OpportunityStageChanged => "crm.sales.opportunity.stage_changed.v1",
    OpportunityWon => "crm.sales.opportunity.won.v1",
    OpportunityLost => "crm.sales.opportunity.lost.v1",
    QuoteApprovalRequested => "crm.sales.quote.approval_requested.v1",
    QuoteApproved => "crm.sales.quote.approved.v1",
    QuoteRejected => "crm.sales.quote.rejected.v1",
    QuoteSent => "crm.sales.quote.sent.v1",
    QuoteAccepted => "crm.sales.quote.accepted.v1",
    PipelineChanged => "crm.sales.pipeline.changed.v1",
    QuotaSet => "crm.sales.quota.set.v1",
    OrderCreated => "crm.sales.order.created.v1",
    InvoiceIssued => "crm.sales.invoice.issued.v1",
    InvoiceOverdue => "crm.sales.invoice.overdue.v1",
    PaymentRecorded => "crm.sales.payment.recorded.v1",
});
