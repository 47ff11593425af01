//! `GET /v1/contacts/{id}/360` and `GET /v1/accounts/{id}/360`: a record
//! with what surrounds it (account or contacts, deals from sales, open
//! tickets and the last satisfaction answer from the service desk, recent
//! activities, open tasks; for accounts also NPS and reporting's credit
//! grade and churn risk), gathered from the services in parallel, each
//! with a deadline. The record itself is required; any other section whose
//! service is slow or down comes back marked `unavailable` instead of
//! failing the page.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::Json;
use crm_proto::crm::common::v1::PageRequest;
use crm_proto::crm::customers::v1 as pb;
use crm_proto::crm::customers::v1::account_service_client::AccountServiceClient;
use crm_proto::crm::customers::v1::activity_service_client::ActivityServiceClient;
use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::reporting::v1 as reporting;
use crm_proto::crm::reporting::v1::dashboard_service_client::DashboardServiceClient;
use crm_proto::crm::sales::v1 as sales;
use crm_proto::crm::sales::v1::opportunity_service_client::OpportunityServiceClient;
use crm_proto::crm::servicedesk::v1 as desk;
use crm_proto::crm::servicedesk::v1::feedback_service_client::FeedbackServiceClient;
use crm_proto::crm::servicedesk::v1::satisfaction_service_client::SatisfactionServiceClient;
use crm_proto::crm::servicedesk::v1::ticket_service_client::TicketServiceClient;
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::{self, Problem};
use super::rest::{parse_uuid, timestamp};
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
    /// The contact, as `GET /v1/contacts/{id}` returns it.
    #[schema(value_type = Object)]
    pub contact: serde_json::Value,
    #[schema(value_type = Object)]
    pub account: Section<AccountSummary>,
    /// Deals in which the contact has a role.
    #[schema(value_type = Object)]
    pub deals: Section<Vec<DealSummary>>,
    /// The contact's tickets not solved or closed, newest first.
    #[schema(value_type = Object)]
    pub open_tickets: Section<Vec<TicketSummary>>,
    /// The contact's latest answer to a satisfaction survey (`none`: never).
    #[schema(value_type = Object)]
    pub last_satisfaction: Section<SatisfactionSummary>,
    #[schema(value_type = Object)]
    pub recent_activities: Section<Vec<ActivitySummary>>,
    #[schema(value_type = Object)]
    pub open_tasks: Section<Vec<ActivitySummary>>,
}

/// A ticket, from the service desk.
#[derive(Serialize, ToSchema)]
pub struct TicketSummary {
    pub id: String,
    pub number: i64,
    pub subject: String,
    /// new, open, pending_customer, pending_third_party, on_hold
    pub status: String,
    /// low, normal, high, urgent
    pub priority: String,
    pub created_at: Option<String>,
}

/// A requester's answer to the survey of a solved ticket (CSAT).
#[derive(Serialize, ToSchema)]
pub struct SatisfactionSummary {
    pub ticket_id: String,
    pub ticket_number: i64,
    /// 1 (very unsatisfied) to 5 (very satisfied).
    pub score: i32,
    pub comment: String,
    pub answered_at: Option<String>,
}

/// An account's Net Promoter Score from its contacts' answers.
#[derive(Serialize, ToSchema)]
pub struct NpsSummary {
    pub responses: i32,
    pub promoters: i32,
    pub passives: i32,
    pub detractors: i32,
    /// Promoters minus detractors as a share of the answers, -100 to 100.
    pub score: i32,
    pub last_answered_at: Option<String>,
}

