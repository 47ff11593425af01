//! Public routes for people without an account, reached from the messages
//! marketing sends: the open pixel (`/t/o/{token}`), tracked links
//! (`/t/c/{token}`) and one-click unsubscribe (`/u/{token}`, RFC 8058);
//! lead-capture forms (`/f/{key}`) on a tenant's web pages; and the
//! delivery reports of the mail relay and the SMS provider
//! (`/hooks/delivery-reports`).
//!
//! The token is signed by the marketing service, which alone verifies it
//! (a form's key is `<tenant>.<random>`, looked up by marketing); the
//! gateway reads the tenant it names, mints a one-minute service token
//! for that tenant and asks marketing. Each route is rate-limited per
//! client address and per tenant, and answers the same way whether a token
//! is unknown, expired or forged, so it reveals nothing.

use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use crm_proto::crm::marketing::v1::form_service_client::FormServiceClient;
use crm_proto::crm::marketing::v1::tracking_service_client::TrackingServiceClient;
use crm_proto::crm::marketing::v1::{
    DescribeFormRequest, DescribeUnsubscribeRequest, FormFieldTarget, RecordClickRequest,
    RecordDeliveryReportsRequest, RecordOpenRequest, SubmitFormRequest, UnsubscribeRequest,
};
use uuid::Uuid;

use super::auth::ClientIp;
use super::problem::Problem;
use super::SharedState;

/// A transparent 1x1 GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// Tokens longer than this are not ours.
const MAX_TOKEN: usize = 4096;

/// Why a public request got nowhere; each answers the same to the person.
pub(super) enum Refused {
    /// Unknown, expired or forged link, or no marketing service.
    Invalid,
    /// Too many requests from the address or for the tenant.
    Limited,
    /// Marketing did not answer; the person may try again.
    Unavailable,
}

/// The tenant a token names (its first part), once the caller's address
/// and the tenant are within their rates.
pub(super) fn admit(
    state: &SharedState,
    client: Option<IpAddr>,
    token: &str,
) -> Result<Uuid, Refused> {
    admit_by(state, &state.public_limiter, client, token)
}

/// [`admit`] with the client address's budget taken from `limiter`.
pub(super) fn admit_by(
    state: &SharedState,
    limiter: &governor::DefaultKeyedRateLimiter<IpAddr>,
    client: Option<IpAddr>,
    token: &str,
) -> Result<Uuid, Refused> {
    if let Some(ip) = client {
        if limiter.check_key(&ip).is_err() {
            metrics::counter!("crm_gateway_rate_limited_total").increment(1);
            return Err(Refused::Limited);
        }
    }
    if token.len() > MAX_TOKEN {
        return Err(Refused::Invalid);
    }
    let tenant = token
        .split('.')
        .next()
        .and_then(|t| Uuid::try_parse(t).ok())
        .ok_or(Refused::Invalid)?;
    if state.limiter.check_key(&tenant).is_err() {
        metrics::counter!("crm_gateway_rate_limited_total").increment(1);
        return Err(Refused::Limited);
    }
    Ok(tenant)
}

/// A request to marketing as a service of `tenant`.
pub(super) async fn as_service<T>(
    state: &SharedState,
    tenant: Uuid,
    message: T,
) -> Result<tonic::Request<T>, Refused> {
    let claims = super::auth::service_claims(state, "gateway-public-routes", tenant, 60);
    let signed = state
        .keys
        .sign(&claims)
        .await
        .map_err(|_| Refused::Unavailable)?;
    let mut request = tonic::Request::new(message);
    let bearer = format!("Bearer {signed}")
        .parse()
        .map_err(|_| Refused::Unavailable)?;
    request.metadata_mut().insert("authorization", bearer);
    request.set_timeout(state.config.upstream_timeout);
    kit::telemetry::inject_traceparent(&mut request);
    Ok(request)
}

/// What a public call came to: the answer; the person's own mistake
/// (`Err(Ok)`: bad input, a closed record, a second answer), which a page
/// explains; or a refusal (`Err(Err)`), the same for every bad link.
pub(super) type Outcome<R> = Result<R, Result<tonic::Status, Refused>>;

