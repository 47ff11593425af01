//! The service desk's tickets as projected, and the service dashboard's
//! figures over them.

use chrono::{DateTime, Utc};
use crm_proto::crm::servicedesk::v1::{Ticket, TicketAssigned};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{id, time, within, Selection};
use crate::domain::{Period, AGE_BUCKETS};

/// The version a ticket carried whole is at (0 when it says none).
fn version_of(t: &Ticket) -> i64 {
    t.audit.as_ref().map_or(0, |a| a.version)
}

/// A ticket as the source has it now (a backfill): inserted, or written
/// over the stored copy unless that is newer.
pub async fn snapshot(tx: &mut PgConnection, tenant: Uuid, t: &Ticket) -> sqlx::Result<()> {
    let Some(ticket) = id(&t.id) else {
        return Ok(());
    };
    let Some(created_at) = time(t.audit.as_ref().and_then(|a| a.created_at.as_ref())) else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO tickets (tenant_id, id, number, type, channel, priority, status, owner_id, team_id, account_id, \
         created_at, first_response_at, solved_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET type = EXCLUDED.type, channel = EXCLUDED.channel, priority = EXCLUDED.priority, \
         status = EXCLUDED.status, owner_id = EXCLUDED.owner_id, team_id = EXCLUDED.team_id, account_id = EXCLUDED.account_id, \
         first_response_at = coalesce(tickets.first_response_at, EXCLUDED.first_response_at), \
         solved_at = coalesce(EXCLUDED.solved_at, tickets.solved_at), version = EXCLUDED.version \
         WHERE tickets.version <= EXCLUDED.version",
    )
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
    .bind(time(t.first_responded_at.as_ref()))
    .bind(time(t.solved_at.as_ref()))
    .bind(version_of(t))
    .execute(tx)
    .await?;
    Ok(())
}

