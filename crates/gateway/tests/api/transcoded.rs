//! Routes derived from the contracts' `google.api.http` rules: the OpenAPI
//! document lists every rule and every field, and the generic handler keeps
//! the REST conventions (problems naming fields, ETags, tenants, roles).

use reqwest::Method;
use serde_json::json;

use gateway::http::transcode::openapi::{openapi_path, path_shape};

use crate::harness::*;

#[tokio::test]
async fn every_rule_and_every_field_of_the_contracts_is_in_the_openapi_document() {
    let stack = Stack::start().await;
    let spec = json_of(
        stack
            .call(Method::GET, "/openapi.json", None, None, &[])
            .await,
        200,
    )
    .await;
    let pool = gateway::http::transcode::descriptor_pool().unwrap();
    let bindings = gateway::http::transcode::binding::bindings(&pool).unwrap();
    assert!(bindings.len() >= 25, "{} rules", bindings.len());
    for binding in &bindings {
        let verb = binding.verb.as_str().to_ascii_lowercase();
        // One OpenAPI path per shape: `/v1/activities/{activity.id}` is
        // documented under `/v1/activities/{id}`.
        let shape = path_shape(&openapi_path(&binding.template));
        let path = spec["paths"]
            .as_object()
            .unwrap()
            .keys()
            .find(|p| path_shape(p) == shape)
            .unwrap_or_else(|| panic!("{} is not in /openapi.json", binding.template));
        assert!(!path.contains('.'), "{path}");
        let operation = &spec["paths"][path][&verb];
        assert_eq!(
            operation["operationId"],
            binding.operation_id(),
            "{verb} {}",
            binding.template
        );
        for code in ["400", "401", "403", "404", "429", "503"] {
            assert!(
                operation["responses"][code].is_object(),
                "{} lacks {code}",
                binding.operation_id()
            );
        }
        // Nothing in the gateway names a field: a field added to a message
        // is in the document because the schema is made from the descriptor.
        let message = binding.response_message();
        let schema = &spec["components"]["schemas"][message.full_name()];
        for field in message.fields() {
            assert!(
                schema["properties"][field.name()].is_object(),
                "{}.{} missing from /openapi.json",
                message.full_name(),
                field.name()
            );
        }
    }
    // Descriptions come from the proto comments; enums list their names.
    let merge = &spec["paths"]["/v1/contacts/{survivor_id}/merge"]["post"];
    assert!(
        merge["description"].as_str().unwrap().contains("merged_id"),
        "{merge}"
    );
    let consent = &spec["components"]["schemas"]["crm.customers.v1.UpdateConsentRequest"];
    assert!(consent["properties"]["channel"]["enum"]
        .as_array()
        .unwrap()
        .contains(&json!("CHANNEL_EMAIL")));
}

