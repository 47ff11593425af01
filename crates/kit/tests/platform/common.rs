use std::time::Duration;

use async_nats::jetstream;
use kit::auth::CallerContext;
use kit::db::{Database, TenantTx};
use kit::events::{decode_data, DomainEvent, Event, Naming};
use kit::inbox::{ConsumerSpec, EventHandler, InboxConsumer};
use kit::outbox::{Outbox, OutboxRelay, RelaySettings};
use testkit::{TestDatabase, TestNats};
use uuid::Uuid;

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./tests/migrations");

/// Test event payload.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NoteAdded {
    #[prost(string, tag = "1")]
    pub body: String,
}

impl DomainEvent for NoteAdded {
    const TYPE: &'static str = "crm.kittest.note.added.v1";
    const SCHEMA: &'static str = "kittest.NoteAdded";
}

pub struct Harness {
    pub db: TestDatabase,
    pub database: Database,
    pub nats: TestNats,
    pub jetstream: jetstream::Context,
    pub naming: Naming,
    pub outbox: Outbox,
}

pub async fn harness() -> Harness {
    harness_on(TestNats::new()).await
}

pub async fn harness_on(nats: TestNats) -> Harness {
    let db = TestDatabase::create().await;
    let database = Database::connect(&db.config(), &kit::db::migrator(&MIGRATIONS))
        .await
        .expect("connect database");
    let client = nats.client().await;
    let jetstream = jetstream::new(client);
    let naming = nats.naming();
    kit::streams::ensure_domain_stream(&jetstream, &naming, &nats.config(), "kittest")
        .await
        .expect("stream");
    Harness {
        db,
        database,
        nats,
        jetstream,
        naming,
        outbox: Outbox::new("kittest"),
    }
}

impl Harness {
    pub fn relay(&self, settings: RelaySettings) -> OutboxRelay {
        OutboxRelay::new(
            self.database.pool().clone(),
            self.jetstream.clone(),
            self.naming.clone(),
            settings,
        )
    }

    pub async fn consumer(&self, spec: ConsumerSpec) -> InboxConsumer<RecordingHandler> {
        InboxConsumer::create(
            self.database.clone(),
            self.jetstream.clone(),
            self.naming.clone(),
            &self.nats.config(),
            spec,
            RecordingHandler,
        )
        .await
        .expect("create consumer")
    }

    /// Writes `bodies` as events of one aggregate, one transaction, versions
    /// starting at `first_version`.
    pub async fn write_events(
        &self,
        tenant: Uuid,
        aggregate: Uuid,
        first_version: i64,
        bodies: &[&str],
    ) -> Vec<Uuid> {
        let caller = CallerContext::system("kittest", tenant);
        let mut tx = self.database.begin_tenant(tenant).await.expect("begin");
        let mut ids = Vec::new();
        for (offset, body) in bodies.iter().enumerate() {
            let id = self
                .outbox
                .enqueue(
                    &mut tx,
                    &caller,
                    aggregate,
                    first_version + offset as i64,
                    &NoteAdded {
                        body: body.to_string(),
                    },
                )
                .await
                .expect("enqueue");
            ids.push(id);
        }
        tx.commit().await.expect("commit");
        ids
    }

    /// Count of rows in `table` as the admin sees them (all tenants).
    pub async fn count(&self, sql: &str) -> i64 {
        let pool = self.db.admin_pool().await;
        let (count,): (i64,) = sqlx::query_as(sql).fetch_one(&pool).await.expect("count");
        pool.close().await;
        count
    }
}

pub fn spec() -> ConsumerSpec {
    ConsumerSpec {
        ack_wait: Duration::from_secs(30),
        retry_delay: Duration::from_millis(50),
        ..ConsumerSpec::new("kittest-consumer", "kittest")
    }
}

/// Records each applied event; fails on notes whose body is `poison`.
pub struct RecordingHandler;

impl EventHandler for RecordingHandler {
    async fn handle(&self, tx: &mut TenantTx, event: &Event) -> anyhow::Result<()> {
        let note: NoteAdded = decode_data(event)?;
        if note.body == "poison" {
            anyhow::bail!("poison note");
        }
        sqlx::query(
                "INSERT INTO applied_events (tenant_id, event_id, aggregate_id, aggregate_version) VALUES ($1, $2, $3, $4)",
            )
            .bind(Uuid::parse_str(&event.tenant_id)?)
            .bind(Uuid::parse_str(&event.id)?)
            .bind(Uuid::parse_str(&event.subject)?)
            .bind(event.aggregate_version)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}
