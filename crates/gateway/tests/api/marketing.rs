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

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
}

#[tokio::test]
async fn a_message_is_opened_clicked_and_unsubscribed_through_the_public_routes() {
    use crm_proto::crm::marketing::v1::{MessageClicked, MessageUnsubscribed};
    use crm_proto::events::DomainEvent;
    use prost::Message as _;

    let stack = Stack::start().await;
    let (_, admin) = stack.tenant("Acme").await;
    let a = Some(admin.as_str());
    let contact = stack
        .call(Method::POST, "/v1/contacts", a,
            Some(json!({"first_name": "Ada", "last_name": "Lovelace", "emails": [{"address": "ada@example.com", "primary": true}]})), &[])
        .await;
    let contact = json_of(contact, 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let consent = stack
        .call(Method::POST, &format!("/v1/contacts/{contact}/consents"), a,
            Some(json!({"channel": "CHANNEL_EMAIL", "status": "CONSENT_STATUS_GRANTED", "source": "web_form"})), &[])
        .await;
    json_of(consent, 200).await;
    // A lead with the same e-mail in sales, scored for clicks.
    let scoring = stack
        .call(Method::PUT, "/v1/lead-scoring", a,
            Some(json!({"rules": [{"engagement": "email_clicked", "points": 15}], "half_life_days": 0})), &[])
        .await;
    json_of(scoring, 200).await;
    let lead = stack
        .call(
            Method::POST,
            "/v1/leads",
            a,
            Some(
                json!({"last_name": "Lovelace", "email": "ada@example.com", "company": "Engines"}),
            ),
            &[],
        )
        .await;
    let lead = json_of(lead, 201).await;
    let (lead_id, score_before) = (
        lead["id"].as_str().unwrap().to_owned(),
        lead["score"].as_i64().unwrap_or_default(),
    );
    let identity = stack
        .call(
            Method::POST,
            "/v1/sender-identities",
            a,
            Some(json!({"from_address": "news@acme.example", "from_name": "Acme News"})),
            &[],
        )
        .await;
    json_of(identity, 201).await;
    let template = stack
        .call(Method::POST, "/v1/templates", a,
            Some(json!({"name": "Offer", "subject": "For you, {{ contact.first_name }}",
                "html_body": "<html><body><a href=\"{{ link('https://shop.example/offer?x=1') }}\">Offer</a></body></html>",
                "text_body": "Offer: {{ link('https://shop.example/offer?x=1') }} Leave: {{ unsubscribe_url }}"})), &[])
        .await;
    let template = json_of(template, 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let campaign = stack
        .call(
            Method::POST,
            "/v1/campaigns",
            a,
            Some(json!({"name": "Offers", "status": "CAMPAIGN_STATUS_ACTIVE"})),
            &[],
        )
        .await;
    let campaign = json_of(campaign, 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let added = stack
        .call(
            Method::POST,
            &format!("/v1/campaigns/{campaign}/members"),
            a,
            Some(json!({"contact_ids": [contact]})),
            &[],
        )
        .await;
    json_of(added, 200).await;
    let send = stack
        .call(
            Method::POST,
            "/v1/sends",
            a,
            Some(json!({"template_id": template, "campaign_id": campaign})),
            &[],
        )
        .await;
    // The campaign's audience is resolved in the background.
    assert_eq!(json_of(send, 201).await["status"], "SEND_STATUS_RESOLVING");

    let mail = stack.smtp.wait_for(1).await.remove(0);
    assert_eq!(
        mail.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let header = mail.header("List-Unsubscribe").expect("List-Unsubscribe");
    let unsubscribe = header.trim_matches(['<', '>']).to_owned();
    assert!(
        unsubscribe.starts_with(&format!("{}/u/", stack.base)),
        "{unsubscribe}"
    );
    let pixel = mail.links(&format!("{}/t/o/", stack.base)).remove(0);
    let click = mail.links(&format!("{}/t/c/", stack.base)).remove(0);
    assert!(
        !mail.decoded().contains("href=\"https://shop.example"),
        "the link is tracked"
    );

    let http = no_redirects();
    let opened = http.get(&pixel).send().await.expect("pixel");
    assert_eq!(opened.status(), 200);
    assert_eq!(opened.headers()["content-type"], "image/gif");
    // The pixel answers whatever happens to the record (a reader never sees
    // an error), and under heavy load a record can time out: the test opens
    // again until the open is on the member (opens are idempotent).
    let members_path = format!("/v1/campaigns/{campaign}/members");
    testkit::eventually(
        "the open recorded",
        std::time::Duration::from_secs(30),
        || async {
            let members = stack.call(Method::GET, &members_path, a, None, &[]).await;
            let body: serde_json::Value = members.json().await.ok()?;
            if body["members"][0]["opened_at"].is_string() {
                return Some(());
            }
            let _ = http.get(&pixel).send().await;
            None
        },
    )
    .await;
    let followed = http.get(&click).send().await.expect("click");
    assert_eq!(followed.status(), 302);
    assert_eq!(
        followed.headers()["location"],
        "https://shop.example/offer?x=1"
    );
    let clicked = stack
        .services
        .nats
        .events("marketing", MessageClicked::TYPE, 1)
        .await;
    let clicked = MessageClicked::decode(clicked[0].data.as_slice()).expect("payload");
    assert_eq!(
        (clicked.contact_id.as_str(), clicked.url.as_str()),
        (contact.as_str(), "https://shop.example/offer?x=1")
    );

    // Sales scores the lead with that e-mail for the click.
    let lead_path = format!("/v1/leads/{lead_id}");
    testkit::eventually(
        "the lead scored for the click",
        std::time::Duration::from_secs(30),
        || async {
            let lead = stack.call(Method::GET, &lead_path, a, None, &[]).await;
            let score = lead.json::<serde_json::Value>().await.ok()?["score"].as_i64()?;
            (score == score_before + 15).then_some(())
        },
    )
    .await;

    // Forged, altered or foreign links all get the same answer.
    let (signed, _) = click.rsplit_once('.').expect("a signature");
    for bad in [
        format!("{signed}.AAAA"),
        format!("{}/t/c/{}.x.y", stack.base, uuid::Uuid::now_v7().simple()),
        format!("{}/t/c/nonsense", stack.base),
    ] {
        let refused = http.get(&bad).send().await.expect("bad link");
        assert_eq!(refused.status(), 404, "{bad}");
    }
    // An open link is not a click link.
    let wrong_kind = pixel.replace("/t/o/", "/t/c/");
    assert_eq!(
        http.get(&wrong_kind)
            .send()
            .await
            .expect("wrong kind")
            .status(),
        404
    );

    // GET only asks; POST (RFC 8058 one-click) unsubscribes, once.
    let asked = http.get(&unsubscribe).send().await.expect("page");
    assert_eq!(asked.status(), 200);
    let page = asked.text().await.expect("page");
    assert!(
        page.contains("a***@example.com") && page.contains("Acme News"),
        "{page}"
    );
    for _ in 0..2 {
        let done = http
            .post(&unsubscribe)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .expect("one-click");
        assert_eq!(done.status(), 200);
    }
    let events = stack
        .services
        .nats
        .events("marketing", MessageUnsubscribed::TYPE, 1)
        .await;
    assert_eq!(events.len(), 1, "one unsubscription");
    let read = stack
        .call(
            Method::GET,
            &format!("/v1/contacts/{contact}"),
            a,
            None,
            &[],
        )
        .await;
    let read = json_of(read, 200).await;
    assert_eq!(read["consents"][0]["status"], "CONSENT_STATUS_WITHDRAWN");
    assert_eq!(read["consents"][0]["source"], "unsubscribe_link");
    let suppressed = stack
        .call(Method::GET, "/v1/suppressions", a, None, &[])
        .await;
    assert_eq!(
        json_of(suppressed, 200).await["suppressions"][0]["address"],
        "ada@example.com"
    );
    let members = stack
        .call(
            Method::GET,
            &format!("/v1/campaigns/{campaign}/members"),
            a,
            None,
            &[],
        )
        .await;
    let member = &json_of(members, 200).await["members"][0];
    assert_eq!(member["status"], "MEMBER_STATUS_UNSUBSCRIBED");
    assert!(member["opened_at"].is_string() && member["clicked_at"].is_string());
    let reach = stack
        .call(
            Method::GET,
            &format!("/v1/contacts/{contact}/reachability"),
            a,
            None,
            &[],
        )
        .await;
    assert_eq!(
        json_of(reach, 200).await["reason"],
        "SKIP_REASON_CONSENT_WITHDRAWN"
    );
}

#[tokio::test]
async fn a_won_deal_is_attributed_to_the_campaigns_that_touched_its_contact() {
    let stack = Stack::start().await;
    let (_, admin) = stack.tenant("Acme").await;
    let a = Some(admin.as_str());
    let post = |path: String, body: serde_json::Value, status: u16| {
        let stack = &stack;
        async move {
            json_of(
                stack.call(Method::POST, &path, a, Some(body), &[]).await,
                status,
            )
            .await
        }
    };
    let pipeline = post("/v1/pipelines".into(), json!({"name": "Main", "stages": [{"name": "Open"}, {"name": "Won", "kind": "STAGE_KIND_WON"}, {"name": "Lost", "kind": "STAGE_KIND_LOST"}]}), 201).await;
    let won_stage = pipeline["stages"][1]["id"].as_str().unwrap().to_owned();
    let account = post("/v1/accounts".into(), json!({"name": "Engines"}), 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let contact = post(
        "/v1/contacts".into(),
        json!({"last_name": "Lovelace", "account_id": account}),
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Three campaigns engage the contact in turn: responded, clicked, opened.
    let mut campaigns = Vec::new();
    for (name, status) in [
        ("Webinar", "MEMBER_STATUS_RESPONDED"),
        ("Newsletter", "MEMBER_STATUS_CLICKED"),
        ("Ads", "MEMBER_STATUS_OPENED"),
    ] {
        let campaign = post("/v1/campaigns".into(), json!({"name": name}), 201).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        post(
            format!("/v1/campaigns/{campaign}/members"),
            json!({"contact_ids": [contact]}),
            200,
        )
        .await;
        let members = stack
            .call(
                Method::GET,
                &format!("/v1/campaigns/{campaign}/members"),
                a,
                None,
                &[],
            )
            .await;
        let member = json_of(members, 200).await["members"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        post(
            format!("/v1/campaigns/{campaign}/members/{member}/status"),
            json!({"status": status}),
            200,
        )
        .await;
        campaigns.push(campaign);
    }
    post(
        format!("/v1/campaigns/{}/costs", campaigns[0]),
        json!({"amount": {"amount": "250.00", "currency": "EUR"}}),
        200,
    )
    .await;

    let deal = post("/v1/opportunities".into(), json!({"name": "Engines", "account_id": account,
        "contacts": [{"contact_id": contact, "role": "buyer"}], "amount": {"amount": "1000.00", "currency": "EUR"}}), 201).await;
    let deal = deal["id"].as_str().unwrap().to_owned();
    post(
        format!("/v1/opportunities/{deal}/stage"),
        json!({"stage_id": won_stage}),
        200,
    )
    .await;

    let revenue = |campaign: String| {
        let stack = &stack;
        async move {
            let performance = stack
                .call(
                    Method::GET,
                    &format!("/v1/campaigns/{campaign}/performance"),
                    a,
                    None,
                    &[],
                )
                .await;
            let performance = json_of(performance, 200).await;
            performance["attributed"]
                .as_array()
                .map(|rows| {
                    rows.iter()
                        .map(|r| {
                            (
                                r["model"].as_str().unwrap_or_default().to_owned(),
                                r["revenue"]["amount"]
                                    .as_str()
                                    .unwrap_or_default()
                                    .to_owned(),
                                r["roi"].as_str().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        }
    };
    let first = testkit::eventually(
        "the win attributed",
        std::time::Duration::from_secs(30),
        || async {
            let rows = revenue(campaigns[0].clone()).await;
            (!rows.is_empty()).then_some(rows)
        },
    )
    .await;
    assert_eq!(
        first,
        vec![
            (
                "ATTRIBUTION_MODEL_FIRST_TOUCH".to_owned(),
                "1000".to_owned(),
                "3".to_owned()
            ),
            (
                "ATTRIBUTION_MODEL_LINEAR".to_owned(),
                "333.34".to_owned(),
                "0.3334".to_owned()
            ),
        ]
    );
    assert_eq!(
        revenue(campaigns[1].clone()).await,
        vec![(
            "ATTRIBUTION_MODEL_LINEAR".to_owned(),
            "333.33".to_owned(),
            String::new()
        )]
    );
    assert_eq!(
        revenue(campaigns[2].clone()).await,
        vec![
            (
                "ATTRIBUTION_MODEL_LAST_TOUCH".to_owned(),
                "1000".to_owned(),
                String::new()
            ),
            (
                "ATTRIBUTION_MODEL_LINEAR".to_owned(),
                "333.33".to_owned(),
                String::new()
            ),
        ]
    );
    let performance = stack
        .call(
            Method::GET,
            &format!("/v1/campaigns/{}/performance", campaigns[1]),
            a,
            None,
            &[],
        )
        .await;
    let performance = json_of(performance, 200).await;
    assert_eq!(
        (
            performance["members"].as_i64(),
            performance["clicked"].as_i64()
        ),
        (Some(1), Some(1))
    );
}

#[tokio::test]
async fn a_form_posted_from_a_web_page_becomes_a_routed_lead_with_its_campaign() {
    let stack = Stack::start_with(|config| config.form_posts_per_minute = 4).await;
    let (_, admin) = stack.tenant("Acme").await;
    let a = Some(admin.as_str());
    let created = stack
        .create_user(&admin, "rob@acme.example", "user password 1", "sales_rep")
        .await;
    let rob = json_of(created, 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rules = stack
        .call(
            Method::PUT,
            "/v1/lead-routing/rules",
            a,
            Some(json!({"rules": [{"name": "Everything to Rob", "match": {}, "user_id": rob}]})),
            &[],
        )
        .await;
    json_of(rules, 200).await;
    let campaign = stack
        .call(
            Method::POST,
            "/v1/campaigns",
            a,
            Some(json!({"name": "Trade fair 2027", "status": "CAMPAIGN_STATUS_ACTIVE"})),
            &[],
        )
        .await;
    let campaign = json_of(campaign, 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let definition = json!({
        "name": "Meet us at the fair",
        "campaign_id": campaign,
        "fields": [
            {"name": "email", "label": "E-mail", "target": "FORM_FIELD_TARGET_EMAIL", "required": true},
            {"name": "surname", "label": "Surname", "target": "FORM_FIELD_TARGET_LAST_NAME"},
            {"name": "firm", "label": "Company <Ltd>", "target": "FORM_FIELD_TARGET_COMPANY"}
        ],
        "consent": {"channel": "CHANNEL_EMAIL", "wording": "E-mail me about the fair", "required": true}
    });
    // A rep may not make forms; another tenant does not see this one.
    let rep = stack.user(&admin, "rick@acme.example", "sales_rep").await;
    let denied = stack
        .call(
            Method::POST,
            "/v1/forms",
            Some(&rep),
            Some(definition.clone()),
            &[],
        )
        .await;
    assert_eq!(problem(denied, 403).await["code"], "PERMISSION_DENIED");
    let form = stack
        .call(Method::POST, "/v1/forms", a, Some(definition), &[])
        .await;
    let form = json_of(form, 201).await;
    let (form_id, key) = (
        form["id"].as_str().unwrap().to_owned(),
        form["public_key"].as_str().unwrap().to_owned(),
    );
    let (_, other) = stack.tenant("Globex").await;
    let hidden = stack
        .call(
            Method::GET,
            &format!("/v1/forms/{form_id}"),
            Some(&other),
            None,
            &[],
        )
        .await;
    assert_eq!(problem(hidden, 404).await["status"], 404);

    // The page anyone may open: the inputs, the consent wording, the
    // hidden honeypot, every label escaped.
    let url = format!("{}/f/{key}", stack.base);
    let page = stack.http.get(&url).send().await.expect("page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("name=\"email\" type=\"email\""), "{html}");
    assert!(html.contains("E-mail me about the fair"));
    assert!(html.contains("name=\"website\""));
    assert!(html.contains("Company &lt;Ltd&gt;") && !html.contains("<Ltd>"));
    for unknown in [
        format!("{}/f/{}.forged", stack.base, uuid::Uuid::now_v7()),
        format!("{}/f/nonsense", stack.base),
    ] {
        let response = stack.http.get(&unknown).send().await.expect("page");
        assert_eq!(response.status(), 404, "{unknown}");
    }

    // 1: JSON with problems, each named.
    let bad = stack
        .http
        .post(&url)
        .json(&json!({"email": "not-mail", "surname": "Hopper"}))
        .send()
        .await
        .expect("post");
    let mut violated = fields(&problem(bad, 400).await);
    violated.sort();
    assert_eq!(violated, ["consent", "email"]);
    // 2: a browser's form post, answered with a page.
    let posted = stack
        .http
        .post(&url)
        .header("referer", "https://acme.example/fair")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=ada%40example.com&surname=Lovelace&firm=Analytical&consent=on")
        .send()
        .await
        .expect("post");
    assert_eq!(posted.status(), 200);
    assert!(posted.text().await.expect("page").contains("Thank you."));
    // 3: a bot fills the honeypot: answered alike, dropped.
    let bot = stack
        .http
        .post(&url)
        .json(&json!({"email": "bot@spam.example", "consent": true, "website": "http://spam"}))
        .send()
        .await
        .expect("post");
    assert!(json_of(bot, 202).await["submission_id"].is_string());
    // 4: JSON from a site's own code.
    let grace = stack
        .http
        .post(&url)
        .json(&json!({"email": "grace@example.com", "surname": "Hopper", "consent": true}))
        .send()
        .await
        .expect("post");
    let grace = json_of(grace, 202).await;
    assert_eq!(grace["message"], "Thank you.");
    // 5: over this address's posts per minute.
    let limited = stack
        .http
        .post(&url)
        .json(&json!({"email": "late@example.com", "consent": true}))
        .send()
        .await
        .expect("post");
    assert_eq!(problem(limited, 429).await["code"], "RATE_LIMITED");

    // Sales made a lead of each real submission: web form, the form's
    // campaign, routed to Rob by the rule.
    let leads = testkit::eventually(
        "the submissions' leads",
        std::time::Duration::from_secs(30),
        || async {
            let listed = stack.call(Method::GET, "/v1/leads", a, None, &[]).await;
            let leads = listed.json::<serde_json::Value>().await.ok()?["leads"]
                .as_array()?
                .clone();
            (leads.len() >= 2).then_some(leads)
        },
    )
    .await;
    let mut emails: Vec<&str> = leads.iter().filter_map(|l| l["email"].as_str()).collect();
    emails.sort();
    assert_eq!(emails, ["ada@example.com", "grace@example.com"]);
    for lead in &leads {
        assert_eq!(lead["source"], "LEAD_SOURCE_WEB_FORM");
        assert_eq!(lead["campaign_id"], campaign.as_str());
        assert_eq!(lead["owner_id"], rob.as_str());
    }
    let submissions = stack
        .call(
            Method::GET,
            &format!("/v1/forms/{form_id}/submissions"),
            a,
            None,
            &[],
        )
        .await;
    let submissions = json_of(submissions, 200).await;
    let kept = submissions["submissions"].as_array().unwrap();
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[1]["page_url"], "https://acme.example/fair");
    assert_eq!(kept[1]["consent_wording"], "E-mail me about the fair");
}

#[tokio::test]
async fn an_order_and_its_payment_earn_loyalty_points_for_the_deal_contact() {
    let stack = Stack::start().await;
    let (_, admin) = stack.tenant("Acme").await;
    let a = Some(admin.as_str());
    let post = |path: String, body: serde_json::Value, status: u16| {
        let stack = &stack;
        async move {
            json_of(
                stack.call(Method::POST, &path, a, Some(body), &[]).await,
                status,
            )
            .await
        }
    };
    let id = |value: serde_json::Value| value["id"].as_str().unwrap().to_owned();
    post("/v1/pipelines".into(), json!({"name": "Main", "stages": [{"name": "Open"}, {"name": "Won", "kind": "STAGE_KIND_WON"}, {"name": "Lost", "kind": "STAGE_KIND_LOST"}]}), 201).await;
    let contact = id(post("/v1/contacts".into(), json!({"last_name": "Lovelace"}), 201).await);
    let program = id(post(
        "/v1/loyalty-programs".into(),
        json!({"name": "Club", "currency": "EUR", "tiers": [{"name": "Silver", "threshold": 100}],
               "earn_rules": [{"event": "EARN_EVENT_ORDER_CREATED", "points_per_unit": "1"},
                              {"event": "EARN_EVENT_PAYMENT_RECORDED", "fixed_points": 5}]}),
        201,
    )
    .await);
    let product = id(post(
        "/v1/products".into(),
        json!({"sku": "seat", "name": "Seat"}),
        201,
    )
    .await);
    let book = id(post(
        "/v1/price-books".into(),
        json!({"name": "Euro", "currency": "EUR"}),
        201,
    )
    .await);
    let prices = stack
        .call(Method::PUT, &format!("/v1/price-books/{book}/prices"), a,
            Some(json!({"entries": [{"product_id": product, "list_price": {"amount": "49.99", "currency": "EUR"}}]})), &[])
        .await;
    json_of(prices, 200).await;
    let deal = id(post(
        "/v1/opportunities".into(),
        json!({"name": "Seats", "amount": {"amount": "500", "currency": "EUR"}, "contacts": [{"contact_id": contact, "role": "buyer"}]}),
        201,
    )
    .await);
    let quote = id(post(
        "/v1/quotes".into(),
        json!({"opportunity_id": deal, "lines": [{"product_id": product, "quantity": "10", "discount_percent": "5"}]}),
        201,
    )
    .await);
    for (step, body) in [
        ("submit", json!({})),
        ("send", json!({})),
        ("customer-decision", json!({"accepted": true})),
    ] {
        post(format!("/v1/quotes/{quote}/{step}"), body, 200).await;
    }
    let order = post("/v1/orders".into(), json!({"quote_id": quote}), 201).await;
    // A point per whole euro of the order (474.91 EUR: 474), 5 for the payment.
    let total = order["total"]["amount"].as_str().unwrap();
    let euros: i64 = total.split('.').next().unwrap().parse().unwrap();
    let expected = euros + 5;
    assert_eq!(expected, 479);
    let order = id(order);
    let invoice = id(post(
        format!("/v1/orders/{order}/invoices"),
        json!({"due_on": "2099-01-31"}),
        201,
    )
    .await);
    post(
        format!("/v1/invoices/{invoice}/payments"),
        json!({"amount": {"amount": "65.14", "currency": "EUR"}, "method": "card"}),
        200,
    )
    .await;

    let account_path = format!("/v1/loyalty-programs/{program}/accounts/{contact}");
    let account = testkit::eventually(
        "the order's and the payment's points",
        std::time::Duration::from_secs(30),
        || async {
            let got = stack.call(Method::GET, &account_path, a, None, &[]).await;
            let account = got.json::<serde_json::Value>().await.ok()?;
            (account["balance"].as_i64()? == expected).then_some(account)
        },
    )
    .await;
    assert_eq!(account["tier"], "Silver");
    let entries = stack
        .call(
            Method::GET,
            &format!("{account_path}/entries"),
            a,
            None,
            &[],
        )
        .await;
    let entries = json_of(entries, 200).await;
    let mut sources: Vec<String> = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["source"]
                .as_str()
                .unwrap_or_default()
                .split(':')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    sources.sort();
    assert_eq!(sources, ["order", "payment"]);

    // A viewer redeems nothing; another tenant sees no account here.
    let viewer = stack.user(&admin, "vic@acme.example", "viewer").await;
    let denied = stack
        .call(
            Method::POST,
            &format!("{account_path}/redemptions"),
            Some(&viewer),
            Some(json!({"points": 10, "reason": "voucher"})),
            &[],
        )
        .await;
    assert_eq!(problem(denied, 403).await["code"], "PERMISSION_DENIED");
    let (_, other) = stack.tenant("Globex").await;
    let hidden = stack
        .call(Method::GET, &account_path, Some(&other), None, &[])
        .await;
    problem(hidden, 404).await;
    let spent = stack
        .call(
            Method::POST,
            &format!("{account_path}/redemptions"),
            a,
            Some(json!({"points": 600, "reason": "voucher"})),
            &[],
        )
        .await;
    assert_eq!(problem(spent, 409).await["code"], "FAILED_PRECONDITION");
}

/// Signs a delivery report body as the relay does.
fn signed(body: &str, at: i64, key: &str) -> [(String, String); 2] {
    let key = marketing::domain::links::LinkKey::from_base64(key).expect("key");
    [
        ("X-CRM-Timestamp".into(), at.to_string()),
        ("X-CRM-Signature".into(), key.sign_body(at, body.as_bytes())),
    ]
}

#[tokio::test]
async fn the_relays_reports_bounce_and_complain_through_the_signed_webhook() {
    let stack = Stack::start().await;
    let (_, admin) = stack.tenant("Acme").await;
    let a = Some(admin.as_str());
    let post = |path: String, body: serde_json::Value, status: u16| {
        let stack = &stack;
        async move {
            json_of(
                stack.call(Method::POST, &path, a, Some(body), &[]).await,
                status,
            )
            .await
        }
    };
    let id = |value: serde_json::Value| value["id"].as_str().unwrap().to_owned();
    let mut contacts = Vec::new();
    for (name, email) in [("Ada", "ada@example.com"), ("Bob", "bob@example.com")] {
        let contact = id(post(
            "/v1/contacts".into(),
            json!({"last_name": name, "emails": [{"address": email, "primary": true}]}),
            201,
        )
        .await);
        post(
            format!("/v1/contacts/{contact}/consents"),
            json!({"channel": "CHANNEL_EMAIL", "status": "CONSENT_STATUS_GRANTED", "source": "web_form"}),
            200,
        )
        .await;
        contacts.push(contact);
    }
    post(
        "/v1/sender-identities".into(),
        json!({"from_address": "news@acme.example"}),
        201,
    )
    .await;
    let template = id(post(
        "/v1/templates".into(),
        json!({"name": "News", "subject": "News", "text_body": "Hello {{ contact.last_name }}"}),
        201,
    )
    .await);
    let campaign = id(post(
        "/v1/campaigns".into(),
        json!({"name": "News", "status": "CAMPAIGN_STATUS_ACTIVE"}),
        201,
    )
    .await);
    post(
        format!("/v1/campaigns/{campaign}/members"),
        json!({"contact_ids": contacts}),
        200,
    )
    .await;
    post(
        "/v1/sends".into(),
        json!({"template_id": template, "campaign_id": campaign}),
        201,
    )
    .await;
    let mails = stack.smtp.wait_for(2).await;
    let message_id = |to: &str| {
        mails
            .iter()
            .find(|m| m.to.iter().any(|t| t.contains(to)))
            .and_then(|m| m.header("Message-ID"))
            .expect("a Message-ID")
    };
    let (ada, bob) = (message_id("ada@"), message_id("bob@"));
    let body = json!({"reports": [
        {"reference": ada, "event": "delivered"},
        {"reference": bob, "event": "bounced", "permanent": true, "detail": "550 5.1.1 no such user"},
        {"reference": ada, "event": "complained"},
        {"reference": format!("<{}.{}@elsewhere.example>", uuid::Uuid::now_v7(), uuid::Uuid::now_v7()), "event": "delivered"}
    ]})
    .to_string();
    let url = format!("{}/hooks/delivery-reports", stack.base);
    let now = chrono::Utc::now().timestamp();
    let send = |headers: Vec<(String, String)>, body: String| {
        let stack = &stack;
        let url = url.clone();
        async move {
            let mut request = stack
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body(body);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            request.send().await.expect("post")
        }
    };

    // Unsigned, signed with another key, signed long ago, or altered after
    // signing: refused, nothing applied.
    problem(send(Vec::new(), body.clone()).await, 401).await;
    let other_key = "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktb3RoZXI=";
    problem(
        send(signed(&body, now, other_key).to_vec(), body.clone()).await,
        401,
    )
    .await;
    problem(
        send(
            signed(&body, now - 3600, WEBHOOK_KEY).to_vec(),
            body.clone(),
        )
        .await,
        401,
    )
    .await;
    let altered = body.replace("\"permanent\":true", "\"permanent\":false");
    assert_ne!(altered, body);
    problem(
        send(signed(&body, now, WEBHOOK_KEY).to_vec(), altered).await,
        401,
    )
    .await;

    let done = send(signed(&body, now, WEBHOOK_KEY).to_vec(), body.clone()).await;
    assert_eq!(
        json_of(done, 200).await,
        json!({"applied": 3, "ignored": 1}),
        "the report about a message no tenant has is ignored"
    );
    let again = send(signed(&body, now + 1, WEBHOOK_KEY).to_vec(), body.clone()).await;
    assert_eq!(
        json_of(again, 200).await,
        json!({"applied": 0, "ignored": 4}),
        "each report once"
    );

    // Bob bounced for good, Ada complained: members, consent, suppressions.
    let members = stack
        .call(
            Method::GET,
            &format!("/v1/campaigns/{campaign}/members"),
            a,
            None,
            &[],
        )
        .await;
    let members = json_of(members, 200).await;
    let status_of = |contact: &str| {
        members["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["contact_id"] == contact)
            .map(|m| m["status"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(status_of(&contacts[0]), "MEMBER_STATUS_UNSUBSCRIBED");
    assert_eq!(status_of(&contacts[1]), "MEMBER_STATUS_BOUNCED");
    let reach = stack
        .call(
            Method::GET,
            &format!("/v1/contacts/{}/reachability", contacts[0]),
            a,
            None,
            &[],
        )
        .await;
    assert_eq!(
        json_of(reach, 200).await["reason"],
        "SKIP_REASON_CONSENT_WITHDRAWN"
    );
    // The hard bounce holds for another tenant too.
    let (_, other) = stack.tenant("Globex").await;
    let o = Some(other.as_str());
    let theirs = stack
        .call(Method::POST, "/v1/contacts", o,
            Some(json!({"last_name": "Bob", "emails": [{"address": "bob@example.com", "primary": true}]})), &[])
        .await;
    let theirs = id(json_of(theirs, 201).await);
    let consent = stack
        .call(Method::POST, &format!("/v1/contacts/{theirs}/consents"), o,
            Some(json!({"channel": "CHANNEL_EMAIL", "status": "CONSENT_STATUS_GRANTED", "source": "web_form"})), &[])
        .await;
    json_of(consent, 200).await;
    let reach = stack
        .call(
            Method::GET,
            &format!("/v1/contacts/{theirs}/reachability"),
            o,
            None,
            &[],
        )
        .await;
    assert_eq!(
        json_of(reach, 200).await["reason"],
        "SKIP_REASON_SUPPRESSED"
    );
}

#[tokio::test]
async fn services_get_their_own_tokens_and_automation_rules_act_with_them() {
    let stack = Stack::start().await;
    let (tenant, admin) = stack.tenant("Acme").await;
    let a = Some(admin.as_str());
    let grant = |secret: &'static str, tenant: String| {
        let stack = &stack;
        async move {
            stack
                .call(
                    Method::POST,
                    "/v1/auth/service-token",
                    Some(secret),
                    Some(json!({"tenant_id": tenant})),
                    &[],
                )
                .await
        }
    };
    // Only a service's secret gets a token; a user's token is not one.
    let wrong = grant("not-the-secret-of-any-service-at-all", tenant.clone()).await;
    problem(wrong, 401).await;
    let as_user = stack
        .call(
            Method::POST,
            "/v1/auth/service-token",
            a,
            Some(json!({"tenant_id": tenant})),
            &[],
        )
        .await;
    problem(as_user, 401).await;
    let unknown = grant(SERVICE_SECRET, uuid::Uuid::now_v7().to_string()).await;
    problem(unknown, 404).await;
    let granted = json_of(grant(SERVICE_SECRET, tenant.clone()).await, 200).await;
    assert_eq!(granted["expires_in"], 300);
    let token = granted["access_token"].as_str().unwrap().to_owned();
    let me = json_of(
        stack
            .call(Method::GET, "/v1/me", Some(&token), None, &[])
            .await,
        200,
    )
    .await;
    assert_eq!(
        (me["subject"].as_str(), me["tenant_id"].as_str()),
        (Some("service:marketing"), Some(tenant.as_str()))
    );

    // A rule made over REST adds every new contact to a segment: marketing
    // acts in customers with a token from the grant above.
    let segment = json_of(
        stack
            .call(
                Method::POST,
                "/v1/segments",
                a,
                Some(json!({"segment": {"name": "Newcomers", "kind": "SEGMENT_KIND_STATIC"}})),
                &[],
            )
            .await,
        201,
    )
    .await;
    let segment = segment["id"].as_str().unwrap().to_owned();
    let rule = json_of(
        stack
            .call(
                Method::POST,
                "/v1/automation-rules",
                a,
                Some(json!({
                    "name": "Welcome newcomers",
                    "event_type": "crm.customers.contact.created.v1",
                    "conditions": [{"path": "contact.emails.0.address", "operator": "CONDITION_OPERATOR_CONTAINS", "value": "@acme.example"}],
                    "actions": [{"kind": "ACTION_KIND_ADD_TO_SEGMENT", "segment_id": segment}]
                })),
                &[],
            )
            .await,
        201,
    )
    .await;
    let rule = rule["id"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for email in ["ada@acme.example", "bob@elsewhere.example"] {
        let contact = json_of(
            stack
                .call(
                    Method::POST,
                    "/v1/contacts",
                    a,
                    Some(json!({"last_name": "Newcomer", "emails": [{"address": email, "primary": true}]})),
                    &[],
                )
                .await,
            201,
        )
        .await;
        ids.push(contact["id"].as_str().unwrap().to_owned());
    }
    let runs = testkit::eventually(
        "the rule's run",
        std::time::Duration::from_secs(60),
        || async {
            let runs = stack
                .call(
                    Method::GET,
                    &format!("/v1/automation-rules/{rule}/runs"),
                    a,
                    None,
                    &[],
                )
                .await
                .json::<serde_json::Value>()
                .await
                .ok()?;
            let done = runs["runs"]
                .as_array()?
                .iter()
                .any(|r| r["status"] == "RUN_STATUS_DONE");
            done.then_some(runs)
        },
    )
    .await;
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(1), "{runs}");
    assert_eq!(
        runs["runs"][0]["contact_id"].as_str(),
        Some(ids[0].as_str())
    );
    let members = json_of(
        stack
            .call(
                Method::GET,
                &format!("/v1/segments/{segment}/members"),
                a,
                None,
                &[],
            )
            .await,
        200,
    )
    .await;
    let members: Vec<&str> = members["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(members, vec![ids[0].as_str()]);
}
