//! Inbox consumer: applies each event exactly once.
//!
//! A durable JetStream pull consumer (`<consumer-service>--<stream>`) feeds
//! events to an [`EventHandler`]. Each event is applied inside one database
//! transaction, scoped to the event's tenant, that also records the event id
//! in `processed_events`; the message is acknowledged only after that commit.
//! A crash before the ack redelivers the event, the recorded id is found,
//! and the event is acknowledged without being applied again.
//!
//! A consumer may apply a batch of consecutive events of one tenant in one
//! transaction ([`ConsumerSpec::batch`]): each still records its id, and
//! the messages are acknowledged after the commit. If any event of the
//! batch fails, the batch is rolled back and its events are applied one
//! by one as above.
//!
//! A failing event is retried with growing delays; after `max_attempts`
//! deliveries it is published to `crm.dlq.<consumer>` with the error, and
//! the consumer moves on.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::pull, AckKind};
use futures::StreamExt;
use prost::Message as _;
use tracing::Instrument;
use uuid::Uuid;

use crate::config::NatsConfig;
use crate::db::{Database, TenantTx};
use crate::events::{Event, Naming};
use crate::{streams, telemetry, Shutdown};

/// Applies one event inside the consumer's transaction.
pub trait EventHandler: Send + Sync + 'static {
    /// Applies `event`; writes go through `tx`, which is already scoped to
    /// the event's tenant. Returning an error rolls everything back and the
    /// event is retried. Events of types the handler does not know should
    /// return `Ok(())`.
    fn handle<'a>(
        &'a self,
        tx: &'a mut TenantTx,
        event: &'a Event,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'a;
}

/// What a consumer reads and how hard it retries.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// The consuming service, e.g. `sales`.
    pub consumer: String,
    /// The producing domain whose stream is read, e.g. `customers`.
    pub domain: String,
    /// Subject filter without prefix, e.g. `crm.customers.contact.*`; empty
    /// reads the whole stream.
    pub filter_subject: String,
    pub max_attempts: i64,
    /// Redelivery delay after the first failure, doubled each time.
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
    /// How long an unacknowledged message waits before redelivery.
    pub ack_wait: Duration,
    /// The most consecutive events of one tenant applied in one
    /// transaction; 1 applies each alone. Only for handlers whose every
    /// effect is in the transaction: a failed batch is rolled back and
    /// applied again event by event.
    pub batch: usize,
}

impl ConsumerSpec {
    pub fn new(consumer: &str, domain: &str) -> Self {
        Self {
            consumer: consumer.to_owned(),
            domain: domain.to_owned(),
            filter_subject: String::new(),
            max_attempts: 5,
            retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(60),
            ack_wait: Duration::from_secs(30),
            batch: 1,
        }
    }

    /// This spec applying up to `events` events per transaction.
    pub fn batched(self, events: usize) -> Self {
        Self {
            batch: events.max(1),
            ..self
        }
    }

    /// Durable consumer name: `<consumer-service>--<stream>`.
    pub fn durable_name(&self, naming: &Naming) -> String {
        format!("{}--{}", self.consumer, naming.stream(&self.domain))
    }
}

/// What happened to one delivered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Already applied before (a redelivery); acknowledged, not re-applied.
    Duplicate,
    /// Dead-lettered: undecodable, or failed `max_attempts` times.
    DeadLettered,
    /// Failed; will be redelivered.
    Retrying,
}

pub struct InboxConsumer<H> {
    db: Database,
    jetstream: jetstream::Context,
    naming: Naming,
    spec: ConsumerSpec,
    durable: String,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    handler: H,
}

