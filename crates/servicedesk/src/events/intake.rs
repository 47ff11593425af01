//! Messages from outside (support mail, chat connectors) into tickets.
//! They go through the desk's own ticket handlers as a service identity,
//! so every rule, event, SLA clock and routing step of the API applies
//! unchanged: the sender is found (or created) in the customers service by
//! e-mail address or phone number, then the message continues the ticket
//! it belongs to or opens one. The `request_id` each channel derives from
//! its message id makes a repeated delivery harmless.

use crm_proto::crm::customers::v1 as customers;
use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::servicedesk::v1::ticket_service_server::TicketService;
use crm_proto::crm::servicedesk::v1::{
    AddMessageRequest, CreateTicketRequest, MessageKind, Ticket, TicketChannel, TicketMessage,
    TicketStatus,
};
use kit::auth::{CallerContext, Role, Visibility};
use kit::rpc::{on_behalf, Forwarded};
use kit::Error;
use uuid::Uuid;

use crate::grpc::tickets::TicketHandlers;
use crate::grpc::SharedState;

/// Who the desk is when it acts on what arrives.
const SUBJECT: &str = "service:servicedesk";

pub use crate::domain::ticket::Sender;

/// One message from outside.
pub struct Incoming<'a> {
    pub tenant: Uuid,
    /// The ticket the message continues, when the channel knows it.
    pub thread: Option<Uuid>,
    pub sender: &'a Sender,
    /// The subject of a ticket it opens.
    pub subject: &'a str,
    pub body: &'a str,
    pub channel: TicketChannel,
    /// The group of a ticket it opens; empty: none.
    pub group: String,
    /// Stable for the message: a repeat is recognised.
    pub request_id: String,
}

/// A ticket to open for a requester the caller knows.
pub struct Opening<'a> {
    pub tenant: Uuid,
    /// The contact id.
    pub requester: String,
    pub subject: &'a str,
    pub body: &'a str,
    pub channel: TicketChannel,
    /// Empty: none.
    pub group: String,
    pub request_id: String,
}

/// Where a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    Opened(Uuid),
    Appended(Uuid),
}

impl Delivered {
    pub fn ticket(self) -> Uuid {
        match self {
            Delivered::Opened(id) | Delivered::Appended(id) => id,
        }
    }
}

#[derive(Clone)]
pub struct Intake {
    state: SharedState,
}

impl Intake {
    pub fn new(state: SharedState) -> Self {
        Intake { state }
    }

    /// Continues `m.thread` or opens a ticket, acting with `token` (a
    /// service token of the tenant, forwarded to customers).
    pub async fn deliver(&self, token: &Forwarded, m: Incoming<'_>) -> kit::Result<Delivered> {
        if let Some(ticket) = m.thread {
            match self
                .append(token, m.tenant, ticket, m.body, m.channel, &m.request_id)
                .await
            {
                Ok(()) => return Ok(Delivered::Appended(ticket)),
                // A closed ticket, or one without requester (erased): the
                // message opens a ticket of its own.
                Err(status)
                    if matches!(
                        status.code(),
                        tonic::Code::FailedPrecondition
                            | tonic::Code::InvalidArgument
                            | tonic::Code::NotFound
                    ) => {}
                Err(status) => return Err(failed("adding the message", "text", status)),
            }
        }
        let requester = self.requester(token, m.sender, &m.request_id).await?;
        let opening = Opening {
            tenant: m.tenant,
            requester,
            subject: m.subject,
            body: m.body,
            channel: m.channel,
            group: m.group,
            request_id: m.request_id,
        };
        self.open(token, opening)
            .await
            .map(Delivered::Opened)
            .map_err(|status| failed("opening the ticket", "text", status))
    }

    /// Adds the requester's message to `ticket` through the desk's own
    /// handler (a solved ticket reopens; a closed one is refused).
    pub async fn append(
        &self,
        token: &Forwarded,
        tenant: Uuid,
        ticket: Uuid,
        body: &str,
        channel: TicketChannel,
        request_id: &str,
    ) -> Result<(), tonic::Status> {
        let caller = desk_caller(tenant);
        let request = AddMessageRequest {
            ticket_id: ticket.to_string(),
            message: Some(TicketMessage {
                kind: MessageKind::CustomerMessage as i32,
                body: body.to_owned(),
                channel: channel as i32,
                ..Default::default()
            }),
            request_id: request_id.to_owned(),
        };
        TicketHandlers(self.state.clone())
            .add_message(as_desk(&caller, token, request))
            .await
            .map(|_| ())
    }

