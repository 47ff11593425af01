//! Pages for signed-in people: report dashboards as plain HTML with their
//! SVG charts and tables (no script, no external asset: they work offline
//! and print), and CSV downloads of reports.
//!
//! A person signs in with the form at `/app/login`, or follows a one-time
//! entry link an API client made for them (`POST /v1/app-links`, valid a
//! minute, for a path under `/app/`). Either sets a session cookie holding
//! an access token: `HttpOnly`, `SameSite=Strict`, `Path=/app`, for the
//! token's lifetime. The pages only read, so the cookie is never the key to
//! a change.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use crm_proto::crm::reporting::v1 as reporting;
use crm_proto::crm::reporting::v1::report_service_client::ReportServiceClient;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{self, ClientIp, LoginRequest};
use super::problem::{self, Problem};
use super::public::{escape, posted_values, private};
use super::{api_keys, Caller, JsonBody, SharedState};
use crate::store::identity;

/// The session cookie's name.
const COOKIE: &str = "crm_session";
/// The scope that marks an entry link's token: it opens a session and is
/// refused everywhere else (services refuse a token lacking their scope).
const ENTRY_SCOPE: &str = "app:enter";
/// How long an entry link works.
const ENTRY_SECONDS: u64 = 60;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppLinkRequest {
    /// A page under `/app/`, e.g. `/app/dashboards/<id>`.
    pub path: String,
}

#[derive(Serialize, ToSchema)]
pub struct AppLink {
    /// Relative to the gateway: open it in a browser within `expires_in`
    /// seconds.
    pub url: String,
    pub expires_in: u64,
}

/// A path the app may send a browser to: under `/app/`, plain characters
/// only (never another site, never a crafted path).
fn safe_next(path: &str) -> Option<&str> {
    let plain = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'));
    (path.starts_with("/app/")
        && plain
        && !path.contains("//")
        && !path.contains("..")
        && path.len() <= 200)
        .then_some(path)
}

/// `POST /v1/app-links`: a one-time link that signs the caller in to an
/// app page in a browser (a person's token only, not an API key's).
#[utoipa::path(post, path = "/v1/app-links", tag = "auth", security(("bearer" = [])), request_body = AppLinkRequest,
    responses((status = 201, body = AppLink), (status = 400, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 403, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn link(
    State(state): State<SharedState>,
    caller: Caller,
    JsonBody(request): JsonBody<AppLinkRequest>,
) -> Result<(StatusCode, Json<AppLink>), Problem> {
    let person = caller
        .context
        .user_id
        .filter(|_| !api_keys::is_api_key(&caller.token) && caller.context.scopes.is_empty());
    let Some(user_id) = person else {
        return Err(Problem::forbidden(
            "only a person's sign-in opens app pages",
        ));
    };
    let next = safe_next(request.path.trim())
        .ok_or_else(|| Problem::invalid("path", "must be a page under /app/"))?;
    let tenant = caller.context.tenant_id;
    let mut tx = state.db.begin_tenant(tenant).await?;
    let user = identity::find_user(&mut tx, tenant, user_id)
        .await?
        .filter(|u| u.disabled_at.is_none())
        .ok_or_else(|| Problem::forbidden("only a person's sign-in opens app pages"))?;
    let ticket = auth::access_token(
        &state,
        &mut tx,
        &user,
        ENTRY_SECONDS,
        vec![ENTRY_SCOPE.into()],
    )
    .await?;
    tx.commit().await?;
    let next: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
    Ok((
        StatusCode::CREATED,
        Json(AppLink {
            url: format!("/app/enter/{ticket}?next={next}"),
            expires_in: ENTRY_SECONDS,
        }),
    ))
}

/// A 303 to `location`, setting or clearing the session cookie.
fn redirect(location: &str, cookie: Option<String>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, location);
    }
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    private(&mut response);
    response
}

/// The session cookie for `token`; `Secure` when the browser came over
/// HTTPS (directly or through the ingress).
fn session_cookie(parts_secure: bool, token: &str, seconds: u64) -> String {
    let secure = if parts_secure { "; Secure" } else { "" };
    format!("{COOKIE}={token}; Path=/app; HttpOnly; SameSite=Strict; Max-Age={seconds}{secure}")
}

