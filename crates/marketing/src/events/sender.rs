//! The sender: claims due messages of every tenant from the outbound
//! queue, renders and sends them through the mail relay or the SMS
//! provider (by the template's channel), and records each outcome with
//! its event. Several pods share the queue (`SKIP LOCKED`);
//! each tenant's pace is set when its messages are queued (`due_at`).
//!
//! At most once per recipient (ADR 0019): a claim is committed as
//! "sending" before the relay is called, and the outcome after. A sender
//! that stops in between leaves claims whose lease runs out; they are
//! marked interrupted, never sent again. A graceful stop finishes the batch
//! in hand first, so only a crash leaves interrupted recipients, at most one
//! batch.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use crm_proto::crm::marketing::v1::{MessageSent, SendCompleted, SenderIdentity, Template};
use futures::StreamExt as _;
use kit::auth::CallerContext;
use kit::db::Database;
use kit::outbox::Outbox;
use kit::Shutdown;
use uuid::Uuid;

use super::mailer::{compose, Mailer, Refused};
use super::sms::SmsProvider;
use crate::config::SendingConfig;
use crate::domain::links::Kind;
use crate::domain::template::{self, Links};
use crate::store::messages::{self, Claimed, Outcome};

/// Messages one step claims at most.
pub const BATCH: i64 = 50;
/// Messages handed to the relay at once.
pub const PARALLEL: usize = 8;
/// Why a send whose resolver's lease ran out is cancelled.
const RESOLVER_STOPPED: &str =
    "the service resolving the audience stopped before it finished; nothing was sent: create the send again";
/// Attempts before a message that the relay keeps deferring fails.
const MAX_ATTEMPTS: i32 = 5;

type Parts = Option<(Template, Option<SenderIdentity>, Option<Uuid>)>;

pub struct Sender {
    db: Database,
    outbox: Outbox,
    transports: Arc<Transports>,
    config: SendingConfig,
}

/// Where messages go, by channel; a channel without one is never queued
/// (sends refuse it).
struct Transports {
    mail: Option<Arc<Mailer>>,
    sms: Option<Arc<SmsProvider>>,
}

impl Sender {
    pub fn new(
        db: Database,
        outbox: Outbox,
        mail: Option<Arc<Mailer>>,
        sms: Option<Arc<SmsProvider>>,
        config: SendingConfig,
    ) -> Self {
        Sender {
            db,
            outbox,
            transports: Arc::new(Transports { mail, sms }),
            config,
        }
    }

    /// Steps until shutdown; a step in hand is finished first.
    pub async fn run(self, shutdown: Shutdown) {
        while !shutdown.is_cancelled() {
            if let Err(error) = self.reap_once().await {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "reaping expired claims failed"
                );
            }
            let pause = match self.step().await {
                Ok(handled) if handled > 0 => Duration::ZERO,
                Ok(_) => self.config.poll,
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "sending failed");
                    self.config.poll
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }

    /// Claims, sends and records one batch; returns how many messages.
    pub async fn step(&self) -> anyhow::Result<usize> {
        if self.transports.mail.is_none() && self.transports.sms.is_none() {
            return Ok(0);
        }
        let mut tx = self.db.pool().begin().await?;
        let claimed = messages::claim(&mut tx, BATCH, self.config.lease).await?;
        tx.commit().await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let mut parts: HashMap<(Uuid, Uuid), Parts> = HashMap::new();
        let sends: BTreeSet<(Uuid, Uuid)> = claimed.iter().map(|(t, m)| (*t, m.send_id)).collect();
        for (tenant, send) in sends {
            let mut tx = self.db.begin_tenant(tenant).await?;
            let found = messages::send_parts(&mut tx, tenant, send).await?;
            tx.commit().await?;
            parts.insert((tenant, send), found);
        }
        let parts = Arc::new(parts);
        let handled = claimed.len();
        let outcomes: Vec<(Uuid, Claimed, Outcome)> = futures::stream::iter(claimed)
            .map(|(tenant, message)| {
                let (transports, parts) = (self.transports.clone(), parts.clone());
                let links = Arc::new(Links {
                    key: self.config.link_key.clone(),
                    base: self.config.public_url.clone(),
                    tenant,
                    recipient: message.id,
                    now: Utc::now(),
                });
                async move {
                    let parts = parts.get(&(tenant, message.send_id));
                    let outcome = deliver(&transports, parts, &message, links).await;
                    (tenant, message, outcome)
                }
            })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        let mut by_tenant: HashMap<Uuid, Vec<(Claimed, Outcome)>> = HashMap::new();
        for (tenant, message, outcome) in outcomes {
            by_tenant
                .entry(tenant)
                .or_default()
                .push((message, outcome));
        }
        for (tenant, results) in by_tenant {
            self.record(tenant, &parts, results).await?;
        }
        Ok(handled)
    }

