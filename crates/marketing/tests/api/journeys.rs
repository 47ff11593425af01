use std::time::Duration;

use crm_proto::crm::customers::v1::ConsentStatus;
use crm_proto::crm::marketing::v1::tracking_service_client::TrackingServiceClient;
use crm_proto::crm::marketing::v1::*;
use crm_proto::events::DomainEvent;
use kit::auth::{Role, Visibility};
use tonic::Code;
use uuid::Uuid;

use crate::harness::*;

const LINKS: &str = "http://127.0.0.1:8080";

fn step(key: &str, kind: StepKind) -> JourneyStep {
    JourneyStep {
        key: key.into(),
        kind: kind as i32,
        ..Default::default()
    }
}

/// Welcome, wait three days, then an offer to those who opened the
/// welcome; a click on any message is the goal.
fn onboarding(template: &str) -> Journey {
    Journey {
        name: "Onboarding".into(),
        goal_event_type: "crm.marketing.message.clicked.v1".into(),
        steps: vec![
            JourneyStep {
                template_id: template.into(),
                ..step("welcome", StepKind::Send)
            },
            JourneyStep {
                wait_seconds: 3 * 24 * 3600,
                ..step("pause", StepKind::Wait)
            },
            JourneyStep {
                condition: BranchCondition::Opened as i32,
                message_step: "welcome".into(),
                then_step: "offer".into(),
                ..step("opened", StepKind::Branch)
            },
            JourneyStep {
                template_id: template.into(),
                ..step("offer", StepKind::Send)
            },
        ],
        ..Default::default()
    }
}

async fn create_journey(client: &mut Client, j: Journey) -> Result<Journey, tonic::Status> {
    client
        .journeys
        .create_journey(CreateJourneyRequest {
            journey: Some(j),
            request_id: String::new(),
        })
        .await
        .map(|r| r.into_inner().journey.expect("journey"))
}

/// The journey's enrolments once `done` says they are where the test
/// wants them.
async fn enrolments_when(
    client: &Client,
    journey: &str,
    done: impl Fn(&[Enrolment]) -> bool,
) -> Vec<Enrolment> {
    let journeys = client.journeys.clone();
    testkit::eventually("the enrolments to move", Duration::from_secs(60), || {
        let (mut journeys, journey_id) = (journeys.clone(), journey.to_owned());
        let done = &done;
        async move {
            let list = journeys
                .list_enrolments(ListEnrolmentsRequest {
                    journey_id,
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner()
                .enrolments;
            done(&list).then_some(list)
        }
    })
    .await
}

fn of<'a>(list: &'a [Enrolment], contact: &str) -> &'a Enrolment {
    list.iter()
        .find(|e| e.contact_id == contact)
        .expect("enrolled")
}

fn path(e: &Enrolment) -> Vec<String> {
    e.history
        .iter()
        .map(|h| format!("{}:{}", h.step, h.outcome))
        .collect()
}

