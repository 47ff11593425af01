//! Outbound webhooks.
//!
//! The gateway consumes the services' domain events with a durable inbox
//! consumer (exactly-once into its database): each event becomes one
//! delivery per subscribed endpoint. A dispatcher sends due deliveries as
//! signed JSON, leasing each for a minute so a pod that dies mid-send leaves
//! it to another, and retries failures with doubling delays until
//! [`MAX_ATTEMPTS`]. Delivery is at least once: receivers deduplicate by the
//! `id` of the event.
//!
//! Signature: `Crm-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>" keyed with the endpoint's secret>`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::Utc;
use kit::db::{set_tenant, Database, TenantTx};
use kit::events::Event;
use kit::inbox::EventHandler;
use kit::Shutdown;
use prost::Message as _;
use uuid::Uuid;

use crm_proto::crm::customers::v1::ContactErased;
use crm_proto::events::DomainEvent;

use crate::store::webhooks;
use kit::egress::EgressPolicy;

pub const MAX_ATTEMPTS: i32 = 8;
const LEASE: Duration = Duration::from_secs(60);
/// Tenants served per dispatch round.
const TENANTS_PER_ROUND: i64 = 64;
/// Deliveries per tenant per round: a tenant with thousands due waits its
/// turn instead of holding everyone else's.
const PER_TENANT: i64 = 4;
/// Requests in flight at once per dispatcher.
const CONCURRENT_SENDS: usize = 32;

/// Turns each event into deliveries for the endpoints subscribed to it.
pub struct WebhookFanout;

impl EventHandler for WebhookFanout {
    async fn handle(&self, tx: &mut TenantTx, event: &Event) -> anyhow::Result<()> {
        let tenant = Uuid::parse_str(&event.tenant_id)?;
        let event_id = Uuid::parse_str(&event.id)?;
        // Sensitive operations are audited by the service where they
        // happen; the tenant's audit log here gathers them.
        if event.r#type.ends_with(".audit.recorded.v1") {
            let record =
                crm_proto::crm::customers::v1::AuditRecorded::decode(event.data.as_slice())?;
            crate::store::audit::record(
                tx,
                tenant,
                &event.actor,
                &record.action,
                &record.target,
                serde_json::json!({"source": event.source, "event_id": event.id}),
            )
            .await?;
        }
        // An erased contact's events still waiting to be sent are not sent.
        if event.r#type == <ContactErased as DomainEvent>::TYPE {
            webhooks::cancel_pending_about(tx, tenant, &event.subject).await?;
        }
        for hook in webhooks::subscribed(tx, tenant, &event.r#type).await? {
            webhooks::enqueue(tx, tenant, hook, event_id, event).await?;
        }
        Ok(())
    }
}

/// The JSON body sent for an event: the CloudEvents attributes and the
/// protobuf payload (decode with `data_schema` from `proto/`).
pub fn body(event: &Event) -> serde_json::Value {
    let mut body = kit::events::to_json(event, data_json(event));
    body["data_base64"] = base64::engine::general_purpose::STANDARD
        .encode(&event.data)
        .into();
    body
}

/// The payload as JSON, for every event type: decoded by its
/// `data_schema` from the contracts' descriptors, in the same canonical
/// mapping the REST API uses (null for a schema this gateway does not know).
fn data_json(event: &Event) -> serde_json::Value {
    crate::http::transcode::message::json_of_bytes(&event.data_schema, &event.data)
}

pub use kit::egress::signature;

#[derive(Clone)]
pub struct Dispatcher {
    db: Database,
    http: reqwest::Client,
    retry: kit::retry::Backoff,
    egress: Arc<EgressPolicy>,
}

impl Dispatcher {
    pub fn new(db: Database, retry_base: Duration, egress: EgressPolicy) -> anyhow::Result<Self> {
        let egress = Arc::new(egress);
        // Names resolve only to permitted addresses, and no redirect is
        // followed: the connection goes where the check said it may.
        let http = egress.client(Duration::from_secs(10))?;
        Ok(Self {
            db,
            http,
            retry: kit::retry::Backoff::doubling(retry_base, MAX_ATTEMPTS),
            egress,
        })
    }

