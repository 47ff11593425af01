//! `crm`: the administrator's command line.
//!
//! `crm demo-tenant` creates the demo tenant through the gateway and prints
//! its admin's access token; `crm seed-demo` fills that tenant with customers
//! and sales records; `crm import` / `crm export` move CSV files in and out of
//! the customers service with a progress bar. `crm keys` and `crm token` sign
//! development tokens with a local key, for a service run without a gateway
//! (tests, a single service under a debugger).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use crm_proto::crm::customers::v1::account_service_client::AccountServiceClient;
use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::customers::v1::data_service_client::DataServiceClient;
use crm_proto::crm::customers::v1::*;
use indicatif::{ProgressBar, ProgressStyle};
use kit::auth::{BearerToken, Claims, Role, TokenSigner, Visibility};
use tonic::transport::Channel;
use uuid::Uuid;

mod marketing_demo;
mod sales_demo;

#[derive(Parser)]
#[command(name = "crm", version, about = "Administer a CRM platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate an Ed25519 signing key pair (signing-key.pem, public-key.pem).
    Keys {
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
    },
    /// Mint a development access token signed with a local key.
    Token(TokenArgs),
    /// Create the demo tenant and its admin through the gateway (safe to run
    /// again), then print an access token of that admin.
    DemoTenant {
        #[arg(long, env = "CRM_GATEWAY_URL", default_value = "http://127.0.0.1:8080")]
        gateway: String,
        #[arg(long, env = "GATEWAY_BOOTSTRAP_TOKEN", hide_env_values = true)]
        bootstrap_token: String,
        #[arg(long, default_value = "admin@demo.example")]
        email: String,
        #[arg(long, env = "CRM_DEMO_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Create the demo tenant's accounts and contacts, and its pipeline,
    /// catalogue, deals and leads when the sales service answers (safe to
    /// run again).
    SeedDemo {
        #[command(flatten)]
        target: Target,
        #[arg(long, env = "CRM_SALES_URL", default_value = "http://127.0.0.1:50052")]
        sales_url: String,
        #[arg(
            long,
            env = "CRM_MARKETING_URL",
            default_value = "http://127.0.0.1:50053"
        )]
        marketing_url: String,
    },
    /// Compare reporting's totals with the sales and service desk services
    /// (open deals and their amounts per pipeline, won amounts per quarter,
    /// open tickets per group) and print every difference; exits 1 on
    /// drift.
    Reconcile {
        #[arg(
            long,
            env = "CRM_REPORTING_URL",
            default_value = "http://127.0.0.1:50055"
        )]
        reporting_url: String,
        /// Bearer token of an admin or manager; see `crm token`.
        #[arg(long, env = "CRM_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Import a CSV file into the customers service.
    Import {
        #[command(flatten)]
        target: Target,
        #[arg(value_enum)]
        entity: EntityArg,
        file: PathBuf,
        /// column=field pairs; without any, header names are field names.
        #[arg(long = "map", value_parser = parse_mapping)]
        mapping: Vec<(String, String)>,
        #[arg(long, value_enum, default_value = "skip")]
        dedup: DedupArg,
        /// Check every row and report, without writing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Export records as CSV.
    Export {
        #[command(flatten)]
        target: Target,
        #[arg(value_enum)]
        entity: EntityArg,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
struct TokenArgs {
    /// Private key file from `crm keys`.
    #[arg(long, env = "CRM_SIGNING_KEY_FILE")]
    key: PathBuf,
    #[arg(long, env = "CRM_TENANT")]
    tenant: Uuid,
    /// User id; a new one when absent.
    #[arg(long)]
    user: Option<Uuid>,
    #[arg(long, value_enum, default_value = "admin")]
    role: RoleArg,
    #[arg(long, default_value_t = 3600)]
    ttl_seconds: i64,
}

#[derive(clap::Args)]
struct Target {
    #[arg(
        long,
        env = "CRM_CUSTOMERS_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    customers_url: String,
    /// Bearer token; see `crm token`.
    #[arg(long, env = "CRM_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Admin,
    Manager,
    SalesRep,
    SupportAgent,
    Marketer,
    Viewer,
}

#[derive(Clone, Copy, ValueEnum)]
enum EntityArg {
    Contacts,
    Accounts,
}

#[derive(Clone, Copy, ValueEnum)]
enum DedupArg {
    Skip,
    Update,
    Create,
}

fn parse_mapping(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(c, f)| (c.to_owned(), f.to_owned()))
        .ok_or_else(|| format!("{raw:?}: expected column=field"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Keys { out_dir } => keys(out_dir),
        Command::Token(args) => {
            println!("{}", token(&args)?);
            Ok(())
        }
        Command::DemoTenant {
            gateway,
            bootstrap_token,
            email,
            password,
        } => {
            println!(
                "{}",
                demo_tenant(&gateway, &bootstrap_token, &email, &password).await?
            );
            Ok(())
        }
        Command::SeedDemo {
            target,
            sales_url,
            marketing_url,
        } => seed_demo(&target, &sales_url, &marketing_url).await,
        Command::Reconcile {
            reporting_url,
            token,
        } => reconcile(&reporting_url, &token).await,
        Command::Import {
            target,
            entity,
            file,
            mapping,
            dedup,
            dry_run,
        } => {
            import(
                &target,
                entity,
                file,
                mapping.into_iter().collect(),
                dedup,
                dry_run,
            )
            .await
        }
        Command::Export {
            target,
            entity,
            out,
        } => export(&target, entity, out).await,
    }
}

fn keys(out_dir: PathBuf) -> anyhow::Result<()> {
    let (private, public, _) = kit::auth::generate_ed25519()?;
    std::fs::create_dir_all(&out_dir)?;
    let private_path = out_dir.join("signing-key.pem");
    std::fs::write(&private_path, private)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&private_path, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::write(out_dir.join("public-key.pem"), public)?;
    eprintln!("wrote {} and public-key.pem", private_path.display());
    Ok(())
}

fn token(args: &TokenArgs) -> anyhow::Result<String> {
    let pem = std::fs::read_to_string(&args.key)
        .with_context(|| format!("reading {}", args.key.display()))?;
    let signer = TokenSigner::from_pem(&pem, "dev")?;
    let (role, visibility) = match args.role {
        RoleArg::Admin => (Role::Admin, Visibility::Tenant),
        RoleArg::Manager => (Role::Manager, Visibility::Tenant),
        RoleArg::SalesRep => (Role::SalesRep, Visibility::Own),
        RoleArg::SupportAgent => (Role::SupportAgent, Visibility::Team),
        RoleArg::Marketer => (Role::Marketer, Visibility::Tenant),
        RoleArg::Viewer => (Role::Viewer, Visibility::Tenant),
    };
    let now = chrono::Utc::now().timestamp();
    signer.sign(&Claims {
        iss: std::env::var("CRM_JWT_ISSUER").unwrap_or_else(|_| "crm-gateway".into()),
        aud: std::env::var("CRM_JWT_AUDIENCE").unwrap_or_else(|_| "crm".into()),
        sub: args.user.unwrap_or_else(Uuid::now_v7).to_string(),
        tid: args.tenant,
        roles: vec![role],
        teams: Vec::new(),
        scopes: Vec::new(),
        vis: visibility,
        exp: now + args.ttl_seconds,
        iat: now,
        jti: Uuid::now_v7().to_string(),
    })
}

async fn connect(target: &Target) -> anyhow::Result<(Channel, BearerToken)> {
    let channel = Channel::from_shared(target.customers_url.clone())?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| {
            format!(
                "connecting to the customers service at {}",
                target.customers_url
            )
        })?;
    let bearer =
        BearerToken::new(&target.token).context("the token has characters a header cannot hold")?;
    Ok((channel, bearer))
}

/// `crm reconcile`: prints each figure and exits 1 when any drifts.
async fn reconcile(url: &str, token: &str) -> anyhow::Result<()> {
    use crm_proto::crm::reporting::v1::reconcile_service_client::ReconcileServiceClient;
    use crm_proto::crm::reporting::v1::ReconcileRequest;
    let channel = Channel::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("connecting to the reporting service at {url}"))?;
    let bearer =
        BearerToken::new(token).context("the token has characters a header cannot hold")?;
    let answer = ReconcileServiceClient::with_interceptor(channel, bearer)
        .reconcile(ReconcileRequest {})
        .await
        .map_err(explain)?
        .into_inner();
    println!(
        "{:<18} {:<48} {:>14} {:>14} {:>12}",
        "figure", "key", "source", "reporting", "difference"
    );
    for d in &answer.figures {
        println!(
            "{:<18} {:<48} {:>14} {:>14} {:>12}",
            d.figure, d.key, d.source, d.reporting, d.difference
        );
    }
    if answer.drifting > 0 {
        eprintln!(
            "{} figures differ (events still in flight show as drift: run it again in a moment)",
            answer.drifting
        );
        std::process::exit(1);
    }
    println!("reporting agrees with its sources");
    Ok(())
}

