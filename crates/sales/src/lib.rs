//! Sales pipeline service: leads with territory routing, round robin,
//! scoring and conversion into the customers service; pipelines with
//! ordered stages; opportunities with stage history and won/lost events;
//! quotas and forecasts.
//!
//! [`build`] wires the gRPC services, the outbox relay and the consumers of
//! the customers and marketing services' events onto the platform kit.

pub mod config;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod store;

use std::sync::Arc;

use anyhow::Context as _;
use crm_proto::crm::sales::v1::catalog_service_server::CatalogServiceServer;
use crm_proto::crm::sales::v1::forecast_service_server::ForecastServiceServer;
use crm_proto::crm::sales::v1::lead_service_server::LeadServiceServer;
use crm_proto::crm::sales::v1::opportunity_service_server::OpportunityServiceServer;
use crm_proto::crm::sales::v1::order_service_server::OrderServiceServer;
use crm_proto::crm::sales::v1::pipeline_service_server::PipelineServiceServer;
use crm_proto::crm::sales::v1::quote_service_server::QuoteServiceServer;
use crm_proto::crm::sales::v1::search_service_server::SearchServiceServer;
use kit::inbox::ConsumerSpec;
use kit::service::{background, launch, GrpcRoutes, RunningService, ServiceContext};

use crate::config::SalesConfig;
use crate::events::decay::DecayScanner;
use crate::events::marketing::MarketingEvents;
use crate::events::overdue::OverdueScanner;
use crate::events::CustomerEvents;
use crate::grpc::{
    catalog::CatalogHandlers, forecasts::ForecastHandlers, leads::LeadHandlers,
    opportunities::OpportunityHandlers, orders::OrderHandlers, pipelines::PipelineHandlers,
    quotes::QuoteHandlers, search::SearchHandlers, State,
};

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connects, migrates and starts the service.
pub async fn build(config: SalesConfig) -> anyhow::Result<RunningService> {
    // Balanced over the customers pods and connected lazily: sales starts
    // while customers is still coming up.
    let customers = kit::balance::channel(&config.customers_url, std::time::Duration::from_secs(2))
        .context("SALES_CUSTOMERS_URL")?;
    let scan_interval = config.scan_interval;
    let context = ServiceContext::connect(config.service, &MIGRATIONS).await?;
    let state = Arc::new(State {
        db: context.db.clone(),
        outbox: context.outbox.clone(),
        customers,
    });
    let grpc = GrpcRoutes::default()
        .serve(LeadServiceServer::new(LeadHandlers(state.clone())))
        .serve(PipelineServiceServer::new(PipelineHandlers(state.clone())))
        .serve(OpportunityServiceServer::new(OpportunityHandlers(
            state.clone(),
        )))
        .serve(ForecastServiceServer::new(ForecastHandlers(state.clone())))
        .serve(CatalogServiceServer::new(CatalogHandlers(state.clone())))
        .serve(QuoteServiceServer::new(QuoteHandlers(state.clone())))
        .serve(OrderServiceServer::new(OrderHandlers(state.clone())))
        .serve(SearchServiceServer::new(SearchHandlers(state.clone())));
    let overdue = OverdueScanner::new(context.db.clone(), context.outbox.clone(), scan_interval);
    let decay = DecayScanner::new(state.clone(), scan_interval);
    let consumer = context
        .consumer(
            ConsumerSpec::new("sales", "customers"),
            CustomerEvents(state.clone()),
        )
        .await?;
    // Clicks in marketing e-mails score leads.
    let marketing = context
        .consumer(
            ConsumerSpec::new("sales", "marketing"),
            MarketingEvents(state.clone()),
        )
        .await?;
    launch(
        context,
        grpc,
        vec![
            consumer,
            marketing,
            background(move |shutdown| kit::scan::run(overdue, shutdown)),
            background(move |shutdown| kit::scan::run(decay, shutdown)),
        ],
    )
    .await
}
