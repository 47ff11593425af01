//! Custom field definitions.

use crm_proto::crm::customers::v1::{Entity, FieldDefinition};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::custom_fields::{entity_name, FieldCatalog};

type DefinitionRow = (String, String, String, i32, bool, Vec<String>);

fn entity_from_name(name: &str) -> Entity {
    match name {
        "account" => Entity::Account,
        _ => Entity::Contact,
    }
}

fn to_definition(
    (entity, key, label, field_type, required, options): DefinitionRow,
) -> FieldDefinition {
    FieldDefinition {
        entity: entity_from_name(&entity) as i32,
        key,
        label,
        r#type: field_type,
        required,
        options,
    }
}

pub async fn upsert(
    tx: &mut PgConnection,
    tenant: Uuid,
    field: &FieldDefinition,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO field_definitions (tenant_id, entity, key, label, field_type, required, options)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (tenant_id, entity, key) DO UPDATE
           SET label = excluded.label, field_type = excluded.field_type,
               required = excluded.required, options = excluded.options",
    )
    .bind(tenant)
    .bind(entity_name(field.entity()).unwrap_or("contact"))
    .bind(&field.key)
    .bind(&field.label)
    .bind(field.r#type)
    .bind(field.required)
    .bind(&field.options)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub async fn list(
    tx: &mut PgConnection,
    tenant: Uuid,
    entity: Option<&str>,
) -> sqlx::Result<Vec<FieldDefinition>> {
    let rows: Vec<DefinitionRow> = sqlx::query_as(
        "SELECT entity, key, label, field_type, required, options FROM field_definitions
          WHERE tenant_id = $1 AND ($2::text IS NULL OR entity = $2) ORDER BY entity, key",
    )
    .bind(tenant)
    .bind(entity)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().map(to_definition).collect())
}

pub async fn delete(
    tx: &mut PgConnection,
    tenant: Uuid,
    entity: &str,
    key: &str,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "DELETE FROM field_definitions WHERE tenant_id = $1 AND entity = $2 AND key = $3",
    )
    .bind(tenant)
    .bind(entity)
    .bind(key)
    .execute(&mut *tx)
    .await?;
    Ok(result.rows_affected() > 0)
}

/// The catalog every write of `entity` is checked against.
pub async fn catalog(
    tx: &mut PgConnection,
    tenant: Uuid,
    entity: Entity,
) -> sqlx::Result<FieldCatalog> {
    Ok(FieldCatalog::new(
        list(tx, tenant, entity_name(entity)).await?,
    ))
}
