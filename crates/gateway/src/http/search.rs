//! `/v1/search`: one ranked list across the services' searchable records:
//! contacts and accounts (customers), leads and deals (sales); tickets as
//! their service lands. The services are asked in parallel, each under a
//! deadline; they score alike (ADR 0008), so their hits merge by score. A
//! service that does not answer is named in `unavailable`.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;
use crm_proto::crm::customers::v1 as pb;
use crm_proto::crm::customers::v1::search_service_client::SearchServiceClient;
use crm_proto::crm::sales::v1 as sales;
use crm_proto::crm::sales::v1::search_service_client::SearchServiceClient as SalesSearch;
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::{self, Problem};
use super::{Caller, SharedState};

#[derive(Serialize, ToSchema)]
pub struct SearchHit {
    /// contact, account, lead or opportunity
    pub kind: String,
    pub id: String,
    pub title: String,
    pub subtitle: String,
    pub score: f64,
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// What to look for; typos are tolerated.
    #[param(min_length = 2, max_length = 200)]
    pub q: String,
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i32>,
}

#[derive(Serialize, ToSchema)]
pub struct SearchResults {
    pub items: Vec<SearchHit>,
    /// Services that did not answer in time; their records are missing.
    pub unavailable: Vec<String>,
}

#[utoipa::path(get, path = "/v1/search", tag = "search", security(("bearer" = [])),
    params(SearchParams),
    responses((status = 200, body = SearchResults), (status = 400, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn search(
    State(state): State<SharedState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<SearchResults>, Problem> {
    let query = params
        .get("q")
        .cloned()
        .ok_or_else(|| Problem::invalid("q", "is required"))?;
    let limit = match params.get("limit") {
        None => 20,
        Some(raw) => raw
            .parse::<i32>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| Problem::invalid("limit", "must be a number from 1 to 100"))?,
    };
    let deadline = super::overview::deadline(&state);
    let customers_request = state.upstream(
        &caller,
        pb::SearchRequest {
            query: query.clone(),
            limit,
        },
    )?;
    let sales_request = state.upstream(&caller, sales::SearchRequest { query, limit })?;
    let mut customers_client = SearchServiceClient::new(state.service("customers")?);
    let mut sales_client = SalesSearch::new(state.service("sales")?);
    let (customers_hits, sales_hits) = tokio::join!(
        tokio::time::timeout(deadline, customers_client.search(customers_request)),
        tokio::time::timeout(deadline, sales_client.search(sales_request)),
    );
    let mut items = Vec::new();
    let mut unavailable = Vec::new();
    match customers_hits {
        Ok(Ok(response)) => items.extend(response.into_inner().hits.into_iter().map(|h| {
            SearchHit {
                kind: if h.kind == pb::HitKind::Account as i32 {
                    "account"
                } else {
                    "contact"
                }
                .to_owned(),
                id: h.id,
                title: h.title,
                subtitle: h.subtitle,
                score: h.score,
            }
        })),
        // Bad input is the caller's: the same for every service.
        Ok(Err(status)) if status.code() == tonic::Code::InvalidArgument => {
            return Err(status.into())
        }
        _ => unavailable.push("customers".to_owned()),
    }
    match sales_hits {
        Ok(Ok(response)) => items.extend(response.into_inner().hits.into_iter().map(|h| {
            SearchHit {
                kind: if h.kind == sales::HitKind::Lead as i32 {
                    "lead"
                } else {
                    "opportunity"
                }
                .to_owned(),
                id: h.id,
                title: h.title,
                subtitle: h.subtitle,
                score: h.score,
            }
        })),
        Ok(Err(status)) if status.code() == tonic::Code::InvalidArgument => {
            return Err(status.into())
        }
        _ => unavailable.push("sales".to_owned()),
    }
    if unavailable.len() == 2 {
        return Err(Problem::retry_later(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "no service answered the search; retry later",
            1,
        ));
    }
    items.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
    items.truncate(limit as usize);
    Ok(Json(SearchResults { items, unavailable }))
}
