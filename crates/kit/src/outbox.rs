//! Transactional outbox: a state change and its event commit together.
//!
//! Services call [`Outbox::enqueue`] inside the transaction that changes the
//! aggregate; the event row commits or rolls back with the change. The
//! [`OutboxRelay`] publishes committed rows to JetStream with `Nats-Msg-Id` =
//! event id, then marks them published. A crash between publish and mark
//! re-sends the event later; the stream's duplicate window and the
//! consumers' inbox drop the copy.
//!
//! Invariants:
//! - Events of one aggregate are published in commit (`seq`) order. A batch
//!   is sent in waves: wave *k* holds the *k*-th event of each aggregate in
//!   the batch, and a failed publish holds back the aggregate's later events
//!   until the next pass.
//! - Only one relay per database publishes at a time (transaction-scoped
//!   advisory lock), so several pods never interleave an aggregate's events.

use std::collections::{HashMap, HashSet};
use std::future::IntoFuture;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, message::PublishMessage};
use chrono::Utc;
use futures::future::join_all;
use prost::Message as _;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::CallerContext;
use crate::events::{subject_of, DomainEvent, Event, Naming};
use crate::telemetry;
use crate::Shutdown;

/// Writes events into the outbox of the current transaction.
#[derive(Debug, Clone)]
pub struct Outbox {
    source: String,
}

impl Outbox {
    /// `service` is the producing service, e.g. `customers`; events carry
    /// `source = crm.customers`.
    pub fn new(service: &str) -> Self {
        Self {
            source: format!("crm.{service}"),
        }
    }

    /// Adds `payload` as an event about `aggregate_id` (now at
    /// `aggregate_version`) to the transaction. Returns the event id.
    pub async fn enqueue<E: DomainEvent>(
        &self,
        tx: &mut sqlx::PgConnection,
        caller: &CallerContext,
        aggregate_id: Uuid,
        aggregate_version: i64,
        payload: &E,
    ) -> sqlx::Result<Uuid> {
        let ids = self
            .enqueue_many(tx, caller, [(aggregate_id, aggregate_version, payload)])
            .await?;
        Ok(ids[0])
    }

    /// Adds one event per `(aggregate id, version, payload)` in a single
    /// statement (bulk import writes thousands per transaction). Each is an
    /// ordinary event, as if enqueued one by one in this order.
    pub async fn enqueue_many<'p, E: DomainEvent + 'p>(
        &self,
        tx: &mut sqlx::PgConnection,
        caller: &CallerContext,
        events: impl IntoIterator<Item = (Uuid, i64, &'p E)>,
    ) -> sqlx::Result<Vec<Uuid>> {
        let now = Utc::now();
        let occurred_at = Some(prost_types::Timestamp {
            seconds: now.timestamp(),
            nanos: now.timestamp_subsec_nanos() as i32,
        });
        let trace_parent = telemetry::current_traceparent();
        let (mut ids, mut aggregates, mut versions, mut subjects, mut envelopes) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (aggregate_id, aggregate_version, payload) in events {
            let id = Uuid::now_v7();
            let event = Event {
                id: id.to_string(),
                r#type: payload.event_type().to_owned(),
                source: self.source.clone(),
                tenant_id: caller.tenant_id.to_string(),
                subject: aggregate_id.to_string(),
                aggregate_version,
                occurred_at,
                actor: caller.subject.clone(),
                trace_parent: trace_parent.clone(),
                data: payload.encode_to_vec(),
                data_schema: E::SCHEMA.to_owned(),
            };
            ids.push(id);
            aggregates.push(aggregate_id);
            versions.push(aggregate_version);
            subjects.push(subject_of(payload.event_type()));
            envelopes.push(event.encode_to_vec());
        }
        if ids.is_empty() {
            return Ok(ids);
        }
        // `seq` follows the order of the arrays, so an aggregate's events
        // keep the order they were given in.
        sqlx::query(
            "INSERT INTO outbox (event_id, tenant_id, aggregate_id, aggregate_version, subject, envelope, trace_parent)
             SELECT e.id, $1, e.aggregate, e.version, e.subject, e.envelope, $7
               FROM unnest($2::uuid[], $3::uuid[], $4::bigint[], $5::text[], $6::bytea[])
                    WITH ORDINALITY AS e (id, aggregate, version, subject, envelope, n)
              ORDER BY e.n",
        )
        .bind(caller.tenant_id)
        .bind(&ids)
        .bind(&aggregates)
        .bind(&versions)
        .bind(&subjects)
        .bind(&envelopes)
        .bind(trace_parent)
        .execute(&mut *tx)
        .await?;
        Ok(ids)
    }
}

/// Settings of the relay loop.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub batch_size: i64,
    /// Fallback poll when no NOTIFY arrives (e.g. the listener reconnects).
    pub poll_interval: Duration,
    /// Longest wait between retries while NATS or PostgreSQL is down.
    pub max_backoff: Duration,
    /// How long published rows are kept.
    pub retention: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5),
            retention: Duration::from_secs(24 * 3600),
        }
    }
}

