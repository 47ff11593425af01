//! Fuzzy search over a service's `search_index` table (kept by triggers on
//! the records it indexes; same columns in every service). The table is
//! outside row-level security so the trigram index can serve the query
//! (ADR 0008); this function is its only reader and always binds the
//! tenant and the caller's visibility.
//!
//! Two passes: substring matches first (precise and cheap through the
//! trigram index), then, only when they do not fill the page, typo-tolerant
//! matches: each query word corrected against the tenant's dictionary of
//! title words (`search_terms`), the records found by their title words.

use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::access::Scope;

/// Longest the typo-tolerant pass may run.
const FUZZY_TIMEOUT_MS: u64 = 300;

/// Dictionary words tried in place of each query word.
const CORRECTIONS_PER_WORD: i64 = 5;

/// Least trigram similarity of a dictionary word to a query word.
const TERM_SIMILARITY: f32 = 0.2;

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

/// A search request's query, trimmed: 2-200 characters, no control
/// characters; `field` names it in the violation.
pub fn query<'a>(field: &str, raw: &'a str) -> Result<&'a str, crate::FieldViolation> {
    let query = raw.trim();
    let length = query.chars().count();
    if !(2..=200).contains(&length) {
        return Err(crate::FieldViolation::new(
            field,
            "must be 2 to 200 characters",
        ));
    }
    if query.chars().any(char::is_control) {
        return Err(crate::FieldViolation::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(query)
}

/// [`query`] as a ready error.
pub fn checked_query<'a>(field: &str, raw: &'a str) -> crate::Result<&'a str> {
    query(field, raw).map_err(|violation| crate::Error::InvalidArgument(vec![violation]))
}

/// A search request's limit: 20 when 0 (or less), at most 100.
pub fn limit(requested: i32) -> i64 {
    if requested <= 0 {
        20
    } else {
        i64::from(requested.min(100))
    }
}

/// Appends the caller's visibility, except for the kinds everyone who may
/// search sees (`public`: knowledge-base articles, say).
fn push_visible(query: &mut QueryBuilder<'_, Postgres>, scope: &Scope, public: &[&str]) {
    if public.is_empty() || *scope == Scope::Tenant {
        scope.push_sql(query);
        return;
    }
    let kinds: Vec<String> = public.iter().map(|k| k.to_string()).collect();
    query
        .push(" AND (kind = ANY(")
        .push_bind(kinds)
        .push(") OR ");
    scope.push_condition(query);
    query.push(")");
}

/// Records of the tenant matching `text` that `scope` sees (and every
/// record of a `public` kind), best first.
pub async fn search(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    public: &[&str],
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
    push_visible(&mut query, scope, public);
    query
        .push(" ORDER BY score DESC, id LIMIT ")
        .push_bind(limit);
    let mut hits: Vec<Hit> = query.build_query_as().fetch_all(&mut *tx).await?;
    let missing = limit - hits.len() as i64;
    if missing <= 0 {
        return Ok(hits);
    }
    // Typo-tolerant pass: each word of the query is replaced by the words
    // of the tenant's dictionary (`search_terms`, the words of every title)
    // that resemble it most, and the records with one of them in their
    // title for every word are found through `title_words`' index (ADR
    // 0017). Matching a few thousand distinct words instead of every
    // record's trigrams keeps the cost independent of how many records
    // share a common trigram.
    //
    // The dictionary is small, so it can be asked loosely: a swap of two
    // letters in a short word ("secert") keeps only a quarter of its
    // trigrams. Bounded all the same: a query of many short words could
    // match much.
    sqlx::query(
        "SELECT set_config('pg_trgm.similarity_threshold', $1, true), set_config('statement_timeout', $2, true)",
    )
    .bind(TERM_SIMILARITY.to_string())
    .bind(FUZZY_TIMEOUT_MS.to_string())
    .execute(&mut *tx)
    .await?;
    // The query is split into words and lower-cased by the database, with
    // the expression that split the titles (kit migration 0002), so both
    // sides agree whatever the database's locale.
    let corrected: Vec<(String, Vec<String>)> = sqlx::query_as(
        "SELECT q.w, ARRAY(SELECT term FROM search_terms
                            WHERE tenant_id = $1 AND char_length(q.w) >= 3 AND term % q.w
                            ORDER BY similarity(term, q.w) DESC, term LIMIT $3)
           FROM (SELECT DISTINCT w FROM regexp_split_to_table(lower($2), '[[:space:][:punct:]]+') AS w
                  WHERE w <> '') AS q",
    )
    .bind(tenant)
    .bind(text)
    .bind(CORRECTIONS_PER_WORD)
    .fetch_all(&mut *tx)
    .await?;
    if corrected
        .iter()
        .any(|(word, terms)| word.chars().count() >= 3 && terms.is_empty())
    {
        return Ok(hits); // a word nothing in the dictionary resembles
    }
    if corrected.iter().all(|(_, terms)| terms.is_empty()) {
        return Ok(hits); // nothing to correct
    }
    let mut query =
        QueryBuilder::<Postgres>::new("SELECT kind, id, title, subtitle, (0.5 * word_similarity(");
    query
        .push_bind(lowered.clone())
        .push(", search_text))::real AS score FROM search_index WHERE tenant_id = ")
        .push_bind(tenant);
    for (word, corrections) in corrected {
        if corrections.is_empty() {
            // Too short to correct: a substring, as typed.
            query
                .push(" AND search_text LIKE ")
                .push_bind(like_pattern(&word));
        } else {
            query
                .push(" AND title_words && ")
                .push_bind(corrections)
                .push("::text[]");
        }
    }
    query
        .push(" AND search_text NOT LIKE ")
        .push_bind(like_pattern(&lowered));
    push_visible(&mut query, scope, public);
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
