//! The service dashboard, counted from the service desk's events.

use std::time::Duration;

use crm_proto::crm::reporting::v1::dashboard_service_client::DashboardServiceClient;
use crm_proto::crm::reporting::v1::*;
use crm_proto::crm::servicedesk::v1::*;
use kit::auth::{Role, Visibility};
use uuid::Uuid;

use crate::harness::{violated_fields, Client, TestApp};

async fn ticket(
    client: &mut Client,
    subject: &str,
    channel: TicketChannel,
    r#type: TicketType,
    group: &str,
) -> Ticket {
    client
        .tickets
        .create_ticket(CreateTicketRequest {
            ticket: Some(Ticket {
                subject: subject.into(),
                channel: channel as i32,
                r#type: r#type as i32,
                group_id: group.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("ticket")
        .into_inner()
        .ticket
        .expect("ticket")
}

async fn dashboard(
    client: &mut Client,
    request: GetServiceDashboardRequest,
) -> Result<ServiceDashboard, tonic::Status> {
    client
        .dashboards
        .get_service_dashboard(request)
        .await
        .map(|r| r.into_inner().dashboard.expect("dashboard"))
}

fn count(counts: &[Count], key: &str) -> i64 {
    counts.iter().find(|c| c.key == key).map_or(0, |c| c.count)
}

#[tokio::test]
async fn the_service_dashboard_counts_what_each_caller_may_see() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let (support, billing) = (Uuid::now_v7(), Uuid::now_v7());
    let printer = ticket(
        &mut admin,
        "Printer on fire",
        TicketChannel::Email,
        TicketType::Incident,
        &support.to_string(),
    )
    .await;
    ticket(
        &mut admin,
        "How do I pay?",
        TicketChannel::WebForm,
        TicketType::Question,
        &billing.to_string(),
    )
    .await;
    ticket(
        &mut admin,
        "Charged twice",
        TicketChannel::Email,
        TicketType::Complaint,
        &billing.to_string(),
    )
    .await;
    admin
        .tickets
        .add_message(AddMessageRequest {
            ticket_id: printer.id.clone(),
            message: Some(TicketMessage {
                kind: MessageKind::PublicReply as i32,
                body: "A technician is on the way.".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("reply");
    admin
        .tickets
        .update_ticket(UpdateTicketRequest {
            ticket: Some(Ticket {
                id: printer.id.clone(),
                status: TicketStatus::Solved as i32,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["status".into()],
            }),
            expected_version: 0,
        })
        .await
        .expect("solved");
    let token = app
        .survey_key
        .sign(&servicedesk::domain::satisfaction::Survey {
            tenant: app.tenant,
            ticket: printer.id.parse().expect("id"),
            expires: i64::MAX,
        });
    app.client(&[Role::Service], Visibility::Tenant, &[])
        .satisfaction
        .answer_survey(AnswerSurveyRequest {
            token,
            score: 4,
            comment: String::new(),
        })
        .await
        .expect("rated");

    // The events arrive: the admin counts the whole tenant.
    let all = testkit::eventually(
        "the dashboard has every event",
        Duration::from_secs(30),
        || {
            let mut admin = app.admin();
            async move {
                let d = dashboard(&mut admin, GetServiceDashboardRequest::default())
                    .await
                    .ok()?;
                (d.created == 3 && d.solved == 1 && d.csat_responses == 1).then_some(d)
            }
        },
    )
    .await;
    assert_eq!(all.backlog, 2);
    assert_eq!(
        (
            count(&all.by_channel, "email"),
            count(&all.by_channel, "web_form")
        ),
        (2, 1)
    );
    assert_eq!(count(&all.by_type, "complaint"), 1);
    assert_eq!(count(&all.backlog_by_age, "under 1 day"), 2);
    assert_eq!(all.backlog_by_age.len(), 4, "every age bucket is named");
    assert_eq!(all.csat_average, "4.00");
    assert!(all.as_of.is_some(), "figures say how fresh they are");

    // An agent of the billing group counts its tickets only; a filter
    // narrows further; another tenant sees nothing of these.
    let mut billing_agent = app.client(&[Role::SupportAgent], Visibility::Team, &[billing]);
    let theirs = dashboard(&mut billing_agent, GetServiceDashboardRequest::default())
        .await
        .expect("dashboard");
    assert_eq!((theirs.created, theirs.solved, theirs.backlog), (2, 0, 2));
    let narrowed = dashboard(
        &mut admin,
        GetServiceDashboardRequest {
            group_id: support.to_string(),
            ..Default::default()
        },
    )
    .await
    .expect("dashboard");
    assert_eq!((narrowed.created, narrowed.solved), (1, 1));
    let mut stranger = app.client_in(Uuid::now_v7(), &[Role::Admin], Visibility::Tenant, &[]);
    let nothing = dashboard(&mut stranger, GetServiceDashboardRequest::default())
        .await
        .expect("dashboard");
    assert_eq!((nothing.created, nothing.backlog), (0, 0));
    assert!(nothing.as_of.is_none());

    // An API key limited to other services' data is refused.
    let mut claims = app.services.issuer.claims(
        app.tenant,
        Uuid::now_v7(),
        &[Role::Admin],
        Visibility::Tenant,
    );
    claims.scopes = vec!["servicedesk:read".into()];
    let key = kit::auth::BearerToken::new(&app.services.issuer.sign(&claims)).expect("a token");
    let refused = DashboardServiceClient::with_interceptor(app.services.channel("reporting"), key)
        .get_service_dashboard(GetServiceDashboardRequest::default())
        .await
        .expect_err("no reporting scope");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);

    // A period that ends before it starts, or a group that is no id.
    let now = chrono::Utc::now().timestamp();
    let bad = dashboard(
        &mut admin,
        GetServiceDashboardRequest {
            from: Some(prost_types::Timestamp {
                seconds: now,
                nanos: 0,
            }),
            to: Some(prost_types::Timestamp {
                seconds: now - 60,
                nanos: 0,
            }),
            group_id: "billing".into(),
            ..Default::default()
        },
    )
    .await
    .expect_err("bad input");
    assert_eq!(violated_fields(&bad), ["group_id", "to"]);
    // Last year's period holds none of these.
    let last_year = dashboard(
        &mut admin,
        GetServiceDashboardRequest {
            from: Some(prost_types::Timestamp {
                seconds: now - 400 * 86_400,
                nanos: 0,
            }),
            to: Some(prost_types::Timestamp {
                seconds: now - 365 * 86_400,
                nanos: 0,
            }),
            ..Default::default()
        },
    )
    .await
    .expect("dashboard");
    assert_eq!(
        (last_year.created, last_year.solved, last_year.backlog),
        (0, 0, 2)
    );
}

#[tokio::test]
async fn sla_compliance_nps_weeks_and_agents() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let (agent, group) = (Uuid::now_v7(), Uuid::now_v7());
    let account = testkit::grpc::create_account(&mut admin.accounts, "Acme", "").await;
    // Two tickets the agent solves; the service desk reports that the
    // first breached its first-response target.
    let mut solved = Vec::new();
    for subject in ["Printer on fire", "Toner empty"] {
        let t = ticket(
            &mut admin,
            subject,
            TicketChannel::Email,
            TicketType::Incident,
            &group.to_string(),
        )
        .await;
        admin
            .tickets
            .update_ticket(UpdateTicketRequest {
                ticket: Some(Ticket {
                    id: t.id.clone(),
                    assignee_id: agent.to_string(),
                    status: TicketStatus::Solved as i32,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["assignee_id".into(), "status".into()],
                }),
                expected_version: 0,
            })
            .await
            .expect("solved");
        solved.push(t);
    }
    let breach = SlaBreached {
        ticket_id: solved[0].id.clone(),
        ticket_number: solved[0].number,
        assignee_id: agent.to_string(),
        group_id: group.to_string(),
        target: Some(SlaTarget {
            metric: SlaMetric::FirstResponse as i32,
            target_minutes: 60,
            breached: true,
            ..Default::default()
        }),
    };
    app.services
        .publish(app.tenant, solved[0].id.parse().expect("id"), &breach)
        .await;
    // Three NPS answers about the account: 10 and 9 promote, 3 detracts.
    let survey = Uuid::now_v7();
    for score in [10, 9, 3] {
        let answer = NpsReceived {
            survey_id: survey.to_string(),
            account_id: account.id.clone(),
            contact_id: Uuid::now_v7().to_string(),
            score,
            commented: false,
        };
        app.services.publish(app.tenant, survey, &answer).await;
    }

    let d = testkit::eventually(
        "breach, answers and solutions are counted",
        Duration::from_secs(30),
        || {
            let mut admin = app.admin();
            async move {
                let d = dashboard(&mut admin, GetServiceDashboardRequest::default())
                    .await
                    .ok()?;
                let agent_solved = d.agents.first().map_or(0, |a| a.solved);
                (d.nps_responses == 3 && !d.breaches_by_metric.is_empty() && agent_solved == 2)
                    .then_some(d)
            }
        },
    )
    .await;
    assert_eq!(d.sla_compliance_percent, "50");
    assert_eq!(count(&d.breaches_by_metric, "first_response"), 1);
    assert_eq!(d.nps_score, 33, "(2 - 1) / 3 answers");
    let week = d.weeks.last().expect("this week");
    assert_eq!(
        (
            week.created,
            week.solved,
            week.nps_responses,
            week.nps_score
        ),
        (2, 2, 3, 33)
    );
    let figures = &d.agents[0];
    assert_eq!(
        (figures.agent_id.as_str(), figures.solved, figures.breaches),
        (agent.to_string().as_str(), 2, 1)
    );
    // Another group's agent counts none of it (nor the NPS of an account
    // they do not see); another tenant neither.
    let mut outsider = app.client(&[Role::SupportAgent], Visibility::Team, &[Uuid::now_v7()]);
    let theirs = dashboard(&mut outsider, GetServiceDashboardRequest::default())
        .await
        .expect("dashboard");
    assert_eq!(
        (
            theirs.solved,
            theirs.nps_responses,
            theirs.agents.len(),
            theirs.sla_compliance_percent.as_str()
        ),
        (0, 0, 0, "")
    );
    let mut stranger = app.client_in(Uuid::now_v7(), &[Role::Admin], Visibility::Tenant, &[]);
    let nothing = dashboard(&mut stranger, GetServiceDashboardRequest::default())
        .await
        .expect("dashboard");
    assert_eq!((nothing.nps_responses, nothing.weeks.len()), (0, 0));
}
