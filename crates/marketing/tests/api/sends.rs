use std::time::Duration;

use crm_proto::crm::customers::v1::{self as people, Channel, ConsentStatus};
use crm_proto::crm::marketing::v1::*;
use crm_proto::events::DomainEvent;
use kit::auth::{Role, Visibility};
use prost::Message as _;
use tonic::Code;
use uuid::Uuid;

use crate::harness::*;

async fn active_campaign(client: &mut Client, members: &[&str]) -> Campaign {
    let campaign = create_campaign(client, named("Launch")).await;
    client
        .campaigns
        .update_campaign(UpdateCampaignRequest {
            campaign: Some(Campaign {
                id: campaign.id.clone(),
                status: CampaignStatus::Active as i32,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["status".into()],
            }),
            expected_version: 0,
        })
        .await
        .expect("activate");
    add_contacts(client, &campaign.id, members)
        .await
        .expect("members");
    campaign
}

async fn create_send(client: &mut Client, send: Send) -> Result<Send, tonic::Status> {
    client
        .messages
        .create_send(CreateSendRequest {
            send: Some(send),
            request_id: String::new(),
        })
        .await
        .map(|r| r.into_inner().send.expect("send"))
}

/// The send once its audience is resolved (queued, or already over).
async fn resolved(client: &mut Client, send: &str) -> Send {
    let messages = client.messages.clone();
    testkit::eventually(
        "the audience to be resolved",
        Duration::from_secs(60),
        || {
            let (mut messages, id) = (messages.clone(), send.to_owned());
            async move {
                let send = messages
                    .get_send(GetSendRequest { id })
                    .await
                    .ok()?
                    .into_inner()
                    .send?;
                (send.status != SendStatus::Resolving as i32).then_some(send)
            }
        },
    )
    .await
}

async fn finished(client: &mut Client, send: &str) -> Send {
    let messages = client.messages.clone();
    testkit::eventually("the send to finish", Duration::from_secs(60), || {
        let (mut messages, id) = (messages.clone(), send.to_owned());
        async move {
            let send = messages
                .get_send(GetSendRequest { id })
                .await
                .ok()?
                .into_inner()
                .send?;
            let over = [SendStatus::Completed as i32, SendStatus::Cancelled as i32];
            over.contains(&send.status).then_some(send)
        }
    })
    .await
}

#[tokio::test]
async fn a_send_reaches_only_reachable_members_once_with_their_data() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    identity(&mut admin).await;
    let template = template(&mut admin).await;
    let account =
        testkit::grpc::create_account(&mut admin.accounts, "Analytical Engines", "engines.example")
            .await;
    let ada = person(
        &mut admin,
        "Ada",
        "ada@engines.example",
        &account.id,
        Some(ConsentStatus::Granted),
    )
    .await;
    let bob = person(&mut admin, "Bob", "bob@engines.example", "", None).await;
    let carol = person(
        &mut admin,
        "Carol",
        "carol@engines.example",
        "",
        Some(ConsentStatus::Withdrawn),
    )
    .await;
    let dave = person(
        &mut admin,
        "Dave",
        "dave@engines.example",
        "",
        Some(ConsentStatus::Granted),
    )
    .await;
    let twin = person(
        &mut admin,
        "Twin",
        "ada@engines.example",
        "",
        Some(ConsentStatus::Granted),
    )
    .await;
    admin
        .consent
        .add_suppression(AddSuppressionRequest {
            suppression: Some(Suppression {
                channel: Channel::Email as i32,
                address: "dave@engines.example".into(),
                reason: SuppressionReason::Unsubscribed as i32,
                ..Default::default()
            }),
        })
        .await
        .expect("suppress dave");
    let campaign = active_campaign(&mut admin, &[&ada, &bob, &carol, &dave, &twin]).await;

    let send = send_to(&mut admin, &template, &campaign).await;
    assert_eq!(send.recipients, 5);
    for (reason, count) in [
        (SkipReason::NoConsent, 1),
        (SkipReason::ConsentWithdrawn, 1),
        (SkipReason::Suppressed, 1),
        (SkipReason::DuplicateAddress, 1),
    ] {
        assert_eq!(
            send.skipped.get(reason.as_str_name()),
            Some(&count),
            "{:?}",
            send.skipped
        );
    }
    let done = finished(&mut admin, &send.id).await;
    assert_eq!(
        (done.status, done.sent, done.failed),
        (SendStatus::Completed as i32, 1, 0),
        "{done:?}"
    );

    let received = app.smtp.wait_for(1).await;
    assert_eq!(received.len(), 1, "one message, to Ada only");
    let mail = &received[0];
    assert_eq!(mail.to, vec!["ada@engines.example".to_owned()]);
    assert_eq!(mail.header("Subject").as_deref(), Some("Hello Ada"));
    assert!(
        mail.header("From")
            .is_some_and(|f| f.contains("news@acme.example") && f.contains("Acme News")),
        "{:?}",
        mail.header("From")
    );
    assert!(mail.header("Message-ID").is_some());
    assert!(
        mail.data.contains("Dear Ada Tester of Analytical Engines"),
        "{}",
        mail.data
    );

    // The member's progress and the events.
    let members = members(&mut admin, &campaign.id).await;
    let ada_member = members.iter().find(|m| m.contact_id == ada).expect("ada");
    assert_eq!(ada_member.status, MemberStatus::Sent as i32);
    assert!(ada_member.sent_at.is_some());
    let sent = app
        .services
        .nats
        .events("marketing", MessageSent::TYPE, 1)
        .await;
    let sent = MessageSent::decode(sent[0].data.as_slice()).expect("payload");
    assert_eq!(
        (sent.contact_id.as_str(), sent.campaign_id.as_str()),
        (ada.as_str(), campaign.id.as_str())
    );
    let completed = app.event("marketing", SendCompleted::TYPE, &send.id).await;
    let completed = SendCompleted::decode(completed.data.as_slice()).expect("payload");
    assert_eq!(completed.send.map(|s| s.sent), Some(1));

    let recipients = admin
        .messages
        .list_send_recipients(ListSendRecipientsRequest {
            send_id: send.id.clone(),
            status: RecipientStatus::Skipped as i32,
            ..Default::default()
        })
        .await
        .expect("recipients")
        .into_inner()
        .recipients;
    assert_eq!(recipients.len(), 4);
}

