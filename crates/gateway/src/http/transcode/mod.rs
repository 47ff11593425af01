//! REST/JSON derived from the proto contracts: one route per
//! `google.api.http` rule, one generic handler for all of them (ADR 0011).
//!
//! The handler turns the HTTP request into the RPC's request message
//! ([`message::request`]), applies the conventions every resource shares,
//! calls the owning service over gRPC with the caller's token, and writes
//! the answer back as JSON:
//! - `If-Match: "<n>"` sets `expected_version`; the service's conflict is a 412;
//! - `Idempotency-Key` sets `request_id`, the services' one idempotency
//!   mechanism (a retry gets the record the first call made);
//! - PATCH without an explicit mask sets `update_mask` to the body's fields;
//! - create methods answer 201 with a `Location`, deletes 204;
//! - a response resource carrying `audit.version` gets it as its ETag.
//!
//! Errors keep their gRPC reason codes and field violations as RFC 9457
//! problems; authentication, rate limits and load shedding are the same
//! middleware and extractor every route has.

pub mod binding;
pub mod codec;
pub mod message;
pub mod openapi;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use axum::Router;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, ReflectMessage as _, Value};

use self::binding::Binding;
use super::problem::Problem;
use super::rest::if_match;
use super::{Caller, RawBody, SharedState};

/// The descriptors of every package, with options and comments.
pub fn descriptor_pool() -> anyhow::Result<DescriptorPool> {
    Ok(message::pool().clone())
}

/// One transcoded route: its binding and the gRPC method path it calls.
struct Route {
    binding: Binding,
    grpc_path: http::uri::PathAndQuery,
}

/// The axum routes of every binding, grouped by path.
pub fn routes(bindings: &[Binding]) -> anyhow::Result<Router<SharedState>> {
    let mut by_path: BTreeMap<String, MethodRouter<SharedState>> = BTreeMap::new();
    for binding in bindings {
        let route = Arc::new(Route {
            grpc_path: http::uri::PathAndQuery::try_from(format!(
                "/{}/{}",
                binding.method.parent_service().full_name(),
                binding.method.name()
            ))?,
            binding: binding.clone(),
        });
        let filter = MethodFilter::try_from(binding.verb.clone()).map_err(|_| {
            anyhow::anyhow!(
                "{}: verb {} cannot be routed",
                binding.operation_id(),
                binding.verb
            )
        })?;
        let handler = move |State(state): State<SharedState>,
                            caller: Caller,
                            uri: http::Uri,
                            Path(path): Path<Vec<(String, String)>>,
                            RawQuery(query): RawQuery,
                            headers: HeaderMap,
                            RawBody(body): RawBody| {
            let route = route.clone();
            async move {
                let values: Vec<String> = path.into_iter().map(|(_, value)| value).collect();
                handle(
                    &state,
                    &route,
                    caller,
                    &uri,
                    &values,
                    query.as_deref(),
                    &headers,
                    &body,
                )
                .await
                .unwrap_or_else(IntoResponse::into_response)
            }
        };
        let path = binding.axum_path();
        let router = by_path.remove(&path).unwrap_or_default();
        by_path.insert(path, router.on(filter, handler));
    }
    Ok(by_path
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| {
            router.route(&path, methods)
        }))
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    state: &SharedState,
    route: &Route,
    caller: Caller,
    uri: &http::Uri,
    path: &[String],
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Problem> {
    let binding = &route.binding;
    let mut request = message::request(binding, path, query, body)?;
    apply_headers(&mut request, headers)?;
    let reply = unary(
        state,
        &caller,
        &binding.domain,
        &binding.method,
        &route.grpc_path,
        request,
    )
    .await
    .map_err(|status| {
        // `page.page_size` is `page_size` to a REST client (AIP-158).
        let mut problem = Problem::from(status);
        for error in &mut problem.errors {
            if let Some(name) = error.field.strip_prefix("page.") {
                error.field = name.to_owned();
            }
        }
        problem
    })?
    .into_inner();
    Ok(respond(binding, uri, reply))
}

