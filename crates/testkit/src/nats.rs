//! NATS for tests: a private prefix on the shared server, or a server
//! process of the test's own that it can kill and restart.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use kit::config::NatsConfig;

/// A unique subject/stream prefix on a NATS server; its streams are deleted
/// when the guard drops.
pub struct TestNats {
    url: String,
    prefix: String,
}

impl TestNats {
    /// A prefix on the server at `NATS_URL` (default `nats://127.0.0.1:4222`).
    pub fn new() -> Self {
        Self::on(std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()))
    }

    /// A prefix on the server at `url`.
    pub fn on(url: String) -> Self {
        let prefix = format!("t{}", &uuid::Uuid::now_v7().simple().to_string()[16..]);
        Self { url, prefix }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn config(&self) -> NatsConfig {
        NatsConfig {
            url: self.url.clone(),
            prefix: self.prefix.clone(),
            stream_replicas: 1,
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }

    pub fn naming(&self) -> kit::events::Naming {
        kit::events::Naming::new(self.prefix.clone())
    }

    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach NATS at {}: {e}", self.url))
    }

    /// Waits (up to 15 s) until an event of `event_type` about `subject`
    /// (its aggregate id) is on `domain`'s stream, and returns it.
    pub async fn event(
        &self,
        domain: &str,
        event_type: &str,
        subject: &str,
    ) -> crm_proto::crm::common::v1::Event {
        use prost::Message as _;
        let jetstream = async_nats::jetstream::new(self.client().await);
        let stream_name = self.naming().stream(domain);
        crate::eventually(
            &format!("event {event_type} about {subject}"),
            Duration::from_secs(15),
            || {
                let jetstream = jetstream.clone();
                let stream_name = stream_name.clone();
                async move {
                    let stream = jetstream.get_stream(&stream_name).await.ok()?;
                    let last = stream.get_info().await.ok()?.state.last_sequence;
                    for sequence in (1..=last).rev() {
                        let Ok(raw) = stream.get_raw_message(sequence).await else {
                            continue;
                        };
                        let event =
                            crm_proto::crm::common::v1::Event::decode(raw.payload.clone()).ok()?;
                        if event.r#type == event_type && event.subject == subject {
                            return Some(event);
                        }
                    }
                    None
                }
            },
        )
        .await
    }
}

impl TestNats {
    /// Publishes `payload` as another service's outbox would: an event of
    /// `tenant` about `aggregate` (version 1) on its domain's stream, which
    /// a consumer under test created. For tests of consumers whose
    /// producer is not started.
    pub async fn publish<E: kit::events::DomainEvent>(
        &self,
        tenant: uuid::Uuid,
        aggregate: uuid::Uuid,
        payload: &E,
    ) -> crm_proto::crm::common::v1::Event {
        use prost::Message as _;
        let event = crm_proto::crm::common::v1::Event {
            id: uuid::Uuid::now_v7().to_string(),
            r#type: payload.event_type().to_owned(),
            source: "test".into(),
            tenant_id: tenant.to_string(),
            subject: aggregate.to_string(),
            aggregate_version: 1,
            occurred_at: Some(kit::time::to_timestamp(chrono::Utc::now())),
            actor: "test".into(),
            trace_parent: String::new(),
            data: payload.encode_to_vec(),
            data_schema: E::SCHEMA.to_owned(),
        };
        let jetstream = async_nats::jetstream::new(self.client().await);
        let subject = self
            .naming()
            .subject(kit::events::subject_of(payload.event_type()));
        jetstream
            .send_publish(
                subject,
                async_nats::jetstream::message::PublishMessage::build()
                    .payload(event.encode_to_vec().into())
                    .message_id(event.id.clone()),
            )
            .await
            .expect("published")
            .await
            .expect("acknowledged");
        event
    }

    /// Waits (up to 60 s) until `expected` events of `event_type` are on
    /// `domain`'s stream, then returns all of them in stream order (so a
    /// caller can also see any beyond `expected`).
    pub async fn events(
        &self,
        domain: &str,
        event_type: &str,
        expected: usize,
    ) -> Vec<crm_proto::crm::common::v1::Event> {
        use async_nats::jetstream::consumer::{pull, AckPolicy};
        use prost::Message as _;
        let jetstream = async_nats::jetstream::new(self.client().await);
        let stream_name = self.naming().stream(domain);
        let subject = self.naming().subject(kit::events::subject_of(event_type));
        let stream = crate::eventually(
            &format!("{expected} events {event_type}"),
            Duration::from_secs(60),
            || {
                let (jetstream, stream_name, subject) =
                    (jetstream.clone(), stream_name.clone(), subject.clone());
                async move {
                    let stream = jetstream.get_stream(&stream_name).await.ok()?;
                    let mut counts = stream.info_with_subjects(&subject).await.ok()?;
                    let mut on_stream = 0;
                    while let Some(Ok((_, count))) = counts.next().await {
                        on_stream += count;
                    }
                    (on_stream >= expected).then_some(stream)
                }
            },
        )
        .await;
        let consumer = stream
            .create_consumer(pull::Config {
                filter_subject: subject,
                ack_policy: AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .expect("create a reading consumer");
        let pending = consumer.cached_info().num_pending as usize;
        let mut messages = consumer
            .messages()
            .await
            .expect("read the stream")
            .take(pending);
        let mut events = Vec::with_capacity(pending);
        while let Some(message) = messages.next().await {
            let message = message.expect("a stream message");
            events.push(
                crm_proto::crm::common::v1::Event::decode(message.payload.clone())
                    .expect("an event envelope"),
            );
        }
        events
    }
}

impl Default for TestNats {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        let url = self.url.clone();
        let stream_prefix = format!("{}_", self.prefix.to_ascii_uppercase());
        crate::block_on_side_thread(async move {
            let connect = async_nats::ConnectOptions::new()
                .connection_timeout(Duration::from_secs(2))
                .connect(&url);
            let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(3), connect).await else {
                return;
            };
            let jetstream = async_nats::jetstream::new(client);
            let names: Vec<String> = jetstream
                .stream_names()
                .filter_map(|n| async { n.ok() })
                .collect()
                .await;
            for name in names.into_iter().filter(|n| n.starts_with(&stream_prefix)) {
                let _ = jetstream.delete_stream(&name).await;
            }
        });
    }
}

/// A `nats-server` process owned by one test, with JetStream storing into a
/// private directory. Killed (and its directory removed) on drop.
pub struct NatsServer {
    port: u16,
    store: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server on a free port and waits until it accepts connections.
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let store =
            std::env::temp_dir().join(format!("crm-nats-{}", uuid::Uuid::now_v7().simple()));
        let mut server = Self {
            port,
            store,
            child: None,
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same port and store.
    pub async fn restart(&mut self) {
        self.kill();
        let child = Command::new(binary())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start nats-server ({}): {e}; set NATS_SERVER_BIN",
                    binary().display()
                )
            });
        self.child = Some(child);
        crate::eventually(
            "nats-server to accept connections",
            Duration::from_secs(10),
            || async {
                tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
    }
}

fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("NATS_SERVER_BIN") {
        return path.into();
    }
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            "/usr/sbin".into(),
            "/usr/local/bin".into(),
            "/usr/bin".into(),
        ])
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| "nats-server".into())
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}
