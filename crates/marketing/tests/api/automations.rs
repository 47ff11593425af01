use std::time::Duration;

use crm_proto::crm::customers::v1::{self as people, Channel, ConsentStatus};
use crm_proto::crm::marketing::v1::*;
use kit::auth::{Role, Visibility};
use tonic::Code;
use uuid::Uuid;

use crate::harness::*;

async fn segment(client: &mut Client, name: &str, kind: people::SegmentKind) -> people::Segment {
    client
        .segments
        .create_segment(people::CreateSegmentRequest {
            segment: Some(people::Segment {
                name: name.into(),
                kind: kind as i32,
                filter: (kind == people::SegmentKind::Dynamic).then(|| people::Filter {
                    node: Some(people::filter::Node::Condition(people::Condition {
                        field: "last_name".into(),
                        op: people::Operator::Eq as i32,
                        value: Some(prost_types::Value {
                            kind: Some(prost_types::value::Kind::StringValue("Tester".into())),
                        }),
                    })),
                }),
                ..Default::default()
            }),
            contact_ids: Vec::new(),
            request_id: String::new(),
        })
        .await
        .expect("segment")
        .into_inner()
        .segment
        .expect("segment")
}

async fn create_rule(
    client: &mut Client,
    rule: AutomationRule,
) -> Result<AutomationRule, tonic::Status> {
    client
        .automations
        .create_rule(CreateRuleRequest {
            rule: Some(rule),
            request_id: String::new(),
        })
        .await
        .map(|r| r.into_inner().rule.expect("rule"))
}

/// Fires on a contact's e-mail consent being granted.
fn on_consent_granted(actions: Vec<RuleAction>) -> AutomationRule {
    AutomationRule {
        name: "Welcome the subscribed".into(),
        event_type: "crm.customers.contact.consent_changed.v1".into(),
        conditions: vec![
            RuleCondition {
                path: "status".into(),
                operator: ConditionOperator::Equals as i32,
                value: "CONSENT_STATUS_GRANTED".into(),
            },
            RuleCondition {
                path: "channel".into(),
                operator: ConditionOperator::Equals as i32,
                value: "CHANNEL_EMAIL".into(),
            },
        ],
        actions,
        ..Default::default()
    }
}

