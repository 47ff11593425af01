//! The webhook action of automation rules: the triggering event posted as
//! JSON to the rule's URL, signed like the gateway's webhooks
//! (`Crm-Signature`, [`kit::egress::signature`]). Only public internet
//! addresses are reached (checked when the rule is saved and again at
//! each call, and the client connects only to checked addresses), and no
//! redirect is followed.

use std::sync::Arc;
use std::time::Duration;

use kit::egress::EgressPolicy;
use kit::Error;

use crate::config::AutomationConfig;

pub struct WebhookCaller {
    egress: Arc<EgressPolicy>,
    http: reqwest::Client,
    allow_insecure: bool,
}

impl WebhookCaller {
    pub fn new(config: &AutomationConfig) -> anyhow::Result<Self> {
        let egress = Arc::new(config.egress.clone());
        Ok(Self {
            http: egress.client(Duration::from_secs(10))?,
            egress,
            allow_insecure: config.allow_insecure_webhooks,
        })
    }

    /// Why `url` is not a webhook target, if it is not.
    pub async fn check(&self, url: &str) -> Result<(), String> {
        let plain = self.allow_insecure && url.starts_with("http://");
        if !(url.starts_with("https://") || plain) {
            return Err("must be an https:// URL".into());
        }
        self.egress
            .check_url(url)
            .await
            .map_err(|reason| format!("the URL {reason}"))
    }

    /// Posts `body`. Refusals (the URL, a 4xx answer) fail the run; the
    /// network, timeouts, 429 and 5xx answers are worth a retry.
    pub async fn call(
        &self,
        url: &str,
        secret: &str,
        event_id: &str,
        body: &serde_json::Value,
    ) -> kit::Result<()> {
        self.check(url).await.map_err(Error::FailedPrecondition)?;
        let payload = serde_json::to_vec(body).map_err(|e| Error::Internal(e.into()))?;
        let signature = kit::egress::signature(secret, chrono::Utc::now().timestamp(), &payload);
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("crm-event-id", event_id)
            .header("crm-signature", signature)
            .body(payload)
            .send()
            .await
            .map_err(|e| Error::Unavailable(format!("the webhook: {}", e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
        {
            Err(Error::Unavailable(format!(
                "the webhook answered HTTP {status}"
            )))
        } else {
            Err(Error::FailedPrecondition(format!(
                "the webhook answered HTTP {status}"
            )))
        }
    }
}
