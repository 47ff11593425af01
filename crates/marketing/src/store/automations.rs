//! Automation rules, their runs, the queue runners claim runs from, the
//! date rules' schedule and the contacts' dates it looks up.

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use crm_proto::crm::marketing::v1::{
    AutomationRule, DateTrigger, RuleAction, RuleCondition, RuleRun, RuleStatus, RunStatus,
};
use kit::time::{to_optional_timestamp, to_timestamp};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use super::audit;

const COLUMNS: &str = "id, name, status, event_type, conditions, contact_path, actions, lead_path, date_trigger, created_at, created_by, updated_at, updated_by, version";

#[derive(sqlx::FromRow)]
struct RuleRow {
    id: Uuid,
    name: String,
    status: i16,
    event_type: String,
    conditions: sqlx::types::Json<Vec<RuleCondition>>,
    contact_path: String,
    actions: sqlx::types::Json<Vec<RuleAction>>,
    lead_path: String,
    date_trigger: Option<sqlx::types::Json<DateTrigger>>,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

impl From<RuleRow> for AutomationRule {
    fn from(r: RuleRow) -> Self {
        AutomationRule {
            id: r.id.to_string(),
            name: r.name,
            status: r.status.into(),
            event_type: r.event_type,
            conditions: r.conditions.0,
            contact_path: r.contact_path,
            actions: r.actions.0,
            lead_path: r.lead_path,
            date_trigger: r.date_trigger.map(|d| d.0),
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

pub async fn insert(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    r: &AutomationRule,
    actor: &str,
) -> sqlx::Result<AutomationRule> {
    let row: RuleRow = sqlx::query_as(&format!(
        "INSERT INTO automation_rules (tenant_id, id, name, status, event_type, conditions, contact_path, actions, lead_path, date_trigger, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&r.name)
    .bind(r.status as i16)
    .bind(&r.event_type)
    .bind(sqlx::types::Json(&r.conditions))
    .bind(&r.contact_path)
    .bind(sqlx::types::Json(&r.actions))
    .bind(&r.lead_path)
    .bind(r.date_trigger.as_ref().map(sqlx::types::Json))
    .bind(actor)
    .fetch_one(&mut *tx)
    .await?;
    if let Some(trigger) = &r.date_trigger {
        // The first firing is today's, at the rule's hour (at once when
        // that hour has passed).
        sqlx::query(
            "INSERT INTO rule_schedule (tenant_id, rule_id, fire_on, due_at) \
             SELECT $1, $2, d, (d + make_interval(hours => $3)) AT TIME ZONE 'UTC' FROM (SELECT (now() AT TIME ZONE 'UTC')::date AS d) today",
        )
        .bind(tenant)
        .bind(id)
        .bind(trigger.hour)
        .execute(tx)
        .await?;
    }
    Ok(row.into())
}

pub async fn find(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<AutomationRule>> {
    let row: Option<RuleRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM automation_rules WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(AutomationRule::from))
}

/// Newest first.
pub async fn list(
    tx: &mut PgConnection,
    tenant: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<AutomationRule>> {
    let rows: Vec<RuleRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM automation_rules WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
    ))
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(AutomationRule::from).collect())
}

pub async fn set_status(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    status: RuleStatus,
    actor: &str,
) -> sqlx::Result<Option<AutomationRule>> {
    let row: Option<RuleRow> = sqlx::query_as(&format!(
        "UPDATE automation_rules SET status = $3, updated_at = now(), updated_by = $4, version = version + 1 \
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(status as i16)
    .bind(actor)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(AutomationRule::from))
}

/// The tenant's active rules triggered by `event_type`.
pub async fn triggered_by(
    tx: &mut PgConnection,
    tenant: Uuid,
    event_type: &str,
) -> sqlx::Result<Vec<AutomationRule>> {
    let rows: Vec<RuleRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM automation_rules WHERE tenant_id = $1 AND event_type = $2 AND status = $3 ORDER BY id"
    ))
    .bind(tenant)
    .bind(event_type)
    .bind(RuleStatus::Active as i16)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(AutomationRule::from).collect())
}

// ---- runs

/// One firing's action, as the trigger records it.
pub struct NewRun<'a> {
    pub rule: Uuid,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub occurred_at: DateTime<Utc>,
    pub contact: Option<Uuid>,
    pub lead: Option<Uuid>,
    pub index: i32,
    pub action: &'a RuleAction,
    /// The body a webhook action posts.
    pub payload: Option<&'a serde_json::Value>,
}

/// Records a run and queues it; nothing when this rule, event and action
/// already made one (a redelivery).
pub async fn insert_run(tx: &mut PgConnection, tenant: Uuid, run: &NewRun<'_>) -> sqlx::Result<()> {
    let id: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO rule_runs (tenant_id, id, rule_id, event_id, event_type, occurred_at, contact_id, action_index, action, status, lead_id, payload) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (tenant_id, rule_id, event_id, action_index) DO NOTHING RETURNING id",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(run.rule)
    .bind(run.event_id)
    .bind(run.event_type)
    .bind(run.occurred_at)
    .bind(run.contact)
    .bind(run.index)
    .bind(sqlx::types::Json(run.action))
    .bind(RunStatus::Pending as i16)
    .bind(run.lead)
    .bind(run.payload.map(sqlx::types::Json))
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(id) = id {
        sqlx::query(
            "INSERT INTO rule_run_queue (tenant_id, run_id, due_at) VALUES ($1, $2, now())",
        )
        .bind(tenant)
        .bind(id)
        .execute(tx)
        .await?;
    }
    Ok(())
}

/// A run to carry out.
#[derive(sqlx::FromRow)]
pub struct DueRun {
    pub id: Uuid,
    pub rule_id: Uuid,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub contact_id: Option<Uuid>,
    pub lead_id: Option<Uuid>,
    pub action: sqlx::types::Json<RuleAction>,
    pub payload: Option<sqlx::types::Json<serde_json::Value>>,
    pub attempts: i32,
}

/// Locks one due run of any tenant (SKIP LOCKED: each attempt on one pod)
/// until the transaction ends. Returns its tenant and id.
pub async fn lock_due(tx: &mut Transaction<'_, Postgres>) -> sqlx::Result<Option<(Uuid, Uuid)>> {
    sqlx::query_as(
        "SELECT tenant_id, run_id FROM rule_run_queue WHERE due_at <= now() ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .fetch_optional(&mut **tx)
    .await
}

pub async fn pending_run(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<DueRun>> {
    sqlx::query_as(
        "SELECT id, rule_id, event_type, occurred_at, contact_id, lead_id, action, payload, attempts FROM rule_runs WHERE tenant_id = $1 AND id = $2 AND status = $3",
    )
    .bind(tenant)
    .bind(id)
    .bind(RunStatus::Pending as i16)
    .fetch_optional(tx)
    .await
}

/// What became of one attempt.
pub enum Attempt {
    Done,
    Failed(String),
    RetryIn(String, Duration),
}

/// Records an attempt: done or failed for good (the run leaves the queue),
/// or retried later.
pub async fn record_attempt(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    attempt: &Attempt,
) -> sqlx::Result<()> {
    let (status, error, retry) = match attempt {
        Attempt::Done => (RunStatus::Done, "", None),
        Attempt::Failed(e) => (RunStatus::Failed, e.as_str(), None),
        Attempt::RetryIn(e, after) => (RunStatus::Pending, e.as_str(), Some(after.as_secs_f64())),
    };
    sqlx::query(
        "UPDATE rule_runs SET status = $3, error = $4, attempts = attempts + 1, \
         next_attempt_at = now() + make_interval(secs => $5), finished_at = CASE WHEN $5 IS NULL THEN now() END \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(status as i16)
    .bind(error)
    .bind(retry)
    .execute(&mut *tx)
    .await?;
    match retry {
        Some(secs) => sqlx::query(
            "UPDATE rule_run_queue SET due_at = now() + make_interval(secs => $3) WHERE tenant_id = $1 AND run_id = $2",
        )
        .bind(tenant)
        .bind(id)
        .bind(secs),
        None => sqlx::query("DELETE FROM rule_run_queue WHERE tenant_id = $1 AND run_id = $2")
            .bind(tenant)
            .bind(id),
    }
    .execute(tx)
    .await?;
    Ok(())
}

/// A queue row whose run is gone or over (erased, say).
pub async fn unqueue(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM rule_run_queue WHERE tenant_id = $1 AND run_id = $2")
        .bind(tenant)
        .bind(id)
        .execute(tx)
        .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct RunRow {
    id: Uuid,
    rule_id: Uuid,
    event_id: String,
    event_type: String,
    contact_id: Option<Uuid>,
    lead_id: Option<Uuid>,
    action_index: i32,
    action: sqlx::types::Json<RuleAction>,
    status: i16,
    attempts: i32,
    error: String,
    next_attempt_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

/// A rule's runs, newest first.
pub async fn list_runs(
    tx: &mut PgConnection,
    tenant: Uuid,
    rule: Uuid,
    status: Option<i16>,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<RuleRun>> {
    let rows: Vec<RunRow> = sqlx::query_as(
        "SELECT id, rule_id, event_id, event_type, contact_id, lead_id, action_index, action, status, attempts, error, next_attempt_at, finished_at, created_at \
         FROM rule_runs WHERE tenant_id = $1 AND rule_id = $2 AND ($3::smallint IS NULL OR status = $3) AND ($4::uuid IS NULL OR id < $4) \
         ORDER BY id DESC LIMIT $5",
    )
    .bind(tenant)
    .bind(rule)
    .bind(status)
    .bind(after)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| RuleRun {
            id: r.id.to_string(),
            rule_id: r.rule_id.to_string(),
            event_id: r.event_id,
            event_type: r.event_type,
            contact_id: r.contact_id.map(|c| c.to_string()).unwrap_or_default(),
            lead_id: r.lead_id.map(|l| l.to_string()).unwrap_or_default(),
            action_index: r.action_index,
            kind: r.action.0.kind,
            status: r.status.into(),
            attempts: r.attempts,
            error: r.error,
            next_attempt_at: if r.status == RunStatus::Pending as i16 {
                to_optional_timestamp(r.next_attempt_at)
            } else {
                None
            },
            finished_at: to_optional_timestamp(r.finished_at),
            created_at: Some(to_timestamp(r.created_at)),
        })
        .collect())
}

/// An erasure: the person's runs and dates go, pending runs with their
/// queue rows.
pub async fn erase_contact(tx: &mut PgConnection, tenant: Uuid, contact: Uuid) -> sqlx::Result<()> {
    forget_dates(tx, tenant, contact).await?;
    let gone: Vec<Uuid> = sqlx::query_scalar(
        "DELETE FROM rule_runs WHERE tenant_id = $1 AND contact_id = $2 RETURNING id",
    )
    .bind(tenant)
    .bind(contact)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM rule_run_queue WHERE tenant_id = $1 AND run_id = ANY($2)")
        .bind(tenant)
        .bind(&gone)
        .execute(tx)
        .await?;
    Ok(())
}

// ---- date triggers

/// Replaces a contact's dates with those its latest event carries.
pub async fn replace_dates(
    tx: &mut PgConnection,
    tenant: Uuid,
    contact: Uuid,
    dates: &[(String, NaiveDate)],
) -> sqlx::Result<()> {
    forget_dates(tx, tenant, contact).await?;
    let (fields, days): (Vec<&str>, Vec<NaiveDate>) =
        dates.iter().map(|(f, d)| (f.as_str(), *d)).unzip();
    sqlx::query(
        "INSERT INTO contact_dates (tenant_id, contact_id, field, date, month, day) \
         SELECT $1, $2, f, d, extract(month FROM d), extract(day FROM d) FROM unnest($3::text[], $4::date[]) AS t(f, d)",
    )
    .bind(tenant)
    .bind(contact)
    .bind(&fields)
    .bind(&days)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn forget_dates(tx: &mut PgConnection, tenant: Uuid, contact: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM contact_dates WHERE tenant_id = $1 AND contact_id = $2")
        .bind(tenant)
        .bind(contact)
        .execute(tx)
        .await?;
    Ok(())
}

/// The contacts whose `field` falls on `day`'s month and day (and, on a
/// 28 February outside leap years, those born on the 29th), with their
/// dates.
pub async fn contacts_on(
    tx: &mut PgConnection,
    tenant: Uuid,
    field: &str,
    day: NaiveDate,
) -> sqlx::Result<Vec<(Uuid, NaiveDate)>> {
    let leap_day = day.month() == 2 && day.day() == 28 && !day.leap_year();
    sqlx::query_as(
        "SELECT contact_id, date FROM contact_dates WHERE tenant_id = $1 AND field = $2 \
         AND month = $3 AND (day = $4 OR ($5 AND day = 29)) ORDER BY contact_id",
    )
    .bind(tenant)
    .bind(field)
    .bind(day.month() as i16)
    .bind(day.day() as i16)
    .bind(leap_day)
    .fetch_all(tx)
    .await
}

/// Locks one date rule whose firing is due, of any tenant, until the
/// transaction ends: its tenant, id and the day to fire.
pub async fn lock_due_date(
    tx: &mut Transaction<'_, Postgres>,
) -> sqlx::Result<Option<(Uuid, Uuid, NaiveDate)>> {
    sqlx::query_as(
        "SELECT tenant_id, rule_id, fire_on FROM rule_schedule WHERE due_at <= now() ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .fetch_optional(&mut **tx)
    .await
}

/// Moves a date rule on to its next day (days missed while no pod ran
/// are fired late, a week back at most), or drops it when the rule is gone.
pub async fn advance_schedule(
    tx: &mut PgConnection,
    tenant: Uuid,
    rule: Uuid,
    hour: Option<i32>,
) -> sqlx::Result<()> {
    match hour {
        None => sqlx::query("DELETE FROM rule_schedule WHERE tenant_id = $1 AND rule_id = $2")
            .bind(tenant)
            .bind(rule),
        Some(hour) => sqlx::query(
            "UPDATE rule_schedule SET fire_on = greatest(fire_on + 1, (now() AT TIME ZONE 'UTC')::date - 7), \
             due_at = (greatest(fire_on + 1, (now() AT TIME ZONE 'UTC')::date - 7) + make_interval(hours => $3)) AT TIME ZONE 'UTC' \
             WHERE tenant_id = $1 AND rule_id = $2",
        )
        .bind(tenant)
        .bind(rule)
        .bind(hour),
    }
    .execute(tx)
    .await?;
    Ok(())
}