/// The rule's runs once `n` of them are over.
async fn runs_over(client: &mut Client, rule: &str, n: usize) -> Vec<RuleRun> {
    let automations = client.automations.clone();
    testkit::eventually("the rule's runs", Duration::from_secs(60), || {
        let (mut automations, rule_id) = (automations.clone(), rule.to_owned());
        async move {
            let runs = automations
                .list_rule_runs(ListRuleRunsRequest {
                    rule_id,
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner()
                .runs;
            let over = runs
                .iter()
                .filter(|r| r.status != RunStatus::Pending as i32)
                .count();
            (over >= n).then_some(runs)
        }
    })
    .await
}

#[tokio::test]
async fn a_rule_fired_by_another_services_event_runs_each_action_once_for_its_contact() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    identity(&mut admin).await;
    let template = template(&mut admin).await;
    let engaged = segment(&mut admin, "Engaged", people::SegmentKind::Static).await;
    let rule = create_rule(
        &mut admin,
        on_consent_granted(vec![
            RuleAction {
                kind: ActionKind::SendTemplate as i32,
                template_id: template.id.clone(),
                ..Default::default()
            },
            RuleAction {
                kind: ActionKind::AddToSegment as i32,
                segment_id: engaged.id.clone(),
                ..Default::default()
            },
            RuleAction {
                kind: ActionKind::CreateTask as i32,
                task_subject: "Call the new subscriber".into(),
                task_due_in_days: 2,
                ..Default::default()
            },
        ]),
    )
    .await
    .expect("rule");
    assert_eq!(rule.status, RuleStatus::Active as i32);

    // A withdrawal does not meet the conditions; the grant does.
    let ada = person(&mut admin, "Ada", "ada@example.com", "", None).await;
    set_consent(&mut admin, &ada, Channel::Email, ConsentStatus::Withdrawn).await;
    set_consent(&mut admin, &ada, Channel::Email, ConsentStatus::Granted).await;

    let runs = runs_over(&mut admin, &rule.id, 3).await;
    assert_eq!(
        runs.len(),
        3,
        "one run per action, for the grant only: {runs:?}"
    );
    for run in &runs {
        assert_eq!(
            (run.status, run.attempts, run.contact_id.as_str()),
            (RunStatus::Done as i32, 1, ada.as_str()),
            "{run:?}"
        );
        assert_eq!(run.event_type, "crm.customers.contact.consent_changed.v1");
    }
    let mail = app.smtp.wait_for(1).await.remove(0);
    assert_eq!(mail.to, vec!["ada@example.com".to_owned()]);
    assert_eq!(mail.header("Subject").as_deref(), Some("Hello Ada"));
    let members = admin
        .segments
        .list_segment_members(people::ListSegmentMembersRequest {
            segment_id: engaged.id.clone(),
            page: None,
        })
        .await
        .expect("members")
        .into_inner()
        .contacts;
    assert_eq!(
        members.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        vec![ada.as_str()]
    );
    let tasks = admin
        .activities
        .list_tasks(people::ListTasksRequest {
            contact_id: ada.clone(),
            ..Default::default()
        })
        .await
        .expect("tasks")
        .into_inner()
        .tasks;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0].subject, "Call the new subscriber");
    // The send the rule made is an ordinary send, visible with its outcome.
    let sends = admin
        .messages
        .list_sends(ListSendsRequest::default())
        .await
        .expect("sends")
        .into_inner()
        .sends;
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].contact_ids, vec![ada.clone()]);

    // Paused, it fires no more.
    admin
        .automations
        .set_rule_status(SetRuleStatusRequest {
            id: rule.id.clone(),
            status: RuleStatus::Paused as i32,
        })
        .await
        .expect("pause");
    let bob = person(
        &mut admin,
        "Bob",
        "bob@example.com",
        "",
        Some(ConsentStatus::Granted),
    )
    .await;
    // Bob's grant is applied by marketing's own replica consumer; once it
    // is, the (paused) rule's consumer has had its chance too: it reads the
    // same stream. Its runs stay three.
    app.event(
        "customers",
        "crm.customers.contact.consent_changed.v1",
        &bob,
    )
    .await;
    let again = admin
        .automations
        .list_rule_runs(ListRuleRunsRequest {
            rule_id: rule.id.clone(),
            ..Default::default()
        })
        .await
        .expect("runs")
        .into_inner()
        .runs;
    assert!(again.iter().all(|r| r.contact_id == ada), "{again:?}");
}

#[tokio::test]
async fn a_failing_action_is_visible_on_its_run() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let doomed = segment(&mut admin, "Doomed", people::SegmentKind::Static).await;
    let rule = create_rule(
        &mut admin,
        on_consent_granted(vec![RuleAction {
            kind: ActionKind::AddToSegment as i32,
            segment_id: doomed.id.clone(),
            ..Default::default()
        }]),
    )
    .await
    .expect("rule");
    admin
        .segments
        .delete_segment(people::DeleteSegmentRequest {
            id: doomed.id.clone(),
        })
        .await
        .expect("delete the segment");
    let ada = person(
        &mut admin,
        "Ada",
        "ada@example.com",
        "",
        Some(ConsentStatus::Granted),
    )
    .await;
    let runs = runs_over(&mut admin, &rule.id, 1).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (
            runs[0].status,
            runs[0].contact_id.as_str(),
            runs[0].attempts
        ),
        (RunStatus::Failed as i32, ada.as_str(), 1),
        "a refusal is not retried: {:?}",
        runs[0]
    );
    assert!(runs[0].error.contains("found nothing"), "{}", runs[0].error);
}

