//! Knowledge-base categories, articles, revisions, feedback and search.

use chrono::{DateTime, Utc};
use crm_proto::crm::servicedesk::v1::{
    Article, ArticleCategory, ArticleHit, ArticleRevision, ArticleStatus,
};
use kit::time::{to_optional_timestamp, to_timestamp};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{audit, checked_id, id_text};
use crate::domain::knowledge::TEXT_CONFIGS;

// ---- categories

#[derive(sqlx::FromRow)]
struct CategoryRow {
    id: Uuid,
    name: String,
    description: String,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

impl From<CategoryRow> for ArticleCategory {
    fn from(r: CategoryRow) -> Self {
        ArticleCategory {
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

const CATEGORY_COLUMNS: &str =
    "id, name, description, created_at, created_by, updated_at, updated_by, version";

pub async fn insert_category(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    c: &ArticleCategory,
    actor: &str,
) -> sqlx::Result<ArticleCategory> {
    let row: CategoryRow = sqlx::query_as(&format!(
        "INSERT INTO article_categories (tenant_id, id, name, description, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING {CATEGORY_COLUMNS}"
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

pub async fn find_category(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<ArticleCategory>> {
    let row: Option<CategoryRow> = sqlx::query_as(&format!(
        "SELECT {CATEGORY_COLUMNS} FROM article_categories WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(ArticleCategory::from))
}

pub async fn list_categories(
    tx: &mut PgConnection,
    tenant: Uuid,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<ArticleCategory>> {
    let rows: Vec<CategoryRow> = super::list_by_name(
        tx,
        "article_categories",
        CATEGORY_COLUMNS,
        tenant,
        after,
        limit,
    )
    .await?;
    Ok(rows.into_iter().map(ArticleCategory::from).collect())
}

// ---- articles

const COLUMNS: &str = "id, category_id, title, body, language, tags, audience, status, revision, published_at, helpful_count, not_helpful_count, created_at, created_by, updated_at, updated_by, version";

#[derive(sqlx::FromRow)]
struct ArticleRow {
    id: Uuid,
    category_id: Option<Uuid>,
    title: String,
    body: String,
    language: String,
    tags: Vec<String>,
    audience: i16,
    status: i16,
    revision: i32,
    published_at: Option<DateTime<Utc>>,
    helpful_count: i32,
    not_helpful_count: i32,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

impl From<ArticleRow> for Article {
    fn from(r: ArticleRow) -> Self {
        Article {
            id: r.id.to_string(),
            category_id: id_text(r.category_id),
            title: r.title,
            body: r.body,
            language: r.language,
            tags: r.tags,
            audience: r.audience.into(),
            status: r.status.into(),
            revision: r.revision,
            published_at: to_optional_timestamp(r.published_at),
            helpful_count: r.helpful_count,
            not_helpful_count: r.not_helpful_count,
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

/// A new draft with its first revision.
pub async fn insert(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    a: &Article,
    actor: &str,
) -> sqlx::Result<Article> {
    let row: ArticleRow = sqlx::query_as(&format!(
        "INSERT INTO articles (tenant_id, id, category_id, title, body, language, tags, audience, status, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(checked_id(&a.category_id))
    .bind(&a.title)
    .bind(&a.body)
    .bind(&a.language)
    .bind(&a.tags)
    .bind(a.audience as i16)
    .bind(ArticleStatus::Draft as i16)
    .bind(actor)
    .fetch_one(&mut *tx)
    .await?;
    record_revision(tx, tenant, id, 1, &a.title, &a.body, actor).await?;
    Ok(row.into())
}

async fn record_revision(
    tx: &mut PgConnection,
    tenant: Uuid,
    article: Uuid,
    revision: i32,
    title: &str,
    body: &str,
    actor: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO article_revisions (tenant_id, article_id, revision, title, body, edited_by) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant)
    .bind(article)
    .bind(revision)
    .bind(title)
    .bind(body)
    .bind(actor)
    .execute(tx)
    .await?;
    Ok(())
}

/// Writes the editable fields; a new title or body is a new revision.
pub async fn update(
    tx: &mut PgConnection,
    tenant: Uuid,
    before: &Article,
    a: &Article,
    actor: &str,
) -> sqlx::Result<Article> {
    let new_text = before.title != a.title || before.body != a.body;
    let revision = before.revision + i32::from(new_text);
    let row: ArticleRow = sqlx::query_as(&format!(
        "UPDATE articles SET category_id = $3, title = $4, body = $5, language = $6, tags = $7, audience = $8, \
         revision = $9, updated_at = now(), updated_by = $10, version = version + 1 \
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(checked_id(&a.id))
    .bind(checked_id(&a.category_id))
    .bind(&a.title)
    .bind(&a.body)
    .bind(&a.language)
    .bind(&a.tags)
    .bind(a.audience as i16)
    .bind(revision)
    .bind(actor)
    .fetch_one(&mut *tx)
    .await?;
    if new_text {
        let id = row.id;
        record_revision(tx, tenant, id, revision, &a.title, &a.body, actor).await?;
    }
    Ok(row.into())
}

pub async fn set_status(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    status: ArticleStatus,
    actor: &str,
) -> sqlx::Result<Article> {
    let row: ArticleRow = sqlx::query_as(&format!(
        "UPDATE articles SET status = $3, \
         published_at = CASE WHEN $3 = $5 THEN now() ELSE published_at END, \
         updated_at = now(), updated_by = $4, version = version + 1 \
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(status as i16)
    .bind(actor)
    .bind(ArticleStatus::Published as i16)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

/// An article; `published_only` hides drafts and archived ones.
pub async fn find(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    published_only: bool,
    lock: bool,
) -> sqlx::Result<Option<Article>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row: Option<ArticleRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM articles WHERE tenant_id = $1 AND id = $2 AND (status = $3 OR NOT $4){lock}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(ArticleStatus::Published as i16)
    .bind(published_only)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(Article::from))
}

#[derive(Default)]
pub struct ArticleFilter {
    pub status: Option<i16>,
    pub category: Option<Uuid>,
    pub language: Option<String>,
    pub audience: Option<i16>,
}

/// Newest first.
pub async fn list(
    tx: &mut PgConnection,
    tenant: Uuid,
    filter: &ArticleFilter,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Article>> {
    let mut query =
        QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM articles WHERE tenant_id = "));
    query.push_bind(tenant);
    if let Some(status) = filter.status {
        query.push(" AND status = ").push_bind(status);
    }
    if let Some(category) = filter.category {
        query.push(" AND category_id = ").push_bind(category);
    }
    if let Some(language) = &filter.language {
        query.push(" AND language = ").push_bind(language.clone());
    }
    if let Some(audience) = filter.audience {
        query.push(" AND audience = ").push_bind(audience);
    }
    if let Some(after) = after {
        query.push(" AND id < ").push_bind(after);
    }
    query.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    let rows: Vec<ArticleRow> = query.build_query_as().fetch_all(tx).await?;
    Ok(rows.into_iter().map(Article::from).collect())
}

pub async fn revisions(
    tx: &mut PgConnection,
    tenant: Uuid,
    article: Uuid,
    before: Option<i32>,
    limit: i64,
) -> sqlx::Result<Vec<ArticleRevision>> {
    let rows: Vec<(i32, String, String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT revision, title, body, edited_by, edited_at FROM article_revisions \
         WHERE tenant_id = $1 AND article_id = $2 AND ($3::integer IS NULL OR revision < $3) \
         ORDER BY revision DESC LIMIT $4",
    )
    .bind(tenant)
    .bind(article)
    .bind(before)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(revision, title, body, edited_by, edited_at)| ArticleRevision {
                revision,
                title,
                body,
                edited_by,
                edited_at: Some(to_timestamp(edited_at)),
            },
        )
        .collect())
}

/// Records a reader's vote (replacing theirs) and recounts the article.
pub async fn rate(
    tx: &mut PgConnection,
    tenant: Uuid,
    article: Uuid,
    voter: &str,
    helpful: bool,
    comment: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO article_feedback (tenant_id, article_id, voter, helpful, comment) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id, article_id, voter) DO UPDATE SET helpful = $4, comment = $5, voted_at = now()",
    )
    .bind(tenant)
    .bind(article)
    .bind(voter)
    .bind(helpful)
    .bind(comment)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE articles SET \
         helpful_count = (SELECT count(*) FROM article_feedback f WHERE f.tenant_id = $1 AND f.article_id = $2 AND f.helpful), \
         not_helpful_count = (SELECT count(*) FROM article_feedback f WHERE f.tenant_id = $1 AND f.article_id = $2 AND NOT f.helpful) \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(article)
    .execute(tx)
    .await?;
    Ok(())
}

/// How a search's words become a query: all of them (a person's search)
/// or any of them (text a ticket holds).
#[derive(Clone, Copy)]
pub enum Words {
    All,
    Any,
}

/// Published articles matching `text`, best first, with a snippet. The
/// words are looked up stemmed by `language`'s configuration (and
/// unstemmed) or, without one, by every configuration an article may have
/// been indexed with.
pub async fn search(
    tx: &mut PgConnection,
    tenant: Uuid,
    text: &str,
    words: Words,
    language: Option<&str>,
    public_only: bool,
    limit: i64,
) -> sqlx::Result<Vec<ArticleHit>> {
    let configs: Vec<String> = TEXT_CONFIGS.iter().map(|c| c.to_string()).collect();
    // Any of the words: the ticket's words as an OR of quoted terms.
    let parse = match words {
        Words::All => "websearch_to_tsquery(c, $2)",
        Words::Any => {
            "to_tsquery(c, (SELECT string_agg('''' || replace(replace(lexeme, '\\', '\\\\'), '''', '''''') || '''', ' | ') \
             FROM unnest(to_tsvector('simple', $2)) AS w))"
        }
    };
    // The status is written into the statement, not bound: the search index
    // covers published articles only, and a generic plan could not prove a
    // bound status matches it. Each configuration's parse of the words is
    // kept once (most languages stem most words alike), which keeps the
    // query, and so the ranking, small.
    let published = ArticleStatus::Published as i16;
    let rows: Vec<(Uuid, String, String, String, i16, f32)> = sqlx::query_as(&format!(
        "WITH parts AS (SELECT {parse} AS part FROM unnest(CASE WHEN $6::text IS NULL THEN $3::regconfig[] \
                                                         ELSE ARRAY[crm_text_config($6), 'simple'::regconfig] END) AS c), \
         q AS (SELECT coalesce(string_agg(DISTINCT '(' || part::text || ')', ' | ') FILTER (WHERE numnode(part) > 0), '')::tsquery AS query FROM parts), \
         best AS (SELECT a.id, a.title, a.body, a.language, a.audience, ts_rank(a.search, q.query) AS rank, q.query \
                  FROM articles a, q \
                  WHERE a.tenant_id = $1 AND a.status = {published} AND a.search @@ q.query AND (a.audience = $4 OR NOT $5) \
                    AND ($6::text IS NULL OR a.language = $6 OR a.language LIKE $6 || '-%') \
                  ORDER BY rank DESC, a.id LIMIT $7) \
         SELECT id, title, ts_headline(crm_text_config(language), left(body, 20000), query, \
                'StartSel=«, StopSel=», MaxWords=30, MinWords=10, MaxFragments=1'), language, audience, rank \
         FROM best ORDER BY rank DESC, id"
    ))
    .bind(tenant)
    .bind(text)
    .bind(&configs)
    .bind(crm_proto::crm::servicedesk::v1::ArticleAudience::Public as i16)
    .bind(public_only)
    .bind(language)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, title, snippet, language, audience, rank)| ArticleHit {
                article_id: id.to_string(),
                title,
                snippet,
                language,
                audience: audience.into(),
                rank: f64::from(rank),
            },
        )
        .collect())
}
