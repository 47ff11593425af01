//! The e-mail channel at work (ADR 0030).
//!
//! Inbound: the service desk listens for SMTP (`SERVICEDESK_SMTP_LISTEN`);
//! the organisation's mail exchanger forwards its support addresses there.
//! A recipient that is no mailbox is refused at RCPT. A message is answered
//! 250 only once it is a ticket or a message on one (or recognised as a
//! machine's, or as a repeat), and 451 when the database or the customers
//! service failed, so the sending server keeps it and tries again: no mail
//! is lost, and a repeat is recognised by its Message-ID.
//!
//! The message goes through [`super::intake`] (the desk's own API as its
//! service identity) with a `request_id` made from the Message-ID.
//!
//! Outbound: an agent's public reply on a ticket that has a mail thread is
//! queued in the reply's transaction; [`MailSender`] sends it from the
//! thread's mailbox to the requester's address (read from customers when
//! sending), with `In-Reply-To`, `References` and the `[#number]` token;
//! so is the satisfaction survey of a solved mail ticket, a signed link to
//! the gateway's public survey page. A support form ticket's first mail
//! (the acknowledgement with the portal link) is sent from the form's
//! mailbox and starts its thread; a portal link a person asked for is
//! about no ticket.

use std::sync::Arc;
use std::time::Duration;

use crm_proto::crm::customers::v1 as customers;
use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::servicedesk::v1::TicketChannel;
use kit::db::set_tenant;
use kit::events::{address_hash, contact_point_hash};
use kit::mail::Mailer;
use kit::rpc::on_behalf;
use kit::service_tokens::ServiceTokens;
use lettre::message::{header, Mailbox as Address, SinglePart};
use lettre::Message;
use uuid::Uuid;

use super::intake::{Delivered, Incoming, Intake, Sender};
use crate::domain::mail::{self, MailKind};
use crate::domain::portal::{self, PortalLink};
use crate::domain::satisfaction::{self as survey, NpsLink, Survey};
use crate::grpc::SharedState;
use crate::store::feedback;
use crate::store::mail as store;
use crate::store::satisfaction;
use crate::store::tickets;

/// What became of an inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new ticket.
    Opened(Uuid),
    /// A customer message on an existing ticket.
    Appended(Uuid),
    /// A machine's message (auto-reply, bounce, list, the desk itself):
    /// accepted and dropped.
    Ignored(&'static str),
    /// Received before: nothing more to do.
    Repeated,
    /// Not a message the desk can read: refused for good.
    Unreadable,
}

/// The inbound side: turns raw messages into tickets and messages.
#[derive(Clone)]
pub struct MailDesk {
    state: SharedState,
    tokens: Arc<ServiceTokens>,
    limits: Arc<InboundLimits>,
}

/// Messages per minute taken from one sending address and for one tenant.
struct InboundLimits {
    senders: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    tenants: governor::DefaultKeyedRateLimiter<Uuid>,
}

/// What a sender over its budget is told: try again later (the sending
/// server keeps the message).
fn slow_down(whom: &str) -> mailin_embedded::Response {
    metrics::counter!("crm_servicedesk_mail_rate_limited_total").increment(1);
    mailin_embedded::Response::custom(
        451,
        format!("4.7.1 Too many messages {whom}; try again later"),
    )
}

impl MailDesk {
    pub fn new(state: SharedState, tokens: Arc<ServiceTokens>, per_minute: u32) -> Self {
        let quota = governor::Quota::per_minute(
            std::num::NonZeroU32::new(per_minute).unwrap_or(std::num::NonZeroU32::MIN),
        );
        MailDesk {
            state,
            tokens,
            limits: Arc::new(InboundLimits {
                senders: governor::RateLimiter::keyed(quota),
                tenants: governor::RateLimiter::keyed(quota),
            }),
        }
    }

    /// The tenant and mailbox of a recipient address, of whichever tenant.
    pub async fn route(&self, address: &str) -> anyhow::Result<Option<(Uuid, Uuid)>> {
        let address = address.trim().trim_matches(['<', '>']).to_lowercase();
        let mut conn = self.state.db.pool().acquire().await?;
        Ok(store::route_address(&mut conn, &address).await?)
    }