/// What reporting concludes about an account from its invoices, orders,
/// tickets and activities.
#[derive(Serialize, ToSchema)]
pub struct InsightsSummary {
    /// A to D, or `unrated` without invoices.
    pub credit_grade: String,
    pub credit_reasons: Vec<String>,
    /// `low`, `medium` or `high`; absent before the account's first order.
    pub churn_level: Option<String>,
    pub churn_score: Option<i32>,
    pub churn_reasons: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ContactSummary {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub title: String,
}

/// An opportunity of the account, from the sales service.
#[derive(Serialize, ToSchema)]
pub struct DealSummary {
    pub id: String,
    pub name: String,
    /// Decimal string.
    pub amount: String,
    pub currency: String,
    /// open, won or lost
    pub status: String,
    pub close_date: String,
    pub probability: i32,
}

#[derive(Serialize, ToSchema)]
pub struct AccountOverview {
    /// The account, as `GET /v1/accounts/{id}` returns it.
    #[schema(value_type = Object)]
    pub account: serde_json::Value,
    #[schema(value_type = Object)]
    pub deals: Section<Vec<DealSummary>>,
    #[schema(value_type = Object)]
    pub contacts: Section<Vec<ContactSummary>>,
    /// The account's tickets not solved or closed, newest first.
    #[schema(value_type = Object)]
    pub open_tickets: Section<Vec<TicketSummary>>,
    /// The latest satisfaction survey answer on the account's tickets.
    #[schema(value_type = Object)]
    pub last_satisfaction: Section<SatisfactionSummary>,
    /// The account's NPS (`none` until a contact answered a survey).
    #[schema(value_type = Object)]
    pub nps: Section<NpsSummary>,
    /// Reporting's credit grade and churn risk of the account (churn risk
    /// only once it has ordered).
    #[schema(value_type = Object)]
    pub insights: Section<InsightsSummary>,
    #[schema(value_type = Object)]
    pub recent_activities: Section<Vec<ActivitySummary>>,
    #[schema(value_type = Object)]
    pub open_tasks: Section<Vec<ActivitySummary>>,
}

fn deal(o: sales::Opportunity) -> DealSummary {
    let amount = o.amount.unwrap_or_default();
    DealSummary {
        id: o.id,
        name: o.name,
        amount: amount.amount,
        currency: amount.currency,
        status: sales::OpportunityStatus::try_from(o.status)
            .map(|s| {
                s.as_str_name()
                    .trim_start_matches("OPPORTUNITY_STATUS_")
                    .to_ascii_lowercase()
            })
            .unwrap_or_default(),
        close_date: o.close_date,
        probability: o.probability,
    }
}

/// `TICKET_STATUS_PENDING_CUSTOMER` -> `pending_customer`.
fn enum_name(name: Option<&str>, prefix: &str) -> String {
    name.map(|n| n.trim_start_matches(prefix).to_ascii_lowercase())
        .unwrap_or_default()
}

fn ticket(t: desk::Ticket) -> TicketSummary {
    TicketSummary {
        status: enum_name(
            desk::TicketStatus::try_from(t.status)
                .ok()
                .map(|s| s.as_str_name()),
            "TICKET_STATUS_",
        ),
        priority: enum_name(
            desk::TicketPriority::try_from(t.priority)
                .ok()
                .map(|s| s.as_str_name()),
            "TICKET_PRIORITY_",
        ),
        created_at: timestamp(t.audit.as_ref().and_then(|a| a.created_at.as_ref())),
        id: t.id,
        number: t.number,
        subject: t.subject,
    }
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
        occurred_at: timestamp(activity.occurred_at.as_ref()),
        done: activity.task.map(|t| t.completed_at.is_some()),
    }
}

/// One section: the call under the deadline, NOT_FOUND as `none`, any
/// other failure or a timeout as `unavailable`.
async fn section<R, T>(
    deadline: Duration,
    call: impl std::future::Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    map: impl FnOnce(R) -> Section<T>,
) -> Section<T> {
    match tokio::time::timeout(deadline, call).await {
        Ok(Ok(response)) => map(response.into_inner()),
        Ok(Err(status)) if status.code() == tonic::Code::NotFound => Section::none(),
        _ => Section::unavailable(),
    }
}

const FIRST_TEN: Option<PageRequest> = Some(PageRequest {
    page_size: 10,
    page_token: String::new(),
});

/// How long a fan-out waits for each service.
pub fn deadline(state: &SharedState) -> Duration {
    state.config.upstream_timeout.min(Duration::from_secs(2))
}

/// The first 20 deals matching `filter`, from the sales service.
async fn deal_section(
    state: &SharedState,
    caller: &Caller,
    mut filter: sales::ListOpportunitiesRequest,
) -> Result<Section<Vec<DealSummary>>, Problem> {
    filter.page = Some(PageRequest {
        page_size: 20,
        page_token: String::new(),
    });
    let request = state.upstream(caller, filter)?;
    let Some(sales) = state.channel("sales") else {
        return Ok(Section::unavailable());
    };
    let mut client = OpportunityServiceClient::new(sales);
    Ok(
        section(deadline(state), client.list_opportunities(request), |r| {
            Section::ok(r.opportunities.into_iter().map(deal).collect())
        })
        .await,
    )
}

/// The first 20 open tickets matching `filter`, from the service desk.
async fn ticket_section(
    state: &SharedState,
    caller: &Caller,
    mut filter: desk::ListTicketsRequest,
) -> Result<Section<Vec<TicketSummary>>, Problem> {
    filter.open_only = true;
    filter.page = Some(PageRequest {
        page_size: 20,
        page_token: String::new(),
    });
    let request = state.upstream(caller, filter)?;
    let Some(servicedesk) = state.channel("servicedesk") else {
        return Ok(Section::unavailable());
    };
    let mut client = TicketServiceClient::new(servicedesk);
    Ok(section(deadline(state), client.list_tickets(request), |r| {
        Section::ok(r.tickets.into_iter().map(ticket).collect())
    })
    .await)
}