#[tokio::test]
async fn rules_refuse_bad_input_other_tenants_and_roles() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let dynamic = segment(&mut admin, "Testers", people::SegmentKind::Dynamic).await;
    let bad = create_rule(
        &mut admin,
        AutomationRule {
            name: "Bad".into(),
            event_type: "opportunity won".into(),
            conditions: vec![RuleCondition {
                path: "amount".into(),
                operator: ConditionOperator::GreaterThan as i32,
                value: "lots".into(),
            }],
            actions: vec![RuleAction {
                kind: ActionKind::CreateTask as i32,
                task_due_in_days: 400,
                ..Default::default()
            }],
            ..Default::default()
        },
    )
    .await
    .expect_err("bad rule");
    assert_eq!(
        violated_fields(&bad),
        vec![
            "rule.event_type",
            "rule.conditions[0].value",
            "rule.actions[0].task_subject",
            "rule.actions[0].task_due_in_days"
        ]
    );
    let targets = create_rule(
        &mut admin,
        on_consent_granted(vec![
            RuleAction {
                kind: ActionKind::SendTemplate as i32,
                template_id: Uuid::now_v7().to_string(),
                ..Default::default()
            },
            RuleAction {
                kind: ActionKind::AddToSegment as i32,
                segment_id: dynamic.id.clone(),
                ..Default::default()
            },
        ]),
    )
    .await
    .expect_err("missing template, dynamic segment");
    assert_eq!(
        violated_fields(&targets),
        vec!["rule.actions[0].template_id", "rule.actions[1].segment_id"]
    );

    let mine = segment(&mut admin, "Mine", people::SegmentKind::Static).await;
    let action = RuleAction {
        kind: ActionKind::AddToSegment as i32,
        segment_id: mine.id.clone(),
        ..Default::default()
    };
    let rule = create_rule(&mut admin, on_consent_granted(vec![action.clone()]))
        .await
        .expect("rule");

    // A rep reads rules but does not make them.
    let mut rep = app.client(&[Role::SalesRep], Visibility::Own, &[]);
    let denied = create_rule(&mut rep, on_consent_granted(vec![action.clone()]))
        .await
        .expect_err("reps do not automate");
    assert_eq!(denied.code(), Code::PermissionDenied);
    rep.automations
        .get_rule(GetRuleRequest {
            id: rule.id.clone(),
        })
        .await
        .expect("reps read rules");
    let paused = rep
        .automations
        .set_rule_status(SetRuleStatusRequest {
            id: rule.id.clone(),
            status: RuleStatus::Paused as i32,
        })
        .await
        .expect_err("reps do not pause rules");
    assert_eq!(paused.code(), Code::PermissionDenied);

    // Another tenant sees neither the rule nor its runs, and cannot aim a
    // rule of its own at this tenant's segment.
    let mut stranger = app.stranger();
    for status in [
        stranger
            .automations
            .get_rule(GetRuleRequest {
                id: rule.id.clone(),
            })
            .await
            .expect_err("another tenant's rule"),
        stranger
            .automations
            .list_rule_runs(ListRuleRunsRequest {
                rule_id: rule.id.clone(),
                ..Default::default()
            })
            .await
            .expect_err("another tenant's runs"),
        stranger
            .automations
            .set_rule_status(SetRuleStatusRequest {
                id: rule.id.clone(),
                status: RuleStatus::Paused as i32,
            })
            .await
            .expect_err("another tenant's rule"),
    ] {
        assert_eq!(status.code(), Code::NotFound);
    }
    let foreign = create_rule(&mut stranger, on_consent_granted(vec![action]))
        .await
        .expect_err("another tenant's segment");
    assert_eq!(
        violated_fields(&foreign),
        vec!["rule.actions[0].segment_id"]
    );
    let listed = stranger
        .automations
        .list_rules(ListRulesRequest::default())
        .await
        .expect("list")
        .into_inner()
        .rules;
    assert!(listed.is_empty());
}

