//! Root causes of complaints and feedback, and NPS surveys of accounts.

use chrono::{DateTime, Utc};
use crm_proto::crm::servicedesk::v1::{NpsResponse, NpsSurvey, RootCause};
use kit::time::to_timestamp;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{audit, checked_id, id_text};
use crate::domain::mail::MailKind;

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

// ---- NPS

/// Records a survey, its invitations and one mail per invited contact, in
/// the caller's transaction.
pub async fn insert_survey(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    s: &NpsSurvey,
    contacts: &[Uuid],
    actor: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<NpsSurvey> {
    let row: SurveyRow = sqlx::query_as(&format!(
        "INSERT INTO nps_surveys (tenant_id, id, account_id, mailbox_id, invited, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {SURVEY_COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(checked_id(&s.account_id))
    .bind(checked_id(&s.mailbox_id))
    .bind(contacts.len() as i32)
    .bind(actor)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO nps_invitations (tenant_id, survey_id, contact_id) \
         SELECT $1, $2, unnest($3::uuid[])",
    )
    .bind(tenant)
    .bind(id)
    .bind(contacts)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO mail_queue (tenant_id, id, kind, contact_id, mailbox_id, nps_survey_id, next_at) \
         SELECT $1, gen_random_uuid(), $2, c, $3, $4, $5 FROM unnest($6::uuid[]) AS c",
    )
    .bind(tenant)
    .bind(MailKind::Nps as i16)
    .bind(checked_id(&s.mailbox_id))
    .bind(id)
    .bind(now)
    .bind(contacts)
    .execute(&mut *tx)
    .await?;
    let mut survey = NpsSurvey::from(row);
    survey.contact_ids = contacts.iter().map(Uuid::to_string).collect();
    Ok(survey)
}

#[derive(sqlx::FromRow)]
struct SurveyRow {
    id: Uuid,
    account_id: Uuid,
    mailbox_id: Uuid,
    invited: i32,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

impl From<SurveyRow> for NpsSurvey {
    fn from(r: SurveyRow) -> Self {
        NpsSurvey {
            id: r.id.to_string(),
            account_id: r.account_id.to_string(),
            mailbox_id: r.mailbox_id.to_string(),
            contact_ids: Vec::new(),
            invited: r.invited,
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

const SURVEY_COLUMNS: &str =
    "id, account_id, mailbox_id, invited, created_at, created_by, updated_at, updated_by, version";

/// A survey with the contacts it asked.
pub async fn find_survey(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<NpsSurvey>> {
    let row: Option<SurveyRow> = sqlx::query_as(&format!(
        "SELECT {SURVEY_COLUMNS} FROM nps_surveys WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let contacts: Vec<Uuid> = sqlx::query_scalar(
        "SELECT contact_id FROM nps_invitations WHERE tenant_id = $1 AND survey_id = $2 ORDER BY contact_id",
    )
    .bind(tenant)
    .bind(id)
    .fetch_all(tx)
    .await?;
    let mut survey = NpsSurvey::from(row);
    survey.contact_ids = contacts.iter().map(Uuid::to_string).collect();
    Ok(Some(survey))
}

/// The account a survey asked, if `contact` is among those it invited.
pub async fn invitation(
    tx: &mut PgConnection,
    tenant: Uuid,
    survey: Uuid,
    contact: Uuid,
) -> sqlx::Result<Option<(Uuid, Uuid)>> {
    sqlx::query_as(
        "SELECT s.account_id, s.mailbox_id FROM nps_invitations i JOIN nps_surveys s \
         ON s.tenant_id = i.tenant_id AND s.id = i.survey_id \
         WHERE i.tenant_id = $1 AND i.survey_id = $2 AND i.contact_id = $3",
    )
    .bind(tenant)
    .bind(survey)
    .bind(contact)
    .fetch_optional(tx)
    .await
}

pub async fn nps_answered(
    tx: &mut PgConnection,
    tenant: Uuid,
    survey: Uuid,
    contact: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM nps_responses WHERE tenant_id = $1 AND survey_id = $2 AND contact_id = $3)",
    )
    .bind(tenant)
    .bind(survey)
    .bind(contact)
    .fetch_one(tx)
    .await
}

#[derive(sqlx::FromRow)]
struct ResponseRow {
    id: Uuid,
    survey_id: Uuid,
    account_id: Uuid,
    contact_id: Option<Uuid>,
    score: i16,
    comment: String,
    answered_at: DateTime<Utc>,
}

impl From<ResponseRow> for NpsResponse {
    fn from(r: ResponseRow) -> Self {
        NpsResponse {
            survey_id: r.survey_id.to_string(),
            account_id: r.account_id.to_string(),
            contact_id: id_text(r.contact_id),
            score: i32::from(r.score),
            comment: r.comment,
            answered_at: Some(to_timestamp(r.answered_at)),
        }
    }
}

const RESPONSE_COLUMNS: &str = "id, survey_id, account_id, contact_id, score, comment, answered_at";

/// A second answer to one invitation is a unique violation.
#[allow(clippy::too_many_arguments)]
pub async fn insert_response(
    tx: &mut PgConnection,
    tenant: Uuid,
    survey: Uuid,
    account: Uuid,
    contact: Uuid,
    score: i32,
    comment: &str,
    at: DateTime<Utc>,
) -> sqlx::Result<NpsResponse> {
    let row: ResponseRow = sqlx::query_as(&format!(
        "INSERT INTO nps_responses (tenant_id, id, survey_id, account_id, contact_id, score, comment, answered_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {RESPONSE_COLUMNS}"
    ))
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(survey)
    .bind(account)
    .bind(contact)
    .bind(score as i16)
    .bind(comment)
    .bind(at)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

/// An account's counts: answers, promoters (9-10), detractors (0-6),
/// the last answer's time.
pub async fn summary(
    tx: &mut PgConnection,
    tenant: Uuid,
    account: Uuid,
    since: Option<DateTime<Utc>>,
) -> sqlx::Result<(i64, i64, i64, Option<DateTime<Utc>>)> {
    sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE score >= 9), count(*) FILTER (WHERE score <= 6), max(answered_at) \
         FROM nps_responses WHERE tenant_id = $1 AND account_id = $2 AND ($3::timestamptz IS NULL OR answered_at >= $3)",
    )
    .bind(tenant)
    .bind(account)
    .bind(since)
    .fetch_one(tx)
    .await
}

/// An account's answers, newest first; `after` is the last row's (answer
/// time in microseconds, id).
pub async fn list_responses(
    tx: &mut PgConnection,
    tenant: Uuid,
    account: Uuid,
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, NpsResponse)>> {
    let (micros, id) = after.unzip();
    let at = micros.map(|m| DateTime::<Utc>::from_timestamp_micros(m).unwrap_or_default());
    let rows: Vec<ResponseRow> = sqlx::query_as(&format!(
        "SELECT {RESPONSE_COLUMNS} FROM nps_responses WHERE tenant_id = $1 AND account_id = $2 \
         AND ($3::timestamptz IS NULL OR (answered_at, id) < ($3, $4)) \
         ORDER BY answered_at DESC, id DESC LIMIT $5"
    ))
    .bind(tenant)
    .bind(account)
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.into())).collect())
}