    /// Takes one message delivered to `mailbox` of `tenant`.
    pub async fn ingest(
        &self,
        tenant: Uuid,
        mailbox: Uuid,
        envelope_from: &str,
        raw: &[u8],
    ) -> anyhow::Result<Outcome> {
        let Some(mail) = mail::parse(raw, envelope_from) else {
            return Ok(Outcome::Unreadable);
        };
        if let Some(reason) = mail.automatic {
            return Ok(ignored(reason));
        }
        let mut conn = self.state.db.pool().acquire().await?;
        if store::is_own_address(&mut conn, &mail.from).await? {
            return Ok(ignored("own address"));
        }
        drop(conn);
        let correspondent = contact_point_hash(tenant, &mail.from);
        let mut tx = self.state.db.begin_tenant(tenant).await?;
        if store::seen(&mut tx, tenant, &mail.message_id).await? {
            return Ok(Outcome::Repeated);
        }
        let mut thread = store::ticket_of_messages(&mut tx, tenant, &mail.answers).await?;
        if thread.is_none() {
            if let Some(number) = mail::subject_number(&mail.subject) {
                thread =
                    store::ticket_of_correspondent(&mut tx, tenant, number, &correspondent).await?;
            }
        }
        let group = store::find_mailbox(&mut tx, tenant, mailbox)
            .await?
            .map(|m| m.group_id)
            .unwrap_or_default();
        tx.commit().await?;

        let token = self.tokens.for_tenant(tenant).await?;
        let sender = Sender {
            email: mail.from.clone(),
            phone: String::new(),
            name: mail.from_name.clone(),
        };
        let incoming = Incoming {
            tenant,
            thread,
            sender: &sender,
            subject: &mail.subject,
            body: &mail.body,
            channel: TicketChannel::Email,
            group,
            request_id: format!("mail:{}", address_hash(&mail.message_id)),
        };
        let delivered = Intake::new(self.state.clone())
            .deliver(&token, incoming)
            .await?;
        let ticket = delivered.ticket();
        let mut tx = self.state.db.begin_tenant(tenant).await?;
        let entry = store::ThreadEntry {
            message_id: &mail.message_id,
            ticket,
            mailbox,
            correspondent: &correspondent,
            inbound: true,
        };
        store::record_thread(&mut tx, tenant, &entry).await?;
        tx.commit().await?;
        metrics::counter!("crm_servicedesk_mail_received_total", "outcome" => "ticketed")
            .increment(1);
        Ok(match delivered {
            Delivered::Opened(id) => Outcome::Opened(id),
            Delivered::Appended(id) => Outcome::Appended(id),
        })
    }
}

fn ignored(reason: &'static str) -> Outcome {
    metrics::counter!("crm_servicedesk_mail_received_total", "outcome" => reason).increment(1);
    Outcome::Ignored(reason)
}

// ---- the SMTP listener

/// One SMTP session: what the envelope said so far.
#[derive(Clone)]
struct Session {
    desk: MailDesk,
    runtime: tokio::runtime::Handle,
    envelope_from: String,
    route: Option<(Uuid, Uuid)>,
    data: Vec<u8>,
    too_large: bool,
}

impl mailin_embedded::Handler for Session {
    fn mail(
        &mut self,
        ip: std::net::IpAddr,
        _domain: &str,
        from: &str,
    ) -> mailin_embedded::Response {
        if self.desk.limits.senders.check_key(&ip).is_err() {
            return slow_down("from your address");
        }
        self.envelope_from = from.to_owned();
        self.route = None;
        mailin_embedded::response::OK
    }

