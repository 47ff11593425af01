//! PortalService: what the gateway's public support pages and customer
//! portal ask. Callers are the public routes' service identity only; the
//! person is known by the form key (anyone) or by a signed portal link
//! (one contact), which the desk alone verifies. A requester reaches their
//! own tickets and nothing else: every lookup is by the link's contact,
//! and what is not theirs is not found, like what does not exist.

use crm_proto::crm::servicedesk::v1::portal_service_server::PortalService;
use crm_proto::crm::servicedesk::v1::*;
use kit::auth::{CallerContext, Role};
use kit::error::Violations;
use kit::paging::{finish_page, Page};
use kit::rpc::token_of;
use kit::Error;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{commit, handle, page_response, SharedState, State};
use crate::domain::parse_id;
use crate::domain::portal::{self, parse_form_key, PortalLink};
use crate::domain::ticket::Sender;
use crate::events::intake::{Delivered, Incoming, Intake, Opening};
use crate::store::knowledge::{self, ArticleFilter, Words};
use crate::store::{portal as store, tickets};

pub struct PortalHandlers(pub SharedState);

/// Messages of a ticket the portal shows at most.
const MAX_MESSAGES: i64 = 200;

fn public_route_only(caller: &CallerContext) -> kit::Result<()> {
    if caller.has_role(Role::Service) {
        Ok(())
    } else {
        Err(Error::PermissionDenied(
            "the portal is reached through the gateway's public /support and /portal pages".into(),
        ))
    }
}

/// The form a key names, in the caller's tenant.
async fn form_of(state: &State, caller: &CallerContext, key: &str) -> kit::Result<SupportForm> {
    public_route_only(caller)?;
    let unknown = || Error::not_found("support form", "at this address");
    let (tenant, form) = parse_form_key(key).ok_or_else(unknown)?;
    if tenant != caller.tenant_id {
        return Err(unknown());
    }
    let mut tx = state.begin(caller).await?;
    store::find_form(&mut tx, tenant, form)
        .await?
        .ok_or_else(unknown)
}

/// The requester a portal link signs in: one answer for a link that is
/// unknown, forged, expired or another tenant's.
fn signed_in(state: &State, caller: &CallerContext, token: &str) -> kit::Result<PortalLink> {
    public_route_only(caller)?;
    state
        .link_key
        .as_ref()
        .and_then(|key| key.verify::<PortalLink>(token, state.clock.now().timestamp()))
        .filter(|link| link.tenant == caller.tenant_id)
        .ok_or_else(|| Error::not_found("portal", "for this link"))
}

/// A ticket of the signed-in requester.
fn not_theirs(number: i64) -> Error {
    Error::not_found("ticket", number)
}

fn portal_ticket(t: &Ticket) -> PortalTicket {
    PortalTicket {
        number: t.number,
        subject: t.subject.clone(),
        status: t.status,
        created_at: t.audit.as_ref().and_then(|a| a.created_at),
        updated_at: t.audit.as_ref().and_then(|a| a.updated_at),
    }
}

/// A request id a public caller gave, scoped so it cannot meet another
/// channel's; none when the caller gave none.
fn scoped_request_id(scope: &str, request_id: &str) -> String {
    if request_id.is_empty() {
        String::new()
    } else {
        format!("{scope}:{}", kit::events::address_hash(request_id))
    }
}

/// The intake's refusal in the caller's terms: bad input names the field,
/// anything else is the service's.
fn refused(status: Status, field: &str) -> Error {
    match status.code() {
        tonic::Code::InvalidArgument => Error::invalid(field, status.message().to_owned()),
        tonic::Code::FailedPrecondition => {
            Error::FailedPrecondition("this request is closed: open a new one".into())
        }
        _ => Error::Unavailable(status.message().to_owned()),
    }
}

#[tonic::async_trait]
impl PortalService for PortalHandlers {
    async fn describe_support_form(
        &self,
        request: Request<DescribeSupportFormRequest>,
    ) -> Result<Response<DescribeSupportFormResponse>, Status> {
        handle(request, |caller, request| async move {
            let form = form_of(&self.0, &caller, &request.form_key).await?;
            Ok(DescribeSupportFormResponse { name: form.name })
        })
        .await
    }