#[tokio::test]
async fn a_journey_sends_waits_branches_on_opens_and_ends_on_its_goal() {
    let mut app = TestApp::spawn().await;
    let mut admin = app.admin();
    identity(&mut admin).await;
    // With a tracked link, so a click can be the goal.
    let template = admin
        .messages
        .create_template(CreateTemplateRequest {
            template: Some(Template {
                name: "Onboarding".into(),
                subject: "Hello {{ contact.first_name }}".into(),
                html_body: "<p>Dear {{ contact.first_name }}, <a href=\"{{ link('https://acme.example/start') }}\">start here</a></p>".into(),
                text_body: "Dear {{ contact.first_name }}, start here: {{ link('https://acme.example/start') }}".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("template")
        .into_inner()
        .template
        .expect("template");
    let granted = Some(ConsentStatus::Granted);
    let ada = person(&mut admin, "Ada", "ada@example.com", "", granted).await;
    let bob = person(&mut admin, "Bob", "bob@example.com", "", granted).await;
    let carol = person(&mut admin, "Carol", "carol@example.com", "", granted).await;
    let journey = create_journey(&mut admin, onboarding(&template.id))
        .await
        .expect("journey");
    let enrol = |contacts: Vec<String>| {
        let mut journeys = admin.journeys.clone();
        let journey_id = journey.id.clone();
        async move {
            journeys
                .enrol_contacts(EnrolContactsRequest {
                    journey_id,
                    contact_ids: contacts,
                    segment_id: String::new(),
                })
                .await
                .map(|r| r.into_inner())
        }
    };
    let first = enrol(vec![ada.clone(), bob.clone(), carol.clone()])
        .await
        .expect("enrol");
    assert_eq!((first.enrolled, first.already_enrolled), (3, 0));
    let again = enrol(vec![ada.clone()]).await.expect("enrol again");
    assert_eq!(
        (again.enrolled, again.already_enrolled),
        (0, 1),
        "one active enrolment per contact"
    );

    // Everyone is welcomed and waits three days.
    let waiting = enrolments_when(&admin, &journey.id, |list| {
        list.len() == 3 && list.iter().all(|e| e.current_step == "pause")
    })
    .await;
    for e in &waiting {
        assert_eq!(path(e), vec!["welcome:sent", "pause:waiting"], "{e:?}");
        let due = e.due_at.as_ref().expect("due").seconds;
        let in_three_days = chrono::Utc::now().timestamp() + 3 * 24 * 3600;
        assert!(
            (due - in_three_days).abs() < 120,
            "{due} vs {in_three_days}"
        );
    }
    let welcomes = app.smtp.wait_for(3).await;
    let mail_to = |who: &str| {
        welcomes
            .iter()
            .find(|m| m.to.iter().any(|t| t.starts_with(who)))
            .expect("a welcome")
            .clone()
    };
    // Ada opens hers; Bob clicks in his: the goal.
    let mut tracking = TrackingServiceClient::with_interceptor(
        app.services.channel("marketing"),
        app.services.bearer(
            app.tenant,
            Uuid::now_v7(),
            &[Role::Service],
            Visibility::Tenant,
            &[],
        ),
    );
    let token = |mail: &testkit::Received, kind: &str| {
        let prefix = format!("{LINKS}/t/{kind}/");
        mail.links(&prefix)[0][prefix.len()..].to_owned()
    };
    tracking
        .record_open(RecordOpenRequest {
            token: token(&mail_to("ada@"), "o"),
        })
        .await
        .expect("ada opens");
    tracking
        .record_click(RecordClickRequest {
            token: token(&mail_to("bob@"), "c"),
        })
        .await
        .expect("bob clicks");
    enrolments_when(&admin, &journey.id, |list| {
        of(list, &bob).status == EnrolmentStatus::Exited as i32
    })
    .await;

    // Paused, the waits stay; a restart loses no timer; then three days
    // pass (the enrolments' timers are moved, not slept through).
    admin
        .journeys
        .set_journey_status(SetJourneyStatusRequest {
            id: journey.id.clone(),
            status: JourneyStatus::Paused as i32,
        })
        .await
        .expect("pause");
    app.stop_marketing().await;
    let pool = app.services.db("marketing").admin_pool().await;
    let parked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM journey_queue WHERE due_at = 'infinity'")
            .fetch_one(&pool)
            .await
            .expect("queue");
    assert_eq!(parked, 2, "ada's and carol's waits are parked");
    sqlx::query(
        "UPDATE journey_enrolments SET due_at = now() - interval '1 second' WHERE status = 1",
    )
    .execute(&pool)
    .await
    .expect("three days later");
    app.start_marketing().await;
    let mut admin = app.admin();
    admin
        .journeys
        .set_journey_status(SetJourneyStatusRequest {
            id: journey.id.clone(),
            status: JourneyStatus::Active as i32,
        })
        .await
        .expect("resume");

    let done = enrolments_when(&admin, &journey.id, |list| {
        list.iter()
            .all(|e| e.status != EnrolmentStatus::Active as i32)
    })
    .await;
    assert_eq!(
        path(of(&done, &ada)),
        vec![
            "welcome:sent",
            "pause:waiting",
            "pause:waited",
            "opened:then",
            "offer:sent"
        ]
    );
    assert_eq!(
        path(of(&done, &carol)),
        vec![
            "welcome:sent",
            "pause:waiting",
            "pause:waited",
            "opened:else"
        ]
    );
    assert_eq!(of(&done, &ada).status, EnrolmentStatus::Completed as i32);
    assert_eq!(of(&done, &carol).status, EnrolmentStatus::Completed as i32);
    let bob_enrolment = of(&done, &bob);
    assert_eq!(bob_enrolment.status, EnrolmentStatus::Exited as i32);
    assert_eq!(path(bob_enrolment), vec!["welcome:sent", "pause:waiting"]);
    let mails = app.smtp.wait_for(4).await;
    let to_ada = mails
        .iter()
        .filter(|m| m.to == vec!["ada@example.com".to_owned()])
        .count();
    assert_eq!((mails.len(), to_ada), (4, 2), "the offer went to Ada only");
    let completed = app
        .event("marketing", JourneyCompleted::TYPE, &of(&done, &ada).id)
        .await;
    assert_eq!(completed.r#type, "crm.marketing.journey.completed.v1");
}

#[tokio::test]
async fn journeys_refuse_bad_input_other_tenants_and_roles() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let template = template(&mut admin).await;
    let mut bad = onboarding(&template.id);
    bad.steps[2].then_step = "welcome".into();
    bad.steps[1].wait_seconds = 0;
    bad.goal_event_type = "won".into();
    let refused = create_journey(&mut admin, bad)
        .await
        .expect_err("bad journey");
    assert_eq!(
        violated_fields(&refused),
        vec![
            "journey.goal_event_type",
            "journey.steps[1].wait_seconds",
            "journey.steps[2].then_step"
        ]
    );
    let mut unknown = onboarding(&Uuid::now_v7().to_string());
    unknown.steps.truncate(2);
    let refused = create_journey(&mut admin, unknown)
        .await
        .expect_err("no such template");
    assert_eq!(
        violated_fields(&refused),
        vec!["journey.steps[0].template_id"]
    );
    let journey = create_journey(&mut admin, onboarding(&template.id))
        .await
        .expect("journey");

    let mut rep = app.client(&[Role::SalesRep], Visibility::Own, &[]);
    let denied = create_journey(&mut rep, onboarding(&template.id))
        .await
        .expect_err("reps do not make journeys");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let ada = create_contact(&mut admin, "Lovelace", "ada@example.com").await;
    let denied = rep
        .journeys
        .enrol_contacts(EnrolContactsRequest {
            journey_id: journey.id.clone(),
            contact_ids: vec![ada.id.clone()],
            segment_id: String::new(),
        })
        .await
        .expect_err("reps do not enrol");
    assert_eq!(denied.code(), Code::PermissionDenied);
    rep.journeys
        .get_journey(GetJourneyRequest {
            id: journey.id.clone(),
        })
        .await
        .expect("reps read journeys");
    let paused = rep
        .journeys
        .set_journey_status(SetJourneyStatusRequest {
            id: journey.id.clone(),
            status: JourneyStatus::Paused as i32,
        })
        .await
        .expect_err("reps do not pause journeys");
    assert_eq!(paused.code(), Code::PermissionDenied);

    let mut stranger = app.stranger();
    let theirs = self::template(&mut stranger).await;
    let their_journey = create_journey(&mut stranger, onboarding(&theirs.id))
        .await
        .expect("their journey");
    for status in [
        stranger
            .journeys
            .get_journey(GetJourneyRequest {
                id: journey.id.clone(),
            })
            .await
            .expect_err("another tenant's journey"),
        stranger
            .journeys
            .list_enrolments(ListEnrolmentsRequest {
                journey_id: journey.id.clone(),
                ..Default::default()
            })
            .await
            .expect_err("another tenant's enrolments"),
        stranger
            .journeys
            .enrol_contacts(EnrolContactsRequest {
                journey_id: journey.id.clone(),
                contact_ids: vec![ada.id.clone()],
                segment_id: String::new(),
            })
            .await
            .expect_err("another tenant's journey"),
        stranger
            .journeys
            .set_journey_status(SetJourneyStatusRequest {
                id: journey.id.clone(),
                status: JourneyStatus::Paused as i32,
            })
            .await
            .expect_err("another tenant's journey"),
    ] {
        assert_eq!(status.code(), Code::NotFound);
    }
    let listed = stranger
        .journeys
        .list_journeys(ListJourneysRequest::default())
        .await
        .expect("list")
        .into_inner()
        .journeys;
    assert_eq!(
        listed.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        vec![their_journey.id.as_str()],
        "only their own journey"
    );
    let foreign_contact = stranger
        .journeys
        .enrol_contacts(EnrolContactsRequest {
            journey_id: their_journey.id.clone(),
            contact_ids: vec![ada.id.clone()],
            segment_id: String::new(),
        })
        .await
        .expect_err("another tenant's contact");
    assert_eq!(violated_fields(&foreign_contact), vec!["contact_ids[0]"]);
    let both = admin
        .journeys
        .enrol_contacts(EnrolContactsRequest {
            journey_id: journey.id.clone(),
            contact_ids: vec![ada.id.clone()],
            segment_id: Uuid::now_v7().to_string(),
        })
        .await
        .expect_err("contacts and a segment");
    assert_eq!(violated_fields(&both), vec!["contact_ids"]);
}
