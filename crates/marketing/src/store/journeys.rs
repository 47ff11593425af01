//! Journeys, enrolments, and the queue steppers claim due enrolments from.

use chrono::{DateTime, Utc};
use crm_proto::crm::marketing::v1::{
    Enrolment, EnrolmentStatus, EnrolmentStep, Journey, JourneyStatus,
};
use kit::time::{to_optional_timestamp, to_timestamp};
use prost::Message as _;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use super::audit;

const COLUMNS: &str =
    "id, status, definition, created_at, created_by, updated_at, updated_by, version";

#[derive(sqlx::FromRow)]
struct JourneyRow {
    id: Uuid,
    status: i16,
    definition: Vec<u8>,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

impl From<JourneyRow> for Journey {
    fn from(r: JourneyRow) -> Self {
        // Written by `insert` from a checked journey: it decodes.
        let mut j = Journey::decode(r.definition.as_slice()).unwrap_or_default();
        j.id = r.id.to_string();
        j.status = r.status.into();
        j.audit = audit(
            r.created_at,
            r.created_by,
            r.updated_at,
            r.updated_by,
            r.version,
        );
        j
    }
}

pub async fn insert(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    j: &Journey,
    actor: &str,
) -> sqlx::Result<Journey> {
    let definition = Journey {
        id: String::new(),
        audit: None,
        ..j.clone()
    }
    .encode_to_vec();
    let row: JourneyRow = sqlx::query_as(&format!(
        "INSERT INTO journeys (tenant_id, id, name, status, definition, trigger_event_type, goal_event_type, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&j.name)
    .bind(j.status as i16)
    .bind(definition)
    .bind(&j.trigger_event_type)
    .bind(&j.goal_event_type)
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

pub async fn find(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> sqlx::Result<Option<Journey>> {
    let row: Option<JourneyRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM journeys WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(Journey::from))
}

/// Newest first.
pub async fn list(
    tx: &mut PgConnection,
    tenant: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Journey>> {
    let rows: Vec<JourneyRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM journeys WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
    ))
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(Journey::from).collect())
}

/// Pauses (the journey's queue rows wait at 'infinity') or resumes (they
/// are due when their enrolments are).
pub async fn set_status(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    status: JourneyStatus,
    actor: &str,
) -> sqlx::Result<Option<Journey>> {
    let row: Option<JourneyRow> = sqlx::query_as(&format!(
        "UPDATE journeys SET status = $3, updated_at = now(), updated_by = $4, version = version + 1 \
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(status as i16)
    .bind(actor)
    .fetch_optional(&mut *tx)
    .await?;
    if row.is_some() {
        sqlx::query(
            "UPDATE journey_queue q SET due_at = CASE WHEN $3 THEN coalesce(e.due_at, now()) ELSE 'infinity' END \
             FROM journey_enrolments e WHERE q.tenant_id = $1 AND q.journey_id = $2 \
             AND e.tenant_id = q.tenant_id AND e.id = q.enrolment_id",
        )
        .bind(tenant)
        .bind(id)
        .bind(status == JourneyStatus::Active)
        .execute(tx)
        .await?;
    }
    Ok(row.map(Journey::from))
}

/// Whether any of the tenant's journeys has `event_type` as its goal.
pub async fn has_goal(tx: &mut PgConnection, tenant: Uuid, event_type: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM journeys WHERE tenant_id = $1 AND goal_event_type = $2)",
    )
    .bind(tenant)
    .bind(event_type)
    .fetch_one(tx)
    .await
}

/// The tenant's active journeys an event of `event_type` enrols into.
pub async fn enrolling_on(
    tx: &mut PgConnection,
    tenant: Uuid,
    event_type: &str,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM journeys WHERE tenant_id = $1 AND trigger_event_type = $2 AND status = $3",
    )
    .bind(tenant)
    .bind(event_type)
    .bind(JourneyStatus::Active as i16)
    .fetch_all(tx)
    .await
}

// ---- enrolments

/// One step of an enrolment's history, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Visit {
    pub step: String,
    pub at: DateTime<Utc>,
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_id: Option<Uuid>,
}

