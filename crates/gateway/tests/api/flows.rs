use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::*;

#[tokio::test]
async fn a_tenant_admin_logs_in_and_manages_contacts_over_rest() {
    let stack = Stack::start().await;
    let (tenant, token) = stack.tenant("Acme").await;
    let me: Value = stack
        .call(Method::GET, "/v1/me", Some(&token), None, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["tenant_id"], tenant);
    assert_eq!(me["roles"], json!(["admin"]));

    let created = stack
        .call(Method::POST, "/v1/contacts", Some(&token), Some(json!({"first_name": "Ada", "last_name": "Lovelace",
            "emails": [{"address": "ADA@example.com"}], "lifecycle_stage": "LIFECYCLE_STAGE_LEAD", "tags": ["VIP"]})), &[])
        .await;
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["etag"], "\"1\"");
    let contact: Value = created.json().await.unwrap();
    let id = contact["id"].as_str().unwrap().to_owned();
    assert_eq!(contact["emails"][0]["address"], "ada@example.com");
    assert_eq!(contact["tags"], json!(["vip"]));

    let fetched = stack
        .call(
            Method::GET,
            &format!("/v1/contacts/{id}"),
            Some(&token),
            None,
            &[],
        )
        .await;
    assert_eq!(fetched.headers()["etag"], "\"1\"");

    // A stale If-Match is refused with 412; the current one succeeds.
    let stale = stack
        .call(
            Method::PATCH,
            &format!("/v1/contacts/{id}"),
            Some(&token),
            Some(json!({"title": "Countess"})),
            &[("if-match", "\"7\"")],
        )
        .await;
    let stale = problem(stale, 412).await;
    assert_eq!(stale["code"], "VERSION_CONFLICT");
    let patched = stack
        .call(
            Method::PATCH,
            &format!("/v1/contacts/{id}"),
            Some(&token),
            Some(json!({"title": "Countess"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(patched.status(), 200);
    assert_eq!(patched.headers()["etag"], "\"2\"");
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(
        (patched["title"].as_str(), patched["last_name"].as_str()),
        (Some("Countess"), Some("Lovelace"))
    );

    let listed: Value = stack
        .call(
            Method::GET,
            "/v1/contacts?tag=vip&page_size=10",
            Some(&token),
            None,
            &[],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["contacts"].as_array().unwrap().len(), 1);
    let found: Value = stack
        .call(Method::GET, "/v1/search?q=lovelac", Some(&token), None, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found["items"][0]["id"], id);

    let deleted = stack
        .call(
            Method::DELETE,
            &format!("/v1/contacts/{id}"),
            Some(&token),
            None,
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(deleted.status(), 204);
    problem(
        stack
            .call(
                Method::GET,
                &format!("/v1/contacts/{id}"),
                Some(&token),
                None,
                &[],
            )
            .await,
        404,
    )
    .await;
}

#[tokio::test]
async fn bad_input_and_bad_tokens_get_clear_4xx_problems() {
    let stack = Stack::start().await;
    let (_, token) = stack.tenant("Acme").await;
    let invalid = stack
        .call(
            Method::POST,
            "/v1/contacts",
            Some(&token),
            Some(json!({"last_name": "X", "emails": [{"address": "nope"}]})),
            &[],
        )
        .await;
    let invalid = problem(invalid, 400).await;
    assert_eq!(fields(&invalid), ["contact.emails[0].address"]);
    assert_eq!(invalid["code"], "INVALID_ARGUMENT");

    let unknown_field = stack
        .call(
            Method::POST,
            "/v1/contacts",
            Some(&token),
            Some(json!({"last_name": "X", "salary": 1})),
            &[],
        )
        .await;
    let unknown_field = problem(unknown_field, 400).await;
    assert_eq!(
        fields(&unknown_field),
        ["contact.salary"],
        "{unknown_field}"
    );
    let malformed = stack
        .http
        .post(format!("{}/v1/contacts", stack.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    problem(malformed, 400).await;
    let wrong_type = stack
        .call(
            Method::POST,
            "/v1/contacts",
            Some(&token),
            Some(json!({"last_name": 42})),
            &[],
        )
        .await;
    problem(wrong_type, 400).await;
    let bad_param = stack
        .call(
            Method::GET,
            "/v1/contacts?page_size=-1",
            Some(&token),
            None,
            &[],
        )
        .await;
    assert_eq!(fields(&problem(bad_param, 400).await), ["page_size"]);
    let oversize = stack
        .http
        .post(format!("{}/v1/contacts", stack.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"last_name\": \"{}\"}}",
            "x".repeat(2 * 1024 * 1024)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(oversize.status(), 413);

    problem(
        stack
            .call(Method::GET, "/v1/contacts", None, None, &[])
            .await,
        401,
    )
    .await;
    problem(
        stack
            .call(Method::GET, "/v1/contacts", Some("not-a-token"), None, &[])
            .await,
        401,
    )
    .await;
    let forged = testkit::TokenIssuer::new().admin_token(uuid::Uuid::now_v7());
    problem(
        stack
            .call(Method::GET, "/v1/contacts", Some(&forged), None, &[])
            .await,
        401,
    )
    .await;
    problem(
        stack
            .call(Method::GET, "/v1/nowhere", Some(&token), None, &[])
            .await,
        404,
    )
    .await;
}

#[tokio::test]
async fn another_tenants_ids_are_not_found() {
    let stack = Stack::start().await;
    let (_, token_a) = stack.tenant("Alpha").await;
    let (_, token_b) = stack.tenant("Beta").await;
    let created: Value = stack
        .call(
            Method::POST,
            "/v1/contacts",
            Some(&token_a),
            Some(json!({"last_name": "Secret"})),
            &[],
        )
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    problem(
        stack
            .call(
                Method::GET,
                &format!("/v1/contacts/{id}"),
                Some(&token_b),
                None,
                &[],
            )
            .await,
        404,
    )
    .await;
    problem(
        stack
            .call(
                Method::PATCH,
                &format!("/v1/contacts/{id}"),
                Some(&token_b),
                Some(json!({"title": "x"})),
                &[],
            )
            .await,
        404,
    )
    .await;
    problem(
        stack
            .call(
                Method::DELETE,
                &format!("/v1/contacts/{id}"),
                Some(&token_b),
                None,
                &[],
            )
            .await,
        404,
    )
    .await;
    let listed: Value = stack
        .call(Method::GET, "/v1/contacts", Some(&token_b), None, &[])
        .await
        .json()
        .await
        .unwrap();
    assert!(listed["contacts"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn idempotency_keys_replay_the_first_response() {
    let stack = Stack::start().await;
    let (_, token) = stack.tenant("Acme").await;
    let body = json!({"last_name": "Once", "emails": [{"address": "once@example.com"}]});
    let first = stack
        .call(
            Method::POST,
            "/v1/contacts",
            Some(&token),
            Some(body.clone()),
            &[("idempotency-key", "k-1")],
        )
        .await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = stack
        .call(
            Method::POST,
            "/v1/contacts",
            Some(&token),
            Some(body),
            &[("idempotency-key", "k-1")],
        )
        .await;
    // The key travels as the service's request_id: the retry gets the
    // contact the first call made, with its ETag.
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["etag"], "\"1\"");
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["id"], again["id"]);
    let listed: Value = stack
        .call(Method::GET, "/v1/contacts", Some(&token), None, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["contacts"].as_array().unwrap().len(),
        1,
        "created once"
    );
    let other = stack
        .call(
            Method::POST,
            "/v1/contacts",
            Some(&token),
            Some(json!({"last_name": "Other"})),
            &[("idempotency-key", "k-1")],
        )
        .await;
    // The same key with another request is refused, never answered with
    // the first record.
    assert_eq!(problem(other, 409).await["code"], "ALREADY_EXISTS");
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_ends_the_session() {
    let stack = Stack::start().await;
    stack.tenant("Acme").await;
    let tokens = stack
        .login("admin@acme.example", "correct horse battery")
        .await;
    let first_refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let rotated = stack
        .call(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": first_refresh})),
            &[],
        )
        .await;
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    let second_refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(first_refresh, second_refresh);
    // The old token comes back: the whole family is revoked.
    problem(
        stack
            .call(
                Method::POST,
                "/v1/auth/refresh",
                None,
                Some(json!({"refresh_token": first_refresh})),
                &[],
            )
            .await,
        401,
    )
    .await;
    problem(
        stack
            .call(
                Method::POST,
                "/v1/auth/refresh",
                None,
                Some(json!({"refresh_token": second_refresh})),
                &[],
            )
            .await,
        401,
    )
    .await;

    problem(
        stack
            .call(
                Method::POST,
                "/v1/auth/login",
                None,
                Some(json!({"email": "admin@acme.example", "password": "wrong password!"})),
                &[],
            )
            .await,
        401,
    )
    .await;
    problem(
        stack
            .call(
                Method::POST,
                "/v1/auth/login",
                None,
                Some(json!({"email": "nobody@acme.example", "password": "wrong password!"})),
                &[],
            )
            .await,
        401,
    )
    .await;
}

#[tokio::test]
async fn roles_limit_what_users_may_do_and_openapi_is_served() {
    let stack = Stack::start().await;
    let (_, admin) = stack.tenant("Acme").await;
    let created = stack
        .call(
            Method::POST,
            "/v1/users",
            Some(&admin),
            Some(json!({"email": "viewer@acme.example", "display_name": "V",
            "password": "viewer password 1", "roles": ["viewer"]})),
            &[],
        )
        .await;
    assert_eq!(created.status(), 201);
    let bad_role = stack
        .call(
            Method::POST,
            "/v1/users",
            Some(&admin),
            Some(json!({"email": "x@acme.example", "display_name": "X",
            "password": "viewer password 1", "roles": ["root"]})),
            &[],
        )
        .await;
    assert_eq!(fields(&problem(bad_role, 400).await), ["roles[0]"]);
    let viewer = stack
        .login("viewer@acme.example", "viewer password 1")
        .await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    problem(
        stack
            .call(
                Method::POST,
                "/v1/contacts",
                Some(&viewer),
                Some(json!({"last_name": "No"})),
                &[],
            )
            .await,
        403,
    )
    .await;
    assert_eq!(
        stack
            .call(Method::GET, "/v1/contacts", Some(&viewer), None, &[])
            .await
            .status(),
        200
    );
    problem(
        stack
            .call(Method::GET, "/v1/users", Some(&viewer), None, &[])
            .await,
        403,
    )
    .await;
    problem(stack.call(Method::POST, "/v1/tenants", Some(&admin), Some(json!({"name": "x", "admin_email": "a@b.example", "admin_name": "a", "admin_password": "long enough pw"})), &[]).await, 401).await;

    let spec: Value = stack
        .call(Method::GET, "/openapi.json", None, None, &[])
        .await
        .json()
        .await
        .unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(spec["paths"]["/v1/contacts/{id}"]["patch"].is_object());
    // Every referenced schema is defined (generated clients need them all).
    let text = spec.to_string();
    for reference in text.split("#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(
            spec["components"]["schemas"][name].is_object(),
            "schema {name} is referenced but not defined"
        );
    }
    // The reference page is Redoc over this document, served from the
    // binary (the API check renders it in headless Chromium).
    let docs = stack
        .call(Method::GET, "/docs", None, None, &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(docs.contains(r#"spec-url="/openapi.json""#), "{docs}");
    let bundle = stack
        .call(Method::GET, "/docs/redoc.standalone.js", None, None, &[])
        .await;
    assert_eq!(bundle.status(), 200);
    assert_eq!(bundle.headers()["content-type"], "application/javascript");
    assert!(bundle.text().await.unwrap().len() > 500_000);
}

#[tokio::test]
async fn a_stopped_service_is_a_503_problem_not_a_hang() {
    let mut stack = Stack::start().await;
    let (_, token) = stack.tenant("Acme").await;
    stack.services.take("customers").stop().await.unwrap();
    let response = stack
        .call(Method::GET, "/v1/contacts", Some(&token), None, &[])
        .await;
    let body = problem(response, 503).await;
    assert_eq!(body["code"], "UNAVAILABLE");
}

#[tokio::test]
async fn a_tenant_over_its_rate_gets_429_with_retry_after() {
    let stack = Stack::start_with(|config| config.tenant_rate_per_second = 3).await;
    let (_, token) = stack.tenant("Busy").await;
    let (_, other) = stack.tenant("Calm").await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..12 {
        let response = stack
            .call(Method::GET, "/v1/me", Some(&token), None, &[])
            .await;
        if response.status() == 429 {
            retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = problem(response, 429).await;
            assert_eq!(body["code"], "RATE_LIMITED");
            statuses.push(429);
        } else {
            statuses.push(response.status().as_u16());
        }
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
    // A person's browser on the app pages is held to the same budget.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = browser
        .post(format!("{}/app/login", stack.base))
        .form(&[
            ("email", "admin@busy.example"),
            ("password", "correct horse battery"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let session = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let mut pages = Vec::new();
    for _ in 0..12 {
        let page = browser
            .get(format!("{}/app/dashboards", stack.base))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        pages.push(page.status().as_u16());
    }
    assert!(pages.contains(&429), "{pages:?}");
    // The limit is per tenant: another tenant is unaffected.
    assert_eq!(
        stack
            .call(Method::GET, "/v1/me", Some(&other), None, &[])
            .await
            .status(),
        200
    );
    let traced = stack
        .call(
            Method::GET,
            "/v1/me",
            Some(&other),
            None,
            &[("x-request-id", "req-42")],
        )
        .await;
    assert_eq!(traced.headers()["x-request-id"], "req-42");
}

#[tokio::test]
async fn the_360_view_gathers_sections_in_parallel() {
    let stack = Stack::start().await;
    let (tenant, token) = stack.tenant("Acme").await;
    let created: Value = stack
        .call(
            Method::POST,
            "/v1/contacts",
            Some(&token),
            Some(json!({"first_name": "Ada", "last_name": "Lovelace"})),
            &[],
        )
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let overview = stack
        .call(
            Method::GET,
            &format!("/v1/contacts/{id}/360"),
            Some(&token),
            None,
            &[],
        )
        .await;
    assert_eq!(overview.status(), 200);
    let overview: Value = overview.json().await.unwrap();
    assert_eq!(overview["contact"]["last_name"], "Lovelace");
    assert_eq!(overview["account"]["status"], "none");
    assert_eq!(overview["recent_activities"]["status"], "ok");
    assert_eq!(overview["recent_activities"]["data"], json!([]));
    assert_eq!(
        overview["open_tickets"],
        json!({"status": "ok", "data": []})
    );

    // A ticket the contact raised, through the service desk's REST
    // routes, shows among their open tickets until it is solved.
    let ticket = json_of(
        stack
            .call(
                Method::POST,
                "/v1/tickets",
                Some(&token),
                Some(
                    json!({"subject": "Cannot log in", "priority": "TICKET_PRIORITY_HIGH",
                            "requester_contact_id": id}),
                ),
                &[],
            )
            .await,
        201,
    )
    .await;
    assert_eq!(ticket["number"], 1);
    let open_tickets = |overview: &Value| overview["open_tickets"]["data"].clone();
    let overview = json_of(
        stack
            .call(
                Method::GET,
                &format!("/v1/contacts/{id}/360"),
                Some(&token),
                None,
                &[],
            )
            .await,
        200,
    )
    .await;
    let listed = open_tickets(&overview);
    assert_eq!(listed[0]["id"], ticket["id"]);
    assert_eq!(
        (listed[0]["status"].as_str(), listed[0]["priority"].as_str()),
        (Some("new"), Some("high"))
    );
    json_of(
        stack
            .call(
                Method::PATCH,
                // The mask is implied by the body's fields (AIP-134).
                &format!("/v1/tickets/{}", ticket["id"].as_str().unwrap()),
                Some(&token),
                Some(json!({"status": "TICKET_STATUS_SOLVED"})),
                &[],
            )
            .await,
        200,
    )
    .await;
    let overview = json_of(
        stack
            .call(
                Method::GET,
                &format!("/v1/contacts/{id}/360"),
                Some(&token),
                None,
                &[],
            )
            .await,
        200,
    )
    .await;
    assert_eq!(open_tickets(&overview), json!([]));
    assert_eq!(overview["last_satisfaction"]["status"], "none");

    // The survey link the service desk mails for a solved ticket: a page
    // anyone with the link may open, answered once; a link signed with
    // another key is the same "not valid" page as nonsense.
    let survey = |key: &kit::links::LinkKey| {
        key.sign(&servicedesk::domain::satisfaction::Survey {
            tenant: tenant.parse().expect("tenant id"),
            ticket: ticket["id"].as_str().unwrap().parse().expect("ticket id"),
            expires: chrono::Utc::now().timestamp() + 600,
        })
    };
    let url = format!(
        "{}/csat/{}",
        stack.base,
        survey(&kit::links::LinkKey::from_base64(SURVEY_KEY).expect("key"))
    );
    let page = stack
        .http
        .get(format!("{url}?score=4"))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("Cannot log in"), "{html}");
    assert!(html.contains("value=\"4\" required checked"), "{html}");
    let forged = format!(
        "{}/csat/{}",
        stack.base,
        survey(&kit::links::LinkKey::random())
    );
    for unknown in [forged, format!("{}/csat/nonsense", stack.base)] {
        let response = stack.http.get(&unknown).send().await.expect("page");
        assert_eq!(response.status(), 404, "{unknown}");
    }
    let post = |body: &'static str| {
        stack
            .http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    assert_eq!(post("score=9").await.expect("post").status(), 400);
    let answered = post("score=4&comment=Fast+%3Cb%3Eand%3C%2Fb%3E+kind")
        .await
        .expect("post");
    assert_eq!(answered.status(), 200);
    assert_eq!(
        post("score=1").await.expect("post").status(),
        409,
        "one answer per ticket"
    );
    let overview = json_of(
        stack
            .call(
                Method::GET,
                &format!("/v1/contacts/{id}/360"),
                Some(&token),
                None,
                &[],
            )
            .await,
        200,
    )
    .await;
    let last = &overview["last_satisfaction"]["data"];
    assert_eq!(
        (last["score"].as_i64(), last["ticket_number"].as_i64()),
        (Some(4), Some(1))
    );
    assert_eq!(last["comment"], "Fast <b>and</b> kind");

    let missing = uuid::Uuid::now_v7();
    problem(
        stack
            .call(
                Method::GET,
                &format!("/v1/contacts/{missing}/360"),
                Some(&token),
                None,
                &[],
            )
            .await,
        404,
    )
    .await;
}

#[tokio::test]
async fn accounts_over_rest_keep_money_exact_and_show_in_the_360_view() {
    let stack = Stack::start().await;
    let (_, token) = stack.tenant("Acme").await;
    let created = stack
        .call(Method::POST, "/v1/accounts", Some(&token), Some(json!({"name": "Analytical Engines",
            "website": "https://www.engines.example", "annual_revenue": {"amount": "1250000.10", "currency": "eur"}})), &[])
        .await;
    assert_eq!(created.status(), 201);
    let account: Value = created.json().await.unwrap();
    assert_eq!(
        account["annual_revenue"],
        json!({"amount": "1250000.1", "currency": "EUR"})
    );
    assert_eq!(account["domain"], "engines.example");
    let id = account["id"].as_str().unwrap();
    let bad_money = stack
        .call(
            Method::POST,
            "/v1/accounts",
            Some(&token),
            Some(json!({"name": "X", "annual_revenue": {"amount": "1e3", "currency": "EUR"}})),
            &[],
        )
        .await;
    assert_eq!(
        fields(&problem(bad_money, 400).await),
        ["account.annual_revenue.amount"]
    );
    let stale = stack
        .call(
            Method::PATCH,
            &format!("/v1/accounts/{id}"),
            Some(&token),
            Some(json!({"industry": "Computing"})),
            &[("if-match", "\"9\"")],
        )
        .await;
    problem(stale, 412).await;
    let listed: Value = stack
        .call(
            Method::GET,
            "/v1/accounts?domain=engines.example",
            Some(&token),
            None,
            &[],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["accounts"][0]["id"], id);

    let person: Value = stack
        .call(
            Method::POST,
            "/v1/contacts",
            Some(&token),
            Some(json!({"last_name": "Lovelace", "account_id": id})),
            &[],
        )
        .await
        .json()
        .await
        .unwrap();
    let overview: Value = stack
        .call(
            Method::GET,
            &format!("/v1/contacts/{}/360", person["id"].as_str().unwrap()),
            Some(&token),
            None,
            &[],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(overview["account"]["status"], "ok");
    assert_eq!(overview["account"]["data"]["name"], "Analytical Engines");
}

#[tokio::test]
async fn api_keys_are_shown_once_scoped_and_revocable() {
    let stack = Stack::start().await;
    let (_, admin) = stack.tenant("Acme").await;
    let created = stack
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(&admin),
            Some(json!({"name": "ERP sync", "scopes": ["customers:read"]})),
            &[],
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let listed: Value = stack
        .call(Method::GET, "/v1/api-keys", Some(&admin), None, &[])
        .await
        .json()
        .await
        .unwrap();
    assert!(
        listed[0].get("secret").is_none(),
        "the secret is shown only once"
    );

    // Read scope: reading works, writing is refused by the service.
    assert_eq!(
        stack
            .call(Method::GET, "/v1/contacts", Some(&secret), None, &[])
            .await
            .status(),
        200
    );
    let write = stack
        .call(
            Method::POST,
            "/v1/contacts",
            Some(&secret),
            Some(json!({"last_name": "X"})),
            &[],
        )
        .await;
    let write = problem(write, 403).await;
    assert!(
        write["detail"]
            .as_str()
            .unwrap()
            .contains("customers:write"),
        "{write}"
    );
    // A customers key has no sales rights; a sales key has (scopes come
    // from the contracts' domains, the names the services check).
    problem(
        stack
            .call(Method::GET, "/v1/leads", Some(&secret), None, &[])
            .await,
        403,
    )
    .await;
    let sales_key = stack
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(&admin),
            Some(json!({"name": "Pipeline sync", "scopes": ["sales:read"]})),
            &[],
        )
        .await;
    let sales_key = json_of(sales_key, 201).await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let leads = stack
        .call(Method::GET, "/v1/leads", Some(&sales_key), None, &[])
        .await;
    assert!(json_of(leads, 200).await["leads"].is_array());
    problem(
        stack
            .call(Method::GET, "/v1/contacts", Some(&sales_key), None, &[])
            .await,
        403,
    )
    .await;
    // A key cannot manage keys, nor read the tenant's people and teams
    // (keys are minted with a manager's role for the services; the
    // gateway's identity routes are for people only).
    for path in ["/v1/api-keys", "/v1/users", "/v1/teams"] {
        problem(
            stack
                .call(Method::GET, path, Some(&secret), None, &[])
                .await,
            403,
        )
        .await;
    }
    let used: Value = stack
        .call(Method::GET, "/v1/api-keys", Some(&admin), None, &[])
        .await
        .json()
        .await
        .unwrap();
    assert!(used[0]["last_used_at"].is_string());

    let bad_scope = stack
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(&admin),
            Some(json!({"name": "x", "scopes": ["everything"]})),
            &[],
        )
        .await;
    assert_eq!(fields(&problem(bad_scope, 400).await), ["scopes[0]"]);

    let id = created["id"].as_str().unwrap();
    assert_eq!(
        stack
            .call(
                Method::DELETE,
                &format!("/v1/api-keys/{id}"),
                Some(&admin),
                None,
                &[]
            )
            .await
            .status(),
        204
    );
    problem(
        stack
            .call(Method::GET, "/v1/contacts", Some(&secret), None, &[])
            .await,
        401,
    )
    .await;
    let forged = format!("{}x", &secret[..secret.len() - 1]);
    problem(
        stack
            .call(Method::GET, "/v1/contacts", Some(&forged), None, &[])
            .await,
        401,
    )
    .await;
}

/// Each role does exactly what the permission matrix allows, on contacts
/// and accounts: read, create, update, delete.
#[tokio::test]
async fn the_role_matrix_holds_for_every_entity_and_action() {
    let stack = Stack::start().await;
    let (_, admin) = stack.tenant("Matrix").await;
    // (role, may create/update, may delete)
    let matrix = [
        ("admin", true, true),
        ("manager", true, true),
        ("sales_rep", true, true),
        ("support_agent", true, true),
        ("marketer", true, false),
        ("viewer", false, false),
    ];
    for entity in ["contacts", "accounts"] {
        let body = |name: &str| {
            if entity == "contacts" {
                json!({"last_name": name})
            } else {
                json!({"name": name})
            }
        };
        let shared: Value = stack
            .call(
                Method::POST,
                &format!("/v1/{entity}"),
                Some(&admin),
                Some(body("Shared")),
                &[],
            )
            .await
            .json()
            .await
            .unwrap();
        let shared_id = shared["id"].as_str().unwrap().to_owned();
        for (role, writes, deletes) in matrix {
            let email = format!("{role}.{entity}@matrix.example");
            let user = json!({"email": email, "display_name": role, "password": "matrix password 1", "roles": [role]});
            if role != "admin" {
                assert_eq!(
                    stack
                        .call(Method::POST, "/v1/users", Some(&admin), Some(user), &[])
                        .await
                        .status(),
                    201
                );
            }
            let token = if role == "admin" {
                admin.clone()
            } else {
                stack.login(&email, "matrix password 1").await["access_token"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            };
            let list = stack
                .call(
                    Method::GET,
                    &format!("/v1/{entity}"),
                    Some(&token),
                    None,
                    &[],
                )
                .await;
            assert_eq!(list.status(), 200, "{role} lists {entity}");
            let created = stack
                .call(
                    Method::POST,
                    &format!("/v1/{entity}"),
                    Some(&token),
                    Some(body(role)),
                    &[],
                )
                .await;
            if !writes {
                assert_eq!(created.status(), 403, "{role} creates {entity}");
                let update = stack
                    .call(
                        Method::PATCH,
                        &format!("/v1/{entity}/{shared_id}"),
                        Some(&token),
                        Some(body("changed")),
                        &[],
                    )
                    .await;
                assert_eq!(update.status(), 403, "{role} updates {entity}");
                let delete = stack
                    .call(
                        Method::DELETE,
                        &format!("/v1/{entity}/{shared_id}"),
                        Some(&token),
                        None,
                        &[],
                    )
                    .await;
                assert_eq!(delete.status(), 403, "{role} deletes {entity}");
                continue;
            }
            assert_eq!(created.status(), 201, "{role} creates {entity}");
            let own: Value = created.json().await.unwrap();
            let own_id = own["id"].as_str().unwrap();
            let update = stack
                .call(
                    Method::PATCH,
                    &format!("/v1/{entity}/{own_id}"),
                    Some(&token),
                    Some(body("changed")),
                    &[],
                )
                .await;
            assert_eq!(update.status(), 200, "{role} updates {entity}");
            let get = stack
                .call(
                    Method::GET,
                    &format!("/v1/{entity}/{own_id}"),
                    Some(&token),
                    None,
                    &[],
                )
                .await;
            assert_eq!(get.status(), 200, "{role} reads its {entity}");
            let delete = stack
                .call(
                    Method::DELETE,
                    &format!("/v1/{entity}/{own_id}"),
                    Some(&token),
                    None,
                    &[],
                )
                .await;
            assert_eq!(
                delete.status(),
                if deletes { 204 } else { 403 },
                "{role} deletes {entity}"
            );
        }
    }
}

#[tokio::test]
async fn team_members_see_each_others_records() {
    let stack = Stack::start().await;
    let (_, admin) = stack.tenant("Teams").await;
    let team: Value = stack
        .call(
            Method::POST,
            "/v1/teams",
            Some(&admin),
            Some(json!({"name": "Support EMEA"})),
            &[],
        )
        .await
        .json()
        .await
        .unwrap();
    let team_id = team["id"].as_str().unwrap();
    let mut users = Vec::new();
    for (email, role) in [
        ("rep@teams.example", "sales_rep"),
        ("agent@teams.example", "support_agent"),
        ("outsider@teams.example", "support_agent"),
    ] {
        let created: Value = stack
            .call(Method::POST, "/v1/users", Some(&admin), Some(json!({"email": email, "display_name": role, "password": "team password 1", "roles": [role]})), &[])
            .await
            .json()
            .await
            .unwrap();
        users.push(created["id"].as_str().unwrap().to_owned());
    }
    for user in &users[..2] {
        assert_eq!(
            stack
                .call(
                    Method::PUT,
                    &format!("/v1/teams/{team_id}/members/{user}"),
                    Some(&admin),
                    None,
                    &[]
                )
                .await
                .status(),
            204
        );
    }
    let rep = stack.login("rep@teams.example", "team password 1").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let created: Value = stack
        .call(
            Method::POST,
            "/v1/contacts",
            Some(&rep),
            Some(json!({"last_name": "Teamwork"})),
            &[],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(created["team_id"], team_id);
    let id = created["id"].as_str().unwrap();
    let agent = stack.login("agent@teams.example", "team password 1").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        stack
            .call(
                Method::GET,
                &format!("/v1/contacts/{id}"),
                Some(&agent),
                None,
                &[]
            )
            .await
            .status(),
        200
    );
    let outsider = stack
        .login("outsider@teams.example", "team password 1")
        .await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    problem(
        stack
            .call(
                Method::GET,
                &format!("/v1/contacts/{id}"),
                Some(&outsider),
                None,
                &[],
            )
            .await,
        404,
    )
    .await;
    let teams: Value = stack
        .call(Method::GET, "/v1/teams", Some(&admin), None, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(teams[0]["members"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn webhooks_deliver_signed_events_and_retry_failures() {
    // A receiver that fails twice, then accepts; it keeps what it got.
    let receiver =
        testkit::http::HttpRecorder::start("/hook", |n, _| if n < 2 { 500 } else { 200 }).await;

    let stack = Stack::start().await;
    let (_, admin) = stack.tenant("Hooks").await;
    let bad = stack
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(&admin),
            Some(json!({"url": "ftp://x", "event_types": ["nope"]})),
            &[],
        )
        .await;
    assert_eq!(fields(&problem(bad, 400).await), ["url", "event_types[0]"]);
    let hook: Value = stack
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(&admin),
            Some(json!({"url": receiver.url, "event_types": ["crm.customers.contact.created.v1"]})),
            &[],
        )
        .await
        .json()
        .await
        .unwrap();
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let contact: Value = stack
        .call(
            Method::POST,
            "/v1/contacts",
            Some(&admin),
            Some(json!({"last_name": "Hooked"})),
            &[],
        )
        .await
        .json()
        .await
        .unwrap();

    let delivery = testkit::eventually(
        "the webhook delivered after two failures",
        std::time::Duration::from_secs(30),
        || async {
            let deliveries: Value = stack
                .call(
                    Method::GET,
                    &format!("/v1/webhooks/{hook_id}/deliveries"),
                    Some(&admin),
                    None,
                    &[],
                )
                .await
                .json()
                .await
                .ok()?;
            let first = deliveries.get(0)?.clone();
            (first["status"] == "delivered").then_some(first)
        },
    )
    .await;
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["event_type"], "crm.customers.contact.created.v1");
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    let (signature, body) = (&got[2].header("crm-signature"), &got[2].body);
    let event: Value = serde_json::from_str(body).unwrap();
    assert_eq!(event["type"], "crm.customers.contact.created.v1");
    assert_eq!(event["subject"], contact["id"]);
    assert_eq!(
        event["data"]["contact"]["last_name"], "Hooked",
        "record events carry JSON data"
    );
    let timestamp: i64 = signature
        .split(',')
        .next()
        .unwrap()
        .trim_start_matches("t=")
        .parse()
        .unwrap();
    assert_eq!(
        signature,
        &gateway::webhooks::signature(&secret, timestamp, body.as_bytes())
    );
}

/// SSRF: with no internal network allowed, endpoints on loopback, private,
/// link-local (cloud metadata) or mapped addresses are refused when
/// registered, even with the insecure-http switch on; an endpoint whose
/// address became internal after registration (DNS changed) is not sent
/// to; and a tenant's endpoints are capped.
#[tokio::test]
async fn webhooks_never_reach_internal_addresses() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let internal = webhook_receiver(axum::routing::post(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { axum::http::StatusCode::OK }
    }))
    .await;

    let stack = Stack::start_with(|config| {
        config.allow_insecure_webhooks = true;
        config.webhook_egress = Default::default();
    })
    .await;
    let (_, admin) = stack.tenant("Hooks").await;
    for url in [
        internal.as_str(),
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.5/hook",
        "https://[::1]/hook",
        "https://[::ffff:7f00:1]/hook",
        "https://2130706433/hook",
    ] {
        let refused = stack
            .call(
                Method::POST,
                "/v1/webhooks",
                Some(&admin),
                Some(json!({"url": url, "event_types": ["*"]})),
                &[],
            )
            .await;
        let refused = problem(refused, 400).await;
        assert_eq!(fields(&refused), ["url"], "{url}: {refused}");
    }
    let public = "https://93.184.216.34/hook";
    let created = stack
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(&admin),
            Some(json!({"url": public, "event_types": ["crm.customers.contact.created.v1"]})),
            &[],
        )
        .await;
    let hook_id = json_of(created, 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The name now points inside (as a rebinding DNS answer would): the
    // delivery is checked again and not sent.
    let pool = stack.services.db("gateway").admin_pool().await;
    sqlx::query("UPDATE webhooks SET url = $1 WHERE id = $2")
        .bind(&internal)
        .bind(uuid::Uuid::parse_str(&hook_id).unwrap())
        .execute(&pool)
        .await
        .unwrap();
    stack
        .call(
            Method::POST,
            "/v1/contacts",
            Some(&admin),
            Some(json!({"last_name": "Quiet"})),
            &[],
        )
        .await;
    let attempt = testkit::eventually(
        "a refused delivery attempt",
        std::time::Duration::from_secs(30),
        || async {
            let deliveries: Value = stack
                .call(
                    Method::GET,
                    &format!("/v1/webhooks/{hook_id}/deliveries"),
                    Some(&admin),
                    None,
                    &[],
                )
                .await
                .json()
                .await
                .ok()?;
            let first = deliveries.get(0)?.clone();
            (first["attempts"].as_i64()? >= 1).then_some(first)
        },
    )
    .await;
    assert_ne!(attempt["status"], "delivered", "{attempt}");
    assert!(
        attempt["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("not a public internet address"),
        "{attempt}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "nothing reached the internal endpoint"
    );

    // At most MAX_WEBHOOKS_PER_TENANT endpoints per tenant.
    for n in 1..gateway::http::webhooks::MAX_WEBHOOKS_PER_TENANT {
        let created = stack
            .call(
                Method::POST,
                "/v1/webhooks",
                Some(&admin),
                Some(
                    json!({"url": format!("https://93.184.216.34/hook/{n}"), "event_types": ["*"]}),
                ),
                &[],
            )
            .await;
        assert_eq!(created.status(), 201);
    }
    let over = stack
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(&admin),
            Some(json!({"url": "https://93.184.216.34/one-too-many", "event_types": ["*"]})),
            &[],
        )
        .await;
    problem(over, 409).await;
}

#[tokio::test]
async fn cors_answers_only_configured_origins() {
    let stack = Stack::start().await;
    let preflight = |origin: &'static str| {
        stack
            .http
            .request(Method::OPTIONS, format!("{}/v1/contacts", stack.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,idempotency-key",
            )
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

#[tokio::test]
async fn activities_are_logged_and_read_as_a_timeline() {
    let stack = Stack::start().await;
    let (_, token) = stack.tenant("Acme").await;
    let person: Value = stack
        .call(
            Method::POST,
            "/v1/contacts",
            Some(&token),
            Some(json!({"last_name": "Called"})),
            &[],
        )
        .await
        .json()
        .await
        .unwrap();
    let id = person["id"].as_str().unwrap();
    for (subject, at) in [
        ("first call", "2026-01-01T09:00:00Z"),
        ("second call", "2026-01-02T09:00:00Z"),
    ] {
        let logged = stack
            .call(
                Method::POST,
                "/v1/activities",
                Some(&token),
                Some(
                    json!({"kind": "ACTIVITY_KIND_CALL", "subject": subject, "contact_id": id,
                "occurred_at": at, "duration_seconds": 300, "outcome": "interested"}),
                ),
                &[],
            )
            .await;
        assert_eq!(logged.status(), 201);
    }
    let timeline: Value = stack
        .call(
            Method::GET,
            &format!("/v1/contacts/{id}/activities?page_size=1"),
            Some(&token),
            None,
            &[],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(timeline["activities"][0]["subject"], "second call");
    assert!(!timeline["page"]["next_page_token"]
        .as_str()
        .unwrap()
        .is_empty());
    let bad = stack
        .call(
            Method::POST,
            "/v1/activities",
            Some(&token),
            Some(json!({"kind": "tweet", "contact_id": id})),
            &[],
        )
        .await;
    assert_eq!(fields(&problem(bad, 400).await), ["activity.kind"]);
    let bad_time = stack
        .call(
            Method::POST,
            "/v1/activities",
            Some(&token),
            Some(
                json!({"kind": "ACTIVITY_KIND_NOTE", "contact_id": id, "occurred_at": "yesterday"}),
            ),
            &[],
        )
        .await;
    assert_eq!(
        fields(&problem(bad_time, 400).await),
        ["activity.occurred_at"]
    );
    let unknown = uuid::Uuid::now_v7();
    problem(
        stack
            .call(
                Method::POST,
                "/v1/activities",
                Some(&token),
                Some(json!({"kind": "ACTIVITY_KIND_NOTE", "contact_id": unknown})),
                &[],
            )
            .await,
        404,
    )
    .await;
}

/// Login is budgeted before any password is checked: an account gets a
/// burst of attempts, whoever makes them, then 429 with Retry-After (the
/// right password included); an address spraying many accounts is cut off.
#[tokio::test]
async fn login_attempts_are_budgeted_per_account_and_per_address() {
    let stack = Stack::start_with(|config| config.login_attempts_per_minute = 12).await;
    let (_, admin) = stack.tenant("Acme").await; // one login of the admin
    let attempt = |email: &'static str, password: &'static str| {
        stack.call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": email, "password": password})),
            &[],
        )
    };
    for _ in 1..gateway::domain::login_guard::ACCOUNT_BURST {
        problem(attempt("admin@acme.example", "wrong password 1").await, 401).await;
    }
    let held = attempt("admin@acme.example", "correct horse battery").await;
    assert!(held.headers().contains_key("retry-after"));
    problem(held, 429).await;
    // Another account from the same address is still heard, until the
    // address's budget (12 a minute) is spent.
    let mut statuses = Vec::new();
    for n in 0..8 {
        let email: &'static str = Box::leak(format!("nobody{n}@acme.example").into_boxed_str());
        statuses.push(attempt(email, "whatever 123").await.status().as_u16());
    }
    assert_eq!(statuses[0], 401, "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // Failed logins are audited (after the answer, so they take no longer
    // than unknown e-mails), within the account's budget only.
    testkit::eventually(
        "failed logins in the audit log",
        std::time::Duration::from_secs(10),
        || async {
            let audit = stack
                .call(
                    Method::GET,
                    "/v1/audit-log?action=login.failed",
                    Some(&admin),
                    None,
                    &[],
                )
                .await;
            let audit: Value = audit.json().await.ok()?;
            let failed = audit["items"].as_array()?.len();
            (failed == gateway::domain::login_guard::ACCOUNT_BURST as usize - 1).then_some(())
        },
    )
    .await;
}

/// Slowloris and connection floods: a client that never finishes its
/// headers is disconnected after the header timeout, and one address holds
/// at most its share of connections (the next is closed at once).
#[tokio::test]
async fn slow_headers_are_cut_off_and_connections_per_address_are_capped() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let stack = Stack::start_with(|config| config.max_connections_per_ip = 2).await;
    let addr = stack.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: crm\r\n")
        .await
        .unwrap();
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // The third connection from this address is closed without an answer.
    let mut third = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _ = third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: crm\r\n\r\n")
        .await;
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), third.read(&mut buf))
        .await
        .expect("closed at once, not left hanging");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    // The slow client is cut off after the header timeout (10 s).
    let patience = gateway::serve::HEADER_TIMEOUT + std::time::Duration::from_secs(10);
    let read = tokio::time::timeout(patience, async {
        let mut seen = Vec::new();
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => return seen,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the slow connection is closed by the server");
    let seen = String::from_utf8_lossy(&read);
    assert!(
        seen.is_empty() || seen.starts_with("HTTP/1.1 408"),
        "{seen}"
    );
    // Its slot is free again: a normal request from this address works.
    drop(idle.shutdown().await);
    testkit::eventually(
        "a slot is free again",
        std::time::Duration::from_secs(10),
        || async {
            let response = stack.call(Method::GET, "/healthz", None, None, &[]).await;
            (response.status() == 200).then_some(())
        },
    )
    .await;
}

/// Metrics are for the operator's scraper, on the admin port; the public
/// port does not serve them.
#[tokio::test]
async fn metrics_are_served_on_the_admin_port_only() {
    let stack = Stack::start().await;
    stack.call(Method::GET, "/healthz", None, None, &[]).await;
    let public = stack.call(Method::GET, "/metrics", None, None, &[]).await;
    assert_eq!(public.status(), 404);
    let scraped = stack
        .http
        .get(format!("{}/metrics", stack.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("crm_gateway"));
}

/// One tenant's slow webhook endpoints do not hold up another tenant's
/// deliveries: rounds take a few deliveries per tenant and send them
/// concurrently.
#[tokio::test]
async fn a_tenants_slow_endpoints_do_not_delay_other_tenants_webhooks() {
    let receiver = |delay: std::time::Duration| {
        webhook_receiver(axum::routing::post(move || async move {
            tokio::time::sleep(delay).await; // a slow endpoint
            axum::http::StatusCode::OK
        }))
    };
    let slow = receiver(std::time::Duration::from_secs(6)).await;
    let fast = receiver(std::time::Duration::ZERO).await;
    let stack = Stack::start().await;
    let (_, busy) = stack.tenant("Busy").await;
    let (_, quiet) = stack.tenant("Quiet").await;
    stack.contact_webhook(&busy, &slow).await;
    let quiet_hook = stack.contact_webhook(&quiet, &fast).await;
    for n in 0..24 {
        stack
            .call(
                Method::POST,
                "/v1/contacts",
                Some(&busy),
                Some(json!({"last_name": format!("Busy {n}")})),
                &[],
            )
            .await;
    }
    stack
        .call(
            Method::POST,
            "/v1/contacts",
            Some(&quiet),
            Some(json!({"last_name": "Quiet"})),
            &[],
        )
        .await;
    // Sequentially, 24 six-second deliveries stood in front of this one.
    testkit::eventually(
        "the quiet tenant's delivery",
        std::time::Duration::from_secs(30),
        || async {
            let deliveries: Value = stack
                .call(
                    Method::GET,
                    &format!("/v1/webhooks/{quiet_hook}/deliveries"),
                    Some(&quiet),
                    None,
                    &[],
                )
                .await
                .json()
                .await
                .ok()?;
            (deliveries.get(0)?["status"] == "delivered").then_some(())
        },
    )
    .await;
}

/// Made-up API keys cost the caller's address its authentication budget
/// before any database lookup; a real key is answered from memory after
/// its first use, so busy integrations are not slowed or refused.
#[tokio::test]
async fn forged_api_keys_are_budgeted_per_address_and_real_ones_are_not() {
    let stack = Stack::start_with(|config| config.login_attempts_per_minute = 6).await;
    let (tenant, admin) = stack.tenant("Acme").await; // one login spent
    let key = stack
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(&admin),
            Some(json!({"name": "ERP", "scopes": ["customers:read"]})),
            &[],
        )
        .await;
    let key = json_of(key, 201).await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..20 {
        let listed = stack
            .call(Method::GET, "/v1/contacts", Some(&key), None, &[])
            .await;
        assert_eq!(listed.status(), 200);
    }
    let forged = format!("crm_{}_{}", tenant.replace('-', ""), "f".repeat(40));
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let response = stack
            .call(Method::GET, "/v1/contacts", Some(&forged), None, &[])
            .await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses[0], 401, "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

/// Login e-mails are unique per tenant: an admin creating a user cannot
/// learn that the address belongs to someone in another tenant, and each
/// person signs in to the tenant their password belongs to.
#[tokio::test]
async fn the_same_email_is_a_separate_user_in_each_tenant_and_reveals_nothing_across_them() {
    let stack = Stack::start().await;
    let (acme_id, acme) = stack.tenant("Acme").await;
    let (globex_id, globex) = stack.tenant("Globex").await;
    let sam = "Sam@Shared.example";
    let created = stack
        .create_user(&acme, sam, "acme password 1", "sales_rep")
        .await;
    assert_eq!(created.status(), 201);
    // Globex's admin is not told that Acme has a Sam.
    let created = stack
        .create_user(&globex, sam, "globex password 1", "sales_rep")
        .await;
    assert_eq!(created.status(), 201);
    // Within one tenant the e-mail stays unique.
    let again = problem(
        stack
            .create_user(&acme, sam, "acme password 2", "sales_rep")
            .await,
        400,
    )
    .await;
    assert_eq!(again["errors"][0]["field"], "email", "{again}");

    let sam = |password: &str| json!({"email": "sam@shared.example", "password": password});
    assert_eq!(
        signed_in_tenant(&stack, sam("acme password 1")).await,
        acme_id
    );
    assert_eq!(
        signed_in_tenant(&stack, sam("globex password 1")).await,
        globex_id
    );
    // Naming a tenant restricts the login to it.
    let mut elsewhere = sam("acme password 1");
    elsewhere["tenant_id"] = json!(globex_id);
    let login = |body| stack.call(Method::POST, "/v1/auth/login", None, Some(body), &[]);
    problem(login(elsewhere).await, 401).await;
    problem(login(sam("wrong password")).await, 401).await;

    // One password for both: the person names the tenant.
    for admin in [&acme, &globex] {
        let created = stack
            .create_user(admin, "bob@shared.example", "one password 1", "sales_rep")
            .await;
        assert_eq!(created.status(), 201);
    }
    let mut bob = json!({"email": "bob@shared.example", "password": "one password 1"});
    let both = problem(login(bob.clone()).await, 400).await;
    assert_eq!(both["errors"][0]["field"], "tenant_id", "{both}");
    bob["tenant_id"] = json!(globex_id);
    assert_eq!(signed_in_tenant(&stack, bob).await, globex_id);
}

/// Logs in with `body` and answers the tenant of the token it gets.
async fn signed_in_tenant(stack: &Stack, body: Value) -> String {
    let login = stack
        .call(Method::POST, "/v1/auth/login", None, Some(body), &[])
        .await;
    assert_eq!(login.status(), 200);
    let tokens: Value = login.json().await.unwrap();
    let token = tokens["access_token"].as_str().unwrap();
    let me = stack
        .call(Method::GET, "/v1/me", Some(token), None, &[])
        .await;
    let me: Value = me.json().await.unwrap();
    me["tenant_id"].as_str().unwrap().to_owned()
}

/// Webhook deliveries keep an event only while it may still be sent: a
/// delivered one drops it, and one still waiting when its contact is
/// erased is cancelled, so no copy of the person's data stays behind.
#[tokio::test]
async fn webhook_deliveries_keep_no_personal_data_after_sending_or_erasure() {
    let answering = |status: axum::http::StatusCode| {
        webhook_receiver(axum::routing::post(move || async move { status }))
    };
    let accepting = answering(axum::http::StatusCode::OK).await;
    let failing = answering(axum::http::StatusCode::SERVICE_UNAVAILABLE).await;
    // A failed attempt waits an hour for its retry: the delivery stays pending.
    let stack = Stack::start_with(|config| {
        config.webhook_retry_base = std::time::Duration::from_secs(3600)
    })
    .await;
    let (_, admin) = stack.tenant("Erasure").await;
    let mut hooks = Vec::new();
    for url in [&accepting, &failing] {
        hooks.push(stack.contact_webhook(&admin, url).await);
    }
    let contact: Value = stack
        .call(
            Method::POST,
            "/v1/contacts",
            Some(&admin),
            Some(json!({"first_name": "Erasmus", "last_name": "Rotterdam"})),
            &[],
        )
        .await
        .json()
        .await
        .unwrap();
    let delivery = |hook: String| {
        let admin = admin.clone();
        let stack = &stack;
        async move {
            let path = format!("/v1/webhooks/{hook}/deliveries");
            let deliveries: Value = stack
                .call(Method::GET, &path, Some(&admin), None, &[])
                .await
                .json()
                .await
                .ok()?;
            deliveries.get(0).cloned()
        }
    };
    testkit::eventually(
        "one delivered, one waiting for its retry",
        std::time::Duration::from_secs(30),
        || async {
            let sent = delivery(hooks[0].clone()).await?;
            let waiting = delivery(hooks[1].clone()).await?;
            (sent["status"] == "delivered"
                && waiting["status"] == "pending"
                && waiting["attempts"] == 1)
                .then_some(())
        },
    )
    .await;
    let pool = stack.services.db("gateway").admin_pool().await;
    let holding = || async {
        let (count,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM webhook_deliveries WHERE position('Erasmus' in encode(envelope, 'escape')) > 0",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        count
    };
    assert_eq!(
        holding().await,
        1,
        "only the pending delivery keeps the event"
    );

    let id = contact["id"].as_str().unwrap();
    let erased = stack
        .call(
            Method::POST,
            &format!("/v1/contacts/{id}/erase"),
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(erased.status(), 204);
    let cancelled = testkit::eventually(
        "the waiting delivery is cancelled",
        std::time::Duration::from_secs(30),
        || async {
            let waiting = delivery(hooks[1].clone()).await?;
            (waiting["status"] == "failed").then_some(waiting)
        },
    )
    .await;
    assert_eq!(cancelled["last_error"], "not sent: the contact was erased");
    assert_eq!(cancelled["attempts"], 1, "not sent again");
    assert_eq!(holding().await, 0);
}

#[tokio::test]
async fn chat_connectors_post_signed_messages_that_become_tickets() {
    let stack = Stack::start().await;
    let (_, token) = stack.tenant("Acme").await;
    let created = json_of(
        stack
            .call(
                Method::POST,
                "/v1/chat-channels",
                Some(&token),
                Some(json!({"name": "Web chat"})),
                &[],
            )
            .await,
        201,
    )
    .await;
    let key = created["channel"]["key"].as_str().unwrap().to_owned();
    let secret = created["signing_secret"].as_str().unwrap().to_owned();
    let url = format!("{}/hooks/chat/{key}", stack.base);
    let send = |body: Value, secret: &str| {
        let body = body.to_string();
        let at = chrono::Utc::now().timestamp();
        let signature = kit::links::LinkKey::from_secret(secret).sign_body(at, body.as_bytes());
        stack
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header("x-crm-timestamp", at.to_string())
            .header("x-crm-signature", signature)
            .body(body)
            .send()
    };
    let hello = json!({"conversation_id": "c-1", "message_id": "m-1", "text": "My parcel is lost",
                       "from": {"name": "Ada Lovelace", "email": "ada@example.com"}});
    let accepted = json_of(send(hello.clone(), &secret).await.expect("post"), 202).await;
    assert_eq!(accepted["opened"], true);
    let ticket = json_of(
        stack
            .call(
                Method::GET,
                &format!("/v1/tickets/{}", accepted["ticket_id"].as_str().unwrap()),
                Some(&token),
                None,
                &[],
            )
            .await,
        200,
    )
    .await;
    assert_eq!(ticket["channel"], "TICKET_CHANNEL_CHAT");
    assert_eq!(ticket["subject"], "Chat: My parcel is lost");

    // Forged, unsigned and bad posts: 401, 401, 400 naming the field.
    let forged = send(hello.clone(), "not the secret").await.expect("post");
    assert_eq!(problem(forged, 401).await["status"], 401);
    let unsigned = stack
        .http
        .post(&url)
        .body(hello.to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(unsigned.status(), 401);
    let bad = send(
        json!({"conversation_id": "c-1", "message_id": "m-2", "text": "hi",
                          "from": {"phone": "12"}}),
        &secret,
    )
    .await
    .expect("post");
    assert_eq!(fields(&problem(bad, 400).await), ["from.phone"]);
}

#[tokio::test]
async fn a_support_form_and_the_portal_it_mails_work_as_plain_pages() {
    let stack = Stack::start().await;
    let (_, token) = stack.tenant("Acme").await;
    let mailbox = json_of(
        stack
            .call(
                Method::POST,
                "/v1/mailboxes",
                Some(&token),
                Some(json!({"address": "help@acme.example", "name": "Acme Help"})),
                &[],
            )
            .await,
        201,
    )
    .await;
    let form = json_of(
        stack
            .call(
                Method::POST,
                "/v1/support-forms",
                Some(&token),
                Some(json!({"name": "Acme support", "mailbox_id": mailbox["id"]})),
                &[],
            )
            .await,
        201,
    )
    .await;
    let key = form["key"].as_str().unwrap().to_owned();
    let url = format!("{}/support/{key}", stack.base);
    let page = stack.http.get(&url).send().await.expect("page");
    assert_eq!(page.status(), 200);
    // Neither cached nor scripted; a form may be framed on the tenant's
    // site, the portal's pages (signed links) never.
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(header(&page, "content-security-policy").contains("default-src 'none'"));
    assert!(!header(&page, "content-security-policy").contains("frame-ancestors"));
    assert_eq!(header(&page, "cache-control"), "no-store");
    assert!(page.text().await.expect("html").contains("Acme support"));

    // A browser posts the form; a script posts JSON and is told the fields.
    let post = |url: String, body: &'static str| {
        stack
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let thanks = post(
        url.clone(),
        "name=Ada+Lovelace&email=ada%40example.com&subject=Parcel+%3Cb%3Elost%3C%2Fb%3E&description=Where+is+it%3F&request_id=r1",
    )
    .await
    .expect("post");
    assert_eq!(thanks.status(), 200);
    assert!(thanks.text().await.expect("html").contains("request #1"));
    // The same page posted again with other words is told why it is not
    // taken (its request id made a ticket already).
    let edited = post(
        url.clone(),
        "name=Ada&email=ada%40example.com&subject=Other&description=Else&request_id=r1",
    )
    .await
    .expect("post");
    assert_eq!(edited.status(), 409);
    assert!(edited.text().await.expect("html").contains("request_id"));
    let bad = stack
        .http
        .post(&url)
        .json(&json!({"email": "nope", "subject": "x", "description": "y"}))
        .send()
        .await
        .expect("post");
    assert_eq!(fields(&problem(bad, 400).await), ["email"]);

    // The acknowledgement carries the portal link.
    let mail = stack
        .smtp
        .wait_for(1)
        .await
        .into_iter()
        .find(|m| m.to == ["ada@example.com"])
        .expect("the acknowledgement");
    let prefix = format!("{}/portal/", stack.base);
    let portal = mail.links(&prefix).pop().expect("a portal link");
    let home = stack.http.get(&portal).send().await.expect("page");
    assert_eq!(home.status(), 200);
    assert!(header(&home, "content-security-policy").contains("frame-ancestors 'none'"));
    assert_eq!(header(&home, "x-frame-options"), "DENY");
    let html = home.text().await.expect("html");
    assert!(
        html.contains("Parcel &lt;b&gt;lost&lt;/b&gt;"),
        "escaped: {html}"
    );
    let answered = stack
        .http
        .post(format!("{portal}/tickets/1"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("body=Any+news%3F")
        .send()
        .await
        .expect("post");
    // 303 back to the conversation (followed by the client).
    assert_eq!(answered.status(), 200);
    assert_eq!(answered.url().as_str(), format!("{portal}/tickets/1"));
    let conversation = stack
        .http
        .get(format!("{portal}/tickets/1"))
        .send()
        .await
        .expect("page");
    assert_eq!(conversation.status(), 200);
    let html = conversation.text().await.expect("html");
    assert!(
        html.contains("Where is it?") && html.contains("Any news?"),
        "{html}"
    );

    // Bad, forged and foreign links are one "not valid" page.
    let last = if portal.ends_with('A') { 'B' } else { 'A' };
    let tampered = format!("{}{last}", &portal[..portal.len() - 1]);
    for unknown in [
        tampered,
        format!("{portal}/tickets/2"),
        format!("{portal}/tickets/abc"),
        format!("{}/portal/nonsense", stack.base),
        format!("{}/support/nonsense", stack.base),
    ] {
        let response = stack.http.get(&unknown).send().await.expect("page");
        assert_eq!(response.status(), 404, "{unknown}");
    }
    let articles = stack
        .http
        .get(format!("{url}/articles?q=parcel"))
        .send()
        .await
        .expect("page");
    assert_eq!(articles.status(), 200);
}

#[tokio::test]
async fn an_nps_survey_is_answered_on_its_page_and_scored_for_the_account() {
    let stack = Stack::start().await;
    let (_, token) = stack.tenant("Acme").await;
    let post = |path: &'static str, body: Value| {
        stack.call(Method::POST, path, Some(&token), Some(body), &[])
    };
    let account = json_of(
        post("/v1/accounts", json!({"name": "Engines Ltd"})).await,
        201,
    )
    .await;
    json_of(
        post(
            "/v1/contacts",
            json!({"first_name": "Ada", "account_id": account["id"],
                   "emails": [{"address": "ada@engines.example", "primary": true}]}),
        )
        .await,
        201,
    )
    .await;
    let mailbox = json_of(
        post(
            "/v1/mailboxes",
            json!({"address": "care@acme.example", "name": "Acme Care"}),
        )
        .await,
        201,
    )
    .await;
    let survey = json_of(
        post(
            "/v1/nps-surveys",
            json!({"account_id": account["id"], "mailbox_id": mailbox["id"]}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(survey["invited"], 1);
    let mail = stack
        .smtp
        .wait_for(1)
        .await
        .into_iter()
        .find(|m| m.to == ["ada@engines.example"])
        .expect("the survey mail");
    let prefix = format!("{}/nps/", stack.base);
    let link = mail.links(&prefix).pop().expect("links");
    let page = stack.http.get(&link).send().await.expect("page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(
        html.contains("Acme Care") && html.contains("value=\"10\" required checked"),
        "{html}"
    );
    let url = link.split('?').next().expect("url").to_owned();
    let answer = |body: &'static str| {
        stack
            .http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    assert_eq!(answer("score=11").await.expect("post").status(), 400);
    assert_eq!(
        answer("score=10&comment=Great")
            .await
            .expect("post")
            .status(),
        200
    );
    assert_eq!(answer("score=2").await.expect("post").status(), 409);
    let nps = json_of(
        stack
            .call(
                Method::GET,
                &format!("/v1/accounts/{}/nps", account["id"].as_str().unwrap()),
                Some(&token),
                None,
                &[],
            )
            .await,
        200,
    )
    .await;
    assert_eq!(
        (nps["responses"].as_i64(), nps["score"].as_i64()),
        (Some(1), Some(100))
    );
    let overview = json_of(
        stack
            .call(
                Method::GET,
                &format!("/v1/accounts/{}/360", account["id"].as_str().unwrap()),
                Some(&token),
                None,
                &[],
            )
            .await,
        200,
    )
    .await;
    assert_eq!(overview["nps"]["status"], "ok");
    assert_eq!(overview["nps"]["data"]["promoters"], 1);
    // Reporting's insights join once it has the account: no invoices and
    // no order yet, so no grade and no churn risk.
    let url = format!("/v1/accounts/{}/360", account["id"].as_str().unwrap());
    let insights = testkit::eventually(
        "reporting's insights in the 360 view",
        std::time::Duration::from_secs(30),
        || async {
            let overview = json_of(
                stack.call(Method::GET, &url, Some(&token), None, &[]).await,
                200,
            )
            .await;
            (overview["insights"]["status"] == "ok").then(|| overview["insights"]["data"].clone())
        },
    )
    .await;
    assert_eq!(insights["credit_grade"], "unrated");
    assert!(insights["churn_level"].is_null(), "{insights}");
    let forged = format!("{}/nps/{}.x.y", stack.base, uuid::Uuid::now_v7().simple());
    assert_eq!(
        stack.http.get(&forged).send().await.expect("page").status(),
        404
    );
}
