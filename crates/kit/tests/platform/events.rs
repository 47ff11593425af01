//! Outbox -> JetStream -> inbox, with real servers.

use std::time::Duration;

use futures::StreamExt;
use kit::events::Event;
use kit::inbox::{ConsumerSpec, Outcome};
use kit::outbox::RelaySettings;
use prost::Message as _;
use testkit::eventually;
use uuid::Uuid;

use crate::common::{harness, spec, NoteAdded};

#[tokio::test]
async fn committed_events_reach_the_consumer_once_in_aggregate_order() {
    let h = harness().await;
    let tenant = Uuid::now_v7();
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    let mut expected = h.write_events(tenant, first, 1, &["a", "b", "c"]).await;
    expected.extend(h.write_events(tenant, second, 1, &["x"]).await);
    expected.extend(h.write_events(tenant, first, 4, &["d"]).await);

    // A rolled-back transaction leaves no event behind.
    let mut tx = h.database.begin_tenant(tenant).await.unwrap();
    h.outbox
        .enqueue(
            &mut tx,
            &kit::auth::CallerContext::system("kittest", tenant),
            first,
            99,
            &NoteAdded { body: "no".into() },
        )
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    let relay = h.relay(RelaySettings::default());
    assert_eq!(relay.try_once().await.unwrap(), 5);
    assert_eq!(
        relay.try_once().await.unwrap(),
        0,
        "published rows are not sent again"
    );

    // The envelope on the wire carries the CloudEvents attributes.
    let stream = h
        .jetstream
        .get_stream(h.naming.stream("kittest"))
        .await
        .unwrap();
    let raw = stream.get_raw_message(1).await.unwrap();
    let event = Event::decode(raw.payload.clone()).unwrap();
    assert_eq!(event.r#type, "crm.kittest.note.added.v1");
    assert_eq!(event.source, "crm.kittest");
    assert_eq!(event.tenant_id, tenant.to_string());
    assert_eq!(
        raw.subject.as_str(),
        h.naming.subject("crm.kittest.note.added")
    );
    assert_eq!(
        raw.headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .map(|v| v.as_str().to_owned()),
        Some(event.id.clone())
    );

    let consumer = h.consumer(spec()).await;
    let mut outcomes = Vec::new();
    while outcomes.len() < 5 {
        let batch = consumer
            .try_once(10, Duration::from_millis(500))
            .await
            .unwrap();
        assert!(!batch.is_empty(), "consumer starved after {outcomes:?}");
        outcomes.extend(batch);
    }
    assert!(outcomes.iter().all(|o| *o == Outcome::Applied));

    let pool = h.db.admin_pool().await;
    let applied: Vec<(Uuid, Uuid, i64)> = sqlx::query_as(
        "SELECT event_id, aggregate_id, aggregate_version FROM applied_events ORDER BY applied_seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut ids: Vec<Uuid> = applied.iter().map(|(id, _, _)| *id).collect();
    ids.sort();
    expected.sort();
    assert_eq!(ids, expected);
    let first_versions: Vec<i64> = applied
        .iter()
        .filter(|(_, a, _)| *a == first)
        .map(|(_, _, v)| *v)
        .collect();
    assert_eq!(first_versions, [1, 2, 3, 4]);
}

#[tokio::test]
async fn a_redelivered_event_is_not_applied_twice() {
    let h = harness().await;
    let tenant = Uuid::now_v7();
    h.write_events(tenant, Uuid::now_v7(), 1, &["once"]).await;
    h.relay(RelaySettings::default()).try_once().await.unwrap();

    let short_ack = ConsumerSpec {
        ack_wait: Duration::from_secs(1),
        ..spec()
    };
    let crashed = h.consumer(short_ack.clone()).await;
    // Receive and commit, then "crash": the message is never acknowledged.
    let stream = h
        .jetstream
        .get_stream(h.naming.stream("kittest"))
        .await
        .unwrap();
    let pull = stream
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>(crashed.durable_name())
        .await
        .unwrap();
    let mut batch = pull
        .fetch()
        .max_messages(1)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .unwrap();
    let message = batch.next().await.expect("a message").unwrap();
    assert_eq!(crashed.apply(&message).await.unwrap(), Outcome::Applied);
    drop(message);
    drop(crashed);

    // After the restart the server redelivers it; the inbox recognises it.
    let restarted = h.consumer(short_ack).await;
    let outcome = eventually(
        "the unacknowledged event to be redelivered",
        Duration::from_secs(15),
        || async {
            restarted
                .try_once(1, Duration::from_millis(300))
                .await
                .unwrap()
                .first()
                .copied()
        },
    )
    .await;
    assert_eq!(outcome, Outcome::Duplicate);
    assert_eq!(h.count("SELECT count(*) FROM applied_events").await, 1);
    assert!(
        restarted
            .try_once(1, Duration::from_millis(1500))
            .await
            .unwrap()
            .is_empty(),
        "acked after the duplicate"
    );
}

#[tokio::test]
async fn a_failing_event_is_dead_lettered_and_the_consumer_moves_on() {
    let h = harness().await;
    let tenant = Uuid::now_v7();
    let poison = h.write_events(tenant, Uuid::now_v7(), 1, &["poison"]).await[0];
    let good = h.write_events(tenant, Uuid::now_v7(), 1, &["fine"]).await[0];
    h.relay(RelaySettings::default()).try_once().await.unwrap();

    let consumer = h
        .consumer(ConsumerSpec {
            max_attempts: 3,
            ..spec()
        })
        .await;
    let mut outcomes = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !outcomes.contains(&Outcome::DeadLettered) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "poison event not dead-lettered: {outcomes:?}"
        );
        outcomes.extend(
            consumer
                .try_once(10, Duration::from_millis(200))
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Retrying).count(),
        2,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Applied).count(),
        1,
        "{outcomes:?}"
    );

    let applied: Vec<(Uuid,)> = sqlx::query_as("SELECT event_id FROM applied_events")
        .fetch_all(&h.db.admin_pool().await)
        .await
        .unwrap();
    assert_eq!(applied, [(good,)]);

    let dlq = h
        .jetstream
        .get_stream(h.naming.stream("dlq"))
        .await
        .unwrap();
    let dead = dlq.get_raw_message(1).await.unwrap();
    assert_eq!(
        Event::decode(dead.payload.clone()).unwrap().id,
        poison.to_string()
    );
    assert_eq!(
        dead.headers
            .get("Crm-Error")
            .map(|v| v.as_str().to_owned())
            .as_deref(),
        Some("poison note")
    );
}

