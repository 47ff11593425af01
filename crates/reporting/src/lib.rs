//! Reporting service: it owns no business data. Durable consumers of the
//! other services' events (the kit's inbox: once per event, in order per
//! aggregate) keep read models in its own database, and dashboards are
//! computed from them for what each caller may see.
//!
//! It projects customers' activities and merges, sales' pipelines, deals,
//! quotas and leads, and the service desk's tickets, and answers the sales,
//! activity and service dashboards (ADR 0033).
//!
//! [`build`] wires the gRPC services and the consumers onto the platform kit.

pub mod config;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod store;

use std::sync::Arc;

use anyhow::Context as _;
use kit::mail::Mailer;

use crm_proto::crm::reporting::v1::dashboard_service_server::DashboardServiceServer;
use crm_proto::crm::reporting::v1::reconcile_service_server::ReconcileServiceServer;
use crm_proto::crm::reporting::v1::report_service_server::ReportServiceServer;
use kit::inbox::ConsumerSpec;
use kit::service::{background, launch, GrpcRoutes, RunningService, ServiceContext};

use crate::config::ReportingConfig;
use crate::events::churn::ChurnScan;
use crate::events::schedules::ScheduleScan;
use crate::events::{CustomersEvents, MarketingEvents, SalesEvents, ServiceDeskEvents};
use crate::grpc::dashboards::DashboardHandlers;
use crate::grpc::reconcile::ReconcileHandlers;
use crate::grpc::reports::ReportHandlers;
use crate::grpc::State;

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connects, migrates and starts the service.
/// The most events of one tenant a projection applies in one transaction.
const PROJECTION_BATCH: usize = 100;

pub async fn build(config: ReportingConfig) -> anyhow::Result<RunningService> {
    let context = ServiceContext::connect(config.service, &MIGRATIONS).await?;
    let mailer = config
        .smtp_url
        .as_deref()
        .map(|url| Mailer::from_url(url, "REPORTING_SMTP_URL", 2))
        .transpose()?
        .map(Arc::new);
    // Connected lazily: reporting starts while the sources come up.
    let source = |url: &Option<String>, setting: &str| {
        url.as_deref()
            .map(|url| kit::balance::channel(url, std::time::Duration::from_secs(2)))
            .transpose()
            .with_context(|| setting.to_owned())
    };
    let state = Arc::new(State {
        db: context.db.clone(),
        clock: config.clock.clone(),
        mails_reports: mailer.is_some(),
        sales: source(&config.sales_url, "REPORTING_SALES_URL")?,
        servicedesk: source(&config.servicedesk_url, "REPORTING_SERVICEDESK_URL")?,
    });
    let grpc = GrpcRoutes::default()
        .serve(DashboardServiceServer::new(DashboardHandlers(
            state.clone(),
        )))
        .serve(ReportServiceServer::new(ReportHandlers(state.clone())))
        .serve(ReconcileServiceServer::new(ReconcileHandlers(
            state.clone(),
        )));
    let churn = ChurnScan::new(
        context.db.clone(),
        context.outbox.clone(),
        config.clock.clone(),
        config.scan_interval,
    );
    // The projections write only to reporting's database: up to
    // PROJECTION_BATCH events share a transaction (a replay commits once
    // per batch, not once per event).
    let projection = |domain| ConsumerSpec::new("reporting", domain).batched(PROJECTION_BATCH);
    let mut tasks = vec![
        background(move |shutdown| kit::scan::run(churn, shutdown)),
        context
            .consumer(projection("customers"), CustomersEvents)
            .await?,
        context
            .consumer(projection("marketing"), MarketingEvents)
            .await?,
        context.consumer(projection("sales"), SalesEvents).await?,
        context
            .consumer(projection("servicedesk"), ServiceDeskEvents)
            .await?,
    ];
    if let Some(mailer) = mailer {
        let schedules = ScheduleScan {
            db: context.db.clone(),
            outbox: context.outbox.clone(),
            mailer,
            from: config
                .mail_from
                .parse()
                .context("REPORTING_MAIL_FROM is not a mailbox")?,
            clock: config.clock.clone(),
            interval: config.scan_interval,
        };
        tasks.push(background(move |shutdown| {
            kit::scan::run(schedules, shutdown)
        }));
    }
    launch(context, grpc, tasks).await
}