fn over_https(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// `GET /app/enter/{ticket}?next=`: opens a session from an entry link.
pub async fn enter(
    State(state): State<SharedState>,
    Path(ticket): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let invalid = || {
        app_page(
            StatusCode::NOT_FOUND,
            "This link is not valid",
            "<p>It may have expired (links work for a minute). <a href=\"/app/login\">Sign in</a>.</p>",
        )
    };
    let Ok(context) = state.keys.verify(&ticket).await else {
        return invalid();
    };
    let (Some(user_id), true) = (context.user_id, context.scopes == [ENTRY_SCOPE]) else {
        return invalid();
    };
    let next = params
        .get("next")
        .and_then(|n| safe_next(n))
        .unwrap_or("/app/dashboards")
        .to_owned();
    let ttl = state.config.access_ttl.as_secs();
    let opened = async {
        let mut tx = state.db.begin_tenant(context.tenant_id).await?;
        let user = identity::find_user(&mut tx, context.tenant_id, user_id)
            .await?
            .filter(|u| u.disabled_at.is_none())
            .ok_or_else(|| Problem::unauthenticated("user disabled"))?;
        let token = auth::access_token(&state, &mut tx, &user, ttl, Vec::new()).await?;
        tx.commit().await?;
        Ok::<_, Problem>(token)
    };
    match opened.await {
        Ok(token) => redirect(
            &next,
            Some(session_cookie(over_https(&headers), &token, ttl)),
        ),
        Err(_) => invalid(),
    }
}

/// The sign-in form, with a problem to show when there is one.
fn login_form(status: StatusCode, problem: &str) -> Response {
    let problem = if problem.is_empty() {
        String::new()
    } else {
        format!(
            "<p role=\"alert\" style=\"color:#b00\">{}</p>",
            escape(problem)
        )
    };
    app_page(
        status,
        "Sign in",
        &format!(
            "{problem}<form method=\"post\" action=\"/app/login\">\
             <p><label>E-mail<br><input name=\"email\" type=\"email\" required autocomplete=\"username\"></label></p>\
             <p><label>Password<br><input name=\"password\" type=\"password\" required autocomplete=\"current-password\"></label></p>\
             <p><label>Tenant id (only if asked)<br><input name=\"tenant_id\"></label></p>\
             <p><button type=\"submit\">Sign in</button></p></form>"
        ),
    )
}

/// `GET /app/login`.
pub async fn login_page() -> Response {
    login_form(StatusCode::OK, "")
}

/// `POST /app/login` (a form post): the same checks as `/v1/auth/login`.
pub async fn login(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let Ok((values, _)) = posted_values(&headers, &body) else {
        return login_form(StatusCode::BAD_REQUEST, "Send the form as it is shown.");
    };
    let field = |name: &str| {
        values
            .get(name)
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let tenant_id = match field("tenant_id") {
        t if t.is_empty() => None,
        t => match Uuid::parse_str(&t) {
            Ok(id) => Some(id),
            Err(_) => return login_form(StatusCode::BAD_REQUEST, "The tenant id is not an id."),
        },
    };
    let request = LoginRequest {
        email: field("email"),
        password: values.get("password").cloned().unwrap_or_default(),
        tenant_id,
    };
    match auth::authenticate(&state, client, request).await {
        Ok(tokens) => redirect(
            "/app/dashboards",
            Some(session_cookie(
                over_https(&headers),
                &tokens.access_token,
                tokens.expires_in,
            )),
        ),
        Err(problem) => {
            let status = status_of(&problem);
            let message = if status == StatusCode::UNAUTHORIZED {
                "E-mail or password is wrong.".to_owned()
            } else {
                problem.detail.clone()
            };
            login_form(status, &message)
        }
    }
}

/// `POST /app/logout`: forgets the session.
pub async fn logout() -> Response {
    redirect(
        "/app/login",
        Some(format!(
            "{COOKIE}=; Path=/app; HttpOnly; SameSite=Strict; Max-Age=0"
        )),
    )
}

/// The signed-in person of an app page, from the session cookie; without
/// one (or with an expired one), the browser is sent to sign in.
pub struct AppCaller(pub Caller);

impl FromRequestParts<SharedState> for AppCaller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                pair.trim()
                    .strip_prefix(&format!("{COOKIE}="))
                    .map(str::to_owned)
            });
        let signed_in = match token {
            Some(token) => state
                .keys
                .verify(&token)
                .await
                .ok()
                .filter(|c| c.scopes.is_empty())
                .map(|context| Caller { context, token }),
            None => None,
        };
        let caller = signed_in.ok_or_else(|| redirect("/app/login", None))?;
        // The tenant's request budget, as for the API: a page computes
        // reports, so a browser is held to it too.
        if state.limiter.check_key(&caller.context.tenant_id).is_err() {
            metrics::counter!("crm_gateway_rate_limited_total").increment(1);
            return Err(app_page(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                "<p>Please try again in a moment.</p>",
            ));
        }
        Ok(AppCaller(caller))
    }
}

