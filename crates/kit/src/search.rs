//! Fuzzy search over a service's `search_index` table (kept by triggers on
//! the records it indexes; same columns in every service). The table is
//! outside row-level security so the trigram index can serve the query
//! (ADR 0008); this function is its only reader and always binds the
//! tenant and the caller's visibility.
//!
//! Two passes: substring matches first (precise and cheap through the
//! trigram index), then, only when they do not fill the page, typo-tolerant
//! word-similarity matches, which cost more because more rows are rechecked.

use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::access::Scope;

/// Longest the typo-tolerant pass may run.
const FUZZY_TIMEOUT_MS: u64 = 300;

/// One match: kind (`contact`, `lead`, ...), id, title, subtitle, score.
pub type Hit = (String, Uuid, String, String, f32);

fn like_pattern(text: &str) -> String {
    format!(
        "%{}%",
        text.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

pub async fn search(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    text: &str,
    limit: i64,
) -> sqlx::Result<Vec<Hit>> {
    let lowered = text.to_lowercase();
    let mut query = QueryBuilder::<Postgres>::new(
        "SELECT kind, id, title, subtitle, (0.5 + 0.5 * word_similarity(",
    );
    query
        .push_bind(lowered.clone())
        .push(", search_text))::real AS score FROM search_index WHERE tenant_id = ")
        .push_bind(tenant)
        .push(" AND search_text LIKE ")
        .push_bind(like_pattern(&lowered));
    scope.push_sql(&mut query);
    query
        .push(" ORDER BY score DESC, id LIMIT ")
        .push_bind(limit);
    let mut hits: Vec<Hit> = query.build_query_as().fetch_all(&mut *tx).await?;
    let missing = limit - hits.len() as i64;
    if missing <= 0 {
        return Ok(hits);
    }
    // A short query that resembles many records makes the fuzzy pass check
    // each of them; bound it, and answer with the substring matches alone
    // when it runs out of time.
    sqlx::query("SELECT set_config('statement_timeout', $1, true)")
        .bind(FUZZY_TIMEOUT_MS.to_string())
        .execute(&mut *tx)
        .await?;
    let mut query =
        QueryBuilder::<Postgres>::new("SELECT kind, id, title, subtitle, (0.5 * word_similarity(");
    query
        .push_bind(lowered.clone())
        .push(", search_text))::real AS score FROM search_index WHERE tenant_id = ")
        .push_bind(tenant)
        .push(" AND ")
        .push_bind(lowered.clone())
        .push(" <% search_text AND search_text NOT LIKE ")
        .push_bind(like_pattern(&lowered));
    scope.push_sql(&mut query);
    query
        .push(" ORDER BY score DESC, id LIMIT ")
        .push_bind(missing);
    match query.build_query_as::<Hit>().fetch_all(&mut *tx).await {
        Ok(fuzzy) => hits.extend(fuzzy),
        Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("57014") => {
            metrics::counter!("crm_search_fuzzy_timeouts_total").increment(1);
        }
        Err(error) => return Err(error),
    }
    Ok(hits)
}
