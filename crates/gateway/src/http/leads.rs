//! Leads over REST (`/v1/leads`): create (routed and scored by the sales
//! service), read, change with If-Match, list, assign, convert.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use crm_proto::crm::sales::v1 as pb;
use crm_proto::crm::sales::v1::lead_service_client::LeadServiceClient;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::{self, Problem};
use super::rest::{
    bool_param, enum_text, enum_value, id_param, idempotent_create, if_match, next_token,
    non_empty, page_params, parse_uuid, timestamp, with_etag, MoneyDto,
};
use super::{parse_json, Caller, JsonBody, RawBody, SharedState};

const STATUSES: &str = "new, working, nurturing, qualified, unqualified";
const SOURCES: &str = "web_form, import, campaign, manual, api";

/// A lead as sent on create and update; on update, only the fields present change.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct LeadInput {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    /// E.164, e.g. "+4930123456".
    pub phone: Option<String>,
    pub title: Option<String>,
    pub company: Option<String>,
    pub company_domain: Option<String>,
    /// web_form, import, campaign, manual or api.
    pub source: Option<String>,
    pub campaign_id: Option<uuid::Uuid>,
    /// new, working, nurturing, qualified or unqualified.
    pub status: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    pub region: Option<String>,
    pub industry: Option<String>,
    /// Employees.
    pub company_size: Option<i32>,
    /// Assign directly instead of routing (create only).
    pub owner_id: Option<uuid::Uuid>,
}

#[derive(Serialize, ToSchema)]
pub struct LeadDto {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub phone: String,
    pub title: String,
    pub company: String,
    pub company_domain: String,
    pub source: String,
    pub campaign_id: Option<String>,
    pub status: String,
    pub owner_id: Option<String>,
    pub team_id: Option<String>,
    pub score: i32,
    pub country: String,
    pub region: String,
    pub industry: String,
    pub company_size: i32,
    pub converted_account_id: Option<String>,
    pub converted_contact_id: Option<String>,
    pub converted_opportunity_id: Option<String>,
    pub converted_at: Option<String>,
    pub version: i64,
}

#[derive(Serialize, ToSchema)]
pub struct LeadPage {
    pub items: Vec<LeadDto>,
    pub next_page_token: Option<String>,
}

impl From<pb::Lead> for LeadDto {
    fn from(l: pb::Lead) -> Self {
        LeadDto {
            source: pb::LeadSource::try_from(l.source)
                .map(|s| enum_text(s.as_str_name(), "LEAD_SOURCE_"))
                .unwrap_or_default(),
            status: pb::LeadStatus::try_from(l.status)
                .map(|s| enum_text(s.as_str_name(), "LEAD_STATUS_"))
                .unwrap_or_default(),
            version: l.audit.map(|a| a.version).unwrap_or_default(),
            id: l.id,
            first_name: l.first_name,
            last_name: l.last_name,
            email: l.email,
            phone: l.phone,
            title: l.title,
            company: l.company,
            company_domain: l.company_domain,
            campaign_id: non_empty(l.campaign_id),
            owner_id: non_empty(l.owner_id),
            team_id: non_empty(l.team_id),
            score: l.score,
            country: l.country,
            region: l.region,
            industry: l.industry,
            company_size: l.company_size,
            converted_account_id: non_empty(l.converted_account_id),
            converted_contact_id: non_empty(l.converted_contact_id),
            converted_opportunity_id: non_empty(l.converted_opportunity_id),
            converted_at: timestamp(l.converted_at.as_ref()),
        }
    }
}