/// The latest survey answer matching `filter`, from the service desk.
async fn satisfaction_section(
    state: &SharedState,
    caller: &Caller,
    mut filter: desk::ListSatisfactionRatingsRequest,
) -> Result<Section<SatisfactionSummary>, Problem> {
    filter.page = Some(PageRequest {
        page_size: 1,
        page_token: String::new(),
    });
    let request = state.upstream(caller, filter)?;
    let Some(servicedesk) = state.channel("servicedesk") else {
        return Ok(Section::unavailable());
    };
    let mut client = SatisfactionServiceClient::new(servicedesk);
    Ok(section(
        deadline(state),
        client.list_satisfaction_ratings(request),
        |r| match r.ratings.into_iter().next() {
            Some(rating) => Section::ok(SatisfactionSummary {
                answered_at: timestamp(rating.answered_at.as_ref()),
                ticket_id: rating.ticket_id,
                ticket_number: rating.ticket_number,
                score: rating.score,
                comment: rating.comment,
            }),
            None => Section::none(),
        },
    )
    .await)
}

/// Reporting's insights into an account.
async fn insights_section(
    state: &SharedState,
    caller: &Caller,
    account_id: String,
) -> Result<Section<InsightsSummary>, Problem> {
    let request = state.upstream(caller, reporting::GetAccountInsightsRequest { account_id })?;
    let Some(channel) = state.channel("reporting") else {
        return Ok(Section::unavailable());
    };
    let mut client = DashboardServiceClient::new(channel);
    Ok(section(
        deadline(state),
        client.get_account_insights(request),
        |r| match r.insights {
            Some(i) => {
                let churn = i.churn_risk.unwrap_or_default();
                let churned = !churn.level.is_empty();
                Section::ok(InsightsSummary {
                    credit_grade: i.credit_grade,
                    credit_reasons: i.credit_reasons,
                    churn_level: churned.then_some(churn.level),
                    churn_score: churned.then_some(churn.score),
                    churn_reasons: churn.reasons,
                })
            }
            None => Section::none(),
        },
    )
    .await)
}

/// An account's NPS, `none` before anyone answered.
async fn nps_section(
    state: &SharedState,
    caller: &Caller,
    account_id: String,
) -> Result<Section<NpsSummary>, Problem> {
    let request = state.upstream(
        caller,
        desk::GetAccountNpsRequest {
            account_id,
            since: None,
        },
    )?;
    let Some(servicedesk) = state.channel("servicedesk") else {
        return Ok(Section::unavailable());
    };
    let mut client = FeedbackServiceClient::new(servicedesk);
    Ok(section(
        deadline(state),
        client.get_account_nps(request),
        |r| match r.summary.filter(|s| s.responses > 0) {
            Some(s) => Section::ok(NpsSummary {
                responses: s.responses,
                promoters: s.promoters,
                passives: s.passives,
                detractors: s.detractors,
                score: s.score,
                last_answered_at: timestamp(s.last_answered_at.as_ref()),
            }),
            None => Section::none(),
        },
    )
    .await)
}

/// The newest activities and the open tasks of a contact or an account.
async fn activity_sections(
    state: &SharedState,
    caller: &Caller,
    contact_id: String,
    account_id: String,
) -> Result<(Section<Vec<ActivitySummary>>, Section<Vec<ActivitySummary>>), Problem> {
    let timeline = state.upstream(
        caller,
        pb::ListTimelineRequest {
            contact_id: contact_id.clone(),
            account_id: account_id.clone(),
            page: FIRST_TEN,
        },
    )?;
    let tasks = state.upstream(
        caller,
        pb::ListTasksRequest {
            contact_id,
            account_id,
            page: FIRST_TEN,
            ..Default::default()
        },
    )?;
    let mut timeline_client = ActivityServiceClient::new(state.service("customers")?);
    let mut tasks_client = timeline_client.clone();
    let recent = section(
        deadline(state),
        timeline_client.list_timeline(timeline),
        |r| Section::ok(r.activities.into_iter().map(summary).collect()),
    );
    let open = section(deadline(state), tasks_client.list_tasks(tasks), |r| {
        Section::ok(r.tasks.into_iter().map(summary).collect())
    });
    Ok(tokio::join!(recent, open))
}

