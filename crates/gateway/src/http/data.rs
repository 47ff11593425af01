//! Bulk data and data-subject requests over REST: CSV / JSON-lines imports
//! streamed to the customers service, CSV exports streamed back, and the
//! GDPR export and erasure of one contact. The customers service audits
//! exports and erasures itself (any protocol); the audit log gathers them.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use crm_proto::crm::customers::v1 as pb;
use crm_proto::crm::customers::v1::data_service_client::DataServiceClient;
use futures::StreamExt;
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::{self, Problem};
use super::rest::{bool_param, id_param, parse_uuid};
use super::{Caller, SharedState};

/// Row errors kept in an import's answer; the counts always cover all rows.
const MAX_REPORTED_ERRORS: usize = 1000;

#[derive(Serialize, ToSchema)]
pub struct RowErrorDto {
    /// 1-based data row (the CSV header is not counted).
    pub row: i64,
    pub column: String,
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct ImportReport {
    pub rows_read: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub failed: i64,
    pub dry_run: bool,
    /// The first 1,000 rows that were not imported, with the reason.
    pub errors: Vec<RowErrorDto>,
}

fn client(state: &SharedState) -> Result<DataServiceClient<tonic::transport::Channel>, Problem> {
    Ok(DataServiceClient::new(state.service("customers")?))
}

fn entity(params: &HashMap<String, String>) -> Result<pb::Entity, Problem> {
    match params.get("entity").map(String::as_str) {
        None | Some("contacts") => Ok(pb::Entity::Contact),
        Some("accounts") => Ok(pb::Entity::Account),
        Some(_) => Err(Problem::invalid("entity", "must be contacts or accounts")),
    }
}

fn import_header(params: &HashMap<String, String>) -> Result<pb::ImportHeader, Problem> {
    let known = ["entity", "format", "dedup", "dry_run", "owner_id"];
    if let Some(unknown) = params
        .keys()
        .find(|k| !known.contains(&k.as_str()) && !k.starts_with("map."))
    {
        return Err(Problem::invalid(
            unknown,
            "is not a parameter of imports (map a column with map.<column>=<field>)",
        ));
    }
    let format = match params.get("format").map(String::as_str) {
        None | Some("csv") => pb::ImportFormat::Csv,
        Some("jsonl") => pb::ImportFormat::JsonLines,
        Some(_) => return Err(Problem::invalid("format", "must be csv or jsonl")),
    };
    let dedup = match params.get("dedup").map(String::as_str) {
        None | Some("skip") => pb::DedupPolicy::Skip,
        Some("update") => pb::DedupPolicy::Update,
        Some("create") => pb::DedupPolicy::Create,
        Some(_) => return Err(Problem::invalid("dedup", "must be skip, update or create")),
    };
    let dry_run = bool_param(params, "dry_run")?;
    let owner_id = id_param(params, "owner_id")?;
    let mapping = params
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("map.").map(|c| (c.to_owned(), v.clone())))
        .collect();
    Ok(pb::ImportHeader {
        entity: entity(params)? as i32,
        format: format as i32,
        mapping,
        dedup: dedup as i32,
        dry_run,
        owner_id,
    })
}

