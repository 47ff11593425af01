//! SQL of the service desk. Every function runs inside a caller's (or an
//! event's) tenant-scoped transaction; row-level security is the second
//! fence.

pub mod actions;
pub mod feedback;
pub mod fields;
pub mod knowledge;
pub mod mail;
pub mod orders;
pub mod portal;
pub mod routing;
pub mod satisfaction;
pub mod slas;
pub mod tickets;

use sqlx::postgres::PgRow;
use sqlx::PgConnection;
use uuid::Uuid;

pub use kit::rpc::audit;

pub fn id_text(id: Option<Uuid>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}

/// An id the domain checks already passed; empty is none.
pub fn checked_id(raw: &str) -> Option<Uuid> {
    Uuid::parse_str(raw).ok()
}

/// A page of a tenant's named records (calendars, categories) by name,
/// then id: `after` is the last row's lower-cased name and id.
pub async fn list_by_name<R>(
    tx: &mut PgConnection,
    table: &str,
    columns: &str,
    tenant: Uuid,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<R>>
where
    R: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
{
    let (name, id) = after.unzip();
    sqlx::query_as(&format!(
        "SELECT {columns} FROM {table} WHERE tenant_id = $1 \
         AND ($2::text IS NULL OR (lower(name), id) > ($2, $3)) ORDER BY lower(name), id LIMIT $4"
    ))
    .bind(tenant)
    .bind(name)
    .bind(id)
    .bind(limit)
    .fetch_all(tx)
    .await
}
