//! Answers to satisfaction surveys.

use chrono::{DateTime, Utc};
use crm_proto::crm::servicedesk::v1::SatisfactionRating;
use kit::access::Scope;
use kit::time::to_timestamp;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::id_text;

#[derive(sqlx::FromRow)]
struct RatingRow {
    ticket_id: Uuid,
    number: i64,
    requester_contact_id: Option<Uuid>,
    account_id: Option<Uuid>,
    score: i16,
    comment: String,
    answered_at: DateTime<Utc>,
}

impl From<RatingRow> for SatisfactionRating {
    fn from(r: RatingRow) -> Self {
        SatisfactionRating {
            ticket_id: r.ticket_id.to_string(),
            ticket_number: r.number,
            requester_contact_id: id_text(r.requester_contact_id),
            account_id: id_text(r.account_id),
            score: i32::from(r.score),
            comment: r.comment,
            answered_at: Some(to_timestamp(r.answered_at)),
        }
    }
}

const COLUMNS: &str = "r.ticket_id, t.number, r.requester_contact_id, r.account_id, r.score, r.comment, r.answered_at";

/// Records the answer for a ticket (its requester and account as they are
/// now); a second answer is a unique violation.
pub async fn insert(
    tx: &mut PgConnection,
    tenant: Uuid,
    ticket: Uuid,
    score: i32,
    comment: &str,
    at: DateTime<Utc>,
) -> sqlx::Result<SatisfactionRating> {
    let row: RatingRow = sqlx::query_as(&format!(
        "WITH r AS (INSERT INTO satisfaction_ratings \
         (tenant_id, ticket_id, requester_contact_id, account_id, score, comment, answered_at) \
         SELECT tenant_id, id, requester_contact_id, account_id, $3, $4, $5 FROM tickets \
         WHERE tenant_id = $1 AND id = $2 RETURNING *) \
         SELECT {COLUMNS} FROM r JOIN tickets t ON t.tenant_id = r.tenant_id AND t.id = r.ticket_id"
    ))
    .bind(tenant)
    .bind(ticket)
    .bind(score as i16)
    .bind(comment)
    .bind(at)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

/// Whether the ticket's survey was answered.
pub async fn answered(tx: &mut PgConnection, tenant: Uuid, ticket: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM satisfaction_ratings WHERE tenant_id = $1 AND ticket_id = $2)",
    )
    .bind(tenant)
    .bind(ticket)
    .fetch_one(tx)
    .await
}

/// Answers on tickets `scope` covers, newest first; `after` is the last
/// row's (answer time in microseconds, ticket id).
pub async fn list(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    requester: Option<Uuid>,
    account: Option<Uuid>,
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<SatisfactionRating>> {
    let mut query = QueryBuilder::<Postgres>::new(format!(
        "SELECT {COLUMNS} FROM satisfaction_ratings r JOIN tickets t \
         ON t.tenant_id = r.tenant_id AND t.id = r.ticket_id WHERE r.tenant_id = "
    ));
    query.push_bind(tenant);
    if let Some(requester) = requester {
        query
            .push(" AND r.requester_contact_id = ")
            .push_bind(requester);
    }
    if let Some(account) = account {
        query.push(" AND r.account_id = ").push_bind(account);
    }
    // The ticket's visibility (owner_id / team_id are the ticket's columns).
    query.push(" AND ");
    scope.push_condition(&mut query);
    if let Some((micros, ticket)) = after {
        query
            .push(" AND (r.answered_at, r.ticket_id) < (")
            .push_bind(DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or_default())
            .push(", ")
            .push_bind(ticket)
            .push(")");
    }
    query
        .push(" ORDER BY r.answered_at DESC, r.ticket_id DESC LIMIT ")
        .push_bind(limit);
    let rows: Vec<RatingRow> = query.build_query_as().fetch_all(tx).await?;
    Ok(rows.into_iter().map(Into::into).collect())
}
