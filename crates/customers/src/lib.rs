//! Customers service: accounts, contacts, activities and tasks, tags, custom
//! fields, segments, duplicates and merge, import/export, GDPR requests.
//!
//! [`build`] wires the gRPC services, the outbox relay and the task reminder
//! scheduler onto the platform kit; `main` and the tests both use it.

pub mod config;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod store;

use std::sync::Arc;

use crm_proto::crm::customers::v1::account_service_server::AccountServiceServer;
use crm_proto::crm::customers::v1::activity_service_server::ActivityServiceServer;
use crm_proto::crm::customers::v1::contact_service_server::ContactServiceServer;
use crm_proto::crm::customers::v1::data_service_server::DataServiceServer;
use crm_proto::crm::customers::v1::field_service_server::FieldServiceServer;
use crm_proto::crm::customers::v1::search_service_server::SearchServiceServer;
use crm_proto::crm::customers::v1::segment_service_server::SegmentServiceServer;
use kit::config::ServiceConfig;
use kit::inbox::ConsumerSpec;
use kit::service::{background, launch, GrpcRoutes, RunningService, ServiceContext};

use crate::events::reminders::ReminderScheduler;
use crate::events::sales::SalesEvents;
use crate::grpc::{
    accounts::AccountHandlers, activities::ActivityHandlers, contacts::ContactHandlers,
    data::DataHandlers, fields::FieldHandlers, search::SearchHandlers, segments::SegmentHandlers,
    State,
};

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Imports of large files send many messages; allow 16 MiB per message.
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Connects, migrates and starts the service.
pub use grpc::import_gate::ImportLimits;

pub async fn build(config: ServiceConfig) -> anyhow::Result<RunningService> {
    build_with(config, ImportLimits::default()).await
}

/// [`build`] with the given import limits.
pub async fn build_with(
    config: ServiceConfig,
    import_limits: ImportLimits,
) -> anyhow::Result<RunningService> {
    let context = ServiceContext::connect(config, &MIGRATIONS).await?;
    let state = Arc::new(State {
        db: context.db.clone(),
        outbox: context.outbox.clone(),
        imports: grpc::import_gate::ImportGate::new(import_limits),
    });
    let grpc = GrpcRoutes::default()
        .serve(ContactServiceServer::new(ContactHandlers(state.clone())))
        .serve(AccountServiceServer::new(AccountHandlers(state.clone())))
        .serve(ActivityServiceServer::new(ActivityHandlers(state.clone())))
        .serve(FieldServiceServer::new(FieldHandlers(state.clone())))
        .serve(SegmentServiceServer::new(SegmentHandlers(state.clone())))
        .serve(SearchServiceServer::new(SearchHandlers(state.clone())))
        .serve(
            DataServiceServer::new(DataHandlers(state.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        );
    let reminders = ReminderScheduler::new(context.db.clone(), context.outbox.clone());
    // Won deals make their accounts customers.
    let won_deals = context
        .consumer(
            ConsumerSpec::new("customers", "sales"),
            SalesEvents(context.outbox.clone()),
        )
        .await?;
    launch(
        context,
        grpc,
        vec![
            background(move |shutdown| kit::scan::run(reminders, shutdown)),
            won_deals,
        ],
    )
    .await
}
