//! SQL of the reporting service: the read models, written by the
//! projections and read by the dashboards, inside tenant-scoped
//! transactions (row-level security is the second fence).

pub mod accounts;
pub mod activities;
pub mod customers;
pub mod freshness;
pub mod leads;
pub mod marketing;
pub mod reconcile;
pub mod reports;
pub mod sales;
pub mod tickets;

use chrono::{DateTime, Utc};
use kit::access::Scope;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::Period;

/// An id from an event; empty or malformed is none.
pub(crate) fn id(raw: &str) -> Option<Uuid> {
    Uuid::parse_str(raw).ok()
}

/// A timestamp from an event.
pub(crate) fn time(t: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
}

/// An account merged into another in customers: what was the merged
/// account's (deals, orders, invoices, activities, tickets) is now the
/// survivor's.
pub async fn account_merged(
    tx: &mut sqlx::PgConnection,
    tenant: Uuid,
    merged: Uuid,
    survivor: Uuid,
) -> sqlx::Result<()> {
    for table in ["deals", "orders", "invoices", "activities", "tickets"] {
        sqlx::query(&format!(
            "UPDATE {table} SET account_id = $3 WHERE tenant_id = $1 AND account_id = $2"
        ))
        .bind(tenant)
        .bind(merged)
        .bind(survivor)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Which records a dashboard counts: what the caller's scope sees, narrowed
/// to one owner and/or one team.
#[derive(Clone, Copy)]
pub struct Selection<'a> {
    pub tenant: Uuid,
    pub scope: &'a Scope,
    pub owner: Option<Uuid>,
    pub team: Option<Uuid>,
}

impl Selection<'_> {
    /// ` FROM <table> WHERE` the selection's conditions over the table's
    /// `tenant_id`, `owner_id` and `team_id`. `table` is one of this
    /// crate's table names, never input.
    pub fn push_from(&self, query: &mut QueryBuilder<'_, Postgres>, table: &str) {
        query
            .push(format!(" FROM {table} WHERE tenant_id = "))
            .push_bind(self.tenant);
        query.push(" AND ");
        self.scope.push_condition(query);
        if let Some(team) = self.team {
            query.push(" AND team_id = ").push_bind(team);
        }
        if let Some(owner) = self.owner {
            query.push(" AND owner_id = ").push_bind(owner);
        }
    }
}

/// `<column> >= from AND <column> < to`; `column` is this crate's, never
/// input.
pub fn within(query: &mut QueryBuilder<'_, Postgres>, column: &str, p: Period) {
    query.push(format!("{column} >= ")).push_bind(p.from);
    query.push(format!(" AND {column} < ")).push_bind(p.to);
}
