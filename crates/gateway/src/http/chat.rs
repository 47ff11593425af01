//! `POST /hooks/chat/{key}`: chat and messaging connectors post customers'
//! messages here, signed with their channel's secret (`X-CRM-Timestamp`,
//! `X-CRM-Signature`: `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`).
//! The key is `<tenant>.<channel>`; the gateway only rate-limits and routes
//! by the tenant it names, and hands the body as received to the service
//! desk, which checks the signature and the time and opens or continues
//! the conversation's ticket. 202 with the ticket, 400 naming a bad field,
//! 401 for anything that does not verify (an unknown channel included).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use crm_proto::crm::servicedesk::v1::channel_service_client::ChannelServiceClient;
use crm_proto::crm::servicedesk::v1::ReceiveChatMessageRequest;

use super::auth::ClientIp;
use super::problem::Problem;
use super::public::{admit, as_service, Refused};
use super::SharedState;

/// A post larger than this is not one chat message.
pub const MAX_CHAT_BYTES: usize = 64 * 1024;

fn refused(refused: Refused) -> Response {
    match refused {
        Refused::Invalid => Problem::unauthenticated(
            "the post does not verify: check the channel key and its signature",
        ),
        Refused::Limited => Problem::retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            "too many posts",
            1,
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

pub async fn receive(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    Path(key): Path<String>,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (Some(timestamp), Some(signature)) = (
        header("x-crm-timestamp").and_then(|t| t.trim().parse::<i64>().ok()),
        header("x-crm-signature"),
    ) else {
        return Problem::unauthenticated("posts are signed: X-CRM-Timestamp and X-CRM-Signature")
            .into_response();
    };
    let tenant = match admit(&state, client, &key) {
        Ok(tenant) => tenant,
        Err(refusal) => return refused(refusal),
    };
    let request = match as_service(
        &state,
        tenant,
        ReceiveChatMessageRequest {
            channel_key: key,
            body: body.to_vec(),
            timestamp,
            signature,
        },
    )
    .await
    {
        Ok(request) => request,
        Err(refusal) => return refused(refusal),
    };
    let Some(servicedesk) = state.channel("servicedesk") else {
        return refused(Refused::Unavailable);
    };
    match ChannelServiceClient::new(servicedesk)
        .receive_chat_message(request)
        .await
    {
        Ok(answer) => {
            let answer = answer.into_inner();
            let body = serde_json::json!({"ticket_id": answer.ticket_id, "opened": answer.opened});
            (StatusCode::ACCEPTED, axum::Json(body)).into_response()
        }
        Err(status) => match status.code() {
            tonic::Code::InvalidArgument => Problem::from(status).into_response(),
            tonic::Code::Unauthenticated
            | tonic::Code::PermissionDenied
            | tonic::Code::NotFound => refused(Refused::Invalid),
            _ => refused(Refused::Unavailable),
        },
    }
}
