//! `/v1/search`: one ranked list across the services' searchable records
//! (contacts and accounts today; deals and tickets as their services land).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;
use crm_proto::crm::customers::v1 as pb;
use crm_proto::crm::customers::v1::search_service_client::SearchServiceClient;
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::{self, Problem};
use super::{Caller, SharedState};

#[derive(Serialize, ToSchema)]
pub struct SearchHit {
    /// contact or account
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
    let request = state.upstream(&caller, pb::SearchRequest { query, limit })?;
    let hits = SearchServiceClient::new(state.customers.clone())
        .search(request)
        .await?
        .into_inner()
        .hits;
    Ok(Json(SearchResults {
        items: hits
            .into_iter()
            .map(|h| SearchHit {
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
            })
            .collect(),
    }))
}
