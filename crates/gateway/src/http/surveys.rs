//! The service desk's survey pages: satisfaction (`/csat/{token}`), the
//! link mailed when a ticket is solved, and NPS (`/nps/{token}`), the link
//! mailed to an account's contacts. GET shows the question (a score from
//! the link's `?score=` preselected, since mail scanners open links and
//! must not answer); POST records the answer once. The service desk alone
//! verifies the token; this route only rate-limits, routes by the tenant
//! the token names, and answers the same for unknown, forged and expired
//! links ([`super::public`]).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use crm_proto::crm::servicedesk::v1::feedback_service_client::FeedbackServiceClient;
use crm_proto::crm::servicedesk::v1::satisfaction_service_client::SatisfactionServiceClient;
use crm_proto::crm::servicedesk::v1::{
    AnswerNpsSurveyRequest, AnswerSurveyRequest, DescribeNpsSurveyRequest, DescribeSurveyRequest,
};
use serde::Deserialize;
use tonic::transport::Channel;

use super::auth::ClientIp;
use super::public::{ask, escape, page, refusal_page, Outcome, Refused};
use super::SharedState;

/// A survey post larger than this is not a person's.
pub const MAX_SURVEY_BYTES: usize = 8 * 1024;

type Csat = SatisfactionServiceClient<Channel>;
type Nps = FeedbackServiceClient<Channel>;

const CSAT: (&str, fn(Channel) -> Csat) = ("servicedesk", SatisfactionServiceClient::new);
const NPS: (&str, fn(Channel) -> Nps) = ("servicedesk", FeedbackServiceClient::new);

/// The question to show, or a refusal (asking cannot be the person's own
/// mistake).
fn described<R>(outcome: Outcome<R>) -> Result<R, Refused> {
    outcome.map_err(|refused| refused.err().unwrap_or(Refused::Invalid))
}

#[derive(Deserialize)]
pub struct Preselected {
    #[serde(default)]
    score: Option<i32>,
}

const LABELS: [&str; 5] = ["Very poor", "Poor", "All right", "Good", "Great"];

/// `GET /csat/{token}`: the question, or thanks when answered already.
pub async fn survey_page(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    Path(token): Path<String>,
    Query(preselected): Query<Preselected>,
) -> Response {
    let request = DescribeSurveyRequest {
        token: token.clone(),
    };
    let asked = ask(
        &state,
        client,
        &token,
        false,
        CSAT,
        request,
        |mut c: Csat, r| async move { c.describe_survey(r).await },
    );
    let survey = match described(asked.await) {
        Ok(survey) => survey,
        Err(refused) => return refusal_page(refused),
    };
    if survey.answered {
        return page(
            StatusCode::OK,
            "Thank you",
            "<p>Your answer about this request is recorded.</p>",
        );
    }
    let choices = (1..=5)
        .zip(LABELS)
        .map(|(score, label)| (score, format!("{score} - {label}")));
    page(
        StatusCode::OK,
        "How did we do?",
        &format!(
            "<p>Request #{} \u{201c}{}\u{201d}</p>{}",
            survey.ticket_number,
            escape(&survey.subject),
            question(choices, preselected.score, "display:block")
        ),
    )
}

/// The answer form: a radio button per score, a comment, a button.
fn question(
    choices: impl Iterator<Item = (i32, String)>,
    preselected: Option<i32>,
    style: &str,
) -> String {
    let mut radios = String::new();
    for (score, label) in choices {
        let checked = if preselected == Some(score) {
            " checked"
        } else {
            ""
        };
        radios.push_str(&format!(
            "<label style=\"{style}\"><input type=\"radio\" name=\"score\" value=\"{score}\" required{checked}> {label}</label>"
        ));
    }
    format!(
        "<form method=\"post\">{radios}\
         <p><label for=\"comment\">Anything to add?</label><br>\
         <textarea id=\"comment\" name=\"comment\" maxlength=\"2000\" rows=\"4\" cols=\"40\"></textarea></p>\
         <p><button type=\"submit\">Send</button></p></form>"
    )
}

/// A posted answer: its score (none: not a number) and comment.
fn posted(body: &[u8]) -> (i32, String) {
    let values: std::collections::HashMap<String, String> =
        form_urlencoded::parse(body).into_owned().collect();
    let score = values
        .get("score")
        .and_then(|s| s.trim().parse::<i32>().ok())
        .unwrap_or(-1);
    (score, values.get("comment").cloned().unwrap_or_default())
}

/// `GET /nps/{token}`: the NPS question, or thanks when answered already.
pub async fn nps_page(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    Path(token): Path<String>,
    Query(preselected): Query<Preselected>,
) -> Response {
    let request = DescribeNpsSurveyRequest {
        token: token.clone(),
    };
    let asked = ask(
        &state,
        client,
        &token,
        false,
        NPS,
        request,
        |mut c: Nps, r| async move { c.describe_nps_survey(r).await },
    );
    let survey = match described(asked.await) {
        Ok(survey) => survey,
        Err(refused) => return refusal_page(refused),
    };
    if survey.answered {
        return page(
            StatusCode::OK,
            "Thank you",
            "<p>Your answer is recorded.</p>",
        );
    }
    let sender = if survey.sender.is_empty() {
        "us".to_owned()
    } else {
        escape(&survey.sender)
    };
    page(
        StatusCode::OK,
        "How likely are you to recommend us?",
        &format!(
            "<p>How likely are you to recommend {sender} to a friend or colleague? 0 is not at all likely, 10 extremely likely.</p>{}",
            question((0..=10).map(|s| (s, s.to_string())), preselected.score, "margin-right:0.8em")
        ),
    )
}

/// `POST /nps/{token}` (a form post: `score` 0-10, `comment`).
pub async fn answer_nps(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    Path(token): Path<String>,
    body: bytes::Bytes,
) -> Response {
    let (score, comment) = posted(&body);
    let request = AnswerNpsSurveyRequest {
        token: token.clone(),
        score,
        comment,
    };
    let answered = ask(
        &state,
        client,
        &token,
        true,
        NPS,
        request,
        |mut c: Nps, r| async move { c.answer_nps_survey(r).await },
    );
    answered_page(answered.await, "Go back and pick one from 0 to 10")
}

/// What a person sees once they posted an answer.
fn answered_page<R>(answered: Outcome<R>, choose: &str) -> Response {
    match answered {
        Ok(_) => page(
            StatusCode::OK,
            "Thank you",
            "<p>Your answer helps us do better.</p>",
        ),
        Err(Ok(status)) if status.code() == tonic::Code::AlreadyExists => page(
            StatusCode::CONFLICT,
            "Already answered",
            "<p>Your answer was recorded before.</p>",
        ),
        Err(Ok(_)) => page(
            StatusCode::BAD_REQUEST,
            "Please choose a score",
            &format!("<p>{choose} (a comment may be up to 2,000 characters).</p>"),
        ),
        Err(Err(refused)) => refusal_page(refused),
    }
}

/// `POST /csat/{token}` (a form post: `score`, `comment`): records the
/// answer; a second one is told it was recorded already.
pub async fn answer(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    Path(token): Path<String>,
    body: bytes::Bytes,
) -> Response {
    let (score, comment) = posted(&body);
    let request = AnswerSurveyRequest {
        token: token.clone(),
        score,
        comment,
    };
    let answered = ask(
        &state,
        client,
        &token,
        true,
        CSAT,
        request,
        |mut c: Csat, r| async move { c.answer_survey(r).await },
    );
    answered_page(answered.await, "Go back and pick one from 1 to 5")
}