impl<H: EventHandler> InboxConsumer<H> {
    /// Creates (or re-attaches to) the durable consumer and the dead-letter
    /// stream. The producing stream must exist.
    pub async fn create(
        db: Database,
        jetstream: jetstream::Context,
        naming: Naming,
        nats: &NatsConfig,
        spec: ConsumerSpec,
        handler: H,
    ) -> anyhow::Result<Self> {
        streams::ensure_dead_letter_stream(&jetstream, &naming, nats).await?;
        streams::ensure_domain_stream(&jetstream, &naming, nats, &spec.domain).await?;
        let durable = spec.durable_name(&naming);
        let stream = jetstream
            .get_stream(naming.stream(&spec.domain))
            .await
            .context("getting source stream")?;
        let filter_subject = if spec.filter_subject.is_empty() {
            String::new()
        } else {
            naming.subject(&spec.filter_subject)
        };
        let consumer = stream
            .get_or_create_consumer(
                &durable,
                pull::Config {
                    durable_name: Some(durable.clone()),
                    filter_subject,
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: spec.ack_wait,
                    // Dead-lettering is ours; the server never drops a message.
                    max_deliver: -1,
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("creating consumer {durable}"))?;
        Ok(Self {
            db,
            jetstream,
            naming,
            spec,
            durable,
            consumer,
            handler,
        })
    }

    pub fn durable_name(&self) -> &str {
        &self.durable
    }

    /// Fetches up to `max` messages, waiting at most `wait` for the first,
    /// and handles each. Returns the outcome of each message received.
    pub async fn try_once(&self, max: usize, wait: Duration) -> anyhow::Result<Vec<Outcome>> {
        let mut messages = self
            .consumer
            .fetch()
            .max_messages(max)
            .expires(wait)
            .messages()
            .await
            .context("fetching")?;
        let mut received = Vec::new();
        while let Some(message) = messages.next().await {
            received.push(
                message
                    .map_err(|e| anyhow::anyhow!(e))
                    .context("receiving")?,
            );
        }
        let mut outcomes = Vec::with_capacity(received.len());
        for run in tenant_runs(&received, self.spec.batch) {
            if run.len() > 1 {
                if let Some(applied) = self.apply_batch(run).await {
                    for (message, outcome) in run.iter().zip(applied) {
                        message.ack().await.map_err(|e| anyhow::anyhow!(e))?;
                        self.count(outcome);
                        outcomes.push(outcome);
                    }
                    continue;
                }
            }
            for message in run {
                outcomes.push(self.handle_message(message).await?);
            }
        }
        Ok(outcomes)
    }

    /// Applies `run` (events of one tenant) in one transaction: each
    /// event's outcome, or none if one failed (nothing is kept then).
    async fn apply_batch(&self, run: &[jetstream::Message]) -> Option<Vec<Outcome>> {
        let tenant = tenant_of(&run[0])?;
        let attempt = async {
            let mut tx = self.db.begin_tenant(tenant).await?;
            let mut outcomes = Vec::with_capacity(run.len());
            for message in run {
                let event = Event::decode(message.payload.clone())?;
                let span = self.span(&event);
                outcomes.push(self.apply_in(&mut tx, &event).instrument(span).await?);
            }
            tx.commit().await?;
            anyhow::Ok(outcomes)
        };
        match attempt.await {
            Ok(outcomes) => Some(outcomes),
            Err(error) => {
                tracing::info!(consumer = %self.durable, events = run.len(), error = format!("{error:#}"), "batch failed; applying its events one by one");
                None
            }
        }
    }

    fn span(&self, event: &Event) -> tracing::Span {
        let span = tracing::info_span!("event.consume", consumer = %self.durable, event.r#type = %event.r#type, event.id = %event.id, otel.kind = "consumer");
        telemetry::set_remote_parent(&span, &event.trace_parent);
        span
    }

    /// Records the event in the inbox and applies it, unless recorded
    /// before.
    async fn apply_in(&self, tx: &mut TenantTx, event: &Event) -> anyhow::Result<Outcome> {
        let event_id = Uuid::parse_str(&event.id).context("event id is not a UUID")?;
        let inserted = sqlx::query(
            "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(&self.durable)
        .bind(event_id)
        .execute(&mut **tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(Outcome::Duplicate);
        }
        self.handler.handle(tx, event).await?;
        Ok(Outcome::Applied)
    }

    fn count(&self, outcome: Outcome) {
        metrics::counter!("crm_inbox_events_total", "consumer" => self.durable.clone(), "outcome" => format!("{outcome:?}"))
            .increment(1);
    }

    /// Applies one message and acknowledges it as its outcome requires.
    pub async fn handle_message(&self, message: &jetstream::Message) -> anyhow::Result<Outcome> {
        let delivered = message.info().map(|info| info.delivered).unwrap_or(1);
        let outcome = match self.apply(message).await {
            Ok(outcome) => {
                message.ack().await.map_err(|e| anyhow::anyhow!(e))?;
                outcome
            }
            Err(ApplyError::Poison(reason)) => {
                self.dead_letter(message, &reason).await?;
                Outcome::DeadLettered
            }
            Err(ApplyError::Failed(error)) if delivered >= self.spec.max_attempts => {
                self.dead_letter(message, &format!("{error:#}")).await?;
                Outcome::DeadLettered
            }
            Err(ApplyError::Failed(error)) => {
                let delay = self.retry_delay(delivered);
                tracing::warn!(consumer = %self.durable, attempt = delivered, error = format!("{error:#}"), "event failed; will retry");
                message
                    .ack_with(AckKind::Nak(Some(delay)))
                    .await
                    .map_err(|e| anyhow::anyhow!(e))?;
                Outcome::Retrying
            }
        };
        self.count(outcome);
        Ok(outcome)
    }

    /// Applies the event and commits, without acknowledging it. Exposed so
    /// tests can stop between commit and ack, as a crash would.
    pub async fn apply(&self, message: &jetstream::Message) -> Result<Outcome, ApplyError> {
        let event = Event::decode(message.payload.clone())
            .map_err(|error| ApplyError::Poison(format!("undecodable event envelope: {error}")))?;
        Uuid::parse_str(&event.id)
            .map_err(|_| ApplyError::Poison("event id is not a UUID".into()))?;
        let tenant = Uuid::parse_str(&event.tenant_id)
            .map_err(|_| ApplyError::Poison("event tenant_id is not a UUID".into()))?;
        let span = self.span(&event);
        async {
            let mut tx = self
                .db
                .begin_tenant(tenant)
                .await
                .map_err(|e| ApplyError::Failed(e.into()))?;
            let outcome = self
                .apply_in(&mut tx, &event)
                .await
                .map_err(ApplyError::Failed)?;
            if outcome == Outcome::Applied {
                tx.commit()
                    .await
                    .map_err(|e| ApplyError::Failed(e.into()))?;
            }
            Ok(outcome)
        }
        .instrument(span)
        .await
    }

    fn retry_delay(&self, delivered: i64) -> Duration {
        let exponent = (delivered.max(1) - 1).min(16) as u32;
        (self.spec.retry_delay * 2u32.pow(exponent)).min(self.spec.max_retry_delay)
    }

    async fn dead_letter(&self, message: &jetstream::Message, reason: &str) -> anyhow::Result<()> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Crm-Error",
            reason.chars().take(1000).collect::<String>().as_str(),
        );
        headers.insert("Crm-Original-Subject", message.subject.as_str());
        headers.insert("Crm-Consumer", self.durable.as_str());
        let subject = self
            .naming
            .subject(&format!("crm.dlq.{}", self.spec.consumer));
        self.jetstream
            .publish_with_headers(subject, headers, message.payload.clone())
            .await
            .context("publishing dead letter")?
            .await
            .context("dead letter not stored")?;
        tracing::error!(consumer = %self.durable, reason, "event dead-lettered");
        message
            .ack_with(AckKind::Term)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        Ok(())
    }

    /// Consumes until `shutdown`. A message interrupted mid-way is not acked,
    /// so it is redelivered and the inbox keeps it from applying twice.
    pub async fn run(self, shutdown: Shutdown) {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            let step = tokio::select! {
                result = self.try_once(100, Duration::from_secs(5)) => result,
                _ = shutdown.cancelled() => break,
            };
            match step {
                Ok(_) => backoff = Duration::from_millis(100),
                Err(error) => {
                    tracing::warn!(consumer = %self.durable, error = format!("{error:#}"), "consumer step failed");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// The tenant of a message's event, if it decodes.
fn tenant_of(message: &jetstream::Message) -> Option<Uuid> {
    let event = Event::decode(message.payload.clone()).ok()?;
    Uuid::parse_str(&event.tenant_id).ok()
}

/// `received` cut into runs of consecutive messages of one tenant, at most
/// `batch` long; a message whose tenant cannot be read is a run of its own.
fn tenant_runs(received: &[jetstream::Message], batch: usize) -> Vec<&[jetstream::Message]> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut tenant = None;
    for (i, message) in received.iter().enumerate() {
        let this = tenant_of(message);
        if i > start && (this.is_none() || this != tenant || i - start >= batch.max(1)) {
            runs.push(&received[start..i]);
            start = i;
        }
        tenant = this;
    }
    if start < received.len() {
        runs.push(&received[start..]);
    }
    runs
}

/// Why applying an event failed.
#[derive(Debug)]
pub enum ApplyError {
    /// The message can never be applied (not an event); dead-letter it now.
    Poison(String),
    /// Applying failed this time; retry.
    Failed(anyhow::Error),
}
