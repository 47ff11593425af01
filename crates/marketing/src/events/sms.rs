//! The SMS provider: one HTTP interface (any provider, or a small adapter in
//! front of one, that takes a JSON POST), or a directory of .json files for
//! development.
//!
//! The request: `POST <MARKETING_SMS_URL>` with `Authorization: Bearer
//! <MARKETING_SMS_TOKEN>` and `{"from", "to", "text", "reference"}`;
//! `reference` (`<tenant>.<recipient>`) comes back in delivery reports.
//! A 2xx answer is accepted; 408, 429 and 5xx are tried again later; any
//! other answer refuses the message for good.

use std::time::Duration;

use super::mailer::Refused;

pub enum SmsProvider {
    Http {
        client: reqwest::Client,
        url: String,
        token: Option<String>,
        from: String,
    },
    Files {
        dir: std::path::PathBuf,
        from: String,
    },
}

/// One text message.
#[derive(serde::Serialize)]
pub struct Sms<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub text: &'a str,
    pub reference: &'a str,
}

impl SmsProvider {
    /// The provider a `MARKETING_SMS_URL` names.
    pub fn from_url(url: &str, token: Option<String>, from: String) -> anyhow::Result<Self> {
        if let Some(dir) = url.strip_prefix("file://") {
            std::fs::create_dir_all(dir)?;
            return Ok(SmsProvider::Files {
                dir: dir.into(),
                from,
            });
        }
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            anyhow::bail!("MARKETING_SMS_URL must be an http(s):// or file:// address");
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(SmsProvider::Http {
            client,
            url: url.to_owned(),
            token,
            from,
        })
    }

    /// Hands one message to the provider.
    pub async fn send(&self, to: &str, text: &str, reference: &str) -> Result<(), Refused> {
        let retry = |reason: String| Refused {
            permanent: false,
            reason,
        };
        match self {
            SmsProvider::Files { dir, from } => {
                let sms = Sms {
                    from,
                    to,
                    text,
                    reference,
                };
                let body = serde_json::to_vec_pretty(&sms).map_err(|e| retry(e.to_string()))?;
                let name = reference.replace(['/', '\\'], "_");
                tokio::fs::write(dir.join(format!("{name}.json")), body)
                    .await
                    .map_err(|e| retry(e.to_string()))
            }
            SmsProvider::Http {
                client,
                url,
                token,
                from,
            } => {
                let sms = Sms {
                    from,
                    to,
                    text,
                    reference,
                };
                let mut request = client.post(url).json(&sms);
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let response = request
                    .send()
                    .await
                    .map_err(|e| retry(format!("the SMS provider did not answer: {e}")))?;
                let status = response.status();
                if status.is_success() {
                    return Ok(());
                }
                let reason = format!("the SMS provider answered {status}");
                let again = status.is_server_error()
                    || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || status == reqwest::StatusCode::REQUEST_TIMEOUT;
                Err(Refused {
                    permanent: !again,
                    reason,
                })
            }
        }
    }
}
