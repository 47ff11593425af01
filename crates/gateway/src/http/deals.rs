//! Pipelines, opportunities and forecasts over REST (`/v1/pipelines`,
//! `/v1/opportunities`, `/v1/forecast`), translated to the sales service.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use crm_proto::crm::sales::v1 as pb;
use crm_proto::crm::sales::v1::forecast_service_client::ForecastServiceClient;
use crm_proto::crm::sales::v1::opportunity_service_client::OpportunityServiceClient;
use crm_proto::crm::sales::v1::pipeline_service_client::PipelineServiceClient;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::{self, Problem};
use super::rest::{
    enum_text, enum_value, id_param, idempotent_create, if_match, next_token, non_empty,
    page_params, parse_uuid, timestamp, with_etag, MoneyDto,
};
use super::{parse_json, Caller, JsonBody, RawBody, SharedState};

const CATEGORIES: &str = "pipeline, best_case, commit, closed, omitted";

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageInput {
    pub name: String,
    /// 0 to 100.
    #[serde(default)]
    pub probability: i32,
    /// open (default), won or lost.
    #[serde(default)]
    pub kind: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StageDto {
    pub id: String,
    pub name: String,
    pub probability: i32,
    /// open, won or lost.
    pub kind: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineInput {
    pub name: String,
    #[serde(default)]
    pub is_default: bool,
    /// In order; at least one open, one won and one lost stage.
    pub stages: Vec<StageInput>,
}

#[derive(Serialize, ToSchema)]
pub struct PipelineDto {
    pub id: String,
    pub name: String,
    pub is_default: bool,
    pub stages: Vec<StageDto>,
}

#[derive(Serialize, ToSchema)]
pub struct PipelineList {
    pub items: Vec<PipelineDto>,
}

impl From<pb::Pipeline> for PipelineDto {
    fn from(p: pb::Pipeline) -> Self {
        PipelineDto {
            id: p.id,
            name: p.name,
            is_default: p.is_default,
            stages: p
                .stages
                .into_iter()
                .map(|s| StageDto {
                    kind: pb::StageKind::try_from(s.kind)
                        .ok()
                        .map(|k| enum_text(k.as_str_name(), "STAGE_KIND_")),
                    id: s.id,
                    name: s.name,
                    probability: s.probability,
                })
                .collect(),
        }
    }
}

fn pipelines(state: &SharedState) -> PipelineServiceClient<tonic::transport::Channel> {
    PipelineServiceClient::new(state.sales.clone())
}

fn opportunities(state: &SharedState) -> OpportunityServiceClient<tonic::transport::Channel> {
    OpportunityServiceClient::new(state.sales.clone())
}

#[utoipa::path(post, path = "/v1/pipelines", tag = "pipelines", request_body = PipelineInput, security(("bearer" = [])),
    responses((status = 201, body = PipelineDto), (status = 403, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 409, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn create_pipeline(
    State(state): State<SharedState>,
    caller: Caller,
    JsonBody(input): JsonBody<PipelineInput>,
) -> Result<(StatusCode, Json<PipelineDto>), Problem> {
    let mut stages = Vec::with_capacity(input.stages.len());
    for (i, stage) in input.stages.into_iter().enumerate() {
        let kind = match stage.kind.as_deref() {
            None => pb::StageKind::Open as i32,
            Some(raw) => enum_value(
                &format!("stages[{i}].kind"),
                raw,
                "STAGE_KIND_",
                pb::StageKind::from_str_name,
                "open, won, lost",
            )?,
        };
        stages.push(pb::Stage {
            name: stage.name,
            probability: stage.probability,
            kind,
            ..Default::default()
        });
    }
    let request = state.upstream(
        &caller,
        pb::CreatePipelineRequest {
            pipeline: Some(pb::Pipeline {
                name: input.name,
                is_default: input.is_default,
                stages,
                ..Default::default()
            }),
        },
    )?;
    let pipeline = pipelines(&state)
        .create_pipeline(request)
        .await?
        .into_inner()
        .pipeline
        .unwrap_or_default();
    Ok((StatusCode::CREATED, Json(pipeline.into())))
}

#[utoipa::path(get, path = "/v1/pipelines", tag = "pipelines", security(("bearer" = [])), responses((status = 200, body = PipelineList)))]
pub async fn list_pipelines(
    State(state): State<SharedState>,
    caller: Caller,
) -> Result<Json<PipelineList>, Problem> {
    let request = state.upstream(&caller, pb::ListPipelinesRequest {})?;
    let list = pipelines(&state)
        .list_pipelines(request)
        .await?
        .into_inner()
        .pipelines;
    Ok(Json(PipelineList {
        items: list.into_iter().map(PipelineDto::from).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/pipelines/{id}", tag = "pipelines", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "pipeline id")),
    responses((status = 200, body = PipelineDto), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn get_pipeline(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PipelineDto>, Problem> {
    parse_uuid("id", &id)?;
    let request = state.upstream(&caller, pb::GetPipelineRequest { id })?;
    let pipeline = pipelines(&state)
        .get_pipeline(request)
        .await?
        .into_inner()
        .pipeline
        .unwrap_or_default();
    Ok(Json(pipeline.into()))
}

#[derive(Deserialize, Serialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct ContactRoleDto {
    pub contact_id: uuid::Uuid,
    #[serde(default)]
    pub role: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineItemInput {
    pub product_id: Option<uuid::Uuid>,
    #[serde(default)]
    pub description: String,
    /// Decimal string.
    pub quantity: String,
    pub unit_price: MoneyDto,
    /// Percent, decimal string.
    #[serde(default)]
    pub discount_percent: String,
}

#[derive(Serialize, ToSchema)]
pub struct LineItemDto {
    pub product_id: Option<uuid::Uuid>,
    pub description: String,
    pub quantity: String,
    pub unit_price: MoneyDto,
    pub discount_percent: String,
    /// quantity x unit price x (1 - discount), rounded to cents.
    pub total: Option<MoneyDto>,
}

/// An opportunity as sent; on update only the fields present change.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct OpportunityInput {
    pub name: Option<String>,
    /// Create only: the default pipeline when absent.
    pub pipeline_id: Option<uuid::Uuid>,
    /// Create only: the pipeline's first open stage when absent.
    pub stage_id: Option<uuid::Uuid>,
    pub account_id: Option<uuid::Uuid>,
    pub contacts: Option<Vec<ContactRoleDto>>,
    /// Without it, the line items' sum.
    pub amount: Option<MoneyDto>,
    /// YYYY-MM-DD.
    pub close_date: Option<String>,
    pub probability: Option<i32>,
    /// pipeline, best_case, commit, closed or omitted.
    pub forecast_category: Option<String>,
    pub owner_id: Option<uuid::Uuid>,
    pub team_id: Option<uuid::Uuid>,
    pub campaign_id: Option<uuid::Uuid>,
    pub competitors: Option<Vec<String>>,
    pub next_step: Option<String>,
    pub line_items: Option<Vec<LineItemInput>>,
}

#[derive(Serialize, ToSchema)]
pub struct OpportunityDto {
    pub id: String,
    pub name: String,
    pub pipeline_id: String,
    pub stage_id: String,
    pub account_id: Option<String>,
    pub contacts: Vec<ContactRoleDto>,
    pub amount: Option<MoneyDto>,
    pub close_date: Option<String>,
    pub probability: i32,
    pub forecast_category: String,
    /// open, won or lost.
    pub status: String,
    pub owner_id: Option<String>,
    pub team_id: Option<String>,
    pub campaign_id: Option<String>,
    pub competitors: Vec<String>,
    pub lost_reason: String,
    pub next_step: String,
    pub line_items: Vec<LineItemDto>,
    pub lead_id: Option<String>,
    pub closed_at: Option<String>,
    pub version: i64,
}

#[derive(Serialize, ToSchema)]
pub struct OpportunityPage {
    pub items: Vec<OpportunityDto>,
    pub next_page_token: Option<String>,
}

impl From<pb::Opportunity> for OpportunityDto {
    fn from(o: pb::Opportunity) -> Self {
        OpportunityDto {
            forecast_category: pb::ForecastCategory::try_from(o.forecast_category)
                .map(|c| enum_text(c.as_str_name(), "FORECAST_CATEGORY_"))
                .unwrap_or_default(),
            status: pb::OpportunityStatus::try_from(o.status)
                .map(|s| enum_text(s.as_str_name(), "OPPORTUNITY_STATUS_"))
                .unwrap_or_default(),
            version: o.audit.map(|a| a.version).unwrap_or_default(),
            contacts: o
                .contacts
                .into_iter()
                .filter_map(|c| {
                    Some(ContactRoleDto {
                        contact_id: uuid::Uuid::parse_str(&c.contact_id).ok()?,
                        role: c.role,
                    })
                })
                .collect(),
            line_items: o
                .line_items
                .into_iter()
                .map(|l| LineItemDto {
                    product_id: uuid::Uuid::parse_str(&l.product_id).ok(),
                    description: l.description,
                    quantity: l.quantity,
                    unit_price: l.unit_price.map(MoneyDto::from).unwrap_or_default(),
                    discount_percent: l.discount_percent,
                    total: l.total.map(MoneyDto::from),
                })
                .collect(),
            id: o.id,
            name: o.name,
            pipeline_id: o.pipeline_id,
            stage_id: o.stage_id,
            account_id: non_empty(o.account_id),
            amount: o.amount.map(MoneyDto::from),
            close_date: non_empty(o.close_date),
            probability: o.probability,
            owner_id: non_empty(o.owner_id),
            team_id: non_empty(o.team_id),
            campaign_id: non_empty(o.campaign_id),
            competitors: o.competitors,
            lost_reason: o.lost_reason,
            next_step: o.next_step,
            lead_id: non_empty(o.lead_id),
            closed_at: timestamp(o.closed_at.as_ref()),
        }
    }
}

impl OpportunityInput {
    fn into_proto(self) -> Result<(pb::Opportunity, Vec<String>), Problem> {
        let mut o = pb::Opportunity::default();
        let mut mask = Vec::new();
        let mut mark = |name: &str| mask.push(name.to_owned());
        let id = |v: Option<uuid::Uuid>| v.map(|v| v.to_string());
        if let Some(v) = self.name {
            o.name = v;
            mark("name");
        }
        o.pipeline_id = id(self.pipeline_id).unwrap_or_default();
        o.stage_id = id(self.stage_id).unwrap_or_default();
        for (name, value, target) in [
            ("account_id", id(self.account_id), &mut o.account_id),
            ("owner_id", id(self.owner_id), &mut o.owner_id),
            ("team_id", id(self.team_id), &mut o.team_id),
            ("campaign_id", id(self.campaign_id), &mut o.campaign_id),
            ("close_date", self.close_date, &mut o.close_date),
            ("next_step", self.next_step, &mut o.next_step),
        ] {
            if let Some(value) = value {
                *target = value;
                mark(name);
            }
        }
        if let Some(v) = self.contacts {
            o.contacts = v
                .into_iter()
                .map(|c| pb::ContactRole {
                    contact_id: c.contact_id.to_string(),
                    role: c.role,
                })
                .collect();
            mark("contacts");
        }
        if let Some(v) = self.amount {
            o.amount = Some(v.into());
            mark("amount");
        }
        if let Some(v) = self.probability {
            o.probability = v;
            mark("probability");
        }
        if let Some(v) = self.forecast_category {
            o.forecast_category = enum_value(
                "forecast_category",
                &v,
                "FORECAST_CATEGORY_",
                pb::ForecastCategory::from_str_name,
                CATEGORIES,
            )?;
            mark("forecast_category");
        }
        if let Some(v) = self.competitors {
            o.competitors = v;
            mark("competitors");
        }
        if let Some(v) = self.line_items {
            o.line_items = v
                .into_iter()
                .map(|l| pb::LineItem {
                    product_id: l.product_id.map(|p| p.to_string()).unwrap_or_default(),
                    description: l.description,
                    quantity: l.quantity,
                    unit_price: Some(l.unit_price.into()),
                    discount_percent: l.discount_percent,
                    total: None,
                })
                .collect();
            mark("line_items");
        }
        Ok((o, mask))
    }
}

#[utoipa::path(post, path = "/v1/opportunities", tag = "opportunities", request_body = OpportunityInput, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "retries with the same key return the first response")),
    responses((status = 201, body = OpportunityDto), (status = 403, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 409, body = problem::ProblemDocument, content_type = "application/problem+json"), (status = 422, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn create_opportunity(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    let input: OpportunityInput = parse_json(&body)?;
    let (opportunity, _) = input.into_proto()?;
    let create = async {
        let request = state.upstream(
            &caller,
            pb::CreateOpportunityRequest {
                opportunity: Some(opportunity),
                request_id: String::new(),
            },
        )?;
        let created = opportunities(&state)
            .create_opportunity(request)
            .await?
            .into_inner()
            .opportunity
            .unwrap_or_default();
        let dto = OpportunityDto::from(created);
        let version = dto.version;
        Ok((serde_json::to_value(dto).unwrap_or_default(), version))
    };
    idempotent_create(
        &state,
        &caller,
        &headers,
        "/v1/opportunities",
        &body,
        create,
    )
    .await
}

#[utoipa::path(get, path = "/v1/opportunities/{id}", tag = "opportunities", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "opportunity id")),
    responses((status = 200, body = OpportunityDto, headers(("ETag" = String))), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn get_opportunity(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    parse_uuid("id", &id)?;
    let request = state.upstream(&caller, pb::GetOpportunityRequest { id })?;
    let dto = OpportunityDto::from(
        opportunities(&state)
            .get_opportunity(request)
            .await?
            .into_inner()
            .opportunity
            .unwrap_or_default(),
    );
    Ok(with_etag(StatusCode::OK, dto.version, dto))
}

#[utoipa::path(patch, path = "/v1/opportunities/{id}", tag = "opportunities", request_body = OpportunityInput, security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "opportunity id"), ("If-Match" = Option<String>, Header, description = "ETag of the version being changed")),
    responses((status = 200, body = OpportunityDto), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 412, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn update_opportunity(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<OpportunityInput>,
) -> Result<Response, Problem> {
    parse_uuid("id", &id)?;
    if input.pipeline_id.is_some() || input.stage_id.is_some() {
        return Err(Problem::invalid(
            "stage_id",
            "stages change through POST /v1/opportunities/{id}/stage",
        ));
    }
    let expected_version = if_match(&headers)?;
    let (mut opportunity, update_mask) = input.into_proto()?;
    if update_mask.is_empty() {
        return Err(Problem::invalid(
            "body",
            "name at least one field to change",
        ));
    }
    opportunity.id = id;
    let request = state.upstream(
        &caller,
        pb::UpdateOpportunityRequest {
            opportunity: Some(opportunity),
            update_mask,
            expected_version,
        },
    )?;
    let dto = OpportunityDto::from(
        opportunities(&state)
            .update_opportunity(request)
            .await?
            .into_inner()
            .opportunity
            .unwrap_or_default(),
    );
    Ok(with_etag(StatusCode::OK, dto.version, dto))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageMoveInput {
    pub stage_id: uuid::Uuid,
    /// Required for a lost stage.
    #[serde(default)]
    pub lost_reason: String,
}

#[utoipa::path(post, path = "/v1/opportunities/{id}/stage", tag = "opportunities", request_body = StageMoveInput, security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "opportunity id"), ("If-Match" = Option<String>, Header, description = "ETag of the version being moved")),
    responses((status = 200, body = OpportunityDto), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 412, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn move_stage(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<StageMoveInput>,
) -> Result<Response, Problem> {
    parse_uuid("id", &id)?;
    let expected_version = if_match(&headers)?;
    let request = state.upstream(
        &caller,
        pb::MoveStageRequest {
            id,
            stage_id: input.stage_id.to_string(),
            lost_reason: input.lost_reason,
            expected_version,
        },
    )?;
    let dto = OpportunityDto::from(
        opportunities(&state)
            .move_stage(request)
            .await?
            .into_inner()
            .opportunity
            .unwrap_or_default(),
    );
    Ok(with_etag(StatusCode::OK, dto.version, dto))
}

#[derive(Serialize, ToSchema)]
pub struct StageChangeDto {
    pub from_stage_id: Option<String>,
    pub to_stage_id: String,
    pub changed_at: Option<String>,
    pub changed_by: String,
    pub amount: Option<MoneyDto>,
}

#[derive(Serialize, ToSchema)]
pub struct StageHistory {
    pub items: Vec<StageChangeDto>,
}

#[utoipa::path(get, path = "/v1/opportunities/{id}/history", tag = "opportunities", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "opportunity id")),
    responses((status = 200, body = StageHistory), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn history(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<StageHistory>, Problem> {
    parse_uuid("id", &id)?;
    let request = state.upstream(&caller, pb::GetStageHistoryRequest { opportunity_id: id })?;
    let changes = opportunities(&state)
        .get_stage_history(request)
        .await?
        .into_inner()
        .changes;
    Ok(Json(StageHistory {
        items: changes
            .into_iter()
            .map(|c| StageChangeDto {
                from_stage_id: non_empty(c.from_stage_id),
                to_stage_id: c.to_stage_id,
                changed_at: timestamp(c.changed_at.as_ref()),
                changed_by: c.changed_by,
                amount: c.amount.map(MoneyDto::from),
            })
            .collect(),
    }))
}

#[utoipa::path(get, path = "/v1/opportunities", tag = "opportunities", security(("bearer" = [])),
    params(("pipeline_id" = Option<uuid::Uuid>, Query), ("stage_id" = Option<uuid::Uuid>, Query), ("account_id" = Option<uuid::Uuid>, Query),
           ("owner_id" = Option<uuid::Uuid>, Query), ("contact_id" = Option<uuid::Uuid>, Query, description = "deals in which this contact has a role"),
           ("status" = Option<String>, Query, description = "open, won or lost"),
           ("page_size" = Option<i32>, Query, minimum = 1, maximum = 500), ("page_token" = Option<String>, Query)),
    responses((status = 200, body = OpportunityPage)))]
pub async fn list_opportunities(
    State(state): State<SharedState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<OpportunityPage>, Problem> {
    let page = page_params(
        &params,
        &[
            "page_size",
            "page_token",
            "pipeline_id",
            "stage_id",
            "account_id",
            "owner_id",
            "status",
        ],
    )?;
    let status = match params.get("status") {
        Some(raw) => enum_value(
            "status",
            raw,
            "OPPORTUNITY_STATUS_",
            pb::OpportunityStatus::from_str_name,
            "open, won, lost",
        )?,
        None => 0,
    };
    let request = state.upstream(
        &caller,
        pb::ListOpportunitiesRequest {
            pipeline_id: id_param(&params, "pipeline_id")?,
            stage_id: id_param(&params, "stage_id")?,
            account_id: id_param(&params, "account_id")?,
            owner_id: id_param(&params, "owner_id")?,
            contact_id: id_param(&params, "contact_id")?,
            status,
            page: Some(page),
        },
    )?;
    let response = opportunities(&state)
        .list_opportunities(request)
        .await?
        .into_inner();
    Ok(Json(OpportunityPage {
        items: response
            .opportunities
            .into_iter()
            .map(OpportunityDto::from)
            .collect(),
        next_page_token: next_token(response.page),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct ForecastDto {
    pub closed_won: Option<MoneyDto>,
    pub commit: Option<MoneyDto>,
    pub best_case: Option<MoneyDto>,
    pub pipeline: Option<MoneyDto>,
    pub weighted_pipeline: Option<MoneyDto>,
    pub quota: Option<MoneyDto>,
    /// closed_won / quota in percent; absent without a quota.
    pub attainment_percent: Option<String>,
    pub open_count: i64,
    pub won_count: i64,
}

#[utoipa::path(get, path = "/v1/forecast", tag = "opportunities", security(("bearer" = [])),
    params(("period_start" = String, Query, description = "YYYY-MM-DD"), ("period_end" = String, Query, description = "YYYY-MM-DD, inclusive"),
           ("currency" = String, Query, description = "ISO 4217"), ("owner_id" = Option<uuid::Uuid>, Query), ("team_id" = Option<uuid::Uuid>, Query)),
    responses((status = 200, body = ForecastDto)))]
pub async fn forecast(
    State(state): State<SharedState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<ForecastDto>, Problem> {
    let known = [
        "period_start",
        "period_end",
        "currency",
        "owner_id",
        "team_id",
    ];
    if let Some(unknown) = params.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(Problem::invalid(
            unknown,
            "is not a parameter of the forecast",
        ));
    }
    let text = |name: &str| params.get(name).cloned().unwrap_or_default();
    let request = state.upstream(
        &caller,
        pb::GetForecastRequest {
            period_start: text("period_start"),
            period_end: text("period_end"),
            owner_id: id_param(&params, "owner_id")?,
            team_id: id_param(&params, "team_id")?,
            currency: text("currency"),
        },
    )?;
    let f = ForecastServiceClient::new(state.sales.clone())
        .get_forecast(request)
        .await?
        .into_inner()
        .forecast
        .unwrap_or_default();
    Ok(Json(ForecastDto {
        closed_won: f.closed_won.map(MoneyDto::from),
        commit: f.commit.map(MoneyDto::from),
        best_case: f.best_case.map(MoneyDto::from),
        pipeline: f.pipeline.map(MoneyDto::from),
        weighted_pipeline: f.weighted_pipeline.map(MoneyDto::from),
        quota: f.quota.map(MoneyDto::from),
        attainment_percent: non_empty(f.attainment_percent),
        open_count: f.open_count,
        won_count: f.won_count,
    }))
}
