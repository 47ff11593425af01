//! The OpenAPI 3.1 document, generated from the handlers' annotations, and
//! a human API reference page rendered from it on the server, so it works
//! without internet access (no CDN scripts).

use axum::extract::State;
use axum::response::{Html, IntoResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    api_keys, app, audit, auth, data, overview, problem, search, teams, tenants, users, webhooks,
    SharedState,
};

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = || {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            )
        };
        components.add_security_scheme("bearer", bearer());
        components.add_security_scheme("bootstrap", bearer());
        add_common_responses(openapi);
    }
}

/// Answers every operation can give, documented once here rather than on
/// each handler: bad input, missing or bad token, rate limit, overload.
fn add_common_responses(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let problem = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ProblemDocument")))
                        .build(),
                )
                .build(),
        )
    };
    for item in openapi.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.post,
            &mut item.patch,
            &mut item.put,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
            let has_body = operation.request_body.is_some();
            let responses = &mut operation.responses.responses;
            let mut add = |code: &str, description: &str| {
                responses
                    .entry(code.to_owned())
                    .or_insert_with(|| problem(description));
            };
            add("400", "invalid input; `errors` names the fields");
            add(
                "503",
                "the gateway or a service is overloaded or down; retry later",
            );
            if secured {
                add("401", "missing, expired or forged token");
                add("429", "rate limit of the tenant reached; see Retry-After");
            }
            if has_body {
                add("413", "body larger than 1 MiB");
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "CRM API", version = "1.0.0", description = "REST/JSON API of the CRM platform. Errors are RFC 9457 problem documents."),
    paths(
        auth::login, auth::refresh, auth::logout, auth::service_token, auth::jwks, auth::me,
        tenants::create, tenants::rotate_keys,
        users::create, users::list, users::update,
        api_keys::create, api_keys::list, api_keys::revoke,
        teams::create, teams::list, teams::add_member, teams::remove_member,
        webhooks::create, webhooks::list, webhooks::delete, webhooks::deliveries,
        overview::contact,
        overview::account,
        data::import, data::export, data::personal_data, data::erase,
        search::search, audit::list,
        app::link, app::export,
    ),
    components(schemas(problem::ProblemDocument, problem::FieldError)),
    modifiers(&SecuritySchemes),
    tags((name = "auth"), (name = "tenants"), (name = "users"), (name = "api-keys"), (name = "teams"), (name = "webhooks"), (name = "contacts"), (name = "accounts"), (name = "activities"), (name = "segments"), (name = "fields"), (name = "data"), (name = "search"), (name = "audit"), (name = "leads"), (name = "pipelines"), (name = "opportunities"), (name = "commerce"))
)]
pub struct ApiDoc;

/// The whole document: the hand-written routes' (utoipa) with the
/// transcoded routes' paths and schemas merged in.
pub fn document(
    pool: &prost_reflect::DescriptorPool,
    bindings: &[super::transcode::binding::Binding],
) -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let generated = super::transcode::openapi::generate(pool, bindings);
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, mut item) in generated.paths {
            super::transcode::openapi::insert_path(paths, &path, &mut item);
        }
    }
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        schemas.extend(generated.schemas);
        schemas.insert(
            "ScopeName".to_owned(),
            serde_json::json!({"type": "string", "enum": super::api_keys::scopes(),
                "description": "`<domain>:read` or `<domain>:write` of a domain service"}),
        );
    }
    doc
}

pub async fn openapi(State(state): State<SharedState>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        state.openapi.clone(),
    )
}

/// Redoc's standalone bundle, vendored from npm (`vendor/redoc`) and built
/// into the binary: the reference page needs no CDN.
const REDOC: &str = include_str!("../../vendor/redoc/redoc.standalone.js");

/// `/docs`: the interactive API reference, Redoc rendering `/openapi.json`
/// (operations grouped by service, descriptions from the proto comments,
/// request and response schemas, the bearer scheme).
pub async fn page() -> Html<&'static str> {
    Html(
        "<!doctype html><html><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <title>CRM API reference</title></head><body>\
         <redoc spec-url=\"/openapi.json\" hide-download-button=\"false\" path-in-middle-panel=\"true\"></redoc>\
         <noscript>The reference needs JavaScript; the machine-readable document is \
         <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI 3.1).</noscript>\
         <script src=\"/docs/redoc.standalone.js\"></script></body></html>",
    )
}

/// The Redoc bundle, cacheable for a day.
pub async fn redoc_bundle() -> impl IntoResponse {
    (
        [
            (axum::http::header::CONTENT_TYPE, "application/javascript"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        REDOC,
    )
}
