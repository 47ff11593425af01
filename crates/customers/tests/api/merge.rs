use crm_proto::crm::customers::v1::*;
use kit::events::decode_data;
use tonic::Code;

use crate::harness::*;

#[tokio::test]
async fn duplicates_are_found_and_merged_with_the_union_of_their_data() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let mut first = contact("Grace", "Hopper", "grace@navy.example");
    first.tags = vec!["admiral".into()];
    let survivor = create_contact(&mut admin, first).await;
    let mut second = contact("Grace", "Hopper", "grace@navy.example");
    second.emails.push(Email {
        address: "g.hopper@cobol.example".into(),
        ..Default::default()
    });
    second.phones = vec![Phone {
        number: "+12025550123".into(),
        ..Default::default()
    }];
    second.tags = vec!["cobol".into()];
    second.title = "Rear Admiral".into();
    let duplicate = create_contact(&mut admin, second).await;
    let similar = create_contact(&mut admin, contact("Grace", "Hoper", "gh@navy.example")).await;
    create_contact(
        &mut admin,
        contact("Alan", "Turing", "alan@bletchley.example"),
    )
    .await;

    let found = admin
        .contacts
        .find_duplicate_contacts(FindDuplicateContactsRequest {
            contact_id: survivor.id.clone(),
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner()
        .duplicates;
    let ids: Vec<_> = found
        .iter()
        .map(|d| d.contact.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(ids, [duplicate.id.clone(), similar.id.clone()], "{found:?}");
    assert_eq!(found[0].score, 1.0);
    assert!(found[1].score < 1.0 && found[1].score > 0.3);

    let note = admin
        .activities
        .log_activity(LogActivityRequest {
            request_id: String::new(),
            activity: Some(Activity {
                kind: ActivityKind::Note as i32,
                subject: "met at conference".into(),
                contact_id: duplicate.id.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .activity
        .unwrap();

    let merged = admin
        .contacts
        .merge_contacts(MergeContactsRequest {
            survivor_id: survivor.id.clone(),
            merged_id: duplicate.id.clone(),
            take_from_merged: vec!["title".into()],
        })
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    let emails: Vec<_> = merged
        .emails
        .iter()
        .map(|e| (e.address.as_str(), e.primary))
        .collect();
    assert_eq!(
        emails,
        [
            ("grace@navy.example", true),
            ("g.hopper@cobol.example", false)
        ]
    );
    assert_eq!(merged.phones.len(), 1);
    assert_eq!(merged.tags, ["admiral", "cobol"]);
    assert_eq!(merged.title, "Rear Admiral");
    assert_eq!(
        admin
            .contacts
            .get_contact(GetContactRequest {
                id: duplicate.id.clone()
            })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    // The activity now hangs on the survivor.
    let moved = admin
        .activities
        .get_activity(GetActivityRequest {
            id: note.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .activity
        .unwrap();
    assert_eq!(moved.contact_id, survivor.id);
    let event = app
        .event("crm.customers.contact.merged.v1", &duplicate.id)
        .await;
    let payload: ContactMerged = decode_data(&event).unwrap();
    assert_eq!(
        (payload.survivor_id, payload.merged_id),
        (survivor.id.clone(), duplicate.id.clone())
    );

    let same = admin
        .contacts
        .merge_contacts(MergeContactsRequest {
            survivor_id: survivor.id.clone(),
            merged_id: survivor.id.clone(),
            take_from_merged: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&same), ["merged_id"]);
}
