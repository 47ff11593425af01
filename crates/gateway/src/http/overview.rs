//! `GET /v1/contacts/{id}/360`: a contact with its account and recent
//! activities, gathered from the services in parallel, each with a
//! deadline. The contact is required; any other section whose service is
//! slow or down comes back marked `unavailable` instead of failing the page.
//! Sections for deals, tickets and campaign touches join as those services
//! land.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::Json;
use crm_proto::crm::common::v1::PageRequest;
use crm_proto::crm::customers::v1 as pb;
use crm_proto::crm::customers::v1::account_service_client::AccountServiceClient;
use crm_proto::crm::customers::v1::activity_service_client::ActivityServiceClient;
use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use serde::Serialize;
use utoipa::ToSchema;

use super::contacts::ContactDto;
use super::problem::{self, Problem};
use super::{Caller, SharedState};

/// A part of the 360 view: `ok` with data, `none` when there is nothing to
/// show, or `unavailable` when its service did not answer in time.
#[derive(Serialize, ToSchema)]
pub struct Section<T> {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
}

impl<T> Section<T> {
    fn ok(data: T) -> Self {
        Section {
            status: "ok",
            data: Some(data),
        }
    }
    fn none() -> Self {
        Section {
            status: "none",
            data: None,
        }
    }
    fn unavailable() -> Self {
        Section {
            status: "unavailable",
            data: None,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AccountSummary {
    pub id: String,
    pub name: String,
    pub domain: String,
    pub industry: String,
}

#[derive(Serialize, ToSchema)]
pub struct ActivitySummary {
    pub id: String,
    /// note, call, email, meeting, chat, task
    pub kind: String,
    pub subject: String,
    pub occurred_at: Option<String>,
    /// Tasks: open or done.
    pub done: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct ContactOverview {
    pub contact: ContactDto,
    #[schema(value_type = Object)]
    pub account: Section<AccountSummary>,
    #[schema(value_type = Object)]
    pub recent_activities: Section<Vec<ActivitySummary>>,
}

fn summary(activity: pb::Activity) -> ActivitySummary {
    let kind = pb::ActivityKind::try_from(activity.kind)
        .map(|k| {
            k.as_str_name()
                .trim_start_matches("ACTIVITY_KIND_")
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    ActivitySummary {
        id: activity.id,
        kind,
        subject: activity.subject,
        occurred_at: activity
            .occurred_at
            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
            .map(|t| t.to_rfc3339()),
        done: activity.task.map(|t| t.completed_at.is_some()),
    }
}

#[utoipa::path(get, path = "/v1/contacts/{id}/360", tag = "contacts", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "contact id")),
    responses((status = 200, body = ContactOverview), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn contact(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ContactOverview>, Problem> {
    let deadline = state.config.upstream_timeout.min(Duration::from_secs(2));
    let request = state.upstream(&caller, pb::GetContactRequest { id: id.clone() })?;
    let contact = ContactServiceClient::new(state.customers.clone())
        .get_contact(request)
        .await?
        .into_inner()
        .contact
        .unwrap_or_default();

    let account = async {
        if contact.account_id.is_empty() {
            return Section::none();
        }
        let Ok(request) = state.upstream(
            &caller,
            pb::GetAccountRequest {
                id: contact.account_id.clone(),
            },
        ) else {
            return Section::unavailable();
        };
        match tokio::time::timeout(
            deadline,
            AccountServiceClient::new(state.customers.clone()).get_account(request),
        )
        .await
        {
            Ok(Ok(response)) => response
                .into_inner()
                .account
                .map_or_else(Section::none, |a| {
                    Section::ok(AccountSummary {
                        id: a.id,
                        name: a.name,
                        domain: a.domain,
                        industry: a.industry,
                    })
                }),
            Ok(Err(status)) if status.code() == tonic::Code::NotFound => Section::none(),
            _ => Section::unavailable(),
        }
    };
    let activities = async {
        let message = pb::ListTimelineRequest {
            contact_id: id.clone(),
            account_id: String::new(),
            page: Some(PageRequest {
                page_size: 10,
                page_token: String::new(),
            }),
        };
        let Ok(request) = state.upstream(&caller, message) else {
            return Section::unavailable();
        };
        match tokio::time::timeout(
            deadline,
            ActivityServiceClient::new(state.customers.clone()).list_timeline(request),
        )
        .await
        {
            Ok(Ok(response)) => Section::ok(
                response
                    .into_inner()
                    .activities
                    .into_iter()
                    .map(summary)
                    .collect(),
            ),
            _ => Section::unavailable(),
        }
    };
    let (account, recent_activities) = tokio::join!(account, activities);
    Ok(Json(ContactOverview {
        contact: ContactDto::from(contact),
        account,
        recent_activities,
    }))
}
