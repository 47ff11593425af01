//! The marketing routes through the gateway, transcoded from the
//! contracts, in front of real customers and marketing services.

use reqwest::Method;
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn a_campaign_is_run_over_rest() {
    let stack = Stack::start().await;
    let (_, admin) = stack.tenant("Acme").await;
    let marketer = stack.user(&admin, "mia@acme.example", "marketer").await;
    let m = Some(marketer.as_str());

    let bad = stack
        .call(
            Method::POST,
            "/v1/campaigns",
            m,
            Some(json!({"name": "", "type": "CAMPAIGN_TYPE_EMAIL", "budget": {"amount": "1e3", "currency": "EUR"}})),
            &[],
        )
        .await;
    let mut violated = fields(&problem(bad, 400).await);
    violated.sort();
    assert_eq!(violated, ["campaign.budget.amount", "campaign.name"]);
    let unknown = stack
        .call(
            Method::POST,
            "/v1/campaigns",
            m,
            Some(json!({"name": "X", "colour": "red"})),
            &[],
        )
        .await;
    assert_eq!(problem(unknown, 400).await["status"], 400);

    let created = stack
        .call(
            Method::POST,
            "/v1/campaigns",
            m,
            Some(json!({"name": "Autumn webinar", "type": "CAMPAIGN_TYPE_WEBINAR", "budget": {"amount": "2500.00", "currency": "EUR"}})),
            &[("Idempotency-Key", "campaign-1")],
        )
        .await;
    let location = created
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let etag = created
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let campaign = json_of(created, 201).await;
    let id = campaign["id"].as_str().unwrap().to_owned();
    assert_eq!(
        location.as_deref(),
        Some(format!("/v1/campaigns/{id}").as_str())
    );
    assert_eq!(etag.as_deref(), Some("\"1\""));
    assert_eq!(campaign["status"], "CAMPAIGN_STATUS_PLANNED");
    assert_eq!(campaign["budget"]["amount"], "2500");

    // The status moves with PATCH; a stale If-Match is a 412.
    let path = format!("/v1/campaigns/{id}");
    let moved = stack
        .call(
            Method::PATCH,
            &path,
            m,
            Some(json!({"status": "CAMPAIGN_STATUS_ACTIVE"})),
            &[("If-Match", "\"1\"")],
        )
        .await;
    assert_eq!(
        json_of(moved, 200).await["status"],
        "CAMPAIGN_STATUS_ACTIVE"
    );
    let stale = stack
        .call(
            Method::PATCH,
            &path,
            m,
            Some(json!({"goal": "late"})),
            &[("If-Match", "\"1\"")],
        )
        .await;
    assert_eq!(stale.status(), 412);

    let cost = stack
        .call(
            Method::POST,
            &format!("{path}/costs"),
            m,
            Some(json!({"amount": {"amount": "199.99", "currency": "EUR"}, "description": "Streaming licence"})),
            &[],
        )
        .await;
    assert_eq!(json_of(cost, 200).await["actual_cost"]["amount"], "199.99");

    let contact = stack
        .call(
            Method::POST,
            "/v1/contacts",
            Some(&admin),
            Some(json!({"last_name": "Lovelace", "emails": [{"address": "ada@example.com", "primary": true}]})),
            &[],
        )
        .await;
    let contact = json_of(contact, 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let added = stack
        .call(
            Method::POST,
            &format!("{path}/members"),
            Some(&admin),
            Some(json!({"contact_ids": [contact]})),
            &[],
        )
        .await;
    assert_eq!(json_of(added, 200).await["added"], 1);
    let listed = stack
        .call(
            Method::GET,
            &format!("{path}/members?status=targeted"),
            m,
            None,
            &[],
        )
        .await;
    let listed = json_of(listed, 200).await;
    assert_eq!(listed["members"][0]["contact_id"], contact.as_str());

    let reach = stack
        .call(
            Method::GET,
            &format!("/v1/contacts/{contact}/reachability?channel=sms"),
            Some(&admin),
            None,
            &[],
        )
        .await;
    let reach = json_of(reach, 200).await;
    assert_eq!(
        (reach["reachable"].as_bool(), reach["reason"].as_str()),
        (Some(false), Some("SKIP_REASON_NO_CONSENT"))
    );
}

#[tokio::test]
async fn marketing_routes_refuse_other_tenants_and_roles() {
    let stack = Stack::start().await;
    let (_, admin) = stack.tenant("Acme").await;
    let (_, other) = stack.tenant("Globex").await;
    let rep = stack.user(&admin, "rick@acme.example", "sales_rep").await;
    let created = stack
        .call(
            Method::POST,
            "/v1/campaigns",
            Some(&admin),
            Some(json!({"name": "Acme only"})),
            &[],
        )
        .await;
    let id = json_of(created, 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/campaigns/{id}");

    // A rep reads the campaign, and may not change it or list suppressions.
    let read = stack.call(Method::GET, &path, Some(&rep), None, &[]).await;
    assert_eq!(json_of(read, 200).await["name"], "Acme only");
    let change = stack
        .call(
            Method::PATCH,
            &path,
            Some(&rep),
            Some(json!({"goal": "mine"})),
            &[],
        )
        .await;
    assert_eq!(problem(change, 403).await["status"], 403);
    let suppressions = stack
        .call(Method::GET, "/v1/suppressions", Some(&rep), None, &[])
        .await;
    assert_eq!(suppressions.status(), 403);

    // Another tenant's admin finds nothing under the id.
    for (method, route, body) in [
        (Method::GET, path.clone(), None),
        (Method::PATCH, path.clone(), Some(json!({"goal": "theirs"}))),
        (Method::GET, format!("{path}/members"), None),
        (
            Method::POST,
            format!("{path}/costs"),
            Some(json!({"amount": {"amount": "1", "currency": "EUR"}})),
        ),
    ] {
        let response = stack.call(method, &route, Some(&other), body, &[]).await;
        assert_eq!(response.status(), 404, "{route}");
    }
    let unauthenticated = stack.call(Method::GET, &path, None, None, &[]).await;
    assert_eq!(unauthenticated.status(), 401);
}
