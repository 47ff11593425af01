//! NATS is killed and restarted while 10,000 events are being written; the
//! consumer side must end with every event exactly once, in aggregate order.

use std::collections::HashMap;
use std::time::Duration;

use kit::outbox::RelaySettings;
use testkit::{eventually, NatsServer, TestNats};
use uuid::Uuid;

use crate::common::{harness_on, spec};

const EVENTS: usize = 10_000;
const PER_TRANSACTION: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_exactly_once_across_a_nats_crash() {
    let mut server = NatsServer::start().await;
    let h = harness_on(TestNats::on(server.url())).await;
    let shutdown = kit::Shutdown::new();
    let relay = h.relay(RelaySettings {
        batch_size: 200,
        poll_interval: Duration::from_millis(200),
        max_backoff: Duration::from_millis(500),
        ..RelaySettings::default()
    });
    let relay_task = tokio::spawn(relay.clone().run(shutdown.clone()));
    let consumer = h.consumer(spec()).await;
    let consumer_task = tokio::spawn(consumer.run(shutdown.clone()));

    let tenant = Uuid::now_v7();
    let aggregates: Vec<Uuid> = (0..50).map(|_| Uuid::now_v7()).collect();
    let mut versions: HashMap<Uuid, i64> = HashMap::new();
    let bodies = ["n"; PER_TRANSACTION];
    for batch in 0..EVENTS / PER_TRANSACTION {
        let aggregate = aggregates[batch % aggregates.len()];
        let version = versions.entry(aggregate).or_insert(1);
        h.write_events(tenant, aggregate, *version, &bodies).await;
        *version += PER_TRANSACTION as i64;
        let written = (batch + 1) * PER_TRANSACTION;
        if written == 3_000 {
            server.kill(); // crash while the relay is busy
        }
        if written == 7_000 {
            server.restart().await;
        }
    }

    let applied = eventually(
        "all events applied after the crash",
        Duration::from_secs(180),
        || async {
            let count = h.count("SELECT count(*) FROM applied_events").await;
            (count >= EVENTS as i64).then_some(count)
        },
    )
    .await;
    shutdown.cancel();
    let _ = relay_task.await;
    let _ = consumer_task.await;

    assert_eq!(applied, EVENTS as i64);
    assert_eq!(
        h.count("SELECT count(DISTINCT event_id) FROM applied_events")
            .await,
        EVENTS as i64
    );
    assert_eq!(
        h.count("SELECT count(*) FROM outbox o WHERE NOT EXISTS (SELECT 1 FROM applied_events a WHERE a.event_id = o.event_id)").await,
        0,
        "every outbox event was applied"
    );
    // Per aggregate, versions were applied in increasing order.
    assert_eq!(
        h.count(
            "SELECT count(*) FROM (
                SELECT aggregate_version < lag(aggregate_version) OVER (PARTITION BY aggregate_id ORDER BY applied_seq) AS backwards
                FROM applied_events) t WHERE backwards"
        )
        .await,
        0,
        "an aggregate's events were applied out of order"
    );
}
