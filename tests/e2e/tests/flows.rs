//! Cross-service flows through the gateway, against the platform started
//! the way `deploy/run.sh` starts it: separate processes talking over
//! loopback gRPC, PostgreSQL and NATS. Each flow checks the end state in
//! every service it touches. Flows of service desk and reporting join as
//! those services land.

use std::time::Duration;

use e2e::Platform;
use reqwest::Method;
use serde_json::{json, Value};

const PATIENCE: Duration = Duration::from_secs(30);

/// One platform for the flows of this file (a start costs seconds); each
/// flow works in a tenant of its own.
async fn platform() -> Platform {
    Platform::start().await.expect("the platform starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_across_separate_processes() {
    let mut platform = platform().await;
    // The demo tenant run.sh seeded is there and usable.
    let demo = platform.demo_token().unwrap();
    let contacts = platform
        .call(Method::GET, "/v1/contacts?page_size=5", Some(&demo), None)
        .await
        .unwrap()
        .expect(200);
    assert!(
        !contacts["contacts"].as_array().unwrap().is_empty(),
        "the demo tenant is seeded: {contacts}"
    );

    let campaigns = platform
        .call(
            Method::GET,
            "/v1/campaigns?status=active",
            Some(&demo),
            None,
        )
        .await
        .unwrap()
        .expect(200);
    assert_eq!(
        campaigns["campaigns"][0]["name"], "Autumn newsletter",
        "the demo campaign is seeded: {campaigns}"
    );

    a_lead_is_won_ordered_and_paid(&platform).await;
    merges_and_erasure_reach_sales(&platform).await;
    a_campaign_mail_carries_a_working_unsubscribe_link(&platform).await;
    platform.stop().await;
}

/// Lead -> qualified -> converted (account, contact, deal in customers and
/// sales) -> deal won -> the account becomes a customer in customers ->
/// quote accepted -> order -> invoice paid; another tenant sees none of it.
async fn a_lead_is_won_ordered_and_paid(p: &Platform) {
    let (_, admin) = p.tenant("Wonderland").await.unwrap();
    let t = Some(admin.as_str());
    let pipeline = p
        .call(Method::POST, "/v1/pipelines", t, Some(json!({"name": "New business", "stages": [
            {"name": "Qualify", "probability": 10}, {"name": "Won", "kind": "STAGE_KIND_WON"}, {"name": "Lost", "kind": "STAGE_KIND_LOST"}]})))
        .await
        .unwrap()
        .expect(201);
    let stage = |i: usize| pipeline["stages"][i]["id"].as_str().unwrap().to_owned();
    let lead = p
        .call(Method::POST, "/v1/leads", t, Some(json!({"first_name": "Alice", "last_name": "Liddell",
            "email": "alice@wonder.example", "company": "Wonder Ltd", "company_domain": "wonder.example"})))
        .await
        .unwrap();
    let lead_id = lead.id("id");
    assert_eq!(lead.body["status"], "LEAD_STATUS_NEW");
    p.call(
        Method::PATCH,
        &format!("/v1/leads/{lead_id}"),
        t,
        Some(json!({"status": "LEAD_STATUS_QUALIFIED"})),
    )
    .await
    .unwrap()
    .expect(200);
    let converted = p
        .call(Method::POST, &format!("/v1/leads/{lead_id}/convert"), t,
            Some(json!({"create_opportunity": true, "amount": {"amount": "565.14", "currency": "EUR"}, "close_date": "2027-03-31"})))
        .await
        .unwrap()
        .expect(200);
    let lead = &converted["lead"];
    assert_eq!(lead["status"], "LEAD_STATUS_CONVERTED");
    let account = lead["converted_account_id"].as_str().unwrap().to_owned();
    let contact = lead["converted_contact_id"].as_str().unwrap().to_owned();
    let deal = lead["converted_opportunity_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // customers holds the account and the contact the lead became.
    let person = p
        .call(Method::GET, &format!("/v1/contacts/{contact}"), t, None)
        .await
        .unwrap()
        .expect(200);
    assert_eq!(person["account_id"], account.as_str());
    assert_eq!(person["emails"][0]["address"], "alice@wonder.example");

    let won = p
        .call(
            Method::POST,
            &format!("/v1/opportunities/{deal}/stage"),
            t,
            Some(json!({"stage_id": stage(1)})),
        )
        .await
        .unwrap()
        .expect(200);
    assert_eq!(won["status"], "OPPORTUNITY_STATUS_WON");
    // sales' event reaches customers: the account becomes a customer.
    testkit::eventually("the account becomes a customer", PATIENCE, || async {
        let account = p
            .call(Method::GET, &format!("/v1/accounts/{account}"), t, None)
            .await
            .ok()?;
        (account.body["lifecycle_stage"] == "LIFECYCLE_STAGE_CUSTOMER").then_some(())
    })
    .await;

    // Quote -> order -> invoice -> paid, in sales.
    let product = p
        .call(
            Method::POST,
            "/v1/products",
            t,
            Some(json!({"sku": "SEAT", "name": "Seat", "tax_percent": "19"})),
        )
        .await
        .unwrap()
        .id("id");
    let book = p
        .call(
            Method::POST,
            "/v1/price-books",
            t,
            Some(json!({"name": "Euro", "currency": "EUR"})),
        )
        .await
        .unwrap()
        .id("id");
    p.call(Method::PUT, &format!("/v1/price-books/{book}/prices"), t,
        Some(json!({"entries": [{"product_id": product, "list_price": {"amount": "49.99", "currency": "EUR"}}]})))
        .await
        .unwrap()
        .expect(200);
    let quote = p
        .call(Method::POST, "/v1/quotes", t,
            Some(json!({"opportunity_id": deal, "lines": [{"product_id": product, "quantity": "10", "discount_percent": "5"}]})))
        .await
        .unwrap()
        .expect(201);
    let quote = quote["id"].as_str().unwrap().to_owned();
    for (step, body, status) in [
        ("submit", json!({}), "QUOTE_STATUS_APPROVED"),
        ("send", json!({}), "QUOTE_STATUS_SENT"),
        (
            "customer-decision",
            json!({"accepted": true}),
            "QUOTE_STATUS_ACCEPTED",
        ),
    ] {
        let reply = p
            .call(
                Method::POST,
                &format!("/v1/quotes/{quote}/{step}"),
                t,
                Some(body),
            )
            .await
            .unwrap()
            .expect(200);
        assert_eq!(reply["status"], status);
    }
    let order = p
        .call(
            Method::POST,
            "/v1/orders",
            t,
            Some(json!({"quote_id": quote, "start_date": "2027-01-01"})),
        )
        .await
        .unwrap()
        .expect(201);
    assert_eq!(order["opportunity_id"], deal.as_str());
    assert_eq!(order["total"]["amount"], "565.14");
    let order = order["id"].as_str().unwrap().to_owned();
    let invoice = p
        .call(
            Method::POST,
            &format!("/v1/orders/{order}/invoices"),
            t,
            Some(json!({"due_on": "2099-01-31"})),
        )
        .await
        .unwrap()
        .expect(201);
    // 10 x 49.99 = 499.90; -5% = 474.91; tax 19% = 90.23.
    assert_eq!(invoice["amount"]["amount"], "565.14");
    let invoice = invoice["id"].as_str().unwrap().to_owned();
    let paid = p
        .call(
            Method::POST,
            &format!("/v1/invoices/{invoice}/payments"),
            t,
            Some(json!({"amount": {"amount": "565.14", "currency": "EUR"}, "method": "transfer"})),
        )
        .await
        .unwrap()
        .expect(200);
    assert_eq!(paid["invoice"]["status"], "INVOICE_STATUS_PAID");

    // The account's 360 view gathers both services.
    let view = p
        .call(Method::GET, &format!("/v1/accounts/{account}/360"), t, None)
        .await
        .unwrap()
        .expect(200);
    assert_eq!(view["deals"]["status"], "ok", "{view}");
    assert_eq!(view["deals"]["data"][0]["status"], "won", "{view}");

    // Another tenant's admin sees none of it, in either service.
    let (_, other) = p.tenant("Looking-glass").await.unwrap();
    for path in [
        format!("/v1/accounts/{account}"),
        format!("/v1/contacts/{contact}"),
        format!("/v1/leads/{lead_id}"),
        format!("/v1/opportunities/{deal}"),
        format!("/v1/orders/{order}"),
    ] {
        let reply = p
            .call(Method::GET, &path, Some(&other), None)
            .await
            .unwrap();
        assert_eq!(reply.status, 404, "{path}: {}", reply.body);
    }
}

/// Merging accounts and contacts in customers re-points the deal in sales;
/// erasing the person anonymises the lead she came from.
async fn merges_and_erasure_reach_sales(p: &Platform) {
    let (_, admin) = p.tenant("Mergers").await.unwrap();
    let t = Some(admin.as_str());
    p.call(Method::POST, "/v1/pipelines", t, Some(json!({"name": "Main", "stages": [
        {"name": "Open"}, {"name": "Won", "kind": "STAGE_KIND_WON"}, {"name": "Lost", "kind": "STAGE_KIND_LOST"}]})))
        .await
        .unwrap()
        .expect(201);
    let create = |path: &'static str, body: Value| async move {
        p.call(Method::POST, path, t, Some(body))
            .await
            .unwrap()
            .id("id")
    };
    let keep = create("/v1/accounts", json!({"name": "Keep"})).await;
    let gone = create("/v1/accounts", json!({"name": "Gone"})).await;
    let survivor = create("/v1/contacts", json!({"last_name": "Survivor"})).await;
    let merged = create("/v1/contacts", json!({"last_name": "Merged"})).await;
    let deal = create("/v1/opportunities", json!({"name": "Deal", "account_id": gone,
        "contacts": [{"contact_id": merged, "role": "champion"}], "amount": {"amount": "10", "currency": "EUR"}})).await;
    p.call(
        Method::POST,
        &format!("/v1/accounts/{keep}/merge"),
        t,
        Some(json!({"merged_id": gone})),
    )
    .await
    .unwrap()
    .expect(200);
    p.call(
        Method::POST,
        &format!("/v1/contacts/{survivor}/merge"),
        t,
        Some(json!({"merged_id": merged})),
    )
    .await
    .unwrap()
    .expect(200);
    testkit::eventually("the deal follows both merges", PATIENCE, || async {
        let o = p
            .call(Method::GET, &format!("/v1/opportunities/{deal}"), t, None)
            .await
            .ok()?
            .body;
        (o["account_id"] == keep.as_str()
            && o["contacts"][0]["contact_id"] == survivor.as_str()
            && o["contacts"][0]["role"] == "champion")
            .then_some(())
    })
    .await;
    // The merged records are gone from customers.
    for path in [
        format!("/v1/accounts/{gone}"),
        format!("/v1/contacts/{merged}"),
    ] {
        let reply = p.call(Method::GET, &path, t, None).await.unwrap();
        assert_eq!(reply.status, 404, "{path}: {}", reply.body);
    }

    // A converted lead; her person is erased in customers.
    let lead = create(
        "/v1/leads",
        json!({"first_name": "Erika", "last_name": "Mustermann",
        "email": "erika@example.de", "company": "Erika GmbH", "status": "LEAD_STATUS_QUALIFIED"}),
    )
    .await;
    let converted = p
        .call(
            Method::POST,
            &format!("/v1/leads/{lead}/convert"),
            t,
            Some(json!({})),
        )
        .await
        .unwrap()
        .expect(200);
    let person = converted["lead"]["converted_contact_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stranger = create(
        "/v1/leads",
        json!({"last_name": "Other", "email": "max@example.de", "company": "Max AG"}),
    )
    .await;
    let erased = p
        .call(
            Method::POST,
            &format!("/v1/contacts/{person}/erase"),
            t,
            None,
        )
        .await
        .unwrap();
    assert_eq!(erased.status, 204, "{}", erased.body);
    testkit::eventually("the lead is anonymised in sales", PATIENCE, || async {
        let l = p
            .call(Method::GET, &format!("/v1/leads/{lead}"), t, None)
            .await
            .ok()?
            .body;
        (l["email"].as_str().unwrap_or_default().is_empty()
            && l["first_name"].as_str().unwrap_or_default().is_empty()
            && l["last_name"] == "erased")
            .then_some(())
    })
    .await;
    let contact = p
        .call(Method::GET, &format!("/v1/contacts/{person}"), t, None)
        .await
        .unwrap();
    assert_eq!(contact.status, 404, "{}", contact.body);
    // Someone else's lead keeps its data.
    let other = p
        .call(Method::GET, &format!("/v1/leads/{stranger}"), t, None)
        .await
        .unwrap()
        .expect(200);
    assert_eq!(other["email"], "max@example.de");
}

/// A send through the marketing process as run.sh configures it (mail
/// written as .eml files to the state directory, links signed for this
/// gateway): the message reaches the consenting contact, and its one-click
/// unsubscribe link, posted to the gateway, withdraws the consent in the
/// customers process.
async fn a_campaign_mail_carries_a_working_unsubscribe_link(p: &Platform) {
    let (_, admin) = p.tenant("Mailbox").await.unwrap();
    let t = Some(admin.as_str());
    let contact = p
        .call(
            Method::POST,
            "/v1/contacts",
            t,
            Some(json!({"first_name": "Mary", "last_name": "Mailer",
            "emails": [{"address": "mary@mailbox.example", "primary": true}]})),
        )
        .await
        .unwrap()
        .id("id");
    p.call(Method::POST, &format!("/v1/contacts/{contact}/consents"), t,
        Some(json!({"channel": "CHANNEL_EMAIL", "status": "CONSENT_STATUS_GRANTED", "source": "e2e"})))
        .await
        .unwrap()
        .expect(200);
    p.call(
        Method::POST,
        "/v1/sender-identities",
        t,
        Some(json!({"from_address": "news@mailbox.example"})),
    )
    .await
    .unwrap()
    .expect(201);
    let template = p
        .call(
            Method::POST,
            "/v1/templates",
            t,
            Some(
                json!({"name": "Hello", "subject": "Hello {{ contact.first_name }}",
            "text_body": "Leave any time: {{ unsubscribe_url }}"}),
            ),
        )
        .await
        .unwrap()
        .id("id");
    let campaign = p
        .call(
            Method::POST,
            "/v1/campaigns",
            t,
            Some(json!({"name": "E2E", "status": "CAMPAIGN_STATUS_ACTIVE"})),
        )
        .await
        .unwrap()
        .id("id");
    p.call(
        Method::POST,
        &format!("/v1/campaigns/{campaign}/members"),
        t,
        Some(json!({"contact_ids": [contact]})),
    )
    .await
    .unwrap()
    .expect(200);
    let send = p
        .call(
            Method::POST,
            "/v1/sends",
            t,
            Some(json!({"template_id": template, "campaign_id": campaign})),
        )
        .await
        .unwrap()
        .expect(201);
    // The campaign's audience is resolved in the background.
    assert_eq!(send["status"], "SEND_STATUS_RESOLVING");

    let outbox = p.state_dir.join("mail");
    let mail = testkit::eventually("the message in the mail directory", PATIENCE, || async {
        let entries = std::fs::read_dir(&outbox).ok()?;
        entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .find(|text| text.contains("mary@mailbox.example"))
    })
    .await;
    let mail = testkit::Received {
        from: String::new(),
        to: Vec::new(),
        data: mail,
    };
    assert_eq!(mail.header("Subject").as_deref(), Some("Hello Mary"));
    let header = mail.header("List-Unsubscribe").expect("List-Unsubscribe");
    let unsubscribe = header.trim_matches(['<', '>']).to_owned();
    assert!(
        unsubscribe.starts_with(&format!("{}/u/", p.base)),
        "{unsubscribe}"
    );
    let done = reqwest::Client::new()
        .post(&unsubscribe)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .expect("one-click");
    assert_eq!(done.status(), 200);
    let read = p
        .call(Method::GET, &format!("/v1/contacts/{contact}"), t, None)
        .await
        .unwrap()
        .expect(200);
    assert_eq!(read["consents"][0]["status"], "CONSENT_STATUS_WITHDRAWN");
}
