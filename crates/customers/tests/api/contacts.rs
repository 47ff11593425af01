use crm_proto::crm::customers::v1::ContactUpdated;
use crm_proto::crm::customers::v1::*;
use kit::events::decode_data;
use prost_types::FieldMask;
use tonic::Code;

use crate::harness::*;

#[tokio::test]
async fn create_get_update_delete_with_events_and_versions() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let mut draft = contact(" Ada ", "Lovelace", "ADA@Example.com");
    draft.phones = vec![Phone {
        number: "+44 20 7946 0958".into(),
        ..Default::default()
    }];
    draft.tags = vec!["VIP".into()];
    let created = create_contact(&mut admin, draft).await;
    assert_eq!(created.first_name, "Ada");
    assert_eq!(created.emails[0].address, "ada@example.com");
    assert!(created.emails[0].primary);
    assert_eq!(created.phones[0].number, "+442079460958");
    assert_eq!(created.tags, ["vip"]);
    assert_eq!(
        created.owner_id,
        admin.user.to_string(),
        "the creator owns it by default"
    );
    assert_eq!(created.audit.as_ref().unwrap().version, 1);
    app.event("crm.customers.contact.created.v1", &created.id)
        .await;

    let fetched = admin
        .contacts
        .get_contact(GetContactRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.contact.as_ref(), Some(&created));

    // Partial update: only the masked fields change.
    let changes = Contact {
        id: created.id.clone(),
        title: "Countess".into(),
        first_name: "ignored".into(),
        lifecycle_stage: LifecycleStage::Customer as i32,
        ..Default::default()
    };
    let updated = admin
        .contacts
        .update_contact(UpdateContactRequest {
            contact: Some(changes.clone()),
            update_mask: Some(FieldMask {
                paths: vec!["title".into(), "lifecycle_stage".into()],
            }),
            expected_version: 1,
        })
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(updated.title, "Countess");
    assert_eq!(updated.first_name, "Ada");
    assert_eq!(updated.audit.as_ref().unwrap().version, 2);
    let event = app
        .event("crm.customers.contact.updated.v1", &created.id)
        .await;
    let payload: ContactUpdated = decode_data(&event).unwrap();
    assert_eq!(payload.changed_fields, ["title", "lifecycle_stage"]);
    let lifecycle = app
        .event("crm.customers.contact.lifecycle_changed.v1", &created.id)
        .await;
    let lifecycle: LifecycleStageChanged = decode_data(&lifecycle).unwrap();
    assert_eq!(lifecycle.to, LifecycleStage::Customer as i32);

    // A stale version is refused, and nothing changes.
    let stale = admin
        .contacts
        .update_contact(UpdateContactRequest {
            contact: Some(Contact {
                id: created.id.clone(),
                title: "Lady".into(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["title".into()],
            }),
            expected_version: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let unknown_path = admin
        .contacts
        .update_contact(UpdateContactRequest {
            contact: Some(Contact {
                id: created.id.clone(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["shoe_size".into()],
            }),
            expected_version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&unknown_path), ["update_mask.paths[0]"]);

    admin
        .contacts
        .delete_contact(DeleteContactRequest {
            id: created.id.clone(),
            expected_version: 2,
        })
        .await
        .unwrap();
    let gone = admin
        .contacts
        .get_contact(GetContactRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    app.event("crm.customers.contact.deleted.v1", &created.id)
        .await;
}

#[tokio::test]
async fn bad_input_names_every_field_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let mut bad = contact("Ada", "", "not-an-email");
    bad.phones = vec![Phone {
        number: "0151 123".into(),
        ..Default::default()
    }];
    bad.account_id = "12".into();
    bad.custom_fields
        .insert("tier".into(), string_value("gold"));
    let status = admin
        .contacts
        .create_contact(CreateContactRequest {
            contact: Some(bad),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&status),
        [
            "contact.emails[0].address",
            "contact.phones[0].number",
            "contact.account_id",
            "contact.custom_fields.tier"
        ]
    );
    let unknown_account = Contact {
        account_id: uuid::Uuid::now_v7().to_string(),
        ..contact("Ada", "L", "")
    };
    let status = admin
        .contacts
        .create_contact(CreateContactRequest {
            contact: Some(unknown_account),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["contact.account_id"]);
    let count = admin
        .contacts
        .count_contacts(CountContactsRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(count, 0, "nothing half-written");
    let missing = admin
        .contacts
        .get_contact(GetContactRequest { id: "nope".into() })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&missing), ["id"]);
}

#[tokio::test]
async fn custom_fields_are_validated_on_every_write() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    for field in [
        FieldDefinition {
            entity: Entity::Contact as i32,
            key: "tier".into(),
            label: "Tier".into(),
            r#type: FieldType::SingleSelect as i32,
            required: true,
            options: vec!["gold".into(), "silver".into()],
        },
        FieldDefinition {
            entity: Entity::Contact as i32,
            key: "credit".into(),
            label: "Credit".into(),
            r#type: FieldType::Decimal as i32,
            required: false,
            options: vec![],
        },
    ] {
        admin
            .fields
            .define_field(DefineFieldRequest { field: Some(field) })
            .await
            .unwrap();
    }
    let bad_definition = admin
        .fields
        .define_field(DefineFieldRequest {
            field: Some(FieldDefinition {
                entity: Entity::Contact as i32,
                key: "Bad Key".into(),
                label: "x".into(),
                r#type: FieldType::Text as i32,
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad_definition), ["field.key"]);

    let missing_required = admin
        .contacts
        .create_contact(CreateContactRequest {
            contact: Some(contact("Ada", "L", "")),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&missing_required),
        ["contact.custom_fields.tier"]
    );

    let mut wrong = contact("Ada", "L", "");
    wrong
        .custom_fields
        .insert("tier".into(), string_value("platinum"));
    wrong.custom_fields.insert(
        "credit".into(),
        prost_types::Value {
            kind: Some(prost_types::value::Kind::NumberValue(1.5)),
        },
    );
    let status = admin
        .contacts
        .create_contact(CreateContactRequest {
            contact: Some(wrong),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&status),
        ["contact.custom_fields.credit", "contact.custom_fields.tier"]
    );

    let mut good = contact("Ada", "L", "");
    good.custom_fields
        .insert("tier".into(), string_value("gold"));
    good.custom_fields
        .insert("credit".into(), string_value("1200.50"));
    let created = create_contact(&mut admin, good).await;
    assert_eq!(created.custom_fields["credit"], string_value("1200.5"));

    let gold = admin
        .contacts
        .count_contacts(CountContactsRequest {
            filter: Some(condition(
                "custom.credit",
                Operator::Gt,
                string_value("1000"),
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(gold, 1);
}

#[tokio::test]
async fn lists_filter_sort_and_page_stably_under_inserts() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    for (i, name) in ["Babbage", "Curie", "Darwin", "Euler", "Faraday"]
        .iter()
        .enumerate()
    {
        let mut c = contact("X", name, &format!("{}@example.com", name.to_lowercase()));
        if i % 2 == 0 {
            c.tags = vec!["vip".into()];
        }
        create_contact(&mut admin, c).await;
    }
    let first = admin
        .contacts
        .list_contacts(ListContactsRequest {
            tag: String::new(),
            lifecycle_stage: 0,
            owner_id: String::new(),
            filter: None,
            order_by: "last_name".into(),
            page: Some(crm_proto::crm::common::v1::PageRequest {
                page_size: 2,
                page_token: String::new(),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = first
        .contacts
        .iter()
        .map(|c| c.last_name.as_str())
        .collect();
    assert_eq!(names, ["Babbage", "Curie"]);
    // An insert that sorts before the cursor does not shift the next page.
    create_contact(&mut admin, contact("X", "Avogadro", "")).await;
    let second = admin
        .contacts
        .list_contacts(ListContactsRequest {
            tag: String::new(),
            lifecycle_stage: 0,
            owner_id: String::new(),
            filter: None,
            order_by: "last_name".into(),
            page: Some(crm_proto::crm::common::v1::PageRequest {
                page_size: 2,
                page_token: first.page.unwrap().next_page_token,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = second
        .contacts
        .iter()
        .map(|c| c.last_name.as_str())
        .collect();
    assert_eq!(names, ["Darwin", "Euler"]);

    let vip = admin
        .contacts
        .list_contacts(ListContactsRequest {
            tag: String::new(),
            lifecycle_stage: 0,
            owner_id: String::new(),
            filter: Some(condition("tags", Operator::Eq, string_value("VIP"))),
            order_by: "-last_name".into(),
            page: None,
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = vip.contacts.iter().map(|c| c.last_name.as_str()).collect();
    assert_eq!(names, ["Faraday", "Darwin", "Babbage"]);

    let bad = admin
        .contacts
        .list_contacts(ListContactsRequest {
            tag: String::new(),
            lifecycle_stage: 0,
            owner_id: String::new(),
            filter: Some(condition(
                "created_at",
                Operator::Gt,
                string_value("yesterday"),
            )),
            order_by: String::new(),
            page: None,
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad), ["filter.condition.value"]);
    let bad_sort = admin
        .contacts
        .list_contacts(ListContactsRequest {
            tag: String::new(),
            lifecycle_stage: 0,
            owner_id: String::new(),
            filter: None,
            order_by: "salary".into(),
            page: None,
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad_sort), ["order_by"]);

    let hits = search(&mut admin, "farady", 5).await;
    assert_eq!(
        hits.first().map(|h| h.title.as_str()),
        Some("X Faraday"),
        "typo-tolerant search: {hits:?}"
    );
    // Words outside ASCII and joined by a hyphen are corrected too, every
    // word of the query against the dictionary.
    let soren = create_contact(&mut admin, contact("Søren", "Kierkegaard-Ørsted", "")).await;
    let hits = search(&mut admin, "sren kirkegard orsted", 5).await;
    assert_eq!(
        hits.first().map(|h| h.id.as_str()),
        Some(soren.id.as_str()),
        "{hits:?}"
    );
}

#[tokio::test]
async fn consent_changes_are_recorded_and_published() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let created = create_contact(&mut admin, contact("Ada", "L", "ada@example.com")).await;
    let updated = admin
        .contacts
        .update_consent(UpdateConsentRequest {
            contact_id: created.id.clone(),
            channel: Channel::Email as i32,
            status: ConsentStatus::Withdrawn as i32,
            source: "unsubscribe_link".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(updated.consents.len(), 1);
    assert_eq!(updated.consents[0].status, ConsentStatus::Withdrawn as i32);
    let event = app
        .event("crm.customers.contact.consent_changed.v1", &created.id)
        .await;
    let payload: ConsentChanged = decode_data(&event).unwrap();
    assert_eq!(payload.status, ConsentStatus::Withdrawn as i32);
    let missing_source = admin
        .contacts
        .update_consent(UpdateConsentRequest {
            contact_id: created.id.clone(),
            channel: Channel::Sms as i32,
            status: 0,
            source: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&missing_source), ["status", "source"]);
}

#[tokio::test]
async fn a_retried_create_with_the_same_request_id_returns_the_first_record() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let request = CreateContactRequest {
        contact: Some(contact("Lead", "Converted", "lead@example.com")),
        request_id: "lead-42".into(),
    };
    let first = admin
        .contacts
        .create_contact(request.clone())
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    let again = admin
        .contacts
        .create_contact(request)
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(
        admin
            .contacts
            .count_contacts(CountContactsRequest { filter: None })
            .await
            .unwrap()
            .into_inner()
            .count,
        1
    );
}

#[tokio::test]
async fn the_callers_trace_continues_into_the_published_event() {
    let app = TestApp::spawn().await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let token = format!("Bearer {}", app.services.issuer.admin_token(app.tenant));
    let mut client = contact_service_client::ContactServiceClient::new(app.channel.clone());
    let mut request = tonic::Request::new(CreateContactRequest {
        contact: Some(contact("Trace", "Me", "")),
        request_id: String::new(),
    });
    request
        .metadata_mut()
        .insert("authorization", token.parse().unwrap());
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    let created = client
        .create_contact(request)
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    let event = app
        .event("crm.customers.contact.created.v1", &created.id)
        .await;
    let parts: Vec<&str> = event.trace_parent.split('-').collect();
    assert_eq!(
        parts.get(1).copied(),
        Some(trace_id),
        "traceparent {:?}",
        event.trace_parent
    );
    assert_ne!(
        parts.get(2).copied(),
        Some("00f067aa0ba902b7"),
        "the service adds its own span"
    );
}
