//! The service desk's tickets as projected, and the service dashboard's
//! figures over them.

use chrono::{DateTime, Duration, Utc};
use crm_proto::crm::servicedesk::v1::{Ticket, TicketAssigned};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::{day_start, id, time, within, Days, Rolled, Selection};
use crate::domain::{Period, AGE_BUCKETS};

/// The version a ticket carried whole is at (0 when it says none).
fn version_of(t: &Ticket) -> i64 {
    t.audit.as_ref().map_or(0, |a| a.version)
}

/// Whether the ticket `$2` breached a target already (a breach may be
/// projected before the ticket it is about).
const BREACHED: &str =
    "EXISTS (SELECT 1 FROM sla_breaches WHERE tenant_id = $1 AND ticket_id = $2)";

/// A ticket as the source has it now (a backfill): inserted, or written
/// over the stored copy unless that is newer.
pub async fn snapshot(tx: &mut PgConnection, tenant: Uuid, t: &Ticket) -> sqlx::Result<()> {
    let Some(created_at) = time(t.audit.as_ref().and_then(|a| a.created_at.as_ref())) else {
        return Ok(());
    };
    let times = (
        time(t.first_responded_at.as_ref()),
        time(t.solved_at.as_ref()),
    );
    insert(
        tx,
        tenant,
        t,
        created_at,
        times,
        "DO UPDATE SET type = EXCLUDED.type, channel = EXCLUDED.channel, priority = EXCLUDED.priority, \
         status = EXCLUDED.status, owner_id = EXCLUDED.owner_id, team_id = EXCLUDED.team_id, account_id = EXCLUDED.account_id, \
         first_response_at = coalesce(tickets.first_response_at, EXCLUDED.first_response_at), \
         solved_at = coalesce(EXCLUDED.solved_at, tickets.solved_at), version = EXCLUDED.version \
         WHERE tickets.version <= EXCLUDED.version",
    )
    .await
}

/// A ticket as created; a redelivered creation changes nothing.
pub async fn created(
    tx: &mut PgConnection,
    tenant: Uuid,
    t: &Ticket,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let created_at = time(t.audit.as_ref().and_then(|a| a.created_at.as_ref())).unwrap_or(at);
    insert(tx, tenant, t, created_at, (None, None), "DO NOTHING").await
}

