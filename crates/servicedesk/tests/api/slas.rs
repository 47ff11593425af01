use std::time::Duration;

use chrono::{DateTime, Utc};
use crm_proto::crm::servicedesk::v1::*;
use crm_proto::events::DomainEvent;
use kit::auth::{Role, Visibility};
use testkit::eventually;
use tonic::Code;
use uuid::Uuid;

use crate::harness::*;

fn utc(raw: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(raw)
        .expect("time")
        .with_timezone(&Utc)
}

fn time(raw: &str) -> Option<prost_types::Timestamp> {
    Some(kit::time::to_timestamp(utc(raw)))
}

/// Monday to Friday, 09:00-17:00 in Berlin (08:00-16:00 UTC in winter).
fn berlin_office(name: &str) -> BusinessCalendar {
    let hours = (1..=5)
        .map(|day| WorkingHours {
            weekday: day,
            start: "09:00".into(),
            end: "17:00".into(),
        })
        .collect();
    BusinessCalendar {
        name: name.into(),
        time_zone: "Europe/Berlin".into(),
        hours,
        holidays: vec!["2026-12-25".into()],
        ..Default::default()
    }
}

async fn calendar(
    client: &mut Client,
    c: BusinessCalendar,
) -> Result<BusinessCalendar, tonic::Status> {
    client
        .slas
        .create_calendar(CreateCalendarRequest {
            calendar: Some(c),
            request_id: String::new(),
        })
        .await
        .map(|r| r.into_inner().calendar.expect("calendar"))
}

async fn policy(client: &mut Client, p: SlaPolicy) -> Result<SlaPolicy, tonic::Status> {
    client
        .slas
        .create_policy(CreatePolicyRequest {
            policy: Some(p),
            request_id: String::new(),
        })
        .await
        .map(|r| r.into_inner().policy.expect("policy"))
}

async fn targets(client: &mut Client, ticket: &str) -> Vec<SlaTarget> {
    client
        .slas
        .get_ticket_sla(GetTicketSlaRequest {
            ticket_id: ticket.into(),
        })
        .await
        .expect("ticket sla")
        .into_inner()
        .targets
}

fn target(targets: &[SlaTarget], metric: SlaMetric) -> SlaTarget {
    targets
        .iter()
        .find(|t| t.metric == metric as i32)
        .cloned()
        .unwrap_or_else(|| panic!("no {metric:?} target in {targets:?}"))
}

/// How many events of `event_type` about `aggregate` the service wrote to
/// its outbox (published or not): what "exactly once" is about.
async fn written(app: &TestApp, event_type: &str, aggregate: &str) -> i64 {
    let pool = app.services.db("servicedesk").admin_pool().await;
    let subject = format!("%{}", kit::events::subject_of(event_type));
    let count = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE aggregate_id = $1::uuid AND subject LIKE $2",
    )
    .bind(aggregate)
    .bind(subject)
    .fetch_one(&pool)
    .await
    .expect("outbox count");
    pool.close().await;
    count
}

/// Alarms due by the test clock that no scanner has taken yet.
async fn due_alarms(app: &TestApp) -> i64 {
    let pool = app.services.db("servicedesk").admin_pool().await;
    let count = sqlx::query_scalar("SELECT count(*) FROM sla_alarms WHERE fire_at <= $1")
        .bind(app.clock.now())
        .fetch_one(&pool)
        .await
        .expect("alarms");
    pool.close().await;
    count
}

async fn scanned(app: &TestApp) {
    eventually(
        "the scanners take every due alarm",
        Duration::from_secs(15),
        || async { (due_alarms(app).await == 0).then_some(()) },
    )
    .await
}

