use std::time::Duration;

use crm_proto::crm::customers::v1::{Channel, ConsentStatus};
use crm_proto::crm::marketing::v1::*;
use kit::auth::{Role, Visibility};
use tonic::Code;
use uuid::Uuid;

use crate::harness::*;

async fn suppress(
    client: &mut Client,
    address: &str,
    reason: SuppressionReason,
) -> Result<Suppression, tonic::Status> {
    client
        .consent
        .add_suppression(AddSuppressionRequest {
            suppression: Some(Suppression {
                channel: Channel::Email as i32,
                address: address.into(),
                reason: reason as i32,
                ..Default::default()
            }),
        })
        .await
        .map(|r| r.into_inner().suppression.expect("suppression"))
}

/// The consent the marketing replica holds, read from its database.
async fn replica(app: &TestApp, contact: &str) -> Option<i16> {
    let pool = app.services.db("marketing").admin_pool().await;
    let contact = Uuid::parse_str(contact).expect("id");
    sqlx::query_scalar("SELECT status FROM contact_consents WHERE contact_id = $1 AND channel = $2")
        .bind(contact)
        .bind(Channel::Email as i16)
        .fetch_optional(&pool)
        .await
        .expect("read the replica")
}

#[tokio::test]
async fn reachability_follows_consent_and_suppressions() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let ada = create_contact(&mut admin, "Lovelace", "Ada@Example.com").await;
    let reach = reachability(&mut admin, &ada.id, Channel::Email)
        .await
        .expect("reachability");
    assert!(!reach.reachable);
    assert_eq!(reach.reason, SkipReason::NoConsent as i32);

    set_consent(&mut admin, &ada.id, Channel::Email, ConsentStatus::Granted).await;
    // The replica learns it from the customers service's events.
    testkit::eventually("the consent replica", Duration::from_secs(30), || async {
        (replica(&app, &ada.id).await == Some(ConsentStatus::Granted as i16)).then_some(())
    })
    .await;
    let reach = reachability(&mut admin, &ada.id, Channel::Email)
        .await
        .expect("reachability");
    assert!(reach.reachable, "{reach:?}");
    assert_eq!(reach.address, "ada@example.com");
    let sms = reachability(&mut admin, &ada.id, Channel::Sms)
        .await
        .expect("sms reachability");
    assert_eq!(sms.reason, SkipReason::NoConsent as i32);

    let suppressed = suppress(
        &mut admin,
        "ADA@example.com ",
        SuppressionReason::Unsubscribed,
    )
    .await
    .expect("suppress");
    assert_eq!(suppressed.address, "ada@example.com");
    let again = suppress(&mut admin, "ada@example.com", SuppressionReason::Complaint)
        .await
        .expect("suppress twice");
    assert_eq!(again.id, suppressed.id, "one entry per address");
    let reach = reachability(&mut admin, &ada.id, Channel::Email)
        .await
        .expect("reachability");
    assert_eq!(reach.reason, SkipReason::Suppressed as i32);
    admin
        .consent
        .delete_suppression(DeleteSuppressionRequest {
            id: suppressed.id.clone(),
        })
        .await
        .expect("lift");
    assert!(
        reachability(&mut admin, &ada.id, Channel::Email)
            .await
            .expect("reachability")
            .reachable
    );

    set_consent(
        &mut admin,
        &ada.id,
        Channel::Email,
        ConsentStatus::Withdrawn,
    )
    .await;
    let reach = reachability(&mut admin, &ada.id, Channel::Email)
        .await
        .expect("reachability");
    assert_eq!(reach.reason, SkipReason::ConsentWithdrawn as i32);
    testkit::eventually(
        "the withdrawal in the replica",
        Duration::from_secs(30),
        || async {
            (replica(&app, &ada.id).await == Some(ConsentStatus::Withdrawn as i16)).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_hard_bounce_suppresses_the_address_for_every_tenant_without_showing_it() {
    let app = TestApp::spawn().await;
    let mut here = app.admin();
    suppress(&mut here, "gone@example.com", SuppressionReason::HardBounce)
        .await
        .expect("hard bounce");
    let mut there = app.stranger();
    let person = create_contact(&mut there, "Gone", "gone@example.com").await;
    set_consent(
        &mut there,
        &person.id,
        Channel::Email,
        ConsentStatus::Granted,
    )
    .await;
    let reach = reachability(&mut there, &person.id, Channel::Email)
        .await
        .expect("reachability");
    assert_eq!(reach.reason, SkipReason::Suppressed as i32, "{reach:?}");
    let listed = there
        .consent
        .list_suppressions(ListSuppressionsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(
        listed.suppressions.is_empty(),
        "no other tenant's address shows"
    );
    // Nor can that tenant lift it.
    let here_list = here
        .consent
        .list_suppressions(ListSuppressionsRequest::default())
        .await
        .expect("list")
        .into_inner();
    let denied = there
        .consent
        .delete_suppression(DeleteSuppressionRequest {
            id: here_list.suppressions[0].id.clone(),
        })
        .await
        .expect_err("another tenant's suppression");
    assert_eq!(denied.code(), Code::NotFound);
}

#[tokio::test]
async fn merges_and_erasures_reach_the_memberships_and_the_replica() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let survivor = create_contact(&mut admin, "Survivor", "s@example.com").await;
    let merged = create_contact(&mut admin, "Merged", "m@example.com").await;
    let erased = create_contact(&mut admin, "Erased", "e@example.com").await;
    set_consent(
        &mut admin,
        &erased.id,
        Channel::Email,
        ConsentStatus::Granted,
    )
    .await;
    suppress(&mut admin, "e@example.com", SuppressionReason::Unsubscribed)
        .await
        .expect("the person unsubscribed");
    let campaign = create_campaign(&mut admin, named("Merge test")).await;
    add_contacts(&mut admin, &campaign.id, &[&merged.id, &erased.id])
        .await
        .expect("members");
    admin
        .contacts
        .merge_contacts(crm_proto::crm::customers::v1::MergeContactsRequest {
            survivor_id: survivor.id.clone(),
            merged_id: merged.id.clone(),
            take_from_merged: vec![],
        })
        .await
        .expect("merge");
    app.erase(&erased.id).await;
    let campaign_id = campaign.id.clone();
    let expected = vec![survivor.id.clone()];
    testkit::eventually(
        "memberships after merge and erasure",
        Duration::from_secs(30),
        || {
            let mut admin = app.admin();
            let (campaign_id, expected) = (campaign_id.clone(), expected.clone());
            async move {
                let now: Vec<String> = members(&mut admin, &campaign_id)
                    .await
                    .into_iter()
                    .map(|m| m.contact_id)
                    .collect();
                (now == expected).then_some(())
            }
        },
    )
    .await;
    assert_eq!(replica(&app, &erased.id).await, None, "erased consent goes");

    // The unsubscribed address is unreadable now, and still suppressed when
    // the person turns up again.
    let listed = admin
        .consent
        .list_suppressions(ListSuppressionsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .suppressions;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].address.starts_with("erased:"), "{:?}", listed[0]);
    let again = create_contact(&mut admin, "Returned", "e@example.com").await;
    set_consent(
        &mut admin,
        &again.id,
        Channel::Email,
        ConsentStatus::Granted,
    )
    .await;
    let reach = reachability(&mut admin, &again.id, Channel::Email)
        .await
        .expect("reachability");
    assert_eq!(reach.reason, SkipReason::Suppressed as i32, "{reach:?}");
}

#[tokio::test]
async fn suppressions_and_reachability_refuse_bad_input_and_wrong_roles() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let refused = admin
        .consent
        .add_suppression(AddSuppressionRequest {
            suppression: Some(Suppression {
                channel: Channel::Phone as i32,
                address: "not an address".into(),
                reason: 99,
                ..Default::default()
            }),
        })
        .await
        .expect_err("bad suppression");
    let mut fields = violated_fields(&refused);
    fields.sort();
    assert_eq!(fields, vec!["suppression.channel", "suppression.reason"]);
    let bad_address = suppress(&mut admin, "no-at-sign", SuppressionReason::Manual)
        .await
        .expect_err("bad address");
    assert_eq!(violated_fields(&bad_address), vec!["suppression.address"]);
    let bad_channel = reachability(&mut admin, &Uuid::now_v7().to_string(), Channel::Phone)
        .await
        .expect_err("no channel");
    assert_eq!(violated_fields(&bad_channel), vec!["channel"]);

    let ada = create_contact(&mut admin, "Lovelace", "ada@example.com").await;
    let mut rep = app.client(&[Role::SalesRep], Visibility::Own, &[]);
    let listing = rep
        .consent
        .list_suppressions(ListSuppressionsRequest::default())
        .await
        .expect_err("reps do not read suppression lists");
    assert_eq!(listing.code(), Code::PermissionDenied);
    let hidden = reachability(&mut rep, &ada.id, Channel::Email)
        .await
        .expect_err("a contact the rep cannot see");
    assert_eq!(hidden.code(), Code::NotFound);
    let mut stranger = app.stranger();
    let foreign = reachability(&mut stranger, &ada.id, Channel::Email)
        .await
        .expect_err("another tenant's contact");
    assert_eq!(foreign.code(), Code::NotFound);
}