/// Event history is bounded (the erasure guarantee rests on it): a stream
/// made without an age limit gets the configured one at the next start.
#[tokio::test]
async fn domain_streams_keep_events_only_up_to_the_configured_age() {
    let h = harness().await;
    let name = h.naming.stream("kittest");
    let stream = h.jetstream.get_stream(&name).await.unwrap();
    let configured = h.nats.config().max_age;
    assert_eq!(stream.cached_info().config.max_age, configured);

    let mut unbounded = stream.cached_info().config.clone();
    unbounded.max_age = Duration::ZERO;
    h.jetstream.update_stream(unbounded).await.unwrap();
    kit::streams::ensure_domain_stream(&h.jetstream, &h.naming, &h.nats.config(), "kittest")
        .await
        .unwrap();
    let stream = h.jetstream.get_stream(&name).await.unwrap();
    assert_eq!(stream.cached_info().config.max_age, configured);
}

/// A batching consumer applies consecutive events of one tenant in one
/// transaction; a batch with a failing event is rolled back and applied
/// event by event, so the others land exactly once and the failing one is
/// retried and dead-lettered alone; a redelivered batch is recognised.
#[tokio::test]
async fn a_batch_lands_once_and_a_failing_event_in_it_falls_back_to_one_by_one() {
    let h = harness().await;
    let (north, south) = (Uuid::now_v7(), Uuid::now_v7());
    let mut good = h
        .write_events(north, Uuid::now_v7(), 1, &["a", "b", "c"])
        .await;
    let poison = h.write_events(north, Uuid::now_v7(), 1, &["poison"]).await[0];
    good.extend(h.write_events(north, Uuid::now_v7(), 1, &["d"]).await);
    good.extend(h.write_events(south, Uuid::now_v7(), 1, &["e", "f"]).await);
    h.relay(RelaySettings::default()).try_once().await.unwrap();

    let consumer = h
        .consumer(
            ConsumerSpec {
                max_attempts: 2,
                ..spec()
            }
            .batched(10),
        )
        .await;
    let mut outcomes = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !outcomes.contains(&Outcome::DeadLettered) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "poison event not dead-lettered: {outcomes:?}"
        );
        outcomes.extend(
            consumer
                .try_once(10, Duration::from_millis(200))
                .await
                .unwrap(),
        );
    }
    let applied = outcomes.iter().filter(|o| **o == Outcome::Applied).count();
    assert_eq!(applied, good.len(), "{outcomes:?}");
    let mut landed: Vec<Uuid> = sqlx::query_as::<_, (Uuid,)>("SELECT event_id FROM applied_events")
        .fetch_all(&h.db.admin_pool().await)
        .await
        .unwrap()
        .into_iter()
        .map(|(id,)| id)
        .collect();
    landed.sort();
    good.sort();
    assert_eq!(landed, good, "every good event once, the poison one never");
    assert!(!landed.contains(&poison));

    // Events applied as a batch, then delivered again (published once more
    // without their message ids, as after a relay crash): duplicates.
    let batch: Vec<Uuid> = h.write_events(south, Uuid::now_v7(), 1, &["g", "h"]).await;
    h.relay(RelaySettings::default()).try_once().await.unwrap();
    let next = |what: &'static str| {
        let consumer = &consumer;
        eventually(what, Duration::from_secs(10), move || async move {
            let outcomes = consumer
                .try_once(10, Duration::from_millis(200))
                .await
                .unwrap();
            (!outcomes.is_empty()).then_some(outcomes)
        })
    };
    assert_eq!(
        next("the new batch").await,
        [Outcome::Applied, Outcome::Applied]
    );
    let mut stream = h
        .jetstream
        .get_stream(h.naming.stream("kittest"))
        .await
        .unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    for seq in [last - 1, last] {
        let message = stream.get_raw_message(seq).await.unwrap();
        h.jetstream
            .publish(message.subject.clone(), message.payload.clone())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    assert_eq!(
        next("the redelivered batch").await,
        [Outcome::Duplicate, Outcome::Duplicate]
    );
    assert_eq!(
        h.count("SELECT count(*) FROM applied_events").await,
        (good.len() + batch.len()) as i64,
        "each good event applied once"
    );
}