#[derive(sqlx::FromRow)]
struct EnrolmentRow {
    id: Uuid,
    journey_id: Uuid,
    contact_id: Uuid,
    status: i16,
    current_step: String,
    due_at: Option<DateTime<Utc>>,
    error: String,
    history: sqlx::types::Json<Vec<Visit>>,
    enrolled_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

const ENROLMENT_COLUMNS: &str = "id, journey_id, contact_id, status, current_step, due_at, error, history, enrolled_at, finished_at";

impl From<EnrolmentRow> for Enrolment {
    fn from(r: EnrolmentRow) -> Self {
        let active = r.status == EnrolmentStatus::Active as i16;
        Enrolment {
            id: r.id.to_string(),
            journey_id: r.journey_id.to_string(),
            contact_id: r.contact_id.to_string(),
            status: r.status.into(),
            current_step: if active {
                r.current_step
            } else {
                String::new()
            },
            due_at: if active {
                to_optional_timestamp(r.due_at)
            } else {
                None
            },
            history: r
                .history
                .0
                .into_iter()
                .map(|v| EnrolmentStep {
                    step: v.step,
                    at: Some(to_timestamp(v.at)),
                    outcome: v.outcome,
                    send_id: v.send_id.map(|s| s.to_string()).unwrap_or_default(),
                })
                .collect(),
            error: r.error,
            enrolled_at: Some(to_timestamp(r.enrolled_at)),
            finished_at: to_optional_timestamp(r.finished_at),
        }
    }
}

#[derive(sqlx::FromRow)]
struct CurrentRow {
    id: Uuid,
    journey_id: Uuid,
    contact_id: Uuid,
    current_step: String,
    attempts: i32,
    history: sqlx::types::Json<Vec<Visit>>,
}

/// An enrolment as the stepper works on it.
pub struct Current {
    pub id: Uuid,
    pub journey_id: Uuid,
    pub contact_id: Uuid,
    pub step: String,
    pub attempts: i32,
    pub history: Vec<Visit>,
}

/// Enrols the contacts not already active in the journey, before its
/// first step (`current_step` empty), due now (or parked, when the
/// journey is paused); returns the new enrolments.
pub async fn enrol(
    tx: &mut PgConnection,
    tenant: Uuid,
    journey: Uuid,
    contacts: &[Uuid],
) -> sqlx::Result<Vec<Enrolment>> {
    let mut contacts = contacts.to_vec();
    contacts.sort_unstable();
    contacts.dedup();
    let ids: Vec<Uuid> = contacts.iter().map(|_| Uuid::now_v7()).collect();
    let rows: Vec<EnrolmentRow> = sqlx::query_as(&format!(
        "INSERT INTO journey_enrolments (tenant_id, id, journey_id, contact_id, status, current_step, due_at) \
         SELECT $1, i, $2, c, $3, '', now() FROM unnest($4::uuid[], $5::uuid[]) AS t (i, c) \
         ON CONFLICT (tenant_id, journey_id, contact_id) WHERE status = 1 DO NOTHING RETURNING {ENROLMENT_COLUMNS}"
    ))
    .bind(tenant)
    .bind(journey)
    .bind(EnrolmentStatus::Active as i16)
    .bind(&ids)
    .bind(&contacts)
    .fetch_all(&mut *tx)
    .await?;
    let enrolled: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    sqlx::query(
        "INSERT INTO journey_queue (tenant_id, enrolment_id, journey_id, due_at) \
         SELECT $1, e, $2, CASE WHEN (SELECT status FROM journeys WHERE tenant_id = $1 AND id = $2) = $4 THEN now() ELSE 'infinity' END \
         FROM unnest($3::uuid[]) AS t (e)",
    )
    .bind(tenant)
    .bind(journey)
    .bind(&enrolled)
    .bind(JourneyStatus::Active as i16)
    .execute(tx)
    .await?;
    Ok(rows.into_iter().map(Enrolment::from).collect())
}

/// The contact's active enrolments in journeys whose goal is `event_type`
/// end as exited; returns them.
pub async fn exit_on_goal(
    tx: &mut PgConnection,
    tenant: Uuid,
    contact: Uuid,
    event_type: &str,
) -> sqlx::Result<Vec<Enrolment>> {
    let rows: Vec<EnrolmentRow> = sqlx::query_as(&format!(
        "UPDATE journey_enrolments e SET status = $4, finished_at = now(), due_at = NULL \
         FROM journeys j WHERE e.tenant_id = $1 AND e.contact_id = $2 AND e.status = $5 \
         AND j.tenant_id = e.tenant_id AND j.id = e.journey_id AND j.goal_event_type = $3 \
         RETURNING {}",
        ENROLMENT_COLUMNS
            .split(", ")
            .map(|c| format!("e.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .bind(tenant)
    .bind(contact)
    .bind(event_type)
    .bind(EnrolmentStatus::Exited as i16)
    .bind(EnrolmentStatus::Active as i16)
    .fetch_all(&mut *tx)
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    unqueue(tx, tenant, &ids).await?;
    Ok(rows.into_iter().map(Enrolment::from).collect())
}

async fn unqueue(tx: &mut PgConnection, tenant: Uuid, ids: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM journey_queue WHERE tenant_id = $1 AND enrolment_id = ANY($2)")
        .bind(tenant)
        .bind(ids)
        .execute(tx)
        .await?;
    Ok(())
}

/// Newest first.
pub async fn list_enrolments(
    tx: &mut PgConnection,
    tenant: Uuid,
    journey: Uuid,
    status: Option<i16>,
    contact: Option<Uuid>,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Enrolment>> {
    let rows: Vec<EnrolmentRow> = sqlx::query_as(&format!(
        "SELECT {ENROLMENT_COLUMNS} FROM journey_enrolments WHERE tenant_id = $1 AND journey_id = $2 \
         AND ($3::smallint IS NULL OR status = $3) AND ($4::uuid IS NULL OR contact_id = $4) AND ($5::uuid IS NULL OR id < $5) \
         ORDER BY id DESC LIMIT $6"
    ))
    .bind(tenant)
    .bind(journey)
    .bind(status)
    .bind(contact)
    .bind(after)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(Enrolment::from).collect())
}

/// Locks one due enrolment of any tenant until the transaction ends
/// (SKIP LOCKED: a timer fires on one pod). Returns (tenant, enrolment).
pub async fn lock_due(tx: &mut Transaction<'_, Postgres>) -> sqlx::Result<Option<(Uuid, Uuid)>> {
    sqlx::query_as(
        "SELECT tenant_id, enrolment_id FROM journey_queue WHERE due_at <= now() ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .fetch_optional(&mut **tx)
    .await
}

/// The enrolment, locked, if it is still active; its queue row goes when
/// it is not.
pub async fn current(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Current>> {
    let row: Option<CurrentRow> = sqlx::query_as(
        "SELECT id, journey_id, contact_id, current_step, attempts, history FROM journey_enrolments \
         WHERE tenant_id = $1 AND id = $2 AND status = $3 FOR UPDATE",
    )
    .bind(tenant)
    .bind(id)
    .bind(EnrolmentStatus::Active as i16)
    .fetch_optional(&mut *tx)
    .await?;
    if row.is_none() {
        unqueue(tx, tenant, &[id]).await?;
    }
    Ok(row.map(|r| Current {
        id: r.id,
        journey_id: r.journey_id,
        contact_id: r.contact_id,
        step: r.current_step,
        attempts: r.attempts,
        history: r.history.0,
    }))
}

/// Where the stepper leaves an enrolment.
pub enum Leave {
    /// At `step`, due at `at` (a wait, or a retry with `attempts`).
    At {
        step: String,
        at: DateTime<Utc>,
        attempts: i32,
        error: String,
    },
    /// Over: completed or failed.
    Over(EnrolmentStatus, String),
    /// Its journey is paused: it waits, unqueued until resumed.
    Parked,
}

/// Records the stepper's work on an enrolment; returns it when it ended.
pub async fn leave(
    tx: &mut PgConnection,
    tenant: Uuid,
    e: &Current,
    how: Leave,
) -> sqlx::Result<Option<Enrolment>> {
    let history = sqlx::types::Json(&e.history);
    match how {
        Leave::At {
            step,
            at,
            attempts,
            error,
        } => {
            sqlx::query(
                "UPDATE journey_enrolments SET current_step = $3, due_at = $4, attempts = $5, error = $6, history = $7 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(e.id)
            .bind(&step)
            .bind(at)
            .bind(attempts)
            .bind(&error)
            .bind(history)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE journey_queue SET due_at = $3 WHERE tenant_id = $1 AND enrolment_id = $2",
            )
            .bind(tenant)
            .bind(e.id)
            .bind(at)
            .execute(tx)
            .await?;
            Ok(None)
        }
        Leave::Parked => {
            sqlx::query(
                "UPDATE journey_queue SET due_at = 'infinity' WHERE tenant_id = $1 AND enrolment_id = $2",
            )
            .bind(tenant)
            .bind(e.id)
            .execute(tx)
            .await?;
            Ok(None)
        }
        Leave::Over(status, error) => {
            let row: EnrolmentRow = sqlx::query_as(&format!(
                "UPDATE journey_enrolments SET status = $3, error = $4, history = $5, due_at = NULL, finished_at = now() \
                 WHERE tenant_id = $1 AND id = $2 RETURNING {ENROLMENT_COLUMNS}"
            ))
            .bind(tenant)
            .bind(e.id)
            .bind(status as i16)
            .bind(&error)
            .bind(history)
            .fetch_one(&mut *tx)
            .await?;
            unqueue(tx, tenant, &[e.id]).await?;
            Ok(Some(row.into()))
        }
    }
}

/// Whether the contact opened (or, with `clicked`, clicked) the message
/// of `send`.
pub async fn engaged(
    tx: &mut PgConnection,
    tenant: Uuid,
    send: Uuid,
    contact: Uuid,
    clicked: bool,
) -> sqlx::Result<bool> {
    // A click opens the message too.
    let found: Option<bool> = sqlx::query_scalar(
        "SELECT CASE WHEN $4 THEN clicked_at IS NOT NULL ELSE opened_at IS NOT NULL OR clicked_at IS NOT NULL END \
         FROM send_recipients WHERE tenant_id = $1 AND send_id = $2 AND contact_id = $3 LIMIT 1",
    )
    .bind(tenant)
    .bind(send)
    .bind(contact)
    .bind(clicked)
    .fetch_optional(tx)
    .await?;
    Ok(found.unwrap_or(false))
}

/// An erasure: the person's enrolments go with their queue rows.
pub async fn erase_contact(tx: &mut PgConnection, tenant: Uuid, contact: Uuid) -> sqlx::Result<()> {
    let gone: Vec<Uuid> = sqlx::query_scalar(
        "DELETE FROM journey_enrolments WHERE tenant_id = $1 AND contact_id = $2 RETURNING id",
    )
    .bind(tenant)
    .bind(contact)
    .fetch_all(&mut *tx)
    .await?;
    unqueue(tx, tenant, &gone).await
}
