//! Marketing service: campaigns with budgets, cost entries and members
//! (contacts, leads, or a customers segment resolved with the caller's
//! rights); the consent each contact gave, kept from the customers
//! service's events; suppression lists per tenant and, for hard bounces,
//! for every tenant; the reachability rule a send applies; templates and
//! sends; lead-capture forms whose submissions sales makes leads of; and
//! loyalty programs with points, tiers, expiry and coupons; automation
//! rules that act on any service's events; journeys that take contacts
//! through sends, waits and branches.
//!
//! [`build`] wires the gRPC services, the outbox relay and the consumer of
//! the customers service's events onto the platform kit.

pub mod config;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod store;

use std::sync::Arc;

use anyhow::Context as _;
use crm_proto::crm::marketing::v1::automation_service_server::AutomationServiceServer;
use crm_proto::crm::marketing::v1::campaign_service_server::CampaignServiceServer;
use crm_proto::crm::marketing::v1::consent_service_server::ConsentServiceServer;
use crm_proto::crm::marketing::v1::form_service_server::FormServiceServer;
use crm_proto::crm::marketing::v1::journey_service_server::JourneyServiceServer;
use crm_proto::crm::marketing::v1::loyalty_service_server::LoyaltyServiceServer;
use crm_proto::crm::marketing::v1::message_service_server::MessageServiceServer;
use crm_proto::crm::marketing::v1::tracking_service_server::TrackingServiceServer;
use kit::inbox::ConsumerSpec;
use kit::service::{background, launch, GrpcRoutes, RunningService, ServiceContext};

use crate::config::MarketingConfig;
use crate::events::automation::{DateRules, Runner, Triggers};
use crate::events::expiry::ExpiryScanner;
use crate::events::journeys::Stepper;
use crate::events::mailer::Mailer;
use crate::events::sales::SalesEvents;
use crate::events::sender::Sender;
use crate::events::sms::SmsProvider;
use crate::events::webhook::WebhookCaller;
use crate::events::CustomerEvents;
use crate::grpc::{
    automations::AutomationHandlers, campaigns::CampaignHandlers, consent::ConsentHandlers,
    forms::FormHandlers, journeys::JourneyHandlers, loyalty::LoyaltyHandlers,
    messages::MessageHandlers, tracking::TrackingHandlers, State,
};

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connects, migrates and starts the service.
pub async fn build(config: MarketingConfig) -> anyhow::Result<RunningService> {
    // Balanced over the customers pods and connected lazily: marketing
    // starts while customers is still coming up.
    let customers = kit::balance::channel(&config.customers_url, std::time::Duration::from_secs(2))
        .context("MARKETING_CUSTOMERS_URL")?;
    let sales = kit::balance::channel(
        &config.automation.sales_url,
        std::time::Duration::from_secs(2),
    )
    .context("MARKETING_SALES_URL")?;
    let servicedesk = kit::balance::channel(
        &config.automation.servicedesk_url,
        std::time::Duration::from_secs(2),
    )
    .context("MARKETING_SERVICEDESK_URL")?;
    let webhooks = Arc::new(WebhookCaller::new(&config.automation)?);
    let mailer = match &config.sending.relay {
        Some(url) => Some(Arc::new(Mailer::from_url(
            url,
            "MARKETING_SMTP_URL",
            crate::events::sender::PARALLEL as u32,
        )?)),
        None => None,
    };
    let sms = match &config.sending.sms {
        Some(sms) => Some(Arc::new(SmsProvider::from_url(
            &sms.url,
            sms.token.clone(),
            sms.from.clone(),
        )?)),
        None => None,
    };
    let context = ServiceContext::connect(config.service, &MIGRATIONS).await?;
    let state = Arc::new(State {
        db: context.db.clone(),
        outbox: context.outbox.clone(),
        customers,
        sales,
        servicedesk,
        webhooks,
        mailer: mailer.clone(),
        sms: sms.clone(),
        sending_rate: config.sending.rate_per_tenant,
        resolution_lease: config.sending.lease,
        links: config.sending.link_key.clone(),
        webhook_key: config.sending.webhook_key.clone(),
        service_tokens: config.service_tokens.clone(),
    });
    let grpc = GrpcRoutes::default()
        .serve(CampaignServiceServer::new(CampaignHandlers(state.clone())))
        .serve(ConsentServiceServer::new(ConsentHandlers(state.clone())))
        .serve(MessageServiceServer::new(MessageHandlers(state.clone())))
        .serve(FormServiceServer::new(FormHandlers(state.clone())))
        .serve(LoyaltyServiceServer::new(LoyaltyHandlers(state.clone())))
        .serve(TrackingServiceServer::new(TrackingHandlers(state.clone())))
        .serve(AutomationServiceServer::new(AutomationHandlers(
            state.clone(),
        )))
        .serve(JourneyServiceServer::new(JourneyHandlers(state.clone())));
    let expiry = ExpiryScanner::new(
        context.db.clone(),
        context.outbox.clone(),
        config.scan_interval,
    );
    let poll = config.sending.poll;
    let sender = Sender::new(
        context.db.clone(),
        context.outbox.clone(),
        mailer,
        sms,
        config.sending,
    );
    let consumer = context
        .consumer(
            ConsumerSpec::new("marketing", "customers"),
            CustomerEvents(context.outbox.clone()),
        )
        .await?;
    // Won deals are attributed to the campaigns that touched them.
    let won = context
        .consumer(
            ConsumerSpec::new("marketing", "sales"),
            SalesEvents(context.outbox.clone()),
        )
        .await?;
    // Automation rules hear every domain's events, each through its own
    // durable consumer (a slow rule never holds up the consent replica).
    let mut triggers = Vec::new();
    for domain in ["customers", "sales", "marketing", "reporting"] {
        let consumer = context
            .consumer(
                ConsumerSpec::new("marketing-automation", domain),
                Triggers(context.outbox.clone()),
            )
            .await?;
        triggers.push(consumer);
    }
    let dates = DateRules::new(context.db.clone(), config.scan_interval);
    triggers.push(background(move |shutdown| kit::scan::run(dates, shutdown)));
    let runner = Runner::new(state.clone(), config.automation.retry, poll);
    triggers.push(background(move |shutdown| kit::scan::run(runner, shutdown)));
    let stepper = Stepper::new(state.clone(), config.automation.retry, poll);
    triggers.push(background(move |shutdown| {
        kit::scan::run(stepper, shutdown)
    }));
    launch(
        context,
        grpc,
        vec![
            consumer,
            won,
            background(move |shutdown| sender.run(shutdown)),
            background(move |shutdown| kit::scan::run(expiry, shutdown)),
        ]
        .into_iter()
        .chain(triggers)
        .collect(),
    )
    .await
}
