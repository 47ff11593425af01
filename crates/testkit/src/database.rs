//! A PostgreSQL database created for one test and dropped after it.

use std::time::Duration;

use kit::config::DatabaseConfig;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

/// Runtime role used by tests: a plain role, so row-level security applies.
const APP_ROLE: &str = "crm_test_app";
const APP_PASSWORD: &str = "crm_test_app";

pub struct TestDatabase {
    name: String,
    admin: PgConnectOptions,
}

fn admin_url() -> String {
    std::env::var("CRM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl TestDatabase {
    /// Creates an empty database, and the shared plain runtime role if it
    /// does not exist yet.
    pub async fn create() -> Self {
        Self::create_on(&admin_url()).await
    }

    /// The same on the server at `admin_url` (e.g. a test's own [`crate::PgServer`]).
    pub async fn create_on(admin_url: &str) -> Self {
        let admin: PgConnectOptions = admin_url
            .parse()
            .expect("the admin URL is not a postgres URL");
        let mut connection = admin
            .connect()
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin_url}: {e}"));
        let name = format!("crm_test_{}", uuid::Uuid::now_v7().simple());
        let mut tx = connection.begin().await.expect("begin");
        // Serialise role creation between tests running in parallel.
        sqlx::query("SELECT pg_advisory_xact_lock(7242001)")
            .execute(&mut *tx)
            .await
            .expect("lock");
        let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_roles WHERE rolname = $1")
            .bind(APP_ROLE)
            .fetch_optional(&mut *tx)
            .await
            .expect("role lookup");
        if exists.is_none() {
            sqlx::query(&format!(
                "CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{APP_PASSWORD}' NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"
            ))
            .execute(&mut *tx)
            .await
            .expect("create test role");
        }
        tx.commit().await.expect("commit");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut connection)
            .await
            .expect("create database");
        Self { name, admin }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runtime URL (plain role) and migration URL (admin) of this database.
    pub fn config(&self) -> DatabaseConfig {
        DatabaseConfig {
            url: self.app_options().to_url_lossy().to_string(),
            migration_url: Some(
                self.admin
                    .clone()
                    .database(&self.name)
                    .to_url_lossy()
                    .to_string(),
            ),
            max_connections: 10,
        }
    }

    fn app_options(&self) -> PgConnectOptions {
        self.admin
            .clone()
            .username(APP_ROLE)
            .password(APP_PASSWORD)
            .database(&self.name)
    }

    /// A pool connected as the admin role (bypasses RLS): for test set-up
    /// and for checking what really is in the tables.
    pub async fn admin_pool(&self) -> sqlx::PgPool {
        PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(self.admin.clone().database(&self.name))
            .await
            .expect("admin pool")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        crate::block_on_side_thread(async move {
            if let Ok(mut connection) = admin.connect().await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut connection)
                    .await;
            }
        });
    }
}
