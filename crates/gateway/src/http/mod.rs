//! The REST/JSON API: routes, the caller extractor, and calls to services.

pub mod api_keys;
pub mod app;
pub mod audit;
pub mod auth;
pub mod chat;
pub mod data;
pub mod docs;
pub mod grpc_web;
pub mod overview;
pub mod portal;
pub mod problem;
pub mod public;
pub mod rest;
pub mod search;
pub mod surveys;
pub mod teams;
pub mod tenants;
pub mod transcode;
pub mod users;
pub mod webhooks;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use kit::auth::CallerContext;
use kit::db::Database;
use tonic::transport::Channel;

use self::problem::Problem;
use crate::config::GatewayConfig;
use crate::keyring::KeyRing;

/// Largest request body accepted (JSON); imports go to the services' gRPC.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub struct AppState {
    pub config: GatewayConfig,
    pub db: Database,
    pub keys: KeyRing,
    /// A lazily connected channel per configured domain service.
    pub channels: std::collections::BTreeMap<String, Channel>,
    /// Requests per second per tenant.
    pub limiter: governor::DefaultKeyedRateLimiter<uuid::Uuid>,
    /// Requests to the public routes (tracking, unsubscribe) per second
    /// per client address.
    pub public_limiter: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    /// Lead-capture form posts per minute per client address.
    pub form_limiter: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    /// API keys checked recently.
    pub api_key_cache: api_keys::KeyCache,
    /// Login budgets and the argon2 pool.
    pub login_guard: crate::domain::login_guard::LoginGuard,
    /// Requests in flight; none left means shed load.
    pub permits: Arc<tokio::sync::Semaphore>,
    /// gRPC-Web pass-through: proto package path prefix -> service URL.
    pub grpc_web_routes: Vec<(String, String)>,
    /// HTTP/1.1 client for the gRPC-Web pass-through.
    pub http: reqwest::Client,
    /// `/openapi.json`: the hand-written routes and the transcoded ones.
    pub openapi: axum::body::Bytes,
}

impl AppState {
    pub fn new(
        config: GatewayConfig,
        db: Database,
        keys: KeyRing,
        channels: std::collections::BTreeMap<String, Channel>,
        openapi: serde_json::Value,
    ) -> Self {
        let rate = std::num::NonZeroU32::new(config.tenant_rate_per_second)
            .unwrap_or(std::num::NonZeroU32::MIN);
        let limiter = governor::RateLimiter::keyed(governor::Quota::per_second(rate));
        let config_form_rate = config.form_posts_per_minute;
        let permits = Arc::new(tokio::sync::Semaphore::new(config.concurrency_limit.max(1)));
        let grpc_web_routes = config
            .services
            .iter()
            .map(|(domain, url)| (format!("/crm.{domain}."), url.clone()))
            .collect();
        AppState {
            api_key_cache: api_keys::KeyCache::default(),
            login_guard: crate::domain::login_guard::LoginGuard::new(
                config.login_attempts_per_minute,
            ),
            grpc_web_routes,
            http: reqwest::Client::new(),
            openapi: serde_json::to_vec(&openapi).unwrap_or_default().into(),
            config,
            db,
            keys,
            channels,
            limiter,
            // A person opening mail makes a handful of requests; a burst
            // of 20, then 5 a second, per address.
            public_limiter: governor::RateLimiter::keyed(
                governor::Quota::per_second(
                    std::num::NonZeroU32::new(5).unwrap_or(std::num::NonZeroU32::MIN),
                )
                .allow_burst(std::num::NonZeroU32::new(20).unwrap_or(std::num::NonZeroU32::MIN)),
            ),
            form_limiter: governor::RateLimiter::keyed(governor::Quota::per_minute(
                std::num::NonZeroU32::new(config_form_rate).unwrap_or(std::num::NonZeroU32::MIN),
            )),
            permits,
        }
    }
}

impl AppState {
    /// The channel to the service of a proto domain (`crm.<domain>.v1`),
    /// if one is configured.
    pub fn channel(&self, domain: &str) -> Option<Channel> {
        self.channels.get(domain).cloned()
    }

