use crm_proto::crm::customers::v1::*;
use customers::events::reminders::ReminderScheduler;
use kit::scan::Scan as _;
use kit::time::to_timestamp;

use crate::harness::*;

#[tokio::test]
async fn timeline_is_newest_first_and_paged() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let person = create_contact(&mut admin, contact("Ada", "L", "")).await;
    let start = chrono::Utc::now() - chrono::Duration::days(10);
    for day in 0..5 {
        admin
            .activities
            .log_activity(LogActivityRequest {
                request_id: String::new(),
                activity: Some(Activity {
                    kind: ActivityKind::Call as i32,
                    subject: format!("call {day}"),
                    contact_id: person.id.clone(),
                    direction: Direction::Outbound as i32,
                    duration_seconds: 120,
                    occurred_at: Some(to_timestamp(start + chrono::Duration::days(day))),
                    related: vec![RelatedRecord {
                        kind: "opportunity".into(),
                        id: uuid::Uuid::now_v7().to_string(),
                    }],
                    ..Default::default()
                }),
            })
            .await
            .unwrap();
    }
    let page = |token: String| {
        let mut activities = admin.activities.clone();
        let contact_id = person.id.clone();
        async move {
            activities
                .list_timeline(ListTimelineRequest {
                    contact_id,
                    account_id: String::new(),
                    page: Some(crm_proto::crm::common::v1::PageRequest {
                        page_size: 3,
                        page_token: token,
                    }),
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let first = page(String::new()).await;
    let subjects: Vec<_> = first
        .activities
        .iter()
        .map(|a| a.subject.as_str())
        .collect();
    assert_eq!(subjects, ["call 4", "call 3", "call 2"]);
    let second = page(first.page.unwrap().next_page_token).await;
    let subjects: Vec<_> = second
        .activities
        .iter()
        .map(|a| a.subject.as_str())
        .collect();
    assert_eq!(subjects, ["call 1", "call 0"]);
    assert_eq!(second.page.unwrap().next_page_token, "");

    let orphan = admin
        .activities
        .log_activity(LogActivityRequest {
            request_id: String::new(),
            activity: Some(Activity {
                kind: ActivityKind::Note as i32,
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&orphan), ["activity.contact_id"]);
}

#[tokio::test]
async fn tasks_remind_when_due_and_complete_once() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let person = create_contact(&mut admin, contact("Ada", "L", "")).await;
    let now = chrono::Utc::now();
    let task = admin
        .activities
        .log_activity(LogActivityRequest {
            request_id: String::new(),
            activity: Some(Activity {
                kind: ActivityKind::Task as i32,
                subject: "send proposal".into(),
                contact_id: person.id.clone(),
                task: Some(TaskDetails {
                    due_at: Some(to_timestamp(now + chrono::Duration::hours(1))),
                    remind_at: Some(to_timestamp(now - chrono::Duration::seconds(1))),
                    priority: Priority::High as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .activity
        .unwrap();
    assert_eq!(
        task.task.as_ref().unwrap().assignee_id,
        admin.user.to_string()
    );

    // Drive the scheduler one step (the service's own runs every 15 s).
    let database = kit::db::Database::connect(
        &app.db().config(),
        &kit::db::migrator(&customers::MIGRATIONS),
    )
    .await
    .unwrap();
    let scheduler = ReminderScheduler::new(database, kit::outbox::Outbox::new("customers"));
    assert_eq!(scheduler.try_once().await.unwrap(), 1);
    assert_eq!(
        scheduler.try_once().await.unwrap(),
        0,
        "a reminder fires once"
    );
    app.event("crm.customers.task.due.v1", &task.id).await;

    let open = admin
        .activities
        .list_tasks(ListTasksRequest {
            assignee_id: admin.user.to_string(),
            include_completed: false,
            page: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert_eq!(open.len(), 1);
    let done = admin
        .activities
        .complete_task(CompleteTaskRequest {
            id: task.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert!(done.task.unwrap().completed_at.is_some());
    app.event("crm.customers.task.completed.v1", &task.id).await;
    let open = admin
        .activities
        .list_tasks(ListTasksRequest {
            assignee_id: admin.user.to_string(),
            include_completed: false,
            page: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert!(open.is_empty());
}

#[tokio::test]
async fn activities_are_edited_with_a_mask_and_deleted() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let person = create_contact(&mut admin, contact("Ada", "L", "")).await;
    let call = admin
        .activities
        .log_activity(LogActivityRequest {
            request_id: String::new(),
            activity: Some(Activity {
                kind: ActivityKind::Call as i32,
                subject: "intro call".into(),
                contact_id: person.id.clone(),
                duration_seconds: 60,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .activity
        .unwrap();
    let edited = admin
        .activities
        .update_activity(UpdateActivityRequest {
            activity: Some(Activity {
                id: call.id.clone(),
                outcome: "interested".into(),
                subject: "ignored".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["outcome".into()],
            }),
            expected_version: 1,
        })
        .await
        .unwrap()
        .into_inner()
        .activity
        .unwrap();
    assert_eq!(
        (edited.subject.as_str(), edited.outcome.as_str()),
        ("intro call", "interested")
    );
    assert_eq!(edited.audit.as_ref().unwrap().version, 2);
    let event = app
        .event("crm.customers.activity.updated.v1", &call.id)
        .await;
    let payload: ActivityUpdated = kit::events::decode_data(&event).unwrap();
    assert_eq!(payload.changed_fields, ["outcome"]);

    let stale = admin
        .activities
        .update_activity(UpdateActivityRequest {
            activity: Some(Activity {
                id: call.id.clone(),
                ..Default::default()
            }),
            update_mask: None,
            expected_version: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), tonic::Code::Aborted);
    let negative = admin
        .activities
        .update_activity(UpdateActivityRequest {
            activity: Some(Activity {
                id: call.id.clone(),
                duration_seconds: -5,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["duration_seconds".into()],
            }),
            expected_version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&negative), ["activity.duration_seconds"]);

    admin
        .activities
        .delete_activity(DeleteActivityRequest {
            id: call.id.clone(),
        })
        .await
        .unwrap();
    let gone = admin
        .activities
        .get_activity(GetActivityRequest {
            id: call.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);
    app.event("crm.customers.activity.deleted.v1", &call.id)
        .await;
}

#[tokio::test]
async fn a_task_is_visible_to_its_assignee_but_not_to_other_reps_and_not_across_tenants() {
    use kit::auth::{Role, Visibility};
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let mut assignee = app.client(&[Role::SalesRep], Visibility::Own, &[]);
    let mut other_rep = app.client(&[Role::SalesRep], Visibility::Own, &[]);
    let mut stranger = app.client_in(
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        &[Role::Admin],
        Visibility::Tenant,
        &[],
    );
    let person = create_contact(&mut admin, contact("Grace", "H", "")).await;
    let task = admin
        .activities
        .log_activity(LogActivityRequest {
            request_id: String::new(),
            activity: Some(Activity {
                kind: ActivityKind::Task as i32,
                subject: "Call back".into(),
                contact_id: person.id.clone(),
                task: Some(TaskDetails {
                    assignee_id: assignee.user.to_string(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .activity
        .unwrap();
    let get = |id: &str| GetActivityRequest { id: id.to_owned() };

    let seen = assignee.activities.get_activity(get(&task.id)).await;
    assert_eq!(seen.unwrap().into_inner().activity.unwrap().id, task.id);
    for (who, client) in [
        ("other rep", &mut other_rep),
        ("other tenant", &mut stranger),
    ] {
        let refused = client
            .activities
            .get_activity(get(&task.id))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::NotFound, "{who}");
    }
}