/// Asks `service` (named, and its client made by `connect`) as the public
/// routes' identity of `credential`'s tenant, once the caller's address
/// (with the posts' budget for writes) and the tenant are within their
/// rates.
pub(super) async fn ask<C, T, R, Fut>(
    state: &SharedState,
    client: Option<IpAddr>,
    credential: &str,
    write: bool,
    (service, connect): (&str, fn(tonic::transport::Channel) -> C),
    message: T,
    call: impl FnOnce(C, tonic::Request<T>) -> Fut,
) -> Outcome<R>
where
    Fut: std::future::Future<Output = Result<tonic::Response<R>, tonic::Status>>,
{
    let tenant = if write {
        admit_by(state, &state.form_limiter, client, credential)
    } else {
        admit(state, client, credential)
    }
    .map_err(Err)?;
    let request = as_service(state, tenant, message).await.map_err(Err)?;
    let channel = state.channel(service).ok_or(Err(Refused::Invalid))?;
    call(connect(channel), request)
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| match status.code() {
            tonic::Code::InvalidArgument
            | tonic::Code::FailedPrecondition
            | tonic::Code::AlreadyExists => Ok(status),
            _ => Err(from_status(status)),
        })
}

fn tracking(
    state: &SharedState,
) -> Result<TrackingServiceClient<tonic::transport::Channel>, Refused> {
    state
        .channel("marketing")
        .map(TrackingServiceClient::new)
        .ok_or(Refused::Invalid)
}

pub(super) fn from_status(status: tonic::Status) -> Refused {
    match status.code() {
        tonic::Code::NotFound
        | tonic::Code::InvalidArgument
        | tonic::Code::PermissionDenied
        | tonic::Code::Unauthenticated => Refused::Invalid,
        _ => Refused::Unavailable,
    }
}

/// A small page for people (not an API answer): no caching, no referrer.
pub(super) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title}</title></head><body style=\"font-family:sans-serif;max-width:32em;margin:3em auto\"><h1>{title}</h1>{body}</body></html>"
    );
    let mut response = (status, Html(html)).into_response();
    private(&mut response);
    response
}

/// Public pages are never cached, indexed or given a referrer (their
/// address may carry a signed link), and run nothing: they are plain HTML
/// with inline styles, so the policy allows nothing else. Pages of signed
/// links are also never framed (`super::unframed`); forms may be, on the
/// tenant's own site.
pub(super) fn private(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

pub(super) fn refusal_page(refused: Refused) -> Response {
    match refused {
        Refused::Invalid => page(
            StatusCode::NOT_FOUND,
            "This link is not valid",
            "<p>It may have expired, or it was copied incompletely.</p>",
        ),
        Refused::Limited => page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            "<p>Please try again in a moment.</p>",
        ),
        Refused::Unavailable => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Please try again",
            "<p>We could not process this just now.</p>",
        ),
    }
}

/// `GET /t/o/{token}`: the open pixel; the image is served whatever happens.
pub async fn open(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    Path(token): Path<String>,
) -> Response {
    if let Ok(tenant) = admit(&state, client, &token) {
        if let (Ok(request), Ok(mut marketing)) = (
            as_service(
                &state,
                tenant,
                RecordOpenRequest {
                    token: token.clone(),
                },
            )
            .await,
            tracking(&state),
        ) {
            let _ = marketing.record_open(request).await;
        }
    }
    let mut response = ([(header::CONTENT_TYPE, "image/gif")], PIXEL).into_response();
    private(&mut response);
    response
}

/// `GET /t/c/{token}`: records the click and redirects to the link's target.
pub async fn click(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    Path(token): Path<String>,
) -> Response {
    let target = async {
        let tenant = admit(&state, client, &token)?;
        let request = as_service(
            &state,
            tenant,
            RecordClickRequest {
                token: token.clone(),
            },
        )
        .await?;
        let answer = tracking(&state)?
            .record_click(request)
            .await
            .map_err(from_status)?;
        Ok::<_, Refused>(answer.into_inner().url)
    };
    match target.await {
        Ok(url) => match HeaderValue::from_str(&url) {
            Ok(location) => {
                let mut response = StatusCode::FOUND.into_response();
                response.headers_mut().insert(header::LOCATION, location);
                private(&mut response);
                response
            }
            Err(_) => refusal_page(Refused::Invalid),
        },
        Err(refused) => refusal_page(refused),
    }
}

