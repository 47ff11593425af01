//! Service desk service: tickets from every channel, with sequential
//! numbers per tenant, their conversations (public replies, internal
//! notes, customers' messages) and the history of every change; requesters
//! checked in the customers service with the caller's rights, and the
//! customers service's merges and erasures applied to tickets; SLA targets
//! counted in business hours, with warnings, breaches and escalations;
//! routing by skill and workload; a knowledge base searched in full text;
//! support mail in over SMTP and replies out, threaded; satisfaction
//! surveys; macros and bulk jobs.
//!
//! [`build`] wires the gRPC services, the outbox relay, the consumer of
//! the customers service's events, the SLA scanner, the inbound SMTP
//! listener and the mail sender onto the platform kit.

pub mod config;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod store;

use std::sync::Arc;

use anyhow::Context as _;
use crm_proto::crm::servicedesk::v1::channel_service_server::ChannelServiceServer;
use crm_proto::crm::servicedesk::v1::feedback_service_server::FeedbackServiceServer;
use crm_proto::crm::servicedesk::v1::knowledge_service_server::KnowledgeServiceServer;
use crm_proto::crm::servicedesk::v1::macro_service_server::MacroServiceServer;
use crm_proto::crm::servicedesk::v1::portal_service_server::PortalServiceServer;
use crm_proto::crm::servicedesk::v1::routing_service_server::RoutingServiceServer;
use crm_proto::crm::servicedesk::v1::satisfaction_service_server::SatisfactionServiceServer;
use crm_proto::crm::servicedesk::v1::search_service_server::SearchServiceServer;
use crm_proto::crm::servicedesk::v1::sla_service_server::SlaServiceServer;
use crm_proto::crm::servicedesk::v1::ticket_job_service_server::TicketJobServiceServer;
use crm_proto::crm::servicedesk::v1::ticket_service_server::TicketServiceServer;
use kit::inbox::ConsumerSpec;
use kit::mail::Mailer;
use kit::service::{background, launch, GrpcRoutes, RunningService, ServiceContext};

use crate::config::ServiceDeskConfig;
use crate::events::mail::{MailDesk, MailSender};
use crate::events::sla::SlaScanner;
use crate::events::tasks::EscalationTasks;
use crate::events::{CustomerEvents, SalesEvents};
use crate::grpc::actions::{MacroHandlers, TicketJobHandlers};
use crate::grpc::channels::ChannelHandlers;
use crate::grpc::feedback::FeedbackHandlers;
use crate::grpc::knowledge::KnowledgeHandlers;
use crate::grpc::portal::PortalHandlers;
use crate::grpc::satisfaction::SatisfactionHandlers;
use crate::grpc::search::SearchHandlers;
use crate::grpc::{routing::RoutingHandlers, slas::SlaHandlers, tickets::TicketHandlers, State};

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connects, migrates and starts the service.
pub async fn build(config: ServiceDeskConfig) -> anyhow::Result<RunningService> {
    // Balanced over the customers pods and connected lazily: the service
    // desk starts while customers is still coming up.
    let customers = kit::balance::channel(&config.customers_url, std::time::Duration::from_secs(2))
        .context("SERVICEDESK_CUSTOMERS_URL")?;
    let context = ServiceContext::connect(config.service, &MIGRATIONS).await?;
    let mailer = config
        .smtp_url
        .as_deref()
        .map(|url| Mailer::from_url(url, "SERVICEDESK_SMTP_URL", 4))
        .transpose()?
        .map(Arc::new);
    let state = Arc::new(State {
        db: context.db.clone(),
        outbox: context.outbox.clone(),
        customers,
        clock: config.clock,
        mails_replies: mailer.is_some(),
        link_key: config.link_key.clone(),
        public_url: config.public_url.clone(),
    });
    if let Some(listener) = &config.smtp_listener {
        let desk = MailDesk::new(
            state.clone(),
            config.service_tokens.clone(),
            config.smtp_messages_per_minute,
        );
        events::mail::listen(desk, listener.try_clone()?)?;
    }
    let grpc = GrpcRoutes::default()
        .serve(TicketServiceServer::new(TicketHandlers(state.clone())))
        .serve(SlaServiceServer::new(SlaHandlers(state.clone())))
        .serve(RoutingServiceServer::new(RoutingHandlers(state.clone())))
        .serve(KnowledgeServiceServer::new(KnowledgeHandlers(
            state.clone(),
        )))
        .serve(SearchServiceServer::new(SearchHandlers(state.clone())))
        .serve(ChannelServiceServer::new(ChannelHandlers(state.clone())))
        .serve(SatisfactionServiceServer::new(SatisfactionHandlers(
            state.clone(),
        )))
        .serve(MacroServiceServer::new(MacroHandlers(state.clone())))
        .serve(PortalServiceServer::new(PortalHandlers(state.clone())))
        .serve(FeedbackServiceServer::new(FeedbackHandlers(state.clone())))
        .serve(TicketJobServiceServer::new(TicketJobHandlers(
            state.clone(),
        )));
    let scanner = SlaScanner::new(state.clone(), config.sla_scan_interval);
    let consumer = context
        .consumer(
            ConsumerSpec::new("servicedesk", "customers"),
            CustomerEvents,
        )
        .await?;
    // Its own escalations that ask for a task in customers.
    let escalations = context
        .consumer(
            ConsumerSpec {
                filter_subject: "crm.servicedesk.sla.escalated".into(),
                ..ConsumerSpec::new("servicedesk-tasks", "servicedesk")
            },
            EscalationTasks {
                state: state.clone(),
                tokens: config.service_tokens.clone(),
            },
        )
        .await?;
    // Sales' orders: the after-sales context of tickets.
    let orders = context
        .consumer(
            ConsumerSpec {
                filter_subject: "crm.sales.order.created".into(),
                ..ConsumerSpec::new("servicedesk-orders", "sales")
            },
            SalesEvents,
        )
        .await?;
    let mut tasks = vec![
        consumer,
        orders,
        escalations,
        background(move |shutdown| kit::scan::run(scanner, shutdown)),
    ];
    if let Some(mailer) = mailer {
        let sender = MailSender::new(
            state.clone(),
            config.service_tokens.clone(),
            mailer,
            config.mail_send_interval,
        );
        tasks.push(background(move |shutdown| kit::scan::run(sender, shutdown)));
    }
    launch(context, grpc, tasks).await
}
