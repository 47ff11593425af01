use std::time::Duration;

use crm_proto::crm::customers::v1 as people;
use crm_proto::crm::servicedesk::v1::*;
use crm_proto::events::DomainEvent;
use kit::auth::{Role, Visibility};
use tonic::Code;
use uuid::Uuid;

use crate::harness::*;

#[tokio::test]
async fn tickets_are_numbered_per_tenant_and_every_change_is_history() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let ada = contact(&mut admin, "Lovelace").await;
    let first = create(
        &mut admin,
        Ticket {
            requester_contact_id: ada.id.clone(),
            r#type: TicketType::Incident as i32,
            tags: vec!["Printer".into()],
            ..subject("  The printer is on fire ")
        },
    )
    .await
    .expect("ticket");
    assert_eq!(first.number, 1);
    assert_eq!(first.subject, "The printer is on fire");
    assert_eq!(
        (first.status, first.priority, first.channel),
        (
            TicketStatus::New as i32,
            TicketPriority::Normal as i32,
            TicketChannel::Api as i32
        )
    );
    assert_eq!(first.tags, vec!["printer"]);
    let created = app
        .event("servicedesk", TicketCreated::TYPE, &first.id)
        .await;
    assert_eq!(created.tenant_id, app.tenant.to_string());

    // Twenty at once: numbers 2 to 21, none twice, none missing.
    let creates = (0..20).map(|n| {
        let mut admin = app.admin();
        async move {
            create(&mut admin, subject(&format!("Ticket {n}")))
                .await
                .expect("ticket")
                .number
        }
    });
    let mut numbers = futures::future::join_all(creates).await;
    numbers.sort();
    assert_eq!(numbers, (2..=21).collect::<Vec<i64>>());
    // Each tenant counts its own.
    let theirs = create(&mut app.stranger(), subject("Elsewhere"))
        .await
        .expect("another tenant's ticket");
    assert_eq!(theirs.number, 1);

    let raised = update(
        &mut admin,
        Ticket {
            id: first.id.clone(),
            priority: TicketPriority::Urgent as i32,
            status: TicketStatus::Open as i32,
            ..Default::default()
        },
        &["priority", "status"],
    )
    .await
    .expect("raise");
    assert_eq!(raised.priority, TicketPriority::Urgent as i32);
    assert_eq!(raised.subject, first.subject, "unmasked fields stay");
    let changed = app
        .event("servicedesk", TicketStatusChanged::TYPE, &first.id)
        .await;
    let changed: TicketStatusChanged = prost::Message::decode(changed.data.as_slice()).unwrap();
    assert_eq!(
        (changed.previous_status, changed.status),
        (TicketStatus::New as i32, TicketStatus::Open as i32)
    );

    let solved = status(&mut admin, &first.id, TicketStatus::Solved)
        .await
        .expect("solve");
    assert!(solved.solved_at.is_some());
    app.event("servicedesk", TicketSolved::TYPE, &first.id)
        .await;
    status(&mut admin, &first.id, TicketStatus::Open)
        .await
        .expect("reopen");
    app.event("servicedesk", TicketReopened::TYPE, &first.id)
        .await;
    let early = status(&mut admin, &first.id, TicketStatus::Closed)
        .await
        .expect_err("an open ticket is solved before it is closed");
    assert_eq!(violated_fields(&early), ["ticket.status"]);
    status(&mut admin, &first.id, TicketStatus::Solved)
        .await
        .expect("solve again");
    let closed = status(&mut admin, &first.id, TicketStatus::Closed)
        .await
        .expect("close");
    let after_close = status(&mut admin, &first.id, TicketStatus::Open)
        .await
        .expect_err("closed is final");
    assert_eq!(violated_fields(&after_close), ["ticket.status"]);
    let stale = admin
        .tickets
        .update_ticket(UpdateTicketRequest {
            ticket: Some(Ticket {
                id: first.id.clone(),
                tags: vec!["late".into()],
                ..Default::default()
            }),
            update_mask: mask(&["tags"]),
            expected_version: version(&closed) - 1,
        })
        .await
        .expect_err("a stale version");
    assert_eq!(stale.code(), Code::Aborted);
    let frozen = update(
        &mut admin,
        Ticket {
            id: first.id.clone(),
            tags: vec!["late".into()],
            ..Default::default()
        },
        &["tags"],
    )
    .await
    .expect_err("a closed ticket no longer changes");
    assert_eq!(frozen.code(), Code::FailedPrecondition);

    let history = admin
        .tickets
        .list_ticket_history(ListTicketHistoryRequest {
            ticket_id: first.id.clone(),
            page: None,
        })
        .await
        .expect("history")
        .into_inner()
        .changes;
    let lines: Vec<(String, String, String)> = history
        .iter()
        .map(|c| (c.field.clone(), c.old_value.clone(), c.new_value.clone()))
        .collect();
    let line = |f: &str, a: &str, b: &str| (f.to_owned(), a.to_owned(), b.to_owned());
    assert_eq!(
        lines,
        vec![
            line("created", "", "1"),
            line(
                "priority",
                "TICKET_PRIORITY_NORMAL",
                "TICKET_PRIORITY_URGENT"
            ),
            line("status", "TICKET_STATUS_NEW", "TICKET_STATUS_OPEN"),
            line("status", "TICKET_STATUS_OPEN", "TICKET_STATUS_SOLVED"),
            line("status", "TICKET_STATUS_SOLVED", "TICKET_STATUS_OPEN"),
            line("status", "TICKET_STATUS_OPEN", "TICKET_STATUS_SOLVED"),
            line("status", "TICKET_STATUS_SOLVED", "TICKET_STATUS_CLOSED"),
        ]
    );
    assert!(history.iter().all(|c| c.actor == admin.user.to_string()));
}

