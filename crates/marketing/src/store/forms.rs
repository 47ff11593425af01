//! Lead-capture forms and their submissions.

use chrono::{DateTime, Utc};
use crm_proto::crm::marketing::v1::{
    Form, FormConsent, FormField, FormStatus, FormSubmission, SubmittedLead,
};
use kit::time::to_timestamp;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{audit, id_text};

const COLUMNS: &str = "id, name, campaign_id, fields, consent_channel, consent_wording, consent_required, status, public_key, honeypot_field, \
     thank_you_message, redirect_url, created_at, created_by, updated_at, updated_by, version, \
     (SELECT count(*) FROM form_submissions s WHERE s.tenant_id = forms.tenant_id AND s.form_id = forms.id) AS submission_count";

#[derive(sqlx::FromRow)]
struct FormRow {
    id: Uuid,
    name: String,
    campaign_id: Option<Uuid>,
    fields: sqlx::types::Json<Vec<FormField>>,
    consent_channel: Option<i16>,
    consent_wording: String,
    consent_required: bool,
    status: i16,
    public_key: String,
    honeypot_field: String,
    thank_you_message: String,
    redirect_url: String,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
    submission_count: i64,
}

impl From<FormRow> for Form {
    fn from(r: FormRow) -> Self {
        Form {
            id: r.id.to_string(),
            name: r.name,
            campaign_id: id_text(r.campaign_id),
            fields: r.fields.0,
            consent: r.consent_channel.map(|channel| FormConsent {
                channel: channel.into(),
                wording: r.consent_wording,
                required: r.consent_required,
            }),
            status: r.status.into(),
            public_key: r.public_key,
            honeypot_field: r.honeypot_field,
            thank_you_message: r.thank_you_message,
            redirect_url: r.redirect_url,
            submission_count: r.submission_count,
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

pub async fn insert(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    f: &Form,
    campaign: Option<Uuid>,
    public_key: &str,
    actor: &str,
) -> sqlx::Result<Form> {
    let consent = f.consent.as_ref();
    let row: FormRow = sqlx::query_as(&format!(
        "INSERT INTO forms (tenant_id, id, name, campaign_id, fields, consent_channel, consent_wording, consent_required, status, public_key, \
         honeypot_field, thank_you_message, redirect_url, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&f.name)
    .bind(campaign)
    .bind(sqlx::types::Json(&f.fields))
    .bind(consent.map(|c| c.channel as i16))
    .bind(consent.map(|c| c.wording.as_str()).unwrap_or_default())
    .bind(consent.is_some_and(|c| c.required))
    .bind(FormStatus::Active as i16)
    .bind(public_key)
    .bind(&f.honeypot_field)
    .bind(&f.thank_you_message)
    .bind(&f.redirect_url)
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

pub async fn find(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> sqlx::Result<Option<Form>> {
    let row: Option<FormRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM forms WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(Form::from))
}

/// The active form with this public key.
pub async fn active_by_key(
    tx: &mut PgConnection,
    tenant: Uuid,
    public_key: &str,
) -> sqlx::Result<Option<Form>> {
    let row: Option<FormRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM forms WHERE tenant_id = $1 AND public_key = $2 AND status = $3"
    ))
    .bind(tenant)
    .bind(public_key)
    .bind(FormStatus::Active as i16)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(Form::from))
}

/// Newest first.
pub async fn list(
    tx: &mut PgConnection,
    tenant: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Form>> {
    let rows: Vec<FormRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM forms WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
    ))
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(Form::from).collect())
}

pub async fn set_status(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    status: FormStatus,
    actor: &str,
) -> sqlx::Result<Option<Form>> {
    let row: Option<FormRow> = sqlx::query_as(&format!(
        "UPDATE forms SET status = $3, updated_at = now(), updated_by = $4, version = version + 1 \
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(status as i16)
    .bind(actor)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(Form::from))
}

pub async fn insert_submission(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    form: Uuid,
    s: &FormSubmission,
    point_hashes: &[String],
) -> sqlx::Result<DateTime<Utc>> {
    let campaign = Uuid::parse_str(&s.campaign_id).ok();
    sqlx::query_scalar(
        "INSERT INTO form_submissions (tenant_id, id, form_id, campaign_id, lead, consent_given, consent_channel, consent_wording, page_url, point_hashes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING submitted_at",
    )
    .bind(tenant)
    .bind(id)
    .bind(form)
    .bind(campaign)
    .bind(sqlx::types::Json(s.lead.clone().unwrap_or_default()))
    .bind(s.consent_given)
    .bind((s.consent_channel != 0).then_some(s.consent_channel as i16))
    .bind(&s.consent_wording)
    .bind(&s.page_url)
    .bind(point_hashes)
    .fetch_one(tx)
    .await
}

#[derive(sqlx::FromRow)]
struct SubmissionRow {
    id: Uuid,
    form_id: Uuid,
    campaign_id: Option<Uuid>,
    lead: sqlx::types::Json<SubmittedLead>,
    consent_given: bool,
    consent_channel: Option<i16>,
    consent_wording: String,
    page_url: String,
    submitted_at: DateTime<Utc>,
}

/// Newest first.
pub async fn list_submissions(
    tx: &mut PgConnection,
    tenant: Uuid,
    form: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<FormSubmission>> {
    let rows: Vec<SubmissionRow> = sqlx::query_as(
        "SELECT id, form_id, campaign_id, lead, consent_given, consent_channel, consent_wording, page_url, submitted_at \
         FROM form_submissions WHERE tenant_id = $1 AND form_id = $2 AND ($3::uuid IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
    )
    .bind(tenant)
    .bind(form)
    .bind(after)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| FormSubmission {
            id: r.id.to_string(),
            form_id: r.form_id.to_string(),
            campaign_id: id_text(r.campaign_id),
            lead: Some(r.lead.0),
            consent_given: r.consent_given,
            consent_channel: r.consent_channel.map(i32::from).unwrap_or_default(),
            consent_wording: r.consent_wording,
            page_url: r.page_url,
            submitted_at: Some(to_timestamp(r.submitted_at)),
        })
        .collect())
}

/// Erasure: the submissions that gave one of these contact points go.
pub async fn erase_points(
    tx: &mut PgConnection,
    tenant: Uuid,
    hashes: &[String],
) -> sqlx::Result<u64> {
    if hashes.is_empty() {
        return Ok(0);
    }
    Ok(
        sqlx::query("DELETE FROM form_submissions WHERE tenant_id = $1 AND point_hashes && $2")
            .bind(tenant)
            .bind(hashes)
            .execute(tx)
            .await?
            .rows_affected(),
    )
}
