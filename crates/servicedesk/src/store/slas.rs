//! Business calendars, SLA policies, the clocks of tickets' targets and
//! the scanner's alarms.

use chrono::{DateTime, Utc};
use crm_proto::crm::servicedesk::v1::{
    BusinessCalendar, Escalation, SlaMetric, SlaPolicy, WorkingHours,
};
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{audit, checked_id, id_text};
use crate::domain::calendar::{Calendar, Hours};
use crate::domain::sla::SlaClock;

// ---- calendars

const CALENDAR_COLUMNS: &str =
    "id, name, time_zone, hours, holidays, created_at, created_by, updated_at, updated_by, version";

#[derive(sqlx::FromRow)]
struct CalendarRow {
    id: Uuid,
    name: String,
    time_zone: String,
    hours: Json<Vec<WorkingHours>>,
    holidays: Vec<String>,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

impl From<CalendarRow> for BusinessCalendar {
    fn from(r: CalendarRow) -> Self {
        BusinessCalendar {
            id: r.id.to_string(),
            name: r.name,
            time_zone: r.time_zone,
            hours: r.hours.0,
            holidays: r.holidays,
            audit: audit(
                r.created_at,
                r.created_by,
                r.updated_at,
                r.updated_by,
                r.version,
            ),
        }
    }
}

pub async fn insert_calendar(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    c: &BusinessCalendar,
    actor: &str,
) -> sqlx::Result<BusinessCalendar> {
    let row: CalendarRow = sqlx::query_as(&format!(
        "INSERT INTO business_calendars (tenant_id, id, name, time_zone, hours, holidays, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {CALENDAR_COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&c.name)
    .bind(&c.time_zone)
    .bind(Json(&c.hours))
    .bind(&c.holidays)
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

pub async fn update_calendar(
    tx: &mut PgConnection,
    tenant: Uuid,
    c: &BusinessCalendar,
    actor: &str,
) -> sqlx::Result<BusinessCalendar> {
    let row: CalendarRow = sqlx::query_as(&format!(
        "UPDATE business_calendars SET name = $3, time_zone = $4, hours = $5, holidays = $6, \
         updated_at = now(), updated_by = $7, version = version + 1 \
         WHERE tenant_id = $1 AND id = $2 RETURNING {CALENDAR_COLUMNS}"
    ))
    .bind(tenant)
    .bind(checked_id(&c.id))
    .bind(&c.name)
    .bind(&c.time_zone)
    .bind(Json(&c.hours))
    .bind(&c.holidays)
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

pub async fn find_calendar(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<BusinessCalendar>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row: Option<CalendarRow> = sqlx::query_as(&format!(
        "SELECT {CALENDAR_COLUMNS} FROM business_calendars WHERE tenant_id = $1 AND id = $2{lock}"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(BusinessCalendar::from))
}

/// By name, then id.
pub async fn list_calendars(
    tx: &mut PgConnection,
    tenant: Uuid,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<BusinessCalendar>> {
    let rows: Vec<CalendarRow> = super::list_by_name(
        tx,
        "business_calendars",
        CALENDAR_COLUMNS,
        tenant,
        after,
        limit,
    )
    .await?;
    Ok(rows.into_iter().map(BusinessCalendar::from).collect())
}

/// The hours a clock on `calendar` counts (around the clock when none).
pub async fn hours(
    tx: &mut PgConnection,
    tenant: Uuid,
    calendar: Option<Uuid>,
) -> sqlx::Result<Hours> {
    let Some(id) = calendar else {
        return Ok(Hours::Always);
    };
    let found = find_calendar(tx, tenant, id, false).await?;
    Ok(found
        .and_then(|c| Calendar::new(&c.time_zone, &c.hours, &c.holidays))
        .map_or(Hours::Always, Hours::Calendar))
}

// ---- policies

const POLICY_COLUMNS: &str = "id, name, position, active, priorities, types, channels, group_ids, tags, calendar_id, first_response_minutes, next_response_minutes, resolution_minutes, warning_percent, escalations, account_tags, account_field, account_field_values, created_at, created_by, updated_at, updated_by, version";

#[derive(sqlx::FromRow)]
struct PolicyRow {
    id: Uuid,
    name: String,
    position: i32,
    active: bool,
    priorities: Vec<i16>,
    types: Vec<i16>,
    channels: Vec<i16>,
    group_ids: Vec<Uuid>,
    tags: Vec<String>,
    calendar_id: Option<Uuid>,
    first_response_minutes: i32,
    next_response_minutes: i32,
    resolution_minutes: i32,
    warning_percent: i32,
    escalations: Json<Vec<Escalation>>,
    account_tags: Vec<String>,
    account_field: String,
    account_field_values: Vec<String>,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

fn widen(values: Vec<i16>) -> Vec<i32> {
    values.into_iter().map(i32::from).collect()
}

fn narrow(values: &[i32]) -> Vec<i16> {
    values.iter().map(|v| *v as i16).collect()
}

fn ids(values: &[String]) -> Vec<Uuid> {
    values.iter().filter_map(|v| checked_id(v)).collect()
}

impl From<PolicyRow> for SlaPolicy {
    fn from(r: PolicyRow) -> Self {
        SlaPolicy {
            id: r.id.to_string(),
            name: r.name,
            position: r.position,
            active: r.active,
            priorities: widen(r.priorities),
            types: widen(r.types),
            channels: widen(r.channels),
            group_ids: r.group_ids.iter().map(Uuid::to_string).collect(),
            tags: r.tags,
            calendar_id: id_text(r.calendar_id),
            first_response_minutes: r.first_response_minutes,
            next_response_minutes: r.next_response_minutes,
            resolution_minutes: r.resolution_minutes,
            warning_percent: r.warning_percent,
            escalations: r.escalations.0,
            account_tags: r.account_tags,
            account_field: r.account_field,
            account_field_values: r.account_field_values,
            audit: audit(
                r.created_at,
                r.created_by,
                r.updated_at,
                r.updated_by,
                r.version,
            ),
        }
    }
}

/// Inserts a new policy (`id` given) or rewrites one (`id` of `p`).
pub async fn save_policy(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    p: &SlaPolicy,
    actor: &str,
) -> sqlx::Result<SlaPolicy> {
    let row: PolicyRow = sqlx::query_as(&format!(
        "INSERT INTO sla_policies (tenant_id, id, name, position, active, priorities, types, channels, group_ids, tags, calendar_id, \
         first_response_minutes, next_response_minutes, resolution_minutes, warning_percent, escalations, created_by, updated_by, \
         account_tags, account_field, account_field_values) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17, $18, $19, $20) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET name = $3, position = $4, active = $5, priorities = $6, types = $7, \
         channels = $8, group_ids = $9, tags = $10, calendar_id = $11, first_response_minutes = $12, \
         next_response_minutes = $13, resolution_minutes = $14, warning_percent = $15, escalations = $16, \
         account_tags = $18, account_field = $19, account_field_values = $20, \
         updated_at = now(), updated_by = $17, version = sla_policies.version + 1 \
         RETURNING {POLICY_COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&p.name)
    .bind(p.position)
    .bind(p.active)
    .bind(narrow(&p.priorities))
    .bind(narrow(&p.types))
    .bind(narrow(&p.channels))
    .bind(ids(&p.group_ids))
    .bind(&p.tags)
    .bind(checked_id(&p.calendar_id))
    .bind(p.first_response_minutes)
    .bind(p.next_response_minutes)
    .bind(p.resolution_minutes)
    .bind(p.warning_percent)
    .bind(Json(&p.escalations))
    .bind(actor)
    .bind(&p.account_tags)
    .bind(&p.account_field)
    .bind(&p.account_field_values)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

pub async fn find_policy(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<SlaPolicy>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row: Option<PolicyRow> = sqlx::query_as(&format!(
        "SELECT {POLICY_COLUMNS} FROM sla_policies WHERE tenant_id = $1 AND id = $2{lock}"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(SlaPolicy::from))
}

/// In the order policies are tried: position, then id.
pub async fn list_policies(
    tx: &mut PgConnection,
    tenant: Uuid,
    active_only: bool,
    after: Option<(i32, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<SlaPolicy>> {
    let (position, id) = after.unzip();
    let rows: Vec<PolicyRow> = sqlx::query_as(&format!(
        "SELECT {POLICY_COLUMNS} FROM sla_policies WHERE tenant_id = $1 AND (active OR NOT $2) \
         AND ($3::integer IS NULL OR (position, id) > ($3, $4)) ORDER BY position, id LIMIT $5"
    ))
    .bind(tenant)
    .bind(active_only)
    .bind(position)
    .bind(id)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(SlaPolicy::from).collect())
}

// ---- clocks

#[derive(sqlx::FromRow)]
struct ClockRow {
    metric: i16,
    policy_id: Uuid,
    calendar_id: Option<Uuid>,
    target: i64,
    warn_after: i64,
    elapsed: i64,
    running_since: Option<DateTime<Utc>>,
    warned_at: Option<DateTime<Utc>>,
    breached_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
}

impl From<ClockRow> for SlaClock {
    fn from(r: ClockRow) -> Self {
        SlaClock {
            metric: SlaMetric::try_from(i32::from(r.metric)).unwrap_or_default(),
            policy_id: r.policy_id,
            calendar_id: r.calendar_id,
            target: r.target,
            warn_after: r.warn_after,
            elapsed: r.elapsed,
            running_since: r.running_since,
            warned_at: r.warned_at,
            breached_at: r.breached_at,
            completed_at: r.completed_at,
        }
    }
}

/// A ticket's clocks, by metric.
pub async fn clocks(
    tx: &mut PgConnection,
    tenant: Uuid,
    ticket: Uuid,
) -> sqlx::Result<Vec<SlaClock>> {
    let rows: Vec<ClockRow> = sqlx::query_as(
        "SELECT metric, policy_id, calendar_id, target, warn_after, elapsed, running_since, warned_at, breached_at, completed_at \
         FROM ticket_slas WHERE tenant_id = $1 AND ticket_id = $2 ORDER BY metric",
    )
    .bind(tenant)
    .bind(ticket)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(SlaClock::from).collect())
}

/// Writes a ticket's clocks and their alarms; clocks not in `clocks` are
/// removed (a target the new policy does not set).
pub async fn save_clocks(
    tx: &mut PgConnection,
    tenant: Uuid,
    ticket: Uuid,
    clocks: &[(SlaClock, Option<DateTime<Utc>>)],
) -> sqlx::Result<()> {
    let metrics: Vec<i16> = clocks.iter().map(|(c, _)| c.metric as i16).collect();
    sqlx::query("DELETE FROM ticket_slas WHERE tenant_id = $1 AND ticket_id = $2 AND NOT (metric = ANY($3))")
        .bind(tenant)
        .bind(ticket)
        .bind(&metrics)
        .execute(&mut *tx)
        .await?;
    for (c, _) in clocks {
        sqlx::query(
            "INSERT INTO ticket_slas (tenant_id, ticket_id, metric, policy_id, calendar_id, target, warn_after, elapsed, running_since, warned_at, breached_at, completed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (tenant_id, ticket_id, metric) DO UPDATE SET policy_id = $4, calendar_id = $5, target = $6, \
             warn_after = $7, elapsed = $8, running_since = $9, warned_at = $10, breached_at = $11, completed_at = $12",
        )
        .bind(tenant)
        .bind(ticket)
        .bind(c.metric as i16)
        .bind(c.policy_id)
        .bind(c.calendar_id)
        .bind(c.target)
        .bind(c.warn_after)
        .bind(c.elapsed)
        .bind(c.running_since)
        .bind(c.warned_at)
        .bind(c.breached_at)
        .bind(c.completed_at)
        .execute(&mut *tx)
        .await?;
    }
    let (alarm_metrics, alarm_times): (Vec<i16>, Vec<DateTime<Utc>>) = clocks
        .iter()
        .filter_map(|(c, alarm)| alarm.map(|at| (c.metric as i16, at)))
        .unzip();
    sqlx::query(
        "DELETE FROM sla_alarms WHERE tenant_id = $1 AND ticket_id = $2 AND NOT (metric = ANY($3))",
    )
    .bind(tenant)
    .bind(ticket)
    .bind(&alarm_metrics)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO sla_alarms (tenant_id, ticket_id, metric, fire_at) \
         SELECT $1, $2, metric, fire_at FROM unnest($3::smallint[], $4::timestamptz[]) AS a(metric, fire_at) \
         ON CONFLICT (tenant_id, ticket_id, metric) DO UPDATE SET fire_at = EXCLUDED.fire_at",
    )
    .bind(tenant)
    .bind(ticket)
    .bind(&alarm_metrics)
    .bind(&alarm_times)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Tickets with an alarm due by `now`, locked (others skip them).
pub async fn lock_due_alarms(
    tx: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
    sqlx::query_as(
        "SELECT tenant_id, ticket_id FROM sla_alarms WHERE fire_at <= $1 \
         ORDER BY fire_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(tx)
    .await
}
