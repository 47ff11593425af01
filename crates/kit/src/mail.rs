//! The outbound mail relay: SMTP through `lettre` (plain, STARTTLS or TLS,
//! with credentials from the URL), or a directory of .eml files for
//! development. Marketing's sends and the service desk's replies go
//! through it.

use lettre::transport::smtp::{AsyncSmtpTransport, PoolConfig};
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};

pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>),
}

/// Why a message was not accepted; `permanent` ones are not retried.
#[derive(Debug)]
pub struct Refused {
    pub permanent: bool,
    pub reason: String,
}

impl Mailer {
    /// The relay `url` names (`setting` is where it came from, for the
    /// error), keeping up to `pool` connections open for reuse.
    pub fn from_url(url: &str, setting: &str, pool: u32) -> anyhow::Result<Self> {
        if let Some(dir) = url.strip_prefix("file://") {
            std::fs::create_dir_all(dir)?;
            return Ok(Mailer::Files(AsyncFileTransport::new(dir)));
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|error| anyhow::anyhow!("{setting}: {error}"))?
            .timeout(Some(std::time::Duration::from_secs(30)))
            // Connections are kept and reused, one per message in flight.
            .pool_config(PoolConfig::new().max_size(pool))
            .build();
        Ok(Mailer::Smtp(transport))
    }

    pub async fn send(&self, message: Message) -> Result<(), Refused> {
        match self {
            Mailer::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(|_| ())
                .map_err(|error| Refused {
                    permanent: error.is_permanent(),
                    reason: error.to_string(),
                }),
            Mailer::Files(files) => {
                files
                    .send(message)
                    .await
                    .map(|_| ())
                    .map_err(|error| Refused {
                        permanent: false,
                        reason: error.to_string(),
                    })
            }
        }
    }
}
