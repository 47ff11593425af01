//! Segments, custom fields, tasks, imports/exports, GDPR requests, the
//! account 360 view and the gRPC-Web pass-through, all through the gateway.

use reqwest::Method;
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn custom_fields_and_segments_work_over_rest() {
    let stack = Stack::start().await;
    let (_, token) = stack.tenant("Acme").await;
    let t = Some(token.as_str());

    let bad = stack
        .call(
            Method::PUT,
            "/v1/fields/contact",
            t,
            Some(json!({"key": "tier", "type": "colour"})),
            &[],
        )
        .await;
    assert_eq!(fields(&problem(bad, 400).await), ["field.type"]);
    let bad = stack
        .call(
            Method::PUT,
            "/v1/fields/lead",
            t,
            Some(json!({"key": "tier", "type": "text"})),
            &[],
        )
        .await;
    assert_eq!(fields(&problem(bad, 400).await), ["field.entity"]);
    let defined = stack
        .call(Method::PUT, "/v1/fields/contact", t,
            Some(json!({"key": "tier", "label": "Tier", "type": "FIELD_TYPE_SINGLE_SELECT", "options": ["gold", "silver"]})), &[])
        .await;
    let defined = json_of(defined, 200).await;
    assert_eq!(defined["type"], "FIELD_TYPE_SINGLE_SELECT");
    let listed = json_of(
        stack
            .call(Method::GET, "/v1/fields/contact", t, None, &[])
            .await,
        200,
    )
    .await;
    assert_eq!(listed["fields"][0]["key"], "tier");

    // The definition is enforced on writes.
    let wrong = stack
        .call(
            Method::POST,
            "/v1/contacts",
            t,
            Some(json!({"last_name": "X", "custom_fields": {"tier": "bronze"}})),
            &[],
        )
        .await;
    assert_eq!(
        fields(&problem(wrong, 400).await),
        ["contact.custom_fields.tier"]
    );
    let mut ids = Vec::new();
    for (name, tier) in [("Gold1", "gold"), ("Gold2", "gold"), ("Silver", "silver")] {
        let created = stack
            .call(
                Method::POST,
                "/v1/contacts",
                t,
                Some(json!({"last_name": name, "custom_fields": {"tier": tier}})),
                &[],
            )
            .await;
        ids.push(
            json_of(created, 201).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }

    // A dynamic segment follows its filter; a bad node is named by path.
    let bad = stack
        .call(Method::POST, "/v1/segments", t,
            Some(json!({"segment": {"name": "Gold", "kind": "SEGMENT_KIND_DYNAMIC", "filter": {"all": {"filters": [{"condition": {"field": "custom.tier", "op": "LIKE", "value": "gold"}}]}}}})), &[])
        .await;
    assert_eq!(
        fields(&problem(bad, 400).await),
        ["segment.filter.all.filters[0].condition.op"]
    );
    let gold = stack
        .call(Method::POST, "/v1/segments", t,
            Some(json!({"segment": {"name": "Gold", "kind": "SEGMENT_KIND_DYNAMIC", "filter": {"all": {"filters": [{"condition": {"field": "custom.tier", "op": "OPERATOR_EQ", "value": "gold"}}]}}}})), &[])
        .await;
    let gold = json_of(gold, 201).await;
    let gold_id = gold["id"].as_str().unwrap();
    assert_eq!(
        gold["filter"]["all"]["filters"][0]["condition"]["op"],
        "OPERATOR_EQ"
    );
    let read = json_of(
        stack
            .call(
                Method::GET,
                &format!("/v1/segments/{gold_id}"),
                t,
                None,
                &[],
            )
            .await,
        200,
    )
    .await;
    assert_eq!(read["member_count"], 2);
    let members = json_of(
        stack
            .call(
                Method::GET,
                &format!("/v1/segments/{gold_id}/members?page_size=1"),
                t,
                None,
                &[],
            )
            .await,
        200,
    )
    .await;
    assert_eq!(members["contacts"].as_array().unwrap().len(), 1);
    assert!(!members["page"]["next_page_token"]
        .as_str()
        .unwrap()
        .is_empty());

    // A static segment: add, remove, count.
    let list = stack
        .call(
            Method::POST,
            "/v1/segments",
            t,
            Some(json!({"segment": {"name": "Event", "kind": "SEGMENT_KIND_STATIC"}, "contact_ids": [ids[0]]})),
            &[("Idempotency-Key", "segment-1")],
        )
        .await;
    let list_id = json_of(list, 201).await["id"].as_str().unwrap().to_owned();
    // A retry with the same key gets the same segment, not a 409 for its name.
    let again = stack
        .call(
            Method::POST,
            "/v1/segments",
            t,
            Some(json!({"segment": {"name": "Event", "kind": "SEGMENT_KIND_STATIC"}, "contact_ids": [ids[0]]})),
            &[("Idempotency-Key", "segment-1")],
        )
        .await;
    assert_eq!(json_of(again, 201).await["id"], list_id.as_str());
    let added = stack
        .call(
            Method::POST,
            &format!("/v1/segments/{list_id}/members"),
            t,
            Some(json!({"contact_ids": [ids[0], ids[2]]})),
            &[],
        )
        .await;
    assert_eq!(json_of(added, 200).await["added"], 1, "one was already in");
    let removed = stack
        .call(
            Method::POST,
            &format!("/v1/segments/{list_id}/members/remove"),
            t,
            Some(json!({"contact_ids": [ids[0]]})),
            &[],
        )
        .await;
    assert_eq!(json_of(removed, 200).await["removed"], 1);
    let read = json_of(
        stack
            .call(
                Method::GET,
                &format!("/v1/segments/{list_id}"),
                t,
                None,
                &[],
            )
            .await,
        200,
    )
    .await;
    assert_eq!(read["member_count"], 1);
    let all = json_of(
        stack.call(Method::GET, "/v1/segments", t, None, &[]).await,
        200,
    )
    .await;
    assert_eq!(all["segments"].as_array().unwrap().len(), 2);
    assert_eq!(
        stack
            .call(
                Method::DELETE,
                &format!("/v1/segments/{list_id}"),
                t,
                None,
                &[]
            )
            .await
            .status(),
        204
    );
    problem(
        stack
            .call(
                Method::GET,
                &format!("/v1/segments/{list_id}"),
                t,
                None,
                &[],
            )
            .await,
        404,
    )
    .await;
    assert_eq!(
        stack
            .call(Method::DELETE, "/v1/fields/contact/tier", t, None, &[])
            .await
            .status(),
        204
    );
}

#[tokio::test]
async fn tasks_show_in_the_account_360_until_completed() {
    let mut stack = Stack::start().await;
    // The sales service is down: its section says so, the rest still comes.
    stack.services.take("sales").stop().await.unwrap();
    let (_, token) = stack.tenant("Acme").await;
    let t = Some(token.as_str());
    let account = stack
        .call(
            Method::POST,
            "/v1/accounts",
            t,
            Some(json!({"name": "Initech", "domain": "initech.example"})),
            &[],
        )
        .await;
    let account_id = json_of(account, 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let contact = stack
        .call(
            Method::POST,
            "/v1/contacts",
            t,
            Some(json!({"last_name": "Lumbergh", "account_id": account_id})),
            &[],
        )
        .await;
    let contact_id = json_of(contact, 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let task = stack
        .call(Method::POST, "/v1/activities", t,
            Some(json!({"kind": "ACTIVITY_KIND_TASK", "subject": "Send TPS report", "account_id": account_id, "task": {"due_at": "2030-01-01T09:00:00Z"}})), &[])
        .await;
    let task_id = json_of(task, 201).await["id"].as_str().unwrap().to_owned();
    let note = stack
        .call(
            Method::POST,
            "/v1/activities",
            t,
            Some(json!({"kind": "ACTIVITY_KIND_NOTE", "subject": "Likes staplers", "account_id": account_id})),
            &[],
        )
        .await;
    json_of(note, 201).await;

    let view = json_of(
        stack
            .call(
                Method::GET,
                &format!("/v1/accounts/{account_id}/360"),
                t,
                None,
                &[],
            )
            .await,
        200,
    )
    .await;
    assert_eq!(view["account"]["name"], "Initech");
    assert_eq!(view["contacts"]["status"], "ok");
    assert_eq!(view["deals"]["status"], "unavailable");
    let found = json_of(
        stack
            .call(Method::GET, "/v1/search?q=initech", t, None, &[])
            .await,
        200,
    )
    .await;
    assert_eq!(found["items"][0]["kind"], "account");
    assert_eq!(
        found["unavailable"],
        json!(["sales"]),
        "search says what it could not ask"
    );
    assert_eq!(view["contacts"]["data"][0]["id"], contact_id);
    assert_eq!(
        view["recent_activities"]["data"].as_array().unwrap().len(),
        2
    );
    assert_eq!(view["open_tasks"]["data"][0]["id"], task_id);

    let open = json_of(
        stack.call(Method::GET, "/v1/tasks", t, None, &[]).await,
        200,
    )
    .await;
    assert_eq!(open["tasks"][0]["id"], task_id);
    problem(
        stack
            .call(
                Method::GET,
                "/v1/tasks?include_completed=maybe",
                t,
                None,
                &[],
            )
            .await,
        400,
    )
    .await;
    let done = json_of(
        stack
            .call(
                Method::POST,
                &format!("/v1/tasks/{task_id}/complete"),
                t,
                None,
                &[],
            )
            .await,
        200,
    )
    .await;
    assert!(done["task"]["completed_at"].is_string(), "{done}");
    let open = json_of(
        stack.call(Method::GET, "/v1/tasks", t, None, &[]).await,
        200,
    )
    .await;
    assert!(open["tasks"].as_array().unwrap().is_empty());
    let view = json_of(
        stack
            .call(
                Method::GET,
                &format!("/v1/accounts/{account_id}/360"),
                t,
                None,
                &[],
            )
            .await,
        200,
    )
    .await;
    assert!(view["open_tasks"]["data"].as_array().unwrap().is_empty());

    let fetched = json_of(
        stack
            .call(
                Method::GET,
                &format!("/v1/activities/{task_id}"),
                t,
                None,
                &[],
            )
            .await,
        200,
    )
    .await;
    assert_eq!(fetched["subject"], "Send TPS report");
    assert_eq!(
        stack
            .call(
                Method::DELETE,
                &format!("/v1/activities/{task_id}"),
                t,
                None,
                &[]
            )
            .await
            .status(),
        204
    );
    problem(
        stack
            .call(
                Method::GET,
                &format!("/v1/activities/{task_id}"),
                t,
                None,
                &[],
            )
            .await,
        404,
    )
    .await;
}

#[tokio::test]
async fn imports_exports_and_gdpr_requests_are_audited() {
    let stack = Stack::start().await;
    let (_, token) = stack.tenant("Acme").await;
    let t = Some(token.as_str());

    let csv = "Given,Family,Mail\nAda,Lovelace,ada@example.com\nBad,Row,not-an-email\nAlan,Turing,alan@example.com\n";
    let import = |query: &str| {
        stack
            .http
            .post(format!("{}/v1/imports?{query}", stack.base))
            .bearer_auth(&token)
            .header("content-type", "text/csv")
            .body(csv)
            .send()
    };
    let bad = import("map.Given=first_name&colour=blue").await.unwrap();
    assert_eq!(fields(&problem(bad, 400).await), ["colour"]);
    let mapping = "map.Given=first_name&map.Family=last_name&map.Mail=email";
    let dry = json_of(
        import(&format!("{mapping}&dry_run=true")).await.unwrap(),
        200,
    )
    .await;
    assert_eq!(
        (dry["rows_read"].as_i64(), dry["failed"].as_i64()),
        (Some(3), Some(1))
    );
    assert_eq!(dry["errors"][0]["row"], 2);
    assert_eq!(dry["errors"][0]["column"], "Mail");
    let listed = json_of(
        stack.call(Method::GET, "/v1/contacts", t, None, &[]).await,
        200,
    )
    .await;
    assert!(
        listed["contacts"].as_array().unwrap().is_empty(),
        "a dry run writes nothing"
    );
    let done = json_of(import(mapping).await.unwrap(), 200).await;
    assert_eq!(
        (done["created"].as_i64(), done["failed"].as_i64()),
        (Some(2), Some(1))
    );
    // The same file again: both rows match by e-mail and are skipped.
    let again = json_of(import(mapping).await.unwrap(), 200).await;
    assert_eq!(
        (again["created"].as_i64(), again["skipped"].as_i64()),
        (Some(0), Some(2))
    );

    let export = stack
        .call(Method::GET, "/v1/exports?entity=contacts", t, None, &[])
        .await;
    assert_eq!(export.status(), 200);
    assert!(export.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = export.text().await.unwrap();
    assert!(
        text.contains("ada@example.com") && text.contains("alan@example.com"),
        "{text}"
    );
    problem(
        stack
            .call(Method::GET, "/v1/exports?entity=leads", t, None, &[])
            .await,
        400,
    )
    .await;

    let listed = json_of(
        stack
            .call(Method::GET, "/v1/contacts?order_by=last_name", t, None, &[])
            .await,
        200,
    )
    .await;
    let ada = listed["contacts"][0]["id"].as_str().unwrap().to_owned();
    let data = json_of(
        stack
            .call(
                Method::GET,
                &format!("/v1/contacts/{ada}/personal-data"),
                t,
                None,
                &[],
            )
            .await,
        200,
    )
    .await;
    assert_eq!(data["contact"]["emails"][0]["address"], "ada@example.com");
    assert_eq!(
        stack
            .call(
                Method::POST,
                &format!("/v1/contacts/{ada}/erase"),
                t,
                None,
                &[]
            )
            .await
            .status(),
        204
    );
    problem(
        stack
            .call(Method::GET, &format!("/v1/contacts/{ada}"), t, None, &[])
            .await,
        404,
    )
    .await;

    // The customers service audits where the operation happens; the
    // gateway's audit log gathers it from the service's events.
    let audit_actions = |audit: &serde_json::Value| -> Vec<String> {
        audit["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|e| e["action"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let audit = testkit::eventually(
        "exports and erasure in the audit log",
        std::time::Duration::from_secs(15),
        || async {
            let audit = json_of(
                stack.call(Method::GET, "/v1/audit-log", t, None, &[]).await,
                200,
            )
            .await;
            audit_actions(&audit)
                .iter()
                .any(|a| a == "contact.erased")
                .then_some(audit)
        },
    )
    .await;
    assert_eq!(
        &audit_actions(&audit)[..3],
        [
            "contact.erased",
            "contact.personal_data_exported",
            "data.exported"
        ],
    );
    assert_eq!(audit["items"][0]["target"], ada);

    // The same over gRPC, straight to the service: audited all the same.
    let turing = listed["contacts"][1]["id"].as_str().unwrap().to_owned();
    let channel = stack.services.channel("customers");
    let bearer = kit::auth::BearerToken::new(&token).unwrap();
    crm_proto::crm::customers::v1::data_service_client::DataServiceClient::with_interceptor(
        channel, bearer,
    )
    .erase_contact(crm_proto::crm::customers::v1::EraseContactRequest {
        contact_id: turing.clone(),
    })
    .await
    .unwrap();
    testkit::eventually(
        "the gRPC erasure in the audit log",
        std::time::Duration::from_secs(15),
        || async {
            let audit = json_of(
                stack
                    .call(
                        Method::GET,
                        "/v1/audit-log?action=contact.erased",
                        t,
                        None,
                        &[],
                    )
                    .await,
                200,
            )
            .await;
            audit["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["target"] == turing.as_str())
                .then_some(())
        },
    )
    .await;
    let only = json_of(
        stack
            .call(
                Method::GET,
                "/v1/audit-log?action=data.exported&page_size=1",
                t,
                None,
                &[],
            )
            .await,
        200,
    )
    .await;
    assert_eq!(only["items"].as_array().unwrap().len(), 1);
    assert!(only["next_page_token"].is_null());

    // Only admins read the audit log.
    let created = stack
        .call(Method::POST, "/v1/users", t,
            Some(json!({"email": "rep@acme.example", "display_name": "Rep", "password": "correct horse battery", "roles": ["sales_rep"]})), &[])
        .await;
    json_of(created, 201).await;
    let rep = stack
        .login("rep@acme.example", "correct horse battery")
        .await;
    let rep = rep["access_token"].as_str().unwrap();
    problem(
        stack
            .call(Method::GET, "/v1/audit-log", Some(rep), None, &[])
            .await,
        403,
    )
    .await;
}

#[tokio::test]
async fn another_tenants_ids_are_not_found_on_the_newer_routes() {
    let stack = Stack::start().await;
    let (_, a) = stack.tenant("Alpha").await;
    let (_, b) = stack.tenant("Beta").await;
    let contact = stack
        .call(
            Method::POST,
            "/v1/contacts",
            Some(&a),
            Some(json!({"last_name": "Secret"})),
            &[],
        )
        .await;
    let contact = json_of(contact, 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let account = stack
        .call(
            Method::POST,
            "/v1/accounts",
            Some(&a),
            Some(json!({"name": "Secret Inc"})),
            &[],
        )
        .await;
    let account = json_of(account, 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let segment = stack
        .call(
            Method::POST,
            "/v1/segments",
            Some(&a),
            Some(json!({"segment": {"name": "S", "kind": "SEGMENT_KIND_STATIC"}, "contact_ids": [contact]})),
            &[],
        )
        .await;
    let segment = json_of(segment, 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let task = stack
        .call(
            Method::POST,
            "/v1/activities",
            Some(&a),
            Some(json!({"kind": "ACTIVITY_KIND_TASK", "subject": "secret", "contact_id": contact})),
            &[],
        )
        .await;
    let task = json_of(task, 201).await["id"].as_str().unwrap().to_owned();

    let attempts = [
        (Method::GET, format!("/v1/contacts/{contact}/360"), None),
        (
            Method::GET,
            format!("/v1/contacts/{contact}/personal-data"),
            None,
        ),
        (Method::POST, format!("/v1/contacts/{contact}/erase"), None),
        (
            Method::GET,
            format!("/v1/contacts/{contact}/activities"),
            None,
        ),
        (Method::GET, format!("/v1/accounts/{account}/360"), None),
        (Method::GET, format!("/v1/segments/{segment}"), None),
        (Method::GET, format!("/v1/segments/{segment}/members"), None),
        (Method::DELETE, format!("/v1/segments/{segment}"), None),
        (Method::GET, format!("/v1/activities/{task}"), None),
        (Method::DELETE, format!("/v1/activities/{task}"), None),
        (Method::POST, format!("/v1/tasks/{task}/complete"), None),
    ];
    for (method, path, body) in attempts {
        let response = stack.call(method.clone(), &path, Some(&b), body, &[]).await;
        assert_eq!(response.status(), 404, "{method} {path}");
    }
    // Adding A's contact to B's segment adds nothing.
    let own = stack
        .call(
            Method::POST,
            "/v1/segments",
            Some(&b),
            Some(json!({"segment": {"name": "Mine", "kind": "SEGMENT_KIND_STATIC"}})),
            &[],
        )
        .await;
    let own = json_of(own, 201).await["id"].as_str().unwrap().to_owned();
    let added = stack
        .call(
            Method::POST,
            &format!("/v1/segments/{own}/members"),
            Some(&b),
            Some(json!({"contact_ids": [contact]})),
            &[],
        )
        .await;
    assert_ne!(added.status(), 200, "another tenant's contact cannot join");
    // B's lists and exports hold nothing of A's.
    let exported = stack
        .call(Method::GET, "/v1/exports", Some(&b), None, &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(!exported.contains("Secret"));
    let tasks = json_of(
        stack
            .call(Method::GET, "/v1/tasks", Some(&b), None, &[])
            .await,
        200,
    )
    .await;
    assert!(tasks["tasks"].as_array().unwrap().is_empty());
    // And A's data is untouched.
    let still = stack
        .call(
            Method::GET,
            &format!("/v1/contacts/{contact}"),
            Some(&a),
            None,
            &[],
        )
        .await;
    assert_eq!(still.status(), 200);
}

/// A gRPC-Web frame (uncompressed message) as a browser sends it.
fn grpc_web_frame(message: &impl prost::Message) -> Vec<u8> {
    let bytes = message.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    frame.extend_from_slice(&bytes);
    frame
}

#[tokio::test]
async fn browsers_reach_the_services_grpc_through_the_gateway() {
    use crm_proto::crm::customers::v1 as pb;
    let stack = Stack::start().await;
    let (_, token) = stack.tenant("Acme").await;
    let created = stack
        .call(
            Method::POST,
            "/v1/contacts",
            Some(&token),
            Some(json!({"last_name": "Hopper"})),
            &[],
        )
        .await;
    let id = json_of(created, 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let call = |path: &str, bearer: &str, body: Vec<u8>| {
        stack
            .http
            .post(format!("{}{path}", stack.base))
            .bearer_auth(bearer)
            .header("content-type", "application/grpc-web+proto")
            .header("x-grpc-web", "1")
            .body(body)
            .send()
    };
    let get = grpc_web_frame(&pb::GetContactRequest { id: id.clone() });
    let path = "/crm.customers.v1.ContactService/GetContact";

    let answer = call(path, &token, get.clone()).await.unwrap();
    assert_eq!(answer.status(), 200);
    let body = answer.bytes().await.unwrap();
    assert_eq!(body[0], 0, "a data frame first");
    let length = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let reply: pb::GetContactResponse = prost::Message::decode(&body[5..5 + length]).unwrap();
    assert_eq!(reply.contact.unwrap().last_name, "Hopper");
    assert!(String::from_utf8_lossy(&body[5 + length..]).contains("grpc-status:0"));

    // An API key works too: the gateway swaps it for a token it mints.
    let key = stack
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(&token),
            Some(json!({"name": "web", "scopes": ["customers:read"]})),
            &[],
        )
        .await;
    let key = json_of(key, 201).await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = call(path, &key, get.clone())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&body).contains("grpc-status:0"));

    // A forged token never reaches the service; the status says why.
    let forged = call(path, "eyJhbGciOiJFZERTQSJ9.e30.AAAA", get.clone())
        .await
        .unwrap();
    assert_eq!(forged.headers()["grpc-status"], "16");
    // Another tenant's id: NOT_FOUND from the service itself.
    let (_, other) = stack.tenant("Other").await;
    let answer = call(path, &other, get.clone()).await.unwrap();
    let status = answer
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = answer.bytes().await.unwrap();
    assert!(
        status == "5" || String::from_utf8_lossy(&body).contains("grpc-status:5"),
        "{status} {body:?}"
    );
    // A package no service owns.
    let unknown = call("/crm.nothing.v1.X/Y", &token, get).await.unwrap();
    assert_eq!(unknown.headers()["grpc-status"], "12");
    // Plain HTTP on an unknown path stays a 404 problem.
    problem(
        stack
            .call(Method::GET, "/v1/nothing", Some(&token), None, &[])
            .await,
        404,
    )
    .await;
}
