//! `crm-customers migrate`: the Kubernetes init container. It migrates with
//! the owner role (read from a secret file, as mounted there), grants the
//! runtime role and exits; the service then runs without owner
//! credentials.

use std::process::Command;

#[tokio::test]
async fn the_migrate_subcommand_migrates_with_the_owner_role_and_exits() {
    let db = testkit::TestDatabase::create().await;
    let config = db.config();
    let secrets = std::env::temp_dir().join(format!("crm-migrate-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("url"), &config.url).unwrap();
    std::fs::write(
        secrets.join("migration-url"),
        config.migration_url.as_deref().unwrap(),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_crm-customers"))
        .arg("migrate")
        .env_clear()
        .env("CUSTOMERS_DATABASE_URL_FILE", secrets.join("url"))
        .env(
            "CUSTOMERS_MIGRATION_DATABASE_URL_FILE",
            secrets.join("migration-url"),
        )
        .env("NATS_URL", "nats://127.0.0.1:1")
        .env("CRM_JWT_PUBLIC_KEY", "unused by migrate")
        .output()
        .unwrap();
    std::fs::remove_dir_all(&secrets).unwrap();
    assert!(output.status.success(), "{output:?}");

    // The runtime role can use the migrated tables (granted), and only it
    // is needed from now on.
    let app = sqlx::PgPool::connect(&config.url).await.unwrap();
    let (contacts,): (i64,) = sqlx::query_as("SELECT count(*) FROM contacts")
        .fetch_one(&app)
        .await
        .unwrap();
    assert_eq!(contacts, 0);
    let (versions,): (i64,) = sqlx::query_as("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&db.admin_pool().await)
        .await
        .unwrap();
    assert_eq!(
        versions as usize,
        kit::db::migrator(&customers::MIGRATIONS).iter().count()
    );

    // Without the owner's URL, `migrate` refuses and says what it needs.
    let output = Command::new(env!("CARGO_BIN_EXE_crm-customers"))
        .arg("migrate")
        .env_clear()
        .env("CUSTOMERS_DATABASE_URL", &config.url)
        .env("NATS_URL", "nats://127.0.0.1:1")
        .env("CRM_JWT_PUBLIC_KEY", "unused by migrate")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("MIGRATION_DATABASE_URL"), "{stderr}");
}