/// `GET /u/{token}`: asks the person to confirm (mail scanners follow GET
/// links, so a GET never unsubscribes).
pub async fn unsubscribe_page(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    Path(token): Path<String>,
) -> Response {
    let described = async {
        let tenant = admit(&state, client, &token)?;
        let request = as_service(
            &state,
            tenant,
            DescribeUnsubscribeRequest {
                token: token.clone(),
            },
        )
        .await?;
        let answer = tracking(&state)?
            .describe_unsubscribe(request)
            .await
            .map_err(from_status)?;
        Ok::<_, Refused>(answer.into_inner())
    };
    match described.await {
        Ok(described) => {
            let sender = if described.sender_name.is_empty() {
                "this sender".to_owned()
            } else {
                escape(&described.sender_name)
            };
            page(
                StatusCode::OK,
                "Unsubscribe",
                &format!(
                    "<p>Stop e-mails from {sender} to {}?</p><form method=\"post\"><button type=\"submit\">Unsubscribe</button></form>",
                    escape(&described.masked_address)
                ),
            )
        }
        Err(refused) => refusal_page(refused),
    }
}

/// `POST /u/{token}`: one-click unsubscribe (the mail client's
/// `List-Unsubscribe-Post`, or the confirmation form).
pub async fn unsubscribe(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    Path(token): Path<String>,
) -> Response {
    let done = async {
        let tenant = admit(&state, client, &token)?;
        let request = as_service(
            &state,
            tenant,
            UnsubscribeRequest {
                token: token.clone(),
            },
        )
        .await?;
        tracking(&state)?
            .unsubscribe(request)
            .await
            .map_err(from_status)?;
        Ok::<_, Refused>(())
    };
    match done.await {
        Ok(()) => page(
            StatusCode::OK,
            "You are unsubscribed",
            "<p>You will get no more of these e-mails.</p>",
        ),
        Err(refused) => refusal_page(refused),
    }
}

pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A form post larger than this is not a person's.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

fn forms(state: &SharedState) -> Result<FormServiceClient<tonic::transport::Channel>, Refused> {
    state
        .channel("marketing")
        .map(FormServiceClient::new)
        .ok_or(Refused::Invalid)
}

/// `GET /f/{key}`: the form as a plain HTML page that posts to itself.
pub async fn form_page(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    Path(key): Path<String>,
) -> Response {
    let described = async {
        let tenant = admit(&state, client, &key)?;
        let request = as_service(
            &state,
            tenant,
            DescribeFormRequest {
                public_key: key.clone(),
            },
        )
        .await?;
        let answer = forms(&state)?
            .describe_form(request)
            .await
            .map_err(from_status)?;
        Ok::<_, Refused>(answer.into_inner())
    };
    let form = match described.await {
        Ok(form) => form,
        Err(refused) => return refusal_page(refused),
    };
    let mut inputs = String::new();
    for field in &form.fields {
        let (name, label) = (escape(&field.name), escape(&field.label));
        let required = if field.required { " required" } else { "" };
        let kind = match FormFieldTarget::try_from(field.target).unwrap_or_default() {
            FormFieldTarget::Email => "email",
            FormFieldTarget::Phone => "tel",
            FormFieldTarget::CompanySize => "number",
            _ => "text",
        };
        let input = if field.target == FormFieldTarget::Message as i32 {
            format!(
                "<textarea id=\"{name}\" name=\"{name}\" maxlength=\"2000\"{required}></textarea>"
            )
        } else {
            format!("<input id=\"{name}\" name=\"{name}\" type=\"{kind}\" maxlength=\"2000\"{required}>")
        };
        inputs.push_str(&format!(
            "<p><label for=\"{name}\">{label}</label><br>{input}</p>"
        ));
    }
    if let Some(consent) = &form.consent {
        let required = if consent.required { " required" } else { "" };
        inputs.push_str(&format!(
            "<p><label><input type=\"checkbox\" name=\"consent\" value=\"on\"{required}> {}</label></p>",
            escape(&consent.wording)
        ));
    }
    // People never see the honeypot; bots fill every input.
    let trap = escape(&form.honeypot_field);
    inputs.push_str(&format!(
        "<div style=\"position:absolute;left:-10000px\" aria-hidden=\"true\"><input name=\"{trap}\" tabindex=\"-1\" autocomplete=\"off\"></div>"
    ));
    page(
        StatusCode::OK,
        &escape(&form.name),
        &format!(
            "<form method=\"post\">{inputs}<p><button type=\"submit\">Send</button></p></form>"
        ),
    )
}

