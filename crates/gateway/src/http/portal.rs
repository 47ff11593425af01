//! The service desk's public pages: support forms (`/support/{key}`),
//! where anyone opens a ticket, asks for the link to their requests and
//! reads the public knowledge base; and the customer portal
//! (`/portal/{token}`), where a requester signed in by the magic link the
//! desk mailed them sees and answers their own tickets. The key and the
//! link name their tenant in clear; the service desk alone verifies them
//! and decides what the person may see. Plain HTML pages that post to
//! themselves (no script, no external assets); a support form also takes
//! JSON, for a widget on the tenant's site.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use crm_proto::crm::servicedesk::v1::portal_service_client::PortalServiceClient;
use crm_proto::crm::servicedesk::v1::*;
use serde::Deserialize;
use uuid::Uuid;

use super::auth::ClientIp;
use super::problem::Problem;
use super::public::{escape, page, posted_values, problem_page, refusal_page, Outcome, Refused};
use super::SharedState;

/// A post larger than this is not a person's.
pub const MAX_PORTAL_BYTES: usize = 64 * 1024;

type Desk = PortalServiceClient<tonic::transport::Channel>;

/// [`super::public::ask`] of the service desk's portal.
async fn ask<T, R, Fut>(
    state: &SharedState,
    client: Option<std::net::IpAddr>,
    credential: &str,
    write: bool,
    message: T,
    call: impl FnOnce(Desk, tonic::Request<T>) -> Fut,
) -> Outcome<R>
where
    Fut: std::future::Future<Output = Result<tonic::Response<R>, tonic::Status>>,
{
    let desk: (&str, fn(tonic::transport::Channel) -> Desk) =
        ("servicedesk", PortalServiceClient::new);
    super::public::ask(state, client, credential, write, desk, message, call).await
}

/// A refusal as a page: the person's own mistake explained, anything else
/// the same for every kind of bad link.
fn refusal(refused: Result<tonic::Status, Refused>) -> Response {
    match refused {
        Ok(status) if status.code() == tonic::Code::FailedPrecondition => page(
            StatusCode::CONFLICT,
            "This request is closed",
            "<p>Please open a new request instead.</p>",
        ),
        Ok(status) => problem_page(&Problem::from(status)),
        Err(refused) => refusal_page(refused),
    }
}

/// A refused form post: a script posting JSON gets a problem, a browser a
/// page.
fn refused_post(refused: Result<tonic::Status, Refused>, json: bool) -> Response {
    match (refused, json) {
        (Ok(status), true) => Problem::from(status).into_response(),
        (Err(refused), true) => {
            super::public::refusal_problem(refused, "no support form at this address")
        }
        (refused, false) => refusal(refused),
    }
}

/// A post's inputs (a form post or a JSON object), taken by name; whether
/// it was JSON.
struct Posted {
    values: std::collections::HashMap<String, String>,
    json: bool,
}

impl Posted {
    fn read(headers: &axum::http::HeaderMap, body: &[u8]) -> Result<Self, Problem> {
        posted_values(headers, body).map(|(values, json)| Posted { values, json })
    }

    /// The input `name`, empty when it was not posted.
    fn take(&mut self, name: &str) -> String {
        self.values.remove(name).unwrap_or_default()
    }
}

fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    super::public::private(&mut response);
    response
}

const FIELD: &str = "style=\"width:100%;box-sizing:border-box\"";

fn request_fields() -> String {
    format!(
        "<p><label for=\"subject\">Subject</label><br><input id=\"subject\" name=\"subject\" maxlength=\"300\" required {FIELD}></p>\
         <p><label for=\"description\">How can we help?</label><br><textarea id=\"description\" name=\"description\" rows=\"6\" required {FIELD}></textarea></p>\
         <input type=\"hidden\" name=\"request_id\" value=\"{}\">",
        Uuid::now_v7()
    )
}

