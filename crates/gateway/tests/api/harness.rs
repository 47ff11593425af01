use sha2::Digest as _;
use std::time::Duration;

use anyhow::Context as _;
use gateway::config::GatewayConfig;
use kit::config::{AuthConfig, KeySource};
use reqwest::{Client, Method, Response};
use serde_json::{json, Value};
use testkit::Services;

pub const BOOTSTRAP: &str = "bootstrap-secret-for-tests";

pub struct Stack {
    pub base: String,
    /// The gateway's admin address (`/metrics`).
    pub admin: String,
    pub http: Client,
    /// Where the marketing service sends e-mail.
    pub smtp: testkit::SmtpServer,
    // Declared before the services: the gateway is stopped first.
    _gateway: gateway::RunningGateway,
    pub services: Services,
}

impl Stack {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl Fn(&mut GatewayConfig)) -> Self {
        let mut services = Services::new();
        // The service ports are chosen before the services bind them (the
        // gateway needs their URLs, they need its JWKS URL), so another
        // test may take one in between: then the whole stack starts again
        // on new ports.
        // One key-encryption key for every attempt: the first one may
        // already have sealed signing keys in the gateway's database.
        let sealing = gateway::sealing::KeyEncryptionKey::generate();
        let smtp = testkit::SmtpServer::start();
        let mut attempt = 0;
        let gateway = loop {
            attempt += 1;
            match launch(&mut services, &adjust, &sealing, &smtp).await {
                Ok(gateway) => break gateway,
                Err(error) if attempt < 5 => eprintln!("starting the stack again: {error:#}"),
                Err(error) => panic!("the stack does not start: {error:#}"),
            }
        };
        Stack {
            base: format!("http://{}", gateway.addr),
            admin: format!("http://{}", gateway.admin_addr),
            http: Client::new(),
            smtp,
            _gateway: gateway,
            services,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request sent")
    }