#[utoipa::path(get, path = "/v1/contacts/{id}/360", tag = "contacts", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "contact id")),
    responses((status = 200, body = ContactOverview), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn contact(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ContactOverview>, Problem> {
    parse_uuid("id", &id)?;
    let request = state.upstream(&caller, pb::GetContactRequest { id: id.clone() })?;
    let contact = ContactServiceClient::new(state.service("customers")?)
        .get_contact(request)
        .await?
        .into_inner()
        .contact
        .unwrap_or_default();

    let account = async {
        if contact.account_id.is_empty() {
            return Ok(Section::none());
        }
        let request = state.upstream(
            &caller,
            pb::GetAccountRequest {
                id: contact.account_id.clone(),
            },
        )?;
        let mut client = AccountServiceClient::new(state.service("customers")?);
        Ok::<_, Problem>(
            section(deadline(&state), client.get_account(request), |r| {
                r.account.map_or_else(Section::none, |a| {
                    Section::ok(AccountSummary {
                        id: a.id,
                        name: a.name,
                        domain: a.domain,
                        industry: a.industry,
                    })
                })
            })
            .await,
        )
    };
    let deals = deal_section(
        &state,
        &caller,
        sales::ListOpportunitiesRequest {
            contact_id: id.clone(),
            ..Default::default()
        },
    );
    let tickets = ticket_section(
        &state,
        &caller,
        desk::ListTicketsRequest {
            requester_contact_id: id.clone(),
            ..Default::default()
        },
    );
    let satisfaction = satisfaction_section(
        &state,
        &caller,
        desk::ListSatisfactionRatingsRequest {
            requester_contact_id: id.clone(),
            ..Default::default()
        },
    );
    let activities = activity_sections(&state, &caller, id.clone(), String::new());
    let (account, deals, tickets, satisfaction, activities) =
        tokio::join!(account, deals, tickets, satisfaction, activities);
    let (recent_activities, open_tasks) = activities?;
    Ok(Json(ContactOverview {
        contact: super::transcode::message::json_of("crm.customers.v1.Contact", &contact),
        account: account?,
        deals: deals?,
        open_tickets: tickets?,
        last_satisfaction: satisfaction?,
        recent_activities,
        open_tasks,
    }))
}

#[utoipa::path(get, path = "/v1/accounts/{id}/360", tag = "accounts", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "account id")),
    responses((status = 200, body = AccountOverview), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn account(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AccountOverview>, Problem> {
    parse_uuid("id", &id)?;
    let request = state.upstream(&caller, pb::GetAccountRequest { id: id.clone() })?;
    let account = AccountServiceClient::new(state.service("customers")?)
        .get_account(request)
        .await?
        .into_inner()
        .account
        .unwrap_or_default();
    let contacts_request = state.upstream(
        &caller,
        pb::ListContactsRequest {
            filter: Some(pb::Filter::equals("account_id", &id)),
            page: Some(PageRequest {
                page_size: 50,
                page_token: String::new(),
            }),
            ..Default::default()
        },
    )?;
    let mut contacts_client = ContactServiceClient::new(state.service("customers")?);
    let contacts = section(
        deadline(&state),
        contacts_client.list_contacts(contacts_request),
        |r| {
            Section::ok(
                r.contacts
                    .into_iter()
                    .map(|c| ContactSummary {
                        id: c.id,
                        first_name: c.first_name,
                        last_name: c.last_name,
                        title: c.title,
                    })
                    .collect(),
            )
        },
    );
    let deals = deal_section(
        &state,
        &caller,
        sales::ListOpportunitiesRequest {
            account_id: id.clone(),
            ..Default::default()
        },
    );
    let tickets = ticket_section(
        &state,
        &caller,
        desk::ListTicketsRequest {
            account_id: id.clone(),
            ..Default::default()
        },
    );
    let satisfaction = satisfaction_section(
        &state,
        &caller,
        desk::ListSatisfactionRatingsRequest {
            account_id: id.clone(),
            ..Default::default()
        },
    );
    let nps = nps_section(&state, &caller, id.clone());
    let insights = insights_section(&state, &caller, id.clone());
    let activities = activity_sections(&state, &caller, String::new(), id.clone());
    let (contacts, deals, tickets, satisfaction, nps, insights, activities) = tokio::join!(
        contacts,
        deals,
        tickets,
        satisfaction,
        nps,
        insights,
        activities
    );
    let (recent_activities, open_tasks) = activities?;
    Ok(Json(AccountOverview {
        account: super::transcode::message::json_of("crm.customers.v1.Account", &account),
        deals: deals?,
        contacts,
        open_tickets: tickets?,
        last_satisfaction: satisfaction?,
        nps: nps?,
        insights: insights?,
        recent_activities,
        open_tasks,
    }))
}
