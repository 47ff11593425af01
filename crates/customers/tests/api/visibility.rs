use crm_proto::crm::customers::v1::*;
use kit::auth::{Role, Visibility};
use tonic::Code;
use uuid::Uuid;

use crate::harness::*;

#[tokio::test]
async fn roles_and_visibility_decide_what_a_caller_sees_and_does() {
    let app = TestApp::spawn().await;
    let team = Uuid::now_v7();
    let mut rep = app.client(&[Role::SalesRep], Visibility::Own, &[team]);
    let mut teammate = app.client(&[Role::SalesRep], Visibility::Team, &[team]);
    let mut outsider = app.client(&[Role::SalesRep], Visibility::Own, &[]);
    let mut viewer = app.client(&[Role::Viewer], Visibility::Tenant, &[]);
    let mut manager = app.client(&[Role::Manager], Visibility::Tenant, &[]);

    let mine = create_contact(&mut rep, contact("Own", "Record", "own@example.com")).await;
    assert_eq!(mine.team_id, team.to_string());

    // Own visibility: another rep gets NOT_FOUND, not the data.
    let hidden = outsider
        .contacts
        .get_contact(GetContactRequest {
            id: mine.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    let listed = outsider
        .contacts
        .list_contacts(ListContactsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .contacts;
    assert!(listed.is_empty());
    // Team visibility sees the team's records.
    teammate
        .contacts
        .get_contact(GetContactRequest {
            id: mine.id.clone(),
        })
        .await
        .unwrap();
    // Viewers read everything but change nothing.
    viewer
        .contacts
        .get_contact(GetContactRequest {
            id: mine.id.clone(),
        })
        .await
        .unwrap();
    let denied = viewer
        .contacts
        .create_contact(CreateContactRequest {
            contact: Some(contact("V", "W", "")),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    // Reps cannot merge, managers can't erase.
    let merge = rep
        .contacts
        .merge_contacts(MergeContactsRequest {
            survivor_id: mine.id.clone(),
            merged_id: mine.id.clone(),
            take_from_merged: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(merge.code(), Code::PermissionDenied);
    let erase = manager
        .data
        .erase_contact(EraseContactRequest {
            contact_id: mine.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(erase.code(), Code::PermissionDenied);
    // An own-visibility rep cannot hand a record to someone it cannot see.
    let handoff = rep
        .contacts
        .create_contact(CreateContactRequest {
            contact: Some(Contact {
                owner_id: Uuid::now_v7().to_string(),
                team_id: Uuid::now_v7().to_string(),
                ..contact("A", "B", "")
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(handoff.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn another_tenants_ids_are_not_found_and_tokens_are_checked() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let account = create_account(&mut admin, "Tenant A Ltd", "a.example").await;
    let person = create_contact(&mut admin, contact("Secret", "Person", "secret@a.example")).await;

    let mut other = app.client_in(
        Uuid::now_v7(),
        Uuid::now_v7(),
        &[Role::Admin],
        Visibility::Tenant,
        &[],
    );
    assert_eq!(
        other
            .contacts
            .get_contact(GetContactRequest {
                id: person.id.clone()
            })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        other
            .accounts
            .get_account(GetAccountRequest {
                id: account.id.clone()
            })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let update = other
        .contacts
        .update_contact(UpdateContactRequest {
            contact: Some(Contact {
                id: person.id.clone(),
                title: "pwned".into(),
                ..Default::default()
            }),
            update_mask: None,
            expected_version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(update.code(), Code::NotFound);
    assert_eq!(
        other
            .data
            .erase_contact(EraseContactRequest {
                contact_id: person.id.clone()
            })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    // Neither by substring nor through the typo-tolerant dictionary, which
    // finds it for its own tenant.
    for query in ["Secret", "Secert Persn"] {
        let hits = search(&mut other, query, 10).await;
        assert!(hits.is_empty(), "{query}: {hits:?}");
    }
    let own = search(&mut admin, "Secert Persn", 10).await;
    assert_eq!(own.first().map(|h| h.id.as_str()), Some(person.id.as_str()));
    // A contact of tenant B cannot point at tenant A's account.
    let cross = other
        .contacts
        .create_contact(CreateContactRequest {
            contact: Some(Contact {
                account_id: account.id.clone(),
                ..contact("B", "B", "")
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&cross), ["contact.account_id"]);

    // A token signed by another key is refused outright.
    let forger = testkit::TokenIssuer::new();
    let token = format!("Bearer {}", forger.admin_token(app.tenant));
    let mut request = tonic::Request::new(GetContactRequest {
        id: person.id.clone(),
    });
    request
        .metadata_mut()
        .insert("authorization", token.parse().unwrap());
    let mut raw = contact_service_client::ContactServiceClient::new(app.channel.clone());
    assert_eq!(
        raw.get_contact(request).await.unwrap_err().code(),
        Code::Unauthenticated
    );
}

/// Ownership changes need the transfer permission: a marketer cannot
/// reassign a contact, a support agent cannot create one for a teammate;
/// a manager can do both.
#[tokio::test]
async fn ownership_changes_need_the_transfer_permission() {
    let app = TestApp::spawn().await;
    let team = Uuid::now_v7();
    let mut admin = app.admin();
    let mut marketer = app.client(&[Role::Marketer], Visibility::Tenant, &[]);
    let mut agent = app.client(&[Role::SupportAgent], Visibility::Team, &[team]);
    let mut manager = app.client(&[Role::Manager], Visibility::Tenant, &[team]);
    let teammate = Uuid::now_v7().to_string();
    let person = create_contact(&mut admin, contact("Ada", "L", "")).await;

    let reassign = |owner: &str| UpdateContactRequest {
        contact: Some(Contact {
            id: person.id.clone(),
            owner_id: owner.to_owned(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["owner_id".into()],
        }),
        expected_version: 0,
    };
    let refused = marketer
        .contacts
        .update_contact(reassign(&marketer.user.to_string()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let for_teammate = CreateContactRequest {
        contact: Some(Contact {
            owner_id: teammate.clone(),
            team_id: team.to_string(),
            ..contact("Grace", "H", "")
        }),
        request_id: String::new(),
    };
    let refused = agent
        .contacts
        .create_contact(for_teammate.clone())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    // Their own records they create as before.
    create_contact(&mut agent, contact("Own", "Record", "")).await;

    manager
        .contacts
        .update_contact(reassign(&teammate))
        .await
        .unwrap();
    manager.contacts.create_contact(for_teammate).await.unwrap();
}