/// Inserts the ticket (first responded and solved at `times`), doing
/// `on_conflict` (this module's SQL) when it is known.
async fn insert(
    tx: &mut PgConnection,
    tenant: Uuid,
    t: &Ticket,
    created_at: DateTime<Utc>,
    (first_response_at, solved_at): (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    on_conflict: &str,
) -> sqlx::Result<()> {
    let Some(ticket) = id(&t.id) else {
        return Ok(());
    };
    sqlx::query(&format!(
        "INSERT INTO tickets (tenant_id, id, number, type, channel, priority, status, owner_id, team_id, account_id, \
         created_at, first_response_at, solved_at, version, breached) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, {BREACHED}) \
         ON CONFLICT (tenant_id, id) {on_conflict}"
    ))
    .bind(tenant)
    .bind(ticket)
    .bind(t.number)
    .bind(t.r#type as i16)
    .bind(t.channel as i16)
    .bind(t.priority as i16)
    .bind(t.status as i16)
    .bind(id(&t.assignee_id))
    .bind(id(&t.group_id))
    .bind(id(&t.account_id))
    .bind(created_at)
    .bind(first_response_at)
    .bind(solved_at)
    .bind(version_of(t))
    .execute(tx)
    .await?;
    Ok(())
}

/// The fields a ticket event carries whole, and when it was solved if the
/// event is a solution (a reopened ticket solved again counts in the period
/// of its last solution); a copy older than the stored one changes nothing.
pub async fn updated(
    tx: &mut PgConnection,
    tenant: Uuid,
    t: &Ticket,
    solved_at: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE tickets SET type = $3, channel = $4, priority = $5, status = $6, owner_id = $7, team_id = $8, account_id = $9, \
         solved_at = coalesce($10, solved_at), version = $11 WHERE tenant_id = $1 AND id = $2 AND version <= $11",
    )
    .bind(tenant)
    .bind(id(&t.id))
    .bind(t.r#type as i16)
    .bind(t.channel as i16)
    .bind(t.priority as i16)
    .bind(t.status as i16)
    .bind(id(&t.assignee_id))
    .bind(id(&t.group_id))
    .bind(id(&t.account_id))
    .bind(solved_at)
    .bind(version_of(t))
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn assigned(tx: &mut PgConnection, tenant: Uuid, a: &TicketAssigned) -> sqlx::Result<()> {
    sqlx::query("UPDATE tickets SET owner_id = $3, team_id = $4 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id(&a.ticket_id))
        .bind(id(&a.assignee_id))
        .bind(id(&a.group_id))
        .execute(tx)
        .await?;
    Ok(())
}

pub async fn status(
    tx: &mut PgConnection,
    tenant: Uuid,
    ticket: &str,
    status: i32,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE tickets SET status = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id(ticket))
        .bind(status as i16)
        .execute(tx)
        .await?;
    Ok(())
}

pub async fn first_response(
    tx: &mut PgConnection,
    tenant: Uuid,
    ticket: &str,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE tickets SET first_response_at = $3 WHERE tenant_id = $1 AND id = $2 AND first_response_at IS NULL",
    )
    .bind(tenant)
    .bind(id(ticket))
    .bind(at)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn rated(
    tx: &mut PgConnection,
    tenant: Uuid,
    ticket: &str,
    score: i32,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE tickets SET csat_score = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id(ticket))
        .bind(score as i16)
        .execute(tx)
        .await?;
    Ok(())
}

/// The dashboard's single counts.
#[derive(sqlx::FromRow)]
pub struct Figures {
    pub created: i64,
    pub solved: i64,
    pub backlog: i64,
    pub csat_responses: i64,
    pub csat_average: Option<String>,
}

/// Neither solved nor closed (the statuses' numbers in the source's
/// contract).
const OPEN: &str = "status NOT IN (6, 7)";

/// `round(<scores> / <answers>, 2)::text`: an average satisfaction.
const CSAT_AVERAGE: &str =
    "round(sum(csat_sum)::numeric / nullif(sum(csat_responses), 0), 2)::text";

/// ` FROM (...) created`: the tickets created in the period as rows of
/// `ticket_created_days`, the whole days from the rollup and the partial
/// days at the period's ends from the tickets themselves.
fn push_created(query: &mut QueryBuilder<'_, Postgres>, s: &Selection<'_>, p: Period) {
    let from = |query: &mut QueryBuilder<'_, Postgres>, table: &str| s.push_from(query, table);
    let rolled = Rolled {
        rollup: "ticket_created_days",
        columns: "day, owner_id, channel, type, tickets",
        rows: "tickets",
        row_columns: "(created_at AT TIME ZONE 'UTC')::date, owner_id, channel, type, 1",
        condition: "",
        time: "created_at",
        alias: "created",
    };
    Days::of(p).push_rolled(query, from, rolled);
}

/// ` FROM (...) solved`: the tickets solved in the period as rows of
/// `ticket_solved_days`, as [`push_created`] reads created ones.
fn push_solved(query: &mut QueryBuilder<'_, Postgres>, s: &Selection<'_>, p: Period) {
    let from = |query: &mut QueryBuilder<'_, Postgres>, table: &str| s.push_from(query, table);
    let rolled = Rolled {
        rollup: "ticket_solved_days",
        columns: "day, owner_id, breached, tickets, csat_responses, csat_sum",
        rows: "tickets",
        row_columns: "(solved_at AT TIME ZONE 'UTC')::date, owner_id, breached, 1, \
             (csat_score IS NOT NULL)::int::int8, coalesce(csat_score, 0)::int8",
        condition: "",
        time: "solved_at",
        alias: "solved",
    };
    Days::of(p).push_rolled(query, from, rolled);
}

/// ` FROM (...) happened`: per ticket created or solved in the period, its
/// owner, week and what happened (created, solved, satisfaction).
fn push_happened(query: &mut QueryBuilder<'_, Postgres>, s: &Selection<'_>, p: Period) {
    let week = "to_char(date_trunc('week', day::timestamp), 'YYYY-MM-DD')";
    query.push(format!(
        " FROM (SELECT owner_id, {week} AS week, tickets AS created, 0 AS solved, 0 AS csat_responses, 0 AS csat_sum"
    ));
    push_created(query, s, p);
    query.push(format!(
        " UNION ALL SELECT owner_id, {week}, 0, tickets, csat_responses, csat_sum"
    ));
    push_solved(query, s, p);
    query.push(") happened");
}

pub async fn figures(tx: &mut PgConnection, s: &Selection<'_>, p: Period) -> sqlx::Result<Figures> {
    let mut query = QueryBuilder::new("SELECT (SELECT coalesce(sum(tickets), 0)::int8");
    push_created(&mut query, s, p);
    query.push(") AS created, (SELECT coalesce(sum(tickets), 0)::int8");
    s.push_from(&mut query, "ticket_open_days");
    query.push(format!(
        ") AS backlog, solved, csat_responses, csat_average FROM (SELECT coalesce(sum(tickets), 0)::int8 AS solved, \
         coalesce(sum(csat_responses), 0)::int8 AS csat_responses, {CSAT_AVERAGE} AS csat_average"
    ));
    push_solved(&mut query, s, p);
    query.push(") solved_figures");
    query.build_query_as().fetch_one(tx).await
}

/// The median first response (of tickets created in the period) and
/// resolution (of tickets solved in it), in seconds, per assignee and
/// (`owner_id` none, `whole`) of all: read from the tickets, as a median
/// does not add up from rollups.
#[derive(sqlx::FromRow, Debug)]
pub struct Medians {
    pub owner_id: Option<Uuid>,
    pub whole: bool,
    pub first_response: Option<f64>,
    pub resolution: Option<f64>,
}

pub async fn medians(
    tx: &mut PgConnection,
    s: &Selection<'_>,
    p: Period,
) -> sqlx::Result<Vec<Medians>> {
    let mut query = QueryBuilder::new(
        "SELECT owner_id, grouping(owner_id) = 1 AS whole, \
         (percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_response_at - created_at)) \
         FILTER (WHERE first_response_at IS NOT NULL AND ",
    );
    within(&mut query, "created_at", p);
    query.push(
        "))::float8 AS first_response, \
         (percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM solved_at - created_at)) FILTER (WHERE ",
    );
    within(&mut query, "solved_at", p);
    query.push("))::float8 AS resolution");
    s.push_from(&mut query, "tickets");
    query.push(" AND ((");
    within(&mut query, "created_at", p);
    query.push(") OR (");
    within(&mut query, "solved_at", p);
    query.push(")) GROUP BY GROUPING SETS ((owner_id), ())");
    query.build_query_as().fetch_all(tx).await
}

/// The dimensions tickets are counted by: a closed set, never a name from
/// the request.
#[derive(Debug, Clone, Copy)]
pub enum Dimension {
    Channel,
    Type,
}

impl Dimension {
    fn column(self) -> &'static str {
        match self {
            Dimension::Channel => "channel",
            Dimension::Type => "type",
        }
    }
}

/// Tickets created in the period by a dimension, most first.
pub async fn created_by(
    tx: &mut PgConnection,
    s: &Selection<'_>,
    p: Period,
    dimension: Dimension,
) -> sqlx::Result<Vec<(i16, i64)>> {
    let column = dimension.column();
    let mut query = QueryBuilder::new(format!("SELECT {column}, sum(tickets)::int8"));
    push_created(&mut query, s, p);
    query.push(" GROUP BY 1 HAVING sum(tickets) > 0 ORDER BY 2 DESC, 1");
    query.build_query_as().fetch_all(tx).await
}

/// Open tickets by how long they have been open at `now`, one count per
/// [`AGE_BUCKETS`] entry in its order. A ticket is younger than a bound
/// when created after `now - bound`: the whole days after that day from
/// the rollup, the rest of that day from the tickets.
pub async fn backlog_by_age(
    tx: &mut PgConnection,
    s: &Selection<'_>,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<(String, i64)>> {
    let bounds: Vec<DateTime<Utc>> = AGE_BUCKETS
        .iter()
        .filter(|(_, days)| *days != i64::MAX)
        .map(|(_, days)| now - Duration::days(*days))
        .collect();
    let mut query = QueryBuilder::new("SELECT ");
    for (i, bound) in bounds.iter().enumerate() {
        let midnight = day_start(*bound) + Duration::days(1);
        query.push(if i == 0 { "" } else { ", " });
        query.push("(SELECT coalesce(sum(tickets), 0)::int8");
        s.push_from(&mut query, "ticket_open_days");
        query.push(" AND day > ").push_bind(bound.date_naive());
        query.push(") + (SELECT count(*)");
        s.push_from(&mut query, "tickets");
        query.push(format!(" AND {OPEN} AND created_at > "));
        query.push_bind(*bound);
        query.push(" AND created_at < ").push_bind(midnight);
        query.push(")");
    }
    query.push(", (SELECT coalesce(sum(tickets), 0)::int8");
    s.push_from(&mut query, "ticket_open_days");
    query.push(")");
    let row = query.build().fetch_one(tx).await?;
    // Younger than each bound, then all: each bucket is the difference.
    let mut younger = Vec::with_capacity(bounds.len() + 1);
    for i in 0..=bounds.len() {
        younger.push(row.try_get::<i64, _>(i)?);
    }
    Ok(AGE_BUCKETS
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let before = if i == 0 { 0 } else { younger[i - 1] };
            ((*name).to_owned(), younger[i] - before)
        })
        .collect())
}