/// `POST /v1/imports`: the body (any size) is streamed to the service as it
/// arrives; the answer is the final summary.
#[utoipa::path(post, path = "/v1/imports", tag = "data", security(("bearer" = [])),
    request_body(content = String, content_type = "text/csv", description = "CSV with a header row, or JSON lines with format=jsonl"),
    params(("entity" = Option<String>, Query, description = "contacts (default) or accounts"),
           ("format" = Option<String>, Query, description = "csv (default) or jsonl"),
           ("dedup" = Option<String>, Query, description = "skip (default), update or create: what a row matching an existing record does"),
           ("dry_run" = Option<bool>, Query, description = "validate and report, write nothing"),
           ("owner_id" = Option<uuid::Uuid>, Query, description = "owner of created records; the caller by default")),
    responses((status = 200, body = ImportReport), (status = 403, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn import(
    State(state): State<SharedState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
    request: Request,
) -> Result<Json<ImportReport>, Problem> {
    let header = import_header(&params)?;
    let dry_run = header.dry_run;
    let first = pb::ImportRequest {
        part: Some(pb::import_request::Part::Header(header)),
    };
    // A body that breaks off ends the stream; the service then reports the
    // rows it saw, and nothing half-parsed is written.
    let chunks = request
        .into_body()
        .into_data_stream()
        .take_while(|chunk| std::future::ready(chunk.is_ok()))
        .filter_map(|chunk| async move { chunk.ok() })
        .map(|bytes| pb::ImportRequest {
            part: Some(pb::import_request::Part::Chunk(bytes.to_vec())),
        });
    let outbound = futures::stream::iter([first]).chain(chunks);
    let mut upstream = state.upstream(&caller, outbound)?;
    // Imports outlive the normal deadline; the service bounds each batch.
    upstream.set_timeout(std::time::Duration::from_secs(3600));
    let mut progress = client(&state)?.import(upstream).await?.into_inner();
    let mut report = ImportReport {
        rows_read: 0,
        created: 0,
        updated: 0,
        skipped: 0,
        failed: 0,
        dry_run,
        errors: Vec::new(),
    };
    while let Some(message) = progress.message().await? {
        let room = MAX_REPORTED_ERRORS.saturating_sub(report.errors.len());
        report
            .errors
            .extend(message.errors.into_iter().take(room).map(|e| RowErrorDto {
                row: e.row,
                column: e.column,
                reason: e.reason,
            }));
        report.rows_read = message.rows_read;
        report.created = message.created;
        report.updated = message.updated;
        report.skipped = message.skipped;
        report.failed = message.failed;
        if message.done {
            break;
        }
    }
    Ok(Json(report))
}

/// `GET /v1/exports?entity=contacts`: every visible record as CSV, streamed.
#[utoipa::path(get, path = "/v1/exports", tag = "data", security(("bearer" = [])),
    params(("entity" = Option<String>, Query, description = "contacts (default) or accounts")),
    responses((status = 200, content_type = "text/csv", body = String), (status = 403, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn export(
    State(state): State<SharedState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    if let Some(unknown) = params.keys().find(|k| k.as_str() != "entity") {
        return Err(Problem::invalid(unknown, "is not a parameter of exports"));
    }
    let entity = entity(&params)?;
    let mut upstream = state.upstream(
        &caller,
        pb::ExportRequest {
            entity: entity as i32,
            filter: None,
        },
    )?;
    upstream.set_timeout(std::time::Duration::from_secs(3600));
    let mut stream = client(&state)?.export(upstream).await?.into_inner();
    // The first chunk proves the export is allowed before headers go out.
    let first = stream.message().await?.map(|m| m.chunk).unwrap_or_default();
    let name = if entity == pb::Entity::Account {
        "accounts"
    } else {
        "contacts"
    };
    let rest = stream.map(|message| {
        message
            .map(|m| axum::body::Bytes::from(m.chunk))
            .map_err(|status| std::io::Error::other(status.message().to_owned()))
    });
    let body = futures::stream::iter([Ok(axum::body::Bytes::from(first))]).chain(rest);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// `GET /v1/contacts/{id}/personal-data`: everything held about a contact
/// (GDPR access request), as one JSON document.
#[utoipa::path(get, path = "/v1/contacts/{id}/personal-data", tag = "data", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "contact id")),
    responses((status = 200, body = Object, description = "the contact, its activities, segment memberships and consent history"),
              (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn personal_data(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    parse_uuid("id", &id)?;
    let request = state.upstream(
        &caller,
        pb::ExportContactDataRequest {
            contact_id: id.clone(),
        },
    )?;
    let json = client(&state)?
        .export_contact_data(request)
        .await?
        .into_inner()
        .json;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// `POST /v1/contacts/{id}/erase`: removes a contact's personal data for good.
#[utoipa::path(post, path = "/v1/contacts/{id}/erase", tag = "data", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "contact id")),
    responses((status = 204), (status = 403, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn erase(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    parse_uuid("id", &id)?;
    let request = state.upstream(
        &caller,
        pb::EraseContactRequest {
            contact_id: id.clone(),
        },
    )?;
    client(&state)?.erase_contact(request).await?;
    Ok(StatusCode::NO_CONTENT)
}