fn explain(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}: {}", status.code(), status.message())
}

async fn demo_tenant(
    gateway: &str,
    bootstrap: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<String> {
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{gateway}/v1/tenants"))
        .bearer_auth(bootstrap)
        .json(&serde_json::json!({"name": "Demo", "admin_email": email, "admin_name": "Demo Admin", "admin_password": password}))
        .send()
        .await
        .with_context(|| format!("reaching the gateway at {gateway}"))?;
    let status = created.status();
    let body: serde_json::Value = created.json().await.unwrap_or_default();
    let already = body["errors"]
        .as_array()
        .is_some_and(|errors| errors.iter().any(|e| e["field"] == "admin_email"));
    if !(status.is_success() || already) {
        anyhow::bail!("creating the demo tenant failed: {status} {body}");
    }
    let login = http
        .post(format!("{gateway}/v1/auth/login"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await?;
    let status = login.status();
    let body: serde_json::Value = login.json().await.unwrap_or_default();
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("login failed: {status} {body}"))
}

async fn seed_demo(target: &Target, sales_url: &str, marketing_url: &str) -> anyhow::Result<()> {
    let (channel, bearer) = connect(target).await?;
    let customers = channel.clone();
    let mut accounts = AccountServiceClient::with_interceptor(channel.clone(), bearer.clone());
    let mut contacts = ContactServiceClient::with_interceptor(channel, bearer.clone());
    let mut deals = Vec::new();
    let (mut demo_contacts, mut consenting) = (Vec::new(), Vec::new());
    let demo = [
        (
            "Analytical Engines Ltd",
            "engines.example",
            "Manufacturing",
            [
                ("Ada", "Lovelace", "ada"),
                ("Charles", "Babbage", "charles"),
            ],
        ),
        (
            "Harvard Computers",
            "harvard-computers.example",
            "Research",
            [
                ("Henrietta", "Leavitt", "henrietta"),
                ("Annie", "Cannon", "annie"),
            ],
        ),
        (
            "Bletchley Systems",
            "bletchley.example",
            "Security",
            [("Alan", "Turing", "alan"), ("Joan", "Clarke", "joan")],
        ),
    ];
    for (name, domain, industry, people) in demo {
        let account = accounts
            .create_account(CreateAccountRequest {
                account: Some(Account {
                    name: name.into(),
                    domain: domain.into(),
                    industry: industry.into(),
                    lifecycle_stage: LifecycleStage::Opportunity as i32,
                    ..Default::default()
                }),
                request_id: format!("demo-account-{domain}"),
            })
            .await;
        // A demo record someone deleted stays deleted.
        let account = match account {
            Err(status) if status.code() == tonic::Code::NotFound => continue,
            other => other
                .map_err(explain)?
                .into_inner()
                .account
                .context("no account returned")?,
        };
        for (n, (first, last, local)) in people.into_iter().enumerate() {
            let contact = contacts
                .create_contact(CreateContactRequest {
                    contact: Some(Contact {
                        first_name: first.into(),
                        last_name: last.into(),
                        account_id: account.id.clone(),
                        emails: vec![Email {
                            address: format!("{local}@{domain}"),
                            label: "work".into(),
                            primary: true,
                        }],
                        lifecycle_stage: LifecycleStage::SalesQualified as i32,
                        tags: vec!["demo".into()],
                        ..Default::default()
                    }),
                    request_id: format!("demo-contact-{local}@{domain}"),
                })
                .await;
            let contact = match contact {
                Err(status) if status.code() == tonic::Code::NotFound => continue,
                other => other
                    .map_err(explain)?
                    .into_inner()
                    .contact
                    .context("no contact returned")?,
            };
            demo_contacts.push(contact.id.clone());
            if n == 0 {
                consenting.push(contact.id.clone());
                let amount = ["24000", "9600", "48000"][deals.len() % 3];
                deals.push((
                    account.id.clone(),
                    contact.id,
                    format!("{name} licences"),
                    amount,
                ));
            }
        }
    }
    eprintln!("demo data ready: 3 accounts, 6 contacts");
    let sales = Channel::from_shared(sales_url.to_owned())?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await;
    match sales {
        Ok(channel) => {
            sales_demo::seed(channel, bearer.clone(), &deals)
                .await
                .map_err(|e| anyhow::anyhow!("seeding the sales demo data: {e:#}"))?;
            eprintln!(
                "sales demo data ready: a pipeline, 2 products, a price book, 3 deals, 2 leads"
            );
        }
        Err(_) => eprintln!("no sales service at {sales_url}; sales demo data skipped"),
    }
    let marketing = Channel::from_shared(marketing_url.to_owned())?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await;
    match marketing {
        Ok(channel) => {
            marketing_demo::seed(channel, customers, bearer, &demo_contacts, &consenting)
                .await
                .map_err(|e| anyhow::anyhow!("seeding the marketing demo data: {e:#}"))?;
            eprintln!("marketing demo data ready: an active campaign with a cost and 6 members, 3 contacts agreeing to e-mail");
        }
        Err(_) => eprintln!("no marketing service at {marketing_url}; marketing demo data skipped"),
    }
    Ok(())
}

async fn import(
    target: &Target,
    entity: EntityArg,
    file: PathBuf,
    mapping: HashMap<String, String>,
    dedup: DedupArg,
    dry_run: bool,
) -> anyhow::Result<()> {
    let (channel, bearer) = connect(target).await?;
    let mut data = DataServiceClient::with_interceptor(channel, bearer)
        .max_decoding_message_size(64 * 1024 * 1024);
    let body = tokio::fs::read(&file)
        .await
        .with_context(|| format!("reading {}", file.display()))?;
    let header = ImportHeader {
        entity: match entity {
            EntityArg::Contacts => Entity::Contact,
            EntityArg::Accounts => Entity::Account,
        } as i32,
        format: ImportFormat::Csv as i32,
        mapping,
        dedup: match dedup {
            DedupArg::Skip => DedupPolicy::Skip,
            DedupArg::Update => DedupPolicy::Update,
            DedupArg::Create => DedupPolicy::Create,
        } as i32,
        dry_run,
        owner_id: String::new(),
    };
    let rows_estimate = body
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        .saturating_sub(1) as u64;
    let progress = ProgressBar::new(rows_estimate);
    progress.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} rows {per_sec} eta {eta} {msg}",
    )?);
    let mut messages = vec![ImportRequest {
        part: Some(import_request::Part::Header(header)),
    }];
    messages.extend(body.chunks(256 * 1024).map(|c| ImportRequest {
        part: Some(import_request::Part::Chunk(c.to_vec())),
    }));
    let mut responses = data
        .import(tokio_stream::iter(messages))
        .await
        .map_err(explain)?
        .into_inner();
    let mut errors = Vec::new();
    let mut last = ImportResponse::default();
    while let Some(update) = responses.message().await.map_err(explain)? {
        progress.set_position(update.rows_read as u64);
        progress.set_message(format!(
            "{} created, {} updated, {} skipped, {} failed",
            update.created, update.updated, update.skipped, update.failed
        ));
        errors.extend(update.errors.clone());
        last = update;
    }
    progress.finish();
    for error in errors.iter().take(50) {
        eprintln!("row {} {}: {}", error.row, error.column, error.reason);
    }
    if errors.len() > 50 {
        eprintln!("... and {} more errors", errors.len() - 50);
    }
    println!(
        "{}{} rows read: {} created, {} updated, {} skipped, {} failed",
        if dry_run { "dry run: " } else { "" },
        last.rows_read,
        last.created,
        last.updated,
        last.skipped,
        last.failed
    );
    Ok(())
}

async fn export(target: &Target, entity: EntityArg, out: PathBuf) -> anyhow::Result<()> {
    let (channel, bearer) = connect(target).await?;
    let mut data = DataServiceClient::with_interceptor(channel, bearer);
    let entity = match entity {
        EntityArg::Contacts => Entity::Contact,
        EntityArg::Accounts => Entity::Account,
    };
    let mut stream = data
        .export(ExportRequest {
            entity: entity as i32,
            filter: None,
        })
        .await
        .map_err(explain)?
        .into_inner();
    let progress = ProgressBar::new_spinner();
    let mut body = Vec::new();
    while let Some(chunk) = stream.message().await.map_err(explain)? {
        body.extend(chunk.chunk);
        progress.set_message(format!("{} bytes", body.len()));
        progress.tick();
    }
    progress.finish_and_clear();
    tokio::fs::write(&out, &body).await?;
    eprintln!("wrote {} ({} bytes)", out.display(), body.len());
    Ok(())
}
