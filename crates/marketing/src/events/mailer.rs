//! Marketing's e-mails as `lettre` messages; the relay they go through is
//! [`kit::mail::Mailer`].

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{header, Mailbox, MultiPart, SinglePart};
use lettre::Message;

use crm_proto::crm::marketing::v1::{RenderedMessage, SenderIdentity};

pub use kit::mail::{Mailer, Refused};

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
