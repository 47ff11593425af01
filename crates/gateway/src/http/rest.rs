//! What every REST resource shares: versions as ETags, `If-Match` as the
//! expected version, `Idempotency-Key` on creates, and the mapping between
//! JSON values and `google.protobuf.Value` for custom fields.

use std::future::Future;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::problem::Problem;
use super::{Caller, SharedState};
use crate::store::idempotency::{self, Reservation};

/// A JSON response whose ETag is the record's version.
pub fn with_etag<T: Serialize>(status: StatusCode, version: i64, body: T) -> Response {
    let mut response = (status, Json(body)).into_response();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

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

/// Runs `create` at most once per `Idempotency-Key`: a retry with the same
/// key and body gets the stored response (marked `idempotent-replayed`), the
/// same key with another request 422, a retry while the first runs 409. A
/// failed create frees the key. Without the header `create` just runs.
pub async fn idempotent_create<Fut>(
    state: &SharedState,
    caller: &Caller,
    headers: &HeaderMap,
    route: &str,
    body: &[u8],
    create: Fut,
) -> Result<Response, Problem>
where
    Fut: Future<Output = Result<(serde_json::Value, i64), Problem>>,
{
    let Some(key) = headers.get("idempotency-key") else {
        let (json, version) = create.await?;
        return Ok(with_etag(StatusCode::CREATED, version, json));
    };
    let key = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 200)
        .map(str::to_owned);
    let key = key.ok_or_else(|| {
        Problem::invalid("Idempotency-Key", "must be 1 to 200 visible characters")
    })?;
    let tenant = caller.context.tenant_id;
    let mut hasher = Sha256::new();
    hasher.update(route.as_bytes());
    hasher.update([0]);
    hasher.update(body);
    let hash = hasher.finalize().to_vec();
    let mut tx = state.db.begin_tenant(tenant).await?;
    let reservation = idempotency::reserve(&mut tx, tenant, &key, &hash).await?;
    tx.commit().await?;
    match reservation {
        Reservation::Reserved => {}
        Reservation::Replay { status, body } => {
            let mut response =
                (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return Ok(response);
        }
        Reservation::Mismatch => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "INVALID_ARGUMENT",
                "this Idempotency-Key was used for a different request",
            ))
        }
        Reservation::InFlight => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "FAILED_PRECONDITION",
                "a request with this Idempotency-Key is still running",
            ))
        }
    }
    match create.await {
        Ok((json, version)) => {
            let stored = serde_json::to_vec(&json).unwrap_or_default();
            let mut tx = state.db.begin_tenant(tenant).await?;
            idempotency::complete(&mut tx, tenant, &key, 201, &stored).await?;
            tx.commit().await?;
            Ok(with_etag(StatusCode::CREATED, version, json))
        }
        Err(problem) => {
            let mut tx = state.db.begin_tenant(tenant).await?;
            idempotency::release(&mut tx, tenant, &key).await?;
            tx.commit().await?;
            Err(problem)
        }
    }
}

pub fn json_to_value(json: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match json {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(prost_types::Struct {
            fields: map
                .iter()
                .map(|(k, v)| (k.clone(), json_to_value(v)))
                .collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

pub fn value_to_json(value: &prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::ListValue(list)) => {
            serde_json::Value::Array(list.values.iter().map(value_to_json).collect())
        }
        Some(Kind::StructValue(s)) => serde_json::Value::Object(
            s.fields
                .iter()
                .map(|(k, v)| (k.clone(), value_to_json(v)))
                .collect(),
        ),
    }
}

/// A lifecycle stage name (`customer`) from its enum value; None if unset.
pub fn stage_name(value: i32) -> Option<String> {
    crm_proto::crm::customers::v1::LifecycleStage::try_from(value)
        .ok()
        .filter(|s| *s != crm_proto::crm::customers::v1::LifecycleStage::Unspecified)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("LIFECYCLE_STAGE_")
                .to_ascii_lowercase()
        })
}

/// A lifecycle stage enum value from its name; a 400 naming `field` if unknown.
pub fn parse_stage(field: &str, name: &str) -> Result<i32, Problem> {
    use crm_proto::crm::customers::v1::LifecycleStage;
    LifecycleStage::from_str_name(&format!("LIFECYCLE_STAGE_{}", name.trim().to_ascii_uppercase()))
        .filter(|s| *s != LifecycleStage::Unspecified)
        .map(|s| s as i32)
        .ok_or_else(|| {
            Problem::invalid(
                field,
                "must be one of subscriber, lead, marketing_qualified, sales_qualified, opportunity, customer, evangelist, churned",
            )
        })
}

pub fn timestamp(t: Option<&prost_types::Timestamp>) -> Option<String> {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.to_rfc3339())
}

pub fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
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

/// `LEAD_STATUS_NEW` -> `new`: protobuf enum names as REST values.
pub fn enum_text(proto_name: &str, prefix: &str) -> String {
    proto_name.trim_start_matches(prefix).to_ascii_lowercase()
}

/// A REST enum value back to its protobuf number via `from_str_name`; a 400
/// naming `field` and the allowed values when unknown.
pub fn enum_value<E: Copy + Into<i32>>(
    field: &str,
    raw: &str,
    prefix: &str,
    from_name: impl Fn(&str) -> Option<E>,
    allowed: &str,
) -> Result<i32, Problem> {
    from_name(&format!("{prefix}{}", raw.trim().to_ascii_uppercase()))
        .map(Into::into)
        .filter(|v| *v != 0)
        .ok_or_else(|| Problem::invalid(field, format!("must be one of {allowed}")))
}

/// An exact amount of money: a decimal string and an ISO 4217 currency.
#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct MoneyDto {
    /// "1250000.00"; never a float.
    pub amount: String,
    /// "EUR"
    pub currency: String,
}

impl From<crm_proto::crm::common::v1::Money> for MoneyDto {
    fn from(m: crm_proto::crm::common::v1::Money) -> Self {
        MoneyDto {
            amount: m.amount,
            currency: m.currency,
        }
    }
}

impl From<MoneyDto> for crm_proto::crm::common::v1::Money {
    fn from(m: MoneyDto) -> Self {
        crm_proto::crm::common::v1::Money {
            amount: m.amount,
            currency: m.currency,
        }
    }
}

/// The next-page token of a list answer, `None` on the last page.
pub fn next_token(page: Option<crm_proto::crm::common::v1::PageResponse>) -> Option<String> {
    page.map(|p| p.next_page_token).filter(|t| !t.is_empty())
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