/// Sends `template` to the campaign's members; the send once its
/// audience is resolved.
async fn send_to(client: &mut Client, template: &Template, campaign: &Campaign) -> Send {
    let send = create_send(
        client,
        Send {
            template_id: template.id.clone(),
            campaign_id: campaign.id.clone(),
            ..Default::default()
        },
    )
    .await
    .expect("send");
    assert_eq!(send.status, SendStatus::Resolving as i32, "{send:?}");
    resolved(client, &send.id).await
}

/// Consenting contacts, `n` of them, as members of an active campaign.
async fn audience(client: &mut Client, n: usize) -> Campaign {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(
            person(
                client,
                &format!("P{i}"),
                &format!("p{i}@example.com"),
                "",
                Some(ConsentStatus::Granted),
            )
            .await,
        );
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    active_campaign(client, &refs).await
}

#[tokio::test]
async fn a_send_stopped_midway_resumes_without_sending_anyone_twice() {
    let mut app = TestApp::spawn().await;
    let mut admin = app.admin();
    identity(&mut admin).await;
    let template = template(&mut admin).await;
    let campaign = audience(&mut admin, 30).await;

    // A slow pace (10 a second), so the send is under way when it stops.
    app.restart_marketing_at(10).await;
    let mut admin = app.admin();
    let send = send_to(&mut admin, &template, &campaign).await;
    app.smtp.wait_for(3).await;
    app.stop_marketing().await;
    let before_restart = app.smtp.received().len();
    assert!(before_restart < 30, "the send was still under way");

    // A sender that died holding a claim: one queued recipient is marked
    // sending with a lease that ran out, as a crash between the relay's
    // answer and the record would leave it.
    let pool = app.services.db("marketing").admin_pool().await;
    let held: Uuid = sqlx::query_scalar(
        "UPDATE send_recipients SET status = $1, attempts = 1 WHERE id = \
         (SELECT id FROM send_recipients WHERE status = $2 ORDER BY id DESC LIMIT 1) RETURNING id",
    )
    .bind(RecipientStatus::Sending as i16)
    .bind(RecipientStatus::Queued as i16)
    .fetch_one(&pool)
    .await
    .expect("hold one recipient");
    sqlx::query("UPDATE outbound_queue SET claimed_until = now() - interval '1 second' WHERE recipient_id = $1")
        .bind(held)
        .execute(&pool)
        .await
        .expect("expire its lease");

    app.start_marketing().await;
    let mut admin = app.admin();
    let done = finished(&mut admin, &send.id).await;
    assert_eq!(
        (done.sent, done.interrupted, done.failed),
        (29, 1, 0),
        "{done:?}"
    );
    let received = app.smtp.wait_for(29).await;
    let mut to: Vec<String> = received.iter().flat_map(|m| m.to.clone()).collect();
    let total = to.len();
    to.sort();
    to.dedup();
    assert_eq!(
        (total, to.len()),
        (29, 29),
        "every reachable member exactly once"
    );
    let interrupted = admin
        .messages
        .list_send_recipients(ListSendRecipientsRequest {
            send_id: send.id.clone(),
            status: RecipientStatus::Interrupted as i32,
            ..Default::default()
        })
        .await
        .expect("recipients")
        .into_inner()
        .recipients;
    assert_eq!(interrupted.len(), 1);
    assert!(
        !to.contains(&interrupted[0].address),
        "an interrupted recipient is not sent again"
    );
}

