//! The customer dashboard's figures: accounts by place, industry and
//! lifecycle; RFM; retention cohorts; lifetime value; churn risks.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::Selection;
use crate::domain::Period;

/// Which accounts count: the selection (over the account's owner and
/// team), in one region when named.
#[derive(Clone, Copy)]
pub struct Accounts<'a> {
    pub selection: Selection<'a>,
    pub region: Option<&'a str>,
}

impl Accounts<'_> {
    /// `SELECT id FROM accounts WHERE` the conditions: a subquery.
    fn push_ids(&self, query: &mut QueryBuilder<'_, Postgres>) {
        query.push("SELECT id");
        self.push_from(query);
    }

    fn push_from(&self, query: &mut QueryBuilder<'_, Postgres>) {
        self.selection.push_from(query, "accounts");
        if let Some(region) = self.region {
            query.push(" AND region = ").push_bind(region.to_owned());
        }
    }

    /// ` AND account_id IN (<the accounts>)`.
    fn push_in(&self, query: &mut QueryBuilder<'_, Postgres>) {
        query.push(" AND account_id IN (");
        self.push_ids(query);
        query.push(")");
    }
}

/// The dimensions accounts are counted by: a closed set, never a name from
/// the request.
#[derive(Debug, Clone, Copy)]
pub enum Place {
    Region,
    Country,
    Industry,
    Lifecycle,
}

pub async fn count(tx: &mut PgConnection, a: &Accounts<'_>) -> sqlx::Result<i64> {
    let mut query = QueryBuilder::new("SELECT count(*)");
    a.push_from(&mut query);
    query.build_query_scalar().fetch_one(tx).await
}

/// Accounts per value (most first, at most 50); the lifecycle as the
/// source's number, in text.
pub async fn distribution(
    tx: &mut PgConnection,
    a: &Accounts<'_>,
    by: Place,
) -> sqlx::Result<Vec<(String, i64)>> {
    let column = match by {
        Place::Region => "region",
        Place::Country => "country",
        Place::Industry => "industry",
        Place::Lifecycle => "lifecycle::text",
    };
    let mut query = QueryBuilder::new(format!("SELECT {column}, count(*)"));
    a.push_from(&mut query);
    query.push(" GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 50");
    query.build_query_as().fetch_all(tx).await
}

/// One customer's recency, frequency and monetary value with their
/// quintile scores.
#[derive(sqlx::FromRow, Debug)]
pub struct Rfm {
    pub account_id: Uuid,
    pub recency_days: i32,
    pub frequency: i64,
    pub monetary: Decimal,
    pub r: i32,
    pub f: i32,
    pub m: i32,
}

/// Every customer's RFM, most valuable first. Scores are
/// `ceil(5 x cume_dist)`: equal values share a score, and five customers
/// with distinct values get 1 to 5.
pub async fn rfm(
    tx: &mut PgConnection,
    a: &Accounts<'_>,
    currency: &str,
    now: DateTime<Utc>,
    lookback: Duration,
) -> sqlx::Result<Vec<Rfm>> {
    let mut query =
        QueryBuilder::new("WITH facts AS (SELECT account_id, floor(extract(epoch FROM ");
    query.push_bind(now);
    query.push(
        " - max(ordered_at)) / 86400)::int4 AS recency_days, count(*) FILTER (WHERE ordered_at >= ",
    );
    query.push_bind(now - lookback);
    query.push(") AS frequency, coalesce(sum(total) FILTER (WHERE ordered_at >= ");
    query.push_bind(now - lookback);
    query.push("), 0) AS monetary FROM orders WHERE tenant_id = ");
    query.push_bind(a.selection.tenant);
    query
        .push(" AND currency = ")
        .push_bind(currency.to_owned());
    query.push(" AND ordered_at <= ").push_bind(now);
    a.push_in(&mut query);
    query.push(
        " GROUP BY account_id) SELECT account_id, recency_days, frequency, monetary, \
         ceil(5 * (cume_dist() OVER (ORDER BY recency_days DESC))::numeric(20, 10))::int4 AS r, \
         ceil(5 * (cume_dist() OVER (ORDER BY frequency))::numeric(20, 10))::int4 AS f, \
         ceil(5 * (cume_dist() OVER (ORDER BY monetary))::numeric(20, 10))::int4 AS m \
         FROM facts ORDER BY monetary DESC, account_id",
    );
    query.build_query_as().fetch_all(tx).await
}