    fn rcpt(&mut self, to: &str) -> mailin_embedded::Response {
        match self.runtime.block_on(self.desk.route(to)) {
            Ok(Some(route)) => {
                // Several of the desk's addresses on one message: the
                // first one's mailbox takes it, and its tenant counts it.
                if self.route.is_none() && self.desk.limits.tenants.check_key(&route.0).is_err() {
                    return slow_down("for this address");
                }
                self.route.get_or_insert(route);
                mailin_embedded::response::OK
            }
            Ok(None) => mailin_embedded::response::NO_MAILBOX,
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "routing inbound mail failed");
                mailin_embedded::response::INTERNAL_ERROR
            }
        }
    }

    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> mailin_embedded::Response {
        self.data.clear();
        self.too_large = false;
        mailin_embedded::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if self.data.len() + buf.len() > mail::MAX_MESSAGE_BYTES {
            self.too_large = true;
            self.data.clear();
        } else if !self.too_large {
            self.data.extend_from_slice(buf);
        }
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        let data = std::mem::take(&mut self.data);
        if self.too_large {
            return mailin_embedded::response::NO_STORAGE;
        }
        let Some((tenant, mailbox)) = self.route else {
            return mailin_embedded::response::NO_MAILBOX;
        };
        let ingested =
            self.runtime.block_on(
                self.desk
                    .ingest(tenant, mailbox, &self.envelope_from, &data),
            );
        match ingested {
            Ok(Outcome::Unreadable) => mailin_embedded::response::TRANSACTION_FAILED,
            Ok(_) => mailin_embedded::response::OK,
            Err(error) => {
                tracing::warn!(%tenant, error = format!("{error:#}"), "inbound mail kept for a retry");
                mailin_embedded::response::INTERNAL_ERROR
            }
        }
    }
}

/// Serves SMTP on `listener` until the process ends (a thread per
/// connection, as `mailin-embedded` does; mail servers hold few).
pub fn listen(desk: MailDesk, listener: std::net::TcpListener) -> anyhow::Result<()> {
    let session = Session {
        desk,
        runtime: tokio::runtime::Handle::current(),
        envelope_from: String::new(),
        route: None,
        data: Vec::new(),
        too_large: false,
    };
    let mut server = mailin_embedded::Server::new(session);
    server
        .with_name("crm-servicedesk")
        .with_num_threads(16)
        .with_tcp_listener(listener);
    std::thread::Builder::new()
        .name("smtp-inbound".into())
        .spawn(move || {
            if let Err(error) = server.serve() {
                tracing::error!(error = %error, "the inbound SMTP listener stopped");
            }
        })?;
    Ok(())
}

// ---- outbound replies

/// Sends queued replies, once across pods (SKIP LOCKED), retrying with
/// back-off when the relay or customers fails.
pub struct MailSender {
    state: SharedState,
    tokens: Arc<ServiceTokens>,
    mailer: Arc<Mailer>,
    interval: Duration,
}

/// Attempts before a reply is given up (logged): about a day of back-off.
const MAX_ATTEMPTS: i32 = 10;

impl MailSender {
    pub fn new(
        state: SharedState,
        tokens: Arc<ServiceTokens>,
        mailer: Arc<Mailer>,
        interval: Duration,
    ) -> Self {
        MailSender {
            state,
            tokens,
            mailer,
            interval,
        }
    }

