//! `/v1/search`: one ranked list across every service's searchable records
//! (contacts and accounts in customers, leads and deals in sales, tickets
//! and published articles in the service desk, and any service that
//! joins). A service joins by serving the search contract:
//! `crm.<domain>.v1.SearchService/Search` taking `query` and `limit` and
//! answering `hits` of `kind` (a `HitKind` enum), `id`, `title`, `subtitle`
//! and `score`. The gateway finds those services in the descriptors and
//! asks them in parallel, each under a deadline; they score alike (ADR
//! 0008), so their hits merge by score. A service that does not answer is
//! named in `unavailable`.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;
use prost_reflect::{DynamicMessage, ReflectMessage as _, Value};
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::{self, Problem};
use super::transcode::message::pool;
use super::{Caller, SharedState};

#[derive(Serialize, ToSchema)]
pub struct SearchHit {
    /// contact, account, lead, opportunity, ticket or article
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
    let searches = searchers(&state).into_iter().map(|(domain, method)| {
        let (state, caller, query) = (state.clone(), &caller, query.clone());
        async move {
            let mut request = DynamicMessage::new(method.input());
            request.set_field_by_name("query", Value::String(query));
            request.set_field_by_name("limit", Value::I32(limit));
            let answer = tokio::time::timeout(
                deadline,
                super::transcode::call(&state, caller, &domain, &method, request),
            )
            .await;
            (domain, answer)
        }
    });
    let mut items = Vec::new();
    let mut unavailable = Vec::new();
    let answers = futures::future::join_all(searches).await;
    let asked = answers.len();
    for (domain, answer) in answers {
        match answer {
            Ok(Ok(response)) => items.extend(hits(&response)),
            // Bad input is the caller's: the same for every service.
            Ok(Err(problem)) if problem.status == 400 => return Err(problem),
            _ => unavailable.push(domain),
        }
    }
    if asked == 0 || unavailable.len() == asked {
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

/// Configured services that serve the search contract, by domain.
fn searchers(state: &SharedState) -> Vec<(String, prost_reflect::MethodDescriptor)> {
    state
        .channels
        .keys()
        .filter_map(|domain| {
            let service = pool().get_service_by_name(&format!("crm.{domain}.v1.SearchService"))?;
            let method = service.methods().find(|m| m.name() == "Search")?;
            Some((domain.clone(), method))
        })
        .collect()
}

/// The hits of one service's answer; `kind` is the `HitKind` value's name
/// without its prefix, in lower case (`contact`, `lead`, `opportunity`).
fn hits(response: &DynamicMessage) -> Vec<SearchHit> {
    let text = |hit: &DynamicMessage, name: &str| {
        hit.get_field_by_name(name)
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let Some(list) = response.get_field_by_name("hits") else {
        return Vec::new();
    };
    let Some(list) = list.as_list() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(Value::as_message)
        .map(|hit| {
            let kind = hit
                .descriptor()
                .get_field_by_name("kind")
                .and_then(
                    |field| match (field.kind(), hit.get_field(&field).as_enum_number()) {
                        (prost_reflect::Kind::Enum(e), Some(n)) => {
                            e.get_value(n).map(|v| v.name().to_owned())
                        }
                        _ => None,
                    },
                )
                .map(|name| name.trim_start_matches("HIT_KIND_").to_ascii_lowercase())
                .unwrap_or_default();
            SearchHit {
                kind,
                id: text(hit, "id"),
                title: text(hit, "title"),
                subtitle: text(hit, "subtitle"),
                score: hit
                    .get_field_by_name("score")
                    .and_then(|v| v.as_f64())
                    .unwrap_or_default(),
            }
        })
        .collect()
}
