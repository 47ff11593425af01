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
