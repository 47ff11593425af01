//! Events of `crm.reporting.v1`, published on `crm.reporting.<entity>.<verb>`.

use super::domain_events;
use crate::crm::reporting::v1 as pb;

domain_events!("crm.reporting.v1", pb, {
    ChurnRiskChanged => "crm.reporting.churn_risk.changed.v1",
    ReportScheduledSent => "crm.reporting.report.scheduled_sent.v1",
});
