//! The outbound mail relay: SMTP through `lettre` (plain, STARTTLS or TLS,
//! with credentials from the URL), or a directory of .eml files for
//! development.

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{header, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::{AsyncSmtpTransport, PoolConfig};
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};

use crm_proto::crm::marketing::v1::{RenderedMessage, SenderIdentity};

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
    /// The relay a `MARKETING_SMTP_URL` names.
    pub fn from_url(url: &str) -> anyhow::Result<Self> {
        if let Some(dir) = url.strip_prefix("file://") {
            std::fs::create_dir_all(dir)?;
            return Ok(Mailer::Files(AsyncFileTransport::new(dir)));
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|error| anyhow::anyhow!("MARKETING_SMTP_URL: {error}"))?
            .timeout(Some(std::time::Duration::from_secs(30)))
            // Connections are kept and reused, one per message in flight
            // (the sender hands over `PARALLEL` at once).
            .pool_config(PoolConfig::new().max_size(super::sender::PARALLEL as u32))
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

/// One e-mail: from the identity, to the address, the rendered parts, a
/// Message-ID made from the recipient id (a relay or inbox that sees the
/// same id twice knows it is one message) and, for sends, the one-click
/// unsubscribe headers of RFC 8058.
pub fn compose(
    identity: &SenderIdentity,
    to: &str,
    rendered: &RenderedMessage,
    message_id: &str,
    unsubscribe: Option<&str>,
) -> Result<Message, String> {
    let from_address = identity
        .from_address
        .parse()
        .map_err(|_| "the sender identity's address does not parse".to_owned())?;
    let from = Mailbox::new(
        (!identity.from_name.is_empty()).then(|| identity.from_name.clone()),
        from_address,
    );
    let to: Mailbox = to
        .parse()
        .map_err(|_| "the recipient's address does not parse".to_owned())?;
    let mut builder = Message::builder()
        .from(from)
        .to(to)
        .subject(rendered.subject.clone())
        .message_id(Some(message_id.to_owned()));
    if let Some(url) = unsubscribe {
        builder = builder
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{url}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_owned(),
            ));
    }
    if !identity.reply_to.is_empty() {
        if let Ok(reply_to) = identity.reply_to.parse::<Mailbox>() {
            builder = builder.reply_to(reply_to);
        }
    }
    let message = if rendered.html_body.is_empty() {
        builder.singlepart(
            SinglePart::builder()
                .header(header::ContentType::TEXT_PLAIN)
                .body(rendered.text_body.clone()),
        )
    } else {
        builder.multipart(MultiPart::alternative_plain_html(
            rendered.text_body.clone(),
            rendered.html_body.clone(),
        ))
    };
    message.map_err(|error| error.to_string())
}