impl LeadInput {
    /// The protobuf lead and the names of the fields given (the update mask).
    fn into_proto(self) -> Result<(pb::Lead, Vec<String>), Problem> {
        let mut lead = pb::Lead::default();
        let mut mask = Vec::new();
        macro_rules! text {
            ($($field:ident),*) => {$(
                if let Some(value) = self.$field {
                    lead.$field = value;
                    mask.push(stringify!($field).to_owned());
                }
            )*};
        }
        text!(
            first_name,
            last_name,
            email,
            phone,
            title,
            company,
            company_domain,
            country,
            region,
            industry
        );
        if let Some(source) = self.source {
            lead.source = enum_value(
                "source",
                &source,
                "LEAD_SOURCE_",
                pb::LeadSource::from_str_name,
                SOURCES,
            )?;
            mask.push("source".into());
        }
        if let Some(status) = self.status {
            lead.status = enum_value(
                "status",
                &status,
                "LEAD_STATUS_",
                pb::LeadStatus::from_str_name,
                STATUSES,
            )?;
            if lead.status == pb::LeadStatus::Converted as i32 {
                return Err(Problem::invalid(
                    "status",
                    format!("must be one of {STATUSES}; conversion has its own route"),
                ));
            }
            mask.push("status".into());
        }
        if let Some(campaign) = self.campaign_id {
            lead.campaign_id = campaign.to_string();
            mask.push("campaign_id".into());
        }
        if let Some(size) = self.company_size {
            lead.company_size = size;
            mask.push("company_size".into());
        }
        if let Some(owner) = self.owner_id {
            lead.owner_id = owner.to_string();
        }
        Ok((lead, mask))
    }
}

fn client(state: &SharedState) -> LeadServiceClient<tonic::transport::Channel> {
    LeadServiceClient::new(state.sales.clone())
}