/// `GET /support/{key}`: the form, the link request and the help articles.
pub async fn form_page(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    Path(key): Path<String>,
) -> Response {
    let request = DescribeSupportFormRequest {
        form_key: key.clone(),
    };
    let form = match ask(
        &state,
        client,
        &key,
        false,
        request,
        |mut d, r| async move { d.describe_support_form(r).await },
    )
    .await
    {
        Ok(form) => form,
        Err(refused) => return refusal(refused),
    };
    page(
        StatusCode::OK,
        &escape(&form.name),
        &format!(
            "<form method=\"post\">\
             <p><label for=\"name\">Your name</label><br><input id=\"name\" name=\"name\" maxlength=\"200\" {FIELD}></p>\
             <p><label for=\"email\">Your e-mail</label><br><input id=\"email\" name=\"email\" type=\"email\" required {FIELD}></p>\
             {}<p><button type=\"submit\">Send</button></p></form>\
             <h2>Asked us before?</h2><form method=\"post\" action=\"/support/{key}/link\">\
             <p><label for=\"link-email\">We will e-mail you a link to your requests</label><br>\
             <input id=\"link-email\" name=\"email\" type=\"email\" required {FIELD}></p>\
             <p><button type=\"submit\">E-mail me a link</button></p></form>\
             <p><a href=\"/support/{key}/articles\">Browse help articles</a></p>",
            request_fields(),
            key = escape(&key),
        ),
    )
}

/// `POST /support/{key}` (a form post or JSON: name, email, subject,
/// description, request_id): opens a ticket. JSON is answered 201 with the
/// ticket's number, or a problem naming the fields.
pub async fn submit(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    Path(key): Path<String>,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let mut posted = match Posted::read(&headers, &body) {
        Ok(posted) => posted,
        Err(problem) => return problem.into_response(),
    };
    let request = SubmitSupportFormRequest {
        form_key: key.clone(),
        name: posted.take("name"),
        email: posted.take("email"),
        subject: posted.take("subject"),
        description: posted.take("description"),
        request_id: posted.take("request_id"),
    };
    let submitted = ask(&state, client, &key, true, request, |mut d, r| async move {
        d.submit_support_form(r).await
    })
    .await;
    match (submitted, posted.json) {
        (Ok(done), true) => (
            StatusCode::CREATED,
            axum::Json(serde_json::json!({"ticket_number": done.ticket_number})),
        )
            .into_response(),
        (Ok(done), false) => page(
            StatusCode::OK,
            "Thank you",
            &format!(
                "<p>We received your request #{} and will answer soon.</p>\
                 <p>We have e-mailed you a link where you can follow it.</p>",
                done.ticket_number
            ),
        ),
        (Err(refused), json) => refused_post(refused, json),
    }
}

/// `POST /support/{key}/link` (email): mails the address a portal link if
/// it is a customer's; the answer is the same either way.
pub async fn request_link(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    Path(key): Path<String>,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let mut posted = match Posted::read(&headers, &body) {
        Ok(posted) => posted,
        Err(problem) => return problem.into_response(),
    };
    let request = RequestPortalLinkRequest {
        form_key: key.clone(),
        email: posted.take("email"),
    };
    let asked = ask(&state, client, &key, true, request, |mut d, r| async move {
        d.request_portal_link(r).await
    })
    .await;
    match (asked, posted.json) {
        (Ok(_), true) => StatusCode::ACCEPTED.into_response(),
        (Ok(_), false) => page(
            StatusCode::ACCEPTED,
            "Check your e-mail",
            "<p>If we know this address, a link to your requests is on its way. It works for 7 days.</p>",
        ),
        (Err(refused), json) => refused_post(refused, json),
    }
}

fn status_label(status: i32) -> &'static str {
    match TicketStatus::try_from(status).unwrap_or_default() {
        TicketStatus::New | TicketStatus::Open => "Open",
        TicketStatus::PendingCustomer => "Waiting for you",
        TicketStatus::PendingThirdParty | TicketStatus::OnHold => "In progress",
        TicketStatus::Solved => "Solved",
        TicketStatus::Closed => "Closed",
        TicketStatus::Unspecified => "",
    }
}

