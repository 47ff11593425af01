//! gRPC handlers: decode the request, authorise the caller, apply the
//! domain rules, call the store and write events in one transaction, encode.

pub mod audience;
pub mod automations;
pub mod campaigns;
pub mod consent;
pub mod forms;
pub mod journeys;
pub mod loyalty;
pub mod messages;
pub mod tracking;

use std::sync::Arc;

use kit::auth::CallerContext;
use kit::db::{Database, TenantTx};
use kit::outbox::Outbox;
use tonic::transport::Channel;

/// What every handler needs.
pub struct State {
    pub db: Database,
    pub outbox: Outbox,
    /// The customers service: segments and contacts' addresses.
    pub customers: Channel,
    /// The sales service: automation's lead actions.
    pub sales: Channel,
    /// The service desk: automation's ticket actions.
    pub servicedesk: Channel,
    /// Automation's webhook calls.
    pub webhooks: Arc<crate::events::webhook::WebhookCaller>,
    /// The mail relay; none when `MARKETING_SMTP_URL` is unset (sends are
    /// refused then).
    pub mailer: Option<Arc<crate::events::mailer::Mailer>>,
    /// The SMS provider; none when `MARKETING_SMS_URL` is unset.
    pub sms: Option<Arc<crate::events::sms::SmsProvider>>,
    /// Messages per second per tenant, when sends are queued.
    pub sending_rate: u32,
    /// How long a send's background resolution may go without progress
    /// before it counts as stopped (the sends' lease).
    pub resolution_lease: std::time::Duration,
    /// Verifies the links in messages.
    pub links: crate::domain::links::LinkKey,
    /// Tokens to act as the service itself (automation rules).
    pub service_tokens: Arc<kit::service_tokens::ServiceTokens>,
    /// Verifies delivery report webhooks; none: they are refused.
    pub webhook_key: Option<crate::domain::links::LinkKey>,
}

pub type SharedState = Arc<State>;

impl State {
    pub async fn begin(&self, caller: &CallerContext) -> kit::Result<TenantTx> {
        Ok(self.db.begin_tenant(caller.tenant_id).await?)
    }
}

pub use kit::rpc::{check_version, commit, handle, page_response, version_of};