#[tokio::test]
async fn contacts_count_duplicates_consent_and_merge_over_transcoded_routes() {
    let stack = Stack::start().await;
    let (_, token) = stack.tenant("Acme").await;
    let t = Some(token.as_str());
    let create = |first: &'static str| {
        json!({"first_name": first, "last_name": "Lovelace", "emails": [{"address": "ada@engine.example"}],
            "address": {"city": "London", "country": "GB"}, "preferred_channel": "CHANNEL_EMAIL"})
    };
    let a = json_of(
        stack
            .call(Method::POST, "/v1/contacts", t, Some(create("Ada")), &[])
            .await,
        201,
    )
    .await;
    let b = json_of(
        stack
            .call(
                Method::POST,
                "/v1/contacts",
                t,
                Some(create("Augusta")),
                &[],
            )
            .await,
        201,
    )
    .await;
    let (a, b) = (
        a["id"].as_str().unwrap().to_owned(),
        b["id"].as_str().unwrap().to_owned(),
    );

    let count = json_of(
        stack
            .call(Method::GET, "/v1/contacts/count", t, None, &[])
            .await,
        200,
    )
    .await;
    assert_eq!(count, json!({"count": 2}));

    let duplicates = stack
        .call(
            Method::GET,
            &format!("/v1/contacts/{a}/duplicates?limit=5"),
            t,
            None,
            &[],
        )
        .await;
    let duplicates = json_of(duplicates, 200).await;
    assert_eq!(
        duplicates["duplicates"][0]["contact"]["id"],
        b.as_str(),
        "{duplicates}"
    );

    // Query parameters are typed by the field they bind; unknown ones are refused.
    let bad = stack
        .call(
            Method::GET,
            &format!("/v1/contacts/{a}/duplicates?limit=many"),
            t,
            None,
            &[],
        )
        .await;
    assert_eq!(fields(&problem(bad, 400).await), ["limit"]);
    let bad = stack
        .call(
            Method::GET,
            &format!("/v1/contacts/{a}/duplicates?colour=red"),
            t,
            None,
            &[],
        )
        .await;
    assert_eq!(fields(&problem(bad, 400).await), ["colour"]);

    // Enums by their proto names; a wrong one or an unknown field names the field.
    let consents = format!("/v1/contacts/{a}/consents");
    let bad = stack
        .call(
            Method::POST,
            &consents,
            t,
            Some(json!({"channel": "PIGEON", "status": "CONSENT_STATUS_GRANTED"})),
            &[],
        )
        .await;
    assert_eq!(fields(&problem(bad, 400).await), ["channel"]);
    let bad = stack
        .call(
            Method::POST,
            &consents,
            t,
            Some(json!({"channel": "CHANNEL_EMAIL", "mood": "happy"})),
            &[],
        )
        .await;
    let bad = problem(bad, 400).await;
    assert!(
        bad["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("mood"),
        "{bad}"
    );
    let withdrawn = stack
        .call(Method::POST, &consents, t,
            Some(json!({"channel": "CHANNEL_EMAIL", "status": "CONSENT_STATUS_WITHDRAWN", "source": "test"})), &[])
        .await;
    let etag = withdrawn
        .headers()
        .get("etag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let contact = json_of(withdrawn, 200).await;
    assert_eq!(contact["consents"][0]["status"], "CONSENT_STATUS_WITHDRAWN");
    // Fields the hand-written DTOs used to drop travel now.
    assert_eq!(contact["address"]["city"], "London");
    assert_eq!(contact["preferred_channel"], "CHANNEL_EMAIL");
    assert_eq!(etag, format!("\"{}\"", contact["audit"]["version"]));
    // Every field of the message is in the answer: scalars, lists and maps
    // even when empty; a singular message field when it is set.
    let pool = gateway::http::transcode::descriptor_pool().unwrap();
    let described = pool
        .get_message_by_name("crm.customers.v1.Contact")
        .unwrap();
    let mut sent: Vec<String> = contact.as_object().unwrap().keys().cloned().collect();
    let unset_message = |f: &prost_reflect::FieldDescriptor| {
        matches!(f.kind(), prost_reflect::Kind::Message(_))
            && !f.is_list()
            && !f.is_map()
            && contact[f.name()].is_null()
    };
    let mut expected: Vec<String> = described
        .fields()
        .filter(|f| !unset_message(f))
        .map(|f| f.name().to_owned())
        .collect();
    assert!(expected.len() > 15, "{expected:?}");
    sent.sort_unstable();
    expected.sort_unstable();
    assert_eq!(sent, expected);

    // Another tenant's ids are not found; a viewer may not merge.
    let (_, other) = stack.tenant("Other").await;
    let foreign = stack
        .call(
            Method::POST,
            &format!("/v1/contacts/{a}/merge"),
            Some(&other),
            Some(json!({"merged_id": b})),
            &[],
        )
        .await;
    problem(foreign, 404).await;
    let viewer = stack.user(&token, "viewer@acme.example", "viewer").await;
    let refused = stack
        .call(
            Method::POST,
            &format!("/v1/contacts/{a}/merge"),
            Some(&viewer),
            Some(json!({"merged_id": b})),
            &[],
        )
        .await;
    problem(refused, 403).await;

    let merged = stack
        .call(
            Method::POST,
            &format!("/v1/contacts/{a}/merge"),
            t,
            Some(json!({"merged_id": b})),
            &[],
        )
        .await;
    assert_eq!(json_of(merged, 200).await["id"], a.as_str());
    problem(
        stack
            .call(Method::GET, &format!("/v1/contacts/{b}"), t, None, &[])
            .await,
        404,
    )
    .await;
    let count = json_of(
        stack
            .call(Method::GET, "/v1/contacts/count", t, None, &[])
            .await,
        200,
    )
    .await;
    assert_eq!(count, json!({"count": 1}));
}

#[tokio::test]
async fn pipeline_stages_routing_and_scoring_over_transcoded_routes() {
    let stack = Stack::start().await;
    let (_, token) = stack.tenant("Acme").await;
    let t = Some(token.as_str());
    let pipeline = stack
        .call(
            Method::POST,
            "/v1/pipelines",
            t,
            Some(
                json!({"name": "New business", "stages": [{"name": "Qualify", "probability": 10},
                {"name": "Won", "kind": "STAGE_KIND_WON"}, {"name": "Lost", "kind": "STAGE_KIND_LOST"}]}),
            ),
            &[],
        )
        .await;
    let pipeline = json_of(pipeline, 201).await;
    let id = pipeline["id"].as_str().unwrap().to_owned();

    let added = stack
        .call(
            Method::POST,
            &format!("/v1/pipelines/{id}/stages"),
            t,
            Some(json!({"stage": {"name": "Propose", "probability": 50}, "position": 1})),
            &[],
        )
        .await;
    let added = json_of(added, 200).await;
    let names: Vec<&str> = added["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Qualify", "Propose", "Won", "Lost"]);
    let propose = added["stages"][1]["id"].as_str().unwrap().to_owned();
    let qualify = added["stages"][0]["id"].as_str().unwrap().to_owned();

    // The path variable fills the body's nested id.
    let renamed = stack
        .call(
            Method::PATCH,
            &format!("/v1/pipelines/{id}/stages/{propose}"),
            t,
            Some(json!({"name": "Proposal", "probability": 60})),
            &[],
        )
        .await;
    let renamed = json_of(renamed, 200).await;
    assert_eq!(renamed["stages"][1]["name"], "Proposal");

    let removed = stack
        .call(
            Method::DELETE,
            &format!("/v1/pipelines/{id}/stages/{propose}?move_to_stage_id={qualify}"),
            t,
            None,
            &[],
        )
        .await;
    let removed = json_of(removed, 200).await;
    assert_eq!(removed["pipeline"]["stages"].as_array().unwrap().len(), 3);
    assert_eq!(removed["opportunities_moved"], 0);

    let scoring = json_of(
        stack
            .call(Method::GET, "/v1/lead-scoring", t, None, &[])
            .await,
        200,
    )
    .await;
    assert!(scoring.is_object(), "{scoring}");
    let routing = json_of(
        stack
            .call(Method::GET, "/v1/lead-routing", t, None, &[])
            .await,
        200,
    )
    .await;
    assert_eq!(routing["rules"], json!([]));

    // Another tenant cannot touch the pipeline; a viewer cannot change stages.
    let (_, other) = stack.tenant("Other").await;
    let foreign = stack
        .call(
            Method::POST,
            &format!("/v1/pipelines/{id}/stages"),
            Some(&other),
            Some(json!({"stage": {"name": "X"}})),
            &[],
        )
        .await;
    problem(foreign, 404).await;
    let viewer = stack.user(&token, "viewer@acme.example", "viewer").await;
    let refused = stack
        .call(
            Method::POST,
            &format!("/v1/pipelines/{id}/stages"),
            Some(&viewer),
            Some(json!({"stage": {"name": "X"}})),
            &[],
        )
        .await;
    problem(refused, 403).await;

    let quotes = json_of(
        stack
            .call(Method::GET, "/v1/quotes?page.page_size=10", t, None, &[])
            .await,
        200,
    )
    .await;
    assert_eq!(quotes["quotes"], json!([]));
}

