//! `crm-servicedesk`: wiring only; see `lib.rs`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = match servicedesk::config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(kit::config::EXIT_CONFIG);
        }
    };
    if kit::db::migrate_requested() {
        return kit::db::migrate_only(&config.service.database, &servicedesk::MIGRATIONS).await;
    }
    servicedesk::build(config).await?.run_until_signal().await
}
