//! Small helpers the hand-written routes and the transcoder share:
//! `If-Match` as an expected version, query parameters, ids, timestamps,
//! and JSON values as `google.protobuf.Value`.

use axum::http::{header, HeaderMap};

use super::problem::Problem;
/// The version an `If-Match` header asks for; 0 (no check) when absent.
pub fn if_match(headers: &HeaderMap) -> Result<i64, Problem> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(0);
    };
    if value.as_bytes() == b"*" {
        return Ok(0); // any current version
    }
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            Problem::invalid(
                "If-Match",
                "must be an ETag returned by this API, such as \"3\", or *",
            )
        })
}

pub use kit::values::json_to_value;

pub fn timestamp(t: Option<&prost_types::Timestamp>) -> Option<String> {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.to_rfc3339())
}

/// Parses the common list query parameters; unknown ones are a 400.
pub fn page_params(
    params: &std::collections::HashMap<String, String>,
    known: &[&str],
) -> Result<crm_proto::crm::common::v1::PageRequest, Problem> {
    if let Some(unknown) = params.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(Problem::invalid(unknown, "is not a parameter of this list"));
    }
    let page_size = match params.get("page_size") {
        None => 0,
        Some(raw) => raw
            .parse::<i32>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| Problem::invalid("page_size", "must be a number from 1 to 500"))?,
    };
    Ok(crm_proto::crm::common::v1::PageRequest {
        page_size,
        page_token: params.get("page_token").cloned().unwrap_or_default(),
    })
}

/// A path or body id; a 400 naming `field` when it is not a UUID.
pub fn parse_uuid(field: &str, raw: &str) -> Result<uuid::Uuid, Problem> {
    uuid::Uuid::parse_str(raw).map_err(|_| Problem::invalid(field, "is not a valid id (UUID)"))
}

/// An optional id query parameter as the services take it: empty when
/// absent, a 400 naming `name` when it is not a UUID.
pub fn id_param(
    params: &std::collections::HashMap<String, String>,
    name: &str,
) -> Result<String, Problem> {
    params
        .get(name)
        .map(|raw| parse_uuid(name, raw).map(|u| u.to_string()))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// An optional `true` / `false` query parameter; false when absent.
pub fn bool_param(
    params: &std::collections::HashMap<String, String>,
    name: &str,
) -> Result<bool, Problem> {
    match params.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(Problem::invalid(name, "must be true or false")),
    }
}
