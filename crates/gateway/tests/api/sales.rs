//! The sales routes through the gateway, in front of real customers and
//! sales services.

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::*;

#[tokio::test]
async fn a_lead_becomes_a_won_deal_over_rest() {
    let stack = Stack::start().await;
    let (_, token) = stack.tenant("Acme").await;
    let t = Some(token.as_str());

    let bad = stack
        .call(
            Method::POST,
            "/v1/pipelines",
            t,
            Some(json!({"name": "New", "stages": [{"name": "Only", "kind": "maybe"}]})),
            &[],
        )
        .await;
    assert_eq!(
        fields(&problem(bad, 400).await),
        ["pipeline.stages[0].kind"]
    );
    let pipeline = stack
        .call(Method::POST, "/v1/pipelines", t,
            Some(json!({"name": "New business", "stages": [{"name": "Qualify", "probability": 10}, {"name": "Propose", "probability": 60},
                {"name": "Won", "kind": "STAGE_KIND_WON"}, {"name": "Lost", "kind": "STAGE_KIND_LOST"}]})), &[])
        .await;
    let pipeline = json_of(pipeline, 201).await;
    assert_eq!(pipeline["is_default"], true);
    let stage = |i: usize| pipeline["stages"][i]["id"].as_str().unwrap().to_owned();

    // Webhooks can follow sales events too.
    let hook = stack
        .call(Method::POST, "/v1/webhooks", t,
            Some(json!({"url": "http://127.0.0.1:9/hook", "event_types": ["crm.sales.lead.created.v1"]})), &[])
        .await;
    let hook = json_of(hook, 201).await["id"].as_str().unwrap().to_owned();

    let bad = stack
        .call(
            Method::POST,
            "/v1/leads",
            t,
            Some(json!({"last_name": "Hopper", "email": "nope", "status": "hot"})),
            &[],
        )
        .await;
    assert_eq!(fields(&problem(bad, 400).await), ["lead.status"]);
    let bad = stack
        .call(
            Method::POST,
            "/v1/leads",
            t,
            Some(json!({"last_name": "Hopper", "email": "nope"})),
            &[],
        )
        .await;
    assert_eq!(fields(&problem(bad, 400).await), ["lead.email"]);
    let lead = stack
        .call(Method::POST, "/v1/leads", t,
            Some(json!({"first_name": "Grace", "last_name": "Hopper", "email": "grace@navy.example", "company": "Navy", "company_domain": "navy.example"})),
            &[("Idempotency-Key", "lead-1")])
        .await;
    let lead = json_of(lead, 201).await;
    let id = lead["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (lead["status"].as_str(), lead["source"].as_str()),
        (Some("LEAD_STATUS_NEW"), Some("LEAD_SOURCE_MANUAL"))
    );

    testkit::eventually(
        "a delivery of lead.created",
        std::time::Duration::from_secs(15),
        || async {
            let deliveries: Value = stack
                .call(
                    Method::GET,
                    &format!("/v1/webhooks/{hook}/deliveries"),
                    t,
                    None,
                    &[],
                )
                .await
                .json()
                .await
                .ok()?;
            deliveries
                .as_array()?
                .iter()
                .any(|d| d["event_type"] == "crm.sales.lead.created.v1")
                .then_some(())
        },
    )
    .await;

    // Not qualified yet: conversion is a conflict.
    problem(
        stack
            .call(
                Method::POST,
                &format!("/v1/leads/{id}/convert"),
                t,
                Some(json!({})),
                &[],
            )
            .await,
        409,
    )
    .await;
    let stale = stack
        .call(
            Method::PATCH,
            &format!("/v1/leads/{id}"),
            t,
            Some(json!({"status": "LEAD_STATUS_QUALIFIED"})),
            &[("If-Match", "\"7\"")],
        )
        .await;
    problem(stale, 412).await;
    let qualified = stack
        .call(
            Method::PATCH,
            &format!("/v1/leads/{id}"),
            t,
            Some(json!({"status": "LEAD_STATUS_QUALIFIED"})),
            &[("If-Match", "\"1\"")],
        )
        .await;
    assert_eq!(
        json_of(qualified, 200).await["status"],
        "LEAD_STATUS_QUALIFIED"
    );
    let converted = stack
        .call(Method::POST, &format!("/v1/leads/{id}/convert"), t,
            Some(json!({"create_opportunity": true, "amount": {"amount": "12000.50", "currency": "EUR"}, "close_date": "2027-03-31"})), &[])
        .await;
    let converted = json_of(converted, 200).await;
    assert_eq!(converted["lead"]["status"], "LEAD_STATUS_CONVERTED");
    let account = converted["lead"]["converted_account_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deal = converted["lead"]["converted_opportunity_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A ticket about her, through the service desk's REST routes.
    let ticket = stack
        .call(
            Method::POST,
            "/v1/tickets",
            t,
            Some(json!({"subject": "Hopper cannot log in", "priority": "TICKET_PRIORITY_HIGH"})),
            &[],
        )
        .await;
    assert_eq!(json_of(ticket, 201).await["number"], 1);
    // One search finds the lead (sales), the contact it became (customers)
    // and the ticket (service desk).
    let found = json_of(
        stack
            .call(Method::GET, "/v1/search?q=hopper", t, None, &[])
            .await,
        200,
    )
    .await;
    let mut kinds: Vec<&str> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["contact", "lead", "ticket"], "{found}");
    assert_eq!(found["unavailable"], json!([]));
    // The customers side has the account and contact.
    let accounts = json_of(
        stack.call(Method::GET, "/v1/accounts", t, None, &[]).await,
        200,
    )
    .await;
    assert_eq!(accounts["accounts"][0]["id"], account);

    let opportunity = json_of(
        stack
            .call(
                Method::GET,
                &format!("/v1/opportunities/{deal}"),
                t,
                None,
                &[],
            )
            .await,
        200,
    )
    .await;
    assert_eq!(
        opportunity["amount"],
        json!({"amount": "12000.5", "currency": "EUR"})
    );
    assert_eq!(opportunity["stage_id"], stage(0));
    let lost = stack
        .call(
            Method::POST,
            &format!("/v1/opportunities/{deal}/stage"),
            t,
            Some(json!({"stage_id": stage(3)})),
            &[],
        )
        .await;
    assert_eq!(fields(&problem(lost, 400).await), ["lost_reason"]);
    let moved = stack
        .call(
            Method::POST,
            &format!("/v1/opportunities/{deal}/stage"),
            t,
            Some(json!({"stage_id": stage(1)})),
            &[],
        )
        .await;
    assert_eq!(json_of(moved, 200).await["probability"], 60);
    let won = stack
        .call(
            Method::POST,
            &format!("/v1/opportunities/{deal}/stage"),
            t,
            Some(json!({"stage_id": stage(2)})),
            &[],
        )
        .await;
    let won = json_of(won, 200).await;
    assert_eq!(
        (won["status"].as_str(), won["forecast_category"].as_str()),
        (
            Some("OPPORTUNITY_STATUS_WON"),
            Some("FORECAST_CATEGORY_CLOSED")
        )
    );
    let history = json_of(
        stack
            .call(
                Method::GET,
                &format!("/v1/opportunities/{deal}/history"),
                t,
                None,
                &[],
            )
            .await,
        200,
    )
    .await;
    assert_eq!(history["changes"].as_array().unwrap().len(), 3);

    // The forecast counts it; the account 360 shows it; the account became a customer.
    let forecast = stack
        .call(
            Method::GET,
            "/v1/forecast?period_start=2027-01-01&period_end=2027-03-31&currency=EUR",
            t,
            None,
            &[],
        )
        .await;
    let forecast = json_of(forecast, 200).await;
    assert_eq!(forecast["closed_won"]["amount"], "12000.50");
    assert_eq!(forecast["won_count"], 1);
    problem(
        stack
            .call(
                Method::GET,
                "/v1/forecast?period_start=2027-01-01&currency=EUR",
                t,
                None,
                &[],
            )
            .await,
        400,
    )
    .await;
    let view = json_of(
        stack
            .call(
                Method::GET,
                &format!("/v1/accounts/{account}/360"),
                t,
                None,
                &[],
            )
            .await,
        200,
    )
    .await;
    assert_eq!(view["deals"]["status"], "ok");
    assert_eq!(view["deals"]["data"][0]["status"], "won");
    let contact = converted["lead"]["converted_contact_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let view = json_of(
        stack
            .call(
                Method::GET,
                &format!("/v1/contacts/{contact}/360"),
                t,
                None,
                &[],
            )
            .await,
        200,
    )
    .await;
    assert_eq!(
        view["deals"]["data"][0]["id"], deal,
        "the contact's role in the deal"
    );
    testkit::eventually(
        "the account becomes a customer",
        std::time::Duration::from_secs(15),
        || async {
            let account: Value = stack
                .call(
                    Method::GET,
                    &format!("/v1/accounts/{account}"),
                    t,
                    None,
                    &[],
                )
                .await
                .json()
                .await
                .ok()?;
            (account["lifecycle_stage"] == "LIFECYCLE_STAGE_CUSTOMER").then_some(())
        },
    )
    .await;

    let listed = json_of(
        stack
            .call(Method::GET, "/v1/opportunities?status=won", t, None, &[])
            .await,
        200,
    )
    .await;
    assert_eq!(listed["opportunities"].as_array().unwrap().len(), 1);
    problem(
        stack
            .call(Method::GET, "/v1/opportunities?status=maybe", t, None, &[])
            .await,
        400,
    )
    .await;

    // Another tenant sees none of it.
    let (_, other) = stack.tenant("Other").await;
    let o = Some(other.as_str());
    for path in [
        format!("/v1/leads/{id}"),
        format!("/v1/opportunities/{deal}"),
        format!("/v1/opportunities/{deal}/history"),
    ] {
        problem(stack.call(Method::GET, &path, o, None, &[]).await, 404).await;
    }
    problem(
        stack
            .call(
                Method::POST,
                &format!("/v1/opportunities/{deal}/stage"),
                o,
                Some(json!({"stage_id": stage(1)})),
                &[],
            )
            .await,
        404,
    )
    .await;
    problem(
        stack
            .call(
                Method::POST,
                &format!("/v1/leads/{id}/convert"),
                o,
                Some(json!({})),
                &[],
            )
            .await,
        404,
    )
    .await;
    let theirs = json_of(
        stack.call(Method::GET, "/v1/leads", o, None, &[]).await,
        200,
    )
    .await;
    assert!(theirs["leads"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_quote_becomes_a_paid_order_over_rest() {
    let stack = Stack::start().await;
    let (_, token) = stack.tenant("Acme").await;
    let t = Some(token.as_str());
    let pipeline = stack
        .call(Method::POST, "/v1/pipelines", t,
            Some(json!({"name": "Main", "stages": [{"name": "Open"}, {"name": "Won", "kind": "STAGE_KIND_WON"}, {"name": "Lost", "kind": "STAGE_KIND_LOST"}]})), &[])
        .await;
    json_of(pipeline, 201).await;
    let product = json_of(
        stack
            .call(
                Method::POST,
                "/v1/products",
                t,
                Some(json!({"sku": "SEAT", "name": "Seat", "tax_percent": "19"})),
                &[],
            )
            .await,
        201,
    )
    .await;
    let product_id = product["id"].as_str().unwrap().to_owned();
    problem(
        stack
            .call(
                Method::POST,
                "/v1/products",
                t,
                Some(json!({"sku": "seat", "name": "Again"})),
                &[],
            )
            .await,
        409,
    )
    .await;
    let book = json_of(
        stack
            .call(
                Method::POST,
                "/v1/price-books",
                t,
                Some(json!({"name": "Euro", "currency": "EUR"})),
                &[],
            )
            .await,
        201,
    )
    .await;
    let book_id = book["id"].as_str().unwrap().to_owned();
    let prices = stack
        .call(Method::PUT, &format!("/v1/price-books/{book_id}/prices"), t,
            Some(json!({"entries": [{"product_id": product_id, "list_price": {"amount": "49.99", "currency": "EUR"}}]})), &[])
        .await;
    assert_eq!(
        json_of(prices, 200).await["entries"][0]["list_price"]["amount"],
        "49.99"
    );
    let deal = json_of(
        stack
            .call(
                Method::POST,
                "/v1/opportunities",
                t,
                Some(json!({"name": "Seats", "amount": {"amount": "500", "currency": "EUR"}})),
                &[],
            )
            .await,
        201,
    )
    .await;
    let deal_id = deal["id"].as_str().unwrap().to_owned();

    let quote = stack
        .call(Method::POST, "/v1/quotes", t,
            Some(json!({"opportunity_id": deal_id, "lines": [{"product_id": product_id, "quantity": "10", "discount_percent": "5"}]})), &[])
        .await;
    let quote = json_of(quote, 201).await;
    let quote_id = quote["id"].as_str().unwrap().to_owned();
    // 10 x 49.99 = 499.90; -5% = 474.905 -> 474.91; tax 19% = 90.2329 -> 90.23
    assert_eq!(
        quote["total"],
        json!({"amount": "565.14", "currency": "EUR"})
    );
    assert_eq!(
        quote["lines"][0]["unit_price"]["amount"], "49.99",
        "the list price"
    );
    // Revising needs the current version.
    let revise =
        json!({"lines": [{"product_id": product_id, "quantity": "10", "discount_percent": "5"}]});
    let stale = stack
        .call(
            Method::PUT,
            &format!("/v1/quotes/{quote_id}"),
            t,
            Some(revise.clone()),
            &[("If-Match", "\"9\"")],
        )
        .await;
    problem(stale, 412).await;
    let revised = stack
        .call(
            Method::PUT,
            &format!("/v1/quotes/{quote_id}"),
            t,
            Some(revise),
            &[("If-Match", "\"1\"")],
        )
        .await;
    assert_eq!(revised.headers()["etag"], "\"2\"");
    // The life cycle: one route per step (custom methods).
    let s = &stack;
    let act = |step: &str, body: serde_json::Value| {
        let path = format!("/v1/quotes/{quote_id}/{step}");
        async move { s.call(Method::POST, &path, t, Some(body), &[]).await }
    };
    problem(act("send", json!({})).await, 409).await;
    let bad = act("customer-decision", json!({"accepted": "yes"})).await;
    assert_eq!(fields(&problem(bad, 400).await), ["accepted"]);
    assert_eq!(
        json_of(act("submit", json!({})).await, 200).await["status"],
        "QUOTE_STATUS_APPROVED"
    );
    assert_eq!(
        json_of(act("send", json!({})).await, 200).await["status"],
        "QUOTE_STATUS_SENT"
    );
    assert_eq!(
        json_of(
            act("customer-decision", json!({"accepted": true})).await,
            200
        )
        .await["status"],
        "QUOTE_STATUS_ACCEPTED"
    );

    let order = json_of(
        stack
            .call(
                Method::POST,
                "/v1/orders",
                t,
                Some(json!({"quote_id": quote_id, "start_date": "2027-01-01"})),
                &[],
            )
            .await,
        201,
    )
    .await;
    let order_id = order["id"].as_str().unwrap().to_owned();
    assert_eq!(order["renewal_date"], "2028-01-01");
    let invoice = json_of(
        stack
            .call(
                Method::POST,
                &format!("/v1/orders/{order_id}/invoices"),
                t,
                Some(json!({"due_on": "2099-01-31"})),
                &[],
            )
            .await,
        201,
    )
    .await;
    assert_eq!(invoice["amount"]["amount"], "565.14", "the whole order");
    let invoice_id = invoice["id"].as_str().unwrap().to_owned();
    problem(
        stack
            .call(
                Method::POST,
                &format!("/v1/orders/{order_id}/invoices"),
                t,
                Some(json!({"due_on": "2099-01-31"})),
                &[],
            )
            .await,
        409,
    )
    .await;
    // A retried payment (same Idempotency-Key) is recorded once; the same
    // key with another amount is refused.
    let payments = format!("/v1/invoices/{invoice_id}/payments");
    let part = json!({"amount": {"amount": "65.14", "currency": "EUR"}, "method": "transfer"});
    let first = stack
        .call(
            Method::POST,
            &payments,
            t,
            Some(part.clone()),
            &[("Idempotency-Key", "pay-1")],
        )
        .await;
    let first = json_of(first, 200).await;
    let retry = stack
        .call(
            Method::POST,
            &payments,
            t,
            Some(part),
            &[("Idempotency-Key", "pay-1")],
        )
        .await;
    let retry = json_of(retry, 200).await;
    assert_eq!(retry["payment"]["id"], first["payment"]["id"]);
    assert_eq!(retry["invoice"]["paid"]["amount"], "65.14", "{retry}");
    let other = stack
        .call(
            Method::POST,
            &payments,
            t,
            Some(json!({"amount": {"amount": "100", "currency": "EUR"}})),
            &[("Idempotency-Key", "pay-1")],
        )
        .await;
    assert_eq!(problem(other, 409).await["code"], "ALREADY_EXISTS");
    let paid = json_of(
        stack.call(Method::POST, &payments, t,
            Some(json!({"amount": {"amount": "500.00", "currency": "EUR"}, "method": "transfer"})), &[]).await,
        200,
    )
    .await;
    assert_eq!(paid["invoice"]["status"], "INVOICE_STATUS_PAID");
    let listed = json_of(
        stack
            .call(
                Method::GET,
                &format!("/v1/orders/{order_id}/invoices"),
                t,
                None,
                &[],
            )
            .await,
        200,
    )
    .await;
    assert_eq!(listed["invoices"][0]["status"], "INVOICE_STATUS_PAID");

    let (_, other) = stack.tenant("Other").await;
    let o = Some(other.as_str());
    problem(
        stack
            .call(Method::GET, &format!("/v1/quotes/{quote_id}"), o, None, &[])
            .await,
        404,
    )
    .await;
    problem(
        stack
            .call(Method::GET, &format!("/v1/orders/{order_id}"), o, None, &[])
            .await,
        404,
    )
    .await;
    problem(
        stack
            .call(
                Method::POST,
                &format!("/v1/invoices/{invoice_id}/payments"),
                o,
                Some(json!({"amount": {"amount": "1", "currency": "EUR"}})),
                &[],
            )
            .await,
        404,
    )
    .await;
}
