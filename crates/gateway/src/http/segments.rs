//! Segments over REST: static lists of contacts and dynamic filters,
//! their members and counts (`/v1/segments`).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use crm_proto::crm::customers::v1 as pb;
use crm_proto::crm::customers::v1::segment_service_client::SegmentServiceClient;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::{self, Problem};
use super::rest::{json_to_value, page_params, parse_uuid, value_to_json};
use super::{Caller, JsonBody, SharedState};

/// A filter tree: exactly one of `all`, `any`, `not`, or a condition
/// (`field` + `op` + `value`). Fields are standard contact fields
/// (`lifecycle_stage`, `owner_id`, `tags`, `country`, `created_at`, ...) or
/// `custom.<key>`.
#[derive(Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct FilterJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub all: Option<Vec<FilterJson>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub any: Option<Vec<FilterJson>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub not: Option<Box<FilterJson>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// eq, neq, contains, starts_with, gt, gte, lt, lte, in, is_set, is_not_set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

impl FilterJson {
    /// The protobuf tree; `path` names the offending node in errors
    /// (`filter.all[2].op`).
    pub fn into_proto(self, path: &str) -> Result<pb::Filter, Problem> {
        let group = |items: Vec<FilterJson>, name: &str| -> Result<pb::FilterGroup, Problem> {
            let filters = items
                .into_iter()
                .enumerate()
                .map(|(i, f)| f.into_proto(&format!("{path}.{name}[{i}]")))
                .collect::<Result<_, _>>()?;
            Ok(pb::FilterGroup { filters })
        };
        let shapes = [
            self.all.is_some(),
            self.any.is_some(),
            self.not.is_some(),
            self.field.is_some(),
        ];
        if shapes.iter().filter(|s| **s).count() != 1 {
            return Err(Problem::invalid(
                path,
                "must hold exactly one of all, any, not or a field condition",
            ));
        }
        let node = if let Some(all) = self.all {
            pb::filter::Node::All(group(all, "all")?)
        } else if let Some(any) = self.any {
            pb::filter::Node::Any(group(any, "any")?)
        } else if let Some(not) = self.not {
            pb::filter::Node::Not(Box::new(not.into_proto(&format!("{path}.not"))?))
        } else {
            let op_name = self.op.unwrap_or_else(|| "eq".into());
            let op = pb::Operator::from_str_name(&format!(
                "OPERATOR_{}",
                op_name.to_ascii_uppercase()
            ))
            .filter(|o| *o != pb::Operator::Unspecified)
            .ok_or_else(|| {
                Problem::invalid(
                    &format!("{path}.op"),
                    "must be eq, neq, contains, starts_with, gt, gte, lt, lte, in, is_set or is_not_set",
                )
            })?;
            pb::filter::Node::Condition(pb::Condition {
                field: self.field.unwrap_or_default(),
                op: op as i32,
                value: self.value.as_ref().map(json_to_value),
            })
        };
        Ok(pb::Filter { node: Some(node) })
    }

    pub fn from_proto(filter: pb::Filter) -> Self {
        let group = |g: pb::FilterGroup| g.filters.into_iter().map(Self::from_proto).collect();
        match filter.node {
            Some(pb::filter::Node::All(g)) => FilterJson {
                all: Some(group(g)),
                ..Default::default()
            },
            Some(pb::filter::Node::Any(g)) => FilterJson {
                any: Some(group(g)),
                ..Default::default()
            },
            Some(pb::filter::Node::Not(inner)) => FilterJson {
                not: Some(Box::new(Self::from_proto(*inner))),
                ..Default::default()
            },
            Some(pb::filter::Node::Condition(c)) => FilterJson {
                field: Some(c.field),
                op: pb::Operator::try_from(c.op).ok().map(|o| {
                    o.as_str_name()
                        .trim_start_matches("OPERATOR_")
                        .to_ascii_lowercase()
                }),
                value: c.value.as_ref().map(value_to_json),
                ..Default::default()
            },
            None => FilterJson::default(),
        }
    }
}

/// static or dynamic.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum SegmentKindName {
    Static,
    Dynamic,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentInput {
    pub name: String,
    #[schema(value_type = SegmentKindName)]
    pub kind: String,
    /// Dynamic segments: which contacts belong.
    pub filter: Option<FilterJson>,
    /// Static segments: the first members.
    #[serde(default)]
    pub contact_ids: Vec<uuid::Uuid>,
}

