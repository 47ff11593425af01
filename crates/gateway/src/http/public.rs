//! Public routes for people without an account, reached from the messages
//! marketing sends: the open pixel (`/t/o/{token}`), tracked links
//! (`/t/c/{token}`) and one-click unsubscribe (`/u/{token}`, RFC 8058).
//!
//! The token is signed by the marketing service, which alone verifies it;
//! the gateway reads the tenant it names, mints a one-minute service token
//! for that tenant and asks marketing. Each route is rate-limited per
//! client address and per tenant, and answers the same way whether a token
//! is unknown, expired or forged, so it reveals nothing.

use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use crm_proto::crm::marketing::v1::tracking_service_client::TrackingServiceClient;
use crm_proto::crm::marketing::v1::{
    DescribeUnsubscribeRequest, RecordClickRequest, RecordOpenRequest, UnsubscribeRequest,
};
use kit::auth::{Claims, Role, Visibility};
use uuid::Uuid;

use super::auth::ClientIp;
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
enum Refused {
    /// Unknown, expired or forged link, or no marketing service.
    Invalid,
    /// Too many requests from the address or for the tenant.
    Limited,
    /// Marketing did not answer; the person may try again.
    Unavailable,
}

/// The tenant a token names (its first part), once the caller's address
/// and the tenant are within their rates.
fn admit(state: &SharedState, client: Option<IpAddr>, token: &str) -> Result<Uuid, Refused> {
    if let Some(ip) = client {
        if state.public_limiter.check_key(&ip).is_err() {
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
async fn as_service<T>(
    state: &SharedState,
    tenant: Uuid,
    message: T,
) -> Result<tonic::Request<T>, Refused> {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        iss: state.config.issuer.clone(),
        aud: state.config.audience.clone(),
        sub: "service:gateway-public-routes".into(),
        tid: tenant,
        roles: vec![Role::Service],
        teams: Vec::new(),
        scopes: Vec::new(),
        vis: Visibility::Tenant,
        exp: now + 60,
        iat: now,
        jti: Uuid::now_v7().to_string(),
    };
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

fn tracking(
    state: &SharedState,
) -> Result<TrackingServiceClient<tonic::transport::Channel>, Refused> {
    state
        .channel("marketing")
        .map(TrackingServiceClient::new)
        .ok_or(Refused::Invalid)
}

fn from_status(status: tonic::Status) -> Refused {
    match status.code() {
        tonic::Code::NotFound
        | tonic::Code::InvalidArgument
        | tonic::Code::PermissionDenied
        | tonic::Code::Unauthenticated => Refused::Invalid,
        _ => Refused::Unavailable,
    }
}

/// A small page for people (not an API answer): no caching, no referrer.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title}</title></head><body style=\"font-family:sans-serif;max-width:32em;margin:3em auto\"><h1>{title}</h1>{body}</body></html>"
    );
    let mut response = (status, Html(html)).into_response();
    private(&mut response);
    response
}

fn private(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert("x-robots-tag", HeaderValue::from_static("noindex"));
}

fn refusal_page(refused: Refused) -> Response {
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

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
