//! Row-level security: the second wall between tenants.

use kit::config::DatabaseConfig;
use kit::db::Database;
use uuid::Uuid;

use crate::common::{harness, MIGRATIONS};

#[tokio::test]
async fn a_query_without_tenant_filter_sees_only_the_scoped_tenant() {
    let h = harness().await;
    let (tenant_a, tenant_b) = (Uuid::now_v7(), Uuid::now_v7());
    for (tenant, body) in [(tenant_a, "a1"), (tenant_a, "a2"), (tenant_b, "b1")] {
        let mut tx = h.database.begin_tenant(tenant).await.unwrap();
        sqlx::query("INSERT INTO notes (tenant_id, id, body) VALUES ($1, $2, $3)")
            .bind(tenant)
            .bind(Uuid::now_v7())
            .bind(body)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    // The query forgets its WHERE tenant_id: RLS still scopes it.
    let mut tx = h.database.begin_tenant(tenant_a).await.unwrap();
    let mut bodies: Vec<(String,)> = sqlx::query_as("SELECT body FROM notes")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    bodies.sort();
    assert_eq!(bodies, [("a1".to_owned(),), ("a2".to_owned(),)]);

    // Writing a row of another tenant from tenant A's transaction is refused.
    let foreign = sqlx::query("INSERT INTO notes (tenant_id, id, body) VALUES ($1, $2, 'x')")
        .bind(tenant_b)
        .bind(Uuid::now_v7())
        .execute(&mut *tx)
        .await;
    assert!(
        foreign.is_err(),
        "row of tenant B written under tenant A's scope"
    );
    tx.rollback().await.unwrap();

    // Without any tenant scope nothing is visible, not everything.
    let unscoped: Vec<(String,)> = sqlx::query_as("SELECT body FROM notes")
        .fetch_all(h.database.pool())
        .await
        .unwrap();
    assert!(unscoped.is_empty());

    // The scope is transaction-local: it does not leak to the next user of
    // the pooled connection.
    for _ in 0..5 {
        let leaked: Vec<(String,)> = sqlx::query_as("SELECT body FROM notes")
            .fetch_all(h.database.pool())
            .await
            .unwrap();
        assert!(leaked.is_empty());
    }
    assert_eq!(h.count("SELECT count(*) FROM notes").await, 3);
}

#[tokio::test]
async fn a_runtime_role_that_bypasses_rls_is_refused() {
    let h = harness().await;
    let admin_url = h.db.config().migration_url.unwrap();
    let config = DatabaseConfig {
        url: admin_url,
        migration_url: None,
        max_connections: 2,
    };
    let error = Database::connect(&config, &kit::db::migrator(&MIGRATIONS))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("superuser or BYPASSRLS"),
        "{error}"
    );
}

/// A runaway query in a tenant transaction is cancelled by the database
/// after the statement timeout, instead of holding its pooled connection
/// long after the request that asked for it gave up; the pool goes on.
#[tokio::test]
async fn tenant_transactions_time_out_runaway_statements() {
    let h = harness().await;
    let database = h
        .database
        .clone()
        .with_statement_timeout(std::time::Duration::from_millis(200));
    let tenant = Uuid::now_v7();
    let show = || async {
        let (setting,): (String,) = sqlx::query_as("SHOW statement_timeout")
            .fetch_one(database.pool())
            .await
            .unwrap();
        setting
    };
    let server_default = show().await;
    let mut tx = database.begin_tenant(tenant).await.unwrap();
    let error = sqlx::query("SELECT pg_sleep(5)")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("statement timeout"), "{error}");
    drop(tx);
    // The setting is local to that transaction: the connection is clean.
    assert_eq!(show().await, server_default);
}