#[utoipa::path(post, path = "/v1/leads", tag = "leads", request_body = LeadInput, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "retries with the same key return the first response")),
    responses((status = 201, body = LeadDto), (status = 403, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 409, body = problem::ProblemDocument, content_type = "application/problem+json"), (status = 422, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    let input: LeadInput = parse_json(&body)?;
    let (lead, _) = input.into_proto()?;
    let create = async {
        let request = state.upstream(
            &caller,
            pb::CreateLeadRequest {
                lead: Some(lead),
                request_id: String::new(),
            },
        )?;
        let lead = client(&state)
            .create_lead(request)
            .await?
            .into_inner()
            .lead
            .unwrap_or_default();
        let dto = LeadDto::from(lead);
        let version = dto.version;
        Ok((serde_json::to_value(dto).unwrap_or_default(), version))
    };
    idempotent_create(&state, &caller, &headers, "/v1/leads", &body, create).await
}

#[utoipa::path(get, path = "/v1/leads/{id}", tag = "leads", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "lead id")),
    responses((status = 200, body = LeadDto, headers(("ETag" = String))), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    parse_uuid("id", &id)?;
    let request = state.upstream(&caller, pb::GetLeadRequest { id })?;
    let dto = LeadDto::from(
        client(&state)
            .get_lead(request)
            .await?
            .into_inner()
            .lead
            .unwrap_or_default(),
    );
    Ok(with_etag(StatusCode::OK, dto.version, dto))
}

#[utoipa::path(patch, path = "/v1/leads/{id}", tag = "leads", request_body = LeadInput, security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "lead id"), ("If-Match" = Option<String>, Header, description = "ETag of the version being changed")),
    responses((status = 200, body = LeadDto), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 409, body = problem::ProblemDocument, content_type = "application/problem+json"), (status = 412, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn update(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<LeadInput>,
) -> Result<Response, Problem> {
    parse_uuid("id", &id)?;
    if input.owner_id.is_some() {
        return Err(Problem::invalid(
            "owner_id",
            "is changed through POST /v1/leads/assign",
        ));
    }
    let expected_version = if_match(&headers)?;
    let (mut lead, update_mask) = input.into_proto()?;
    if update_mask.is_empty() {
        return Err(Problem::invalid(
            "body",
            "name at least one field to change",
        ));
    }
    lead.id = id;
    let request = state.upstream(
        &caller,
        pb::UpdateLeadRequest {
            lead: Some(lead),
            update_mask,
            expected_version,
        },
    )?;
    let dto = LeadDto::from(
        client(&state)
            .update_lead(request)
            .await?
            .into_inner()
            .lead
            .unwrap_or_default(),
    );
    Ok(with_etag(StatusCode::OK, dto.version, dto))
}

#[utoipa::path(get, path = "/v1/leads", tag = "leads", security(("bearer" = [])),
    params(("status" = Option<String>, Query, description = "new, working, nurturing, qualified, unqualified or converted"),
           ("owner_id" = Option<uuid::Uuid>, Query), ("unassigned" = Option<bool>, Query, description = "only the default queue"),
           ("page_size" = Option<i32>, Query, minimum = 1, maximum = 500), ("page_token" = Option<String>, Query)),
    responses((status = 200, body = LeadPage)))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<LeadPage>, Problem> {
    let page = page_params(
        &params,
        &[
            "page_size",
            "page_token",
            "status",
            "owner_id",
            "unassigned",
        ],
    )?;
    let status = match params.get("status") {
        Some(raw) => enum_value(
            "status",
            raw,
            "LEAD_STATUS_",
            pb::LeadStatus::from_str_name,
            "new, working, nurturing, qualified, unqualified, converted",
        )?,
        None => 0,
    };
    let owner_id = id_param(&params, "owner_id")?;
    let unassigned = bool_param(&params, "unassigned")?;
    let request = state.upstream(
        &caller,
        pb::ListLeadsRequest {
            status,
            owner_id,
            unassigned,
            page: Some(page),
        },
    )?;
    let response = client(&state).list_leads(request).await?.into_inner();
    Ok(Json(LeadPage {
        items: response.leads.into_iter().map(LeadDto::from).collect(),
        next_page_token: next_token(response.page),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignInput {
    #[schema(min_items = 1, max_items = 500)]
    pub lead_ids: Vec<uuid::Uuid>,
    /// The new owner; absent = route the leads again by the rules.
    pub user_id: Option<uuid::Uuid>,
}

#[derive(Serialize, ToSchema)]
pub struct LeadList {
    pub items: Vec<LeadDto>,
}

#[utoipa::path(post, path = "/v1/leads/assign", tag = "leads", request_body = AssignInput, security(("bearer" = [])),
    responses((status = 200, body = LeadList), (status = 403, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn assign(
    State(state): State<SharedState>,
    caller: Caller,
    JsonBody(input): JsonBody<AssignInput>,
) -> Result<Json<LeadList>, Problem> {
    let request = state.upstream(
        &caller,
        pb::AssignLeadsRequest {
            lead_ids: input.lead_ids.iter().map(ToString::to_string).collect(),
            user_id: input.user_id.map(|u| u.to_string()).unwrap_or_default(),
        },
    )?;
    let leads = client(&state)
        .assign_leads(request)
        .await?
        .into_inner()
        .leads;
    Ok(Json(LeadList {
        items: leads.into_iter().map(LeadDto::from).collect(),
    }))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ConvertInput {
    #[serde(default)]
    pub create_opportunity: bool,
    pub pipeline_id: Option<uuid::Uuid>,
    pub opportunity_name: Option<String>,
    pub amount: Option<MoneyDto>,
    /// YYYY-MM-DD.
    pub close_date: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Conversion {
    pub lead: LeadDto,
    pub account_reused: bool,
    pub contact_reused: bool,
}

#[utoipa::path(post, path = "/v1/leads/{id}/convert", tag = "leads", request_body = ConvertInput, security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "a qualified lead")),
    responses((status = 200, body = Conversion, description = "converted (a retry returns the same records)"),
              (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 409, body = problem::ProblemDocument, content_type = "application/problem+json", description = "the lead is not qualified, or the customers service refused its data")))]
pub async fn convert(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<ConvertInput>,
) -> Result<Json<Conversion>, Problem> {
    parse_uuid("id", &id)?;
    let request = state.upstream(
        &caller,
        pb::ConvertLeadRequest {
            lead_id: id,
            create_opportunity: input.create_opportunity,
            pipeline_id: input.pipeline_id.map(|p| p.to_string()).unwrap_or_default(),
            opportunity_name: input.opportunity_name.unwrap_or_default(),
            amount: input.amount.map(Into::into),
            close_date: input.close_date.unwrap_or_default(),
        },
    )?;
    let done = client(&state).convert_lead(request).await?.into_inner();
    Ok(Json(Conversion {
        lead: LeadDto::from(done.lead.unwrap_or_default()),
        account_reused: done.account_reused,
        contact_reused: done.contact_reused,
    }))
}
