//! gRPC-Web pass-through: browsers call the services' gRPC APIs through the
//! gateway (`POST /crm.customers.v1.ContactService/GetContact`, content type
//! `application/grpc-web+proto`) with the same tokens as the REST API.
//!
//! The gateway authenticates and rate-limits the call like any REST call,
//! swaps an API key for the short-lived token it mints, and streams the
//! frames both ways unchanged: the services speak gRPC-Web themselves
//! (tonic-web), so nothing is decoded here. Errors before the service is
//! reached come back as gRPC statuses in a trailers-only answer, which is
//! what gRPC-Web clients understand.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::problem::Problem;
use super::{Caller, SharedState};

/// Request headers a gRPC-Web call carries through to the service.
const FORWARDED: [&str; 6] = [
    "content-type",
    "x-grpc-web",
    "grpc-timeout",
    "grpc-accept-encoding",
    "traceparent",
    "x-request-id",
];

pub fn is_grpc_web(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc-web"))
}

/// A trailers-only gRPC-Web answer carrying just a status.
fn status_only(code: tonic::Code, message: &str) -> Response {
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc-web+proto"),
    );
    headers.insert("grpc-status", HeaderValue::from(code as i32));
    if let Ok(value) = HeaderValue::from_str(&percent_encode(message)) {
        headers.insert("grpc-message", value);
    }
    response
}

/// grpc-message is percent-encoded (gRPC over HTTP/2 spec).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b' '..=b'~' if b != b'%' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn code_for(problem: &Problem) -> tonic::Code {
    match problem.status {
        401 => tonic::Code::Unauthenticated,
        403 => tonic::Code::PermissionDenied,
        429 => tonic::Code::ResourceExhausted,
        503 => tonic::Code::Unavailable,
        400 => tonic::Code::InvalidArgument,
        _ => tonic::Code::Internal,
    }
}

/// The gRPC address of the service owning a path's proto package.
fn upstream<'a>(state: &'a SharedState, path: &str) -> Option<&'a str> {
    state
        .grpc_web_routes
        .iter()
        .find(|(package, _)| path.starts_with(package.as_str()))
        .map(|(_, url)| url.as_str())
}

/// Forwards a gRPC-Web call; anything else reaching here is an unknown route.
pub async fn forward(State(state): State<SharedState>, request: Request) -> Response {
    if !is_grpc_web(request.headers()) || request.method() != axum::http::Method::POST {
        return Problem::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route").into_response();
    }
    let path = request.uri().path().to_owned();
    let Some(base) = upstream(&state, &path) else {
        return status_only(tonic::Code::Unimplemented, "no service offers this method");
    };
    let (mut parts, body) = request.into_parts();
    let caller = match Caller::from_request_parts(&mut parts, &state).await {
        Ok(caller) => caller,
        Err(problem) => return status_only(code_for(&problem), &problem.detail),
    };
    let mut outbound = state
        .http
        .post(format!("{base}{path}"))
        .bearer_auth(&caller.token)
        .timeout(state.config.upstream_timeout)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()));
    for name in FORWARDED {
        if let Some(value) = parts.headers.get(name) {
            outbound = outbound.header(name, value.as_bytes());
        }
    }
    let answer = match outbound.send().await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::warn!(%error, %path, "gRPC-Web upstream unreachable");
            return status_only(tonic::Code::Unavailable, "the service is unavailable");
        }
    };
    let mut response = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if !matches!(
            name.as_str(),
            "connection" | "transfer-encoding" | "content-length" | "keep-alive"
        ) {
            response = response.header(name.as_str(), value.as_bytes());
        }
    }
    let frames = answer
        .bytes_stream()
        .map(|chunk| chunk.map_err(std::io::Error::other));
    response
        .body(Body::from_stream(frames))
        .unwrap_or_else(|_| status_only(tonic::Code::Internal, "bad upstream answer"))
}
