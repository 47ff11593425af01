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
    sales::build(config).await?.run_until_signal().await
}
