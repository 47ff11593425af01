//! Segments and the members of static segments.

use chrono::{DateTime, Utc};
use crm_proto::crm::customers::v1::{Filter, Segment};
use kit::access::Scope;
use prost::Message as _;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::audit;

type SegmentRow = (
    Uuid,
    String,
    i32,
    Option<Vec<u8>>,
    DateTime<Utc>,
    String,
    DateTime<Utc>,
    String,
    i64,
);

const COLUMNS: &str =
    "id, name, kind, filter, created_at, created_by, updated_at, updated_by, version";

fn to_proto(
    (id, name, kind, filter, created_at, created_by, updated_at, updated_by, version): SegmentRow,
) -> Segment {
    Segment {
        id: id.to_string(),
        name,
        kind,
        filter: filter.and_then(|bytes| Filter::decode(bytes.as_slice()).ok()),
        audit: audit(created_at, created_by, updated_at, updated_by, version),
        // Counted by the handler when it is asked for; not stored.
        member_count: 0,
    }
}

pub async fn insert(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    segment: &Segment,
    actor: &str,
) -> sqlx::Result<Segment> {
    let row: SegmentRow = sqlx::query_as(&format!(
        "INSERT INTO segments (tenant_id, id, name, kind, filter, created_at, created_by, updated_at, updated_by)
         VALUES ($1, $2, $3, $4, $5, now(), $6, now(), $6) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&segment.name)
    .bind(segment.kind)
    .bind(segment.filter.as_ref().map(|f| f.encode_to_vec()))
    .bind(actor)
    .fetch_one(&mut *tx)
    .await?;
    Ok(to_proto(row))
}

pub async fn find(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> sqlx::Result<Option<Segment>> {
    let row: Option<SegmentRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM segments WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row.map(to_proto))
}

pub async fn list(
    tx: &mut PgConnection,
    tenant: Uuid,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<Segment>> {
    let (name, id) = after
        .map(|(n, i)| (Some(n), Some(i)))
        .unwrap_or((None, None));
    let rows: Vec<SegmentRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM segments WHERE tenant_id = $1 AND ($2::text IS NULL OR (name, id) > ($2, $3))
          ORDER BY name, id LIMIT $4"
    ))
    .bind(tenant)
    .bind(name)
    .bind(id)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().map(to_proto).collect())
}

pub async fn delete(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let result = sqlx::query("DELETE FROM segments WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(result.rows_affected() > 0)
}

/// Ids among `ids` that are not live contacts.
/// Of `ids`, those that are not live contacts `scope` sees: to the caller,
/// a contact it may not see does not exist.
pub async fn missing_contacts(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    ids: &[Uuid],
) -> sqlx::Result<Vec<Uuid>> {
    let mut query = QueryBuilder::<Postgres>::new("SELECT id FROM unnest(");
    query.push_bind(ids).push(
        "::uuid[]) AS wanted(id) WHERE NOT EXISTS (SELECT 1 FROM contacts WHERE deleted_at IS NULL AND id = wanted.id AND tenant_id = ",
    );
    query.push_bind(tenant);
    scope.push_sql(&mut query);
    query.push(")");
    let rows: Vec<(Uuid,)> = query.build_query_as().fetch_all(&mut *tx).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

pub async fn add_members(
    tx: &mut PgConnection,
    tenant: Uuid,
    segment: Uuid,
    ids: &[Uuid],
) -> sqlx::Result<u64> {
    let result = sqlx::query(
        "INSERT INTO segment_members (tenant_id, segment_id, contact_id)
         SELECT $1, $2, id FROM unnest($3::uuid[]) AS t(id) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(segment)
    .bind(ids)
    .execute(&mut *tx)
    .await?;
    Ok(result.rows_affected())
}

/// Removes those of `ids` that `scope` sees (others are left alone).
pub async fn remove_members(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    segment: Uuid,
    ids: &[Uuid],
) -> sqlx::Result<u64> {
    let mut query = QueryBuilder::<Postgres>::new("DELETE FROM segment_members WHERE tenant_id = ");
    query
        .push_bind(tenant)
        .push(" AND segment_id = ")
        .push_bind(segment)
        .push(" AND contact_id IN (SELECT id FROM contacts WHERE id = ANY(")
        .push_bind(ids)
        .push(") AND tenant_id = ")
        .push_bind(tenant);
    scope.push_sql(&mut query);
    query.push(")");
    Ok(query.build().execute(&mut *tx).await?.rows_affected())
}

/// Names of the segments a contact is a static member of.
pub async fn memberships(
    tx: &mut PgConnection,
    tenant: Uuid,
    contact: Uuid,
) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT s.name FROM segment_members m JOIN segments s ON s.tenant_id = m.tenant_id AND s.id = m.segment_id
          WHERE m.tenant_id = $1 AND m.contact_id = $2 ORDER BY s.name",
    )
    .bind(tenant)
    .bind(contact)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().map(|(name,)| name).collect())
}