/// A posted body's inputs: a form post (`application/x-www-form-urlencoded`)
/// or a JSON object of strings, numbers and booleans.
pub(super) fn posted_values(
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<(std::collections::HashMap<String, String>, bool), Problem> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("application/json") {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
            .map_err(|_| Problem::invalid("body", "must be a JSON object of the form's inputs"))?;
        let mut values = std::collections::HashMap::new();
        for (name, value) in object {
            let text = match value {
                serde_json::Value::String(text) => text,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Null => String::new(),
                _ => {
                    return Err(Problem::invalid(
                        &name,
                        "must be a string, a number or a boolean",
                    ))
                }
            };
            values.insert(name, text);
        }
        Ok((values, true))
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        Ok((form_urlencoded::parse(body).into_owned().collect(), false))
    } else {
        Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "send the form as application/x-www-form-urlencoded or application/json",
        ))
    }
}

/// `POST /f/{key}`: a submission. A browser's form post is answered with a
/// page (or sent to the form's redirect address); a JSON post with JSON
/// (202 and the submission's id, or a problem naming the fields).
pub async fn submit_form(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    Path(key): Path<String>,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let (values, json) = match posted_values(&headers, &body) {
        Ok(parsed) => parsed,
        Err(problem) => return problem.into_response(),
    };
    let page_url = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let submitted = async {
        // Posts have their own budget per address (a person's page views
        // and tracking pixels do not use it up).
        let tenant = admit_by(&state, &state.form_limiter, client, &key).map_err(Err)?;
        let request = as_service(
            &state,
            tenant,
            SubmitFormRequest {
                public_key: key.clone(),
                values: values.into_iter().collect(),
                page_url,
            },
        )
        .await
        .map_err(Err)?;
        let answer = forms(&state)
            .map_err(Err)?
            .submit_form(request)
            .await
            .map_err(|status| match status.code() {
                tonic::Code::InvalidArgument => Ok(Problem::from(status)),
                _ => Err(from_status(status)),
            })?;
        Ok(answer.into_inner())
    };
    match (submitted.await, json) {
        (Ok(mut answer), json) => {
            if answer.submission_id.is_empty() {
                // Honeypot: answered like any other, so the bot learns nothing.
                metrics::counter!("crm_gateway_form_spam_total").increment(1);
                answer.submission_id = Uuid::now_v7().to_string();
            }
            if json {
                let body = serde_json::json!({
                    "submission_id": answer.submission_id,
                    "message": answer.thank_you_message,
                });
                let mut response = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
                private(&mut response);
                response
            } else {
                match HeaderValue::from_str(&answer.redirect_url) {
                    Ok(location) if !answer.redirect_url.is_empty() => {
                        let mut response = StatusCode::SEE_OTHER.into_response();
                        response.headers_mut().insert(header::LOCATION, location);
                        private(&mut response);
                        response
                    }
                    _ => page(
                        StatusCode::OK,
                        "Thank you",
                        &format!("<p>{}</p>", escape(&answer.thank_you_message)),
                    ),
                }
            }
        }
        (Err(Ok(problem)), true) => problem.into_response(),
        (Err(Ok(problem)), false) => problem_page(&problem),
        (Err(Err(refused)), true) => refusal_problem(refused, "no form at this address"),
        (Err(Err(refused)), false) => refusal_page(refused),
    }
}

