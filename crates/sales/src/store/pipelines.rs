//! Pipelines and their ordered stages.

use chrono::{DateTime, Utc};
use crm_proto::crm::sales::v1::{Pipeline, Stage};
use sqlx::PgConnection;
use uuid::Uuid;

use super::audit;

#[derive(sqlx::FromRow)]
struct PipelineRow {
    id: Uuid,
    name: String,
    is_default: bool,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

#[derive(sqlx::FromRow)]
pub struct StageRow {
    pub id: Uuid,
    pub pipeline_id: Uuid,
    pub name: String,
    pub position: i32,
    pub probability: i32,
    pub kind: i16,
}

impl From<StageRow> for Stage {
    fn from(r: StageRow) -> Self {
        Stage {
            id: r.id.to_string(),
            name: r.name,
            probability: r.probability,
            kind: r.kind.into(),
            position: r.position,
        }
    }
}

pub async fn insert(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    name: &str,
    is_default: bool,
    actor: &str,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO pipelines (tenant_id, id, name, is_default, created_by, updated_by) VALUES ($1, $2, $3, $4, $5, $5)")
        .bind(tenant)
        .bind(id)
        .bind(name)
        .bind(is_default)
        .bind(actor)
        .execute(tx)
        .await?;
    Ok(())
}

pub async fn has_default(tx: &mut PgConnection, tenant: Uuid) -> sqlx::Result<bool> {
    let (exists,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM pipelines WHERE tenant_id = $1 AND is_default)",
    )
    .bind(tenant)
    .fetch_one(tx)
    .await?;
    Ok(exists)
}

/// Replaces the stages of a pipeline with `stages` in order, keeping ids.
pub async fn write_stages(
    tx: &mut PgConnection,
    tenant: Uuid,
    pipeline: Uuid,
    stages: &[Stage],
) -> sqlx::Result<()> {
    for (position, stage) in stages.iter().enumerate() {
        sqlx::query(
            "INSERT INTO stages (tenant_id, id, pipeline_id, name, position, probability, kind) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant_id, id) DO UPDATE SET name = EXCLUDED.name, position = EXCLUDED.position, probability = EXCLUDED.probability",
        )
        .bind(tenant)
        .bind(Uuid::parse_str(&stage.id).unwrap_or_else(|_| Uuid::now_v7()))
        .bind(pipeline)
        .bind(&stage.name)
        .bind(position as i32)
        .bind(stage.probability)
        .bind(stage.kind as i16)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("UPDATE pipelines SET updated_at = now(), version = version + 1 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(pipeline)
        .execute(tx)
        .await?;
    Ok(())
}

pub async fn delete_stage(tx: &mut PgConnection, tenant: Uuid, stage: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM stages WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(stage)
        .execute(tx)
        .await?;
    Ok(())
}

/// A pipeline with its stages; `lock` serialises changes to its stages.
pub async fn find(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<Pipeline>> {
    let sql = if lock {
        "SELECT id, name, is_default, created_at, created_by, updated_at, updated_by, version FROM pipelines WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    } else {
        "SELECT id, name, is_default, created_at, created_by, updated_at, updated_by, version FROM pipelines WHERE tenant_id = $1 AND id = $2"
    };
    let row: Option<PipelineRow> = sqlx::query_as(sql)
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let stages = stages(tx, tenant, id).await?;
    Ok(Some(Pipeline {
        id: row.id.to_string(),
        name: row.name,
        is_default: row.is_default,
        stages,
        audit: audit(
            row.created_at,
            row.created_by,
            row.updated_at,
            row.updated_by,
            row.version,
        ),
    }))
}

pub async fn stages(
    tx: &mut PgConnection,
    tenant: Uuid,
    pipeline: Uuid,
) -> sqlx::Result<Vec<Stage>> {
    let rows: Vec<StageRow> = sqlx::query_as(
        "SELECT id, pipeline_id, name, position, probability, kind FROM stages WHERE tenant_id = $1 AND pipeline_id = $2 ORDER BY position",
    )
    .bind(tenant)
    .bind(pipeline)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(Stage::from).collect())
}

/// The stages of `pipeline`, or of the default pipeline when `None`.
pub async fn stages_of(
    tx: &mut PgConnection,
    tenant: Uuid,
    pipeline: Option<Uuid>,
) -> sqlx::Result<Vec<StageRow>> {
    sqlx::query_as(
        "SELECT id, pipeline_id, name, position, probability, kind FROM stages WHERE tenant_id = $1 \
         AND pipeline_id = coalesce($2, (SELECT id FROM pipelines WHERE tenant_id = $1 AND is_default)) ORDER BY position",
    )
    .bind(tenant)
    .bind(pipeline)
    .fetch_all(tx)
    .await
}

pub async fn stage(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<StageRow>> {
    sqlx::query_as(
        "SELECT id, pipeline_id, name, position, probability, kind FROM stages WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await
}

pub async fn list(tx: &mut PgConnection, tenant: Uuid) -> sqlx::Result<Vec<Pipeline>> {
    let ids: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT id FROM pipelines WHERE tenant_id = $1 ORDER BY is_default DESC, name",
    )
    .bind(tenant)
    .fetch_all(&mut *tx)
    .await?;
    let mut pipelines = Vec::with_capacity(ids.len());
    for (id,) in ids {
        if let Some(p) = find(tx, tenant, id, false).await? {
            pipelines.push(p);
        }
    }
    Ok(pipelines)
}
