//! Stream provisioning: each producing service owns one JetStream stream,
//! `CRM_<DOMAIN>` on `crm.<domain>.>`, created or updated at start so
//! deployments need no manual NATS set-up. Dead letters of every consumer go
//! to `CRM_DLQ` on `crm.dlq.>`.

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};

use crate::config::NatsConfig;
use crate::events::Naming;

/// Creates the stream of `domain`, or brings an existing one to the
/// configured subjects, replicas, duplicate window and age limit.
pub async fn ensure_domain_stream(
    jetstream: &jetstream::Context,
    naming: &Naming,
    nats: &NatsConfig,
    domain: &str,
) -> anyhow::Result<()> {
    let config = stream::Config {
        name: naming.stream(domain),
        subjects: vec![naming.subject(&format!("crm.{domain}.>"))],
        storage: stream::StorageType::File,
        num_replicas: nats.stream_replicas,
        // Covers the relay's longest retry, so a re-sent event is dropped.
        duplicate_window: nats.duplicate_window,
        // Event history is bounded: an erased person's events leave it
        // within this age (see ADR 0013).
        max_age: nats.max_age,
        ..Default::default()
    };
    ensure(jetstream, config).await
}

/// Creates the dead-letter stream shared by all consumers.
pub async fn ensure_dead_letter_stream(
    jetstream: &jetstream::Context,
    naming: &Naming,
    nats: &NatsConfig,
) -> anyhow::Result<()> {
    let config = stream::Config {
        name: naming.stream("dlq"),
        subjects: vec![naming.subject("crm.dlq.>")],
        storage: stream::StorageType::File,
        num_replicas: nats.stream_replicas,
        max_age: nats.max_age,
        ..Default::default()
    };
    ensure(jetstream, config).await
}

async fn ensure(jetstream: &jetstream::Context, config: stream::Config) -> anyhow::Result<()> {
    let name = config.name.clone();
    match jetstream.get_stream(&name).await {
        Ok(existing) => {
            let current = &existing.cached_info().config;
            if current.subjects != config.subjects
                || current.num_replicas != config.num_replicas
                || current.duplicate_window != config.duplicate_window
                || current.max_age != config.max_age
            {
                jetstream
                    .update_stream(config)
                    .await
                    .with_context(|| format!("updating stream {name}"))?;
            }
        }
        Err(_) => {
            // Another pod may create it at the same moment; its config is ours.
            if let Err(error) = jetstream.create_stream(config).await {
                jetstream
                    .get_stream(&name)
                    .await
                    .with_context(|| format!("creating stream {name}: {error}"))?;
            }
        }
    }
    Ok(())
}
