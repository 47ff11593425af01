//! Root causes of complaints and feedback.

use chrono::{DateTime, Utc};
use crm_proto::crm::servicedesk::v1::RootCause;
use sqlx::PgConnection;
use uuid::Uuid;

use super::audit;

#[derive(sqlx::FromRow)]
struct RootCauseRow {
    id: Uuid,
    name: String,
    description: String,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

impl From<RootCauseRow> for RootCause {
    fn from(r: RootCauseRow) -> Self {
        RootCause {
            id: r.id.to_string(),
            name: r.name,
            description: r.description,
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

const COLUMNS: &str =
    "id, name, description, created_at, created_by, updated_at, updated_by, version";

/// A name the tenant has already is a unique violation.
pub async fn insert_root_cause(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    c: &RootCause,
    actor: &str,
) -> sqlx::Result<RootCause> {
    let row: RootCauseRow = sqlx::query_as(&format!(
        "INSERT INTO root_causes (tenant_id, id, name, description, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&c.name)
    .bind(&c.description)
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

pub async fn find_root_cause(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<RootCause>> {
    let row: Option<RootCauseRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM root_causes WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(Into::into))
}

pub async fn list_root_causes(
    tx: &mut PgConnection,
    tenant: Uuid,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<RootCause>> {
    let rows: Vec<RootCauseRow> =
        super::list_by_name(tx, "root_causes", COLUMNS, tenant, after, limit).await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// False when there is none; one that tickets name is a foreign key
/// violation.
pub async fn delete_root_cause(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<bool> {
    let deleted = sqlx::query("DELETE FROM root_causes WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(tx)
        .await?;
    Ok(deleted.rows_affected() > 0)
}