    /// Opens a ticket for a known requester through the desk's own handler.
    pub async fn open(&self, token: &Forwarded, o: Opening<'_>) -> Result<Uuid, tonic::Status> {
        let caller = desk_caller(o.tenant);
        let request = CreateTicketRequest {
            ticket: Some(Ticket {
                subject: o.subject.to_owned(),
                description: o.body.to_owned(),
                channel: o.channel as i32,
                status: TicketStatus::New as i32,
                group_id: o.group,
                requester_contact_id: o.requester,
                ..Default::default()
            }),
            request_id: o.request_id,
        };
        let created = TicketHandlers(self.state.clone())
            .create_ticket(as_desk(&caller, token, request))
            .await?
            .into_inner();
        let id = created.ticket.map(|t| t.id).unwrap_or_default();
        Uuid::parse_str(&id).map_err(|_| tonic::Status::internal("the created ticket has no id"))
    }

    /// The contact the sender is: found by e-mail address (else phone) in
    /// the customers service, or created there with their name.
    async fn requester(
        &self,
        token: &Forwarded,
        sender: &Sender,
        request_id: &str,
    ) -> kit::Result<String> {
        if let Some(known) = self.known(token, sender).await? {
            return Ok(known);
        }
        self.create(token, sender, request_id).await
    }

    /// The contact with the sender's e-mail address (else phone), if any.
    pub async fn known(&self, token: &Forwarded, sender: &Sender) -> kit::Result<Option<String>> {
        let mut contacts = ContactServiceClient::new(self.state.customers.clone());
        let (field, point) = if sender.email.is_empty() {
            ("phone", &sender.phone)
        } else {
            ("email", &sender.email)
        };
        let by_point = customers::Filter::equals(field, point);
        let found = contacts
            .list_contacts(on_behalf(
                token,
                customers::ListContactsRequest {
                    filter: Some(by_point),
                    order_by: "created_at".into(),
                    page: Some(crm_proto::crm::common::v1::PageRequest {
                        page_size: 1,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ))
            .await
            .map_err(|status| failed("looking the sender up", "from", status))?
            .into_inner();
        Ok(found.contacts.into_iter().next().map(|contact| contact.id))
    }

    async fn create(
        &self,
        token: &Forwarded,
        sender: &Sender,
        request_id: &str,
    ) -> kit::Result<String> {
        let mut contacts = ContactServiceClient::new(self.state.customers.clone());
        let (first_name, last_name) = match sender.name.trim().rsplit_once(' ') {
            Some((first, last)) => (first.trim().to_owned(), last.trim().to_owned()),
            None => (sender.name.trim().to_owned(), String::new()),
        };
        let emails = (!sender.email.is_empty())
            .then(|| customers::Email {
                address: sender.email.clone(),
                primary: true,
                ..Default::default()
            })
            .into_iter()
            .collect();
        let phones = (!sender.phone.is_empty())
            .then(|| customers::Phone {
                number: sender.phone.clone(),
                primary: true,
                ..Default::default()
            })
            .into_iter()
            .collect();
        let created = contacts
            .create_contact(on_behalf(
                token,
                customers::CreateContactRequest {
                    contact: Some(customers::Contact {
                        first_name,
                        last_name,
                        emails,
                        phones,
                        source: "service desk".into(),
                        ..Default::default()
                    }),
                    request_id: request_id.to_owned(),
                },
            ))
            .await
            .map_err(|status| failed("creating the sender as a contact", "from", status))?
            .into_inner();
        Ok(created.contact.map(|c| c.id).unwrap_or_default())
    }
}

/// A refusal from the desk's own handlers or from customers: bad input is
/// the message's (`field`), a request id already used for another message
/// stays a conflict (retrying cannot help), anything else is worth a retry.
fn failed(what: &str, field: &str, status: tonic::Status) -> Error {
    match status.code() {
        tonic::Code::InvalidArgument => Error::invalid(field, status.message().to_owned()),
        tonic::Code::AlreadyExists => Error::AlreadyExists(status.message().to_owned()),
        _ => Error::Unavailable(format!("{what}: {}", status.message())),
    }
}

/// The desk acting by itself in `tenant`.
fn desk_caller(tenant: Uuid) -> CallerContext {
    CallerContext {
        tenant_id: tenant,
        subject: SUBJECT.into(),
        user_id: None,
        roles: vec![Role::Service],
        teams: Vec::new(),
        scopes: Vec::new(),
        visibility: Visibility::Tenant,
    }
}

/// A request to the desk's own handlers as the desk: the caller the auth
/// layer would have put there, and the token it forwards to customers.
fn as_desk<T>(caller: &CallerContext, token: &Forwarded, message: T) -> tonic::Request<T> {
    let mut request = on_behalf(token, message);
    request.extensions_mut().insert(caller.clone());
    request
}