#[tokio::test]
async fn a_cancelled_send_stops_and_a_test_send_renders_for_one_address() {
    let mut app = TestApp::spawn().await;
    let mut admin = app.admin();
    identity(&mut admin).await;
    let template = template(&mut admin).await;
    let campaign = audience(&mut admin, 6).await;
    app.restart_marketing_at(1).await;
    let mut admin = app.admin();
    let send = send_to(&mut admin, &template, &campaign).await;
    let cancelled = admin
        .messages
        .cancel_send(CancelSendRequest {
            id: send.id.clone(),
        })
        .await
        .expect("cancel")
        .into_inner()
        .send
        .expect("send");
    assert_eq!(cancelled.status, SendStatus::Cancelled as i32);
    assert!(cancelled.cancelled >= 4, "{cancelled:?}");
    let again = admin
        .messages
        .cancel_send(CancelSendRequest {
            id: send.id.clone(),
        })
        .await
        .expect_err("cancelled twice");
    assert_eq!(again.code(), Code::FailedPrecondition);

    let contact = admin
        .campaigns
        .list_campaign_members(ListCampaignMembersRequest {
            campaign_id: campaign.id.clone(),
            ..Default::default()
        })
        .await
        .expect("members")
        .into_inner()
        .members[0]
        .contact_id
        .clone();
    admin
        .messages
        .test_send(TestSendRequest {
            template_id: template.id.clone(),
            contact_id: contact,
            address: "Me@Acme.example".into(),
            sender_identity_id: String::new(),
        })
        .await
        .expect("test send");
    let received = testkit::eventually("the test message", Duration::from_secs(30), || async {
        app.smtp
            .received()
            .into_iter()
            .find(|m| m.to == vec!["me@acme.example".to_owned()])
    })
    .await;
    assert_eq!(received.header("Subject").as_deref(), Some("Hello P0"));
    let sent_to_audience = app.smtp.received().len() - 1;
    assert!(
        sent_to_audience <= 2,
        "{sent_to_audience} messages went out after the cancel"
    );
}

#[tokio::test]
async fn erasing_the_people_still_queued_cancels_their_messages_and_ends_the_send() {
    let mut app = TestApp::spawn().await;
    let mut admin = app.admin();
    identity(&mut admin).await;
    let template = template(&mut admin).await;
    let campaign = audience(&mut admin, 10).await;
    // One a second: the last messages are due seconds from now.
    app.restart_marketing_at(1).await;
    let mut admin = app.admin();
    let send = send_to(&mut admin, &template, &campaign).await;
    for member in members(&mut admin, &campaign.id).await {
        app.erase(&member.contact_id).await;
    }
    let done = finished(&mut admin, &send.id).await;
    assert_eq!(done.status, SendStatus::Completed as i32, "{done:?}");
    assert_eq!(done.sent + done.cancelled, 10, "{done:?}");
    assert!(done.cancelled >= 1, "{done:?}");
}

