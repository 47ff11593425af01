//! Database access: pool, migrations, and tenant-scoped transactions.
//!
//! Tenant isolation has two walls. Every query filters on `tenant_id`, and
//! every tenant table is under a row-level security policy (created by
//! `crm_enable_tenant_rls` in migrations) that reads `app.tenant_id`. The
//! setting is made with `set_config(..., true)`, the transaction-local form:
//! a plain `SET` would survive COMMIT and leak to the next user of the pooled
//! connection.
//!
//! Migrations run as the owner role under sqlx's advisory lock, so only one
//! pod migrates. The runtime role gets plain DML grants and is refused at
//! start if it could bypass row-level security.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgConnection, PgPool, Postgres, Transaction};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::config::DatabaseConfig;

/// The platform's own migrations (outbox, inbox, RLS helper). Their versions
/// are below 1000; service migrations start at 1000.
static PLATFORM_MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Joins the platform migrations with a service's, in version order.
pub fn migrator(service: &Migrator) -> Migrator {
    let mut migrations: Vec<_> = PLATFORM_MIGRATIONS
        .migrations
        .iter()
        .chain(service.migrations.iter())
        .cloned()
        .collect();
    migrations.sort_by_key(|m| m.version);
    Migrator {
        migrations: Cow::Owned(migrations),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    }
}

/// A transaction scoped to one tenant: row-level security sees only that
/// tenant's rows for the transaction's whole life. It holds one of the
/// tenant's connection slots until it ends.
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
    _slot: OwnedSemaphorePermit,
}

impl TenantTx {
    pub async fn commit(self) -> sqlx::Result<()> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> sqlx::Result<()> {
        self.tx.rollback().await
    }
}