    /// The message for one queued mail; `None` when there is nothing to
    /// send any more (the ticket, message, mailbox or address is gone).
    async fn compose(
        &self,
        tx: &mut sqlx::PgConnection,
        q: &store::Queued,
    ) -> anyhow::Result<Option<Composed>> {
        let scope = kit::access::Scope::Tenant;
        let ticket = match q.ticket_id {
            Some(id) => match tickets::find(tx, q.tenant_id, &scope, id, false).await? {
                Some(ticket) => Some(ticket),
                None => return Ok(None),
            },
            None => None,
        };
        // Replies follow the ticket's thread and its latest mailbox; a
        // ticket's first mail and a portal link come from the mailbox queued.
        let thread = match q.ticket_id {
            Some(id) => store::thread_of(tx, q.tenant_id, id).await?,
            None => None,
        };
        let Some((mailbox_id, thread)) =
            thread.or_else(|| q.mailbox_id.map(|mailbox| (mailbox, Vec::new())))
        else {
            return Ok(None);
        };
        let Some(mailbox) = store::find_mailbox(tx, q.tenant_id, mailbox_id).await? else {
            return Ok(None);
        };
        let requester = match &ticket {
            Some(ticket) => Uuid::parse_str(&ticket.requester_contact_id).ok(),
            None => q.contact_id,
        };
        let Some(requester) = requester else {
            return Ok(None);
        };
        let portal_url = |key: &kit::links::LinkKey| {
            let link = PortalLink {
                tenant: q.tenant_id,
                contact: requester,
                mailbox: mailbox_id,
                expires: (self.state.clock.now() + portal::LIFETIME).timestamp(),
            };
            format!("{}/portal/{}", self.state.public_url, key.sign(&link))
        };
        let kind = q.kind;
        let (subject, body) = match &ticket {
            Some(ticket) if kind == MailKind::Survey as i16 => {
                let Some(key) = &self.state.link_key else {
                    return Ok(None);
                };
                if satisfaction::answered(tx, q.tenant_id, ticket_id(ticket)).await? {
                    return Ok(None);
                }
                let link = Survey {
                    tenant: q.tenant_id,
                    ticket: ticket_id(ticket),
                    expires: (self.state.clock.now() + survey::LIFETIME).timestamp(),
                };
                let url = format!("{}/csat/{}", self.state.public_url, key.sign(&link));
                (
                    format!("How did we do? [#{}]", ticket.number),
                    mail::survey_text(&ticket.subject, ticket.number, &url),
                )
            }
            Some(ticket) if kind == MailKind::Acknowledgement as i16 => {
                let Some(key) = &self.state.link_key else {
                    return Ok(None);
                };
                (
                    mail::reply_subject(&ticket.subject, ticket.number),
                    portal::acknowledgement_text(&ticket.subject, ticket.number, &portal_url(key)),
                )
            }
            Some(ticket) => {
                let Some(reply) = q.message_id else {
                    return Ok(None);
                };
                let Some(reply) = tickets::find_message(tx, q.tenant_id, reply).await? else {
                    return Ok(None);
                };
                (
                    mail::reply_subject(&ticket.subject, ticket.number),
                    reply.body,
                )
            }
            None if kind == MailKind::Nps as i16 => {
                let (Some(key), Some(survey)) = (&self.state.link_key, q.nps_survey_id) else {
                    return Ok(None);
                };
                if feedback::nps_answered(tx, q.tenant_id, survey, requester).await? {
                    return Ok(None);
                }
                let link = NpsLink {
                    tenant: q.tenant_id,
                    survey,
                    contact: requester,
                    expires: (self.state.clock.now() + survey::NPS_LIFETIME).timestamp(),
                };
                let url = format!("{}/nps/{}", self.state.public_url, key.sign(&link));
                let sender = if mailbox.name.is_empty() {
                    "us"
                } else {
                    mailbox.name.as_str()
                };
                (
                    format!("How likely are you to recommend {sender}?"),
                    survey::nps_text(sender, &url),
                )
            }
            None => {
                let Some(key) = &self.state.link_key else {
                    return Ok(None);
                };
                (
                    "Your support requests".to_owned(),
                    portal::link_text(&portal_url(key)),
                )
            }
        };
        let token = self.tokens.for_tenant(q.tenant_id).await?;
        let mut contacts = ContactServiceClient::new(self.state.customers.clone());
        let contact = match contacts
            .get_contact(on_behalf(
                &token,
                customers::GetContactRequest {
                    id: requester.to_string(),
                },
            ))
            .await
        {
            Ok(found) => found.into_inner().contact.unwrap_or_default(),
            Err(status) if status.code() == tonic::Code::NotFound => return Ok(None),
            Err(status) => anyhow::bail!("reading the requester: {status:?}"),
        };
        let Some(email) = contact
            .emails
            .iter()
            .find(|e| e.primary)
            .or(contact.emails.first())
            .map(|e| e.address.clone())
        else {
            return Ok(None);
        };
        let name = format!("{} {}", contact.first_name, contact.last_name)
            .trim()
            .to_owned();
        let to = Address::new((!name.is_empty()).then_some(name), email.parse()?);
        let from = Address::new(
            (!mailbox.name.is_empty()).then(|| mailbox.name.clone()),
            mailbox.address.parse()?,
        );
        let domain = mailbox
            .address
            .rsplit_once('@')
            .map(|(_, d)| d.to_owned())
            .unwrap_or_default();
        let message_id = format!("{}@{domain}", q.id);
        let references = thread
            .iter()
            .rev()
            .take(10)
            .rev()
            .map(|id| format!("<{id}>"))
            .collect::<Vec<_>>()
            .join(" ");
        let mut builder = Message::builder()
            .from(from)
            .to(to)
            .subject(subject)
            .message_id(Some(format!("<{message_id}>")));
        if let Some(last) = thread.last() {
            builder = builder
                .in_reply_to(format!("<{last}>"))
                .references(references);
        }
        let message = builder.singlepart(
            SinglePart::builder()
                .header(header::ContentType::TEXT_PLAIN)
                .body(body),
        )?;
        // Mail about a ticket joins its thread: the customer's answer to it
        // is threaded back, and later replies follow it.
        let thread_entry = ticket.map(|ticket| ThreadEntry {
            ticket: ticket_id(&ticket),
            message_id,
            mailbox: mailbox_id,
            correspondent: contact_point_hash(q.tenant_id, &email.to_lowercase()),
        });
        Ok(Some(Composed {
            message,
            thread_entry,
        }))
    }
}

