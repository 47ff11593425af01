//! The satisfaction survey's public page (`/csat/{token}`): the link the
//! service desk mails when a ticket is solved. GET shows the question (a
//! score from the link's `?score=` preselected, since mail scanners open
//! links and must not answer); POST records the answer once. The service
//! desk alone verifies the token; this route only rate-limits, routes by
//! the tenant the token names, and answers the same for unknown, forged
//! and expired links ([`super::public`]).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use crm_proto::crm::servicedesk::v1::satisfaction_service_client::SatisfactionServiceClient;
use crm_proto::crm::servicedesk::v1::{AnswerSurveyRequest, DescribeSurveyRequest};
use serde::Deserialize;

use super::auth::ClientIp;
use super::public::{
    admit, admit_by, as_service, escape, from_status, page, refusal_page, Refused,
};
use super::SharedState;

/// A survey post larger than this is not a person's.
pub const MAX_SURVEY_BYTES: usize = 8 * 1024;

fn desk(
    state: &SharedState,
) -> Result<SatisfactionServiceClient<tonic::transport::Channel>, Refused> {
    state
        .channel("servicedesk")
        .map(SatisfactionServiceClient::new)
        .ok_or(Refused::Invalid)
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
    let described = async {
        let tenant = admit(&state, client, &token)?;
        let request = as_service(
            &state,
            tenant,
            DescribeSurveyRequest {
                token: token.clone(),
            },
        )
        .await?;
        let answer = desk(&state)?
            .describe_survey(request)
            .await
            .map_err(from_status)?;
        Ok::<_, Refused>(answer.into_inner())
    };
    let survey = match described.await {
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
    let mut choices = String::new();
    for (score, label) in (1..=5).zip(LABELS) {
        let checked = if preselected.score == Some(score) {
            " checked"
        } else {
            ""
        };
        choices.push_str(&format!(
            "<label style=\"display:block\"><input type=\"radio\" name=\"score\" value=\"{score}\" required{checked}> {score} - {label}</label>"
        ));
    }
    page(
        StatusCode::OK,
        "How did we do?",
        &format!(
            "<p>Request #{} \u{201c}{}\u{201d}</p><form method=\"post\">{choices}\
             <p><label for=\"comment\">Anything to add?</label><br>\
             <textarea id=\"comment\" name=\"comment\" maxlength=\"2000\" rows=\"4\" cols=\"40\"></textarea></p>\
             <p><button type=\"submit\">Send</button></p></form>",
            survey.ticket_number,
            escape(&survey.subject)
        ),
    )
}

/// `POST /csat/{token}` (a form post: `score`, `comment`): records the
/// answer; a second one is told it was recorded already.
pub async fn answer(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    Path(token): Path<String>,
    body: bytes::Bytes,
) -> Response {
    let values: std::collections::HashMap<String, String> =
        form_urlencoded::parse(&body).into_owned().collect();
    let score = values
        .get("score")
        .and_then(|s| s.trim().parse::<i32>().ok())
        .unwrap_or_default();
    let comment = values.get("comment").cloned().unwrap_or_default();
    let answered = async {
        let tenant = admit_by(&state, &state.form_limiter, client, &token).map_err(Err)?;
        let request = as_service(
            &state,
            tenant,
            AnswerSurveyRequest {
                token: token.clone(),
                score,
                comment,
            },
        )
        .await
        .map_err(Err)?;
        desk(&state)
            .map_err(Err)?
            .answer_survey(request)
            .await
            .map_err(|status| match status.code() {
                tonic::Code::InvalidArgument | tonic::Code::AlreadyExists => Ok(status),
                _ => Err(from_status(status)),
            })?;
        Ok::<_, Result<tonic::Status, Refused>>(())
    };
    match answered.await {
        Ok(()) => page(
            StatusCode::OK,
            "Thank you",
            "<p>Your answer helps us do better.</p>",
        ),
        Err(Ok(status)) if status.code() == tonic::Code::AlreadyExists => page(
            StatusCode::CONFLICT,
            "Already answered",
            "<p>Your answer about this request was recorded before.</p>",
        ),
        Err(Ok(_)) => page(
            StatusCode::BAD_REQUEST,
            "Please choose a score",
            "<p>Go back and pick one from 1 to 5 (a comment may be up to 2,000 characters).</p>",
        ),
        Err(Err(refused)) => refusal_page(refused),
    }
}
