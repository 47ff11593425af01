//! `crm-reporting`: wiring only; see `lib.rs`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = match reporting::config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(kit::config::EXIT_CONFIG);
        }
    };
    if kit::db::migrate_requested() {
        return kit::db::migrate_only(&config.service.database, &reporting::MIGRATIONS).await;
    }
    reporting::build(config).await?.run_until_signal().await
}