/// An app page: plain HTML, inline styles, nothing loaded from anywhere,
/// never cached or framed.
fn app_page(status: StatusCode, title: &str, body: &str) -> Response {
    let title = escape(title);
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title}</title></head><body style=\"font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em\">\
         <header style=\"display:flex;justify-content:space-between;align-items:baseline\"><h1>{title}</h1>\
         <form method=\"post\" action=\"/app/logout\"><button type=\"submit\">Sign out</button></form></header>{body}</body></html>"
    );
    let mut response = (status, axum::response::Html(html)).into_response();
    private(&mut response);
    super::unframed(&mut response);
    response
}

fn status_of(problem: &Problem) -> StatusCode {
    StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn problem_page(problem: Problem) -> Response {
    let status = status_of(&problem);
    let title = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        _ => "Please try again",
    };
    app_page(
        status,
        title,
        &format!("<p>{}</p>", escape(&problem.detail)),
    )
}

fn reports(state: &SharedState) -> Result<ReportServiceClient<tonic::transport::Channel>, Problem> {
    state
        .channel("reporting")
        .map(ReportServiceClient::new)
        .ok_or_else(|| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "reporting is not configured",
            )
        })
}

/// `GET /app/dashboards`: the report dashboards the person may see.
pub async fn dashboards(
    State(state): State<SharedState>,
    AppCaller(caller): AppCaller,
) -> Response {
    let listed = async {
        let request = state.upstream(&caller, reporting::ListReportDashboardsRequest {})?;
        Ok::<_, Problem>(
            reports(&state)?
                .list_report_dashboards(request)
                .await?
                .into_inner(),
        )
    };
    match listed.await {
        Ok(listed) => {
            let items: String = listed
                .dashboards
                .iter()
                .map(|d| {
                    format!(
                        "<li><a href=\"/app/dashboards/{}\">{}</a> ({} reports)</li>",
                        escape(&d.id),
                        escape(&d.name),
                        d.report_ids.len()
                    )
                })
                .collect();
            let body = if items.is_empty() {
                "<p>No dashboards yet: make one with <code>POST /v1/report-dashboards</code>.</p>"
                    .to_owned()
            } else {
                format!("<ul>{items}</ul>")
            };
            app_page(StatusCode::OK, "Dashboards", &body)
        }
        Err(problem) => problem_page(problem),
    }
}

/// One report of a dashboard: its chart, its table and a CSV link.
fn report_section(report: &reporting::Report, chart: &reporting::GetReportChartResponse) -> String {
    let result = chart.result.clone().unwrap_or_default();
    let head: String = result
        .columns
        .iter()
        .map(|c| {
            format!(
                "<th style=\"text-align:left;padding:2px 8px\">{}</th>",
                escape(&c.name)
            )
        })
        .collect();
    let rows: String = result
        .rows
        .iter()
        .take(50)
        .map(|row| {
            let cells: String = row
                .values
                .iter()
                .map(|v| format!("<td style=\"padding:2px 8px\">{}</td>", escape(v)))
                .collect();
            format!("<tr>{cells}</tr>")
        })
        .collect();
    let as_of = result
        .as_of
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| format!("as of {}", t.format("%Y-%m-%d %H:%M UTC")))
        .unwrap_or_default();
    format!(
        "<section class=\"report\" style=\"margin:2em 0\"><h2>{name}</h2><figure style=\"margin:0\">{svg}</figure>\
         <table style=\"border-collapse:collapse;margin-top:1em\"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>\
         <p style=\"color:#555\">{as_of} &middot; <a href=\"/app/reports/{id}/export\">CSV</a></p></section>",
        name = escape(&report.name),
        svg = chart.svg,
        id = escape(&report.id),
    )
}