#[tokio::test]
async fn clocks_count_business_hours_pause_for_the_customer_and_breach_once() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let office = calendar(&mut admin, berlin_office("Berlin office"))
        .await
        .unwrap();
    let urgent = policy(
        &mut admin,
        SlaPolicy {
            name: "Urgent".into(),
            active: true,
            priorities: vec![TicketPriority::Urgent as i32],
            calendar_id: office.id.clone(),
            first_response_minutes: 120,
            resolution_minutes: 480,
            warning_percent: 50,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // Friday 16:00 in Berlin: one business hour left this week.
    app.clock.set(utc("2026-12-04T15:00:00Z"));
    let t = create(
        &mut admin,
        Ticket {
            priority: TicketPriority::Urgent as i32,
            ..subject("Checkout is down")
        },
    )
    .await
    .unwrap();
    let normal = create(&mut admin, subject("A question")).await.unwrap();
    assert!(
        targets(&mut admin, &normal.id).await.is_empty(),
        "no policy matches a normal ticket"
    );

    let first = target(&targets(&mut admin, &t.id).await, SlaMetric::FirstResponse);
    assert_eq!(first.policy_id, urgent.id);
    assert_eq!(first.state, SlaClockState::Running as i32);
    assert_eq!(first.business_seconds_remaining, 7200);
    // The second hour is Monday 09:00-10:00 Berlin.
    assert_eq!(first.due_at, time("2026-12-07T09:00:00Z"));

    // Friday 17:00 Berlin: half the target is used; the warning fires.
    app.clock.set(utc("2026-12-05T12:00:00Z"));
    let warning = app.event("servicedesk", SlaWarning::TYPE, &t.id).await;
    let warning: SlaWarning = prost::Message::decode(warning.data.as_slice()).unwrap();
    let warned = warning.target.expect("target");
    assert_eq!(warned.metric, SlaMetric::FirstResponse as i32);
    assert_eq!(warned.warned_at, time("2026-12-04T16:00:00Z"));
    // The weekend counts nothing.
    let first = target(&targets(&mut admin, &t.id).await, SlaMetric::FirstResponse);
    assert_eq!(first.business_seconds_remaining, 3600);

    // Monday 09:30 Berlin the ticket waits for the customer: 30 minutes left.
    app.clock.set(utc("2026-12-07T08:30:00Z"));
    status(&mut admin, &t.id, TicketStatus::PendingCustomer)
        .await
        .unwrap();
    app.clock.set(utc("2026-12-07T15:00:00Z"));
    let paused = targets(&mut admin, &t.id).await;
    for metric in [SlaMetric::FirstResponse, SlaMetric::Resolution] {
        assert_eq!(target(&paused, metric).state, SlaClockState::Paused as i32);
    }
    assert_eq!(
        target(&paused, SlaMetric::FirstResponse).business_seconds_remaining,
        1800
    );
    assert_eq!(target(&paused, SlaMetric::FirstResponse).due_at, None);

    // Open again at 16:00 Berlin: due at 16:30.
    status(&mut admin, &t.id, TicketStatus::Open).await.unwrap();
    let running = target(&targets(&mut admin, &t.id).await, SlaMetric::FirstResponse);
    assert_eq!(running.due_at, time("2026-12-07T15:30:00Z"));
    assert!(!running.breached);

    app.clock.set(utc("2026-12-07T15:45:00Z"));
    let breach = app.event("servicedesk", SlaBreached::TYPE, &t.id).await;
    let breach: SlaBreached = prost::Message::decode(breach.data.as_slice()).unwrap();
    let breached = breach.target.expect("target");
    assert_eq!(breached.breached_at, time("2026-12-07T15:30:00Z"));
    assert_eq!(breached.business_seconds_remaining, -900);

    // The late answer completes the target, breached.
    reply(
        &mut admin,
        &t.id,
        MessageKind::PublicReply,
        "Looking into it",
        "",
    )
    .await
    .unwrap();
    let done = target(&targets(&mut admin, &t.id).await, SlaMetric::FirstResponse);
    assert_eq!(done.state, SlaClockState::Completed as i32);
    assert!(done.breached);
    assert_eq!(done.completed_at, time("2026-12-07T15:45:00Z"));
    // Resolution runs on (8 business hours: 60 min Friday, 30+30 Monday).
    let resolution = target(&targets(&mut admin, &t.id).await, SlaMetric::Resolution);
    assert_eq!(resolution.state, SlaClockState::Running as i32);
    assert_eq!(resolution.business_seconds_remaining, (480 - 120 - 15) * 60);

    scanned(&app).await;
    assert_eq!(written(&app, SlaWarning::TYPE, &t.id).await, 1);
    assert_eq!(written(&app, SlaBreached::TYPE, &t.id).await, 1);
    // Solving stops resolution; reopening lets it go on where it was.
    app.clock.set(utc("2026-12-08T09:00:00Z"));
    status(&mut admin, &t.id, TicketStatus::Solved)
        .await
        .unwrap();
    let solved = target(&targets(&mut admin, &t.id).await, SlaMetric::Resolution);
    assert_eq!(solved.state, SlaClockState::Completed as i32);
    let used = 480 * 60 - solved.business_seconds_remaining;
    app.clock.set(utc("2026-12-09T09:00:00Z"));
    status(&mut admin, &t.id, TicketStatus::Open).await.unwrap();
    let reopened = target(&targets(&mut admin, &t.id).await, SlaMetric::Resolution);
    assert_eq!(reopened.state, SlaClockState::Running as i32);
    assert_eq!(480 * 60 - reopened.business_seconds_remaining, used);
    app.services.stop().await;
}

#[tokio::test]
async fn two_instances_publish_each_stage_of_each_target_exactly_once() {
    let mut app = TestApp::spawn().await;
    app.second_instance().await;
    let mut admin = app.admin();
    policy(
        &mut admin,
        SlaPolicy {
            name: "Everything".into(),
            active: true,
            first_response_minutes: 10,
            resolution_minutes: 60,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            create(&mut admin, subject(&format!("Ticket {i}")))
                .await
                .unwrap()
                .id,
        );
    }
    // Past the first-response target: both pods scan every 20 ms.
    app.clock.advance(chrono::Duration::minutes(11));
    let breaches = app
        .services
        .nats
        .events("servicedesk", SlaBreached::TYPE, 20)
        .await;
    scanned(&app).await;
    for id in &ids {
        assert_eq!(
            written(&app, SlaWarning::TYPE, id).await,
            1,
            "warnings of {id}"
        );
        assert_eq!(
            written(&app, SlaBreached::TYPE, id).await,
            1,
            "breaches of {id}"
        );
    }
    let mut subjects: Vec<String> = breaches.iter().map(|e| e.subject.clone()).collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 20);
    app.services.stop().await;
}