    async fn submit_support_form(
        &self,
        request: Request<SubmitSupportFormRequest>,
    ) -> Result<Response<SubmitSupportFormResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, mut r| async move {
            let form = form_of(&self.0, &caller, &r.form_key).await?;
            let mut v = Violations::new();
            let sender = portal::check_submission(
                &mut r.name,
                &mut r.email,
                &mut r.subject,
                &mut r.description,
                &mut v,
            );
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut request_id = scoped_request_id(&format!("form:{}", form.id), &r.request_id);
            if request_id.is_empty() {
                request_id = format!("form:{}", Uuid::now_v7());
            }
            let incoming = Incoming {
                tenant,
                thread: None,
                sender: &sender,
                subject: &r.subject,
                body: &r.description,
                channel: TicketChannel::WebForm,
                group: form.group_id.clone(),
                request_id,
            };
            let ticket = match Intake::new(self.0.clone())
                .deliver(&token, incoming)
                .await?
            {
                Delivered::Opened(id) | Delivered::Appended(id) => id,
            };
            let mailbox = parse_id("form.mailbox_id", &form.mailbox_id)?;
            let mut tx = self.0.begin(&caller).await?;
            let opened = tickets::find(&mut tx, tenant, &kit::access::Scope::Tenant, ticket, false)
                .await?
                .ok_or_else(|| Error::not_found("ticket", ticket))?;
            if self.0.mails_portal_links() {
                store::enqueue_acknowledgement(
                    &mut tx,
                    tenant,
                    ticket,
                    mailbox,
                    self.0.clock.now(),
                )
                .await?;
            }
            commit(tx).await?;
            Ok(SubmitSupportFormResponse {
                ticket_number: opened.number,
            })
        })
        .await
    }

    async fn request_portal_link(
        &self,
        request: Request<RequestPortalLinkRequest>,
    ) -> Result<Response<RequestPortalLinkResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, mut r| async move {
            let form = form_of(&self.0, &caller, &r.form_key).await?;
            let mut v = Violations::new();
            crate::domain::mail::normalize_address("email", &mut r.email, &mut v);
            v.into_result()?;
            if !self.0.mails_portal_links() {
                return Ok(RequestPortalLinkResponse {});
            }
            let sender = Sender {
                email: r.email.clone(),
                phone: String::new(),
                name: String::new(),
            };
            let known = Intake::new(self.0.clone()).known(&token, &sender).await?;
            // An unknown address is answered like a known one: the page
            // must not tell who is a customer.
            if let Some(contact) = known.and_then(|id| Uuid::parse_str(&id).ok()) {
                let mailbox = parse_id("form.mailbox_id", &form.mailbox_id)?;
                let mut tx = self.0.begin(&caller).await?;
                store::enqueue_link(
                    &mut tx,
                    caller.tenant_id,
                    contact,
                    mailbox,
                    self.0.clock.now(),
                )
                .await?;
                commit(tx).await?;
            }
            Ok(RequestPortalLinkResponse {})
        })
        .await
    }

    async fn list_portal_tickets(
        &self,
        request: Request<ListPortalTicketsRequest>,
    ) -> Result<Response<ListPortalTicketsResponse>, Status> {
        handle(request, |caller, request| async move {
            let link = signed_in(&self.0, &caller, &request.token)?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows = store::requester_tickets(
                &mut tx,
                link.tenant,
                link.contact,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (rows, next) = finish_page(rows, page.size, |t: &Ticket| {
                Uuid::parse_str(&t.id).unwrap_or_default()
            });
            Ok(ListPortalTicketsResponse {
                tickets: rows.iter().map(portal_ticket).collect(),
                page: page_response(next),
            })
        })
        .await
    }

    async fn get_portal_ticket(
        &self,
        request: Request<GetPortalTicketRequest>,
    ) -> Result<Response<GetPortalTicketResponse>, Status> {
        handle(request, |caller, request| async move {
            let link = signed_in(&self.0, &caller, &request.token)?;
            let mut tx = self.0.begin(&caller).await?;
            let ticket =
                store::requester_ticket(&mut tx, link.tenant, link.contact, request.number)
                    .await?
                    .ok_or_else(|| not_theirs(request.number))?;
            let id = Uuid::parse_str(&ticket.id).unwrap_or_default();
            let mut messages = vec![PortalMessage {
                from_requester: true,
                body: ticket.description.clone(),
                at: ticket.audit.as_ref().and_then(|a| a.created_at),
                attachments: Vec::new(),
            }];
            let conversation =
                tickets::messages(&mut tx, link.tenant, id, None, MAX_MESSAGES).await?;
            messages.extend(
                conversation
                    .into_iter()
                    .filter(|m| m.kind != MessageKind::InternalNote as i32)
                    .map(|m| PortalMessage {
                        from_requester: m.kind == MessageKind::CustomerMessage as i32,
                        body: m.body,
                        at: m.created_at,
                        attachments: m.attachments,
                    }),
            );
            Ok(GetPortalTicketResponse {
                ticket: Some(portal_ticket(&ticket)),
                messages,
            })
        })
        .await
    }

    async fn open_portal_ticket(
        &self,
        request: Request<OpenPortalTicketRequest>,
    ) -> Result<Response<OpenPortalTicketResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, mut r| async move {
            let link = signed_in(&self.0, &caller, &r.token)?;
            let mut v = Violations::new();
            portal::check_request(&mut r.subject, &mut r.description, &mut v);
            v.into_result()?;
            let mut tx = self.0.begin(&caller).await?;
            let group = crate::store::mail::find_mailbox(&mut tx, link.tenant, link.mailbox)
                .await?
                .map(|m| m.group_id)
                .unwrap_or_default();
            drop(tx);
            let opening = Opening {
                tenant: link.tenant,
                requester: link.contact.to_string(),
                subject: &r.subject,
                body: &r.description,
                channel: TicketChannel::Portal,
                group,
                request_id: scoped_request_id(&format!("portal:{}", link.contact), &r.request_id),
            };
            let ticket = Intake::new(self.0.clone())
                .open(&token, opening)
                .await
                .map_err(|status| refused(status, "description"))?;
            let mut tx = self.0.begin(&caller).await?;
            let opened = tickets::find(
                &mut tx,
                link.tenant,
                &kit::access::Scope::Tenant,
                ticket,
                false,
            )
            .await?
            .ok_or_else(|| Error::not_found("ticket", ticket))?;
            // Its answers are mailed from the mailbox the link came from.
            if self.0.mails_portal_links() {
                store::enqueue_acknowledgement(
                    &mut tx,
                    link.tenant,
                    ticket,
                    link.mailbox,
                    self.0.clock.now(),
                )
                .await?;
            }
            commit(tx).await?;
            Ok(OpenPortalTicketResponse {
                ticket_number: opened.number,
            })
        })
        .await
    }

    async fn reply_on_portal(
        &self,
        request: Request<ReplyOnPortalRequest>,
    ) -> Result<Response<ReplyOnPortalResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, mut r| async move {
            let link = signed_in(&self.0, &caller, &r.token)?;
            let mut v = Violations::new();
            portal::check_reply(&mut r.body, &mut v);
            v.into_result()?;
            let mut tx = self.0.begin(&caller).await?;
            let ticket = store::requester_ticket(&mut tx, link.tenant, link.contact, r.number)
                .await?
                .ok_or_else(|| not_theirs(r.number))?;
            drop(tx);
            let id = Uuid::parse_str(&ticket.id).unwrap_or_default();
            let request_id = scoped_request_id(&format!("portal:{}", link.contact), &r.request_id);
            Intake::new(self.0.clone())
                .append(
                    &token,
                    link.tenant,
                    id,
                    &r.body,
                    TicketChannel::Portal,
                    &request_id,
                )
                .await
                .map_err(|status| refused(status, "body"))?;
            Ok(ReplyOnPortalResponse {})
        })
        .await
    }

    async fn search_portal_articles(
        &self,
        request: Request<SearchPortalArticlesRequest>,
    ) -> Result<Response<SearchPortalArticlesResponse>, Status> {
        handle(request, |caller, request| async move {
            self.admitted(&caller, &request.credential).await?;
            let mut v = Violations::new();
            let query = if request.query.trim().is_empty() {
                None
            } else {
                v.check(kit::search::query("query", &request.query))
            };
            v.into_result()?;
            let limit = if request.limit <= 0 {
                20
            } else {
                i64::from(request.limit).min(50)
            };
            let mut tx = self.0.begin(&caller).await?;
            let articles = match query {
                Some(query) => knowledge::search(
                    &mut tx,
                    caller.tenant_id,
                    query,
                    Words::All,
                    None,
                    true,
                    limit,
                )
                .await?
                .into_iter()
                .map(|hit| PortalArticle {
                    id: hit.article_id,
                    title: hit.title,
                    body: hit.snippet,
                    language: hit.language,
                })
                .collect(),
                None => {
                    let filter = ArticleFilter {
                        status: Some(ArticleStatus::Published as i16),
                        audience: Some(ArticleAudience::Public as i16),
                        ..Default::default()
                    };
                    knowledge::list(&mut tx, caller.tenant_id, &filter, None, limit)
                        .await?
                        .into_iter()
                        .map(|a| PortalArticle {
                            id: a.id,
                            title: a.title,
                            body: a.body.chars().take(300).collect(),
                            language: a.language,
                        })
                        .collect()
                }
            };
            Ok(SearchPortalArticlesResponse { articles })
        })
        .await
    }

    async fn get_portal_article(
        &self,
        request: Request<GetPortalArticleRequest>,
    ) -> Result<Response<GetPortalArticleResponse>, Status> {
        handle(request, |caller, request| async move {
            self.admitted(&caller, &request.credential).await?;
            let unknown = || Error::not_found("article", &request.article_id);
            let id = Uuid::try_parse(&request.article_id).map_err(|_| unknown())?;
            let mut tx = self.0.begin(&caller).await?;
            let article = knowledge::find(&mut tx, caller.tenant_id, id, true, false)
                .await?
                .filter(|a| a.audience == ArticleAudience::Public as i32)
                .ok_or_else(unknown)?;
            Ok(GetPortalArticleResponse {
                article: Some(PortalArticle {
                    id: article.id,
                    title: article.title,
                    body: article.body,
                    language: article.language,
                }),
            })
        })
        .await
    }
}

impl PortalHandlers {
    /// The public knowledge base opens to a form's visitors and to
    /// signed-in requesters.
    async fn admitted(&self, caller: &CallerContext, credential: &str) -> kit::Result<()> {
        if parse_form_key(credential).is_some() {
            form_of(&self.0, caller, credential).await.map(|_| ())
        } else {
            signed_in(&self.0, caller, credential).map(|_| ())
        }
    }
}