impl Deref for TenantTx {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for TenantTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

/// How many pooled connections one tenant may hold at once: three quarters
/// of the pool (at least one), so a tenant's burst of slow queries leaves
/// connections for everyone else.
fn tenant_share(pool_size: u32) -> usize {
    ((pool_size as usize * 3) / 4).max(1)
}

/// The connection slots of each tenant currently using the database.
#[derive(Debug, Default)]
struct TenantSlots {
    by_tenant: Mutex<HashMap<Uuid, Arc<Semaphore>>>,
}

impl TenantSlots {
    fn of(&self, tenant: Uuid, share: usize) -> Arc<Semaphore> {
        let mut by_tenant = self.by_tenant.lock().unwrap_or_else(|e| e.into_inner());
        if by_tenant.len() >= 4096 {
            // Forget tenants with no transaction open.
            by_tenant.retain(|_, slots| slots.available_permits() < share);
        }
        by_tenant
            .entry(tenant)
            .or_insert_with(|| Arc::new(Semaphore::new(share)))
            .clone()
    }
}

#[derive(Clone, Debug)]
pub struct Database {
    pool: PgPool,
    slots: Arc<TenantSlots>,
    /// `statement_timeout` of every tenant transaction: a query outlives
    /// the request that asked for it by at most this, so an abandoned
    /// request cannot hold a pooled connection with a runaway query.
    statement_timeout: Duration,
}

/// Statement timeout of a [`Database`] until a service sets its own.
const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

impl Database {
    /// Migrates (when a migration URL is configured), grants the runtime
    /// role its privileges, checks that role cannot bypass RLS, and opens
    /// the pool.
    pub async fn connect(config: &DatabaseConfig, migrator: &Migrator) -> anyhow::Result<Self> {
        let runtime_options: PgConnectOptions = config
            .url
            .parse()
            .context("DATABASE_URL is not a valid PostgreSQL URL")?;
        let runtime_role = runtime_options.get_username().to_owned();
        if let Some(migration_url) = &config.migration_url {
            migrate(migration_url, migrator, &runtime_role).await?;
        }
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(Duration::from_secs(5))
            // No ping before every acquire (a round trip per request): a
            // connection the server dropped fails its next query, which the
            // caller sees as UNAVAILABLE and retries, and the pool discards it.
            .test_before_acquire(false)
            .connect_with(runtime_options.log_statements(tracing::log::LevelFilter::Trace))
            .await
            .context("connecting to the service database with DATABASE_URL")?;
        check_runtime_role(&pool).await?;
        Ok(Self::from_pool(pool))
    }

    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            slots: Arc::default(),
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
        }
    }

    /// Sets the statement timeout of tenant transactions (services use
    /// their request deadline).
    pub fn with_statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Begins a transaction in which row-level security admits only `tenant`.
    /// Its statements time out after the database's statement timeout.
    /// A tenant already holding its share of connections waits for one of
    /// its own to end (up to the pool's acquire timeout), not for the pool.
    pub async fn begin_tenant(&self, tenant: Uuid) -> sqlx::Result<TenantTx> {
        self.begin_tenant_as(tenant, "BEGIN").await
    }

    /// [`Database::begin_tenant`] for reads that must agree with each
    /// other: every statement sees one snapshot (REPEATABLE READ, READ
    /// ONLY), so an answer of several queries is as of one moment even
    /// while writers commit.
    pub async fn begin_tenant_snapshot(&self, tenant: Uuid) -> sqlx::Result<TenantTx> {
        self.begin_tenant_as(tenant, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
    }

    async fn begin_tenant_as(&self, tenant: Uuid, begin: &str) -> sqlx::Result<TenantTx> {
        let share = tenant_share(self.pool.options().get_max_connections());
        let slots = self.slots.of(tenant, share);
        let slot = tokio::time::timeout(
            self.pool.options().get_acquire_timeout(),
            slots.acquire_owned(),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
        .map_err(|_| sqlx::Error::PoolClosed)?;
        // BEGIN and both settings (local to the transaction) in one round
        // trip. Formatted, not bound: the values are a UUID and a number,
        // never text from a request.
        let begin = format!(
            "{begin}; SELECT set_config('app.tenant_id', '{tenant}', true), \
             set_config('statement_timeout', '{}ms', true)",
            self.statement_timeout.as_millis()
        );
        let tx = self.pool.begin_with(begin).await?;
        Ok(TenantTx { tx, _slot: slot })
    }

    /// Readiness probe: can a query run now?
    pub async fn ping(&self) -> bool {
        matches!(
            tokio::time::timeout(
                Duration::from_secs(2),
                sqlx::query("SELECT 1").execute(&self.pool)
            )
            .await,
            Ok(Ok(_))
        )
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Scopes an open transaction to `tenant` (transaction-local setting).
pub async fn set_tenant(tx: &mut Transaction<'_, Postgres>, tenant: Uuid) -> sqlx::Result<()> {
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Whether the binary was started as `<binary> migrate`: run the
/// migrations and exit (a Kubernetes init container with the owner's
/// credentials), so application containers need only the runtime role.
pub fn migrate_requested() -> bool {
    std::env::args().nth(1).as_deref() == Some("migrate")
}

/// Runs the platform's and `service`'s migrations with
/// `MIGRATION_DATABASE_URL` and grants the runtime role of `DATABASE_URL`.
pub async fn migrate_only(config: &DatabaseConfig, service: &Migrator) -> anyhow::Result<()> {
    let Some(migration_url) = &config.migration_url else {
        anyhow::bail!("`migrate` needs MIGRATION_DATABASE_URL (the owner role)");
    };
    let runtime_options: PgConnectOptions = config
        .url
        .parse()
        .context("DATABASE_URL is not a valid PostgreSQL URL")?;
    migrate(
        migration_url,
        &migrator(service),
        runtime_options.get_username(),
    )
    .await?;
    tracing::info!("migrations done");
    Ok(())
}

async fn migrate(
    migration_url: &str,
    migrator: &Migrator,
    runtime_role: &str,
) -> anyhow::Result<()> {
    let owner = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect(migration_url)
        .await
        .context("connecting with MIGRATION_DATABASE_URL")?;
    migrator.run(&owner).await.context("running migrations")?;
    let role = quote_identifier(runtime_role);
    // Re-granted at every start so tables added by new migrations are covered.
    for statement in [
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"),
        format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"),
        format!("REVOKE ALL ON _sqlx_migrations FROM {role}"),
    ] {
        sqlx::query(&statement)
            .execute(&owner)
            .await
            .with_context(|| format!("granting: {statement}"))?;
    }
    owner.close().await;
    Ok(())
}

async fn check_runtime_role(pool: &PgPool) -> anyhow::Result<()> {
    let (name, superuser, bypass): (String, bool, bool) = sqlx::query_as(
        "SELECT rolname::text, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(pool)
    .await
    .context("reading the runtime role")?;
    if superuser || bypass {
        anyhow::bail!(
            "database role {name:?} in DATABASE_URL is superuser or BYPASSRLS: row-level security would not \
             isolate tenants; use a plain role (MIGRATION_DATABASE_URL may use the owner)"
        );
    }
    Ok(())
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