fn date(at: Option<prost_types::Timestamp>) -> String {
    at.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// `GET /portal/{token}`: the requester's requests and a form for another.
pub async fn home(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    Path(token): Path<String>,
) -> Response {
    let request = ListPortalTicketsRequest {
        token: token.clone(),
        page: Some(crm_proto::crm::common::v1::PageRequest {
            page_size: 100,
            ..Default::default()
        }),
    };
    let listed = match ask(
        &state,
        client,
        &token,
        false,
        request,
        |mut d, r| async move { d.list_portal_tickets(r).await },
    )
    .await
    {
        Ok(listed) => listed,
        Err(refused) => return refusal(refused),
    };
    let base = format!("/portal/{}", escape(&token));
    let rows: String = listed
        .tickets
        .iter()
        .map(|t| {
            format!(
                "<tr><td><a href=\"{base}/tickets/{n}\">#{n}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&t.subject),
                status_label(t.status),
                date(t.updated_at),
                n = t.number,
            )
        })
        .collect();
    let table = if rows.is_empty() {
        "<p>You have no requests yet.</p>".to_owned()
    } else {
        format!("<table><tr><th>Request</th><th>Subject</th><th>Status</th><th>Updated</th></tr>{rows}</table>")
    };
    page(
        StatusCode::OK,
        "Your requests",
        &format!(
            "{table}<h2>A new request</h2><form method=\"post\">{}<p><button type=\"submit\">Send</button></p></form>\
             <p><a href=\"{base}/articles\">Browse help articles</a></p>",
            request_fields()
        ),
    )
}

/// `POST /portal/{token}` (subject, description): opens another request.
pub async fn open(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    Path(token): Path<String>,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let mut posted = match Posted::read(&headers, &body) {
        Ok(posted) => posted,
        Err(problem) => return problem.into_response(),
    };
    let request = OpenPortalTicketRequest {
        token: token.clone(),
        subject: posted.take("subject"),
        description: posted.take("description"),
        request_id: posted.take("request_id"),
    };
    match ask(
        &state,
        client,
        &token,
        true,
        request,
        |mut d, r| async move { d.open_portal_ticket(r).await },
    )
    .await
    {
        Ok(opened) => see_other(&format!("/portal/{token}/tickets/{}", opened.ticket_number)),
        Err(refused) => refusal(refused),
    }
}

/// A ticket number from the path; anything else is no ticket.
fn number(raw: &str) -> Option<i64> {
    raw.parse::<i64>().ok().filter(|n| *n > 0)
}

/// `GET /portal/{token}/tickets/{number}`: the conversation and a reply form.
pub async fn ticket(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    Path((token, raw)): Path<(String, String)>,
) -> Response {
    let Some(number) = number(&raw) else {
        return refusal_page(Refused::Invalid);
    };
    let request = GetPortalTicketRequest {
        token: token.clone(),
        number,
    };
    let found = match ask(
        &state,
        client,
        &token,
        false,
        request,
        |mut d, r| async move { d.get_portal_ticket(r).await },
    )
    .await
    {
        Ok(found) => found,
        Err(refused) => return refusal(refused),
    };
    let ticket = found.ticket.unwrap_or_default();
    let conversation: String = found
        .messages
        .iter()
        .map(|m| {
            format!(
                "<div style=\"border-left:4px solid {};padding:0 1em;margin:1em 0\"><p><b>{}</b> <small>{}</small></p><p style=\"white-space:pre-wrap\">{}</p>{}</div>",
                if m.from_requester { "#999" } else { "#36c" },
                if m.from_requester { "You" } else { "Support" },
                date(m.at),
                escape(&m.body),
                attachments(&m.attachments),
            )
        })
        .collect();
    let answer = if ticket.status == TicketStatus::Closed as i32 {
        "<p>This request is closed. Please open a new one for anything else.</p>".to_owned()
    } else {
        format!(
            "<form method=\"post\"><p><label for=\"body\">Your answer</label><br><textarea id=\"body\" name=\"body\" rows=\"5\" required {FIELD}></textarea></p>\
             <input type=\"hidden\" name=\"request_id\" value=\"{}\"><p><button type=\"submit\">Send</button></p></form>",
            Uuid::now_v7()
        )
    };
    page(
        StatusCode::OK,
        &format!("#{} {}", ticket.number, escape(&ticket.subject)),
        &format!(
            "<p>Status: {}</p>{conversation}{answer}<p><a href=\"/portal/{}\">All your requests</a></p>",
            status_label(ticket.status),
            escape(&token)
        ),
    )
}

/// A message's files: links where a browser can open them (https), names
/// otherwise.
fn attachments(files: &[Attachment]) -> String {
    if files.is_empty() {
        return String::new();
    }
    let items: String = files
        .iter()
        .map(|f| {
            let name = escape(&f.file_name);
            let size = format!("{} KiB", (f.size_bytes.max(0) as u64).div_ceil(1024));
            if f.uri.starts_with("https://") {
                format!(
                    "<li><a href=\"{}\" rel=\"noopener noreferrer\">{name}</a> ({size})</li>",
                    escape(&f.uri)
                )
            } else {
                format!("<li>{name} ({size})</li>")
            }
        })
        .collect();
    format!("<ul>{items}</ul>")
}

/// `POST /portal/{token}/tickets/{number}` (body): the requester's answer.
pub async fn reply(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    Path((token, raw)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let Some(number) = number(&raw) else {
        return refusal_page(Refused::Invalid);
    };
    let mut posted = match Posted::read(&headers, &body) {
        Ok(posted) => posted,
        Err(problem) => return problem.into_response(),
    };
    let request = ReplyOnPortalRequest {
        token: token.clone(),
        number,
        body: posted.take("body"),
        request_id: posted.take("request_id"),
    };
    match ask(
        &state,
        client,
        &token,
        true,
        request,
        |mut d, r| async move { d.reply_on_portal(r).await },
    )
    .await
    {
        Ok(_) => see_other(&format!("/portal/{token}/tickets/{number}")),
        Err(refused) => refusal(refused),
    }
}

#[derive(Deserialize)]
pub struct ArticleQuery {
    #[serde(default)]
    q: String,
}

/// `GET /support/{key}/articles` and `/portal/{token}/articles` (`?q=`):
/// the public knowledge base, searched or newest first.
pub async fn articles(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    uri: axum::http::Uri,
    Path(credential): Path<String>,
    Query(query): Query<ArticleQuery>,
) -> Response {
    let request = SearchPortalArticlesRequest {
        credential: credential.clone(),
        query: query.q.clone(),
        limit: 20,
    };
    let found = match ask(
        &state,
        client,
        &credential,
        false,
        request,
        |mut d, r| async move { d.search_portal_articles(r).await },
    )
    .await
    {
        Ok(found) => found,
        Err(refused) => return refusal(refused),
    };
    let base = escape(uri.path());
    let items: String = found
        .articles
        .iter()
        .map(|a| {
            format!(
                "<li><a href=\"{base}/{}\">{}</a><br><small>{}</small></li>",
                escape(&a.id),
                escape(&a.title),
                escape(&a.body)
            )
        })
        .collect();
    let list = if items.is_empty() {
        "<p>No articles found.</p>".to_owned()
    } else {
        format!("<ul>{items}</ul>")
    };
    page(
        StatusCode::OK,
        "Help articles",
        &format!(
            "<form method=\"get\"><input name=\"q\" value=\"{}\" maxlength=\"200\" aria-label=\"Search\"> <button type=\"submit\">Search</button></form>{list}",
            escape(&query.q)
        ),
    )
}

/// `GET /support/{key}/articles/{id}` and `/portal/{token}/articles/{id}`.
pub async fn article(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    Path((credential, id)): Path<(String, String)>,
) -> Response {
    let request = GetPortalArticleRequest {
        credential: credential.clone(),
        article_id: id,
    };
    match ask(
        &state,
        client,
        &credential,
        false,
        request,
        |mut d, r| async move { d.get_portal_article(r).await },
    )
    .await
    {
        Ok(found) => {
            let article = found.article.unwrap_or_default();
            page(
                StatusCode::OK,
                &escape(&article.title),
                &format!(
                    "<div style=\"white-space:pre-wrap\">{}</div><p><a href=\"../articles\">All articles</a></p>",
                    escape(&article.body)
                ),
            )
        }
        Err(refused) => refusal(refused),
    }
}
