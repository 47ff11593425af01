//! Ticket field definitions.

use crm_proto::crm::customers::v1::{FieldDefinition, FieldType};
use crm_proto::crm::servicedesk::v1::TicketField;
use kit::custom_fields::FieldCatalog;
use sqlx::PgConnection;
use uuid::Uuid;

/// Definitions a tenant may have.
pub const MAX_FIELDS: i64 = 200;

#[derive(sqlx::FromRow)]
struct FieldRow {
    key: String,
    label: String,
    r#type: i16,
    required: bool,
    options: Vec<String>,
}

impl From<FieldRow> for TicketField {
    fn from(r: FieldRow) -> Self {
        TicketField {
            key: r.key,
            label: r.label,
            r#type: r.r#type.into(),
            required: r.required,
            options: r.options,
        }
    }
}

/// A ticket field as the shared model's definition.
pub fn definition(f: &TicketField) -> FieldDefinition {
    FieldDefinition {
        entity: 0,
        key: f.key.clone(),
        label: f.label.clone(),
        r#type: f.r#type,
        required: f.required,
        options: f.options.clone(),
    }
}

pub async fn save(
    tx: &mut PgConnection,
    tenant: Uuid,
    f: &TicketField,
    actor: &str,
) -> sqlx::Result<TicketField> {
    let row: FieldRow = sqlx::query_as(
        "INSERT INTO ticket_fields (tenant_id, key, label, type, required, options, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (tenant_id, key) DO UPDATE SET label = $3, type = $4, required = $5, options = $6, \
         updated_at = now(), updated_by = $7 \
         RETURNING key, label, type, required, options",
    )
    .bind(tenant)
    .bind(&f.key)
    .bind(&f.label)
    .bind(FieldType::try_from(f.r#type).unwrap_or_default() as i16)
    .bind(f.required)
    .bind(&f.options)
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

/// By key.
pub async fn list(tx: &mut PgConnection, tenant: Uuid) -> sqlx::Result<Vec<TicketField>> {
    let rows: Vec<FieldRow> = sqlx::query_as(
        "SELECT key, label, type, required, options FROM ticket_fields WHERE tenant_id = $1 ORDER BY key LIMIT $2",
    )
    .bind(tenant)
    .bind(MAX_FIELDS)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// The tenant's definitions, to check values against.
pub async fn catalog(tx: &mut PgConnection, tenant: Uuid) -> sqlx::Result<FieldCatalog> {
    let fields = list(tx, tenant).await?;
    Ok(FieldCatalog::new(fields.iter().map(definition).collect()))
}

pub async fn delete(tx: &mut PgConnection, tenant: Uuid, key: &str) -> sqlx::Result<bool> {
    let deleted = sqlx::query("DELETE FROM ticket_fields WHERE tenant_id = $1 AND key = $2")
        .bind(tenant)
        .bind(key)
        .execute(tx)
        .await?;
    Ok(deleted.rows_affected() > 0)
}
