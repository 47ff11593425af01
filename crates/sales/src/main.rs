//! `crm-sales`: wiring only; see `lib.rs`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = match sales::config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(kit::config::EXIT_CONFIG);
        }
    };
    if kit::db::migrate_requested() {
        return kit::db::migrate_only(&config.service.database, &sales::MIGRATIONS).await;
    }
    sales::build(config).await?.run_until_signal().await
}
