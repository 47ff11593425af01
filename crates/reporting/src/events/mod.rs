//! The projections: each domain's events applied to the read models, in
//! the consumer's transaction (the inbox: once per event, in order per
//! aggregate). An event about a record the projection never saw created
//! (its creation older than the stream keeps) changes nothing, unless it
//! carries the record whole.

pub mod churn;
mod customers;
mod marketing;
mod sales;
pub mod schedules;
mod servicedesk;

use chrono::{DateTime, Utc};
use crm_proto::crm::common::v1::Event;

pub use customers::CustomersEvents;
pub use marketing::MarketingEvents;
pub use sales::SalesEvents;
pub use servicedesk::ServiceDeskEvents;

/// When the event happened in its source.
fn occurred(event: &Event) -> DateTime<Utc> {
    crate::store::time(event.occurred_at.as_ref()).unwrap_or_else(Utc::now)
}

/// The tenant's figures of `domain` now include what happened at `at`:
/// the "as of" of every answer, and how far behind its source reporting
/// is (`crm_reporting_freshness_seconds{domain}`: commit in the source to
/// applied here; visible once this transaction commits).
async fn applied(
    tx: &mut kit::db::TenantTx,
    tenant: uuid::Uuid,
    domain: &'static str,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    crate::store::freshness::advance(tx, tenant, domain, at).await?;
    let behind = (Utc::now() - at).to_std().unwrap_or_default();
    metrics::histogram!("crm_reporting_freshness_seconds", "domain" => domain)
        .record(behind.as_secs_f64());
    Ok(())
}