/// A target the ticket breached at `at` (the source's SlaMetric).
pub async fn breached(
    tx: &mut PgConnection,
    tenant: Uuid,
    ticket: &str,
    metric: i32,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sla_breaches (tenant_id, ticket_id, metric, breached_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(id(ticket))
    .bind(metric as i16)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE tickets SET breached = true WHERE tenant_id = $1 AND id = $2 AND NOT breached",
    )
    .bind(tenant)
    .bind(id(ticket))
    .execute(tx)
    .await?;
    Ok(())
}

/// An NPS answer (one per person and survey).
pub async fn nps(
    tx: &mut PgConnection,
    tenant: Uuid,
    answer: &crm_proto::crm::servicedesk::v1::NpsReceived,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let (Some(survey), Some(contact)) = (id(&answer.survey_id), id(&answer.contact_id)) else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO nps_answers (tenant_id, survey_id, contact_id, account_id, score, answered_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (tenant_id, survey_id, contact_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(survey)
    .bind(contact)
    .bind(id(&answer.account_id))
    .bind(answer.score as i16)
    .bind(at)
    .execute(tx)
    .await?;
    Ok(())
}

/// Tickets solved in the period, and those of them that breached no SLA
/// target.
pub async fn compliance(
    tx: &mut PgConnection,
    s: &Selection<'_>,
    p: Period,
) -> sqlx::Result<(i64, i64)> {
    let mut query = QueryBuilder::new(
        "SELECT coalesce(sum(tickets), 0)::int8, coalesce(sum(tickets) FILTER (WHERE NOT breached), 0)::int8",
    );
    push_solved(&mut query, s, p);
    query.build_query_as().fetch_one(tx).await
}

/// ` FROM sla_breaches JOIN tickets WHERE` the selection's tickets' breaches
/// in the period.
fn push_breaches(query: &mut QueryBuilder<'_, Postgres>, s: &Selection<'_>, p: Period) {
    s.push_from(query, "sla_breaches JOIN tickets USING (tenant_id)");
    query.push(" AND tickets.id = sla_breaches.ticket_id AND ");
    within(query, "breached_at", p);
}

/// Breaches in the period by metric (the source's number).
pub async fn breaches_by_metric(
    tx: &mut PgConnection,
    s: &Selection<'_>,
    p: Period,
) -> sqlx::Result<Vec<(i16, i64)>> {
    let mut query = QueryBuilder::new("SELECT metric, count(*)");
    push_breaches(&mut query, s, p);
    query.push(" GROUP BY 1 ORDER BY 1");
    query.build_query_as().fetch_all(tx).await
}

/// NPS answers in the period about the accounts the selection sees, by
/// week when `weekly`: (week or "", answers, promoters, detractors).
pub async fn nps_answers(
    tx: &mut PgConnection,
    s: &Selection<'_>,
    p: Period,
    weekly: bool,
) -> sqlx::Result<Vec<(String, i64, i64, i64)>> {
    let week = if weekly {
        "to_char(date_trunc('week', answered_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')"
    } else {
        "''"
    };
    let mut query = QueryBuilder::new(format!(
        "SELECT {week} AS week, count(*), count(*) FILTER (WHERE score >= 9), count(*) FILTER (WHERE score <= 6) \
         FROM nps_answers WHERE tenant_id = "
    ));
    query.push_bind(s.tenant);
    query.push(" AND account_id IN (SELECT id");
    s.push_from(&mut query, "accounts");
    query.push(") AND ");
    within(&mut query, "answered_at", p);
    query.push(" GROUP BY 1 ORDER BY 1");
    query.build_query_as().fetch_all(tx).await
}

/// Per week (its Monday) of the period: tickets created, solved, and the
/// satisfaction answers about those solved (count, average).
#[derive(sqlx::FromRow, Debug)]
pub struct Week {
    pub week: String,
    pub created: i64,
    pub solved: i64,
    pub csat_responses: i64,
    pub csat_average: Option<String>,
}

pub async fn weeks(tx: &mut PgConnection, s: &Selection<'_>, p: Period) -> sqlx::Result<Vec<Week>> {
    let mut query = QueryBuilder::new(format!(
        "SELECT week, sum(created)::int8 AS created, sum(solved)::int8 AS solved, \
         sum(csat_responses)::int8 AS csat_responses, {CSAT_AVERAGE} AS csat_average"
    ));
    push_happened(&mut query, s, p);
    query.push(" GROUP BY week HAVING sum(created) > 0 OR sum(solved) > 0 ORDER BY week");
    query.build_query_as().fetch_all(tx).await
}

/// One assignee's counts over the period (medians: [`medians`]).
#[derive(sqlx::FromRow, Debug)]
pub struct Agent {
    pub owner_id: Uuid,
    pub solved: i64,
    pub csat_responses: i64,
    pub csat_average: Option<String>,
    pub breaches: i64,
}

/// The most agents one answer lists (the most solved first).
pub const AGENT_LIMIT: i64 = 200;

pub async fn agents(
    tx: &mut PgConnection,
    s: &Selection<'_>,
    p: Period,
) -> sqlx::Result<Vec<Agent>> {
    let mut query = QueryBuilder::new(format!(
        "SELECT owner_id, sum(solved)::int8 AS solved, sum(csat_responses)::int8 AS csat_responses, \
         {CSAT_AVERAGE} AS csat_average, (SELECT count(*)"
    ));
    let everyone = Selection {
        owner: None,
        team: None,
        ..*s
    };
    push_breaches(&mut query, &everyone, p);
    query.push(" AND tickets.owner_id = happened.owner_id) AS breaches");
    push_happened(&mut query, s, p);
    query.push(
        " WHERE owner_id IS NOT NULL GROUP BY owner_id HAVING sum(solved) > 0 OR sum(created) > 0 \
         ORDER BY 2 DESC, owner_id LIMIT ",
    );
    query.push_bind(AGENT_LIMIT);
    query.build_query_as().fetch_all(tx).await
}