    /// Sends the deliveries due now, fairly: up to [`TENANTS_PER_ROUND`]
    /// tenants with due work, at most [`PER_TENANT`] deliveries each, sent
    /// [`CONCURRENT_SENDS`] at a time. One tenant's slow or failing
    /// endpoints take only its own share of a round, and one attempt's
    /// error does not abandon the others. Returns how many were due.
    pub async fn try_once(&self) -> anyhow::Result<usize> {
        use futures::StreamExt as _;
        // Lease the batch and commit, so no transaction stays open while
        // remote endpoints answer.
        let mut tx = self.db.pool().begin().await?;
        let due = webhooks::lock_due_fairly(&mut tx, TENANTS_PER_ROUND, PER_TENANT).await?;
        let ids: Vec<Uuid> = due.iter().map(|(_, delivery)| *delivery).collect();
        sqlx::query("UPDATE webhook_queue SET next_attempt = now() + make_interval(secs => $2) WHERE delivery_id = ANY($1)")
            .bind(&ids)
            .bind(LEASE.as_secs_f64())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let attempts = futures::stream::iter(due.iter().copied())
            .map(|(tenant, delivery)| async move {
                if let Err(error) = self.attempt(tenant, delivery).await {
                    // Left leased: tried again when the lease ends.
                    tracing::warn!(error = format!("{error:#}"), %delivery, "webhook attempt failed");
                }
            })
            .buffer_unordered(CONCURRENT_SENDS);
        attempts.collect::<Vec<()>>().await;
        Ok(due.len())
    }

    async fn attempt(&self, tenant: Uuid, delivery_id: Uuid) -> anyhow::Result<()> {
        let mut tx = self.db.pool().begin().await?;
        set_tenant(&mut tx, tenant).await?;
        let delivery = webhooks::delivery(&mut tx, tenant, delivery_id).await?;
        let hook = match &delivery {
            Some(d) => webhooks::find(&mut tx, tenant, d.webhook_id).await?,
            None => None,
        };
        let (Some(delivery), Some(hook)) = (delivery, hook) else {
            // The endpoint was removed: nothing left to send.
            sqlx::query("DELETE FROM webhook_queue WHERE tenant_id = $1 AND delivery_id = $2")
                .bind(tenant)
                .bind(delivery_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(());
        };
        tx.commit().await?;

        let event = Event::decode(delivery.envelope.as_slice())?;
        let payload = serde_json::to_vec(&body(&event))?;
        let timestamp = Utc::now().timestamp();
        // Checked again at every delivery: DNS may have changed since the
        // endpoint was registered (IP literals never reach the resolver).
        let sent = match self.egress.check_url(&hook.url).await {
            Err(reason) => Err(format!("not sent: the URL {reason}")),
            Ok(()) => self
                .http
                .post(&hook.url)
                .header("content-type", "application/json")
                .header("crm-event-id", &event.id)
                .header("crm-event-type", &event.r#type)
                .header(
                    "crm-signature",
                    signature(&hook.secret, timestamp, &payload),
                )
                .body(payload)
                .send()
                .await
                .map_err(|error| error.without_url().to_string()),
        };
        let (code, error, delivered) = match sent {
            Ok(response) if response.status().is_success() => {
                (Some(i32::from(response.status().as_u16())), None, true)
            }
            Ok(response) => (
                Some(i32::from(response.status().as_u16())),
                Some(format!("HTTP {}", response.status())),
                false,
            ),
            Err(error) => (None, Some(error), false),
        };
        let attempts = delivery.attempts + 1;
        let next = match self.retry.after(attempts) {
            Some(delay) if !delivered => Some(
                Utc::now()
                    + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1)),
            ),
            _ => None,
        };
        let mut tx = self.db.pool().begin().await?;
        set_tenant(&mut tx, tenant).await?;
        webhooks::record_attempt(
            &mut tx,
            tenant,
            delivery_id,
            code,
            error.as_deref(),
            delivered,
            next,
        )
        .await?;
        tx.commit().await?;
        metrics::counter!("crm_webhook_attempts_total", "delivered" => delivered.to_string())
            .increment(1);
        Ok(())
    }

    pub async fn run(self, shutdown: Shutdown) {
        while !shutdown.is_cancelled() {
            let pause = match self.try_once().await {
                Ok(0) => Duration::from_millis(250),
                Ok(_) => Duration::ZERO,
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "webhook dispatch failed");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }
}
