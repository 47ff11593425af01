//! Macros and bulk jobs.

use chrono::{DateTime, Utc};
use crm_proto::crm::servicedesk::v1::{Macro, TicketChanges, TicketJob, TicketJobResult};
use kit::time::{to_optional_timestamp, to_timestamp};
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::audit;

// ---- macros

#[derive(sqlx::FromRow)]
struct MacroRow {
    id: Uuid,
    name: String,
    reply: String,
    changes: Json<TicketChanges>,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

impl From<MacroRow> for Macro {
    fn from(r: MacroRow) -> Self {
        Macro {
            id: r.id.to_string(),
            name: r.name,
            reply: r.reply,
            changes: Some(r.changes.0),
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

const MACRO_COLUMNS: &str =
    "id, name, reply, changes, created_at, created_by, updated_at, updated_by, version";

pub async fn insert_macro(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    m: &Macro,
    actor: &str,
) -> sqlx::Result<Macro> {
    let row: MacroRow = sqlx::query_as(&format!(
        "INSERT INTO macros (tenant_id, id, name, reply, changes, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {MACRO_COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&m.name)
    .bind(&m.reply)
    .bind(Json(m.changes.clone().unwrap_or_default()))
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

pub async fn find_macro(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Macro>> {
    let row: Option<MacroRow> = sqlx::query_as(&format!(
        "SELECT {MACRO_COLUMNS} FROM macros WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(Into::into))
}

pub async fn list_macros(
    tx: &mut PgConnection,
    tenant: Uuid,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<Macro>> {
    let rows: Vec<MacroRow> =
        super::list_by_name(tx, "macros", MACRO_COLUMNS, tenant, after, limit).await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub async fn delete_macro(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let deleted = sqlx::query("DELETE FROM macros WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(tx)
        .await?;
    Ok(deleted.rows_affected() > 0)
}

// ---- bulk jobs

#[derive(sqlx::FromRow)]
struct JobRow {
    id: Uuid,
    actor: String,
    ticket_ids: Vec<Uuid>,
    changes: Json<TicketChanges>,
    succeeded: i32,
    failed: i32,
    results: Json<Vec<TicketJobResult>>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl From<JobRow> for TicketJob {
    fn from(r: JobRow) -> Self {
        TicketJob {
            id: r.id.to_string(),
            ticket_ids: r.ticket_ids.iter().map(Uuid::to_string).collect(),
            changes: Some(r.changes.0),
            actor: r.actor,
            succeeded: r.succeeded,
            failed: r.failed,
            results: r.results.0,
            created_at: Some(to_timestamp(r.created_at)),
            finished_at: to_optional_timestamp(r.finished_at),
        }
    }
}

const JOB_COLUMNS: &str =
    "id, actor, ticket_ids, changes, succeeded, failed, results, created_at, finished_at";

/// Records a job before it runs (so one that stops half way is still
/// on record, with the tickets it was to change).
pub async fn insert_job(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    actor: &str,
    tickets: &[Uuid],
    changes: &TicketChanges,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO ticket_jobs (tenant_id, id, actor, ticket_ids, changes) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant)
    .bind(id)
    .bind(actor)
    .bind(tickets)
    .bind(Json(changes))
    .execute(tx)
    .await?;
    Ok(())
}

/// Records each ticket's outcome and that the job finished.
pub async fn finish_job(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    results: &[TicketJobResult],
) -> sqlx::Result<TicketJob> {
    let succeeded = results.iter().filter(|r| r.ok).count() as i32;
    let row: JobRow = sqlx::query_as(&format!(
        "UPDATE ticket_jobs SET results = $3, succeeded = $4, failed = $5, finished_at = now() \
         WHERE tenant_id = $1 AND id = $2 RETURNING {JOB_COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(Json(results))
    .bind(succeeded)
    .bind(results.len() as i32 - succeeded)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

pub async fn find_job(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<TicketJob>> {
    let row: Option<JobRow> = sqlx::query_as(&format!(
        "SELECT {JOB_COLUMNS} FROM ticket_jobs WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(Into::into))
}

/// Newest first; `actor` limits to one person's jobs.
pub async fn list_jobs(
    tx: &mut PgConnection,
    tenant: Uuid,
    actor: Option<&str>,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<TicketJob>> {
    let rows: Vec<JobRow> = sqlx::query_as(&format!(
        "SELECT {JOB_COLUMNS} FROM ticket_jobs WHERE tenant_id = $1 \
         AND ($2::text IS NULL OR actor = $2) AND ($3::uuid IS NULL OR id < $3) \
         ORDER BY id DESC LIMIT $4"
    ))
    .bind(tenant)
    .bind(actor)
    .bind(after)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}
