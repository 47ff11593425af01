//! Masked `Debug` for messages that carry personal data (names, e-mails,
//! phones, addresses, raw import files). Logs and traces see the shape of a
//! record, never the person: `a***@example.com`, `+49******78`, `A***`.

use std::fmt;

use crate::crm::customers::v1 as customers;

/// `ada@example.com` -> `a***@example.com`.
pub fn mask_email(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => format!("{}***@{domain}", local.chars().next().unwrap_or('*')),
        None => mask_text(address),
    }
}

/// `+4915112345678` -> `+49*********78`.
pub fn mask_phone(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 5 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 5))
}

/// `Lovelace` -> `L***`; empty stays empty.
pub fn mask_text(text: &str) -> String {
    match text.chars().next() {
        Some(first) => format!("{first}***"),
        None => String::new(),
    }
}

impl fmt::Debug for customers::Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email")
            .field("address", &mask_email(&self.address))
            .field("label", &self.label)
            .field("primary", &self.primary)
            .finish()
    }
}

impl fmt::Debug for customers::Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Phone")
            .field("number", &mask_phone(&self.number))
            .field("label", &self.label)
            .field("primary", &self.primary)
            .finish()
    }
}

impl fmt::Debug for customers::Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("network", &self.network)
            .field("handle", &mask_text(&self.handle))
            .finish()
    }
}

impl fmt::Debug for customers::Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Address")
            .field("street", &mask_text(&self.street))
            .field("city", &self.city)
            .field("country", &self.country)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for customers::Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contact")
            .field("id", &self.id)
            .field("first_name", &mask_text(&self.first_name))
            .field("last_name", &mask_text(&self.last_name))
            .field("emails", &self.emails)
            .field("phones", &self.phones)
            .field("account_id", &self.account_id)
            .field("lifecycle_stage", &self.lifecycle_stage)
            .field("owner_id", &self.owner_id)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for customers::ImportRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.part {
            Some(customers::import_request::Part::Header(header)) => f
                .debug_struct("ImportRequest")
                .field("header", header)
                .finish(),
            Some(customers::import_request::Part::Chunk(chunk)) => {
                write!(f, "ImportRequest {{ chunk: <{} bytes> }}", chunk.len())
            }
            None => write!(f, "ImportRequest {{}}"),
        }
    }
}

impl fmt::Debug for customers::ExportResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ExportResponse {{ chunk: <{} bytes> }}",
            self.chunk.len()
        )
    }
}

impl fmt::Debug for customers::ExportContactDataResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ExportContactDataResponse {{ json: <{} bytes> }}",
            self.json.len()
        )
    }
}

impl fmt::Debug for crate::crm::sales::v1::Lead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lead")
            .field("id", &self.id)
            .field("first_name", &mask_text(&self.first_name))
            .field("last_name", &mask_text(&self.last_name))
            .field("email", &mask_email(&self.email))
            .field("phone", &mask_phone(&self.phone))
            .field("company", &self.company)
            .field("status", &self.status)
            .field("owner_id", &self.owner_id)
            .field("score", &self.score)
            .finish_non_exhaustive()
    }
}

/// An address of either channel: e-mails keep their domain, numbers their
/// ends.
fn mask_address(address: &str) -> String {
    if address.contains('@') {
        mask_email(address)
    } else {
        mask_phone(address)
    }
}

impl fmt::Debug for crate::crm::marketing::v1::Suppression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Suppression")
            .field("id", &self.id)
            .field("channel", &self.channel)
            .field("address", &mask_address(&self.address))
            .field("reason", &self.reason)
            .field("note", &mask_text(&self.note))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for crate::crm::marketing::v1::GetReachabilityResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetReachabilityResponse")
            .field("reachable", &self.reachable)
            .field("reason", &self.reason)
            .field("consent", &self.consent)
            .field("address", &mask_address(&self.address))
            .finish()
    }
}

/// A form's answers are the person's: only which fields were filled.
impl fmt::Debug for crate::crm::marketing::v1::SubmittedLead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubmittedLead")
            .field("email", &mask_email(&self.email))
            .field("phone", &mask_phone(&self.phone))
            .field("company_size", &self.company_size)
            .field("country", &self.country)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for crate::crm::marketing::v1::SubmitFormRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.values.keys().collect();
        names.sort();
        f.debug_struct("SubmitFormRequest")
            .field("public_key", &self.public_key)
            .field("filled", &names)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for crate::crm::marketing::v1::SendRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendRecipient")
            .field("id", &self.id)
            .field("contact_id", &self.contact_id)
            .field("address", &mask_address(&self.address))
            .field("status", &self.status)
            .field("skip_reason", &self.skip_reason)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for crate::crm::marketing::v1::TestSendRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestSendRequest")
            .field("template_id", &self.template_id)
            .field("contact_id", &self.contact_id)
            .field("address", &mask_address(&self.address))
            .finish_non_exhaustive()
    }
}

/// A rendered message holds the person's data: only its size is shown.
impl fmt::Debug for crate::crm::marketing::v1::RenderedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenderedMessage")
            .field("subject_chars", &self.subject.chars().count())
            .field("html_bytes", &self.html_body.len())
            .field("text_bytes", &self.text_body.len())
            .finish()
    }
}

