//! The one harness every service's tests start their services with.
//!
//! A [`Services`] owns one NATS prefix, one token issuer, a fresh database
//! per service and the running services. Dropping it stops the services
//! (their shutdown tokens are cancelled) before their databases and
//! streams are removed; [`Services::stop`] also waits for them to finish.

use std::collections::BTreeMap;
use std::future::Future;

use kit::auth::{BearerToken, Role, Visibility};
use kit::config::ServiceConfig;
use kit::service::RunningService;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::{service_config, TestDatabase, TestNats, TokenIssuer};

pub struct Services {
    // Declared first: fields drop in order, so the services are told to
    // stop before their databases and streams go.
    running: BTreeMap<String, (RunningService, Channel)>,
    databases: BTreeMap<String, TestDatabase>,
    pub nats: TestNats,
    pub issuer: TokenIssuer,
    /// The tenant a test's callers belong to unless it names another.
    pub tenant: Uuid,
}

impl Services {
    pub fn new() -> Self {
        Services {
            running: BTreeMap::new(),
            databases: BTreeMap::new(),
            nats: TestNats::new(),
            issuer: TokenIssuer::new(),
            tenant: Uuid::now_v7(),
        }
    }

    /// A configuration for service `name` on free ports, with a fresh
    /// database of its own (created on first use), this harness's NATS
    /// prefix and token issuer.
    pub async fn config(&mut self, name: &str) -> ServiceConfig {
        self.database(name).await;
        service_config(name, self.db(name), &self.nats, &self.issuer)
    }

    /// Component `name`'s database, created on first use (also for
    /// components that are not a [`RunningService`], like the gateway).
    pub async fn database(&mut self, name: &str) -> &TestDatabase {
        if !self.databases.contains_key(name) {
            let db = TestDatabase::create().await;
            self.databases.insert(name.to_owned(), db);
        }
        self.db(name)
    }

    /// Like [`Services::config`], with the database on the PostgreSQL
    /// server at `admin_url` (a server the test owns and may kill).
    pub async fn config_on(&mut self, name: &str, admin_url: &str) -> ServiceConfig {
        let db = TestDatabase::create_on(admin_url).await;
        self.databases.insert(name.to_owned(), db);
        service_config(name, self.db(name), &self.nats, &self.issuer)
    }

    /// Service `name`'s database (made by [`Services::config`]).
    pub fn db(&self, name: &str) -> &TestDatabase {
        match self.databases.get(name) {
            Some(db) => db,
            None => panic!("service {name} has no database"),
        }
    }

    /// Starts service `name` with `build` and connects a channel to it.
    pub async fn start<F>(&mut self, name: &str, build: F) -> Channel
    where
        F: Future<Output = anyhow::Result<RunningService>>,
    {
        match self.try_start(name, build).await {
            Ok(channel) => channel,
            Err(error) => panic!("{name} does not start: {error:#}"),
        }
    }

    /// [`Services::start`] for harnesses that retry (ports chosen before
    /// they are bound may be taken by another test in between).
    pub async fn try_start<F>(&mut self, name: &str, build: F) -> anyhow::Result<Channel>
    where
        F: Future<Output = anyhow::Result<RunningService>>,
    {
        let running = build.await?;
        let channel = Channel::from_shared(format!("http://{}", running.grpc_addr))?
            .connect()
            .await?;
        self.running
            .insert(name.to_owned(), (running, channel.clone()));
        Ok(channel)
    }

    /// The channel to running service `name`.
    pub fn channel(&self, name: &str) -> Channel {
        match self.running.get(name) {
            Some((_, channel)) => channel.clone(),
            None => panic!("service {name} is not running"),
        }
    }

    /// The URL of running service `name`, as other services are given it.
    pub fn url(&self, name: &str) -> String {
        match self.running.get(name) {
            Some((running, _)) => format!("http://{}", running.grpc_addr),
            None => panic!("service {name} is not running"),
        }
    }

    /// Removes service `name` from the harness, so a test can stop it.
    pub fn take(&mut self, name: &str) -> RunningService {
        match self.running.remove(name) {
            Some((running, _)) => running,
            None => panic!("service {name} is not running"),
        }
    }

    /// A bearer token for `user` of `tenant`.
    pub fn bearer(
        &self,
        tenant: Uuid,
        user: Uuid,
        roles: &[Role],
        visibility: Visibility,
        teams: &[Uuid],
    ) -> BearerToken {
        let mut claims = self.issuer.claims(tenant, user, roles, visibility);
        claims.teams = teams.to_vec();
        BearerToken::new(&self.issuer.sign(&claims)).expect("a signed token is a header value")
    }

    /// Waits until an event of `event_type` about `subject` (aggregate id)
    /// is on `domain`'s stream, and returns it.
    pub async fn event(
        &self,
        domain: &str,
        event_type: &str,
        subject: &str,
    ) -> crm_proto::crm::common::v1::Event {
        self.nats.event(domain, event_type, subject).await
    }

    /// Every event of `event_type` on `domain`'s stream, once at least
    /// `expected` are ([`crate::nats::TestNats::events`]).
    pub async fn events(
        &self,
        domain: &str,
        event_type: &str,
        expected: usize,
    ) -> Vec<crm_proto::crm::common::v1::Event> {
        self.nats.events(domain, event_type, expected).await
    }

    /// Publishes another service's event ([`crate::nats::TestNats::publish`]).
    pub async fn publish<E: kit::events::DomainEvent>(
        &self,
        tenant: uuid::Uuid,
        aggregate: uuid::Uuid,
        payload: &E,
    ) -> crm_proto::crm::common::v1::Event {
        self.nats.publish(tenant, aggregate, payload).await
    }

    /// Stops every service and waits until each has finished.
    pub async fn stop(mut self) {
        for (name, (running, _)) in std::mem::take(&mut self.running) {
            if let Err(error) = running.stop().await {
                panic!("{name} did not stop cleanly: {error:#}");
            }
        }
    }
}

impl Default for Services {
    fn default() -> Self {
        Self::new()
    }
}