    /// The channel to a service the route cannot do without: a 503
    /// problem when none is configured.
    pub fn service(&self, domain: &str) -> Result<Channel, Problem> {
        self.channel(domain).ok_or_else(|| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                format!("no {domain} service is configured"),
            )
        })
    }
}

pub type SharedState = Arc<AppState>;

/// A JSON request body; anything but valid JSON of the expected shape is a
/// 400 problem naming `body` (413 when over the size limit).
pub struct JsonBody<T>(pub T);

/// The raw request body, with the same problem answers as [`JsonBody`].
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for RawBody {
    type Rejection = Problem;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::body::Bytes::from_request(request, state)
            .await
            .map(RawBody)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "INVALID_ARGUMENT",
                        "the body is larger than 1 MiB",
                    )
                } else {
                    Problem::invalid("body", rejection.body_text())
                }
            })
    }
}

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let RawBody(bytes) = RawBody::from_request(request, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses a JSON body, naming `body` and serde's reason when it does not fit.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(bytes).map_err(|error| {
        let mut problem = Problem::invalid("body", error.to_string());
        problem.detail = "the body is not valid JSON for this operation".into();
        problem
    })
}

/// An authenticated caller: the verified context and the bearer token that
/// is forwarded to services (which verify it again themselves).
pub struct Caller {
    pub context: CallerContext,
    pub token: String,
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
}

impl FromRequestParts<SharedState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let token =
            bearer(parts).ok_or_else(|| Problem::unauthenticated("missing bearer token"))?;
        let (context, token) = if api_keys::is_api_key(token) {
            let client = auth::ClientIp::of(parts).0;
            api_keys::authenticate(state, token, client).await?
        } else {
            (
                state.keys.verify(token).await.map_err(Problem::from)?,
                token.to_owned(),
            )
        };
        if let Err(not_until) = state.limiter.check_key(&context.tenant_id) {
            use governor::clock::Clock as _;
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            metrics::counter!("crm_gateway_rate_limited_total").increment(1);
            return Err(Problem::retry_later(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                "too many requests for this tenant; retry after the given seconds",
                wait.as_secs() + 1,
            ));
        }
        Ok(Caller { context, token })
    }
}

impl Caller {
    /// Refuses anyone but a tenant admin signed in as a user (API keys act
    /// as managers, so they never pass).
    pub fn require_admin(&self, what: &str) -> Result<(), Problem> {
        if self.context.has_role(kit::auth::Role::Admin) && self.context.scopes.is_empty() {
            Ok(())
        } else {
            Err(Problem::forbidden(format!("only admins {what}")))
        }
    }

    /// Refuses API keys (their tokens carry scopes): identity data is for
    /// people; a key has only the rights its scopes name.
    pub fn require_person(&self, what: &str) -> Result<(), Problem> {
        if self.context.scopes.is_empty() {
            Ok(())
        } else {
            Err(Problem::forbidden(format!("API keys cannot {what}")))
        }
    }
}

impl AppState {
    /// A gRPC request carrying the caller's token, deadline and trace.
    pub fn upstream<T>(&self, caller: &Caller, message: T) -> Result<tonic::Request<T>, Problem> {
        let mut request = tonic::Request::new(message);
        let value = format!("Bearer {}", caller.token)
            .parse()
            .map_err(|_| Problem::unauthenticated("token cannot be forwarded"))?;
        request.metadata_mut().insert("authorization", value);
        request.set_timeout(self.config.upstream_timeout);
        kit::telemetry::inject_traceparent(&mut request);
        Ok(request)
    }
}