/// A ticket's free text (subject, description) may name anyone: shown by
/// length only.
impl fmt::Debug for crate::crm::servicedesk::v1::Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("id", &self.id)
            .field("number", &self.number)
            .field(
                "subject",
                &format_args!("<{} chars>", self.subject.chars().count()),
            )
            .field(
                "description",
                &format_args!("<{} chars>", self.description.chars().count()),
            )
            .field("type", &self.r#type)
            .field("priority", &self.priority)
            .field("status", &self.status)
            .field("channel", &self.channel)
            .field("requester_contact_id", &self.requester_contact_id)
            .field("assignee_id", &self.assignee_id)
            .field("group_id", &self.group_id)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for crate::crm::servicedesk::v1::TicketMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketMessage")
            .field("id", &self.id)
            .field("ticket_id", &self.ticket_id)
            .field("kind", &self.kind)
            .field(
                "body",
                &format_args!("<{} chars>", self.body.chars().count()),
            )
            .field("channel", &self.channel)
            .field("author_id", &self.author_id)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for crate::crm::servicedesk::v1::SatisfactionRating {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SatisfactionRating")
            .field("ticket_id", &self.ticket_id)
            .field("score", &self.score)
            .field(
                "comment",
                &format_args!("<{} chars>", self.comment.chars().count()),
            )
            .finish_non_exhaustive()
    }
}

// The token is a bearer capability and the comment the person's words.
impl fmt::Debug for crate::crm::servicedesk::v1::AnswerSurveyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnswerSurveyRequest")
            .field("score", &self.score)
            .field(
                "comment",
                &format_args!("<{} chars>", self.comment.chars().count()),
            )
            .finish_non_exhaustive()
    }
}

/// `Debug` showing only `shown` fields: the rest are the person's words,
/// their address or a bearer link (a portal token signs a person in).
macro_rules! shows_only {
    ($type:ty, $name:literal, [$($field:ident),*]) => {
        impl fmt::Debug for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct($name)
                    $(.field(stringify!($field), &self.$field))*
                    .finish_non_exhaustive()
            }
        }
    };
}

mod portal {
    use super::fmt;
    use crate::crm::servicedesk::v1::*;

    shows_only!(
        SubmitSupportFormRequest,
        "SubmitSupportFormRequest",
        [form_key, request_id]
    );
    shows_only!(
        RequestPortalLinkRequest,
        "RequestPortalLinkRequest",
        [form_key]
    );
    shows_only!(PortalTicket, "PortalTicket", [number, status, created_at]);
    shows_only!(PortalMessage, "PortalMessage", [from_requester, at]);
    shows_only!(ListPortalTicketsRequest, "ListPortalTicketsRequest", [page]);
    shows_only!(GetPortalTicketRequest, "GetPortalTicketRequest", [number]);
    shows_only!(
        OpenPortalTicketRequest,
        "OpenPortalTicketRequest",
        [request_id]
    );
    shows_only!(
        ReplyOnPortalRequest,
        "ReplyOnPortalRequest",
        [number, request_id]
    );
    shows_only!(
        SearchPortalArticlesRequest,
        "SearchPortalArticlesRequest",
        [limit]
    );
    shows_only!(
        GetPortalArticleRequest,
        "GetPortalArticleRequest",
        [article_id]
    );
    shows_only!(NpsResponse, "NpsResponse", [survey_id, account_id, score]);
    shows_only!(AnswerNpsSurveyRequest, "AnswerNpsSurveyRequest", [score]);
}

impl fmt::Debug for crate::crm::reporting::v1::ReportSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let recipients: Vec<String> = self.recipients.iter().map(|r| mask_address(r)).collect();
        f.debug_struct("ReportSchedule")
            .field("frequency", &self.frequency)
            .field("hour", &self.hour)
            .field("day", &self.day)
            .field("recipients", &recipients)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_personal_data() {
        let contact = customers::Contact {
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            emails: vec![customers::Email {
                address: "ada@example.com".into(),
                label: "work".into(),
                primary: true,
            }],
            phones: vec![customers::Phone {
                number: "+4915112345678".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let printed = format!("{contact:?}");
        for secret in ["Ada", "Lovelace", "ada@example.com", "15112345678"] {
            assert!(!printed.contains(secret), "{secret} leaked in {printed}");
        }
        assert!(printed.contains("a***@example.com"), "{printed}");
    }

    #[test]
    fn portal_requests_print_neither_the_person_nor_the_link() {
        use crate::crm::servicedesk::v1::{ReplyOnPortalRequest, SubmitSupportFormRequest};
        let submitted = SubmitSupportFormRequest {
            form_key: "t.f".into(),
            name: "Ada Lovelace".into(),
            email: "ada@example.com".into(),
            subject: "My engine".into(),
            description: "It stopped".into(),
            request_id: "r-1".into(),
        };
        let reply = ReplyOnPortalRequest {
            token: "signed-link-token".into(),
            number: 7,
            body: "Still broken".into(),
            request_id: String::new(),
        };
        let printed = format!("{submitted:?} {reply:?}");
        for secret in [
            "Ada",
            "ada@example.com",
            "My engine",
            "It stopped",
            "signed-link-token",
            "Still broken",
        ] {
            assert!(!printed.contains(secret), "{secret} leaked in {printed}");
        }
        assert!(
            printed.contains("number: 7") && printed.contains("r-1"),
            "{printed}"
        );
    }
}
