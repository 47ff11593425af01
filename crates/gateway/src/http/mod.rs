//! The REST/JSON API: routes, the caller extractor, and calls to services.

pub mod auth;
pub mod contacts;
pub mod docs;
pub mod problem;
pub mod search;
pub mod tenants;
pub mod users;

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
    pub customers: Channel,
}

pub type SharedState = Arc<AppState>;

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
        let context = state.keys.verify(token).await.map_err(Problem::from)?;
        Ok(Caller {
            context,
            token: token.to_owned(),
        })
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

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route")
}

pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(auth::jwks))
        .route("/v1/auth/login", post(auth::login))
        .route("/v1/auth/refresh", post(auth::refresh))
        .route("/v1/auth/logout", post(auth::logout))
        .route("/v1/me", get(auth::me))
        .route("/v1/tenants", post(tenants::create))
        .route("/v1/admin/keys/rotate", post(tenants::rotate_keys))
        .route("/v1/users", get(users::list).post(users::create))
        .route("/v1/users/{id}", axum::routing::patch(users::update))
        .route("/v1/contacts", get(contacts::list).post(contacts::create))
        .route(
            "/v1/contacts/{id}",
            get(contacts::get)
                .patch(contacts::update)
                .delete(contacts::delete),
        )
        .route("/v1/search", get(search::search))
        .route("/openapi.json", get(docs::openapi))
        .route("/docs", get(docs::page))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readiness))
        .route(
            "/metrics",
            get(|| async { kit::metrics::handle().render() }),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
