//! REST through the gateway to the customers and sales services, 32
//! connections. Prints requests/s and p50/p99 per route, and the process's
//! peak RSS (gateway, customers, sales and marketing run in this one
//! process here). The 360 view asks five things of two services in
//! parallel; lead-capture form posts go through the public route to
//! marketing (stored, published; sales makes the leads).
//!
//!     deploy/bench.sh gateway
//!
//! BENCH_CLIENTS (default 32), BENCH_SECONDS per route (default 10).

use std::sync::Arc;
use std::time::Duration;

use gateway::config::GatewayConfig;
use kit::config::{AuthConfig, KeySource};
use serde_json::{json, Value};
use testkit::bench::{env_u64 as env, load, peak_rss_mib, report, RawPostgres};
use testkit::{service_config, TestDatabase, TestNats, TokenIssuer};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let clients = env("BENCH_CLIENTS", 32) as usize;
    let seconds = env("BENCH_SECONDS", 10);
    let (gateway_db, customers_db, sales_db, marketing_db, nats) = (
        TestDatabase::create().await,
        TestDatabase::create().await,
        TestDatabase::create().await,
        TestDatabase::create().await,
        TestNats::new(),
    );
    let free_port = || -> anyhow::Result<u16> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    };
    let (customers_port, sales_port, marketing_port) = (free_port()?, free_port()?, free_port()?);
    let mut gateway_db_config = gateway_db.config();
    gateway_db_config.max_connections = 20;
    let gateway = gateway::build(GatewayConfig {
        http_addr: "127.0.0.1:0".parse()?,
        admin_addr: "127.0.0.1:0".parse()?,
        database: gateway_db_config,
        services: [
            (
                "customers".to_owned(),
                format!("http://127.0.0.1:{customers_port}"),
            ),
            ("sales".to_owned(), format!("http://127.0.0.1:{sales_port}")),
            (
                "marketing".to_owned(),
                format!("http://127.0.0.1:{marketing_port}"),
            ),
        ]
        .into(),
        service_secrets: Default::default(),
        bootstrap_token: Some("bootstrap-secret-for-the-benchmark".into()),
        key_encryption: gateway::sealing::KeyEncryptionKeys::only(
            gateway::sealing::KeyEncryptionKey::generate(),
        ),
        issuer: "crm-gateway".into(),
        audience: "crm".into(),
        access_ttl: Duration::from_secs(3600),
        refresh_ttl: Duration::from_secs(3600),
        otlp_endpoint: None,
        upstream_timeout: Duration::from_secs(5),
        tenant_rate_per_second: 1_000_000,
        login_attempts_per_minute: 1_000_000,
        form_posts_per_minute: 1_000_000,
        max_connections_per_ip: 4096,
        concurrency_limit: 1024,
        nats: nats.config(),
        webhook_retry_base: Duration::from_secs(5),
        allow_insecure_webhooks: true,
        webhook_egress: Default::default(),
        cors_origins: vec!["https://app.example.com".into()],
    })
    .await?;
    let base = format!("http://{}", gateway.addr);
    let mut config = service_config("customers", &customers_db, &nats, &TokenIssuer::new());
    config.grpc_addr = format!("127.0.0.1:{customers_port}").parse()?;
    config.database.max_connections = 30;
    config.auth = AuthConfig {
        keys: KeySource::JwksUrl(format!("{base}/.well-known/jwks.json")),
        issuer: "crm-gateway".into(),
        audience: "crm".into(),
    };
    let mut sales_config = service_config("sales", &sales_db, &nats, &TokenIssuer::new());
    sales_config.grpc_addr = format!("127.0.0.1:{sales_port}").parse()?;
    sales_config.auth = config.auth.clone();
    let config_auth = config.auth.clone();
    let customers = customers::build(config).await?;
    let sales = sales::build(sales::config::SalesConfig {
        service: sales_config,
        customers_url: format!("http://127.0.0.1:{customers_port}"),
        scan_interval: Duration::from_secs(60),
    })
    .await?;
    let mut marketing_config =
        service_config("marketing", &marketing_db, &nats, &TokenIssuer::new());
    marketing_config.grpc_addr = format!("127.0.0.1:{marketing_port}").parse()?;
    marketing_config.auth = config_auth.clone();
    let marketing = marketing::build(marketing::config::MarketingConfig {
        service: marketing_config,
        customers_url: format!("http://127.0.0.1:{customers_port}"),
        scan_interval: Duration::from_secs(60),
        service_tokens: Default::default(),
        // No service desk here: ticket actions fail visibly.
        automation: marketing::config::AutomationConfig::to(
            &format!("http://127.0.0.1:{sales_port}"),
            "http://127.0.0.1:9",
        ),
        sending: marketing::config::SendingConfig {
            relay: None,
            ..marketing::config::SendingConfig::to("smtp://127.0.0.1:9", 1)
        },
    })
    .await?;

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()?;
    let tenant = json!({"name": "Bench", "admin_email": "admin@bench.example", "admin_name": "Bench", "admin_password": "bench password 1"});
    http.post(format!("{base}/v1/tenants"))
        .bearer_auth("bootstrap-secret-for-the-benchmark")
        .json(&tenant)
        .send()
        .await?
        .error_for_status()?;
    let login: Value = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"email": "admin@bench.example", "password": "bench password 1"}))
        .send()
        .await?
        .json()
        .await?;
    let token = Arc::new(
        login["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    );
    let ids = Arc::new(tokio::sync::Mutex::new(Vec::<String>::new()));

    // Raw PostgreSQL on the same machine in the same run: the yardstick.
    let raw = RawPostgres::measure(clients, seconds).await;
    let (h, b, t, i) = (http.clone(), base.clone(), token.clone(), ids.clone());
    let posted = load("POST /v1/contacts", clients, seconds, move |worker, n| {
        let (h, b, t, i) = (h.clone(), b.clone(), t.clone(), i.clone());
        async move {
            let body = json!({"first_name": "Bench", "last_name": format!("W{worker}N{n}"), "emails": [{"address": format!("w{worker}n{n}@bench.example")}]});
            let Ok(response) = h.post(format!("{b}/v1/contacts")).bearer_auth(t.as_str()).json(&body).send().await else { return false };
            if response.status() != 201 {
                return false;
            }
            let Ok(created) = response.json::<Value>().await else { return false };
            i.lock().await.push(created["id"].as_str().unwrap_or_default().to_owned());
            true
        }
    })
    .await;
    let ids = Arc::new(ids.lock().await.clone());
    let mut reads = Vec::new();
    for (name, path) in [
        ("GET /v1/contacts/{id}", ""),
        ("GET /v1/contacts?50", "list"),
        ("GET /v1/contacts/{id}/360", "360"),
    ] {
        let (h, b, t, i) = (http.clone(), base.clone(), token.clone(), ids.clone());
        let measured = load(name, clients, seconds, move |worker, n| {
            let id = i[(worker * 7919 + n as usize * 104_729) % i.len().max(1)].clone();
            let url = match path {
                "list" => format!("{b}/v1/contacts?page_size=50"),
                "360" => format!("{b}/v1/contacts/{id}/360"),
                _ => format!("{b}/v1/contacts/{id}"),
            };
            let (h, t) = (h.clone(), t.clone());
            async move {
                match h.get(url).bearer_auth(t.as_str()).send().await {
                    Ok(response) => response.status() == 200 && response.bytes().await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await;
        reads.push((name, measured));
    }
    // Lead-capture form posts through the public route, each a new person.
    let form: Value = http
        .post(format!("{base}/v1/forms"))
        .bearer_auth(token.as_str())
        .json(&json!({"name": "Demo request", "fields": [
            {"name": "email", "label": "E-mail", "target": "FORM_FIELD_TARGET_EMAIL", "required": true},
            {"name": "company", "label": "Company", "target": "FORM_FIELD_TARGET_COMPANY"}]}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let form_url = Arc::new(format!(
        "{base}/f/{}",
        form["public_key"].as_str().unwrap_or_default()
    ));
    let h = http.clone();
    let forms = load("POST /f/{key}", clients, seconds, move |worker, n| {
        let (h, url) = (h.clone(), form_url.clone());
        async move {
            let body = json!({"email": format!("f{worker}n{n}@bench.example"), "company": "Bench"});
            match h.post(url.as_str()).json(&body).send().await {
                Ok(response) => response.status() == 202,
                Err(_) => false,
            }
        }
    })
    .await;
    report(
        "REST POST /v1/contacts (row + event)",
        &posted.summary(),
        posted.per_second,
        Some(&raw.insert),
    );
    for (name, measured) in reads {
        report(
            &format!("REST {name}"),
            &measured.summary(),
            measured.per_second,
            Some(&raw.select),
        );
    }
    report(
        "public form post (stored, published; sales makes the lead)",
        &forms.summary(),
        forms.per_second,
        Some(&raw.insert),
    );
    println!(
        "peak RSS of gateway + customers + sales + marketing (one process): {:.0} MiB",
        peak_rss_mib()
    );
    marketing.stop().await?;
    sales.stop().await?;
    customers.stop().await?;
    gateway.stop().await?;
    Ok(())
}
