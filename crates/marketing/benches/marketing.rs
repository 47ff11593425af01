//! Marketing service benchmark, through its gRPC API beside a real
//! customers service, on real PostgreSQL and NATS and a real SMTP server
//! (in this process, counting what it receives). Prints its figures:
//!
//!     deploy/bench.sh marketing
//!
//! 1. A send of BENCH_MESSAGES e-mails (default 100,000) to a customers
//!    segment of as many consenting contacts (imported through the
//!    customers API first): how long the audience takes to resolve, and
//!    messages handed to the SMTP server per second from queue to relay
//!    (every message rendered, recorded before and after, with its event);
//!    the peak memory of the process (customers, marketing and the SMTP
//!    server together).
//! 2. Loyalty redemptions per second from BENCH_CLIENTS clients, each
//!    spending a point of its own member (lock, lot update, entry, event).
//! 3. Journey timers: BENCH_ENROLMENTS (default 20,000) contacts enrolled
//!    in a journey of two one-second waits; enrolments moved per second
//!    (each move: lock the due row, the enrolment and its journey, record
//!    the step in its history, reschedule or finish with its event).
//!
//! BENCH_CLIENTS (default 32), BENCH_SECONDS per phase (default 10).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_proto::crm::customers::v1::data_service_client::DataServiceClient;
use crm_proto::crm::customers::v1::segment_service_client::SegmentServiceClient;
use crm_proto::crm::customers::v1::{self as people, Channel, ConsentStatus, DedupPolicy};
use crm_proto::crm::marketing::v1::journey_service_client::JourneyServiceClient;
use crm_proto::crm::marketing::v1::loyalty_service_client::LoyaltyServiceClient;
use crm_proto::crm::marketing::v1::message_service_client::MessageServiceClient;
use crm_proto::crm::marketing::v1::*;
use kit::auth::{Role, Visibility};
use testkit::bench::{
    contacts_csv, env_u64, import_contacts, load, peak_rss_mib, report, thousands,
};
use testkit::{Services, SmtpServer};
use uuid::Uuid;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let messages = env_u64("BENCH_MESSAGES", 100_000);
    let clients = env_u64("BENCH_CLIENTS", 32) as usize;
    let seconds = env_u64("BENCH_SECONDS", 10);
    let mut services = Services::new();
    let config = services.config("customers").await;
    services.start("customers", customers::build(config)).await;
    let smtp = SmtpServer::counting();
    let mut service = services.config("marketing").await;
    service.database.max_connections = 40;
    let config = marketing::config::MarketingConfig {
        service,
        customers_url: services.url("customers"),
        scan_interval: Duration::from_secs(60),
        service_tokens: Default::default(),
        automation: marketing::config::AutomationConfig::to(
            "http://127.0.0.1:9",
            "http://127.0.0.1:9",
        ),
        // The pace is not what is measured: a million a second per tenant.
        sending: marketing::config::SendingConfig::to(&smtp.url(), 1_000_000),
    };
    services.start("marketing", marketing::build(config)).await;
    let tenant = services.tenant;
    let bearer = services.bearer(
        tenant,
        Uuid::now_v7(),
        &[Role::Admin],
        Visibility::Tenant,
        &[],
    );
    let (c, m) = (services.channel("customers"), services.channel("marketing"));

    // The audience: imported, given e-mail consent (straight into
    // marketing's replica, as the consent events would), one segment.
    let mut data = DataServiceClient::with_interceptor(c.clone(), bearer.clone());
    let (imported, took) =
        import_contacts(&mut data, contacts_csv(messages), DedupPolicy::Create).await?;
    println!(
        "audience        {} contacts imported in {took:.1}s",
        imported.created
    );
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM contacts WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_all(&services.db("customers").admin_pool().await)
        .await?;
    sqlx::query(
        "INSERT INTO contact_consents (tenant_id, contact_id, channel, status, source, changed_at) \
         SELECT $1, id, $3, $4, 'bench', now() FROM unnest($2::uuid[]) id ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(&ids)
    .bind(Channel::Email as i16)
    .bind(ConsentStatus::Granted as i16)
    .execute(&services.db("marketing").admin_pool().await)
    .await?;
    let everyone = people::Filter {
        node: Some(people::filter::Node::Condition(people::Condition {
            field: "id".into(),
            op: people::Operator::IsSet as i32,
            value: None,
        })),
    };
    let segment = SegmentServiceClient::with_interceptor(c.clone(), bearer.clone())
        .create_segment(people::CreateSegmentRequest {
            segment: Some(people::Segment {
                name: "Everyone".into(),
                kind: people::SegmentKind::Dynamic as i32,
                filter: Some(everyone),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?
        .into_inner()
        .segment
        .unwrap_or_default();
    let mut messages_api = MessageServiceClient::with_interceptor(m.clone(), bearer.clone());
    messages_api
        .create_sender_identity(CreateSenderIdentityRequest {
            identity: Some(SenderIdentity {
                from_address: "news@bench.example".into(),
                from_name: "Bench News".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?;
    let template = messages_api
        .create_template(CreateTemplateRequest {
            template: Some(Template {
                name: "Newsletter".into(),
                subject: "News for {{ contact.first_name }}".into(),
                html_body: "<p>Dear {{ contact.full_name }},</p><p><a href=\"{{ link('https://bench.example/offer') }}\">Our offer</a></p>".into(),
                text_body: "Dear {{ contact.full_name }}, our offer: {{ link('https://bench.example/offer') }}".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .template
        .unwrap_or_default();

    // 1. The send.
    let started = Instant::now();
    let send = messages_api
        .create_send(CreateSendRequest {
            send: Some(Send {
                template_id: template.id.clone(),
                segment_id: segment.id.clone(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .send
        .unwrap_or_default();
    let answered = started.elapsed().as_secs_f64();
    let deadline = started + Duration::from_secs(3600);
    // The audience is resolved in the background; sending starts when the
    // whole of it is queued.
    let mut sending = None;
    let done = loop {
        // A fresh token each time: the send outlasts one.
        let bearer = services.bearer(
            tenant,
            Uuid::now_v7(),
            &[Role::Admin],
            Visibility::Tenant,
            &[],
        );
        let now = MessageServiceClient::with_interceptor(m.clone(), bearer)
            .get_send(GetSendRequest {
                id: send.id.clone(),
            })
            .await?
            .into_inner()
            .send
            .unwrap_or_default();
        if sending.is_none() && now.status != SendStatus::Resolving as i32 {
            let queued = now.recipients - now.skipped.values().sum::<i64>();
            println!(
                "send            answered in {answered:.2}s; {} recipients resolved and queued in {:.1}s ({queued} to send)",
                now.recipients,
                started.elapsed().as_secs_f64()
            );
            sending = Some(Instant::now());
        }
        if now.status == SendStatus::Completed as i32 || Instant::now() > deadline {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let resolved = sending.map_or(0.0, |at| (at - started).as_secs_f64());
    let elapsed = sending.map_or(0.0, |at| at.elapsed().as_secs_f64());
    let rate = done.sent as f64 / elapsed;
    println!(
        "sending         {} sent, {} failed, {} at the SMTP server in {elapsed:.1}s = {rate:.0} messages/s; peak RSS {:.0} MiB",
        done.sent,
        done.failed,
        smtp.count(),
        peak_rss_mib()
    );
    report(
        &format!(
            "e-mail send to a segment of {} (resolve {resolved:.0} s)",
            thousands(messages as f64)
        ),
        &format!(
            "{} messages/s, peak RSS {:.0} MiB",
            thousands(rate),
            peak_rss_mib()
        ),
        rate,
        None,
    );

    // 2. Loyalty redemptions: a member per client, each spending a point.
    let bearer = services.bearer(
        tenant,
        Uuid::now_v7(),
        &[Role::Admin],
        Visibility::Tenant,
        &[],
    );
    let mut loyalty = LoyaltyServiceClient::with_interceptor(m.clone(), bearer.clone());
    let program = loyalty
        .create_loyalty_program(CreateLoyaltyProgramRequest {
            program: Some(LoyaltyProgram {
                name: "Club".into(),
                currency: "EUR".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .program
        .unwrap_or_default();
    let members: Vec<String> = ids.iter().take(clients).map(Uuid::to_string).collect();
    for member in &members {
        loyalty
            .award_points(AwardPointsRequest {
                program_id: program.id.clone(),
                contact_id: member.clone(),
                points: 1_000_000,
                reason: "bench".into(),
                request_id: String::new(),
            })
            .await?;
    }
    let members = Arc::new(members);
    let measured = load("redeem points", clients, seconds, move |worker, _| {
        let mut loyalty = loyalty.clone();
        let (members, program) = (members.clone(), program.id.clone());
        async move {
            let i = worker % members.len();
            loyalty
                .redeem_points(RedeemPointsRequest {
                    program_id: program,
                    contact_id: members[i].clone(),
                    points: 1,
                    reason: "bench".into(),
                    request_id: String::new(),
                })
                .await
                .is_ok()
        }
    })
    .await;
    report(
        &format!("loyalty RedeemPoints, {clients} clients"),
        &measured.summary(),
        measured.per_second,
        None,
    );

    // 3. Journey timers.
    let enrolments = (env_u64("BENCH_ENROLMENTS", 20_000) as usize).min(ids.len());
    let bearer = services.bearer(
        tenant,
        Uuid::now_v7(),
        &[Role::Admin],
        Visibility::Tenant,
        &[],
    );
    let mut journeys = JourneyServiceClient::with_interceptor(m.clone(), bearer);
    let wait = |key: &str| JourneyStep {
        key: key.into(),
        kind: StepKind::Wait as i32,
        wait_seconds: 1,
        ..Default::default()
    };
    let journey = journeys
        .create_journey(CreateJourneyRequest {
            journey: Some(Journey {
                name: "Timers".into(),
                steps: vec![wait("first"), wait("second")],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .journey
        .unwrap_or_default();
    let started = Instant::now();
    for chunk in ids[..enrolments].chunks(1000) {
        journeys
            .enrol_contacts(EnrolContactsRequest {
                journey_id: journey.id.clone(),
                contact_ids: chunk.iter().map(Uuid::to_string).collect(),
                segment_id: String::new(),
            })
            .await?;
    }
    let enrolled = started.elapsed().as_secs_f64();
    let pool = services.db("marketing").admin_pool().await;
    let deadline = Instant::now() + Duration::from_secs(1800);
    while Instant::now() < deadline {
        let active: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM journey_enrolments WHERE journey_id = $1 AND status = 1",
        )
        .bind(Uuid::parse_str(&journey.id)?)
        .fetch_one(&pool)
        .await?;
        if active == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Three moves each: start (into the first wait), first wait over
    // (into the second), second over (completed).
    let moves = 3.0 * enrolments as f64;
    // The two seconds of waiting are not the stepper's work.
    let rate = moves / (elapsed - 2.0).max(0.001);
    println!(
        "journeys        {enrolments} enrolled in {enrolled:.1}s, all through two 1 s waits in {elapsed:.1}s"
    );
    report(
        &format!(
            "journey timers: {} enrolments through two 1 s waits",
            thousands(enrolments as f64)
        ),
        &format!("{} enrolment moves/s", thousands(rate)),
        rate,
        None,
    );
    Ok(())
}
