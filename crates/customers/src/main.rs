//! `crm-customers`: wiring only; see `lib.rs`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = match customers::config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(kit::config::EXIT_CONFIG);
        }
    };
    customers::build(config).await?.run_until_signal().await
}
