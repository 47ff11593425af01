//! Macros and bulk jobs.

use crm_proto::crm::servicedesk::v1::*;
use crm_proto::events::DomainEvent;
use kit::auth::{Role, Visibility};
use tonic::Code;
use uuid::Uuid;

use crate::harness::*;

fn refund_macro() -> Macro {
    Macro {
        name: "Refund sent".into(),
        reply: "Hi {{ requester.first_name }}, the refund for #{{ ticket.number }} is on its way."
            .into(),
        changes: Some(TicketChanges {
            status: TicketStatus::Solved as i32,
            add_tags: vec!["Refund".into()],
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn create_macro(
    client: &mut Client,
    m: Macro,
    request_id: &str,
) -> Result<Macro, tonic::Status> {
    client
        .macros
        .create_macro(CreateMacroRequest {
            r#macro: Some(m),
            request_id: request_id.into(),
        })
        .await
        .map(|r| r.into_inner().r#macro.expect("macro"))
}

fn apply(ticket: &str, m: &str, request_id: &str) -> ApplyMacroRequest {
    ApplyMacroRequest {
        ticket_id: ticket.into(),
        macro_id: m.into(),
        request_id: request_id.into(),
    }
}

#[tokio::test]
async fn a_macro_replies_from_its_template_and_changes_the_ticket_in_one_step() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let group = Uuid::now_v7();
    let mut agent = app.agent(&[group]);

    // Managers and admins keep macros; the template is checked up front.
    let refused = create_macro(&mut agent, refund_macro(), "")
        .await
        .expect_err("agent");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let bad = create_macro(
        &mut admin,
        Macro {
            name: "Broken".into(),
            reply: "Dear {{ requester.shoe_size }}".into(),
            changes: Some(TicketChanges {
                status: 42,
                ..Default::default()
            }),
            ..Default::default()
        },
        "",
    )
    .await
    .expect_err("invalid");
    assert_eq!(
        violated_fields(&bad),
        ["macro.reply", "macro.changes.status"]
    );
    let m = create_macro(&mut admin, refund_macro(), "m-1")
        .await
        .expect("macro");
    let again = create_macro(&mut admin, refund_macro(), "m-1")
        .await
        .expect("replayed");
    assert_eq!(again.id, m.id);
    let taken = create_macro(&mut admin, refund_macro(), "")
        .await
        .expect_err("name taken");
    assert_eq!(taken.code(), Code::AlreadyExists);

    // A requester the agent's team sees (names are read with their rights).
    let ada = admin
        .contacts
        .create_contact(crm_proto::crm::customers::v1::CreateContactRequest {
            contact: Some(crm_proto::crm::customers::v1::Contact {
                first_name: "Requester".into(),
                last_name: "Lovelace".into(),
                team_id: group.to_string(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("contact")
        .into_inner()
        .contact
        .expect("contact");
    let t = create(
        &mut admin,
        Ticket {
            subject: "Refund please".into(),
            requester_contact_id: ada.id.clone(),
            group_id: group.to_string(),
            ..Default::default()
        },
    )
    .await
    .expect("ticket");

    // The preview renders and shows the outcome, changing nothing.
    let preview = agent
        .macros
        .preview_macro(PreviewMacroRequest {
            ticket_id: t.id.clone(),
            macro_id: m.id.clone(),
        })
        .await
        .expect("preview")
        .into_inner();
    let expected = format!("Hi Requester, the refund for #{} is on its way.", t.number);
    assert_eq!(preview.reply, expected);
    assert_eq!(
        preview.ticket.map(|t| t.status),
        Some(TicketStatus::Solved as i32)
    );
    let unchanged = admin
        .tickets
        .get_ticket(GetTicketRequest { id: t.id.clone() })
        .await
        .expect("ticket")
        .into_inner()
        .ticket
        .expect("ticket");
    assert_eq!(unchanged.status, TicketStatus::New as i32);

    // Applied: the reply first, then the changes; a retry changes nothing more.
    let applied = agent
        .macros
        .apply_macro(apply(&t.id, &m.id, "apply-1"))
        .await
        .expect("applied")
        .into_inner();
    let ticket = applied.ticket.expect("ticket");
    assert_eq!(ticket.status, TicketStatus::Solved as i32);
    assert_eq!(ticket.tags, ["refund"]);
    let message = applied.message.expect("reply");
    assert_eq!(message.body, expected);
    assert_eq!(message.kind, MessageKind::PublicReply as i32);
    assert_eq!(message.author_id, agent.user.to_string());
    let replayed = agent
        .macros
        .apply_macro(apply(&t.id, &m.id, "apply-1"))
        .await
        .expect("replayed")
        .into_inner();
    assert_eq!(replayed.message.map(|m| m.id), Some(message.id));
    let messages = admin
        .tickets
        .list_messages(ListMessagesRequest {
            ticket_id: t.id.clone(),
            ..Default::default()
        })
        .await
        .expect("messages")
        .into_inner()
        .messages;
    assert_eq!(messages.len(), 1);

    // Refused: a viewer, another tenant, a macro that does not fit
    // (a closed ticket).
    let mut viewer = app.client(&[Role::Viewer], Visibility::Tenant, &[]);
    let denied = viewer
        .macros
        .apply_macro(apply(&t.id, &m.id, ""))
        .await
        .expect_err("viewer");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut stranger = app.stranger();
    for request in [
        apply(&t.id, &m.id, ""),
        apply(&Uuid::now_v7().to_string(), &m.id, ""),
    ] {
        let missing = stranger
            .macros
            .apply_macro(request)
            .await
            .expect_err("stranger");
        assert_eq!(missing.code(), Code::NotFound);
    }
    let theirs = stranger
        .macros
        .get_macro(GetMacroRequest { id: m.id.clone() })
        .await
        .expect_err("not theirs");
    assert_eq!(theirs.code(), Code::NotFound);
    status(&mut admin, &t.id, TicketStatus::Closed)
        .await
        .expect("closed");
    let closed = agent
        .macros
        .apply_macro(apply(&t.id, &m.id, ""))
        .await
        .expect_err("closed");
    assert_eq!(closed.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn a_bulk_job_changes_what_it_may_records_each_outcome_and_is_audited() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let group = Uuid::now_v7();
    let mut agent = app.agent(&[group]);
    let mut ids = Vec::new();
    for n in 0..3 {
        let t = create(
            &mut admin,
            Ticket {
                subject: format!("Outage report {n}"),
                group_id: group.to_string(),
                ..Default::default()
            },
        )
        .await
        .expect("ticket");
        ids.push(t.id);
    }
    let closed = create(
        &mut admin,
        Ticket {
            subject: "Old".into(),
            group_id: group.to_string(),
            ..Default::default()
        },
    )
    .await
    .expect("ticket");
    status(&mut admin, &closed.id, TicketStatus::Solved)
        .await
        .expect("solved");
    status(&mut admin, &closed.id, TicketStatus::Closed)
        .await
        .expect("closed");
    // Outside the agent's groups: not found to them.
    let elsewhere = create(&mut admin, subject("Other group"))
        .await
        .expect("ticket");
    let theirs = create(&mut app.stranger(), subject("Theirs"))
        .await
        .expect("ticket");

    let changes = TicketChanges {
        priority: TicketPriority::Urgent as i32,
        add_tags: vec!["outage".into()],
        ..Default::default()
    };
    let mut all = ids.clone();
    all.extend([closed.id.clone(), elsewhere.id.clone(), theirs.id.clone()]);
    let request = BulkUpdateTicketsRequest {
        ticket_ids: all.clone(),
        changes: Some(changes.clone()),
        request_id: "job-1".into(),
    };
    let job = agent
        .jobs
        .bulk_update_tickets(request.clone())
        .await
        .expect("job")
        .into_inner()
        .job
        .expect("job");
    assert_eq!((job.succeeded, job.failed), (3, 3));
    assert_eq!(job.actor, agent.user.to_string());
    let outcomes: Vec<(String, bool, String)> = job
        .results
        .iter()
        .map(|r| (r.ticket_id.clone(), r.ok, r.error.clone()))
        .collect();
    assert!(outcomes[..3].iter().all(|(_, ok, _)| *ok));
    assert!(outcomes[3].2.contains("closed"), "{outcomes:?}");
    assert_eq!(outcomes[4].2, "no such ticket");
    assert_eq!(outcomes[5].2, "no such ticket");
    for id in &ids {
        let history = admin
            .tickets
            .list_ticket_history(ListTicketHistoryRequest {
                ticket_id: id.clone(),
                page: None,
            })
            .await
            .expect("history")
            .into_inner()
            .changes;
        assert!(
            history.iter().any(|c| c.field == "priority"
                && c.new_value == "TICKET_PRIORITY_URGENT"
                && c.actor == agent.user.to_string()),
            "{history:?}"
        );
    }
    let untouched = admin
        .tickets
        .get_ticket(GetTicketRequest {
            id: elsewhere.id.clone(),
        })
        .await
        .expect("ticket")
        .into_inner()
        .ticket
        .expect("ticket");
    assert!(untouched.tags.is_empty());

    // A retry is the same job; the job is on record and published.
    let again = agent
        .jobs
        .bulk_update_tickets(request)
        .await
        .expect("replayed")
        .into_inner()
        .job
        .expect("job");
    assert_eq!(again.id, job.id);
    let event = app
        .event(
            "servicedesk",
            <TicketJobCompleted as DomainEvent>::TYPE,
            &job.id,
        )
        .await;
    let completed: TicketJobCompleted = kit::events::decode_data(&event).expect("event");
    assert_eq!((completed.succeeded, completed.failed), (3, 3));
    let listed = admin
        .jobs
        .list_ticket_jobs(ListTicketJobsRequest::default())
        .await
        .expect("jobs")
        .into_inner()
        .jobs;
    let listed: Vec<&str> = listed.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(listed, [job.id.as_str()]);
    // Another agent sees only their own jobs; another tenant none.
    let mut colleague = app.agent(&[group]);
    let hidden = colleague
        .jobs
        .get_ticket_job(GetTicketJobRequest { id: job.id.clone() })
        .await
        .expect_err("not theirs");
    assert_eq!(hidden.code(), Code::NotFound);
    let mut stranger = app.stranger();
    let none = stranger
        .jobs
        .list_ticket_jobs(ListTicketJobsRequest::default())
        .await
        .expect("jobs")
        .into_inner()
        .jobs;
    assert!(none.is_empty());

    // Refused: a viewer; bad input, each part named.
    let mut viewer = app.client(&[Role::Viewer], Visibility::Tenant, &[]);
    let denied = viewer
        .jobs
        .bulk_update_tickets(BulkUpdateTicketsRequest {
            ticket_ids: ids.clone(),
            changes: Some(changes),
            request_id: String::new(),
        })
        .await
        .expect_err("viewer");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let bad = admin
        .jobs
        .bulk_update_tickets(BulkUpdateTicketsRequest {
            ticket_ids: vec!["nope".into()],
            changes: Some(TicketChanges::default()),
            request_id: String::new(),
        })
        .await
        .expect_err("invalid");
    assert_eq!(violated_fields(&bad), ["ticket_ids[0]", "changes"]);
}
