use std::collections::HashMap;

use crm_proto::crm::customers::v1::*;
use kit::events::decode_data;
use std::time::Duration;
use testkit::eventually;

use crate::harness::*;

fn header(dedup: DedupPolicy, dry_run: bool, format: ImportFormat) -> ImportRequest {
    let mapping: HashMap<String, String> = [
        ("First", "first_name"),
        ("Last", "last_name"),
        ("E-mail", "email"),
        ("Phone", "phone"),
        ("Stage", "lifecycle_stage"),
        ("Labels", "tags"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    ImportRequest {
        part: Some(import_request::Part::Header(ImportHeader {
            entity: Entity::Contact as i32,
            format: format as i32,
            mapping,
            dedup: dedup as i32,
            dry_run,
            owner_id: String::new(),
        })),
    }
}

/// Uploads `body` in small chunks and returns every progress message.
async fn import(client: &mut Client, header: ImportRequest, body: &[u8]) -> Vec<ImportResponse> {
    // Chunks that split rows and multi-byte characters on purpose.
    import_in_chunks(client, header, body, 7).await
}

/// Uploads `body` in chunks of `size` bytes and returns every progress
/// message.
async fn import_in_chunks(
    client: &mut Client,
    header: ImportRequest,
    body: &[u8],
    size: usize,
) -> Vec<ImportResponse> {
    let mut stream = client
        .data
        .import(tokio_stream::iter(uploaded_in(header, body, size)))
        .await
        .unwrap()
        .into_inner();
    let mut responses = Vec::new();
    while let Some(response) = stream.message().await.unwrap() {
        responses.push(response);
    }
    responses
}

const CSV: &str = "First,Last,E-mail,Phone,Stage,Labels\n\
Zoë,Ørsted,zoe@example.com,+45 12 34 56 78,customer,vip;nordic\n\
Bad,Mail,not-an-email,,lead,\n\
Short,Row\n\
Li,Wei,li.wei@example.cn,+86 138 0013 8000,vip,\n\
Carl,Gauss,carl@example.de,,lead,math\n";

#[tokio::test]
async fn import_reports_bad_rows_and_keeps_good_ones() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();

    let dry = import(
        &mut admin,
        header(DedupPolicy::Skip, true, ImportFormat::Csv),
        CSV.as_bytes(),
    )
    .await;
    let summary = dry.last().unwrap();
    assert!(summary.done);
    assert_eq!(
        (summary.rows_read, summary.created, summary.failed),
        (5, 2, 3)
    );
    assert_eq!(
        admin
            .contacts
            .count_contacts(CountContactsRequest { filter: None })
            .await
            .unwrap()
            .into_inner()
            .count,
        0,
        "a dry run writes nothing"
    );
    let mut errors: Vec<_> = summary
        .errors
        .iter()
        .map(|e| (e.row, e.column.as_str()))
        .collect();
    errors.sort();
    assert_eq!(
        errors,
        [(2, "E-mail"), (3, ""), (4, "Stage")],
        "{:?}",
        summary.errors
    );

    let real = import(
        &mut admin,
        header(DedupPolicy::Skip, false, ImportFormat::Csv),
        CSV.as_bytes(),
    )
    .await;
    let summary = real.last().unwrap();
    assert_eq!(
        (summary.created, summary.failed, summary.skipped),
        (2, 3, 0)
    );
    let all_errors: usize = real.iter().map(|r| r.errors.len()).sum();
    assert_eq!(all_errors, 3, "each error reported once");
    let zoe = admin
        .contacts
        .list_contacts(ListContactsRequest {
            filter: Some(condition(
                "email",
                Operator::Eq,
                string_value("zoe@example.com"),
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .contacts;
    assert_eq!(zoe[0].last_name, "Ørsted");
    assert_eq!(zoe[0].phones[0].number, "+4512345678");
    assert_eq!(zoe[0].tags, ["vip", "nordic"]);
    app.event("crm.customers.contact.created.v1", &zoe[0].id)
        .await;

    // Dedup: skip leaves the existing record, update changes it, create makes another.
    let again = "First,Last,E-mail,Phone,Stage,Labels\nZoe,Orsted-Updated,zoe@example.com,,evangelist,speaker\n";
    let skipped = import(
        &mut admin,
        header(DedupPolicy::Skip, false, ImportFormat::Csv),
        again.as_bytes(),
    )
    .await;
    assert_eq!(skipped.last().unwrap().skipped, 1);
    let updated = import(
        &mut admin,
        header(DedupPolicy::Update, false, ImportFormat::Csv),
        again.as_bytes(),
    )
    .await;
    assert_eq!(updated.last().unwrap().updated, 1);
    let zoe_now = admin
        .contacts
        .get_contact(GetContactRequest {
            id: zoe[0].id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(zoe_now.last_name, "Orsted-Updated");
    assert_eq!(zoe_now.tags, ["vip", "nordic", "speaker"]);
    assert_eq!(zoe_now.lifecycle_stage, LifecycleStage::Evangelist as i32);
    let event = app
        .event("crm.customers.contact.updated.v1", &zoe[0].id)
        .await;
    let payload: ContactUpdated = decode_data(&event).unwrap();
    assert!(payload.changed_fields.contains(&"last_name".to_owned()));
    let created = import(
        &mut admin,
        header(DedupPolicy::Create, false, ImportFormat::Csv),
        again.as_bytes(),
    )
    .await;
    assert_eq!(created.last().unwrap().created, 1);
    assert_eq!(
        admin
            .contacts
            .count_contacts(CountContactsRequest { filter: None })
            .await
            .unwrap()
            .into_inner()
            .count,
        3
    );
}

#[tokio::test]
async fn import_rejects_bad_encoding_per_row_and_reads_json_lines() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let mut body = b"First,Last,E-mail\nGood,Row,good@example.com\n".to_vec();
    body.extend_from_slice(b"Bad\xff\xfe,Bytes,bad@example.com\n");
    body.extend_from_slice(b"Also,Good,also@example.com\n");
    let responses = import(
        &mut admin,
        header(DedupPolicy::Skip, false, ImportFormat::Csv),
        &body,
    )
    .await;
    let summary = responses.last().unwrap();
    assert_eq!((summary.created, summary.failed), (2, 1));
    let error = responses
        .iter()
        .flat_map(|r| r.errors.iter())
        .next()
        .unwrap();
    assert_eq!(
        (error.row, error.column.as_str(), error.reason.as_str()),
        (2, "First", "is not valid UTF-8")
    );

    let lines =
        b"{\"First\": \"Json\", \"Last\": \"Line\", \"E-mail\": \"json@example.com\"}\nnot json\n";
    let responses = import(
        &mut admin,
        header(DedupPolicy::Skip, false, ImportFormat::JsonLines),
        lines,
    )
    .await;
    let summary = responses.last().unwrap();
    assert_eq!((summary.created, summary.failed), (1, 1));

    let bad_header = ImportRequest {
        part: Some(import_request::Part::Header(ImportHeader {
            entity: Entity::Contact as i32,
            format: ImportFormat::Csv as i32,
            mapping: [("X".to_owned(), "salary".to_owned())]
                .into_iter()
                .collect(),
            ..Default::default()
        })),
    };
    let status = admin
        .data
        .import(tokio_stream::iter(vec![bad_header]))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["header.mapping[X]"]);
}

#[tokio::test]
async fn export_streams_csv_of_a_filter() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    for i in 0..30 {
        let mut c = contact("Person", &format!("N{i:02}"), &format!("p{i}@example.com"));
        if i % 3 == 0 {
            c.tags = vec!["export".into()];
        }
        if i == 0 {
            c.title = "=HYPERLINK(\"http://evil\")".into();
        }
        create_contact(&mut admin, c).await;
    }
    let mut stream = admin
        .data
        .export(ExportRequest {
            entity: Entity::Contact as i32,
            filter: Some(condition("tags", Operator::Eq, string_value("export"))),
        })
        .await
        .unwrap()
        .into_inner();
    let mut body = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        body.extend(chunk.chunk);
    }
    let mut reader = csv::Reader::from_reader(body.as_slice());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "id");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 10);
    let title = headers.iter().position(|h| h == "title").unwrap();
    assert!(
        rows.iter().any(|r| r[title].starts_with("'=")),
        "formulas are neutralised"
    );
}

#[tokio::test]
async fn gdpr_export_then_erase_removes_personal_data() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let mut person = contact("Erika", "Mustermann", "erika@example.de");
    person.phones = vec![Phone {
        number: "+4930123456".into(),
        ..Default::default()
    }];
    let person = create_contact(&mut admin, person).await;
    let pool = app.db().admin_pool().await;
    let terms: Vec<String> = sqlx::query_scalar(
        "SELECT term FROM search_terms WHERE term IN ('erika', 'mustermann') ORDER BY term",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        terms,
        ["erika", "mustermann"],
        "the name is in the search dictionary"
    );
    // Its creation is published (and marked so) before the erasure.
    eventually("contact.created is published", Duration::from_secs(15), || {
        let (pool, id) = (pool.clone(), person.id.clone());
        async move {
            let (published,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM outbox WHERE aggregate_id = $1::uuid AND published_at IS NOT NULL",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .ok()?;
            (published > 0).then_some(())
        }
    })
    .await;
    admin
        .activities
        .log_activity(LogActivityRequest {
            request_id: String::new(),
            activity: Some(Activity {
                kind: ActivityKind::Note as i32,
                subject: "likes cats".into(),
                contact_id: person.id.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();

    let exported = admin
        .data
        .export_contact_data(ExportContactDataRequest {
            contact_id: person.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let document: serde_json::Value = serde_json::from_str(&exported.json).unwrap();
    assert_eq!(
        document["contact"]["emails"][0]["address"],
        "erika@example.de"
    );
    assert_eq!(document["activities"][0]["subject"], "likes cats");

    admin
        .data
        .erase_contact(EraseContactRequest {
            contact_id: person.id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        admin
            .contacts
            .get_contact(GetContactRequest {
                id: person.id.clone()
            })
            .await
            .unwrap_err()
            .code(),
        tonic::Code::NotFound
    );
    // Nothing personal is left in the database, whatever the API shows.
    let (in_outbox,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM outbox WHERE position('erika' in encode(envelope, 'escape')) > 0",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        in_outbox, 0,
        "published events about the contact left the outbox"
    );
    // The erasure event names the person's e-mail and phone only as hashes.
    let event = app
        .event("crm.customers.contact.erased.v1", &person.id)
        .await;
    let erased: ContactErased = prost::Message::decode(event.data.as_slice()).unwrap();
    let tenant = app.tenant;
    let mut expected = vec![
        kit::events::contact_point_hash(tenant, "erika@example.de"),
        kit::events::contact_point_hash(tenant, "+4930123456"),
    ];
    expected.sort();
    let mut hashes = erased.contact_point_hashes.clone();
    hashes.sort();
    assert_eq!(hashes, expected);
    let (leftover,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM contacts WHERE first_name || last_name || emails::text || phones::text || search_text ILIKE '%erika%'
            OR phones::text LIKE '%30123456%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(leftover, 0);
    let (indexed,): (i64,) = sqlx::query_as("SELECT count(*) FROM search_index WHERE search_text ILIKE '%erika%' OR title ILIKE '%erika%'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(indexed, 0, "erased from the search index too");
    let terms: Vec<String> =
        sqlx::query_scalar("SELECT term FROM search_terms WHERE term IN ('erika', 'mustermann')")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(
        terms.is_empty(),
        "and from the search dictionary: {terms:?}"
    );
    let (notes,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM activities WHERE subject LIKE '%cats%'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(notes, 0);
}

/// The messages of an upload: the header, then `body` in 16 KiB chunks.
fn uploaded(header: ImportRequest, body: &[u8]) -> Vec<ImportRequest> {
    uploaded_in(header, body, 16 * 1024)
}

/// The header, then `body` in chunks of `size` bytes.
fn uploaded_in(header: ImportRequest, body: &[u8], size: usize) -> Vec<ImportRequest> {
    std::iter::once(header)
        .chain(body.chunks(size).map(|chunk| ImportRequest {
            part: Some(import_request::Part::Chunk(chunk.to_vec())),
        }))
        .collect()
}

/// Hostile uploads: an over-long JSON line or an unterminated CSV quote is
/// an error, not a buffer that grows with the upload; an import larger
/// than its cap stops; a tenant runs a bounded number of imports at once.
#[tokio::test]
async fn imports_are_bounded_in_record_size_upload_size_and_concurrency() {
    let app = TestApp::spawn_with(customers::ImportLimits {
        max_bytes: 400_000,
        concurrent_per_tenant: 1,
        ..Default::default()
    })
    .await;
    let mut admin = app.admin();

    // 1. A JSON line of 100 KiB without its newline yet, then good rows.
    let mut body = format!("{{\"Last\": \"{}", "x".repeat(100 * 1024)).into_bytes();
    body.extend_from_slice(b"\"}\n{\"Last\": \"Lovelace\"}\n");
    let progress = import(
        &mut admin,
        header(DedupPolicy::Create, false, ImportFormat::JsonLines),
        &body,
    )
    .await;
    let summary = progress.last().unwrap();
    assert_eq!((summary.created, summary.failed), (1, 1), "{summary:?}");
    let errors: Vec<_> = progress.iter().flat_map(|p| p.errors.clone()).collect();
    assert!(errors[0].reason.contains("longer than"), "{errors:?}");

    // 2. An unterminated quote: the rest of the file is one endless field.
    let mut csv = b"First,Last\nAda,Lovelace\n\"Grace,".to_vec();
    csv.extend(std::iter::repeat_n(b'z', 300_000));
    let mut stream = admin
        .data
        .import(tokio_stream::iter(uploaded(
            header(DedupPolicy::Create, false, ImportFormat::Csv),
            &csv,
        )))
        .await
        .unwrap()
        .into_inner();
    let mut reasons = Vec::new();
    while let Ok(Some(message)) = stream.message().await {
        reasons.extend(message.errors.into_iter().map(|e| e.reason));
    }
    assert!(
        reasons.iter().any(|r| r.contains("longer than")),
        "{reasons:?}"
    );

    // 3. Over the import's 400,000 bytes: the upload is refused.
    let big = "Many,Rows\n".repeat(50_000);
    let mut stream = admin
        .data
        .import(tokio_stream::iter(uploaded(
            header(DedupPolicy::Create, true, ImportFormat::Csv),
            big.as_bytes(),
        )))
        .await
        .unwrap()
        .into_inner();
    let refused = loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the oversized import finished"),
            Err(status) => break status,
        }
    };
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );

    // 4. One import at a time per tenant: a second one while the first is
    // still uploading is refused; another tenant is not held up.
    let (held_tx, held_rx) = tokio::sync::mpsc::channel(1);
    held_tx
        .send(header(DedupPolicy::Create, true, ImportFormat::Csv))
        .await
        .unwrap();
    let _first = admin
        .data
        .import(tokio_stream::wrappers::ReceiverStream::new(held_rx))
        .await
        .unwrap();
    let second = admin
        .data
        .import(tokio_stream::iter(vec![header(
            DedupPolicy::Create,
            true,
            ImportFormat::Csv,
        )]))
        .await
        .unwrap_err();
    assert_eq!(second.code(), tonic::Code::ResourceExhausted, "{second:?}");
    let mut other = app.client_in(
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        &[kit::auth::Role::Admin],
        kit::auth::Visibility::Tenant,
        &[],
    );
    let elsewhere = import(
        &mut other,
        header(DedupPolicy::Create, true, ImportFormat::Csv),
        CSV.as_bytes(),
    )
    .await;
    assert!(elsewhere.last().unwrap().done);
    drop(held_tx);
}

/// Duplicate checks by e-mail or phone (on create, import and the
/// duplicates view) go through the `contact_points` btree: in a tenant of
/// 30,000 contacts, with no statistics gathered, the plan reads that index
/// and the matches by primary key, never the tenant's contacts in creation
/// order (the ORDER BY + LIMIT trap that cost 25-36 ms a row).
#[tokio::test]
async fn contact_point_lookups_stay_index_lookups_in_a_large_tenant() {
    let app = TestApp::spawn().await;
    let admin_pool = app.db().admin_pool().await;
    sqlx::query(
        "INSERT INTO contacts (tenant_id, id, last_name, email_keys, phone_keys, created_at, created_by, updated_at, updated_by)
         SELECT $1, gen_random_uuid(), 'n' || g, ARRAY['p' || g || '@example.com'], ARRAY['+4930' || (1000000 + g)],
                now() - g * interval '1 second', 'test', now(), 'test'
           FROM generate_series(1, 30000) AS g",
    )
    .bind(app.tenant)
    .execute(&admin_pool)
    .await
    .unwrap();
    // The trigger indexed every live contact's points.
    let (points,): (i64,) = sqlx::query_as("SELECT count(*) FROM contact_points")
        .fetch_one(&admin_pool)
        .await
        .unwrap();
    assert_eq!(points, 60_000);

    // Planned and run as the service runs it: the runtime role, in the
    // tenant's scope.
    let database =
        kit::db::Database::from_pool(sqlx::PgPool::connect(&app.db().config().url).await.unwrap());
    let mut tx = database.begin_tenant(app.tenant).await.unwrap();
    let points = vec!["p17@example.com", "+49301000018"];
    let plan: Vec<(String,)> = sqlx::query_as(&format!(
        "EXPLAIN {}",
        customers::store::contacts::CONTACT_POINT_MATCHES
    ))
    .bind(app.tenant)
    .bind(&points)
    .bind(None::<uuid::Uuid>)
    .bind(5i64)
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    let plan: String = plan.into_iter().map(|(line,)| line + "\n").collect();
    assert!(plan.contains("contact_points_pkey"), "{plan}");
    assert!(!plan.contains("Seq Scan"), "{plan}");
    let ids: Vec<uuid::Uuid> = vec![uuid::Uuid::now_v7(), uuid::Uuid::now_v7()];
    let plan: Vec<(String,)> = sqlx::query_as(&format!(
        "EXPLAIN {}",
        customers::store::contacts::contacts_by_id()
    ))
    .bind(app.tenant)
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    let plan: String = plan.into_iter().map(|(line,)| line + "\n").collect();
    assert!(plan.contains("contacts_pkey"), "{plan}");

    let points: Vec<String> = points.into_iter().map(String::from).collect();
    let found = customers::store::contacts::find_by_contact_points(
        &mut tx,
        app.tenant,
        &points[..1],
        &points[1..],
        None,
        5,
    )
    .await
    .unwrap();
    let names: Vec<&str> = found.iter().map(|c| c.last_name.as_str()).collect();
    assert_eq!(names, ["n18", "n17"], "oldest first");

    // List filters by last name and by e-mail, as the list query renders
    // them, read an index too: not `lower(last_name)` or `email_keys && ..`,
    // which row-level security keeps from using one. Unlike the lookups
    // above, a filtered page ordered by creation needs statistics to be
    // planned well (autovacuum gathers them; the cluster deploy/lib.sh
    // starts keeps it on).
    sqlx::query("ANALYZE contacts")
        .execute(&admin_pool)
        .await
        .unwrap();
    sqlx::query("ANALYZE contact_points")
        .execute(&admin_pool)
        .await
        .unwrap();
    use customers::domain::custom_fields::FieldCatalog;
    use customers::domain::filter::{check, CONTACT_COLUMNS};
    use customers::store::records::{select_visible, Table};
    for (field, value, index) in [
        ("last_name", "N17", "contacts_last_name_key"),
        ("email", "P17@example.com", "contact_points_pkey"),
    ] {
        let filter = condition(field, Operator::Eq, string_value(value));
        let expr = check(
            Some(&filter),
            CONTACT_COLUMNS,
            &FieldCatalog::default(),
            "filter",
        )
        .unwrap();
        let query = select_visible(
            Table::Contacts,
            "id",
            app.tenant,
            &kit::access::Scope::Tenant,
            expr.as_ref(),
        );
        let explain = format!(
            "EXPLAIN {} ORDER BY created_at DESC, id DESC LIMIT 50",
            query.sql()
        );
        let plan = sqlx::query_as::<_, (String,)>(&explain).bind(app.tenant);
        let plan: Vec<(String,)> = if field == "email" {
            plan.bind(vec![value.to_lowercase()])
        } else {
            plan.bind(value)
        }
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        let plan: String = plan.into_iter().map(|(line,)| line + "\n").collect();
        assert!(plan.contains(index), "{field}: {plan}");
        assert!(!plan.contains("Seq Scan on contacts"), "{field}: {plan}");
    }
}

/// A large import goes through the set-based path (ten batches): exactly
/// the bad rows are reported, duplicates of stored contacts and of earlier
/// rows are skipped, and each created contact gets exactly one
/// `contact.created` event, indexed for search and duplicate checks.
#[tokio::test]
async fn ten_thousand_row_import_reports_exactly_the_bad_rows_and_one_event_per_contact() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let account = create_account(&mut admin, "Acme", "acme.example").await;
    let before = create_contact(&mut admin, contact("Pre", "Existing", "row7@bulk.example")).await;

    const ROWS: i64 = 10_000;
    let missing_account = uuid::Uuid::now_v7().to_string();
    let mut csv = String::from("First,Last,E-mail,Phone,Stage,Labels,Account\n");
    let mut bad = std::collections::BTreeSet::new();
    // What the import must do, worked out from the rows themselves: a
    // valid row whose address is already taken is a duplicate.
    let mut taken = std::collections::HashSet::from(["row7@bulk.example".to_owned()]);
    let mut duplicates = 0i64;
    for row in 1..=ROWS {
        let mut email = format!("row{row}@bulk.example");
        if row % 89 == 0 {
            // The address of a row 50 earlier, often in the previous batch.
            email = format!("row{}@bulk.example", row - 50);
        }
        let (mut stage, mut account_id) = ("lead", account.id.clone());
        if row % 97 == 0 {
            email = format!("not-an-email-{row}");
        } else if row % 101 == 0 {
            stage = "nonsense";
        } else if row % 251 == 0 {
            account_id = missing_account.clone();
        }
        if row % 503 == 0 {
            csv.push_str(&format!("Short,{row}\n"));
        } else {
            let phone = format!("+49 30 {:07}", 1_000_000 + row);
            csv.push_str(&format!(
                "Ada,Bulk{row},{email},{phone},{stage},bulk,{account_id}\n"
            ));
        }
        if [97, 101, 251, 503].iter().any(|k| row % k == 0) {
            bad.insert(row);
        } else if !taken.insert(email) {
            duplicates += 1;
        }
    }
    assert!(duplicates > 100 && bad.len() > 200, "the file mixes both");
    let mut mapping = match header(DedupPolicy::Skip, false, ImportFormat::Csv).part {
        Some(import_request::Part::Header(h)) => h,
        _ => unreachable!(),
    };
    mapping
        .mapping
        .insert("Account".to_owned(), "account_id".to_owned());
    let request = ImportRequest {
        part: Some(import_request::Part::Header(mapping)),
    };
    let responses = import_in_chunks(&mut admin, request, csv.as_bytes(), 64 * 1024).await;
    let summary = responses.last().unwrap();
    assert!(summary.done);
    let reported: std::collections::BTreeSet<i64> = responses
        .iter()
        .flat_map(|r| r.errors.iter().map(|e| e.row))
        .collect();
    assert_eq!(reported, bad, "exactly the bad rows are reported");
    let expected_created = ROWS - bad.len() as i64 - duplicates;
    assert_eq!(
        (
            summary.rows_read,
            summary.failed,
            summary.skipped,
            summary.created
        ),
        (ROWS, bad.len() as i64, duplicates, expected_created)
    );
    let account_errors: Vec<_> = responses
        .iter()
        .flat_map(|r| r.errors.iter())
        .filter(|e| e.row % 251 == 0 && e.row % 97 != 0 && e.row % 101 != 0 && e.row % 503 != 0)
        .map(|e| (e.column.as_str(), e.reason.as_str()))
        .collect();
    assert!(!account_errors.is_empty());
    assert!(
        account_errors
            .iter()
            .all(|&(column, reason)| column == "Account" && reason == "no such account"),
        "{account_errors:?}"
    );

    // One contact.created per contact, no more: the one created before plus
    // every imported contact, each about a different stored contact.
    let pool = app.db().admin_pool().await;
    let stored: std::collections::BTreeSet<String> =
        sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM contacts WHERE tenant_id = $1")
            .bind(app.tenant)
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .map(|id| id.to_string())
            .collect();
    assert_eq!(stored.len() as i64, expected_created + 1);
    let events = app
        .services
        .nats
        .events(
            "customers",
            "crm.customers.contact.created.v1",
            stored.len(),
        )
        .await;
    let subjects: Vec<String> = events.iter().map(|e| e.subject.clone()).collect();
    let distinct: std::collections::BTreeSet<String> = subjects.iter().cloned().collect();
    assert_eq!(subjects.len(), distinct.len(), "no contact has two events");
    assert_eq!(distinct, stored);
    let sample = events
        .iter()
        .find(|e| e.subject != before.id)
        .map(|e| decode_data::<ContactCreated>(e).unwrap().contact.unwrap())
        .unwrap();
    assert_eq!(sample.account_id, account.id);
    assert_eq!(sample.tags, ["bulk"]);
    assert!(sample.last_name.starts_with("Bulk"));

    // Indexed like any created contact: searchable, and its e-mail and
    // phone found by the duplicate check.
    let (points,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM contact_points WHERE tenant_id = $1")
            .bind(app.tenant)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(points, 2 * expected_created + 1);
    let hits = search(&mut admin, &sample.last_name, 5).await;
    assert!(hits.iter().any(|h| h.id == sample.id), "{hits:?}");
    pool.close().await;
}

/// When the database refuses the batch's set-based INSERT as a whole, the
/// batch is retried row by row: the refused row is reported alone and the
/// others are created, each with its event.
#[tokio::test]
async fn a_batch_the_database_refuses_is_retried_row_by_row() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let pool = app.db().admin_pool().await;
    // A rule only the database knows, standing in for a constraint a
    // concurrent change could break between the checks and the write.
    sqlx::query("ALTER TABLE contacts ADD CONSTRAINT test_refused CHECK (last_name <> 'Refused')")
        .execute(&pool)
        .await
        .unwrap();
    let csv = "First,Last,E-mail\nA,One,one@retry.example\nB,Refused,two@retry.example\nC,Three,three@retry.example\n";
    let responses = import(
        &mut admin,
        header(DedupPolicy::Skip, false, ImportFormat::Csv),
        csv.as_bytes(),
    )
    .await;
    let summary = responses.last().unwrap();
    assert_eq!((summary.created, summary.failed), (2, 1));
    let rows: Vec<i64> = responses
        .iter()
        .flat_map(|r| r.errors.iter().map(|e| e.row))
        .collect();
    assert_eq!(rows, [2]);
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT last_name FROM contacts WHERE tenant_id = $1 ORDER BY last_name",
    )
    .bind(app.tenant)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(names, ["One", "Three"]);
    let events = app
        .services
        .nats
        .events("customers", "crm.customers.contact.created.v1", 2)
        .await;
    assert_eq!(events.len(), 2);
    pool.close().await;
}