fn ticket_id(ticket: &crm_proto::crm::servicedesk::v1::Ticket) -> Uuid {
    Uuid::parse_str(&ticket.id).unwrap_or_default()
}

/// A mail ready to send, and what joins the ticket's thread once it is sent.
struct Composed {
    message: Message,
    thread_entry: Option<ThreadEntry>,
}

struct ThreadEntry {
    ticket: Uuid,
    message_id: String,
    mailbox: Uuid,
    correspondent: String,
}

impl kit::scan::Scan for MailSender {
    const NAME: &'static str = "support mail";

    async fn try_once(&self) -> anyhow::Result<usize> {
        let now = self.state.clock.now();
        let mut tx = self.state.db.pool().begin().await?;
        let due = store::lock_due(&mut tx, now, kit::scan::BATCH as i64).await?;
        for q in &due {
            set_tenant(&mut tx, q.tenant_id).await?;
            let composed = match self.compose(&mut tx, q).await {
                Ok(Some(composed)) => composed,
                Ok(None) => {
                    store::dequeue(&mut tx, q.tenant_id, q.id).await?;
                    continue;
                }
                Err(error) if q.attempts + 1 >= MAX_ATTEMPTS => {
                    tracing::warn!(tenant = %q.tenant_id, ticket = ?q.ticket_id, error = format!("{error:#}"), "a reply could not be mailed");
                    store::dequeue(&mut tx, q.tenant_id, q.id).await?;
                    continue;
                }
                Err(error) => {
                    let next = now + backoff(q.attempts);
                    store::retry(&mut tx, q.tenant_id, q.id, next, &format!("{error:#}")).await?;
                    continue;
                }
            };
            match self.mailer.send(composed.message).await {
                Ok(()) => {
                    if let Some(sent) = &composed.thread_entry {
                        let entry = store::ThreadEntry {
                            message_id: &sent.message_id,
                            ticket: sent.ticket,
                            mailbox: sent.mailbox,
                            correspondent: &sent.correspondent,
                            inbound: false,
                        };
                        store::record_thread(&mut tx, q.tenant_id, &entry).await?;
                    }
                    store::dequeue(&mut tx, q.tenant_id, q.id).await?;
                    metrics::counter!("crm_servicedesk_mail_sent_total").increment(1);
                }
                Err(refused) if refused.permanent || q.attempts + 1 >= MAX_ATTEMPTS => {
                    tracing::warn!(tenant = %q.tenant_id, ticket = ?q.ticket_id, reason = %refused.reason, "a reply could not be mailed");
                    store::dequeue(&mut tx, q.tenant_id, q.id).await?;
                    metrics::counter!("crm_servicedesk_mail_failed_total").increment(1);
                }
                Err(refused) => {
                    let next = now + backoff(q.attempts);
                    store::retry(&mut tx, q.tenant_id, q.id, next, &refused.reason).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(due.len())
    }

    fn interval(&self) -> Duration {
        self.interval
    }
}

/// 1, 2, 4 ... minutes, at most 4 hours.
fn backoff(attempts: i32) -> chrono::Duration {
    chrono::Duration::minutes(1i64 << attempts.clamp(0, 8)).min(chrono::Duration::hours(4))
}