async fn readiness(State(state): State<SharedState>) -> StatusCode {
    if state.db.ping().await {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// Request ids, load shedding and request metrics for every route but the
/// probes: beyond the concurrency limit the gateway answers 503 at once
/// instead of queueing until every caller times out.
async fn front_door(
    State(state): State<SharedState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = request.uri().path().to_owned();
    if matches!(path.as_str(), "/healthz" | "/readyz") {
        return next.run(request).await;
    }
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    if let Ok(value) = axum::http::HeaderValue::from_str(&request_id) {
        request.headers_mut().insert("x-request-id", value);
    }
    let Ok(permit) = state.permits.clone().try_acquire_owned() else {
        metrics::counter!("crm_gateway_shed_total").increment(1);
        return Problem::retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "the gateway is at capacity",
            1,
        )
        .into_response();
    };
    let method = request.method().to_string();
    let started = std::time::Instant::now();
    let logged = loggable_path(&path);
    let span =
        tracing::info_span!("http.request", %method, path = %logged, request_id = %request_id);
    let mut response = tracing::Instrument::instrument(next.run(request), span).await;
    drop(permit);
    let status = response.status().as_u16().to_string();
    metrics::counter!("crm_gateway_requests_total", "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("crm_gateway_request_duration_seconds", "method" => method)
        .record(started.elapsed().as_secs_f64());
    if let Ok(value) = axum::http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    if signed_link(&path).is_some() {
        unframed(&mut response);
    }
    response
}

/// The pages of signed links act for a person: no other site may frame
/// them (clickjacking), whatever else the page's policy says.
fn unframed(response: &mut axum::response::Response) {
    use axum::http::{header, HeaderValue};
    let headers = response.headers_mut();
    let policy = headers
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .map(|p| format!("{p}; frame-ancestors 'none'"))
        .unwrap_or_else(|| "frame-ancestors 'none'".to_owned());
    if let Ok(policy) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// The route prefix of a public route whose next segment is a signed link.
fn signed_link(path: &str) -> Option<&'static str> {
    const SIGNED: [&str; 7] = [
        "/portal/",
        "/csat/",
        "/nps/",
        "/t/o/",
        "/t/c/",
        "/u/",
        "/app/enter/",
    ];
    SIGNED.into_iter().find(|prefix| path.starts_with(prefix))
}

/// The path as logs and traces may see it: the signed link of a public
/// route (a portal link signs a person in; a survey or unsubscribe link
/// acts for them) is a bearer secret, so it is replaced by its name.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    match signed_link(path) {
        Some(prefix) => {
            let rest = &path[prefix.len()..];
            let tail = rest.find('/').map(|i| &rest[i..]).unwrap_or("");
            format!("{prefix}{{token}}{tail}").into()
        }
        None => path.into(),
    }
}