/// Per first-order month in the period: (month, months after it, accounts
/// with an order then).
pub async fn cohorts(
    tx: &mut PgConnection,
    a: &Accounts<'_>,
    p: Period,
) -> sqlx::Result<Vec<(String, i32, i64)>> {
    let tenant = a.selection.tenant;
    let mut query = QueryBuilder::new(
        "WITH firsts AS (SELECT account_id, date_trunc('month', min(ordered_at) AT TIME ZONE 'UTC') AS cohort \
         FROM orders WHERE tenant_id = ",
    );
    query.push_bind(tenant);
    a.push_in(&mut query);
    query.push(
        " GROUP BY account_id), active AS (SELECT DISTINCT account_id, date_trunc('month', ordered_at AT TIME ZONE 'UTC') AS month \
         FROM orders WHERE tenant_id = ",
    );
    query.push_bind(tenant);
    query.push(
        " AND account_id IN (SELECT account_id FROM firsts)) \
         SELECT to_char(f.cohort, 'YYYY-MM'), \
         ((extract(year FROM a.month) - extract(year FROM f.cohort)) * 12 + extract(month FROM a.month) - extract(month FROM f.cohort))::int4, \
         count(*) FROM firsts f JOIN active a ON a.account_id = f.account_id \
         WHERE f.cohort >= date_trunc('month', ",
    );
    query.push_bind(p.from);
    query.push(" AT TIME ZONE 'UTC') AND f.cohort < ");
    query.push_bind(p.to);
    query.push(" AT TIME ZONE 'UTC' AND a.month < ");
    query.push_bind(p.to);
    query.push(" AT TIME ZONE 'UTC' GROUP BY 1, 2 ORDER BY 1, 2");
    query.build_query_as().fetch_all(tx).await
}

/// Lifetime totals over every order in `currency`.
#[derive(sqlx::FromRow)]
pub struct Lifetime {
    pub customers: i64,
    pub orders: i64,
    pub revenue: Decimal,
}

pub async fn lifetime(
    tx: &mut PgConnection,
    a: &Accounts<'_>,
    currency: &str,
) -> sqlx::Result<Lifetime> {
    let mut query = QueryBuilder::new(
        "SELECT count(DISTINCT account_id) AS customers, count(*) AS orders, coalesce(sum(total), 0) AS revenue \
         FROM orders WHERE tenant_id = ",
    );
    query.push_bind(a.selection.tenant);
    query
        .push(" AND currency = ")
        .push_bind(currency.to_owned());
    a.push_in(&mut query);
    query.build_query_as().fetch_one(tx).await
}

/// The accounts with the most revenue in `currency`: (account, orders,
/// revenue), at most `limit`.
pub async fn top_lifetime(
    tx: &mut PgConnection,
    a: &Accounts<'_>,
    currency: &str,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, i64, Decimal)>> {
    let mut query =
        QueryBuilder::new("SELECT account_id, count(*), sum(total) FROM orders WHERE tenant_id = ");
    query.push_bind(a.selection.tenant);
    query
        .push(" AND currency = ")
        .push_bind(currency.to_owned());
    a.push_in(&mut query);
    query.push(" GROUP BY account_id ORDER BY 3 DESC, account_id LIMIT ");
    query.push_bind(limit);
    query.build_query_as().fetch_all(tx).await
}

/// The currency most of the tenant's orders are in.
pub async fn usual_currency(tx: &mut PgConnection, tenant: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT currency FROM orders WHERE tenant_id = $1 GROUP BY currency ORDER BY count(*) DESC, currency LIMIT 1",
    )
    .bind(tenant)
    .fetch_optional(tx)
    .await
}

/// Accounts per churn level (the number in text).
pub async fn churn_levels(
    tx: &mut PgConnection,
    a: &Accounts<'_>,
) -> sqlx::Result<Vec<(i16, i64)>> {
    let mut query = QueryBuilder::new("SELECT level, count(*) FROM churn_risks WHERE tenant_id = ");
    query.push_bind(a.selection.tenant);
    a.push_in(&mut query);
    query.push(" GROUP BY 1 ORDER BY 1");
    query.build_query_as().fetch_all(tx).await
}

#[derive(sqlx::FromRow)]
pub struct StoredRisk {
    pub account_id: Uuid,
    pub score: i32,
    pub level: i16,
    pub reasons: Vec<String>,
    pub computed_at: DateTime<Utc>,
}

/// The riskiest accounts (medium and high), highest score first.
pub async fn at_risk(
    tx: &mut PgConnection,
    a: &Accounts<'_>,
    limit: i64,
) -> sqlx::Result<Vec<StoredRisk>> {
    let mut query = QueryBuilder::new(
        "SELECT account_id, score, level, reasons, computed_at FROM churn_risks WHERE level >= 2 AND tenant_id = ",
    );
    query.push_bind(a.selection.tenant);
    a.push_in(&mut query);
    query.push(" ORDER BY score DESC, account_id LIMIT ");
    query.push_bind(limit);
    query.build_query_as().fetch_all(tx).await
}

/// One account, if the caller's scope sees it.
pub async fn visible(
    tx: &mut PgConnection,
    s: &Selection<'_>,
    account: Uuid,
) -> sqlx::Result<bool> {
    let mut query = QueryBuilder::new("SELECT count(*)");
    s.push_from(&mut query, "accounts");
    query.push(" AND id = ").push_bind(account);
    let found: i64 = query.build_query_scalar().fetch_one(tx).await?;
    Ok(found > 0)
}