#[tokio::test]
async fn a_customer_waiting_again_starts_a_next_response_target_and_escalations_act() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let (first_line, second_line, manager) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    policy(
        &mut admin,
        SlaPolicy {
            name: "First line".into(),
            active: true,
            group_ids: vec![first_line.to_string()],
            next_response_minutes: 30,
            resolution_minutes: 24 * 60,
            escalations: vec![
                Escalation {
                    stage: SlaStage::Breach as i32,
                    metric: SlaMetric::NextResponse as i32,
                    action: EscalationAction::Reassign as i32,
                    group_id: second_line.to_string(),
                    ..Default::default()
                },
                Escalation {
                    stage: SlaStage::Breach as i32,
                    action: EscalationAction::RaisePriority as i32,
                    ..Default::default()
                },
                Escalation {
                    stage: SlaStage::Warning as i32,
                    action: EscalationAction::Notify as i32,
                    notify_user_ids: vec![manager.to_string()],
                    ..Default::default()
                },
                Escalation {
                    stage: SlaStage::Breach as i32,
                    metric: SlaMetric::NextResponse as i32,
                    action: EscalationAction::CreateTask as i32,
                    task_subject: "Call the customer back".into(),
                    assignee_id: manager.to_string(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut agent = app.agent(&[first_line, second_line]);
    let requester = contact(&mut agent, "Waiting").await;
    let t = create(
        &mut agent,
        Ticket {
            group_id: first_line.to_string(),
            requester_contact_id: requester.id.clone(),
            ..subject("Invoice is wrong")
        },
    )
    .await
    .unwrap();
    reply(
        &mut agent,
        &t.id,
        MessageKind::PublicReply,
        "Which invoice?",
        "",
    )
    .await
    .unwrap();
    status(&mut agent, &t.id, TicketStatus::PendingCustomer)
        .await
        .unwrap();
    let before = targets(&mut agent, &t.id).await;
    assert!(before
        .iter()
        .all(|t| t.metric != SlaMetric::NextResponse as i32));

    // Agents do not write as the customer; a chat connector does.
    let refused = reply(&mut agent, &t.id, MessageKind::CustomerMessage, "hi", "")
        .await
        .expect_err("agent as customer");
    assert_eq!(violated_fields(&refused), ["message.kind"]);
    let mut chat = app.integration();
    let said = reply(&mut chat, &t.id, MessageKind::CustomerMessage, "INV-7", "")
        .await
        .unwrap();
    assert_eq!(said.author_id, requester.id);
    let now_open = chat
        .tickets
        .get_ticket(GetTicketRequest { id: t.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    assert_eq!(now_open.status, TicketStatus::Open as i32);
    let next = target(&targets(&mut agent, &t.id).await, SlaMetric::NextResponse);
    assert_eq!(next.state, SlaClockState::Running as i32);
    assert_eq!(next.business_seconds_remaining, 1800);

    app.clock.advance(chrono::Duration::minutes(31));
    let escalated = app
        .services
        .nats
        .events("servicedesk", SlaEscalated::TYPE, 4)
        .await;
    let actions: Vec<i32> = escalated
        .iter()
        .map(|e| {
            prost::Message::decode(e.data.as_slice())
                .map(|s: SlaEscalated| s.action)
                .unwrap()
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            EscalationAction::Notify as i32,
            EscalationAction::Reassign as i32,
            EscalationAction::RaisePriority as i32,
            EscalationAction::CreateTask as i32,
        ]
    );
    // The task escalation becomes one task in customers, for the manager,
    // about the requester.
    let tasks = eventually("the escalation's task", Duration::from_secs(30), || {
        let mut admin = app.admin();
        let contact = requester.id.clone();
        async move {
            let tasks = admin
                .activities
                .list_tasks(crm_proto::crm::customers::v1::ListTasksRequest {
                    contact_id: contact,
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner()
                .tasks;
            (!tasks.is_empty()).then_some(tasks)
        }
    })
    .await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        tasks[0].subject,
        format!("Call the customer back (ticket #{})", t.number)
    );
    assert_eq!(
        tasks[0].task.as_ref().map(|d| d.assignee_id.clone()),
        Some(manager.to_string())
    );
    let notify: SlaEscalated = prost::Message::decode(escalated[0].data.as_slice()).unwrap();
    assert_eq!(notify.notify_user_ids, vec![manager.to_string()]);
    let moved = agent
        .tickets
        .get_ticket(GetTicketRequest { id: t.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    assert_eq!(moved.group_id, second_line.to_string());
    assert_eq!(moved.priority, TicketPriority::High as i32);
    let history = agent
        .tickets
        .list_ticket_history(ListTicketHistoryRequest {
            ticket_id: t.id.clone(),
            page: None,
        })
        .await
        .unwrap()
        .into_inner()
        .changes;
    assert!(history.iter().any(|c| c.field == "priority"
        && c.actor == "system:servicedesk"
        && c.new_value == "TICKET_PRIORITY_HIGH"));
    // The group changed: no policy matches now, so the open targets go;
    // the completed first response (none was set) and nothing else fires.
    scanned(&app).await;
    assert_eq!(written(&app, SlaBreached::TYPE, &t.id).await, 1);
    app.services.stop().await;
}

#[tokio::test]
async fn calendars_and_policies_are_checked_and_kept_to_their_tenant_and_roles() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let bad = calendar(
        &mut admin,
        BusinessCalendar {
            name: "Mars".into(),
            time_zone: "Mars/Olympus".into(),
            hours: vec![WorkingHours {
                weekday: 1,
                start: "18:00".into(),
                end: "08:00".into(),
            }],
            holidays: vec!["2026-02-30".into()],
            ..Default::default()
        },
    )
    .await
    .expect_err("bad calendar");
    assert_eq!(
        violated_fields(&bad),
        [
            "calendar.time_zone",
            "calendar.hours[0].end",
            "calendar.holidays[0]"
        ]
    );
    let office = calendar(&mut admin, berlin_office("Office")).await.unwrap();
    let twice = calendar(&mut admin, berlin_office("office"))
        .await
        .expect_err("same name");
    assert_eq!(twice.code(), Code::AlreadyExists);

    let mut stranger = app.stranger();
    let foreign = calendar(&mut stranger, berlin_office("Theirs"))
        .await
        .unwrap();
    let borrowed = policy(
        &mut admin,
        SlaPolicy {
            name: "Borrowed hours".into(),
            calendar_id: foreign.id.clone(),
            resolution_minutes: 60,
            ..Default::default()
        },
    )
    .await
    .expect_err("another tenant's calendar");
    assert_eq!(violated_fields(&borrowed), ["policy.calendar_id"]);
    let bad = policy(
        &mut admin,
        SlaPolicy {
            name: "Bad".into(),
            channels: vec![42],
            first_response_minutes: -5,
            escalations: vec![Escalation {
                stage: SlaStage::Warning as i32,
                action: EscalationAction::Notify as i32,
                notify_user_ids: vec!["boss".into()],
                ..Default::default()
            }],
            ..Default::default()
        },
    )
    .await
    .expect_err("bad policy");
    assert_eq!(
        violated_fields(&bad),
        [
            "policy.channels[0]",
            "policy.first_response_minutes",
            "policy.escalations[0].notify_user_ids[0]",
        ]
    );
    let p = policy(
        &mut admin,
        SlaPolicy {
            name: "Office hours".into(),
            active: true,
            calendar_id: office.id.clone(),
            resolution_minutes: 600,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(p.warning_percent, 80);

    // Agents read policies; only managers and admins change them.
    let mut agent = app.agent(&[]);
    let listed = agent
        .slas
        .list_policies(ListPoliciesRequest { page: None })
        .await
        .unwrap()
        .into_inner()
        .policies;
    assert_eq!(listed.len(), 1);
    let denied = policy(
        &mut agent,
        SlaPolicy {
            name: "Mine".into(),
            resolution_minutes: 1,
            ..Default::default()
        },
    )
    .await
    .expect_err("agents do not set policies");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = agent
        .slas
        .update_calendar(UpdateCalendarRequest {
            calendar: Some(BusinessCalendar {
                id: office.id.clone(),
                name: "Renamed".into(),
                ..Default::default()
            }),
            update_mask: mask(&["name"]),
            expected_version: 0,
        })
        .await
        .expect_err("agents do not change calendars");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut manager = app.client(&[Role::Manager], Visibility::Tenant, &[]);
    let renamed = manager
        .slas
        .update_calendar(UpdateCalendarRequest {
            calendar: Some(BusinessCalendar {
                id: office.id.clone(),
                name: "Head office".into(),
                ..Default::default()
            }),
            update_mask: mask(&["name"]),
            expected_version: 1,
        })
        .await
        .unwrap()
        .into_inner()
        .calendar
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.hours.len()),
        ("Head office", 5)
    );
    let stale = manager
        .slas
        .update_policy(UpdatePolicyRequest {
            policy: Some(SlaPolicy {
                id: p.id.clone(),
                active: false,
                ..Default::default()
            }),
            update_mask: mask(&["active"]),
            expected_version: 7,
        })
        .await
        .expect_err("stale");
    assert_eq!(stale.code(), Code::Aborted);

    // Another tenant sees none of it, nor a ticket's targets.
    let t = create(&mut admin, subject("Ours")).await.unwrap();
    for denied in [
        stranger
            .slas
            .get_policy(GetPolicyRequest { id: p.id.clone() })
            .await
            .map(|_| ()),
        stranger
            .slas
            .get_calendar(GetCalendarRequest {
                id: office.id.clone(),
            })
            .await
            .map(|_| ()),
        stranger
            .slas
            .get_ticket_sla(GetTicketSlaRequest {
                ticket_id: t.id.clone(),
            })
            .await
            .map(|_| ()),
        stranger
            .slas
            .update_policy(UpdatePolicyRequest {
                policy: Some(SlaPolicy {
                    id: p.id.clone(),
                    active: false,
                    ..Default::default()
                }),
                update_mask: mask(&["active"]),
                expected_version: 0,
            })
            .await
            .map(|_| ()),
    ] {
        assert_eq!(denied.expect_err("another tenant").code(), Code::NotFound);
    }
    let theirs = stranger
        .slas
        .list_calendars(ListCalendarsRequest { page: None })
        .await
        .unwrap()
        .into_inner()
        .calendars;
    assert_eq!(
        theirs.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        vec![foreign.id.as_str()],
        "another tenant lists only its own calendars"
    );
    let policies = stranger
        .slas
        .list_policies(ListPoliciesRequest { page: None })
        .await
        .unwrap()
        .into_inner()
        .policies;
    assert!(policies.is_empty());
    // An agent outside the ticket's group does not see its targets either.
    let grouped = create(
        &mut admin,
        Ticket {
            group_id: Uuid::now_v7().to_string(),
            ..subject("Theirs")
        },
    )
    .await
    .unwrap();
    let hidden = agent
        .slas
        .get_ticket_sla(GetTicketSlaRequest {
            ticket_id: grouped.id.clone(),
        })
        .await
        .expect_err("another group's ticket");
    assert_eq!(hidden.code(), Code::NotFound);
    app.services.stop().await;
}

#[tokio::test]
async fn policies_match_the_accounts_tier_and_tags() {
    use crm_proto::crm::customers::v1 as people;
    use crm_proto::crm::customers::v1::field_service_client::FieldServiceClient;
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let bearer = app.services.bearer(
        app.tenant,
        Uuid::now_v7(),
        &[Role::Admin],
        Visibility::Tenant,
        &[],
    );
    FieldServiceClient::with_interceptor(app.services.channel("customers"), bearer)
        .define_field(people::DefineFieldRequest {
            field: Some(people::FieldDefinition {
                entity: people::Entity::Account as i32,
                key: "contract_tier".into(),
                label: "Contract tier".into(),
                r#type: people::FieldType::SingleSelect as i32,
                options: vec!["gold".into(), "silver".into()],
                ..Default::default()
            }),
        })
        .await
        .expect("field");
    let tier = |value: &str| {
        [(
            "contract_tier".to_owned(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue(value.into())),
            },
        )]
        .into()
    };
    let account = |name: &str, tags: &[&str], level: &str| {
        let request = people::CreateAccountRequest {
            account: Some(people::Account {
                name: name.into(),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                custom_fields: tier(level),
                ..Default::default()
            }),
            request_id: String::new(),
        };
        let mut accounts = admin.accounts.clone();
        async move {
            accounts
                .create_account(request)
                .await
                .expect("account")
                .into_inner()
                .account
                .expect("account")
        }
    };
    let gold = account("Gold Ltd", &["enterprise"], "gold").await;
    let silver = account("Silver Ltd", &[], "silver").await;

    let bad = policy(
        &mut admin,
        SlaPolicy {
            name: "Half a condition".into(),
            account_field: "contract_tier".into(),
            first_response_minutes: 30,
            ..Default::default()
        },
    )
    .await
    .expect_err("a field without values");
    assert_eq!(violated_fields(&bad), ["policy.account_field_values"]);
    let premium = policy(
        &mut admin,
        SlaPolicy {
            name: "Gold enterprise".into(),
            position: 1,
            active: true,
            account_tags: vec!["Enterprise".into()],
            account_field: "contract_tier".into(),
            account_field_values: vec!["GOLD".into()],
            first_response_minutes: 30,
            ..Default::default()
        },
    )
    .await
    .expect("policy");
    assert_eq!(premium.account_tags, ["enterprise"]);
    let standard = policy(
        &mut admin,
        SlaPolicy {
            name: "Everyone".into(),
            position: 2,
            active: true,
            first_response_minutes: 480,
            ..Default::default()
        },
    )
    .await
    .expect("policy");

    let ticket = |account: &str| Ticket {
        account_id: account.into(),
        ..subject("Our engines stopped")
    };
    let first_response =
        |targets: Vec<SlaTarget>| target(&targets, SlaMetric::FirstResponse).policy_id;
    let golden = create(&mut admin, ticket(&gold.id)).await.expect("created");
    assert_eq!(
        golden
            .account_facts
            .as_ref()
            .map(|f| f.fields["contract_tier"].as_str()),
        Some("gold")
    );
    assert_eq!(
        first_response(targets(&mut admin, &golden.id).await),
        premium.id
    );
    let plain = create(&mut admin, ticket(&silver.id))
        .await
        .expect("created");
    assert_eq!(
        first_response(targets(&mut admin, &plain.id).await),
        standard.id
    );

    // Silver goes gold (and enterprise) in customers: its open ticket
    // learns it, and its next change matches the premium policy.
    admin
        .accounts
        .update_account(people::UpdateAccountRequest {
            account: Some(people::Account {
                id: silver.id.clone(),
                tags: vec!["enterprise".into()],
                custom_fields: tier("gold"),
                ..Default::default()
            }),
            update_mask: mask(&["tags", "custom_fields"]),
            expected_version: 0,
        })
        .await
        .expect("upgraded");
    eventually(
        "the ticket learns the new tier",
        Duration::from_secs(30),
        || {
            let mut admin = app.admin();
            let id = plain.id.clone();
            async move {
                let t = get(&mut admin, &id).await.ok()?;
                let facts = t.account_facts?;
                (facts.fields.get("contract_tier").map(String::as_str) == Some("gold"))
                    .then_some(())
            }
        },
    )
    .await;
    update(
        &mut admin,
        Ticket {
            id: plain.id.clone(),
            priority: TicketPriority::High as i32,
            ..Default::default()
        },
        &["priority"],
    )
    .await
    .expect("updated");
    assert_eq!(
        first_response(targets(&mut admin, &plain.id).await),
        premium.id
    );
}