/// CORS for the configured browser origins only (none by default).
fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::{header, HeaderName, Method};
    let origins: Vec<axum::http::HeaderValue> =
        origins.iter().filter_map(|o| o.parse().ok()).collect();
    tower_http::cors::CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::PUT,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-grpc-web"),
            HeaderName::from_static("x-user-agent"),
            HeaderName::from_static("grpc-timeout"),
        ])
        .expose_headers([
            header::ETAG,
            header::RETRY_AFTER,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("grpc-status"),
            HeaderName::from_static("grpc-message"),
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// Every route: the hand-written ones below and one per `google.api.http`
/// rule of the contracts (`transcode`).
pub fn router(
    state: SharedState,
    bindings: &[transcode::binding::Binding],
) -> anyhow::Result<Router> {
    let transcoded = transcode::routes(bindings)?;
    let hand_written = Router::new()
        .route("/.well-known/jwks.json", get(auth::jwks))
        .route("/v1/auth/login", post(auth::login))
        .route("/v1/auth/refresh", post(auth::refresh))
        .route("/v1/auth/logout", post(auth::logout))
        .route("/v1/auth/service-token", post(auth::service_token))
        .route("/v1/me", get(auth::me))
        .route("/v1/tenants", post(tenants::create))
        .route("/v1/admin/keys/rotate", post(tenants::rotate_keys))
        .route("/v1/users", get(users::list).post(users::create))
        .route("/v1/api-keys", get(api_keys::list).post(api_keys::create))
        .route("/v1/teams", get(teams::list).post(teams::create))
        .route("/v1/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/v1/webhooks/{id}", axum::routing::delete(webhooks::delete))
        .route("/v1/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route(
            "/v1/teams/{id}/members/{user_id}",
            axum::routing::put(teams::add_member).delete(teams::remove_member),
        )
        .route("/v1/api-keys/{id}", axum::routing::delete(api_keys::revoke))
        .route("/v1/users/{id}", axum::routing::patch(users::update))
        .route("/v1/contacts/{id}/360", get(overview::contact))
        .route("/v1/contacts/{id}/personal-data", get(data::personal_data))
        .route("/v1/contacts/{id}/erase", post(data::erase))
        .route(
            "/v1/imports",
            post(data::import).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/exports", get(data::export))
        .route("/v1/app-links", post(app::link))
        .route("/v1/reports/{id}/export", get(app::export))
        .route("/app/login", get(app::login_page).post(app::login))
        .route("/app/logout", post(app::logout))
        .route("/app/enter/{ticket}", get(app::enter))
        .route("/app/dashboards", get(app::dashboards))
        .route("/app/dashboards/{id}", get(app::dashboard))
        .route("/app/reports/{id}/export", get(app::app_export))
        .route("/v1/accounts/{id}/360", get(overview::account))
        .route("/v1/search", get(search::search))
        .route("/v1/audit-log", get(audit::list))
        .route("/t/o/{token}", get(public::open))
        .route("/t/c/{token}", get(public::click))
        .route(
            "/u/{token}",
            get(public::unsubscribe_page).post(public::unsubscribe),
        )
        .route(
            "/hooks/delivery-reports",
            post(public::delivery_reports).layer(DefaultBodyLimit::max(public::MAX_REPORT_BYTES)),
        )
        .route(
            "/f/{key}",
            get(public::form_page)
                .post(public::submit_form)
                .layer(DefaultBodyLimit::max(public::MAX_FORM_BYTES)),
        )
        .route(
            "/hooks/chat/{key}",
            post(chat::receive).layer(DefaultBodyLimit::max(chat::MAX_CHAT_BYTES)),
        )
        .route(
            "/csat/{token}",
            get(surveys::survey_page)
                .post(surveys::answer)
                .layer(DefaultBodyLimit::max(surveys::MAX_SURVEY_BYTES)),
        )
        .route(
            "/nps/{token}",
            get(surveys::nps_page)
                .post(surveys::answer_nps)
                .layer(DefaultBodyLimit::max(surveys::MAX_SURVEY_BYTES)),
        )
        .route(
            "/support/{key}",
            get(portal::form_page)
                .post(portal::submit)
                .layer(DefaultBodyLimit::max(portal::MAX_PORTAL_BYTES)),
        )
        .route(
            "/support/{key}/link",
            post(portal::request_link).layer(DefaultBodyLimit::max(portal::MAX_PORTAL_BYTES)),
        )
        .route("/support/{key}/articles", get(portal::articles))
        .route("/support/{key}/articles/{id}", get(portal::article))
        .route(
            "/portal/{token}",
            get(portal::home)
                .post(portal::open)
                .layer(DefaultBodyLimit::max(portal::MAX_PORTAL_BYTES)),
        )
        .route(
            "/portal/{token}/tickets/{number}",
            get(portal::ticket)
                .post(portal::reply)
                .layer(DefaultBodyLimit::max(portal::MAX_PORTAL_BYTES)),
        )
        .route("/portal/{token}/articles", get(portal::articles))
        .route("/portal/{token}/articles/{id}", get(portal::article))
        .route("/openapi.json", get(docs::openapi))
        .route("/docs", get(docs::page))
        .route("/docs/redoc.standalone.js", get(docs::redoc_bundle))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readiness));
    // axum refuses (panics at start) a path and verb served twice: a rule
    // must not claim a hand-written route.
    Ok(hand_written
        .merge(transcoded)
        .fallback(grpc_web::forward)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            front_door,
        ))
        .layer(cors(&state.config.cors_origins))
        .with_state(state))
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn signed_links_never_reach_the_logs() {
        assert_eq!(
            loggable_path("/portal/abc.def.ghi/tickets/7"),
            "/portal/{token}/tickets/7"
        );
        assert_eq!(loggable_path("/csat/abc.def.ghi"), "/csat/{token}");
        assert_eq!(loggable_path("/t/c/abc.def"), "/t/c/{token}");
        assert_eq!(loggable_path("/app/enter/a.b.c"), "/app/enter/{token}");
        assert_eq!(loggable_path("/v1/contacts/1"), "/v1/contacts/1");
        assert_eq!(
            loggable_path("/support/t.f/articles"),
            "/support/t.f/articles"
        );
    }
}
