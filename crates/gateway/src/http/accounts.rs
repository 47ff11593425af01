//! `/v1/accounts`: REST/JSON over `crm.customers.v1.AccountService`, with
//! the same ETag, If-Match and Idempotency-Key rules as contacts.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use crm_proto::crm::common::v1::Money;
use crm_proto::crm::customers::v1 as pb;
use crm_proto::crm::customers::v1::account_service_client::AccountServiceClient;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::problem::{self, Problem};
use super::rest::MoneyDto;
use super::rest::{
    idempotent_create, if_match, json_to_value, non_empty, page_params, parse_stage, stage_name,
    timestamp, value_to_json, with_etag,
};
use super::{parse_json, Caller, RawBody, SharedState};

/// A company as returned by the API.
#[derive(Serialize, ToSchema)]
pub struct AccountDto {
    pub id: String,
    pub name: String,
    pub domain: String,
    pub industry: String,
    pub annual_revenue: Option<MoneyDto>,
    pub phone: String,
    pub website: String,
    pub parent_account_id: Option<String>,
    pub lifecycle_stage: Option<String>,
    pub credit_rating: String,
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

/// Fields of a new account, or (on PATCH) the fields to change.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct AccountInput {
    pub name: Option<String>,
    pub domain: Option<String>,
    pub industry: Option<String>,
    pub annual_revenue: Option<MoneyDto>,
    pub phone: Option<String>,
    pub website: Option<String>,
    pub parent_account_id: Option<String>,
    pub lifecycle_stage: Option<String>,
    pub credit_rating: Option<String>,
    pub owner_id: Option<String>,
    pub team_id: Option<String>,
    pub tags: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<serde_json::Map<String, serde_json::Value>>,
    pub source: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AccountPage {
    pub items: Vec<AccountDto>,
    pub next_page_token: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AccountListParams {
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<i32>,
    pub page_token: Option<String>,
    /// name, created_at, updated_at; prefix - for descending.
    pub order_by: Option<String>,
    pub tag: Option<String>,
    pub domain: Option<String>,
}

impl From<pb::Account> for AccountDto {
    fn from(a: pb::Account) -> Self {
        let audit = a.audit.unwrap_or_default();
        AccountDto {
            id: a.id,
            name: a.name,
            domain: a.domain,
            industry: a.industry,
            annual_revenue: a.annual_revenue.map(|m| MoneyDto {
                amount: m.amount,
                currency: m.currency,
            }),
            phone: a.phone,
            website: a.website,
            parent_account_id: non_empty(a.parent_account_id),
            lifecycle_stage: stage_name(a.lifecycle_stage),
            credit_rating: a.credit_rating,
            owner_id: non_empty(a.owner_id),
            team_id: non_empty(a.team_id),
            tags: a.tags,
            custom_fields: a
                .custom_fields
                .iter()
                .map(|(k, v)| (k.clone(), value_to_json(v)))
                .collect(),
            source: a.source,
            version: audit.version,
            created_at: timestamp(audit.created_at.as_ref()),
            updated_at: timestamp(audit.updated_at.as_ref()),
        }
    }
}

impl AccountInput {
    /// The account message and the names of the fields the body carried.
    fn into_proto(self) -> Result<(pb::Account, Vec<String>), Problem> {
        let mut account = pb::Account::default();
        let mut paths: Vec<String> = Vec::new();
        macro_rules! take {
            ($($field:ident),*) => {
                $(if let Some(value) = self.$field {
                    account.$field = value;
                    paths.push(stringify!($field).to_owned());
                })*
            };
        }
        take!(
            name,
            domain,
            industry,
            phone,
            website,
            parent_account_id,
            credit_rating,
            owner_id,
            team_id,
            tags,
            source
        );
        if let Some(money) = self.annual_revenue {
            account.annual_revenue = Some(Money {
                amount: money.amount,
                currency: money.currency,
            });
            paths.push("annual_revenue".into());
        }
        if let Some(stage) = self.lifecycle_stage {
            account.lifecycle_stage = parse_stage("lifecycle_stage", &stage)?;
            paths.push("lifecycle_stage".into());
        }
        if let Some(values) = self.custom_fields {
            for (key, value) in &values {
                account
                    .custom_fields
                    .insert(key.clone(), json_to_value(value));
                paths.push(format!("custom_fields.{key}"));
            }
        }
        Ok((account, paths))
    }
}

fn client(state: &SharedState) -> AccountServiceClient<tonic::transport::Channel> {
    AccountServiceClient::new(state.customers.clone())
}

#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", request_body = AccountInput, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "retries with the same key return the first response")),
    responses((status = 201, body = AccountDto), (status = 403, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 409, body = problem::ProblemDocument, content_type = "application/problem+json"), (status = 422, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    let input: AccountInput = parse_json(&body)?;
    let (account, _) = input.into_proto()?;
    let create = async {
        let request = state.upstream(
            &caller,
            pb::CreateAccountRequest {
                account: Some(account),
                request_id: String::new(),
            },
        )?;
        let account = client(&state)
            .create_account(request)
            .await?
            .into_inner()
            .account
            .unwrap_or_default();
        let dto = AccountDto::from(account);
        let version = dto.version;
        Ok((serde_json::to_value(dto).unwrap_or_default(), version))
    };
    idempotent_create(&state, &caller, &headers, "/v1/accounts", &body, create).await
}

#[utoipa::path(get, path = "/v1/accounts/{id}", tag = "accounts", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "account id")),
    responses((status = 200, body = AccountDto, headers(("ETag" = String))), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let request = state.upstream(&caller, pb::GetAccountRequest { id })?;
    let dto = AccountDto::from(
        client(&state)
            .get_account(request)
            .await?
            .into_inner()
            .account
            .unwrap_or_default(),
    );
    Ok(with_etag(StatusCode::OK, dto.version, dto))
}

#[utoipa::path(patch, path = "/v1/accounts/{id}", tag = "accounts", request_body = AccountInput, security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "account id"), ("If-Match" = Option<String>, Header, description = "ETag of the version being changed")),
    responses((status = 200, body = AccountDto), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 412, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn update(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    let input: AccountInput = parse_json(&body)?;
    let expected_version = if_match(&headers)?;
    let (mut account, paths) = input.into_proto()?;
    if paths.is_empty() {
        return Err(Problem::invalid(
            "body",
            "name at least one field to change",
        ));
    }
    account.id = id;
    let request = state.upstream(
        &caller,
        pb::UpdateAccountRequest {
            account: Some(account),
            update_mask: Some(prost_types::FieldMask { paths }),
            expected_version,
        },
    )?;
    let dto = AccountDto::from(
        client(&state)
            .update_account(request)
            .await?
            .into_inner()
            .account
            .unwrap_or_default(),
    );
    Ok(with_etag(StatusCode::OK, dto.version, dto))
}

#[utoipa::path(delete, path = "/v1/accounts/{id}", tag = "accounts", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "account id"), ("If-Match" = Option<String>, Header, description = "ETag of the version being deleted")),
    responses((status = 204), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 412, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, Problem> {
    let expected_version = if_match(&headers)?;
    client(&state)
        .delete_account(state.upstream(
            &caller,
            pb::DeleteAccountRequest {
                id,
                expected_version,
            },
        )?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", security(("bearer" = [])), params(AccountListParams),
    responses((status = 200, body = AccountPage)))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<AccountPage>, Problem> {
    let page = page_params(
        &params,
        &["page_size", "page_token", "order_by", "tag", "domain"],
    )?;
    let condition = |field: &str, value: &str| pb::Filter {
        node: Some(pb::filter::Node::Condition(pb::Condition {
            field: field.into(),
            op: pb::Operator::Eq as i32,
            value: Some(prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue(value.into())),
            }),
        })),
    };
    let mut filters = Vec::new();
    if let Some(tag) = params.get("tag") {
        filters.push(condition("tags", tag));
    }
    if let Some(domain) = params.get("domain") {
        filters.push(condition("domain", domain));
    }
    let filter = (!filters.is_empty()).then_some(pb::Filter {
        node: Some(pb::filter::Node::All(pb::FilterGroup { filters })),
    });
    let request = state.upstream(
        &caller,
        pb::ListAccountsRequest {
            filter,
            order_by: params.get("order_by").cloned().unwrap_or_default(),
            page: Some(page),
        },
    )?;
    let response = client(&state).list_accounts(request).await?.into_inner();
    Ok(Json(AccountPage {
        items: response
            .accounts
            .into_iter()
            .map(AccountDto::from)
            .collect(),
        next_page_token: response
            .page
            .map(|p| p.next_page_token)
            .filter(|t| !t.is_empty()),
    }))
}