/// `GET /app/dashboards/{id}`: every report of the dashboard, in order,
/// computed over what the person may see.
pub async fn dashboard(
    State(state): State<SharedState>,
    AppCaller(caller): AppCaller,
    Path(id): Path<String>,
) -> Response {
    let page = async {
        super::rest::parse_uuid("id", &id)?;
        let mut client = reports(&state)?;
        let request = state.upstream(
            &caller,
            reporting::GetReportDashboardRequest { id: id.clone() },
        )?;
        let board = client
            .get_report_dashboard(request)
            .await?
            .into_inner()
            .dashboard
            .unwrap_or_default();
        let mut sections = String::new();
        for report_id in &board.report_ids {
            let request = state.upstream(
                &caller,
                reporting::GetReportRequest {
                    id: report_id.clone(),
                },
            )?;
            let Ok(report) = client.get_report(request).await else {
                continue;
            };
            let report = report.into_inner().report.unwrap_or_default();
            let request = state.upstream(
                &caller,
                reporting::GetReportChartRequest {
                    id: report_id.clone(),
                },
            )?;
            let chart = client.get_report_chart(request).await?.into_inner();
            sections.push_str(&report_section(&report, &chart));
        }
        Ok::<_, Problem>((board.name, sections))
    };
    match page.await {
        Ok((name, sections)) => app_page(
            StatusCode::OK,
            &name,
            &format!("<p><a href=\"/app/dashboards\">All dashboards</a></p>{sections}"),
        ),
        Err(problem) => problem_page(problem),
    }
}

/// A saved report's result as a CSV download, streamed from reporting.
async fn csv(state: &SharedState, caller: &Caller, id: &str) -> Result<Response, Problem> {
    super::rest::parse_uuid("id", id)?;
    let request = state.upstream(caller, reporting::ExportReportRequest { id: id.to_owned() })?;
    let mut stream = reports(state)?.export_report(request).await?.into_inner();
    // The first chunk proves the export is allowed before headers go out.
    let first = stream.message().await?.map(|m| m.chunk).unwrap_or_default();
    let rest = stream.map(|message| {
        message
            .map(|m| axum::body::Bytes::from(m.chunk))
            .map_err(|status| std::io::Error::other(status.message().to_owned()))
    });
    let body = futures::stream::iter([Ok(axum::body::Bytes::from(first))]).chain(rest);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"report-{id}.csv\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// `GET /v1/reports/{id}/export`: a saved report as CSV.
#[utoipa::path(get, path = "/v1/reports/{id}/export", tag = "reporting", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "report id")),
    responses((status = 200, content_type = "text/csv", body = String),
              (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn export(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    csv(&state, &caller, &id).await
}

/// `GET /app/reports/{id}/export`: the same download from an app page.
pub async fn app_export(
    State(state): State<SharedState>,
    AppCaller(caller): AppCaller,
    Path(id): Path<String>,
) -> Response {
    csv(&state, &caller, &id).await.unwrap_or_else(problem_page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_sends_browsers_only_to_its_own_pages() {
        assert_eq!(
            safe_next("/app/dashboards/1f0"),
            Some("/app/dashboards/1f0")
        );
        for bad in [
            "https://evil.example/app/",
            "//evil.example/app/",
            "/app/../v1/users",
            "/app//x",
            "/v1/reports",
            "/app/x?next=https://evil",
            "/app/<script>",
        ] {
            assert_eq!(safe_next(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_session_cookie_is_for_the_app_only_and_never_for_scripts() {
        let cookie = session_cookie(true, "t", 300);
        assert_eq!(
            cookie,
            "crm_session=t; Path=/app; HttpOnly; SameSite=Strict; Max-Age=300; Secure"
        );
    }
}