#[tokio::test]
async fn lead_actions_assign_and_rescore_the_events_lead_in_sales_once() {
    use crm_proto::crm::sales::v1 as sales;
    use crm_proto::crm::sales::v1::lead_service_client::LeadServiceClient;
    let app = TestApp::spawn_with_sales().await;
    let mut admin = app.admin();
    let bearer = app.services.bearer(
        app.tenant,
        admin.user,
        &[Role::Admin],
        Visibility::Tenant,
        &[],
    );
    let mut leads = LeadServiceClient::with_interceptor(app.services.channel("sales"), bearer);
    leads
        .set_scoring_settings(sales::SetScoringSettingsRequest {
            settings: Some(sales::ScoringSettings {
                rules: vec![sales::ScoringRule {
                    condition: Some(sales::scoring_rule::Condition::Engagement(
                        "meeting_logged".into(),
                    )),
                    points: 15,
                    ..Default::default()
                }],
                half_life_days: 30,
            }),
        })
        .await
        .expect("scoring");
    let owner = Uuid::now_v7().to_string();
    let lead_actions = vec![
        RuleAction {
            kind: ActionKind::AssignLead as i32,
            lead_owner_id: owner.clone(),
            ..Default::default()
        },
        RuleAction {
            kind: ActionKind::RecordLeadEngagement as i32,
            engagement: "meeting_logged".into(),
            ..Default::default()
        },
    ];
    let rule = AutomationRule {
        name: "Campaign leads to Grace".into(),
        event_type: "crm.sales.lead.created.v1".into(),
        conditions: vec![RuleCondition {
            path: "lead.source".into(),
            operator: ConditionOperator::Equals as i32,
            value: "LEAD_SOURCE_CAMPAIGN".into(),
        }],
        actions: lead_actions,
        ..Default::default()
    };
    // Assigning leads is for admins and managers, as in sales.
    let denied = create_rule(&mut app.marketer(), rule.clone())
        .await
        .expect_err("a marketer does not assign leads");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let rule = create_rule(&mut admin, rule).await.expect("rule");

    let create = |last: &str, source: sales::LeadSource| sales::CreateLeadRequest {
        lead: Some(sales::Lead {
            last_name: last.into(),
            company: format!("{last} GmbH"),
            source: source as i32,
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let webinar = leads
        .create_lead(create("Hopper", sales::LeadSource::Campaign))
        .await
        .expect("lead")
        .into_inner()
        .lead
        .expect("lead");
    let other = leads
        .create_lead(create("Lovelace", sales::LeadSource::Manual))
        .await
        .expect("lead")
        .into_inner()
        .lead
        .expect("lead");
    let runs = runs_over(&mut admin, &rule.id, 2).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    for run in &runs {
        assert_eq!(
            (run.status, run.lead_id.as_str(), run.contact_id.as_str()),
            (RunStatus::Done as i32, webinar.id.as_str(), ""),
            "{run:?}"
        );
    }
    let get = |id: &str| sales::GetLeadRequest { id: id.into() };
    let assigned = leads
        .get_lead(get(&webinar.id))
        .await
        .expect("lead")
        .into_inner()
        .lead
        .expect("lead");
    assert_eq!(assigned.owner_id, owner);
    assert_eq!(
        assigned.score,
        webinar.score + 15,
        "the meeting counts once"
    );
    let untouched = leads
        .get_lead(get(&other.id))
        .await
        .expect("lead")
        .into_inner()
        .lead
        .expect("lead");
    assert_eq!(
        (untouched.owner_id, untouched.score),
        (other.owner_id, other.score)
    );
    // The run's request id makes the engagement count once even when an
    // attempt is repeated (a crash after sales answered): replay it.
    let engagement_run = runs
        .iter()
        .find(|r| r.kind == ActionKind::RecordLeadEngagement as i32)
        .expect("engagement run");
    let replay = leads
        .record_engagement(sales::RecordEngagementRequest {
            lead_id: webinar.id.clone(),
            engagement: "meeting_logged".into(),
            occurred_at: None,
            request_id: format!("automation-run:{}", engagement_run.id),
        })
        .await;
    // Same key, same lead and engagement, another time: a different request.
    assert_eq!(
        replay.expect_err("the key is the run's").code(),
        Code::AlreadyExists
    );
}

#[tokio::test]
async fn a_webhook_action_posts_the_signed_event_retries_and_never_reaches_inside() {
    let mut app = TestApp::spawn().await;
    let mut admin = app.admin();
    // Answers 503 to the first call, then 204.
    let receiver =
        testkit::http::HttpRecorder::start("/hook", |n, _| if n == 0 { 503 } else { 204 }).await;
    let url = receiver.url.clone();
    let secret = "a-webhook-secret-of-some-length";
    let hook = |url: &str| {
        on_consent_granted(vec![RuleAction {
            kind: ActionKind::CallWebhook as i32,
            webhook_url: url.into(),
            webhook_secret: secret.into(),
            ..Default::default()
        }])
    };
    // By default: https only, and never the machine, the cluster or the
    // cloud metadata service.
    for inside in [
        url.clone(),
        "https://127.0.0.1/hook".to_owned(),
        "https://169.254.169.254/latest/meta-data".to_owned(),
        "https://localhost:8443/hook".to_owned(),
    ] {
        let refused = create_rule(&mut admin, hook(&inside))
            .await
            .expect_err("an inside address");
        assert_eq!(
            violated_fields(&refused),
            vec!["rule.actions[0].webhook_url"],
            "{inside}"
        );
    }
    let short = create_rule(
        &mut admin,
        on_consent_granted(vec![RuleAction {
            kind: ActionKind::CallWebhook as i32,
            webhook_url: "https://93.184.216.34/hook".into(),
            webhook_secret: "short".into(),
            ..Default::default()
        }]),
    )
    .await
    .expect_err("a short secret");
    assert_eq!(
        violated_fields(&short),
        vec!["rule.actions[0].webhook_secret"]
    );
    // Sending data out is for admins, as the gateway's webhooks.
    let denied = create_rule(&mut app.marketer(), hook("https://93.184.216.34/hook"))
        .await
        .expect_err("a marketer does not add webhooks");
    assert_eq!(denied.code(), Code::PermissionDenied);

    // An operator allows the local network (and http, in development).
    app.restart_marketing_with(|config| {
        config.automation.egress.allowed = vec!["127.0.0.0/8".parse().expect("net")];
        config.automation.allow_insecure_webhooks = true;
    })
    .await;
    let mut admin = app.admin();
    let rule = create_rule(&mut admin, hook(&url)).await.expect("rule");
    assert!(
        rule.actions[0].webhook_secret.is_empty(),
        "the secret is never read back"
    );
    let ada = person(
        &mut admin,
        "Ada",
        "ada@example.com",
        "",
        Some(ConsentStatus::Granted),
    )
    .await;
    let runs = runs_over(&mut admin, &rule.id, 1).await;
    assert_eq!(
        (
            runs[0].status,
            runs[0].attempts,
            runs[0].contact_id.as_str()
        ),
        (RunStatus::Done as i32, 2, ada.as_str()),
        "a 503 is retried: {:?}",
        runs[0]
    );
    let received = receiver.received();
    assert_eq!(received.len(), 2, "one failed call, one delivered");
    let (signature, body) = (&received[1].header("crm-signature"), &received[1].body);
    let t: i64 = signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split(',').next())
        .and_then(|t| t.parse().ok())
        .expect("t=");
    assert_eq!(
        signature,
        &kit::egress::signature(secret, t, body.as_bytes()),
        "signed with the rule's secret"
    );
    let json: serde_json::Value = serde_json::from_str(body).expect("json");
    assert_eq!(json["rule_id"], rule.id.as_str());
    assert_eq!(json["run_id"], runs[0].id.as_str());
    assert_eq!(
        json["event"]["type"],
        "crm.customers.contact.consent_changed.v1"
    );
    assert_eq!(json["event"]["data"]["contact_id"], ada.as_str());
    assert_eq!(json["event"]["data"]["status"], "CONSENT_STATUS_GRANTED");
    assert_eq!(json["event"]["tenant_id"], app.tenant.to_string());
}

#[tokio::test]
async fn a_date_rule_greets_each_contact_on_their_birthday_once() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    identity(&mut admin).await;
    let template = template(&mut admin).await;
    let born = |first: &str, birthday: &str| people::CreateContactRequest {
        contact: Some(people::Contact {
            first_name: first.into(),
            last_name: "Tester".into(),
            birthday: birthday.into(),
            emails: vec![people::Email {
                address: format!("{}@example.com", first.to_lowercase()),
                primary: true,
                ..Default::default()
            }],
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let mut ids = Vec::new();
    for (first, birthday) in [("Ada", "1990-03-15"), ("Bob", "2000-02-29")] {
        let contact = admin
            .contacts
            .create_contact(born(first, birthday))
            .await
            .expect("contact")
            .into_inner()
            .contact
            .expect("contact");
        set_consent(
            &mut admin,
            &contact.id,
            Channel::Email,
            ConsentStatus::Granted,
        )
        .await;
        ids.push(contact.id);
    }
    // Another tenant's contact with the same birthday is not greeted.
    let mut stranger = app.stranger();
    stranger
        .contacts
        .create_contact(born("Eve", "1990-03-15"))
        .await
        .expect("stranger's contact");
    let pool = app.services.db("marketing").admin_pool().await;
    testkit::eventually("the dates are kept", Duration::from_secs(30), || {
        let pool = pool.clone();
        async move {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM contact_dates WHERE field = 'birthday'")
                    .fetch_one(&pool)
                    .await
                    .ok()?;
            (n == 3).then_some(())
        }
    })
    .await;

    let bad = create_rule(
        &mut admin,
        AutomationRule {
            name: "Bad".into(),
            event_type: "crm.customers.contact.created.v1".into(),
            date_trigger: Some(DateTrigger {
                field: "shoe_size".into(),
                days_before: 40,
                hour: 24,
            }),
            actions: vec![RuleAction {
                kind: ActionKind::AssignLead as i32,
                ..Default::default()
            }],
            ..Default::default()
        },
    )
    .await
    .expect_err("bad date rule");
    assert_eq!(
        violated_fields(&bad),
        vec![
            "rule.event_type",
            "rule.date_trigger.field",
            "rule.date_trigger.days_before",
            "rule.date_trigger.hour",
            "rule.actions[0].kind"
        ]
    );
    let rule = create_rule(
        &mut admin,
        AutomationRule {
            name: "Happy birthday".into(),
            date_trigger: Some(DateTrigger {
                field: "birthday".into(),
                days_before: 0,
                hour: 9,
            }),
            actions: vec![RuleAction {
                kind: ActionKind::SendTemplate as i32,
                template_id: template.id.clone(),
                ..Default::default()
            }],
            ..Default::default()
        },
    )
    .await
    .expect("rule");

    // The clock is moved: the rule's next day is made due now.
    let fire = |day: &'static str| {
        let (pool, rule) = (pool.clone(), rule.id.clone());
        async move {
            sqlx::query("UPDATE rule_schedule SET fire_on = $2::date, due_at = now() WHERE rule_id = $1::uuid")
                .bind(&rule)
                .bind(day)
                .execute(&pool)
                .await
                .expect("move the clock");
            testkit::eventually("the day is fired", Duration::from_secs(30), || {
                let (pool, rule) = (pool.clone(), rule.clone());
                async move {
                    let next: String = sqlx::query_scalar(
                        "SELECT fire_on::text FROM rule_schedule WHERE rule_id = $1::uuid",
                    )
                    .bind(&rule)
                    .fetch_one(&pool)
                    .await
                    .ok()?;
                    (next.as_str() > day).then_some(())
                }
            })
            .await;
        }
    };
    fire("2027-03-15").await;
    let runs = runs_over(&mut admin, &rule.id, 1).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        (
            runs[0].status,
            runs[0].contact_id.as_str(),
            runs[0].event_id.as_str(),
            runs[0].event_type.as_str()
        ),
        (
            RunStatus::Done as i32,
            ids[0].as_str(),
            format!("date:2027-03-15:{}", ids[0]).as_str(),
            "date:birthday"
        )
    );
    let mail = app.smtp.wait_for(1).await.remove(0);
    assert_eq!(mail.to, vec!["ada@example.com".to_owned()]);
    // The same day again (a second pod, a restart): nothing twice.
    fire("2027-03-15").await;
    // 28 February of a common year greets those born on the 29th.
    fire("2027-02-28").await;
    let runs = runs_over(&mut admin, &rule.id, 2).await;
    let mut contacts: Vec<&str> = runs.iter().map(|r| r.contact_id.as_str()).collect();
    contacts.sort();
    let mut expected = vec![ids[0].as_str(), ids[1].as_str()];
    expected.sort();
    assert_eq!(contacts, expected, "{runs:?}");
    let mails = app.smtp.wait_for(2).await;
    assert_eq!(mails.len(), 2, "ada once, bob once");
}

#[tokio::test]
async fn a_ticket_action_opens_one_ticket_in_the_service_desk_for_the_contact() {
    use crm_proto::crm::servicedesk::v1 as desk;
    use crm_proto::crm::servicedesk::v1::ticket_service_client::TicketServiceClient;
    let app = TestApp::spawn_with_servicedesk().await;
    let mut admin = app.admin();
    let group = Uuid::now_v7().to_string();
    let rule = create_rule(
        &mut admin,
        on_consent_granted(vec![RuleAction {
            kind: ActionKind::CreateTicket as i32,
            ticket_subject: "Welcome call".into(),
            ticket_group_id: group.clone(),
            ticket_priority: desk::TicketPriority::High as i32,
            ..Default::default()
        }]),
    )
    .await
    .expect("rule");
    let denied = create_rule(
        &mut app.marketer(),
        on_consent_granted(vec![RuleAction {
            kind: ActionKind::CreateTicket as i32,
            ticket_subject: "Welcome call".into(),
            ..Default::default()
        }]),
    )
    .await
    .expect_err("marketers do not work tickets");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let bad = create_rule(
        &mut admin,
        on_consent_granted(vec![RuleAction {
            kind: ActionKind::CreateTicket as i32,
            ticket_priority: 9,
            ..Default::default()
        }]),
    )
    .await
    .expect_err("no subject, no such priority");
    assert_eq!(
        violated_fields(&bad),
        vec![
            "rule.actions[0].ticket_subject",
            "rule.actions[0].ticket_priority"
        ]
    );
    let ada = person(
        &mut admin,
        "Ada",
        "ada@example.com",
        "",
        Some(ConsentStatus::Granted),
    )
    .await;
    let runs = runs_over(&mut admin, &rule.id, 1).await;
    assert_eq!(
        (runs[0].status, runs[0].attempts),
        (RunStatus::Done as i32, 1),
        "{:?}",
        runs[0]
    );
    let bearer = app.services.bearer(
        app.tenant,
        admin.user,
        &[Role::Admin],
        Visibility::Tenant,
        &[],
    );
    let tickets =
        TicketServiceClient::with_interceptor(app.services.channel("servicedesk"), bearer)
            .list_tickets(desk::ListTicketsRequest {
                requester_contact_id: ada.clone(),
                ..Default::default()
            })
            .await
            .expect("tickets")
            .into_inner()
            .tickets;
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    assert_eq!(
        (
            tickets[0].subject.as_str(),
            tickets[0].group_id.as_str(),
            tickets[0].priority
        ),
        (
            "Welcome call",
            group.as_str(),
            desk::TicketPriority::High as i32
        )
    );
    assert!(tickets[0].description.contains(&rule.id));
}