/// A form's bad fields (or, without any, what went wrong) as a page for
/// the person who posted it.
pub(super) fn problem_page(problem: &Problem) -> Response {
    let items: String = problem
        .errors
        .iter()
        .map(|e| format!("<li>{}: {}</li>", escape(&e.field), escape(&e.message)))
        .collect();
    let told = if items.is_empty() {
        format!("<p>{}</p>", escape(&problem.detail))
    } else {
        format!("<ul>{items}</ul><p>Go back to the form to correct them.</p>")
    };
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
    page(status, "Please check the form", &told)
}

/// A refusal as JSON, for a script posting a public form.
pub(super) fn refusal_problem(refused: Refused, unknown: &str) -> Response {
    match refused {
        Refused::Invalid => Problem::new(StatusCode::NOT_FOUND, "NOT_FOUND", unknown),
        Refused::Limited => Problem::retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            "too many submissions",
            60,
        ),
        Refused::Unavailable => Problem::retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "please try again",
            5,
        ),
    }
    .into_response()
}

/// A delivery report body larger than this is refused.
pub const MAX_REPORT_BYTES: usize = 1024 * 1024;
/// Tenants one report body may concern (one call to marketing each).
const MAX_REPORT_TENANTS: usize = 50;

#[derive(serde::Deserialize)]
struct ReportList {
    reports: Vec<ReportReference>,
}

#[derive(serde::Deserialize)]
struct ReportReference {
    #[serde(default)]
    reference: String,
}

/// `POST /hooks/delivery-reports`: the relay's or the SMS provider's
/// reports, signed with `MARKETING_WEBHOOK_KEY` (headers `X-CRM-Timestamp`
/// and `X-CRM-Signature`). The gateway only finds the tenants the reports
/// name and hands the body, as received, to marketing once per tenant;
/// marketing checks the signature and applies that tenant's reports.
pub async fn delivery_reports(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> Response {
    if let Some(ip) = client {
        if state.public_limiter.check_key(&ip).is_err() {
            metrics::counter!("crm_gateway_rate_limited_total").increment(1);
            return Problem::retry_later(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                "too many reports",
                1,
            )
            .into_response();
        }
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (Some(timestamp), Some(signature)) = (
        header("x-crm-timestamp").and_then(|t| t.parse::<i64>().ok()),
        header("x-crm-signature"),
    ) else {
        return Problem::unauthenticated("reports are signed: X-CRM-Timestamp and X-CRM-Signature")
            .into_response();
    };
    let Ok(list) = serde_json::from_slice::<ReportList>(&body) else {
        return Problem::invalid("body", "must be {\"reports\": [...]}").into_response();
    };
    let tenants: std::collections::BTreeSet<Uuid> = list
        .reports
        .iter()
        .filter_map(|r| kit::events::message_reference(&r.reference).map(|(tenant, _)| tenant))
        .collect();
    if tenants.len() > MAX_REPORT_TENANTS {
        return Problem::invalid(
            "reports",
            format!("concern more than {MAX_REPORT_TENANTS} tenants; send them in smaller batches"),
        )
        .into_response();
    }
    let (mut applied, mut ignored) = (0, 0);
    for tenant in tenants {
        let request = RecordDeliveryReportsRequest {
            body: body.to_vec(),
            timestamp,
            signature: signature.clone(),
        };
        let answer = async {
            let request = as_service(&state, tenant, request)
                .await
                .map_err(|_| None)?;
            let mut client = tracking(&state).map_err(|_| None)?;
            client
                .record_delivery_reports(request)
                .await
                .map(tonic::Response::into_inner)
                .map_err(Some)
        };
        match answer.await {
            Ok(done) => {
                applied += done.applied;
                ignored += done.ignored;
            }
            Err(Some(status)) if status.code() == tonic::Code::PermissionDenied => {
                return Problem::unauthenticated(
                    "the reports' signature does not hold or is too old",
                )
                .into_response();
            }
            Err(Some(status)) => return Problem::from(status).into_response(),
            Err(None) => {
                return Problem::retry_later(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    "please try again",
                    5,
                )
                .into_response()
            }
        }
    }
    axum::Json(serde_json::json!({"applied": applied, "ignored": ignored})).into_response()
}
