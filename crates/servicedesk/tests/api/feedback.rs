//! Complaint handling: root causes kept by managers, required to solve a
//! complaint, carried by `ticket.solved` for reporting.

use crm_proto::crm::servicedesk::v1::*;
use tonic::Code;

use crate::harness::{create, subject, update, violated_fields, Client, TestApp};

async fn root_cause(client: &mut Client, name: &str) -> Result<RootCause, tonic::Status> {
    client
        .feedback
        .create_root_cause(CreateRootCauseRequest {
            root_cause: Some(RootCause {
                name: name.into(),
                description: "Parcels arrive after the promised day".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .map(|r| r.into_inner().root_cause.expect("root cause"))
}

#[tokio::test]
async fn a_complaint_is_solved_with_its_root_cause_which_reporting_receives() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let late = root_cause(&mut admin, "Late delivery")
        .await
        .expect("created");
    let taken = root_cause(&mut admin, " late DELIVERY ")
        .await
        .expect_err("a second of the name");
    assert_eq!(taken.code(), Code::AlreadyExists);
    let blank = root_cause(&mut admin, " ").await.expect_err("no name");
    assert_eq!(violated_fields(&blank), ["root_cause.name"]);
    let refused = root_cause(&mut app.agent(&[]), "Mine")
        .await
        .expect_err("agents do not keep the list");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let mut stranger = app.stranger();
    let theirs = root_cause(&mut stranger, "Theirs").await.expect("created");
    assert!(stranger
        .feedback
        .list_root_causes(ListRootCausesRequest::default())
        .await
        .expect("listed")
        .into_inner()
        .root_causes
        .iter()
        .all(|c| c.id != late.id));
    let listed = app
        .agent(&[])
        .feedback
        .list_root_causes(ListRootCausesRequest::default())
        .await
        .expect("agents read it")
        .into_inner()
        .root_causes;
    assert_eq!(listed.len(), 1);

    let complaint = create(
        &mut admin,
        Ticket {
            r#type: TicketType::Complaint as i32,
            ..subject("My parcel is a week late")
        },
    )
    .await
    .expect("created");
    let solve = |root_cause_id: &str| Ticket {
        id: complaint.id.clone(),
        status: TicketStatus::Solved as i32,
        root_cause_id: root_cause_id.into(),
        ..Default::default()
    };
    let without = update(&mut admin, solve(""), &["status", "root_cause_id"])
        .await
        .expect_err("no root cause");
    assert_eq!(violated_fields(&without), ["ticket.root_cause_id"]);
    for unknown in [theirs.id.clone(), uuid::Uuid::now_v7().to_string()] {
        let refused = update(&mut admin, solve(&unknown), &["status", "root_cause_id"])
            .await
            .expect_err("not this tenant's root cause");
        assert_eq!(violated_fields(&refused), ["ticket.root_cause_id"]);
    }
    // Bulk solving says why a complaint stays open.
    let job = admin
        .jobs
        .bulk_update_tickets(BulkUpdateTicketsRequest {
            ticket_ids: vec![complaint.id.clone()],
            changes: Some(TicketChanges {
                status: TicketStatus::Solved as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("job")
        .into_inner()
        .job
        .expect("job");
    assert_eq!(job.failed, 1);
    assert!(
        job.results[0].error.contains("root cause"),
        "{:?}",
        job.results
    );

    let solved = update(&mut admin, solve(&late.id), &["status", "root_cause_id"])
        .await
        .expect("solved");
    assert_eq!(solved.root_cause_id, late.id);
    let event = app
        .event(
            "servicedesk",
            "crm.servicedesk.ticket.solved.v1",
            &complaint.id,
        )
        .await;
    let published: TicketSolved = kit::events::decode_data(&event).expect("ticket.solved");
    assert_eq!(published.ticket.expect("ticket").root_cause_id, late.id);
    let event = app
        .event(
            "servicedesk",
            "crm.servicedesk.root_cause.created.v1",
            &late.id,
        )
        .await;
    let created: RootCauseCreated = kit::events::decode_data(&event).expect("root_cause.created");
    assert_eq!(
        created.root_cause.expect("root cause").name,
        "Late delivery"
    );

    // Other tickets may be solved without one; a root cause in use stays.
    let question = create(&mut admin, subject("How do I track it?"))
        .await
        .expect("created");
    update(
        &mut admin,
        Ticket {
            id: question.id.clone(),
            status: TicketStatus::Solved as i32,
            ..Default::default()
        },
        &["status"],
    )
    .await
    .expect("solved without a root cause");
    let kept = admin
        .feedback
        .delete_root_cause(DeleteRootCauseRequest {
            id: late.id.clone(),
        })
        .await
        .expect_err("in use");
    assert_eq!(kept.code(), Code::FailedPrecondition);
    let elsewhere = stranger
        .feedback
        .delete_root_cause(DeleteRootCauseRequest {
            id: late.id.clone(),
        })
        .await
        .expect_err("another tenant's");
    assert_eq!(elsewhere.code(), Code::NotFound);
    let unused = root_cause(&mut admin, "Wrong item").await.expect("created");
    admin
        .feedback
        .delete_root_cause(DeleteRootCauseRequest { id: unused.id })
        .await
        .expect("deleted");
}