/// Publishes committed outbox rows to JetStream.
#[derive(Clone)]
pub struct OutboxRelay {
    pool: PgPool,
    jetstream: jetstream::Context,
    naming: Naming,
    settings: RelaySettings,
}

struct PendingRow {
    seq: i64,
    event_id: Uuid,
    aggregate_id: Uuid,
    subject: String,
    envelope: Vec<u8>,
    trace_parent: String,
}

/// Arbitrary constant naming the relay's advisory lock.
const RELAY_LOCK_KEY: i64 = 0x0c12_0b0c;

impl OutboxRelay {
    pub fn new(
        pool: PgPool,
        jetstream: jetstream::Context,
        naming: Naming,
        settings: RelaySettings,
    ) -> Self {
        Self {
            pool,
            jetstream,
            naming,
            settings,
        }
    }

    /// Publishes at most one batch. Returns how many events were published;
    /// progress made before a failure is kept, and the failure returned.
    pub async fn try_once(&self) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await.context("outbox relay: begin")?;
        let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1)")
            .bind(RELAY_LOCK_KEY)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(0); // another relay is publishing
        }
        let rows: Vec<(i64, Uuid, Uuid, String, Vec<u8>, String)> = sqlx::query_as(
            "SELECT seq, event_id, aggregate_id, subject, envelope, trace_parent
               FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1",
        )
        .bind(self.settings.batch_size)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let rows: Vec<PendingRow> = rows
            .into_iter()
            .map(
                |(seq, event_id, aggregate_id, subject, envelope, trace_parent)| PendingRow {
                    seq,
                    event_id,
                    aggregate_id,
                    subject,
                    envelope,
                    trace_parent,
                },
            )
            .collect();

        let (published, failure) = self.publish_in_waves(&rows).await;
        if !published.is_empty() {
            sqlx::query("UPDATE outbox SET published_at = now() WHERE seq = ANY($1)")
                .bind(&published)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await.context("outbox relay: commit")?;
        metrics::counter!("crm_outbox_published_total").increment(published.len() as u64);
        match failure {
            Some(error) => Err(error.context(format!(
                "published {} of {} events",
                published.len(),
                rows.len()
            ))),
            None => Ok(published.len()),
        }
    }

    /// Sends each wave pipelined and awaits its acks together. Returns the
    /// seqs acknowledged by the stream and the first failure.
    async fn publish_in_waves(&self, rows: &[PendingRow]) -> (Vec<i64>, Option<anyhow::Error>) {
        let mut waves: Vec<Vec<&PendingRow>> = Vec::new();
        let mut seen: HashMap<Uuid, usize> = HashMap::new();
        for row in rows {
            let wave = seen.entry(row.aggregate_id).or_insert(0);
            if waves.len() <= *wave {
                waves.push(Vec::new());
            }
            waves[*wave].push(row);
            *wave += 1;
        }
        let mut published = Vec::with_capacity(rows.len());
        let mut held_back: HashSet<Uuid> = HashSet::new();
        let mut failure = None;
        for wave in waves {
            let mut sent = Vec::with_capacity(wave.len());
            for row in wave {
                if held_back.contains(&row.aggregate_id) {
                    continue;
                }
                let mut publish = PublishMessage::build()
                    .payload(row.envelope.clone().into())
                    .message_id(row.event_id.to_string())
                    .header("Crm-Event-Id", row.event_id.to_string().as_str());
                if !row.trace_parent.is_empty() {
                    publish = publish.header("traceparent", row.trace_parent.as_str());
                }
                match self
                    .jetstream
                    .send_publish(self.naming.subject(&row.subject), publish)
                    .await
                {
                    Ok(ack) => sent.push((row, ack)),
                    Err(error) => {
                        held_back.insert(row.aggregate_id);
                        failure.get_or_insert_with(|| {
                            anyhow::Error::new(error).context("sending to jetstream")
                        });
                    }
                }
            }
            let (sent_rows, pending_acks): (Vec<_>, Vec<_>) = sent.into_iter().unzip();
            let acks = join_all(pending_acks.into_iter().map(IntoFuture::into_future)).await;
            for (row, ack) in sent_rows.into_iter().zip(acks) {
                match ack {
                    Ok(_) => published.push(row.seq),
                    Err(error) => {
                        held_back.insert(row.aggregate_id);
                        failure.get_or_insert_with(|| {
                            anyhow::Error::new(error).context("waiting for jetstream ack")
                        });
                    }
                }
            }
            if failure.is_some() && published.is_empty() {
                break; // nothing gets through: stop early, retry later
            }
        }
        (published, failure)
    }

    /// Deletes published rows older than the retention period.
    pub async fn purge_published(&self) -> sqlx::Result<u64> {
        let cutoff = Utc::now()
            - chrono::Duration::from_std(self.settings.retention)
                .unwrap_or(chrono::Duration::days(1));
        let result = sqlx::query(
            "DELETE FROM outbox WHERE seq IN (
                SELECT seq FROM outbox WHERE published_at < $1 ORDER BY published_at LIMIT 10000)",
        )
        .bind(cutoff)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// Publishes until `shutdown`, woken by NOTIFY, with a poll fallback and
    /// backoff while NATS or PostgreSQL is down. On shutdown it flushes what
    /// is committed (bounded by a deadline) before returning.
    pub async fn run(self, shutdown: Shutdown) {
        let mut listener = None;
        let mut backoff = Duration::from_millis(50);
        let mut last_purge = tokio::time::Instant::now();
        loop {
            if shutdown.is_cancelled() {
                self.flush(Duration::from_secs(10)).await;
                return;
            }
            if listener.is_none() {
                listener = connect_listener(&self.pool).await;
            }
            match self.try_once().await {
                Ok(count) if count as i64 >= self.settings.batch_size => {
                    backoff = Duration::from_millis(50);
                    continue; // more waiting, no need to sleep
                }
                Ok(_) => {
                    backoff = Duration::from_millis(50);
                    if last_purge.elapsed() > Duration::from_secs(60) {
                        last_purge = tokio::time::Instant::now();
                        if let Err(error) = self.purge_published().await {
                            tracing::warn!(error = %error, "outbox purge failed");
                        }
                    }
                    wait_for_notify(&mut listener, self.settings.poll_interval, &shutdown).await;
                }
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        retry_in_ms = backoff.as_millis() as u64,
                        "outbox relay failed"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(self.settings.max_backoff);
                }
            }
        }
    }

    /// Publishes until the outbox is empty, an error occurs, or `deadline`.
    pub async fn flush(&self, deadline: Duration) {
        let result = tokio::time::timeout(deadline, async {
            loop {
                match self.try_once().await {
                    Ok(0) => return Ok(()),
                    Ok(_) => continue,
                    Err(error) => return Err(error),
                }
            }
        })
        .await;
        match result {
            Ok(Ok(())) => tracing::info!("outbox flushed"),
            Ok(Err(error)) => tracing::warn!(
                error = format!("{error:#}"),
                "outbox flush failed; events stay queued"
            ),
            Err(_) => tracing::warn!("outbox flush timed out; events stay queued"),
        }
    }
}

async fn connect_listener(pool: &PgPool) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(pool).await.ok()?;
    listener.listen("crm_outbox").await.ok()?;
    Some(listener)
}

async fn wait_for_notify(listener: &mut Option<PgListener>, poll: Duration, shutdown: &Shutdown) {
    let Some(active) = listener else {
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = shutdown.cancelled() => {}
        }
        return;
    };
    tokio::select! {
        received = tokio::time::timeout(poll, active.recv()) => {
            if let Ok(Err(_)) = received {
                *listener = None; // reconnect on the next turn
            }
        }
        _ = shutdown.cancelled() => {}
    }
}

/// Drops the published events about `aggregates` (an erasure: their
/// payloads may hold personal data). Unpublished ones still go out, so
/// consumers see every change up to the erasure.
pub async fn forget_published(
    tx: &mut sqlx::PgConnection,
    tenant: Uuid,
    aggregates: &[Uuid],
) -> sqlx::Result<u64> {
    let result = sqlx::query(
        "DELETE FROM outbox WHERE tenant_id = $1 AND aggregate_id = ANY($2) AND published_at IS NOT NULL",
    )
    .bind(tenant)
    .bind(aggregates)
    .execute(tx)
    .await?;
    Ok(result.rows_affected())
}
