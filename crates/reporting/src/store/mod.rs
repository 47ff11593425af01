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

use chrono::{DateTime, Duration, DurationRound, NaiveDate, Utc};
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
    sales::account_region(tx, tenant, survivor).await
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

/// The start (UTC midnight) of the day `t` is in.
pub fn day_start(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::days(1)).unwrap_or(t)
}

/// A period as day rollups read it: the whole UTC days `[lo, hi)` in it,
/// and the rows of the partial days at its ends, `[from, lo)` and
/// `[hi, to)`. A period without a whole day is all rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days {
    pub lo: DateTime<Utc>,
    pub hi: DateTime<Utc>,
    pub period: Period,
}

/// A day rollup and the rows it sums, for [`Days::push_rolled`]: the
/// rollup's `columns` and the same values computed from `rows` (a row
/// counting 1) meeting `condition`, timed by `time`.
pub struct Rolled<'a> {
    pub rollup: &'a str,
    pub columns: &'a str,
    pub rows: &'a str,
    pub row_columns: &'a str,
    pub condition: &'a str,
    pub time: &'a str,
    pub alias: &'a str,
}

impl Days {
    pub fn of(period: Period) -> Days {
        let lo = match day_start(period.from) {
            start if start == period.from => start,
            start => start + Duration::days(1),
        };
        let hi = day_start(period.to);
        let (lo, hi) = if lo < hi {
            (lo, hi)
        } else {
            (period.to, period.to)
        };
        Days { lo, hi, period }
    }

    /// The first whole day, and the day after the last.
    pub fn first(&self) -> NaiveDate {
        self.lo.date_naive()
    }

    pub fn end(&self) -> NaiveDate {
        self.hi.date_naive()
    }

    /// ` FROM (...) <alias>`: what happened in the period as rows of a day
    /// rollup, its whole days from the rollup and its partial days from
    /// the rows themselves. `from` pushes ` FROM <table> WHERE <the
    /// selection>` for a table name; every name here is this crate's.
    pub fn push_rolled(
        &self,
        query: &mut QueryBuilder<'_, Postgres>,
        from: impl Fn(&mut QueryBuilder<'_, Postgres>, &str),
        rolled: Rolled<'_>,
    ) {
        query.push(format!(" FROM (SELECT {}", rolled.columns));
        from(query, rolled.rollup);
        self.push_days(query);
        query.push(format!(" UNION ALL SELECT {}", rolled.row_columns));
        from(query, rolled.rows);
        query.push(rolled.condition);
        self.push_edges(query, rolled.time);
        query.push(format!(") {}", rolled.alias));
    }

    /// ` AND day >= first AND day < end`.
    pub fn push_days(&self, query: &mut QueryBuilder<'_, Postgres>) {
        query.push(" AND day >= ").push_bind(self.first());
        query.push(" AND day < ").push_bind(self.end());
    }

    /// ` AND (<column> in the partial days)`; `column` is this crate's.
    pub fn push_edges(&self, query: &mut QueryBuilder<'_, Postgres>, column: &str) {
        query.push(" AND ((");
        within(
            query,
            column,
            Period {
                from: self.period.from,
                to: self.lo,
            },
        );
        query.push(") OR (");
        within(
            query,
            column,
            Period {
                from: self.hi,
                to: self.period.to,
            },
        );
        query.push("))");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .expect("a time")
    }

    #[test]
    fn a_period_is_whole_days_and_the_partial_days_at_its_ends() {
        let d = Days::of(Period {
            from: at("2026-03-01T10:00:00Z"),
            to: at("2026-03-05T06:00:00Z"),
        });
        assert_eq!(
            (d.first().to_string(), d.end().to_string()),
            ("2026-03-02".into(), "2026-03-05".into())
        );
        assert_eq!(
            (d.lo, d.hi),
            (at("2026-03-02T00:00:00Z"), at("2026-03-05T00:00:00Z"))
        );
        // Midnight to midnight: days only (both edges empty).
        let d = Days::of(Period {
            from: at("2026-03-01T00:00:00Z"),
            to: at("2026-03-03T00:00:00Z"),
        });
        assert_eq!((d.lo, d.hi), (d.period.from, d.period.to));
        assert_eq!(d.end() - d.first(), chrono::TimeDelta::days(2));
        // Within one day, or across one midnight: rows only.
        for (from, to) in [
            ("2026-03-01T10:00:00Z", "2026-03-01T12:00:00Z"),
            ("2026-03-01T10:00:00Z", "2026-03-02T12:00:00Z"),
        ] {
            let d = Days::of(Period {
                from: at(from),
                to: at(to),
            });
            assert_eq!(
                (d.lo, d.hi, d.first(), d.end()),
                (
                    d.period.to,
                    d.period.to,
                    d.period.to.date_naive(),
                    d.period.to.date_naive()
                )
            );
        }
    }
}