/// One tenant holds at most three quarters of the pool: its next
/// transaction waits for one of its own, while another tenant still gets a
/// connection at once.
#[tokio::test]
async fn one_tenant_cannot_take_every_pooled_connection() {
    let db = testkit::TestDatabase::create().await;
    let config = DatabaseConfig {
        max_connections: 4,
        ..db.config()
    };
    let database = Database::connect(&config, &kit::db::migrator(&MIGRATIONS))
        .await
        .unwrap();
    let (busy, other) = (Uuid::now_v7(), Uuid::now_v7());
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(database.begin_tenant(busy).await.unwrap());
    }
    let (sender, mut fourth) = tokio::sync::oneshot::channel();
    let waiting = database.clone();
    tokio::spawn(async move {
        let _ = sender.send(waiting.begin_tenant(busy).await.map(|_| ()));
    });
    // The busy tenant's fourth transaction does not take the last connection...
    let waited = tokio::time::timeout(std::time::Duration::from_millis(300), &mut fourth).await;
    assert!(
        waited.is_err(),
        "the fourth transaction of one tenant waits"
    );
    // ...which another tenant gets at once.
    let mut tx = database.begin_tenant(other).await.unwrap();
    let (one,): (i32,) = sqlx::query_as("SELECT 1")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(one, 1);
    drop(tx);
    // When one of the busy tenant's transactions ends, its fourth goes on.
    held.pop();
    let begun = tokio::time::timeout(std::time::Duration::from_secs(5), fourth)
        .await
        .expect("the fourth transaction begins once a slot is free");
    begun.unwrap().unwrap();
}

/// sqlx speaks TLS, so `sslmode` in a database URL is honoured (managed
/// PostgreSQL services require it). On a server with SSL on, `require`
/// gives an encrypted session; on one with SSL off, it is refused by the
/// server, not by a client built without TLS.
#[tokio::test]
async fn database_urls_honour_sslmode() {
    let db = testkit::TestDatabase::create().await;
    let admin = db.admin_pool().await;
    let (ssl,): (String,) = sqlx::query_as("SHOW ssl").fetch_one(&admin).await.unwrap();
    let base = db.config().url;
    let joiner = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{joiner}sslmode=require");
    let connected = sqlx::PgPool::connect(&url).await;
    if ssl == "on" {
        let pool = connected.expect("an encrypted session");
        let (encrypted,): (bool,) =
            sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert!(encrypted);
    } else {
        let refused = connected
            .expect_err("no TLS on the server: refused")
            .to_string();
        assert!(!refused.contains("without TLS support"), "{refused}");
    }
}

/// A snapshot transaction reads one moment, scoped to its tenant, and
/// writes nothing: a row committed meanwhile is not seen by its next
/// statement.
#[tokio::test]
async fn a_snapshot_reads_one_moment_of_its_tenant_and_writes_nothing() {
    let h = harness().await;
    let (tenant, other) = (Uuid::now_v7(), Uuid::now_v7());
    let write = |tenant: Uuid, body: &'static str| {
        let database = h.database.clone();
        async move {
            let mut tx = database.begin_tenant(tenant).await.unwrap();
            sqlx::query("INSERT INTO notes (tenant_id, id, body) VALUES ($1, $2, $3)")
                .bind(tenant)
                .bind(Uuid::now_v7())
                .bind(body)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    };
    write(tenant, "before").await;
    write(other, "theirs").await;
    let mut snapshot = h.database.begin_tenant_snapshot(tenant).await.unwrap();
    let count = "SELECT count(*) FROM notes";
    let (seen,): (i64,) = sqlx::query_as(count)
        .fetch_one(&mut *snapshot)
        .await
        .unwrap();
    assert_eq!(seen, 1, "its tenant's rows only");
    write(tenant, "after").await;
    let (again,): (i64,) = sqlx::query_as(count)
        .fetch_one(&mut *snapshot)
        .await
        .unwrap();
    assert_eq!(
        again, 1,
        "the row committed meanwhile is not in the snapshot"
    );
    let refused = sqlx::query("INSERT INTO notes (tenant_id, id, body) VALUES ($1, $2, 'x')")
        .bind(tenant)
        .bind(Uuid::now_v7())
        .execute(&mut *snapshot)
        .await;
    assert!(refused.is_err(), "a snapshot writes nothing");
    let mut fresh = h.database.begin_tenant(tenant).await.unwrap();
    let (now,): (i64,) = sqlx::query_as(count).fetch_one(&mut *fresh).await.unwrap();
    assert_eq!(now, 2);
}
