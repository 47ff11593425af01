//! Support forms and the customer portal: a person opens a ticket on a
//! form, gets their magic link by mail, and with it sees and answers their
//! own tickets and nobody else's; the public knowledge base is all the
//! portal shows of articles.

use crm_proto::crm::servicedesk::v1::*;
use kit::auth::{Role, Visibility};
use tonic::Code;

use crate::harness::{reply, update, violated_fields, Client, TestApp, PUBLIC_URL};

/// A mailbox and a support form sending from it; the form.
async fn support_form(app: &TestApp) -> SupportForm {
    let mut admin = app.admin();
    let mailbox = admin
        .channels
        .create_mailbox(CreateMailboxRequest {
            mailbox: Some(Mailbox {
                address: format!("help@{}.desk.test", app.tenant.simple()),
                name: "Example Help".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("mailbox")
        .into_inner()
        .mailbox
        .expect("mailbox");
    admin
        .channels
        .create_support_form(CreateSupportFormRequest {
            form: Some(SupportForm {
                name: "Contact support".into(),
                mailbox_id: mailbox.id,
                ..Default::default()
            }),
            request_id: "form-1".into(),
        })
        .await
        .expect("form")
        .into_inner()
        .form
        .expect("form")
}

fn submission(
    form: &SupportForm,
    email: &str,
    subject: &str,
    request_id: &str,
) -> SubmitSupportFormRequest {
    SubmitSupportFormRequest {
        form_key: form.key.clone(),
        name: "Ada Lovelace".into(),
        email: email.into(),
        subject: subject.into(),
        description: "The engine stopped.".into(),
        request_id: request_id.into(),
    }
}

/// The portal token in the `n`th mail sent (0-based), once it is sent.
async fn mailed_token(app: &TestApp, n: usize) -> String {
    let sent = app.mail_out.wait_for(n + 1).await;
    let prefix = format!("{PUBLIC_URL}/portal/");
    let links = sent[n].links(&prefix);
    assert_eq!(links.len(), 1, "one portal link in {}", sent[n].decoded());
    links[0].trim_start_matches(&prefix).to_owned()
}

async fn portal_ticket(
    gateway: &mut Client,
    token: &str,
    number: i64,
) -> Result<GetPortalTicketResponse, tonic::Status> {
    gateway
        .portal
        .get_portal_ticket(GetPortalTicketRequest {
            token: token.into(),
            number,
        })
        .await
        .map(|r| r.into_inner())
}

async fn portal_reply(
    gateway: &mut Client,
    token: &str,
    number: i64,
    body: &str,
) -> Result<(), tonic::Status> {
    gateway
        .portal
        .reply_on_portal(ReplyOnPortalRequest {
            token: token.into(),
            number,
            body: body.into(),
            request_id: String::new(),
        })
        .await
        .map(|_| ())
}

#[tokio::test]
async fn a_form_ticket_mails_a_magic_link_that_shows_its_requester_their_own_tickets_only() {
    let app = TestApp::spawn().await;
    let form = support_form(&app).await;
    assert_eq!(
        form.key,
        format!(
            "{}.{}",
            app.tenant.simple(),
            uuid::Uuid::parse_str(&form.id).expect("id").simple()
        )
    );
    let mut gateway = app.integration();

    // Ada opens a ticket on the form; a repeated post is the same ticket.
    let first = gateway
        .portal
        .submit_support_form(submission(
            &form,
            "Ada@Example.com",
            "Engine stopped",
            "post-1",
        ))
        .await
        .expect("submitted")
        .into_inner()
        .ticket_number;
    let again = gateway
        .portal
        .submit_support_form(submission(
            &form,
            "ada@example.com",
            "Engine stopped",
            "post-1",
        ))
        .await
        .expect("submitted again")
        .into_inner()
        .ticket_number;
    assert_eq!(first, again, "one ticket for a repeated post");
    let ticket = app
        .admin()
        .tickets
        .list_tickets(ListTicketsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .tickets
        .into_iter()
        .find(|t| t.number == first)
        .expect("the ticket");
    assert_eq!(ticket.channel, TicketChannel::WebForm as i32);
    assert!(
        !ticket.requester_contact_id.is_empty(),
        "the requester is a contact"
    );

    // The acknowledgement comes from the form's mailbox with the link.
    let ada = mailed_token(&app, 0).await;
    let sent = app.mail_out.received();
    assert_eq!(sent[0].to, ["ada@example.com"]);
    assert!(sent[0]
        .header("From")
        .unwrap_or_default()
        .contains(&format!("help@{}.desk.test", app.tenant.simple())));
    assert_eq!(
        sent[0].header("Subject"),
        Some(format!("Re: Engine stopped [#{first}]"))
    );
    let acknowledgement_id = sent[0].header("Message-ID").expect("a Message-ID");

    // Grace opens hers; her link is hers.
    let second = gateway
        .portal
        .submit_support_form(SubmitSupportFormRequest {
            name: "Grace Hopper".into(),
            ..submission(&form, "grace@example.com", "A moth", "post-2")
        })
        .await
        .expect("submitted")
        .into_inner()
        .ticket_number;
    let grace = mailed_token(&app, 1).await;
    assert_eq!(app.mail_out.received()[1].to, ["grace@example.com"]);

    // Each sees their own ticket, and the other's is not found.
    let listed = gateway
        .portal
        .list_portal_tickets(ListPortalTicketsRequest {
            token: ada.clone(),
            page: None,
        })
        .await
        .expect("listed")
        .into_inner()
        .tickets;
    assert_eq!(listed.iter().map(|t| t.number).collect::<Vec<_>>(), [first]);
    assert_eq!(listed[0].subject, "Engine stopped");
    let refused = portal_ticket(&mut gateway, &ada, second)
        .await
        .expect_err("Grace's ticket");
    assert_eq!(refused.code(), Code::NotFound);
    let refused = portal_reply(&mut gateway, &ada, second, "me too")
        .await
        .expect_err("Grace's ticket");
    assert_eq!(refused.code(), Code::NotFound);
    assert!(portal_ticket(&mut gateway, &grace, second).await.is_ok());

    // Agents answer: the note stays among them, the reply is shown and
    // mailed in the acknowledgement's thread.
    let mut admin = app.admin();
    reply(
        &mut admin,
        &ticket.id,
        MessageKind::InternalNote,
        "Customer seems upset",
        "",
    )
    .await
    .expect("note");
    let manual = Attachment {
        uri: "https://files.example.com/manual.pdf".into(),
        file_name: "manual.pdf".into(),
        content_type: "application/pdf".into(),
        size_bytes: 48_000,
    };
    admin
        .tickets
        .add_message(AddMessageRequest {
            ticket_id: ticket.id.clone(),
            message: Some(TicketMessage {
                kind: MessageKind::PublicReply as i32,
                body: "Please restart it.".into(),
                attachments: vec![manual.clone()],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("reply");
    let shown = portal_ticket(&mut gateway, &ada, first)
        .await
        .expect("shown");
    let bodies: Vec<(bool, &str)> = shown
        .messages
        .iter()
        .map(|m| (m.from_requester, m.body.as_str()))
        .collect();
    assert_eq!(
        bodies,
        [(true, "The engine stopped."), (false, "Please restart it.")]
    );
    assert_eq!(shown.messages[1].attachments, [manual]);
    let sent = app.mail_out.wait_for(3).await;
    assert_eq!(sent[2].to, ["ada@example.com"]);
    assert_eq!(sent[2].header("In-Reply-To"), Some(acknowledgement_id));

    // Ada answers in the portal: a customer message on her ticket.
    portal_reply(&mut gateway, &ada, first, "Restarted, works.")
        .await
        .expect("answered");
    let messages = admin
        .tickets
        .list_messages(ListMessagesRequest {
            ticket_id: ticket.id.clone(),
            ..Default::default()
        })
        .await
        .expect("messages")
        .into_inner()
        .messages;
    let last = messages.last().expect("a message");
    assert_eq!(
        (last.kind, last.channel, last.body.as_str()),
        (
            MessageKind::CustomerMessage as i32,
            TicketChannel::Portal as i32,
            "Restarted, works."
        )
    );
    let empty = portal_reply(&mut gateway, &ada, first, "  ")
        .await
        .expect_err("empty");
    assert_eq!(violated_fields(&empty), ["body"]);

    // She opens another request from the portal.
    let opened = gateway
        .portal
        .open_portal_ticket(OpenPortalTicketRequest {
            token: ada.clone(),
            subject: "Invoice copy".into(),
            description: "Please send it again.".into(),
            request_id: "portal-1".into(),
        })
        .await
        .expect("opened")
        .into_inner()
        .ticket_number;
    let shown = portal_ticket(&mut gateway, &ada, opened)
        .await
        .expect("hers");
    assert_eq!(shown.ticket.expect("ticket").subject, "Invoice copy");

    // An answer reopens a solved ticket; a closed one takes no more.
    let set = |status: TicketStatus| Ticket {
        id: ticket.id.clone(),
        status: status as i32,
        ..Default::default()
    };
    update(&mut admin, set(TicketStatus::Solved), &["status"])
        .await
        .expect("solved");
    portal_reply(&mut gateway, &ada, first, "Broken again.")
        .await
        .expect("answered");
    let shown = portal_ticket(&mut gateway, &ada, first)
        .await
        .expect("shown");
    assert_eq!(
        shown.ticket.expect("ticket").status,
        TicketStatus::Open as i32,
        "reopened"
    );
    update(&mut admin, set(TicketStatus::Solved), &["status"])
        .await
        .expect("solved");
    update(&mut admin, set(TicketStatus::Closed), &["status"])
        .await
        .expect("closed");
    let closed = portal_reply(&mut gateway, &ada, first, "one more thing")
        .await
        .expect_err("closed");
    assert_eq!(closed.code(), Code::FailedPrecondition);

    // Only the public routes' service identity asks with a link, only in
    // the link's tenant, only with a link the desk signed, before it expires.
    let list = |token: &str| ListPortalTicketsRequest {
        token: token.into(),
        page: None,
    };
    let refused = admin
        .portal
        .list_portal_tickets(list(&ada))
        .await
        .expect_err("a user");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let elsewhere = app.client_in(
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        &[Role::Service],
        Visibility::Tenant,
        &[],
    );
    let refused = elsewhere
        .portal
        .clone()
        .list_portal_tickets(list(&ada))
        .await
        .expect_err("another tenant");
    assert_eq!(refused.code(), Code::NotFound);
    let mut elsewhere_portal = elsewhere.portal.clone();
    let refused = elsewhere_portal
        .get_portal_ticket(GetPortalTicketRequest {
            token: ada.clone(),
            number: opened,
        })
        .await
        .expect_err("another tenant");
    assert_eq!(refused.code(), Code::NotFound);
    let refused = elsewhere_portal
        .open_portal_ticket(OpenPortalTicketRequest {
            token: ada.clone(),
            subject: "Theirs".into(),
            description: "Not here.".into(),
            request_id: String::new(),
        })
        .await
        .expect_err("another tenant");
    assert_eq!(refused.code(), Code::NotFound);
    let refused = elsewhere_portal
        .reply_on_portal(ReplyOnPortalRequest {
            token: ada.clone(),
            number: opened,
            body: "Not here.".into(),
            request_id: String::new(),
        })
        .await
        .expect_err("another tenant");
    assert_eq!(refused.code(), Code::NotFound);
    let forged = servicedesk::domain::portal::PortalLink {
        tenant: app.tenant,
        contact: ticket.requester_contact_id.parse().expect("id"),
        mailbox: uuid::Uuid::now_v7(),
        expires: i64::MAX,
    };
    let forged = kit::links::LinkKey::random().sign(&forged);
    let refused = gateway
        .portal
        .list_portal_tickets(list(&forged))
        .await
        .expect_err("forged");
    assert_eq!(refused.code(), Code::NotFound);
    app.clock.advance(chrono::Duration::days(8));
    let refused = gateway
        .portal
        .list_portal_tickets(list(&ada))
        .await
        .expect_err("expired");
    assert_eq!(refused.code(), Code::NotFound);
}

#[tokio::test]
async fn forms_are_configured_by_managers_and_checked_field_by_field() {
    let app = TestApp::spawn().await;
    let form = support_form(&app).await;
    let mut gateway = app.integration();

    let bad = gateway
        .portal
        .submit_support_form(SubmitSupportFormRequest {
            form_key: form.key.clone(),
            email: "not an address".into(),
            ..Default::default()
        })
        .await
        .expect_err("bad input");
    assert_eq!(violated_fields(&bad), ["email", "subject", "description"]);
    let unknown = gateway
        .portal
        .describe_support_form(DescribeSupportFormRequest {
            form_key: format!("{}.{}", app.tenant.simple(), uuid::Uuid::now_v7().simple()),
        })
        .await
        .expect_err("no such form");
    assert_eq!(unknown.code(), Code::NotFound);
    let described = gateway
        .portal
        .describe_support_form(DescribeSupportFormRequest {
            form_key: form.key.clone(),
        })
        .await
        .expect("described")
        .into_inner();
    assert_eq!(described.name, "Contact support");

    // Another tenant's public routes, and people, get nothing of the form.
    let elsewhere = app.client_in(
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        &[Role::Service],
        Visibility::Tenant,
        &[],
    );
    let mut theirs = elsewhere.portal.clone();
    let refused = theirs
        .describe_support_form(DescribeSupportFormRequest {
            form_key: form.key.clone(),
        })
        .await
        .expect_err("another tenant");
    assert_eq!(refused.code(), Code::NotFound);
    let refused = theirs
        .submit_support_form(SubmitSupportFormRequest {
            form_key: form.key.clone(),
            name: "Mallory".into(),
            email: "mallory@example.com".into(),
            subject: "Hello".into(),
            description: "Let me in.".into(),
            request_id: String::new(),
        })
        .await
        .expect_err("another tenant");
    assert_eq!(refused.code(), Code::NotFound);
    let refused = theirs
        .request_portal_link(RequestPortalLinkRequest {
            form_key: form.key.clone(),
            email: "mallory@example.com".into(),
        })
        .await
        .expect_err("another tenant");
    assert_eq!(refused.code(), Code::NotFound);
    let refused = theirs
        .search_portal_articles(SearchPortalArticlesRequest {
            credential: form.key.clone(),
            ..Default::default()
        })
        .await
        .expect_err("another tenant");
    assert_eq!(refused.code(), Code::NotFound);
    let refused = app
        .admin()
        .portal
        .describe_support_form(DescribeSupportFormRequest {
            form_key: form.key.clone(),
        })
        .await
        .expect_err("a user");
    assert_eq!(refused.code(), Code::PermissionDenied);

    // Agents read forms, do not make them; other tenants do not see them.
    let mut agent = app.agent(&[]);
    let refused = agent
        .channels
        .create_support_form(CreateSupportFormRequest {
            form: Some(SupportForm {
                name: "Mine".into(),
                mailbox_id: form.mailbox_id.clone(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect_err("an agent");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let listed = agent
        .channels
        .list_support_forms(ListSupportFormsRequest::default())
        .await
        .expect("listed")
        .into_inner()
        .forms;
    assert_eq!(listed.len(), 1);
    let mut stranger = app.stranger();
    let gone = stranger
        .channels
        .delete_support_form(DeleteSupportFormRequest {
            id: form.id.clone(),
        })
        .await
        .expect_err("another tenant's form");
    assert_eq!(gone.code(), Code::NotFound);
    let stolen = stranger
        .channels
        .create_support_form(CreateSupportFormRequest {
            form: Some(SupportForm {
                name: "Theirs".into(),
                mailbox_id: form.mailbox_id.clone(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect_err("another tenant's mailbox");
    assert_eq!(violated_fields(&stolen), ["form.mailbox_id"]);
    assert!(stranger
        .channels
        .list_support_forms(ListSupportFormsRequest::default())
        .await
        .expect("listed")
        .into_inner()
        .forms
        .is_empty());

    // The mailbox stays while the form sends from it.
    let mut admin = app.admin();
    let kept = admin
        .channels
        .delete_mailbox(DeleteMailboxRequest {
            id: form.mailbox_id.clone(),
        })
        .await
        .expect_err("in use");
    assert_eq!(kept.code(), Code::FailedPrecondition);
    admin
        .channels
        .delete_support_form(DeleteSupportFormRequest {
            id: form.id.clone(),
        })
        .await
        .expect("deleted");
    let gone = gateway
        .portal
        .describe_support_form(DescribeSupportFormRequest {
            form_key: form.key.clone(),
        })
        .await
        .expect_err("deleted");
    assert_eq!(gone.code(), Code::NotFound);
    admin
        .channels
        .delete_mailbox(DeleteMailboxRequest {
            id: form.mailbox_id.clone(),
        })
        .await
        .expect("free now");
}

#[tokio::test]
async fn links_go_to_known_addresses_only_and_the_portal_shows_the_public_knowledge_base() {
    let app = TestApp::spawn().await;
    let form = support_form(&app).await;
    let mut gateway = app.integration();
    let mut admin = app.admin();
    let known = admin
        .contacts
        .create_contact(crm_proto::crm::customers::v1::CreateContactRequest {
            contact: Some(crm_proto::crm::customers::v1::Contact {
                first_name: "Ada".into(),
                emails: vec![crm_proto::crm::customers::v1::Email {
                    address: "ada@example.com".into(),
                    primary: true,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("contact")
        .into_inner()
        .contact
        .expect("contact");

    // A stranger's address is answered alike and mailed nothing; the
    // customer's gets a link to an (empty) portal of their own.
    for email in ["nobody@example.com", "ada@example.com"] {
        gateway
            .portal
            .request_portal_link(RequestPortalLinkRequest {
                form_key: form.key.clone(),
                email: email.into(),
            })
            .await
            .expect("answered alike");
    }
    let token = mailed_token(&app, 0).await;
    assert_eq!(app.mail_out.received()[0].to, ["ada@example.com"]);
    let link: servicedesk::domain::portal::PortalLink =
        app.survey_key.verify(&token, 0).expect("a portal link");
    assert_eq!(link.contact.to_string(), known.id);
    let bad = gateway
        .portal
        .request_portal_link(RequestPortalLinkRequest {
            form_key: form.key.clone(),
            email: "nope".into(),
        })
        .await
        .expect_err("not an address");
    assert_eq!(violated_fields(&bad), ["email"]);

    // Published public articles only, by form key or link.
    let article = |title: &str, audience: ArticleAudience| Article {
        title: title.into(),
        body: format!("{title}: restart the router and wait a minute."),
        audience: audience as i32,
        language: "en".into(),
        ..Default::default()
    };
    let mut ids = Vec::new();
    for (a, published) in [
        (article("Router public", ArticleAudience::Public), true),
        (article("Router internal", ArticleAudience::Internal), true),
        (article("Router draft", ArticleAudience::Public), false),
    ] {
        let written = admin
            .knowledge
            .create_article(CreateArticleRequest {
                article: Some(a),
                request_id: String::new(),
            })
            .await
            .expect("written")
            .into_inner()
            .article
            .expect("article");
        if published {
            admin
                .knowledge
                .publish_article(PublishArticleRequest {
                    id: written.id.clone(),
                })
                .await
                .expect("published");
        }
        ids.push(written.id);
    }
    for credential in [form.key.clone(), token.clone()] {
        for query in ["router", ""] {
            let found = gateway
                .portal
                .search_portal_articles(SearchPortalArticlesRequest {
                    credential: credential.clone(),
                    query: query.into(),
                    limit: 0,
                })
                .await
                .expect("searched")
                .into_inner()
                .articles;
            assert_eq!(
                found.iter().map(|a| a.title.as_str()).collect::<Vec<_>>(),
                ["Router public"],
                "query {query:?}"
            );
        }
        let shown = gateway
            .portal
            .get_portal_article(GetPortalArticleRequest {
                credential: credential.clone(),
                article_id: ids[0].clone(),
            })
            .await
            .expect("public")
            .into_inner()
            .article
            .expect("article");
        assert!(shown.body.contains("restart the router"));
        for hidden in &ids[1..] {
            let refused = gateway
                .portal
                .get_portal_article(GetPortalArticleRequest {
                    credential: credential.clone(),
                    article_id: hidden.clone(),
                })
                .await
                .expect_err("not public");
            assert_eq!(refused.code(), Code::NotFound);
        }
    }
    let refused = gateway
        .portal
        .search_portal_articles(SearchPortalArticlesRequest {
            credential: "made.up".into(),
            ..Default::default()
        })
        .await
        .expect_err("no credential");
    assert_eq!(refused.code(), Code::NotFound);
}
