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
    OpportunityStageChanged => "crm.sales.opportunity.stage_changed.v1",
    OpportunityWon => "crm.sales.opportunity.won.v1",
    OpportunityLost => "crm.sales.opportunity.lost.v1",
});