#[tokio::test]
async fn hundreds_of_bad_fields_are_a_400_naming_the_first_not_a_transport_error() {
    let stack = Stack::start().await;
    let (_, token) = stack.tenant("Acme").await;
    // Each line echoes a long bad value back in its violation; all of them
    // would overflow the HTTP/2 headers a gRPC status travels in.
    let lines: Vec<_> = (0..300)
        .map(|_| json!({"description": "\u{1F600}".repeat(300), "quantity": "many", "unit_price": {"amount": "x".repeat(300)}}))
        .collect();
    let bad = stack
        .call(
            Method::POST,
            "/v1/opportunities",
            Some(&token),
            Some(json!({"name": "Big", "line_items": lines})),
            &[],
        )
        .await;
    let bad = problem(bad, 400).await;
    let named = fields(&bad);
    assert!(!named.is_empty() && named.len() <= 20, "{named:?}");
    assert!(
        named[0].starts_with("opportunity.line_items[0]"),
        "{named:?}"
    );
}

/// Every transcoded rule, walked from the descriptors (so a rule added to a
/// proto is covered without touching this test): another tenant's admin
/// reading a record by its id gets 404, and a viewer gets 403 from every
/// write.
#[tokio::test]
async fn every_rule_refuses_other_tenants_ids_and_viewers_writes() {
    let stack = Stack::start().await;
    let (_, admin) = stack.tenant("Acme").await;
    let (_, stranger) = stack.tenant("Globex").await;
    let viewer = stack.user(&admin, "viewer@acme.example", "viewer").await;
    let a = Some(admin.as_str());

    // One record of each kind in Acme, by the path's collection.
    let mut ids = std::collections::HashMap::<&str, String>::new();
    let create = |collection: &'static str, body: serde_json::Value| {
        let stack = &stack;
        async move {
            let created = stack
                .call(
                    Method::POST,
                    &format!("/v1/{collection}"),
                    a,
                    Some(body),
                    &[],
                )
                .await;
            let created = json_of(created, 201).await;
            (collection, created["id"].as_str().unwrap().to_owned())
        }
    };
    let pipeline = stack
        .call(Method::POST, "/v1/pipelines", a,
            Some(json!({"name": "Main", "stages": [{"name": "Open"}, {"name": "Won", "kind": "STAGE_KIND_WON"}, {"name": "Lost", "kind": "STAGE_KIND_LOST"}]})), &[])
        .await;
    ids.insert(
        "pipelines",
        json_of(pipeline, 201).await["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    for (collection, body) in [
        (
            "contacts",
            json!({"first_name": "Ada", "last_name": "Lovelace"}),
        ),
        ("accounts", json!({"name": "Analytical Engines"})),
        ("campaigns", json!({"name": "Spring launch"})),
        (
            "templates",
            json!({"name": "Hello", "subject": "Hi", "text_body": "Hi {{ contact.first_name }}"}),
        ),
        ("leads", json!({"last_name": "Hopper", "company": "Navy"})),
        (
            "loyalty-programs",
            json!({"name": "Club", "currency": "EUR"}),
        ),
        ("coupons", json!({"code": "WELCOME", "percent_off": "10"})),
        (
            "forms",
            json!({"name": "Demo", "fields": [{"name": "email", "label": "E-mail", "target": "FORM_FIELD_TARGET_EMAIL", "required": true}]}),
        ),
        (
            "opportunities",
            json!({"name": "Engines", "amount": {"amount": "100", "currency": "EUR"}}),
        ),
        ("products", json!({"sku": "SEAT", "name": "Seat"})),
        ("price-books", json!({"name": "Euro", "currency": "EUR"})),
        (
            "segments",
            json!({"segment": {"name": "Event", "kind": "SEGMENT_KIND_STATIC"}}),
        ),
        ("tickets", json!({"subject": "Printer on fire"})),
        (
            "business-calendars",
            json!({"name": "Office", "time_zone": "UTC", "hours": [{"weekday": "WEEKDAY_MONDAY", "start": "09:00", "end": "17:00"}]}),
        ),
        (
            "sla-policies",
            json!({"name": "All", "active": true, "resolution_minutes": 60}),
        ),
    ] {
        let (collection, id) = create(collection, body).await;
        ids.insert(collection, id);
    }
    let note =
        json!({"kind": "ACTIVITY_KIND_NOTE", "subject": "Met", "contact_id": ids["contacts"]});
    let (_, activity) = create("activities", note).await;
    ids.insert("activities", activity);
    let identity = stack
        .call(
            Method::POST,
            "/v1/sender-identities",
            a,
            Some(json!({"from_address": "news@acme.example"})),
            &[],
        )
        .await;
    json_of(identity, 201).await;
    let send = json!({"template_id": ids["templates"], "contact_ids": [ids["contacts"]]});
    let (_, send) = create("sends", send).await;
    ids.insert("sends", send);

    let pool = gateway::http::transcode::descriptor_pool().unwrap();
    let bindings = gateway::http::transcode::binding::bindings(&pool).unwrap();
    let (mut reads_checked, mut writes_checked) = (0, 0);
    let mut wrong = Vec::new();
    for binding in &bindings {
        let collection = binding.template.split('/').nth(2).unwrap_or_default();
        let id = ids
            .get(collection)
            .cloned()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        // Every variable gets the collection's id (`{entity}` a valid entity).
        let path: String = binding
            .template
            .split('/')
            .map(|segment| match segment {
                s if s.starts_with('{') && s.contains("entity") => "ENTITY_CONTACT".to_owned(),
                s if s.starts_with('{') => id.clone(),
                s => s.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/");
        let name = binding.method.name();
        let reads = [
            "Get", "List", "Search", "Count", "Find", "Preview", "Compute", "Export", "Suggest",
        ];
        // Readers' feedback on knowledge-base articles: every role that
        // reads them may say whether one helped.
        let readers_may = ["RateArticle"];
        let is_read =
            reads.iter().any(|prefix| name.starts_with(prefix)) || readers_may.contains(&name);
        let what = format!("{} {} ({name})", binding.verb, binding.template);
        if binding.verb == Method::GET
            && !binding.variables.is_empty()
            && ids.contains_key(collection)
            && !collection.starts_with("fields")
        {
            let response = stack
                .call(Method::GET, &path, Some(&stranger), None, &[])
                .await;
            if response.status() != 404 {
                wrong.push(format!("another tenant read {what}: {}", response.status()));
            }
            reads_checked += 1;
        }
        if !is_read {
            let body =
                (binding.verb != Method::GET && binding.verb != Method::DELETE).then(|| json!({}));
            let response = stack
                .call(binding.verb.clone(), &path, Some(&viewer), body, &[])
                .await;
            if response.status() != 403 {
                wrong.push(format!("a viewer wrote {what}: {}", response.status()));
            }
            writes_checked += 1;
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(reads_checked >= 8, "{reads_checked} reads checked");
    assert!(writes_checked >= 30, "{writes_checked} writes checked");
}