#[tokio::test]
async fn sends_and_templates_refuse_bad_input_other_tenants_and_roles() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let template = template(&mut admin).await;

    let bad = admin
        .messages
        .create_template(CreateTemplateRequest {
            template: Some(Template {
                name: "Broken".into(),
                subject: "Hi {{ contact.shoe_size }}".into(),
                text_body: "{% if %}".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect_err("bad template");
    let mut fields = violated_fields(&bad);
    fields.sort();
    assert_eq!(fields, vec!["template.subject", "template.text_body"]);
    assert!(
        bad.message().contains("contact.shoe_size") || format!("{bad:?}").contains("shoe_size")
    );

    // The tracking RPCs are the gateway's: no user may call them, whatever
    // the role, and a retried identity create answers with the first one.
    let mut tracking = crm_proto::crm::marketing::v1::tracking_service_client::TrackingServiceClient::with_interceptor(
        app.services.channel("marketing"),
        app.services.bearer(app.tenant, admin.user, &[Role::Admin], Visibility::Tenant, &[]),
    );
    let refused = tracking
        .record_click(RecordClickRequest { token: "x".into() })
        .await
        .expect_err("users do not record clicks");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let refused = tracking
        .record_delivery_reports(RecordDeliveryReportsRequest::default())
        .await
        .expect_err("users do not post delivery reports");
    assert_eq!(refused.code(), Code::PermissionDenied);

    // No identity yet: e-mail needs one.
    let ada = person(
        &mut admin,
        "Ada",
        "ada@example.com",
        "",
        Some(ConsentStatus::Granted),
    )
    .await;
    let no_identity = create_send(
        &mut admin,
        Send {
            template_id: template.id.clone(),
            contact_ids: vec![ada.clone()],
            ..Default::default()
        },
    )
    .await
    .expect_err("no sender identity");
    assert_eq!(no_identity.code(), Code::FailedPrecondition);
    let first = identity(&mut admin).await;
    assert_eq!(
        identity(&mut admin).await.id,
        first.id,
        "a retry makes no second identity"
    );
    let no_audience = create_send(
        &mut admin,
        Send {
            template_id: template.id.clone(),
            ..Default::default()
        },
    )
    .await
    .expect_err("no audience");
    assert_eq!(violated_fields(&no_audience), vec!["send"]);
    let unknown = create_send(
        &mut admin,
        Send {
            template_id: Uuid::now_v7().to_string(),
            contact_ids: vec![ada.clone(), "nope".into()],
            ..Default::default()
        },
    )
    .await
    .expect_err("bad ids");
    assert_eq!(violated_fields(&unknown), vec!["send.contact_ids[1]"]);
    let unknown_template = create_send(
        &mut admin,
        Send {
            template_id: Uuid::now_v7().to_string(),
            contact_ids: vec![ada.clone()],
            ..Default::default()
        },
    )
    .await
    .expect_err("unknown template");
    assert_eq!(violated_fields(&unknown_template), vec!["send.template_id"]);
    let unknown_segment = create_send(
        &mut admin,
        Send {
            template_id: template.id.clone(),
            segment_id: Uuid::now_v7().to_string(),
            ..Default::default()
        },
    )
    .await
    .expect_err("unknown segment");
    assert_eq!(violated_fields(&unknown_segment), vec!["send.segment_id"]);

    // A rep neither sends nor reads who a send went to; another tenant's
    // admin finds neither the template nor the send.
    let mut rep = app.client(&[Role::SalesRep], Visibility::Own, &[]);
    let denied = create_send(
        &mut rep,
        Send {
            template_id: template.id.clone(),
            contact_ids: vec![ada.clone()],
            ..Default::default()
        },
    )
    .await
    .expect_err("reps do not send");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let send = create_send(
        &mut admin,
        Send {
            template_id: template.id.clone(),
            contact_ids: vec![ada.clone()],
            ..Default::default()
        },
    )
    .await
    .expect("send");
    let recipients = rep
        .messages
        .list_send_recipients(ListSendRecipientsRequest {
            send_id: send.id.clone(),
            ..Default::default()
        })
        .await
        .expect_err("reps do not read recipients");
    assert_eq!(recipients.code(), Code::PermissionDenied);
    let mut stranger = app.stranger();
    let foreign_template = stranger
        .messages
        .get_template(GetTemplateRequest {
            id: template.id.clone(),
        })
        .await
        .expect_err("another tenant's template");
    assert_eq!(foreign_template.code(), Code::NotFound);
    let foreign_send = stranger
        .messages
        .get_send(GetSendRequest {
            id: send.id.clone(),
        })
        .await
        .expect_err("another tenant's send");
    assert_eq!(foreign_send.code(), Code::NotFound);
    let foreign_use = create_send(
        &mut stranger,
        Send {
            template_id: template.id.clone(),
            contact_ids: vec![ada.clone()],
            ..Default::default()
        },
    )
    .await
    .expect_err("another tenant's template and contact");
    assert_eq!(violated_fields(&foreign_use), vec!["send.template_id"]);
}

async fn with_phone(
    client: &mut Client,
    first: &str,
    phone: &str,
    consent: Option<ConsentStatus>,
) -> String {
    let contact = client
        .contacts
        .create_contact(people::CreateContactRequest {
            contact: Some(people::Contact {
                first_name: first.into(),
                last_name: "Texter".into(),
                phones: vec![people::Phone {
                    number: phone.into(),
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
    if let Some(status) = consent {
        set_consent(client, &contact.id, Channel::Sms, status).await;
    }
    contact.id
}

#[tokio::test]
async fn an_sms_send_goes_through_the_provider_to_consenting_phones_only() {
    let mut app = TestApp::spawn().await;
    let mut admin = app.admin();
    let sms_template = admin
        .messages
        .create_template(CreateTemplateRequest {
            template: Some(Template {
                name: "Flash sale".into(),
                channel: Channel::Sms as i32,
                text_body: "Hi {{ contact.first_name }}, 20% off today".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("template")
        .into_inner()
        .template
        .expect("template");
    let ada = with_phone(
        &mut admin,
        "Ada",
        "+49 151 00000001",
        Some(ConsentStatus::Granted),
    )
    .await;
    let bob = with_phone(&mut admin, "Bob", "+4915100000002", None).await;
    let cy = with_phone(
        &mut admin,
        "Cy",
        "+4915100000003",
        Some(ConsentStatus::Granted),
    )
    .await;
    let send = Send {
        template_id: sms_template.id.clone(),
        contact_ids: vec![ada.clone(), bob.clone(), cy.clone()],
        ..Default::default()
    };

    // Without a provider, SMS are refused with the reason.
    let refused = create_send(&mut admin, send.clone())
        .await
        .expect_err("no provider");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("MARKETING_SMS_URL"));

    // A fake SMS provider that refuses one number for good.
    let provider = testkit::http::HttpRecorder::start("/messages", |_, request| {
        if request.json()["to"] == "+4915100000003" {
            400
        } else {
            202
        }
    })
    .await;
    let url = provider.url.clone();
    app.restart_marketing_with(|config| {
        config.sending.sms = Some(marketing::config::SmsConfig {
            url,
            token: Some("provider-secret".into()),
            from: "ACME".into(),
        })
    })
    .await;
    let mut admin = app.admin();
    let created = create_send(&mut admin, send).await.expect("send");
    let id = created.id.clone();
    let done = testkit::eventually("the SMS send completes", Duration::from_secs(30), || {
        let mut admin = app.admin();
        let id = id.clone();
        async move {
            let send = admin
                .messages
                .get_send(GetSendRequest { id })
                .await
                .ok()?
                .into_inner()
                .send?;
            (send.status == SendStatus::Completed as i32).then_some(send)
        }
    })
    .await;
    assert_eq!((done.sent, done.failed), (1, 1));
    assert_eq!(done.skipped.values().sum::<i64>(), 1, "{:?}", done.skipped);
    let received: Vec<(String, serde_json::Value)> = provider
        .received()
        .iter()
        .map(|r| (r.header("authorization"), r.json()))
        .collect();
    let mut numbers: Vec<&str> = received
        .iter()
        .filter_map(|(_, b)| b["to"].as_str())
        .collect();
    numbers.sort();
    assert_eq!(
        numbers,
        ["+4915100000001", "+4915100000003"],
        "Bob gave no consent"
    );
    let (auth, ada_sms) = received
        .iter()
        .find(|(_, b)| b["to"] == "+4915100000001")
        .expect("Ada's");
    assert_eq!(auth, "Bearer provider-secret");
    assert_eq!(ada_sms["text"], "Hi Ada, 20% off today");
    assert_eq!(ada_sms["from"], "ACME");
    assert!(ada_sms["reference"]
        .as_str()
        .is_some_and(|r| r.starts_with(&app.tenant.to_string())));
}

async fn static_segment(client: &mut Client, contacts: &[&str]) -> people::Segment {
    client
        .segments
        .create_segment(people::CreateSegmentRequest {
            segment: Some(people::Segment {
                name: "Readers".into(),
                kind: people::SegmentKind::Static as i32,
                ..Default::default()
            }),
            contact_ids: contacts.iter().map(|c| (*c).to_owned()).collect(),
            request_id: String::new(),
        })
        .await
        .expect("segment")
        .into_inner()
        .segment
        .expect("segment")
}

#[tokio::test]
async fn a_segment_send_resolves_in_the_background_and_a_stopped_resolution_cancels_it() {
    let mut app = TestApp::spawn().await;
    let mut admin = app.admin();
    identity(&mut admin).await;
    let template = template(&mut admin).await;
    let granted = Some(ConsentStatus::Granted);
    let ada = person(&mut admin, "Ada", "ada@example.com", "", granted).await;
    let bob = person(&mut admin, "Bob", "bob@example.com", "", granted).await;
    let carol = person(&mut admin, "Carol", "carol@example.com", "", None).await;
    let segment = static_segment(&mut admin, &[&ada, &bob, &carol]).await;

    // Another tenant cannot send to it: the segment is not theirs.
    let mut stranger = app.stranger();
    identity(&mut stranger).await;
    let theirs = self::template(&mut stranger).await;
    let foreign = create_send(
        &mut stranger,
        Send {
            template_id: theirs.id.clone(),
            segment_id: segment.id.clone(),
            ..Default::default()
        },
    )
    .await
    .expect_err("another tenant's segment");
    assert_eq!(violated_fields(&foreign), vec!["send.segment_id"]);

    let created = create_send(
        &mut admin,
        Send {
            template_id: template.id.clone(),
            segment_id: segment.id.clone(),
            ..Default::default()
        },
    )
    .await
    .expect("send");
    assert_eq!(
        (created.status, created.recipients),
        (SendStatus::Resolving as i32, 0),
        "answered before the audience is resolved"
    );
    let done = finished(&mut admin, &created.id).await;
    assert_eq!(
        (done.status, done.recipients, done.sent),
        (SendStatus::Completed as i32, 3, 2),
        "{done:?}"
    );
    assert_eq!(
        done.skipped.get(SkipReason::NoConsent.as_str_name()),
        Some(&1)
    );
    let mut to: Vec<String> = app
        .smtp
        .wait_for(2)
        .await
        .iter()
        .flat_map(|m| m.to.clone())
        .collect();
    to.sort();
    assert_eq!(to, vec!["ada@example.com", "bob@example.com"]);

    // A resolver that stopped mid-way (its pod crashed) leaves a resolving
    // send with a page of unscheduled recipients and a lease that runs out.
    app.stop_marketing().await;
    let pool = app.services.db("marketing").admin_pool().await;
    let stopped = Uuid::now_v7();
    let first = Uuid::parse_str(&created.id).expect("id");
    sqlx::query(
        "INSERT INTO sends (tenant_id, id, template_id, sender_identity_id, segment_id, channel, status) \
         SELECT tenant_id, $2, template_id, sender_identity_id, segment_id, channel, $3 FROM sends WHERE id = $1",
    )
    .bind(first)
    .bind(stopped)
    .bind(SendStatus::Resolving as i16)
    .execute(&pool)
    .await
    .expect("a resolving send");
    sqlx::query(
        "INSERT INTO send_recipients (tenant_id, id, send_id, contact_id, address, status) \
         SELECT tenant_id, $2, $3, contact_id, address, $4 FROM send_recipients WHERE send_id = $1 AND status = $5 LIMIT 1",
    )
    .bind(first)
    .bind(Uuid::now_v7())
    .bind(stopped)
    .bind(RecipientStatus::Queued as i16)
    .bind(RecipientStatus::Sent as i16)
    .execute(&pool)
    .await
    .expect("a page resolved");
    sqlx::query(
        "INSERT INTO send_resolutions (tenant_id, send_id, lease_until) \
         SELECT tenant_id, id, now() - interval '1 second' FROM sends WHERE id = $1",
    )
    .bind(stopped)
    .execute(&pool)
    .await
    .expect("an expired lease");
    app.start_marketing().await;
    let mut admin = app.admin();
    let cancelled = finished(&mut admin, &stopped.to_string()).await;
    assert_eq!(
        (cancelled.status, cancelled.cancelled, cancelled.sent),
        (SendStatus::Cancelled as i32, 1, 0),
        "{cancelled:?}"
    );
    assert!(
        cancelled.error.contains("stopped before it finished"),
        "{}",
        cancelled.error
    );
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM outbound_queue WHERE send_id = $1")
        .bind(stopped)
        .fetch_one(&pool)
        .await
        .expect("queue");
    assert_eq!(queued, 0, "nothing of it is ever sent");
}
