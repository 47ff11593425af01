//! Activities over REST: log one (`POST /v1/activities`) and read a
//! contact's timeline (`GET /v1/contacts/{id}/activities`, newest first).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use crm_proto::crm::customers::v1 as pb;
use crm_proto::crm::customers::v1::activity_service_client::ActivityServiceClient;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::{self, Problem};
use super::rest::{bool_param, id_param, non_empty, page_params, parse_uuid, timestamp};
use super::{Caller, JsonBody, SharedState};

/// note, call, email, meeting, chat or task.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ActivityKindName {
    Note,
    Call,
    Email,
    Meeting,
    Chat,
    Task,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityInput {
    #[schema(value_type = ActivityKindName)]
    pub kind: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub body: String,
    pub contact_id: Option<String>,
    pub account_id: Option<String>,
    /// RFC 3339; now when absent.
    pub occurred_at: Option<String>,
    pub ends_at: Option<String>,
    #[serde(default)]
    pub duration_seconds: i32,
    #[serde(default)]
    pub outcome: String,
    /// Tasks: when it is due and when to remind (RFC 3339).
    pub due_at: Option<String>,
    pub remind_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ActivityDto {
    pub id: String,
    pub kind: String,
    pub subject: String,
    pub body: String,
    pub contact_id: Option<String>,
    pub account_id: Option<String>,
    pub occurred_at: Option<String>,
    pub duration_seconds: i32,
    pub outcome: String,
    pub due_at: Option<String>,
    pub completed_at: Option<String>,
    pub version: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ActivityPage {
    pub items: Vec<ActivityDto>,
    pub next_page_token: Option<String>,
}

impl From<pb::Activity> for ActivityDto {
    fn from(a: pb::Activity) -> Self {
        let kind = pb::ActivityKind::try_from(a.kind)
            .map(|k| {
                k.as_str_name()
                    .trim_start_matches("ACTIVITY_KIND_")
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let task = a.task.unwrap_or_default();
        ActivityDto {
            id: a.id,
            kind,
            subject: a.subject,
            body: a.body,
            contact_id: non_empty(a.contact_id),
            account_id: non_empty(a.account_id),
            occurred_at: timestamp(a.occurred_at.as_ref()),
            duration_seconds: a.duration_seconds,
            outcome: a.outcome,
            due_at: timestamp(task.due_at.as_ref()),
            completed_at: timestamp(task.completed_at.as_ref()),
            version: a.audit.map(|audit| audit.version).unwrap_or_default(),
        }
    }
}

fn time(field: &str, raw: Option<&str>) -> Result<Option<prost_types::Timestamp>, Problem> {
    raw.map(|raw| {
        chrono::DateTime::parse_from_rfc3339(raw)
            .map(|t| kit::time::to_timestamp(t.with_timezone(&chrono::Utc)))
            .map_err(|_| Problem::invalid(field, "must be an RFC 3339 timestamp"))
    })
    .transpose()
}

#[utoipa::path(post, path = "/v1/activities", tag = "activities", request_body = ActivityInput, security(("bearer" = [])),
    responses((status = 201, body = ActivityDto), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    JsonBody(input): JsonBody<ActivityInput>,
) -> Result<(StatusCode, Json<ActivityDto>), Problem> {
    let kind = pb::ActivityKind::from_str_name(&format!(
        "ACTIVITY_KIND_{}",
        input.kind.to_ascii_uppercase()
    ))
    .filter(|k| *k != pb::ActivityKind::Unspecified)
    .ok_or_else(|| Problem::invalid("kind", "must be note, call, email, meeting, chat or task"))?;
    let is_task = kind == pb::ActivityKind::Task;
    let task = is_task.then(|| -> Result<pb::TaskDetails, Problem> {
        Ok(pb::TaskDetails {
            due_at: time("due_at", input.due_at.as_deref())?,
            remind_at: time("remind_at", input.remind_at.as_deref())?,
            ..Default::default()
        })
    });
    let activity = pb::Activity {
        kind: kind as i32,
        subject: input.subject,
        body: input.body,
        contact_id: input.contact_id.unwrap_or_default(),
        account_id: input.account_id.unwrap_or_default(),
        occurred_at: time("occurred_at", input.occurred_at.as_deref())?,
        ends_at: time("ends_at", input.ends_at.as_deref())?,
        duration_seconds: input.duration_seconds,
        outcome: input.outcome,
        task: task.transpose()?,
        ..Default::default()
    };
    let request = state.upstream(
        &caller,
        pb::LogActivityRequest {
            activity: Some(activity),
        },
    )?;
    let saved = client(&state)
        .log_activity(request)
        .await?
        .into_inner()
        .activity
        .unwrap_or_default();
    Ok((StatusCode::CREATED, Json(saved.into())))
}

#[utoipa::path(get, path = "/v1/contacts/{id}/activities", tag = "activities", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "contact id"),
           ("page_size" = Option<i32>, Query, minimum = 1, maximum = 500), ("page_token" = Option<String>, Query)),
    responses((status = 200, body = ActivityPage), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn timeline(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<ActivityPage>, Problem> {
    let page = page_params(&params, &["page_size", "page_token"])?;
    let request = state.upstream(
        &caller,
        pb::ListTimelineRequest {
            contact_id: id,
            account_id: String::new(),
            page: Some(page),
        },
    )?;
    let response = client(&state).list_timeline(request).await?.into_inner();
    Ok(Json(ActivityPage {
        items: response
            .activities
            .into_iter()
            .map(ActivityDto::from)
            .collect(),
        next_page_token: response
            .page
            .map(|p| p.next_page_token)
            .filter(|t| !t.is_empty()),
    }))
}

fn client(state: &SharedState) -> ActivityServiceClient<tonic::transport::Channel> {
    ActivityServiceClient::new(state.customers.clone())
}

#[utoipa::path(get, path = "/v1/activities/{id}", tag = "activities", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "activity id")),
    responses((status = 200, body = ActivityDto), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ActivityDto>, Problem> {
    parse_uuid("id", &id)?;
    let request = state.upstream(&caller, pb::GetActivityRequest { id })?;
    let activity = client(&state)
        .get_activity(request)
        .await?
        .into_inner()
        .activity
        .unwrap_or_default();
    Ok(Json(activity.into()))
}

#[utoipa::path(delete, path = "/v1/activities/{id}", tag = "activities", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "activity id")),
    responses((status = 204), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    parse_uuid("id", &id)?;
    let request = state.upstream(&caller, pb::DeleteActivityRequest { id })?;
    client(&state).delete_activity(request).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/tasks", tag = "activities", security(("bearer" = [])),
    params(("assignee_id" = Option<uuid::Uuid>, Query, description = "only this user's tasks"),
           ("include_completed" = Option<bool>, Query),
           ("page_size" = Option<i32>, Query, minimum = 1, maximum = 500), ("page_token" = Option<String>, Query)),
    responses((status = 200, body = ActivityPage)))]
pub async fn tasks(
    State(state): State<SharedState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<ActivityPage>, Problem> {
    let page = page_params(
        &params,
        &[
            "page_size",
            "page_token",
            "assignee_id",
            "include_completed",
        ],
    )?;
    let assignee_id = id_param(&params, "assignee_id")?;
    let include_completed = bool_param(&params, "include_completed")?;
    let request = state.upstream(
        &caller,
        pb::ListTasksRequest {
            assignee_id,
            include_completed,
            page: Some(page),
            ..Default::default()
        },
    )?;
    let response = client(&state).list_tasks(request).await?.into_inner();
    Ok(Json(ActivityPage {
        items: response.tasks.into_iter().map(ActivityDto::from).collect(),
        next_page_token: response
            .page
            .map(|p| p.next_page_token)
            .filter(|t| !t.is_empty()),
    }))
}

#[utoipa::path(post, path = "/v1/tasks/{id}/complete", tag = "activities", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "task id")),
    responses((status = 200, body = ActivityDto), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn complete(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ActivityDto>, Problem> {
    parse_uuid("id", &id)?;
    let request = state.upstream(&caller, pb::CompleteTaskRequest { id })?;
    let task = client(&state)
        .complete_task(request)
        .await?
        .into_inner()
        .task
        .unwrap_or_default();
    Ok(Json(task.into()))
}