    async fn record(
        &self,
        tenant: Uuid,
        parts: &HashMap<(Uuid, Uuid), Parts>,
        results: Vec<(Claimed, Outcome)>,
    ) -> anyhow::Result<()> {
        let caller = CallerContext::system(crate::config::SERVICE, tenant);
        let mut tx = self.db.begin_tenant(tenant).await?;
        let mut sends = BTreeSet::new();
        let mut sent_events = Vec::new();
        for (message, outcome) in &results {
            messages::record(&mut tx, tenant, message.id, outcome).await?;
            sends.insert(message.send_id);
            if !matches!(outcome, Outcome::Sent) {
                continue;
            }
            let (template, campaign) = match parts.get(&(tenant, message.send_id)) {
                Some(Some((template, _, campaign))) => (template, *campaign),
                _ => continue,
            };
            if let Some(campaign) = campaign {
                messages::member_reached(
                    &mut tx,
                    tenant,
                    campaign,
                    message.contact_id,
                    crm_proto::crm::marketing::v1::MemberStatus::Sent,
                )
                .await?;
            }
            sent_events.push((
                message.id,
                MessageSent {
                    send_id: message.send_id.to_string(),
                    recipient_id: message.id.to_string(),
                    contact_id: message.contact_id.to_string(),
                    campaign_id: campaign.map(|c| c.to_string()).unwrap_or_default(),
                    template_id: template.id.clone(),
                    channel: template.channel,
                },
            ));
        }
        self.outbox
            .enqueue_many(
                &mut tx,
                &caller,
                sent_events.iter().map(|(id, event)| (*id, 1, event)),
            )
            .await?;
        for send in sends {
            self.publish_if_completed(&mut tx, &caller, send).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn publish_if_completed(
        &self,
        tx: &mut kit::db::TenantTx,
        caller: &CallerContext,
        send: Uuid,
    ) -> anyhow::Result<()> {
        publish_if_completed(&self.outbox, tx, caller, send).await
    }

    /// Cancels sends whose resolver stopped and marks claims whose lease
    /// ran out as interrupted; returns how many.
    pub async fn reap_once(&self) -> anyhow::Result<usize> {
        let mut tx = self.db.pool().begin().await?;
        let stopped = messages::expired_resolutions(&mut tx, BATCH).await?;
        for (tenant, send) in &stopped {
            kit::db::set_tenant(&mut tx, *tenant).await?;
            messages::abandon_resolution(&mut tx, *tenant, *send, RESOLVER_STOPPED).await?;
        }
        tx.commit().await?;
        let mut tx = self.db.pool().begin().await?;
        let expired = messages::reap(&mut tx, BATCH).await?;
        tx.commit().await?;
        let sends: BTreeSet<(Uuid, Uuid)> = expired.iter().map(|(t, _, s)| (*t, *s)).collect();
        for (tenant, send) in sends {
            let caller = CallerContext::system(crate::config::SERVICE, tenant);
            let mut tx = self.db.begin_tenant(tenant).await?;
            self.publish_if_completed(&mut tx, &caller, send).await?;
            tx.commit().await?;
        }
        Ok(stopped.len() + expired.len())
    }
}

/// Marks a send completed, with its event, when no recipient is left
/// queued or sending (after outcomes, reaped claims or an erasure).
pub async fn publish_if_completed(
    outbox: &Outbox,
    tx: &mut kit::db::TenantTx,
    caller: &CallerContext,
    send: Uuid,
) -> anyhow::Result<()> {
    if let Some(done) = messages::complete_if_done(tx, caller.tenant_id, send).await? {
        let version = kit::rpc::version_of(&done.audit);
        let event = SendCompleted { send: Some(done) };
        outbox.enqueue(tx, caller, send, version, &event).await?;
    }
    Ok(())
}

/// Renders and hands one message to the relay or the SMS provider.
async fn deliver(
    transports: &Transports,
    parts: Option<&Parts>,
    message: &Claimed,
    links: Arc<Links>,
) -> Outcome {
    let Some(Some((template, identity, _))) = parts else {
        return Outcome::Failed("the send's template is gone".into());
    };
    let unsubscribe = links.url(Kind::Unsubscribe, "");
    let reference = format!("{}.{}", links.tenant, message.id);
    let rendered = match template::render(template, &message.variables, Some(links)) {
        Ok(rendered) => rendered,
        Err(error) => return Outcome::Failed(format!("rendering: {error}")),
    };
    let handed = if template.channel == crm_proto::crm::customers::v1::Channel::Sms as i32 {
        let Some(sms) = &transports.sms else {
            return Outcome::Failed("no SMS provider is configured".into());
        };
        sms.send(&message.address, &rendered.text_body, &reference)
            .await
    } else {
        let Some(mailer) = &transports.mail else {
            return Outcome::Failed("no mail relay is configured".into());
        };
        let Some(identity) = identity else {
            return Outcome::Failed("the send's sender identity is gone".into());
        };
        let domain = identity
            .from_address
            .rsplit_once('@')
            .map(|(_, d)| d)
            .unwrap_or("crm.invalid");
        // The Message-ID names tenant and recipient: delivery reports
        // quote it back.
        let email = match compose(
            identity,
            &message.address,
            &rendered,
            &format!("<{reference}@{domain}>"),
            Some(&unsubscribe),
        ) {
            Ok(email) => email,
            Err(error) => return Outcome::Failed(error),
        };
        mailer.send(email).await
    };
    outcome(handed, message.attempts)
}

/// Sent; refused for good (or out of attempts); or tried again later with
/// a growing pause: 30 s, 1, 2, 4 minutes...
fn outcome(handed: Result<(), Refused>, attempts: i32) -> Outcome {
    match handed {
        Ok(()) => Outcome::Sent,
        Err(refused) if refused.permanent || attempts >= MAX_ATTEMPTS => {
            Outcome::Failed(refused.reason)
        }
        Err(refused) => {
            let backoff = Duration::from_secs(30 * 2u64.pow(attempts.clamp(1, 6) as u32 - 1));
            let at = Utc::now() + chrono::Duration::from_std(backoff).unwrap_or_default();
            Outcome::Retry(refused.reason, at)
        }
    }
}