/// Calls `method` of the domain's service with the caller's token.
pub async fn call(
    state: &SharedState,
    caller: &Caller,
    domain: &str,
    method: &prost_reflect::MethodDescriptor,
    request: DynamicMessage,
) -> Result<DynamicMessage, Problem> {
    let path = http::uri::PathAndQuery::try_from(format!(
        "/{}/{}",
        method.parent_service().full_name(),
        method.name()
    ))
    .map_err(|_| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "bad method path",
        )
    })?;
    unary(state, caller, domain, method, &path, request)
        .await
        .map(tonic::Response::into_inner)
        .map_err(Problem::from)
}

async fn unary(
    state: &SharedState,
    caller: &Caller,
    domain: &str,
    method: &prost_reflect::MethodDescriptor,
    path: &http::uri::PathAndQuery,
    request: DynamicMessage,
) -> Result<tonic::Response<DynamicMessage>, tonic::Status> {
    let channel = state
        .channel(domain)
        .ok_or_else(|| tonic::Status::unavailable(format!("no {domain} service is configured")))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("{domain} service: {e}")))?;
    let upstream = state
        .upstream(caller, request)
        .map_err(|_| tonic::Status::unauthenticated("token cannot be forwarded"))?;
    grpc.unary(
        upstream,
        path.clone(),
        codec::DynamicCodec::new(method.output()),
    )
    .await
}

/// `If-Match` -> `expected_version`, `Idempotency-Key` -> `request_id`,
/// where the request message has those fields.
fn apply_headers(request: &mut DynamicMessage, headers: &HeaderMap) -> Result<(), Problem> {
    let descriptor = request.descriptor();
    if let Some(field) = descriptor.get_field_by_name("expected_version") {
        let version = if_match(headers)?;
        if version != 0 {
            request.set_field(&field, Value::I64(version));
        }
    }
    if let Some(field) = descriptor.get_field_by_name("request_id") {
        if let Some(key) = headers.get("idempotency-key") {
            let key = key
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 200)
                .ok_or_else(|| {
                    Problem::invalid("Idempotency-Key", "must be 1 to 200 visible characters")
                })?;
            request.set_field(&field, Value::String(key.to_owned()));
        }
    }
    Ok(())
}

/// The HTTP answer: status by method kind, the body (or its
/// `response_body` field), the ETag and, for creates, the Location.
fn respond(binding: &Binding, uri: &http::Uri, reply: DynamicMessage) -> Response {
    if binding.is_delete() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let body = match &binding.response_body {
        Some(field) => match reply.get_field_by_name(field).as_deref() {
            Some(Value::Message(inner)) => inner.clone(),
            _ => DynamicMessage::new(binding.response_message()),
        },
        None => reply,
    };
    let status = if binding.is_create() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = (status, message::encode(&body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(version) = version_of(&body) {
        if let Ok(etag) = HeaderValue::from_str(&format!("\"{version}\"")) {
            headers.insert(header::ETAG, etag);
        }
    }
    if binding.is_create() {
        let id = body
            .get_field_by_name("id")
            .and_then(|v| v.as_str().map(str::to_owned));
        if let Some(location) = id.and_then(|id| {
            HeaderValue::from_str(&format!("{}/{id}", uri.path().trim_end_matches('/'))).ok()
        }) {
            headers.insert(header::LOCATION, location);
        }
    }
    response
}

/// A resource's version: `audit.version`, or a top-level `version`.
pub fn version_of(message: &DynamicMessage) -> Option<i64> {
    let descriptor = message.descriptor();
    if let Some(audit) = descriptor.get_field_by_name("audit") {
        if let Kind::Message(_) = audit.kind() {
            if let Value::Message(audit) = message.get_field(&audit).as_ref() {
                return audit
                    .get_field_by_name("version")
                    .and_then(|v| v.as_i64())
                    .filter(|v| *v > 0);
            }
        }
    }
    message
        .get_field_by_name("version")
        .and_then(|v| v.as_i64())
        .filter(|v| *v > 0)
}
