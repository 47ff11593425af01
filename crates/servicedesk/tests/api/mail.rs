//! The e-mail channel end to end: a real SMTP client delivers to the
//! desk's listener, replies leave through a real SMTP server in the test.

use crm_proto::crm::servicedesk::v1::*;
use kit::auth::{Role, Visibility};
use lettre::address::Envelope;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tonic::Code;

use crate::harness::{update, violated_fields, TestApp, PUBLIC_URL};

/// Delivers `raw` to the desk as a mail server would; the desk's answer.
async fn deliver(app: &TestApp, from: Option<&str>, to: &str, raw: &str) -> Result<(), String> {
    let smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(app.mail_in.port())
        .build();
    let envelope = Envelope::new(
        from.map(|f| f.parse().expect("sender")),
        vec![to.parse().expect("recipient")],
    )
    .map_err(|e| e.to_string())?;
    smtp.send_raw(&envelope, raw.as_bytes())
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn message(from: &str, to: &str, subject: &str, id: &str, extra: &str, body: &str) -> String {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
         Date: Tue, 1 Dec 2026 10:00:00 +0000\r\n{extra}\r\n{body}\r\n"
    )
}

async fn tickets_of(app: &TestApp) -> Vec<Ticket> {
    app.admin()
        .tickets
        .list_tickets(ListTicketsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .tickets
}

async fn messages_of(app: &TestApp, ticket: &str) -> Vec<TicketMessage> {
    app.admin()
        .tickets
        .list_messages(ListMessagesRequest {
            ticket_id: ticket.into(),
            ..Default::default()
        })
        .await
        .expect("messages")
        .into_inner()
        .messages
}

#[tokio::test]
async fn mail_in_becomes_a_ticket_replies_go_out_threaded_and_answers_append() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let group = uuid::Uuid::now_v7().to_string();
    let support = format!("support@{}.desk.test", app.tenant.simple());
    admin
        .channels
        .create_mailbox(CreateMailboxRequest {
            mailbox: Some(Mailbox {
                address: support.to_uppercase(),
                name: "Example Support".into(),
                group_id: group.clone(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("mailbox");

    // A customer writes in: one ticket, in the mailbox's group, with the
    // sender created as a contact.
    let first = message(
        "\"Ada Lovelace\" <Ada@Example.com>",
        &support,
        "Printer on fire",
        "m1@example.com",
        "",
        "It smokes.",
    );
    deliver(&app, Some("ada@example.com"), &support, &first)
        .await
        .expect("accepted");
    let tickets = tickets_of(&app).await;
    assert_eq!(tickets.len(), 1, "one ticket");
    let ticket = &tickets[0];
    assert_eq!(ticket.subject, "Printer on fire");
    assert_eq!(ticket.description, "It smokes.");
    assert_eq!(ticket.channel, TicketChannel::Email as i32);
    assert_eq!(ticket.group_id, group);
    let requester = admin
        .contacts
        .get_contact(crm_proto::crm::customers::v1::GetContactRequest {
            id: ticket.requester_contact_id.clone(),
        })
        .await
        .expect("the sender is a contact")
        .into_inner()
        .contact
        .expect("contact");
    assert_eq!(requester.emails[0].address, "ada@example.com");
    assert_eq!(
        (requester.first_name.as_str(), requester.last_name.as_str()),
        ("Ada", "Lovelace")
    );

    // An agent's public reply is mailed to her, threaded; an internal note
    // is not.
    for (kind, body) in [
        (MessageKind::InternalNote, "Looks like the fuser."),
        (MessageKind::PublicReply, "Please unplug it."),
    ] {
        admin
            .tickets
            .add_message(AddMessageRequest {
                ticket_id: ticket.id.clone(),
                message: Some(TicketMessage {
                    kind: kind as i32,
                    body: body.into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("message");
    }
    let sent = app.mail_out.wait_for(1).await;
    assert_eq!(sent.len(), 1, "only the public reply goes out");
    let reply = &sent[0];
    assert_eq!(reply.to, ["ada@example.com"]);
    assert_eq!(
        reply.header("In-Reply-To").as_deref(),
        Some("<m1@example.com>")
    );
    assert_eq!(
        reply.header("Subject"),
        Some(format!("Re: Printer on fire [#{}]", ticket.number))
    );
    assert!(reply.header("From").is_some_and(|f| f.contains(&support)));
    assert!(reply.decoded().contains("Please unplug it."));
    let reply_id = reply.header("Message-ID").expect("a Message-ID");

    // Her answer threads by In-Reply-To; the quoted part is cut; a second
    // delivery of the same message adds nothing.
    let answer = message(
        "ada@example.com",
        &support,
        &format!("Re: Printer on fire [#{}]", ticket.number),
        "m2@example.com",
        &format!("In-Reply-To: {reply_id}\r\nReferences: <m1@example.com> {reply_id}\r\n"),
        "Done, thanks.\r\n\r\nOn Tuesday, Example Support wrote:\r\n> Please unplug it.",
    );
    for _ in 0..2 {
        deliver(&app, Some("ada@example.com"), &support, &answer)
            .await
            .expect("accepted");
    }
    assert_eq!(tickets_of(&app).await.len(), 1, "no new ticket");
    let from_her: Vec<TicketMessage> = messages_of(&app, &ticket.id)
        .await
        .into_iter()
        .filter(|m| m.kind == MessageKind::CustomerMessage as i32)
        .collect();
    assert_eq!(from_her.len(), 1, "one customer message");
    assert_eq!(from_her[0].body, "Done, thanks.");
    assert_eq!(from_her[0].author_id, ticket.requester_contact_id);
    assert_eq!(from_her[0].channel, TicketChannel::Email as i32);

    // Machines are not ticketed: an out-of-office, a bulk mail, a bounce,
    // and the desk's own address (a loop).
    let before = tickets_of(&app).await.len();
    for (envelope, raw) in [
        (
            Some("ada@example.com"),
            message(
                "ada@example.com",
                &support,
                "Out of office",
                "a1@example.com",
                "Auto-Submitted: auto-replied\r\n",
                "Back Monday.",
            ),
        ),
        (
            Some("news@example.com"),
            message(
                "news@example.com",
                &support,
                "Our newsletter",
                "a2@example.com",
                "Precedence: bulk\r\n",
                "News.",
            ),
        ),
        (
            Some("MAILER-DAEMON@example.com"),
            message(
                "mailer-daemon@example.com",
                &support,
                "Undeliverable",
                "a3@example.com",
                "",
                "Failed.",
            ),
        ),
        (
            Some(support.as_str()),
            message(
                &support,
                &support,
                "Re: Printer on fire",
                "a4@example.com",
                "",
                "Loop.",
            ),
        ),
    ] {
        deliver(&app, envelope, &support, &raw)
            .await
            .expect("accepted");
    }
    // A null reverse path (a bounce) is refused at MAIL FROM: the
    // listener's SMTP parser takes no empty path, and nobody bounces a
    // bounce, so it ends there.
    let bounce = message(
        "mailer-daemon@example.com",
        &support,
        "Undeliverable",
        "a5@example.com",
        "",
        "Failed.",
    );
    deliver(&app, None, &support, &bounce)
        .await
        .expect_err("refused");
    assert_eq!(
        tickets_of(&app).await.len(),
        before,
        "no ticket from machines"
    );
    assert_eq!(
        messages_of(&app, &ticket.id).await.len(),
        3,
        "no message from machines"
    );

    // Ada writing anew with only the token in the subject threads too
    // (her address is on the ticket's thread)...
    let by_token = message(
        "ada@example.com",
        &support,
        &format!("Printer again [#{}]", ticket.number),
        "m3@example.com",
        "",
        "It smokes again.",
    );
    deliver(&app, Some("ada@example.com"), &support, &by_token)
        .await
        .expect("accepted");
    assert_eq!(
        messages_of(&app, &ticket.id).await.len(),
        4,
        "appended by token"
    );

    // ...but a stranger quoting the token opens a ticket of their own.
    let stranger = message(
        "eve@example.net",
        &support,
        &format!("Re: Printer on fire [#{}]", ticket.number),
        "e1@example.net",
        "",
        "Let me in.",
    );
    deliver(&app, Some("eve@example.net"), &support, &stranger)
        .await
        .expect("accepted");
    assert_eq!(tickets_of(&app).await.len(), before + 1);
    assert_eq!(
        messages_of(&app, &ticket.id).await.len(),
        4,
        "Ada's ticket untouched"
    );

    // An address that is no mailbox is refused at RCPT.
    let unknown = format!("nobody@{}.desk.test", app.tenant.simple());
    let refused = deliver(&app, Some("ada@example.com"), &unknown, &first)
        .await
        .expect_err("refused");
    assert!(refused.contains("550"), "{refused}");
}

#[tokio::test]
async fn mailboxes_are_checked_owned_and_configured_by_managers() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let address = format!("help@{}.desk.test", app.tenant.simple());
    let created = admin
        .channels
        .create_mailbox(CreateMailboxRequest {
            mailbox: Some(Mailbox {
                address: address.clone(),
                ..Default::default()
            }),
            request_id: "mb-1".into(),
        })
        .await
        .expect("created")
        .into_inner()
        .mailbox
        .expect("mailbox");
    // A retry returns the first; another tenant cannot take the address.
    let replayed = admin
        .channels
        .create_mailbox(CreateMailboxRequest {
            mailbox: Some(Mailbox {
                address: address.clone(),
                ..Default::default()
            }),
            request_id: "mb-1".into(),
        })
        .await
        .expect("replayed")
        .into_inner()
        .mailbox
        .expect("mailbox");
    assert_eq!(replayed.id, created.id);
    let taken = app
        .stranger()
        .channels
        .create_mailbox(CreateMailboxRequest {
            mailbox: Some(Mailbox {
                address: address.clone(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect_err("taken");
    assert_eq!(taken.code(), Code::AlreadyExists, "{taken:?}");
    assert!(taken.message().contains("mailbox.address"), "{taken:?}");

    let bad = admin
        .channels
        .create_mailbox(CreateMailboxRequest {
            mailbox: Some(Mailbox {
                address: "not an address".into(),
                group_id: "nope".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect_err("invalid");
    assert_eq!(
        violated_fields(&bad),
        ["mailbox.address", "mailbox.group_id"]
    );

    // Agents and viewers may not configure channels.
    for roles in [[Role::SupportAgent], [Role::Viewer]] {
        let mut other = app.client(&roles, Visibility::Tenant, &[]);
        let refused = other
            .channels
            .delete_mailbox(DeleteMailboxRequest {
                id: created.id.clone(),
            })
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), Code::PermissionDenied, "{roles:?}");
    }
    // Another tenant sees none of ours and cannot delete them.
    let mut stranger = app.stranger();
    let theirs = stranger
        .channels
        .list_mailboxes(ListMailboxesRequest::default())
        .await
        .expect("list")
        .into_inner()
        .mailboxes;
    assert!(theirs.is_empty());
    let missing = stranger
        .channels
        .delete_mailbox(DeleteMailboxRequest {
            id: created.id.clone(),
        })
        .await
        .expect_err("not theirs");
    assert_eq!(missing.code(), Code::NotFound);

    // Deleted, the address takes no more mail.
    admin
        .channels
        .delete_mailbox(DeleteMailboxRequest {
            id: created.id.clone(),
        })
        .await
        .expect("deleted");
    let raw = message(
        "ada@example.com",
        &address,
        "Hello",
        "h1@example.com",
        "",
        "Hi.",
    );
    let refused = deliver(&app, Some("ada@example.com"), &address, &raw)
        .await
        .expect_err("refused");
    assert!(refused.contains("550"), "{refused}");
}

/// A mailbox and a ticket a customer opened by mail; the ticket.
async fn mailed_ticket(app: &TestApp, from: &str, id: &str) -> Ticket {
    let support = format!("survey@{}.desk.test", app.tenant.simple());
    let _ = app
        .admin()
        .channels
        .create_mailbox(CreateMailboxRequest {
            mailbox: Some(Mailbox {
                address: support.clone(),
                ..Default::default()
            }),
            request_id: "survey-box".into(),
        })
        .await
        .expect("mailbox");
    let raw = message(from, &support, "Broken login", id, "", "I cannot sign in.");
    deliver(app, Some(from), &support, &raw)
        .await
        .expect("accepted");
    tickets_of(app)
        .await
        .into_iter()
        .find(|t| t.subject == "Broken login")
        .expect("the ticket")
}

#[tokio::test]
async fn a_solved_mail_ticket_asks_its_requester_once_through_a_signed_link() {
    let app = TestApp::spawn().await;
    let ticket = mailed_ticket(&app, "grace@example.com", "s1@example.com").await;
    update(
        &mut app.admin(),
        Ticket {
            id: ticket.id.clone(),
            status: TicketStatus::Solved as i32,
            ..Default::default()
        },
        &["status"],
    )
    .await
    .expect("solved");

    // The survey comes by mail, threaded, with a link per score.
    let sent = app.mail_out.wait_for(1).await;
    let survey = &sent[0];
    assert_eq!(survey.to, ["grace@example.com"]);
    assert_eq!(
        survey.header("Subject"),
        Some(format!("How did we do? [#{}]", ticket.number))
    );
    assert_eq!(
        survey.header("In-Reply-To").as_deref(),
        Some("<s1@example.com>")
    );
    let links = survey.links(&format!("{PUBLIC_URL}/csat/"));
    assert_eq!(links.len(), 5, "a link per score");
    let token = links[0]
        .trim_start_matches(&format!("{PUBLIC_URL}/csat/"))
        .split('?')
        .next()
        .expect("token")
        .to_owned();

    // Only the gateway's public route (the service role) answers, with the
    // link: users cannot, another tenant's service cannot, forgeries cannot.
    let answer = |token: &str, score: i32| AnswerSurveyRequest {
        token: token.into(),
        score,
        comment: "Quick and kind.".into(),
    };
    let refused = app
        .admin()
        .satisfaction
        .answer_survey(answer(&token, 5))
        .await
        .expect_err("users do not answer surveys");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let stranger_service = app.client_in(
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        &[Role::Service],
        Visibility::Tenant,
        &[],
    );
    let elsewhere = stranger_service
        .satisfaction
        .clone()
        .answer_survey(answer(&token, 5))
        .await
        .expect_err("another tenant");
    assert_eq!(elsewhere.code(), Code::NotFound);
    let forged = app
        .survey_key
        .sign(&servicedesk::domain::satisfaction::Survey {
            tenant: app.tenant,
            ticket: ticket.id.parse().expect("id"),
            expires: 0,
        });
    let expired = app
        .integration()
        .satisfaction
        .answer_survey(answer(&forged, 5))
        .await
        .expect_err("expired");
    assert_eq!(expired.code(), Code::NotFound);
    let tampered = format!("{}x", &token[..token.len() - 1]);
    let tampered = app
        .integration()
        .satisfaction
        .answer_survey(answer(&tampered, 5))
        .await
        .expect_err("tampered");
    assert_eq!(tampered.code(), Code::NotFound);
    let bad = app
        .integration()
        .satisfaction
        .answer_survey(answer(&token, 6))
        .await
        .expect_err("out of range");
    assert_eq!(violated_fields(&bad), ["score"]);

    let mut gateway = app.integration();
    let described = gateway
        .satisfaction
        .describe_survey(DescribeSurveyRequest {
            token: token.clone(),
        })
        .await
        .expect("described")
        .into_inner();
    assert_eq!(
        (described.ticket_number, described.answered),
        (ticket.number, false)
    );
    let rating = gateway
        .satisfaction
        .answer_survey(answer(&token, 4))
        .await
        .expect("answered")
        .into_inner()
        .rating
        .expect("rating");
    assert_eq!((rating.score, rating.ticket_number), (4, ticket.number));
    assert_eq!(rating.requester_contact_id, ticket.requester_contact_id);
    let again = gateway
        .satisfaction
        .answer_survey(answer(&token, 1))
        .await
        .expect_err("one answer per ticket");
    assert_eq!(again.code(), Code::AlreadyExists);

    // Published without the comment; listed for the requester.
    let event = app
        .event(
            "servicedesk",
            "crm.servicedesk.csat.received.v1",
            &ticket.id,
        )
        .await;
    let received: SatisfactionReceived =
        kit::events::decode_data(&event).expect("a csat.received event");
    assert_eq!((received.score, received.commented), (4, true));
    let listed = app
        .admin()
        .satisfaction
        .list_satisfaction_ratings(ListSatisfactionRatingsRequest {
            requester_contact_id: ticket.requester_contact_id.clone(),
            ..Default::default()
        })
        .await
        .expect("listed")
        .into_inner()
        .ratings;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].comment, "Quick and kind.");
    let theirs = app
        .stranger()
        .satisfaction
        .list_satisfaction_ratings(ListSatisfactionRatingsRequest::default())
        .await
        .expect("listed")
        .into_inner()
        .ratings;
    assert!(theirs.is_empty(), "another tenant sees none");

    // Erasing the person keeps the score, not them or their words.
    app.erase(&ticket.requester_contact_id).await;
    let erased = testkit::eventually(
        "the rating is anonymised",
        std::time::Duration::from_secs(30),
        || async {
            let ratings = app
                .admin()
                .satisfaction
                .list_satisfaction_ratings(ListSatisfactionRatingsRequest::default())
                .await
                .ok()?
                .into_inner()
                .ratings;
            let first = ratings.into_iter().next()?;
            first.requester_contact_id.is_empty().then_some(first)
        },
    )
    .await;
    assert_eq!((erased.score, erased.comment.as_str()), (4, ""));
}

#[tokio::test]
async fn a_flood_of_mail_is_told_to_come_back_later_not_lost_or_ticketed() {
    let app = TestApp::spawn_with(|config| config.smtp_messages_per_minute = 3).await;
    let support = format!("flood@{}.desk.test", app.tenant.simple());
    app.admin()
        .channels
        .create_mailbox(CreateMailboxRequest {
            mailbox: Some(Mailbox {
                address: support.clone(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("mailbox");
    for n in 0..3 {
        let raw = message(
            "flood@example.com",
            &support,
            &format!("Flood {n}"),
            &format!("flood-{n}@example.com"),
            "",
            "Again.",
        );
        deliver(&app, Some("flood@example.com"), &support, &raw)
            .await
            .expect("within the budget");
    }
    let raw = message(
        "flood@example.com",
        &support,
        "Flood 3",
        "flood-3@example.com",
        "",
        "Again.",
    );
    let refused = deliver(&app, Some("flood@example.com"), &support, &raw)
        .await
        .expect_err("over the budget");
    assert!(refused.contains("451"), "a temporary refusal: {refused}");
    let subjects: Vec<String> = tickets_of(&app)
        .await
        .into_iter()
        .map(|t| t.subject)
        .collect();
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    assert!(!subjects.contains(&"Flood 3".to_owned()));
}
