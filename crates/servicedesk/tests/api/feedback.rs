//! Complaint handling: root causes kept by managers, required to solve a
//! complaint, carried by `ticket.solved` for reporting.

use crm_proto::crm::customers::v1 as people;
use crm_proto::crm::servicedesk::v1::*;
use kit::auth::{Role, Visibility};
use tonic::Code;

use crate::harness::{
    contact, create, subject, update, violated_fields, Client, TestApp, PUBLIC_URL,
};

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

/// A contact of `account`, with `email` unless empty.
async fn member(client: &mut Client, account: &str, name: &str, email: &str) -> people::Contact {
    client
        .contacts
        .create_contact(people::CreateContactRequest {
            contact: Some(people::Contact {
                first_name: name.into(),
                account_id: account.into(),
                emails: (!email.is_empty())
                    .then(|| people::Email {
                        address: email.into(),
                        primary: true,
                        ..Default::default()
                    })
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("contact")
        .into_inner()
        .contact
        .expect("contact")
}

#[tokio::test]
async fn an_account_is_asked_for_its_nps_once_per_contact_and_scored() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let account = admin
        .accounts
        .create_account(people::CreateAccountRequest {
            account: Some(people::Account {
                name: "Analytical Engines Ltd".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("account")
        .into_inner()
        .account
        .expect("account");
    let ada = member(&mut admin, &account.id, "Ada", "ada@example.com").await;
    let charles = member(&mut admin, &account.id, "Charles", "charles@example.com").await;
    member(&mut admin, &account.id, "Nomail", "").await;
    let outsider = contact(&mut admin, "Outsider").await;
    let mailbox = admin
        .channels
        .create_mailbox(CreateMailboxRequest {
            mailbox: Some(Mailbox {
                address: format!("care@{}.desk.test", app.tenant.simple()),
                name: "Engines Care".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("mailbox")
        .into_inner()
        .mailbox
        .expect("mailbox");
    let send = |contact_ids: Vec<String>, account_id: &str| CreateNpsSurveyRequest {
        survey: Some(NpsSurvey {
            account_id: account_id.into(),
            mailbox_id: mailbox.id.clone(),
            contact_ids,
            ..Default::default()
        }),
        request_id: String::new(),
    };

    let refused = app
        .agent(&[])
        .feedback
        .create_nps_survey(send(vec![], &account.id))
        .await
        .expect_err("agents do not survey accounts");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let outside = admin
        .feedback
        .create_nps_survey(send(vec![outsider.id.clone()], &account.id))
        .await
        .expect_err("not of the account");
    assert_eq!(violated_fields(&outside), ["survey.contact_ids[0]"]);
    let mut stranger = app.stranger();
    let foreign = stranger
        .feedback
        .create_nps_survey(send(vec![], &account.id))
        .await
        .expect_err("another tenant's account");
    assert_eq!(violated_fields(&foreign), ["survey.mailbox_id"]);

    // Everyone of the account with an address is asked, once.
    let survey = admin
        .feedback
        .create_nps_survey(CreateNpsSurveyRequest {
            request_id: "nps-q4".into(),
            ..send(vec![], &account.id)
        })
        .await
        .expect("sent")
        .into_inner()
        .survey
        .expect("survey");
    assert_eq!(survey.invited, 2);
    let mut asked = survey.contact_ids.clone();
    asked.sort();
    let mut expected = vec![ada.id.clone(), charles.id.clone()];
    expected.sort();
    assert_eq!(asked, expected);
    let sent = app.mail_out.wait_for(2).await;
    let prefix = format!("{PUBLIC_URL}/nps/");
    let token_for = |address: &str| {
        let mail = sent
            .iter()
            .find(|m| m.to == [address])
            .expect("a mail to each contact");
        assert_eq!(
            mail.header("Subject").as_deref(),
            Some("How likely are you to recommend Engines Care?")
        );
        let links = mail.links(&prefix);
        assert_eq!(links.len(), 11, "a link per score");
        links[0]
            .trim_start_matches(&prefix)
            .split('?')
            .next()
            .expect("token")
            .to_owned()
    };
    let (ada_token, charles_token) = (
        token_for("ada@example.com"),
        token_for("charles@example.com"),
    );

    // Only the public route answers, once, 0-10, with a link of this tenant.
    let answer = |token: &str, score: i32| AnswerNpsSurveyRequest {
        token: token.into(),
        score,
        comment: "Reliable engines.".into(),
    };
    let refused = admin
        .feedback
        .answer_nps_survey(answer(&ada_token, 9))
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
        .feedback
        .clone()
        .answer_nps_survey(answer(&ada_token, 9))
        .await
        .expect_err("another tenant");
    assert_eq!(refused.code(), Code::NotFound);
    let mut gateway = app.integration();
    let bad = gateway
        .feedback
        .answer_nps_survey(answer(&ada_token, 11))
        .await
        .expect_err("out of range");
    assert_eq!(violated_fields(&bad), ["score"]);
    let described = gateway
        .feedback
        .describe_nps_survey(DescribeNpsSurveyRequest {
            token: ada_token.clone(),
        })
        .await
        .expect("described")
        .into_inner();
    assert_eq!(
        (described.sender.as_str(), described.answered),
        ("Engines Care", false)
    );
    gateway
        .feedback
        .answer_nps_survey(answer(&ada_token, 9))
        .await
        .expect("answered");
    let again = gateway
        .feedback
        .answer_nps_survey(answer(&ada_token, 0))
        .await
        .expect_err("once");
    assert_eq!(again.code(), Code::AlreadyExists);
    gateway
        .feedback
        .answer_nps_survey(AnswerNpsSurveyRequest {
            comment: String::new(),
            ..answer(&charles_token, 3)
        })
        .await
        .expect("answered");

    let summary = |client: &mut Client| {
        let mut feedback = client.feedback.clone();
        let account_id = account.id.clone();
        async move {
            feedback
                .get_account_nps(GetAccountNpsRequest {
                    account_id,
                    since: None,
                })
                .await
                .map(|r| r.into_inner().summary.expect("summary"))
        }
    };
    let mut reader = app.client(&[Role::SupportAgent], Visibility::Tenant, &[]);
    let nps = summary(&mut reader)
        .await
        .expect("readers who see the account");
    let colleague = summary(&mut app.agent(&[]))
        .await
        .expect_err("an agent who does not see the account");
    assert_eq!(colleague.code(), Code::NotFound);
    assert_eq!(
        (
            nps.responses,
            nps.promoters,
            nps.passives,
            nps.detractors,
            nps.score
        ),
        (2, 1, 0, 1, 0)
    );
    let hidden = summary(&mut stranger)
        .await
        .expect_err("another tenant's account");
    assert_eq!(hidden.code(), Code::NotFound);
    let hidden = stranger
        .feedback
        .list_nps_responses(ListNpsResponsesRequest {
            account_id: account.id.clone(),
            page: None,
        })
        .await
        .expect_err("another tenant's answers");
    assert_eq!(hidden.code(), Code::NotFound);
    let hidden = app
        .agent(&[])
        .feedback
        .list_nps_responses(ListNpsResponsesRequest {
            account_id: account.id.clone(),
            page: None,
        })
        .await
        .expect_err("an agent who does not see the account");
    assert_eq!(hidden.code(), Code::NotFound);
    let foreign = elsewhere
        .feedback
        .clone()
        .describe_nps_survey(DescribeNpsSurveyRequest {
            token: charles_token.clone(),
        })
        .await
        .expect_err("another tenant");
    assert_eq!(foreign.code(), Code::NotFound);
    let event = app
        .event("servicedesk", "crm.servicedesk.nps.received.v1", &survey.id)
        .await;
    let received: NpsReceived = kit::events::decode_data(&event).expect("nps.received");
    assert_eq!(received.account_id, account.id);

    // Erasing Ada keeps her score, not her or her words.
    app.erase(&ada.id).await;
    let responses = testkit::eventually(
        "the answer is anonymised",
        std::time::Duration::from_secs(30),
        || {
            let mut feedback = admin.feedback.clone();
            let account_id = account.id.clone();
            let erased = ada.id.clone();
            async move {
                let listed = feedback
                    .list_nps_responses(ListNpsResponsesRequest {
                        account_id,
                        page: None,
                    })
                    .await
                    .ok()?
                    .into_inner()
                    .responses;
                listed
                    .iter()
                    .all(|r| r.contact_id != erased)
                    .then_some(listed)
            }
        },
    )
    .await;
    let scores: Vec<(i32, &str, &str)> = responses
        .iter()
        .map(|r| (r.score, r.contact_id.as_str(), r.comment.as_str()))
        .collect();
    assert_eq!(scores, [(3, charles.id.as_str(), ""), (9, "", "")]);
    assert_eq!(summary(&mut admin).await.expect("summary").score, 0);
}
