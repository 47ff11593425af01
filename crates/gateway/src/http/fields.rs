//! Custom field definitions over REST (`/v1/fields/{entity}`): admins
//! define the fields every contact or account write is checked against.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use crm_proto::crm::customers::v1 as pb;
use crm_proto::crm::customers::v1::field_service_client::FieldServiceClient;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::{self, Problem};
use super::{Caller, JsonBody, SharedState};

/// text, number, decimal, date, bool, single_select, multi_select, url or email.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum FieldTypeName {
    Text,
    Number,
    Decimal,
    Date,
    Bool,
    SingleSelect,
    MultiSelect,
    Url,
    Email,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldInput {
    /// snake_case, unique per entity: `contract_tier`.
    pub key: String,
    #[serde(default)]
    pub label: String,
    #[serde(rename = "type")]
    #[schema(value_type = FieldTypeName)]
    pub field_type: String,
    #[serde(default)]
    pub required: bool,
    /// Allowed values of select fields.
    #[serde(default)]
    pub options: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct FieldDto {
    pub entity: String,
    pub key: String,
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: String,
    pub required: bool,
    pub options: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct FieldList {
    pub items: Vec<FieldDto>,
}

fn entity(raw: &str) -> Result<pb::Entity, Problem> {
    match raw {
        "contacts" => Ok(pb::Entity::Contact),
        "accounts" => Ok(pb::Entity::Account),
        _ => Err(Problem::invalid("entity", "must be contacts or accounts")),
    }
}

fn enum_name(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_ascii_lowercase()
}

impl From<pb::FieldDefinition> for FieldDto {
    fn from(f: pb::FieldDefinition) -> Self {
        FieldDto {
            entity: match pb::Entity::try_from(f.entity) {
                Ok(pb::Entity::Account) => "accounts".into(),
                _ => "contacts".into(),
            },
            key: f.key,
            label: f.label,
            field_type: pb::FieldType::try_from(f.r#type)
                .map(|t| enum_name(t.as_str_name(), "FIELD_TYPE_"))
                .unwrap_or_default(),
            required: f.required,
            options: f.options,
        }
    }
}

fn client(state: &SharedState) -> FieldServiceClient<tonic::transport::Channel> {
    FieldServiceClient::new(state.customers.clone())
}

#[utoipa::path(put, path = "/v1/fields/{entity}", tag = "fields", request_body = FieldInput, security(("bearer" = [])),
    params(("entity" = String, Path, description = "contacts or accounts")),
    responses((status = 200, body = FieldDto), (status = 403, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn define(
    State(state): State<SharedState>,
    caller: Caller,
    Path(raw_entity): Path<String>,
    JsonBody(input): JsonBody<FieldInput>,
) -> Result<Json<FieldDto>, Problem> {
    let entity = entity(&raw_entity)?;
    let field_type = pb::FieldType::from_str_name(&format!(
        "FIELD_TYPE_{}",
        input.field_type.to_ascii_uppercase()
    ))
    .filter(|t| *t != pb::FieldType::Unspecified)
    .ok_or_else(|| {
        Problem::invalid(
            "type",
            "must be text, number, decimal, date, bool, single_select, multi_select, url or email",
        )
    })?;
    let request = state.upstream(
        &caller,
        pb::DefineFieldRequest {
            field: Some(pb::FieldDefinition {
                entity: entity as i32,
                key: input.key,
                label: input.label,
                r#type: field_type as i32,
                required: input.required,
                options: input.options,
            }),
        },
    )?;
    let field = client(&state)
        .define_field(request)
        .await?
        .into_inner()
        .field
        .unwrap_or_default();
    Ok(Json(field.into()))
}

#[utoipa::path(get, path = "/v1/fields/{entity}", tag = "fields", security(("bearer" = [])),
    params(("entity" = String, Path, description = "contacts or accounts")),
    responses((status = 200, body = FieldList)))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Path(raw_entity): Path<String>,
) -> Result<Json<FieldList>, Problem> {
    let entity = entity(&raw_entity)?;
    let request = state.upstream(
        &caller,
        pb::ListFieldsRequest {
            entity: entity as i32,
        },
    )?;
    let fields = client(&state)
        .list_fields(request)
        .await?
        .into_inner()
        .fields;
    Ok(Json(FieldList {
        items: fields.into_iter().map(FieldDto::from).collect(),
    }))
}

#[utoipa::path(delete, path = "/v1/fields/{entity}/{key}", tag = "fields", security(("bearer" = [])),
    params(("entity" = String, Path, description = "contacts or accounts"), ("key" = String, Path)),
    responses((status = 204), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<SharedState>,
    caller: Caller,
    Path((raw_entity, key)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    let entity = entity(&raw_entity)?;
    let request = state.upstream(
        &caller,
        pb::DeleteFieldRequest {
            entity: entity as i32,
            key,
        },
    )?;
    client(&state).delete_field(request).await?;
    Ok(StatusCode::NO_CONTENT)
}