#[derive(Serialize, ToSchema)]
pub struct SegmentDto {
    pub id: String,
    pub name: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterJson>,
    /// Members now (evaluated for dynamic segments); on single reads only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_count: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct SegmentPage {
    pub items: Vec<SegmentDto>,
    pub next_page_token: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MembersInput {
    pub contact_ids: Vec<uuid::Uuid>,
}

#[derive(Serialize, ToSchema)]
pub struct MembersChanged {
    /// Contacts added or removed (ones already in or out are not counted).
    pub changed: i64,
}

impl From<pb::Segment> for SegmentDto {
    fn from(s: pb::Segment) -> Self {
        SegmentDto {
            id: s.id,
            name: s.name,
            kind: pb::SegmentKind::try_from(s.kind)
                .map(|k| {
                    k.as_str_name()
                        .trim_start_matches("SEGMENT_KIND_")
                        .to_ascii_lowercase()
                })
                .unwrap_or_default(),
            filter: s.filter.map(FilterJson::from_proto),
            member_count: None,
        }
    }
}

fn client(state: &SharedState) -> SegmentServiceClient<tonic::transport::Channel> {
    SegmentServiceClient::new(state.customers.clone())
}

fn ids(ids: Vec<uuid::Uuid>) -> Vec<String> {
    ids.into_iter().map(|id| id.to_string()).collect()
}

#[utoipa::path(post, path = "/v1/segments", tag = "segments", request_body = SegmentInput, security(("bearer" = [])),
    responses((status = 201, body = SegmentDto), (status = 403, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 409, body = problem::ProblemDocument, content_type = "application/problem+json", description = "a segment with this name exists")))]
pub async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    JsonBody(input): JsonBody<SegmentInput>,
) -> Result<(StatusCode, Json<SegmentDto>), Problem> {
    let kind = match input.kind.as_str() {
        "static" => pb::SegmentKind::Static,
        "dynamic" => pb::SegmentKind::Dynamic,
        _ => return Err(Problem::invalid("kind", "must be static or dynamic")),
    };
    let filter = input.filter.map(|f| f.into_proto("filter")).transpose()?;
    let request = state.upstream(
        &caller,
        pb::CreateSegmentRequest {
            segment: Some(pb::Segment {
                name: input.name,
                kind: kind as i32,
                filter,
                ..Default::default()
            }),
            contact_ids: ids(input.contact_ids),
        },
    )?;
    let segment = client(&state)
        .create_segment(request)
        .await?
        .into_inner()
        .segment
        .unwrap_or_default();
    Ok((StatusCode::CREATED, Json(segment.into())))
}

#[utoipa::path(get, path = "/v1/segments", tag = "segments", security(("bearer" = [])),
    params(("page_size" = Option<i32>, Query, minimum = 1, maximum = 500), ("page_token" = Option<String>, Query)),
    responses((status = 200, body = SegmentPage)))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<SegmentPage>, Problem> {
    let page = page_params(&params, &["page_size", "page_token"])?;
    let request = state.upstream(&caller, pb::ListSegmentsRequest { page: Some(page) })?;
    let response = client(&state).list_segments(request).await?.into_inner();
    Ok(Json(SegmentPage {
        items: response
            .segments
            .into_iter()
            .map(SegmentDto::from)
            .collect(),
        next_page_token: response
            .page
            .map(|p| p.next_page_token)
            .filter(|t| !t.is_empty()),
    }))
}

#[utoipa::path(get, path = "/v1/segments/{id}", tag = "segments", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "segment id")),
    responses((status = 200, body = SegmentDto), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SegmentDto>, Problem> {
    parse_uuid("id", &id)?;
    let request = state.upstream(&caller, pb::GetSegmentRequest { id: id.clone() })?;
    let segment = client(&state)
        .get_segment(request)
        .await?
        .into_inner()
        .segment
        .unwrap_or_default();
    let request = state.upstream(&caller, pb::CountSegmentMembersRequest { segment_id: id })?;
    let count = client(&state)
        .count_segment_members(request)
        .await?
        .into_inner()
        .count;
    let mut dto = SegmentDto::from(segment);
    dto.member_count = Some(count);
    Ok(Json(dto))
}

#[utoipa::path(delete, path = "/v1/segments/{id}", tag = "segments", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "segment id")),
    responses((status = 204), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    parse_uuid("id", &id)?;
    let request = state.upstream(&caller, pb::DeleteSegmentRequest { id })?;
    client(&state).delete_segment(request).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/segments/{id}/members", tag = "segments", request_body = MembersInput, security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "static segment id")),
    responses((status = 200, body = MembersChanged), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn add_members(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<MembersInput>,
) -> Result<Json<MembersChanged>, Problem> {
    parse_uuid("id", &id)?;
    let request = state.upstream(
        &caller,
        pb::AddSegmentMembersRequest {
            segment_id: id,
            contact_ids: ids(input.contact_ids),
        },
    )?;
    let changed = client(&state)
        .add_segment_members(request)
        .await?
        .into_inner()
        .added;
    Ok(Json(MembersChanged { changed }))
}

#[utoipa::path(post, path = "/v1/segments/{id}/members/remove", tag = "segments", request_body = MembersInput, security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "static segment id")),
    responses((status = 200, body = MembersChanged), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn remove_members(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<MembersInput>,
) -> Result<Json<MembersChanged>, Problem> {
    parse_uuid("id", &id)?;
    let request = state.upstream(
        &caller,
        pb::RemoveSegmentMembersRequest {
            segment_id: id,
            contact_ids: ids(input.contact_ids),
        },
    )?;
    let changed = client(&state)
        .remove_segment_members(request)
        .await?
        .into_inner()
        .removed;
    Ok(Json(MembersChanged { changed }))
}
