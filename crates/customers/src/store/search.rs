//! Fuzzy search over the `search_index` table (kept by triggers on contacts
//! and accounts). The table is outside row-level security so the trigram
//! index can serve the query (ADR 0008); this function is its only reader
//! and always binds the tenant.

use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::push_scope;
use crate::domain::access::Scope;

/// One match: kind (`contact` / `account`), id, title, subtitle, score.
pub type Hit = (String, Uuid, String, String, f32);

pub async fn search(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    text: &str,
    limit: i64,
) -> sqlx::Result<Vec<Hit>> {
    let lowered = text.to_lowercase();
    let pattern = format!(
        "%{}%",
        lowered
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let mut query = QueryBuilder::<Postgres>::new(
        "SELECT kind, id, title, subtitle, greatest(word_similarity(",
    );
    query
        .push_bind(lowered.clone())
        .push(", search_text), CASE WHEN search_text LIKE ")
        .push_bind(pattern.clone())
        .push(" THEN 0.5 ELSE 0 END)::real AS score FROM search_index WHERE tenant_id = ")
        .push_bind(tenant)
        .push(" AND (")
        .push_bind(lowered)
        .push(" <% search_text OR search_text LIKE ")
        .push_bind(pattern)
        .push(")");
    push_scope(&mut query, scope);
    query
        .push(" ORDER BY score DESC, id LIMIT ")
        .push_bind(limit);
    query.build_query_as().fetch_all(tx).await
}