    /// Creates a tenant with an admin and returns the admin's access token.
    pub async fn tenant(&self, name: &str) -> (String, String) {
        let email = format!("admin@{}.example", name.to_lowercase());
        let body = json!({"name": name, "admin_email": email, "admin_name": "Admin", "admin_password": "correct horse battery"});
        let created = self
            .call(
                Method::POST,
                "/v1/tenants",
                Some(BOOTSTRAP),
                Some(body),
                &[],
            )
            .await;
        assert_eq!(created.status(), 201, "{:?}", created.text().await);
        let created: Value = created.json().await.unwrap();
        (
            created["tenant_id"].as_str().unwrap().to_owned(),
            self.login(&email, "correct horse battery").await["access_token"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    }

    /// Creates a user with one role (as the tenant's admin) and returns
    /// the user's access token.
    pub async fn user(&self, admin: &str, email: &str, role: &str) -> String {
        let password = "user password 1";
        let created = self.create_user(admin, email, password, role).await;
        assert_eq!(created.status(), 201, "{:?}", created.text().await);
        self.login(email, password).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Asks, as `admin`, for a user with one role; answers the response.
    pub async fn create_user(
        &self,
        admin: &str,
        email: &str,
        password: &str,
        role: &str,
    ) -> Response {
        let body =
            json!({"email": email, "display_name": role, "password": password, "roles": [role]});
        self.call(Method::POST, "/v1/users", Some(admin), Some(body), &[])
            .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Value {
        let response = self
            .call(
                Method::POST,
                "/v1/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
                &[],
            )
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

/// Starts the gateway, customers and sales once, on freshly chosen ports;
/// whatever started is stopped again when a later part fails.
async fn launch(
    services: &mut Services,
    adjust: &impl Fn(&mut GatewayConfig),
    sealing: &gateway::sealing::KeyEncryptionKey,
    smtp: &testkit::SmtpServer,
) -> anyhow::Result<gateway::RunningGateway> {
    let free_port = || -> anyhow::Result<u16> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    };
    let (customers_port, sales_port, marketing_port, servicedesk_port, reporting_port) = (
        free_port()?,
        free_port()?,
        free_port()?,
        free_port()?,
        free_port()?,
    );
    let mut config = GatewayConfig {
        http_addr: "127.0.0.1:0".parse()?,
        admin_addr: "127.0.0.1:0".parse()?,
        database: services.database("gateway").await.config(),
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
            (
                "servicedesk".to_owned(),
                format!("http://127.0.0.1:{servicedesk_port}"),
            ),
            (
                "reporting".to_owned(),
                format!("http://127.0.0.1:{reporting_port}"),
            ),
        ]
        .into(),
        service_secrets: [
            (
                "marketing".to_owned(),
                sha2::Sha256::digest(SERVICE_SECRET.as_bytes()).into(),
            ),
            (
                "servicedesk".to_owned(),
                sha2::Sha256::digest(DESK_SECRET.as_bytes()).into(),
            ),
        ]
        .into(),
        bootstrap_token: Some(BOOTSTRAP.into()),
        key_encryption: gateway::sealing::KeyEncryptionKeys::only(sealing.clone()),
        issuer: "crm-gateway".into(),
        audience: "crm".into(),
        access_ttl: Duration::from_secs(300),
        refresh_ttl: Duration::from_secs(3600),
        otlp_endpoint: None,
        upstream_timeout: Duration::from_secs(5),
        tenant_rate_per_second: 1000,
        login_attempts_per_minute: 1000,
        form_posts_per_minute: 1000,
        max_connections_per_ip: 4096,
        concurrency_limit: 256,
        nats: services.nats.config(),
        webhook_retry_base: Duration::from_millis(100),
        allow_insecure_webhooks: true,
        // The tests' webhook receivers listen on loopback: allowed here as
        // an operator would allow an internal network.
        webhook_egress: kit::egress::EgressPolicy {
            allowed: vec!["127.0.0.0/8".parse()?],
            denied: vec![],
        },
        cors_origins: vec!["https://app.example.com".into()],
    };
    adjust(&mut config);
    let gateway = gateway::build(config).await?;
    // The services trust the gateway's keys, as in production.
    let auth = AuthConfig {
        keys: KeySource::JwksUrl(format!("http://{}/.well-known/jwks.json", gateway.addr)),
        issuer: "crm-gateway".into(),
        audience: "crm".into(),
    };
    let mut customers = services.config("customers").await;
    customers.grpc_addr = format!("127.0.0.1:{customers_port}").parse()?;
    customers.auth = auth.clone();
    // A failed start drops what did start: dropped services stop.
    services
        .try_start("customers", customers::build(customers))
        .await
        .context("customers starts")?;
    let mut sales = services.config("sales").await;
    sales.grpc_addr = format!("127.0.0.1:{sales_port}").parse()?;
    sales.auth = auth.clone();
    let sales = sales::build(sales::config::SalesConfig {
        service: sales,
        customers_url: format!("http://127.0.0.1:{customers_port}"),
        scan_interval: Duration::from_secs(60),
    });
    if let Err(error) = services.try_start("sales", sales).await {
        services.take("customers");
        return Err(error.context("sales starts"));
    }
    let mut servicedesk = services.config("servicedesk").await;
    servicedesk.grpc_addr = format!("127.0.0.1:{servicedesk_port}").parse()?;
    servicedesk.auth = auth.clone();
    let servicedesk = servicedesk::build(servicedesk::config::ServiceDeskConfig {
        // Survey and portal links point at this gateway's public routes;
        // its mail goes to the tests' SMTP server, sent as soon as queued.
        link_key: kit::links::LinkKey::from_base64(SURVEY_KEY).ok(),
        public_url: format!("http://{}", gateway.addr),
        smtp_url: Some(smtp.url()),
        mail_send_interval: Duration::from_millis(50),
        service_tokens: std::sync::Arc::new(kit::service_tokens::ServiceTokens::gateway(
            format!("http://{}/v1/auth/service-token", gateway.addr),
            DESK_SECRET.into(),
        )),
        ..servicedesk::config::ServiceDeskConfig::new(
            servicedesk,
            format!("http://127.0.0.1:{customers_port}"),
        )
    });
    if let Err(error) = services.try_start("servicedesk", servicedesk).await {
        services.take("customers");
        services.take("sales");
        return Err(error.context("the service desk starts"));
    }
    let mut reporting = services.config("reporting").await;
    reporting.grpc_addr = format!("127.0.0.1:{reporting_port}").parse()?;
    reporting.auth = auth.clone();
    let reporting = reporting::build(reporting::config::ReportingConfig::new(reporting));
    if let Err(error) = services.try_start("reporting", reporting).await {
        services.take("customers");
        services.take("sales");
        services.take("servicedesk");
        return Err(error.context("reporting starts"));
    }
    let mut marketing = services.config("marketing").await;
    marketing.grpc_addr = format!("127.0.0.1:{marketing_port}").parse()?;
    marketing.auth = auth;
    let marketing = marketing::build(marketing::config::MarketingConfig {
        service: marketing,
        customers_url: format!("http://127.0.0.1:{customers_port}"),
        scan_interval: Duration::from_secs(60),
        // Automation acts through the gateway's client-credentials grant.
        service_tokens: std::sync::Arc::new(kit::service_tokens::ServiceTokens::gateway(
            format!("http://{}/v1/auth/service-token", gateway.addr),
            SERVICE_SECRET.into(),
        )),
        automation: marketing::config::AutomationConfig::to(
            &format!("http://127.0.0.1:{sales_port}"),
            &format!("http://127.0.0.1:{servicedesk_port}"),
        ),
        sending: marketing::config::SendingConfig {
            // Links in messages point at this gateway's public routes.
            public_url: format!("http://{}", gateway.addr),
            webhook_key: marketing::domain::links::LinkKey::from_base64(WEBHOOK_KEY).ok(),
            ..marketing::config::SendingConfig::to(&smtp.url(), 100)
        },
    });
    if let Err(error) = services.try_start("marketing", marketing).await {
        services.take("customers");
        services.take("sales");
        services.take("servicedesk");
        services.take("reporting");
        return Err(error.context("marketing starts"));
    }
    Ok(gateway)
}

/// The marketing service's client secret at the gateway
/// (`GATEWAY_MARKETING_SECRET`, `CRM_SERVICE_SECRET`).
pub const SERVICE_SECRET: &str = "marketing-service-secret-for-the-tests-0123";

/// The service desk's client secret at the gateway.
pub const DESK_SECRET: &str = "servicedesk-service-secret-for-the-tests-01";

/// The key the service desk signs survey links with in these tests
/// (`SERVICEDESK_LINK_KEY`).
pub const SURVEY_KEY: &str = "dGVzdC1zdXJ2ZXkta2V5LXRlc3Qtc3VydmV5LWtleS0zMmJ5dGVz";

/// The key the relay's delivery reports are signed with in these tests
/// (`MARKETING_WEBHOOK_KEY`).
pub const WEBHOOK_KEY: &str = "dGVzdC13ZWJob29rLWtleS10ZXN0LXdlYmhvb2sta2V5LTMyYg==";

/// Asserts a problem+json response and returns it.
pub async fn problem(response: Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status);
    body
}

pub fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The JSON body of a response that must have `status` (the body is shown
/// when it does not).
pub async fn json_of(response: Response, status: u16) -> Value {
    let code = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(code, status, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// Serves `hook` (a webhook receiver) on loopback and answers its URL.
pub async fn webhook_receiver(hook: axum::routing::MethodRouter) -> String {
    testkit::http::serve("/hook", hook).await
}

impl Stack {
    /// Registers a webhook for new contacts as `token`; answers its id.
    pub async fn contact_webhook(&self, token: &str, url: &str) -> String {
        let created = self
            .call(
                Method::POST,
                "/v1/webhooks",
                Some(token),
                Some(json!({"url": url, "event_types": ["crm.customers.contact.created.v1"]})),
                &[],
            )
            .await;
        json_of(created, 201).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}