fn version(t: &Ticket) -> i64 {
    t.audit.as_ref().map(|a| a.version).unwrap_or_default()
}

#[tokio::test]
async fn replies_and_notes_make_the_conversation_and_a_first_reply_opens_the_ticket() {
    let app = TestApp::spawn().await;
    let mut agent = app.client(&[Role::SupportAgent], Visibility::Tenant, &[]);
    let t = create(&mut agent, subject("Cannot log in"))
        .await
        .expect("ticket");
    let note = reply(
        &mut agent,
        &t.id,
        MessageKind::InternalNote,
        "Probably the SSO",
        "",
    )
    .await
    .expect("note");
    assert_eq!(note.author_id, agent.user.to_string());
    assert_eq!(note.channel, TicketChannel::Api as i32);
    assert_eq!(
        get(&mut agent, &t.id).await.unwrap().status,
        TicketStatus::New as i32,
        "a note is no answer"
    );
    let first = reply(
        &mut agent,
        &t.id,
        MessageKind::PublicReply,
        "Try again now\r\nplease",
        "r-1",
    )
    .await
    .expect("reply");
    assert_eq!(first.body, "Try again now\nplease");
    let again = reply(
        &mut agent,
        &t.id,
        MessageKind::PublicReply,
        "Try again now\r\nplease",
        "r-1",
    )
    .await
    .expect("the same reply again");
    assert_eq!(again.id, first.id, "a retry adds nothing");
    let opened = get(&mut agent, &t.id).await.unwrap();
    assert_eq!(opened.status, TicketStatus::Open as i32);
    assert!(opened.first_responded_at.is_some());
    let second = reply(
        &mut agent,
        &t.id,
        MessageKind::PublicReply,
        "Did it work?",
        "",
    )
    .await
    .expect("second reply");
    // Only this test's ticket has replies on this test's stream.
    let replied = app
        .services
        .nats
        .events("servicedesk", TicketReplied::TYPE, 3)
        .await;
    let firsts: Vec<(String, bool)> = replied
        .iter()
        .map(|e| {
            let r: TicketReplied = prost::Message::decode(e.data.as_slice()).unwrap();
            (r.message_id, r.first_response)
        })
        .collect();
    assert_eq!(
        firsts,
        vec![
            (note.id.clone(), false),
            (first.id.clone(), true),
            (second.id.clone(), false)
        ]
    );
    let listed = agent
        .tickets
        .list_messages(ListMessagesRequest {
            ticket_id: t.id.clone(),
            page: None,
        })
        .await
        .expect("messages")
        .into_inner()
        .messages;
    assert_eq!(
        listed.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        vec![note.id.as_str(), first.id.as_str(), second.id.as_str()]
    );

    let bad = reply(&mut agent, &t.id, MessageKind::CustomerMessage, " ", "")
        .await
        .expect_err("agents do not write as the customer, nor empty messages");
    assert_eq!(violated_fields(&bad), ["message.body", "message.kind"]);
    status(&mut agent, &t.id, TicketStatus::Solved)
        .await
        .unwrap();
    status(&mut agent, &t.id, TicketStatus::Closed)
        .await
        .unwrap();
    let late = reply(
        &mut agent,
        &t.id,
        MessageKind::PublicReply,
        "One more thing",
        "",
    )
    .await
    .expect_err("closed");
    assert_eq!(late.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn agents_see_their_groups_tickets_and_nobody_reaches_another_tenants() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let (billing, hardware) = (Uuid::now_v7(), Uuid::now_v7());
    let mut billing_agent = app.agent(&[billing]);
    let in_billing = create(
        &mut admin,
        Ticket {
            group_id: billing.to_string(),
            ..subject("Invoice wrong")
        },
    )
    .await
    .unwrap();
    let in_hardware = create(
        &mut admin,
        Ticket {
            group_id: hardware.to_string(),
            ..subject("Laptop broken")
        },
    )
    .await
    .unwrap();
    let assigned = create(
        &mut admin,
        Ticket {
            assignee_id: billing_agent.user.to_string(),
            ..subject("Call me back")
        },
    )
    .await
    .unwrap();
    app.event("servicedesk", TicketAssigned::TYPE, &assigned.id)
        .await;

    let seen: Vec<String> = billing_agent
        .tickets
        .list_tickets(ListTicketsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .tickets
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(seen, vec![assigned.id.clone(), in_billing.id.clone()]);
    let hidden = get(&mut billing_agent, &in_hardware.id)
        .await
        .expect_err("another group's ticket");
    assert_eq!(hidden.code(), Code::NotFound);
    let hidden = reply(
        &mut billing_agent,
        &in_hardware.id,
        MessageKind::PublicReply,
        "Hi",
        "",
    )
    .await
    .expect_err("another group's ticket");
    assert_eq!(hidden.code(), Code::NotFound);
    // Moved to their group, it is theirs to work.
    update(
        &mut admin,
        Ticket {
            id: in_hardware.id.clone(),
            group_id: billing.to_string(),
            ..Default::default()
        },
        &["group_id"],
    )
    .await
    .unwrap();
    reply(
        &mut billing_agent,
        &in_hardware.id,
        MessageKind::InternalNote,
        "Mine now",
        "",
    )
    .await
    .expect("in their group now");

    // A rep reads tickets but does not work them.
    let mut rep = app.client(&[Role::SalesRep], Visibility::Tenant, &[]);
    get(&mut rep, &in_billing.id).await.expect("reps read");
    let denied = create(&mut rep, subject("Rep's"))
        .await
        .expect_err("reps do not");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = status(&mut rep, &in_billing.id, TicketStatus::Solved)
        .await
        .expect_err("reps do not");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = reply(
        &mut rep,
        &in_billing.id,
        MessageKind::InternalNote,
        "Hi",
        "",
    )
    .await
    .expect_err("reps do not");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = rep
        .tickets
        .merge_tickets(MergeTicketsRequest {
            survivor_id: in_billing.id.clone(),
            merged_id: assigned.id.clone(),
        })
        .await
        .expect_err("reps do not");
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Another tenant's admin: not found, nothing listed, and this tenant's
    // contacts and tickets are not theirs to point at.
    let mut stranger = app.stranger();
    let ada = contact(&mut admin, "Lovelace").await;
    assert_eq!(
        get(&mut stranger, &in_billing.id).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        status(&mut stranger, &in_billing.id, TicketStatus::Solved)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        reply(
            &mut stranger,
            &in_billing.id,
            MessageKind::PublicReply,
            "Hi",
            ""
        )
        .await
        .unwrap_err()
        .code(),
        Code::NotFound
    );
    let messages = stranger
        .tickets
        .list_messages(ListMessagesRequest {
            ticket_id: in_billing.id.clone(),
            page: None,
        })
        .await
        .unwrap_err();
    assert_eq!(messages.code(), Code::NotFound);
    let history = stranger
        .tickets
        .list_ticket_history(ListTicketHistoryRequest {
            ticket_id: in_billing.id.clone(),
            page: None,
        })
        .await
        .unwrap_err();
    assert_eq!(history.code(), Code::NotFound);
    let listed = stranger
        .tickets
        .list_tickets(ListTicketsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .tickets;
    assert!(listed.is_empty());
    let foreign = create(
        &mut stranger,
        Ticket {
            requester_contact_id: ada.id.clone(),
            parent_ticket_id: in_billing.id.clone(),
            ..subject("Theirs")
        },
    )
    .await
    .expect_err("another tenant's parent");
    assert_eq!(violated_fields(&foreign), ["ticket.parent_ticket_id"]);
    let foreign = create(
        &mut stranger,
        Ticket {
            requester_contact_id: ada.id.clone(),
            ..subject("Theirs")
        },
    )
    .await
    .expect_err("another tenant's contact");
    assert_eq!(violated_fields(&foreign), ["ticket.requester_contact_id"]);

    let bad = create(
        &mut admin,
        Ticket {
            priority: 42,
            assignee_id: "me".into(),
            tags: vec!["a,b".into()],
            ..subject("")
        },
    )
    .await
    .expect_err("bad ticket");
    assert_eq!(
        violated_fields(&bad),
        [
            "ticket.subject",
            "ticket.priority",
            "ticket.assignee_id",
            "ticket.tags"
        ]
    );
    let unknown = update(
        &mut admin,
        Ticket {
            id: in_billing.id.clone(),
            ..Default::default()
        },
        &["number"],
    )
    .await
    .expect_err("numbers are not editable");
    assert_eq!(violated_fields(&unknown), ["update_mask.paths[0]"]);

    // A problem and its incident: the incident cannot become the
    // problem's parent.
    let incident = create(
        &mut admin,
        Ticket {
            parent_ticket_id: in_billing.id.clone(),
            ..subject("Invoice wrong again")
        },
    )
    .await
    .expect("a child ticket");
    let cycle = update(
        &mut admin,
        Ticket {
            id: in_billing.id.clone(),
            parent_ticket_id: incident.id.clone(),
            ..Default::default()
        },
        &["parent_ticket_id"],
    )
    .await
    .expect_err("a cycle");
    assert_eq!(violated_fields(&cycle), ["ticket.parent_ticket_id"]);
}

#[tokio::test]
async fn merges_move_tickets_and_erasure_leaves_them_anonymous() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let ada = contact(&mut admin, "Lovelace").await;
    let twin = contact(&mut admin, "Lovelace-Twin").await;
    let t = create(
        &mut admin,
        Ticket {
            requester_contact_id: twin.id.clone(),
            description: "My card number is 1234".into(),
            ..subject("Ada Lovelace cannot pay")
        },
    )
    .await
    .unwrap();
    admin
        .tickets
        .add_message(AddMessageRequest {
            ticket_id: t.id.clone(),
            message: Some(TicketMessage {
                kind: MessageKind::PublicReply as i32,
                body: "Dear Ada, ...".into(),
                attachments: vec![Attachment {
                    uri: "https://files.example.com/ada-invoice.pdf".into(),
                    file_name: "ada-invoice.pdf".into(),
                    content_type: "application/pdf".into(),
                    size_bytes: 1_024,
                }],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let note = reply(
        &mut admin,
        &t.id,
        MessageKind::InternalNote,
        "Check the gateway",
        "",
    )
    .await
    .unwrap();
    admin
        .contacts
        .merge_contacts(people::MergeContactsRequest {
            survivor_id: ada.id.clone(),
            merged_id: twin.id.clone(),
            ..Default::default()
        })
        .await
        .expect("merge");
    let moved = testkit::eventually(
        "the ticket follows the merge",
        Duration::from_secs(30),
        || {
            let mut admin = app.admin();
            let id = t.id.clone();
            let survivor = ada.id.clone();
            async move {
                let t = get(&mut admin, &id).await.ok()?;
                (t.requester_contact_id == survivor).then_some(t)
            }
        },
    )
    .await;
    assert_eq!(moved.number, t.number);

    app.erase(&ada.id).await;
    let erased = testkit::eventually("the ticket is anonymised", Duration::from_secs(30), || {
        let mut admin = app.admin();
        let id = t.id.clone();
        async move {
            let t = get(&mut admin, &id).await.ok()?;
            t.requester_contact_id.is_empty().then_some(t)
        }
    })
    .await;
    assert_eq!(
        (erased.subject.as_str(), erased.description.as_str()),
        ("[erased]", "")
    );
    assert_eq!(erased.number, t.number, "kept for statistics");
    let messages = admin
        .tickets
        .list_messages(ListMessagesRequest {
            ticket_id: t.id.clone(),
            page: None,
        })
        .await
        .unwrap()
        .into_inner()
        .messages;
    let bodies: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| (m.id.as_str(), m.body.as_str()))
        .collect();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0].1, "[erased]", "the reply to the person");
    assert!(messages[0].attachments.is_empty(), "and its files");
    assert_eq!(bodies[1], (note.id.as_str(), "Check the gateway"));
}

#[tokio::test]
async fn a_duplicate_merges_into_its_survivor_with_its_conversation() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let group = Uuid::now_v7();
    let survivor = create(
        &mut admin,
        Ticket {
            tags: vec!["login".into()],
            group_id: group.to_string(),
            ..subject("Cannot log in")
        },
    )
    .await
    .unwrap();
    let duplicate = create(
        &mut admin,
        Ticket {
            tags: vec!["sso".into(), "login".into()],
            ..subject("Login broken (again)")
        },
    )
    .await
    .unwrap();
    let child = create(
        &mut admin,
        Ticket {
            parent_ticket_id: duplicate.id.clone(),
            ..subject("Same for my colleague")
        },
    )
    .await
    .unwrap();
    let first = reply(
        &mut admin,
        &survivor.id,
        MessageKind::PublicReply,
        "Looking",
        "",
    )
    .await
    .unwrap();
    let moved = reply(
        &mut admin,
        &duplicate.id,
        MessageKind::InternalNote,
        "Same issue",
        "",
    )
    .await
    .unwrap();

    let merge = |survivor: &str, merged: &str| MergeTicketsRequest {
        survivor_id: survivor.into(),
        merged_id: merged.into(),
    };
    // Not into itself; not from another tenant or out of sight.
    let itself = admin
        .tickets
        .merge_tickets(merge(&survivor.id, &survivor.id))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&itself), ["merged_id"]);
    let mut stranger = app.stranger();
    let foreign = stranger
        .tickets
        .merge_tickets(merge(&survivor.id, &duplicate.id))
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);
    let mut agent = app.agent(&[group]);
    let hidden = agent
        .tickets
        .merge_tickets(merge(&survivor.id, &duplicate.id))
        .await
        .unwrap_err();
    assert_eq!(
        hidden.code(),
        Code::NotFound,
        "the duplicate is not in their group"
    );

    let merged = admin
        .tickets
        .merge_tickets(merge(&survivor.id, &duplicate.id))
        .await
        .expect("merge")
        .into_inner()
        .ticket
        .expect("survivor");
    assert_eq!(merged.tags, vec!["login", "sso"]);
    let gone = get(&mut admin, &duplicate.id).await.unwrap();
    assert_eq!(
        (gone.status, gone.merged_into_id.as_str()),
        (TicketStatus::Closed as i32, survivor.id.as_str())
    );
    assert_eq!(
        get(&mut admin, &child.id).await.unwrap().parent_ticket_id,
        survivor.id
    );
    let messages: Vec<String> = admin
        .tickets
        .list_messages(ListMessagesRequest {
            ticket_id: survivor.id.clone(),
            page: None,
        })
        .await
        .unwrap()
        .into_inner()
        .messages
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(messages, vec![first.id.clone(), moved.id.clone()]);
    let event = app
        .event("servicedesk", TicketMerged::TYPE, &survivor.id)
        .await;
    let event: TicketMerged = prost::Message::decode(event.data.as_slice()).unwrap();
    assert_eq!(event.merged_id, duplicate.id);
    let history = |id: &str| {
        let mut admin = app.admin();
        let id = id.to_owned();
        async move {
            admin
                .tickets
                .list_ticket_history(ListTicketHistoryRequest {
                    ticket_id: id,
                    page: None,
                })
                .await
                .unwrap()
                .into_inner()
                .changes
                .into_iter()
                .map(|c| (c.field, c.new_value))
                .collect::<Vec<_>>()
        }
    };
    assert!(history(&survivor.id)
        .await
        .contains(&("merged".to_owned(), duplicate.number.to_string())));
    assert!(history(&duplicate.id)
        .await
        .contains(&("merged_into".to_owned(), survivor.number.to_string())));
    // A closed ticket merges no more.
    let again = admin
        .tickets
        .merge_tickets(merge(&survivor.id, &duplicate.id))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn tickets_link_both_ways_and_only_to_what_one_sees() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let group = Uuid::now_v7();
    let problem = create(
        &mut admin,
        Ticket {
            r#type: TicketType::Problem as i32,
            group_id: group.to_string(),
            ..subject("Mail server down")
        },
    )
    .await
    .unwrap();
    let incident = create(
        &mut admin,
        Ticket {
            group_id: group.to_string(),
            ..subject("Cannot send e-mail")
        },
    )
    .await
    .unwrap();
    let hidden = create(&mut admin, subject("Someone else's")).await.unwrap();
    let link = admin
        .tickets
        .link_tickets(LinkTicketsRequest {
            ticket_id: incident.id.clone(),
            other_ticket_id: problem.id.clone(),
            kind: LinkKind::CausedBy as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .link
        .unwrap();
    assert_eq!(
        (link.other_ticket_number, link.kind),
        (problem.number, LinkKind::CausedBy as i32)
    );
    admin
        .tickets
        .link_tickets(LinkTicketsRequest {
            ticket_id: incident.id.clone(),
            other_ticket_id: hidden.id.clone(),
            kind: 0,
        })
        .await
        .unwrap();
    // From the problem's side the same link reads the other way.
    let mut agent = app.agent(&[group]);
    let seen = |links: Vec<TicketLink>| -> Vec<(String, i32)> {
        links
            .into_iter()
            .map(|l| (l.other_ticket_id, l.kind))
            .collect()
    };
    let from_problem = agent
        .tickets
        .list_ticket_links(ListTicketLinksRequest {
            ticket_id: problem.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .links;
    assert_eq!(
        seen(from_problem),
        vec![(incident.id.clone(), LinkKind::Causes as i32)]
    );
    // The agent does not see the ticket outside their group, nor its link.
    let from_incident = agent
        .tickets
        .list_ticket_links(ListTicketLinksRequest {
            ticket_id: incident.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .links;
    assert_eq!(
        seen(from_incident),
        vec![(problem.id.clone(), LinkKind::CausedBy as i32)]
    );
    let refused = agent
        .tickets
        .link_tickets(LinkTicketsRequest {
            ticket_id: problem.id.clone(),
            other_ticket_id: hidden.id.clone(),
            kind: 0,
        })
        .await
        .expect_err("a ticket the agent does not see");
    assert_eq!(violated_fields(&refused), ["other_ticket_id"]);
    let itself = agent
        .tickets
        .link_tickets(LinkTicketsRequest {
            ticket_id: problem.id.clone(),
            other_ticket_id: problem.id.clone(),
            kind: 9,
        })
        .await
        .expect_err("itself, unknown kind");
    assert_eq!(violated_fields(&itself), ["kind", "other_ticket_id"]);
    // Another tenant reaches none of it.
    let mut stranger = app.stranger();
    let far = stranger
        .tickets
        .unlink_tickets(UnlinkTicketsRequest {
            ticket_id: incident.id.clone(),
            other_ticket_id: problem.id.clone(),
        })
        .await
        .expect_err("another tenant");
    assert_eq!(far.code(), Code::NotFound);
    agent
        .tickets
        .unlink_tickets(UnlinkTicketsRequest {
            ticket_id: problem.id.clone(),
            other_ticket_id: incident.id.clone(),
        })
        .await
        .unwrap();
    let history = agent
        .tickets
        .list_ticket_history(ListTicketHistoryRequest {
            ticket_id: problem.id.clone(),
            page: None,
        })
        .await
        .unwrap()
        .into_inner()
        .changes;
    let links: Vec<(&str, &str)> = history
        .iter()
        .filter(|c| c.field == "link")
        .map(|c| (c.old_value.as_str(), c.new_value.as_str()))
        .collect();
    let number = format!("#{}", incident.number);
    assert_eq!(
        links,
        vec![
            ("", format!("{number} causes").as_str()),
            (number.as_str(), "")
        ]
    );
    app.services.stop().await;
}

#[tokio::test]
async fn phone_calls_are_logged_as_messages_with_direction_outcome_and_length() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let t = create(&mut admin, subject("Call me back"))
        .await
        .expect("ticket");
    let call = |direction: CallDirection, outcome: CallOutcome, seconds: i32| TicketMessage {
        kind: MessageKind::PublicReply as i32,
        body: "Walked them through the reset.".into(),
        call: Some(CallDetails {
            direction: direction as i32,
            outcome: outcome as i32,
            duration_seconds: seconds,
        }),
        ..Default::default()
    };
    let logged = admin
        .tickets
        .add_message(AddMessageRequest {
            ticket_id: t.id.clone(),
            message: Some(call(CallDirection::Outbound, CallOutcome::Answered, 312)),
            request_id: String::new(),
        })
        .await
        .expect("logged")
        .into_inner()
        .message
        .expect("message");
    assert_eq!(logged.channel, TicketChannel::Phone as i32);
    assert_eq!(
        logged.call,
        Some(CallDetails {
            direction: CallDirection::Outbound as i32,
            outcome: CallOutcome::Answered as i32,
            duration_seconds: 312,
        })
    );
    // A call where the agent spoke with the requester is a response.
    let after = get(&mut admin, &t.id).await.expect("ticket");
    assert!(after.first_responded_at.is_some());
    let listed = admin
        .tickets
        .list_messages(ListMessagesRequest {
            ticket_id: t.id.clone(),
            ..Default::default()
        })
        .await
        .expect("messages")
        .into_inner()
        .messages;
    assert_eq!(listed[0].call, logged.call);
    let event = app
        .event("servicedesk", <TicketReplied as DomainEvent>::TYPE, &t.id)
        .await;
    let replied: TicketReplied = kit::events::decode_data(&event).expect("replied");
    assert_eq!(replied.call.map(|c| c.duration_seconds), Some(312));

    // Each bad part is named; a call on another channel is refused.
    let mut bad = call(CallDirection::Unspecified, CallOutcome::Unspecified, 90_000);
    bad.channel = TicketChannel::Email as i32;
    let refused = admin
        .tickets
        .add_message(AddMessageRequest {
            ticket_id: t.id.clone(),
            message: Some(bad),
            request_id: String::new(),
        })
        .await
        .expect_err("refused");
    assert_eq!(
        violated_fields(&refused),
        [
            "message.call.direction",
            "message.call.outcome",
            "message.call.duration_seconds",
            "message.channel"
        ]
    );
}

#[tokio::test]
async fn tickets_carry_custom_fields_of_the_shared_definition_model() {
    use crm_proto::crm::customers::v1::FieldType;
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let define =
        |key: &str, r#type: FieldType, required: bool, options: &[&str]| DefineTicketFieldRequest {
            field: Some(TicketField {
                key: key.into(),
                label: key.replace('_', " "),
                r#type: r#type as i32,
                required,
                options: options.iter().map(|o| o.to_string()).collect(),
            }),
        };
    let bad = admin
        .tickets
        .define_ticket_field(define(
            "Product Version",
            FieldType::SingleSelect,
            false,
            &[],
        ))
        .await
        .expect_err("bad definition");
    assert_eq!(violated_fields(&bad), ["field.key", "field.options"]);
    let refused = app
        .agent(&[])
        .tickets
        .define_ticket_field(define("severity", FieldType::Number, false, &[]))
        .await
        .expect_err("agents do not define fields");
    assert_eq!(refused.code(), Code::PermissionDenied);
    for request in [
        define(
            "product_version",
            FieldType::SingleSelect,
            true,
            &["1.0", "2.0"],
        ),
        define("refund", FieldType::Decimal, false, &[]),
    ] {
        admin
            .tickets
            .define_ticket_field(request)
            .await
            .expect("defined");
    }
    let value = |s: &str| prost_types::Value {
        kind: Some(prost_types::value::Kind::StringValue(s.into())),
    };

    // People fill required fields; values are checked and normalised.
    let missing = create(&mut admin, subject("Crash on start"))
        .await
        .expect_err("required field");
    assert_eq!(
        violated_fields(&missing),
        ["ticket.custom_fields.product_version"]
    );
    let wrong = create(
        &mut admin,
        Ticket {
            custom_fields: [
                ("product_version".to_owned(), value("3.0")),
                ("refund".to_owned(), value("ten")),
                ("colour".to_owned(), value("red")),
            ]
            .into(),
            ..subject("Crash on start")
        },
    )
    .await
    .expect_err("bad values");
    assert_eq!(
        violated_fields(&wrong),
        [
            "ticket.custom_fields.colour",
            "ticket.custom_fields.product_version",
            "ticket.custom_fields.refund"
        ]
    );
    let t = create(
        &mut admin,
        Ticket {
            custom_fields: [
                ("product_version".to_owned(), value("2.0")),
                ("refund".to_owned(), value("12.50")),
            ]
            .into(),
            ..subject("Crash on start")
        },
    )
    .await
    .expect("created");
    assert_eq!(t.custom_fields["refund"], value("12.5"));

    // The desk's own intake (a connector: the service role) need not fill
    // required fields.
    let mut integration = app.integration();
    let requester = contact(&mut admin, "Lovelace").await;
    create(
        &mut integration,
        Ticket {
            requester_contact_id: requester.id,
            ..subject("From the chat")
        },
    )
    .await
    .expect("a machine's ticket");

    // Updates replace the map; history records it; other tenants see no
    // definitions.
    let updated = update(
        &mut admin,
        Ticket {
            id: t.id.clone(),
            custom_fields: [("product_version".to_owned(), value("1.0"))].into(),
            ..Default::default()
        },
        &["custom_fields"],
    )
    .await
    .expect("updated");
    assert_eq!(updated.custom_fields.len(), 1);
    let history = admin
        .tickets
        .list_ticket_history(ListTicketHistoryRequest {
            ticket_id: t.id.clone(),
            page: None,
        })
        .await
        .expect("history")
        .into_inner()
        .changes;
    assert!(history
        .iter()
        .any(|c| c.field == "custom_fields" && c.new_value.contains("1.0")));
    let theirs = app
        .stranger()
        .tickets
        .list_ticket_fields(ListTicketFieldsRequest {})
        .await
        .expect("listed")
        .into_inner()
        .fields;
    assert!(theirs.is_empty());
    let gone = app
        .stranger()
        .tickets
        .delete_ticket_field(DeleteTicketFieldRequest {
            key: "refund".into(),
        })
        .await
        .expect_err("another tenant's field");
    assert_eq!(gone.code(), Code::NotFound);
}
