//! `crm-customers`: wiring only; see `lib.rs`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = customers::config::from_env()
        .and_then(|config| Ok((config, customers::config::import_limits_from_env()?)));
    let (config, import_limits) = match config {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(kit::config::EXIT_CONFIG);
        }
    };
    if kit::db::migrate_requested() {
        return kit::db::migrate_only(&config.database, &customers::MIGRATIONS).await;
    }
    customers::build_with(config, import_limits)
        .await?
        .run_until_signal()
        .await
}
