//! `/v1/contacts`: REST/JSON over `crm.customers.v1.ContactService`.
//!
//! Versions travel as ETags (`"<version>"`); `If-Match` on PATCH and DELETE
//! becomes the service's `expected_version`, and a mismatch answers 412.
//! `Idempotency-Key` on POST replays the first response to retries.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use crm_proto::crm::customers::v1 as pb;
use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::problem::{self, Problem};
use super::rest::{
    idempotent_create, if_match, json_to_value, non_empty, page_params, parse_stage, stage_name,
    timestamp, value_to_json, with_etag,
};
use super::{parse_json, Caller, RawBody, SharedState};

/// An e-mail address of a contact.
#[derive(Serialize, Deserialize, ToSchema, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct EmailDto {
    pub address: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub primary: bool,
}

/// A phone number (E.164 after normalisation).
#[derive(Serialize, Deserialize, ToSchema, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct PhoneDto {
    pub number: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub primary: bool,
}

/// A contact as returned by the API.
#[derive(Serialize, ToSchema)]
pub struct ContactDto {
    pub id: String,
    pub first_name: String,
    pub middle_name: String,
    pub last_name: String,
    pub title: String,
    pub account_id: Option<String>,
    pub birthday: Option<String>,
    pub emails: Vec<EmailDto>,
    pub phones: Vec<PhoneDto>,
    /// subscriber, lead, marketing_qualified, sales_qualified, opportunity, customer, evangelist, churned
    pub lifecycle_stage: Option<String>,
    pub language: String,
    pub owner_id: Option<String>,
    pub team_id: Option<String>,
    pub tags: Vec<String>,
    #[schema(value_type = Object)]
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
    pub source: String,
    pub version: i64,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// Fields to create a contact with, or (on PATCH) the fields to change:
/// a field present in the body is written, an absent one is left alone.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    pub first_name: Option<String>,
    pub middle_name: Option<String>,
    pub last_name: Option<String>,
    pub title: Option<String>,
    pub account_id: Option<String>,
    pub birthday: Option<String>,
    pub emails: Option<Vec<EmailDto>>,
    pub phones: Option<Vec<PhoneDto>>,
    pub lifecycle_stage: Option<String>,
    pub language: Option<String>,
    pub owner_id: Option<String>,
    pub team_id: Option<String>,
    pub tags: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<serde_json::Map<String, serde_json::Value>>,
    pub source: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ContactPage {
    pub items: Vec<ContactDto>,
    /// Pass as `page_token` for the next page; absent on the last page.
    pub next_page_token: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// 1 to 500; 50 by default.
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<i32>,
    pub page_token: Option<String>,
    /// last_name, created_at, updated_at; prefix - for descending.
    pub order_by: Option<String>,
    /// Only contacts with this tag.
    pub tag: Option<String>,
    /// Only contacts in this lifecycle stage (e.g. customer).
    pub lifecycle_stage: Option<String>,
    /// Only contacts of this owner.
    pub owner_id: Option<String>,
}

impl From<pb::Contact> for ContactDto {
    fn from(c: pb::Contact) -> Self {
        let audit = c.audit.unwrap_or_default();
        ContactDto {
            id: c.id,
            first_name: c.first_name,
            middle_name: c.middle_name,
            last_name: c.last_name,
            title: c.title,
            account_id: non_empty(c.account_id),
            birthday: non_empty(c.birthday),
            emails: c
                .emails
                .into_iter()
                .map(|e| EmailDto {
                    address: e.address,
                    label: e.label,
                    primary: e.primary,
                })
                .collect(),
            phones: c
                .phones
                .into_iter()
                .map(|p| PhoneDto {
                    number: p.number,
                    label: p.label,
                    primary: p.primary,
                })
                .collect(),
            lifecycle_stage: stage_name(c.lifecycle_stage),
            language: c.language,
            owner_id: non_empty(c.owner_id),
            team_id: non_empty(c.team_id),
            tags: c.tags,
            custom_fields: c
                .custom_fields
                .iter()
                .map(|(k, v)| (k.clone(), value_to_json(v)))
                .collect(),
            source: c.source,
            version: audit.version,
            created_at: timestamp(audit.created_at.as_ref()),
            updated_at: timestamp(audit.updated_at.as_ref()),
        }
    }
}

impl ContactInput {
    /// The contact message and the names of the fields the body carried.
    fn into_proto(self) -> Result<(pb::Contact, Vec<String>), Problem> {
        let mut contact = pb::Contact::default();
        let mut paths = Vec::new();
        let mut set = |name: &str| paths.push(name.to_owned());
        if let Some(v) = self.first_name {
            contact.first_name = v;
            set("first_name");
        }
        if let Some(v) = self.middle_name {
            contact.middle_name = v;
            set("middle_name");
        }
        if let Some(v) = self.last_name {
            contact.last_name = v;
            set("last_name");
        }
        if let Some(v) = self.title {
            contact.title = v;
            set("title");
        }
        if let Some(v) = self.account_id {
            contact.account_id = v;
            set("account_id");
        }
        if let Some(v) = self.birthday {
            contact.birthday = v;
            set("birthday");
        }
        if let Some(v) = self.emails {
            contact.emails = v
                .into_iter()
                .map(|e| pb::Email {
                    address: e.address,
                    label: e.label,
                    primary: e.primary,
                })
                .collect();
            set("emails");
        }
        if let Some(v) = self.phones {
            contact.phones = v
                .into_iter()
                .map(|p| pb::Phone {
                    number: p.number,
                    label: p.label,
                    primary: p.primary,
                })
                .collect();
            set("phones");
        }
        if let Some(v) = self.lifecycle_stage {
            contact.lifecycle_stage = parse_stage("lifecycle_stage", &v)?;
            set("lifecycle_stage");
        }
        if let Some(v) = self.language {
            contact.language = v;
            set("language");
        }
        if let Some(v) = self.owner_id {
            contact.owner_id = v;
            set("owner_id");
        }
        if let Some(v) = self.team_id {
            contact.team_id = v;
            set("team_id");
        }
        if let Some(v) = self.tags {
            contact.tags = v;
            set("tags");
        }
        if let Some(v) = self.custom_fields {
            for (key, value) in &v {
                contact
                    .custom_fields
                    .insert(key.clone(), json_to_value(value));
                paths.push(format!("custom_fields.{key}"));
            }
        }
        if let Some(v) = self.source {
            contact.source = v;
            paths.push("source".into());
        }
        Ok((contact, paths))
    }
}

fn client(state: &SharedState) -> ContactServiceClient<tonic::transport::Channel> {
    ContactServiceClient::new(state.customers.clone())
}

#[utoipa::path(post, path = "/v1/contacts", tag = "contacts", request_body = ContactInput, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "retries with the same key return the first response")),
    responses((status = 201, body = ContactDto), (status = 400, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 401, body = problem::ProblemDocument, content_type = "application/problem+json"), (status = 403, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 409, body = problem::ProblemDocument, content_type = "application/problem+json"), (status = 422, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    let input: ContactInput = parse_json(&body)?;
    let (contact, _) = input.into_proto()?;
    let create = async {
        let request = state.upstream(
            &caller,
            pb::CreateContactRequest {
                contact: Some(contact),
                request_id: String::new(),
            },
        )?;
        let contact = client(&state)
            .create_contact(request)
            .await?
            .into_inner()
            .contact
            .unwrap_or_default();
        let dto = ContactDto::from(contact);
        let version = dto.version;
        Ok((serde_json::to_value(dto).unwrap_or_default(), version))
    };
    idempotent_create(&state, &caller, &headers, "/v1/contacts", &body, create).await
}

#[utoipa::path(get, path = "/v1/contacts/{id}", tag = "contacts", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "contact id")),
    responses((status = 200, body = ContactDto, headers(("ETag" = String))), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let request = state.upstream(&caller, pb::GetContactRequest { id })?;
    let contact = client(&state)
        .get_contact(request)
        .await?
        .into_inner()
        .contact
        .unwrap_or_default();
    let dto = ContactDto::from(contact);
    Ok(with_etag(StatusCode::OK, dto.version, dto))
}

#[utoipa::path(patch, path = "/v1/contacts/{id}", tag = "contacts", request_body = ContactInput, security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "contact id"), ("If-Match" = Option<String>, Header, description = "ETag of the version being changed")),
    responses((status = 200, body = ContactDto), (status = 400, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json"), (status = 412, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn update(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    let input: ContactInput = parse_json(&body)?;
    let expected_version = if_match(&headers)?;
    let (mut contact, paths) = input.into_proto()?;
    if paths.is_empty() {
        return Err(Problem::invalid(
            "body",
            "name at least one field to change",
        ));
    }
    contact.id = id;
    let request = state.upstream(
        &caller,
        pb::UpdateContactRequest {
            contact: Some(contact),
            update_mask: Some(prost_types::FieldMask { paths }),
            expected_version,
        },
    )?;
    let contact = client(&state)
        .update_contact(request)
        .await?
        .into_inner()
        .contact
        .unwrap_or_default();
    let dto = ContactDto::from(contact);
    Ok(with_etag(StatusCode::OK, dto.version, dto))
}

#[utoipa::path(delete, path = "/v1/contacts/{id}", tag = "contacts", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "contact id"), ("If-Match" = Option<String>, Header, description = "ETag of the version being deleted")),
    responses((status = 204), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json"), (status = 412, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, Problem> {
    let expected_version = if_match(&headers)?;
    let request = state.upstream(
        &caller,
        pb::DeleteContactRequest {
            id,
            expected_version,
        },
    )?;
    client(&state).delete_contact(request).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn condition(field: &str, value: &str) -> pb::Filter {
    pb::Filter {
        node: Some(pb::filter::Node::Condition(pb::Condition {
            field: field.into(),
            op: pb::Operator::Eq as i32,
            value: Some(prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue(value.into())),
            }),
        })),
    }
}

#[utoipa::path(get, path = "/v1/contacts", tag = "contacts", security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = ContactPage), (status = 400, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<ContactPage>, Problem> {
    // Parsed by hand so an unknown or malformed parameter names itself.
    let page = page_params(
        &params,
        &[
            "page_size",
            "page_token",
            "order_by",
            "tag",
            "lifecycle_stage",
            "owner_id",
        ],
    )?;
    let mut filters = Vec::new();
    if let Some(tag) = params.get("tag") {
        filters.push(condition("tags", tag));
    }
    if let Some(stage) = params.get("lifecycle_stage") {
        parse_stage("lifecycle_stage", stage)?;
        filters.push(condition("lifecycle_stage", stage));
    }
    if let Some(owner) = params.get("owner_id") {
        filters.push(condition("owner_id", owner));
    }
    let filter = (!filters.is_empty()).then_some(pb::Filter {
        node: Some(pb::filter::Node::All(pb::FilterGroup { filters })),
    });
    let request = state.upstream(
        &caller,
        pb::ListContactsRequest {
            filter,
            order_by: params.get("order_by").cloned().unwrap_or_default(),
            page: Some(page),
        },
    )?;
    let response = client(&state).list_contacts(request).await?.into_inner();
    Ok(Json(ContactPage {
        items: response
            .contacts
            .into_iter()
            .map(ContactDto::from)
            .collect(),
        next_page_token: response
            .page
            .map(|p| p.next_page_token)
            .filter(|t| !t.is_empty()),
    }))
}