/// A ticket as created; a redelivered creation changes nothing.
pub async fn created(
    tx: &mut PgConnection,
    tenant: Uuid,
    t: &Ticket,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let Some(ticket) = id(&t.id) else {
        return Ok(());
    };
    let created_at = time(t.audit.as_ref().and_then(|a| a.created_at.as_ref())).unwrap_or(at);
    sqlx::query(
        "INSERT INTO tickets (tenant_id, id, number, type, channel, priority, status, owner_id, team_id, account_id, created_at, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (tenant_id, id) DO NOTHING",
    )
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

/// The dashboard's single figures.
#[derive(sqlx::FromRow)]
pub struct Figures {
    pub created: i64,
    pub solved: i64,
    pub backlog: i64,
    pub median_first_response: Option<f64>,
    pub median_resolution: Option<f64>,
    pub csat_responses: i64,
    pub csat_average: Option<String>,
}

/// Neither solved nor closed (the statuses' numbers in the source's
/// contract).
const OPEN: &str = "status NOT IN (6, 7)";

pub async fn figures(tx: &mut PgConnection, s: &Selection<'_>, p: Period) -> sqlx::Result<Figures> {
    let mut query = QueryBuilder::new("SELECT count(*) FILTER (WHERE ");
    within(&mut query, "created_at", p);
    query.push(") AS created, count(*) FILTER (WHERE ");
    within(&mut query, "solved_at", p);
    query.push(format!(
        ") AS solved, count(*) FILTER (WHERE {OPEN}) AS backlog, "
    ));
    query.push(
        "(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_response_at - created_at)) \
         FILTER (WHERE first_response_at IS NOT NULL AND ",
    );
    within(&mut query, "created_at", p);
    query.push(
        "))::float8 AS median_first_response, \
         (percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM solved_at - created_at)) FILTER (WHERE ",
    );
    within(&mut query, "solved_at", p);
    query.push("))::float8 AS median_resolution, count(csat_score) FILTER (WHERE ");
    within(&mut query, "solved_at", p);
    query.push(") AS csat_responses, round(avg(csat_score) FILTER (WHERE ");
    within(&mut query, "solved_at", p);
    query.push("), 2)::text AS csat_average");
    s.push_from(&mut query, "tickets");
    query.build_query_as().fetch_one(tx).await
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
    let mut query = QueryBuilder::new(format!("SELECT {column}, count(*)"));
    s.push_from(&mut query, "tickets");
    query.push(" AND ");
    within(&mut query, "created_at", p);
    query.push(format!(
        " GROUP BY {column} ORDER BY count(*) DESC, {column}"
    ));
    query.build_query_as().fetch_all(tx).await
}

/// Open tickets by how long they have been open at `now`, one count per
/// [`AGE_BUCKETS`] entry in its order.
pub async fn backlog_by_age(
    tx: &mut PgConnection,
    s: &Selection<'_>,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<(String, i64)>> {
    // The bounds are this module's constants, not input.
    let mut bucket = String::from("CASE");
    for (i, (_, days)) in AGE_BUCKETS.iter().enumerate() {
        if *days == i64::MAX {
            bucket.push_str(&format!(" ELSE {i}"));
        } else {
            bucket.push_str(&format!(" WHEN age < interval '{days} days' THEN {i}"));
        }
    }
    let mut query = QueryBuilder::new(format!(
        "SELECT ({bucket} END)::int4 AS bucket, count(*) FROM (SELECT "
    ));
    query.push_bind(now).push(" - created_at AS age");
    s.push_from(&mut query, "tickets");
    query.push(format!(" AND {OPEN}) open GROUP BY bucket"));
    let rows: Vec<(i32, i64)> = query.build_query_as().fetch_all(tx).await?;
    Ok(AGE_BUCKETS
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let count = rows
                .iter()
                .find(|(bucket, _)| usize::try_from(*bucket).ok() == Some(i))
                .map_or(0, |(_, count)| *count);
            ((*name).to_owned(), count)
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

/// ` AND ticket_id IN (<the selection's tickets>)`.
fn push_visible_tickets(query: &mut QueryBuilder<'_, Postgres>, s: &Selection<'_>) {
    query.push(" AND ticket_id IN (SELECT id");
    s.push_from(query, "tickets");
    query.push(")");
}

/// Tickets solved in the period, and those of them that breached no SLA
/// target.
pub async fn compliance(
    tx: &mut PgConnection,
    s: &Selection<'_>,
    p: Period,
) -> sqlx::Result<(i64, i64)> {
    let mut query = QueryBuilder::new(
        "SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM sla_breaches b WHERE b.tenant_id = tickets.tenant_id AND b.ticket_id = tickets.id))",
    );
    s.push_from(&mut query, "tickets");
    query.push(" AND ");
    within(&mut query, "solved_at", p);
    query.build_query_as().fetch_one(tx).await
}

/// Breaches in the period by metric (the source's number).
pub async fn breaches_by_metric(
    tx: &mut PgConnection,
    s: &Selection<'_>,
    p: Period,
) -> sqlx::Result<Vec<(i16, i64)>> {
    let mut query =
        QueryBuilder::new("SELECT metric, count(*) FROM sla_breaches WHERE tenant_id = ");
    query.push_bind(s.tenant);
    push_visible_tickets(&mut query, s);
    query.push(" AND ");
    within(&mut query, "breached_at", p);
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
    let mut query = QueryBuilder::new(
        "SELECT week, count(*) FILTER (WHERE what = 'created') AS created, count(*) FILTER (WHERE what = 'solved') AS solved, \
         count(csat_score) FILTER (WHERE what = 'solved') AS csat_responses, \
         round(avg(csat_score) FILTER (WHERE what = 'solved'), 2)::text AS csat_average FROM (\
         SELECT to_char(date_trunc('week', created_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS week, 'created' AS what, NULL::smallint AS csat_score",
    );
    s.push_from(&mut query, "tickets");
    query.push(" AND ");
    within(&mut query, "created_at", p);
    query.push(
        " UNION ALL SELECT to_char(date_trunc('week', solved_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD'), 'solved', csat_score",
    );
    s.push_from(&mut query, "tickets");
    query.push(" AND ");
    within(&mut query, "solved_at", p);
    query.push(") happened GROUP BY week ORDER BY week");
    query.build_query_as().fetch_all(tx).await
}

/// One assignee's figures over the period.
#[derive(sqlx::FromRow, Debug)]
pub struct Agent {
    pub owner_id: Uuid,
    pub solved: i64,
    pub median_first_response: Option<f64>,
    pub median_resolution: Option<f64>,
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
    let mut query = QueryBuilder::new("SELECT owner_id, count(*) FILTER (WHERE ");
    within(&mut query, "solved_at", p);
    query.push(
        ") AS solved, (percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_response_at - created_at)) \
         FILTER (WHERE first_response_at IS NOT NULL AND ",
    );
    within(&mut query, "created_at", p);
    query.push(
        "))::float8 AS median_first_response, \
         (percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM solved_at - created_at)) FILTER (WHERE ",
    );
    within(&mut query, "solved_at", p);
    query.push("))::float8 AS median_resolution, count(csat_score) FILTER (WHERE ");
    within(&mut query, "solved_at", p);
    query.push(") AS csat_responses, round(avg(csat_score) FILTER (WHERE ");
    within(&mut query, "solved_at", p);
    query.push(
        "), 2)::text AS csat_average, (SELECT count(*) FROM sla_breaches b JOIN tickets t ON t.tenant_id = b.tenant_id AND t.id = b.ticket_id \
         WHERE b.tenant_id = ",
    );
    query.push_bind(s.tenant);
    query
        .push(" AND t.owner_id = g.owner_id AND b.breached_at >= ")
        .push_bind(p.from);
    query.push(" AND b.breached_at < ").push_bind(p.to);
    query.push(") AS breaches FROM (SELECT *");
    s.push_from(&mut query, "tickets");
    query.push(" AND owner_id IS NOT NULL) g GROUP BY owner_id HAVING count(*) FILTER (WHERE ");
    within(&mut query, "solved_at", p);
    query.push(") > 0 OR count(*) FILTER (WHERE ");
    within(&mut query, "created_at", p);
    query
        .push(") > 0 ORDER BY 2 DESC, owner_id LIMIT ")
        .push_bind(AGENT_LIMIT);
    query.build_query_as().fetch_all(tx).await
}
