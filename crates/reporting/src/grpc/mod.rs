//! gRPC handlers: decode the request, authorise the caller, read the
//! projections within the caller's visibility, encode.

mod activities;
mod customers;
pub mod dashboards;
mod marketing;
pub mod reconcile;
pub mod reports;
mod sales;
mod service;

use std::sync::Arc;

use kit::auth::CallerContext;
use kit::db::{Database, TenantTx};
use kit::error::Violations;
use kit::input::optional_id;
use kit::time::from_optional_timestamp;
use uuid::Uuid;

use crate::domain::{period, Period, DEFAULT_PERIOD};

/// What every handler needs.
pub struct State {
    pub db: Database,
    /// What "now" is for default periods and backlog ages.
    pub clock: kit::clock::Clock,
    /// A mail relay is configured: reports may be scheduled.
    pub mails_reports: bool,
    /// The sources a reconciliation reads (when configured).
    pub sales: Option<tonic::transport::Channel>,
    pub servicedesk: Option<tonic::transport::Channel>,
}

pub type SharedState = Arc<State>;

impl State {
    pub async fn begin(&self, caller: &CallerContext) -> kit::Result<TenantTx> {
        Ok(self.db.begin_tenant(caller.tenant_id).await?)
    }

    /// A read-only transaction whose statements all see one snapshot: a
    /// dashboard's figures agree with each other and with its `as_of`
    /// while the projections commit.
    pub async fn snapshot(&self, caller: &CallerContext) -> kit::Result<TenantTx> {
        Ok(self.db.begin_tenant_snapshot(caller.tenant_id).await?)
    }
}

pub use kit::rpc::handle;

/// What every dashboard is filtered by: a period, an owner, a team.
pub struct Filters {
    pub period: Period,
    pub owner: Option<Uuid>,
    pub team: Option<Uuid>,
}

impl Filters {
    /// Reads the request's period ([`DEFAULT_PERIOD`] when it names none)
    /// and the ids in the named fields; what is wrong goes to `v`, by field.
    pub fn read(
        from: Option<&prost_types::Timestamp>,
        to: Option<&prost_types::Timestamp>,
        owner: (&str, &str),
        team: (&str, &str),
        now: chrono::DateTime<chrono::Utc>,
        v: &mut Violations,
    ) -> kit::Result<Filters> {
        Self::read_with(from, to, owner, team, now, DEFAULT_PERIOD, v)
    }

    /// [`Filters::read`] with another default period.
    pub fn read_with(
        from: Option<&prost_types::Timestamp>,
        to: Option<&prost_types::Timestamp>,
        (owner_field, owner): (&str, &str),
        (team_field, team): (&str, &str),
        now: chrono::DateTime<chrono::Utc>,
        default: chrono::Duration,
        v: &mut Violations,
    ) -> kit::Result<Filters> {
        let from = from_optional_timestamp("from", from)?;
        let to = from_optional_timestamp("to", to)?;
        let owner = v.check(optional_id(owner_field, owner)).flatten();
        let team = v.check(optional_id(team_field, team)).flatten();
        Ok(Filters {
            period: period(from, to, now, default, v),
            owner,
            team,
        })
    }
}

/// An ISO 4217 code asked for (upper-cased), none when empty; a malformed
/// one goes to `v`.
pub fn currency(raw: &str, v: &mut Violations) -> Option<String> {
    let code = raw.trim().to_ascii_uppercase();
    if code.is_empty() {
        return None;
    }
    if code.len() != 3 || !code.chars().all(|c| c.is_ascii_uppercase()) {
        v.add("currency", "must be an ISO 4217 code such as EUR");
    }
    Some(code)
}
