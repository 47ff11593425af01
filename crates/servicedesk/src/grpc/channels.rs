//! ChannelService: the support addresses mail arrives at, the chat
//! connectors that post customers' messages, and the support forms of the
//! customer portal.

use crm_proto::crm::servicedesk::v1::channel_service_server::ChannelService;
use crm_proto::crm::servicedesk::v1::*;
use kit::auth::{CallerContext, Role};
use kit::error::Violations;
use kit::input::text;
use kit::links::LinkKey;
use kit::paging::{finish_page, Page};
use kit::rpc::token_of;
use kit::Error;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{
    commit, delete_one, handle, name_taken, named_page, page_response, SharedState, State,
};
use crate::domain::access::{authorize, Action};
use crate::domain::chat::{self, secret_label, MAX_SKEW_SECONDS};
use crate::domain::mail::normalize_mailbox;
use crate::domain::{optional_id, parse_id};
use crate::events::intake::{Delivered, Incoming, Intake};
use crate::store::mail as store;
use crate::store::portal;

pub struct ChannelHandlers(pub SharedState);

/// The key chat channels' secrets are derived from.
fn chat_key(state: &State) -> kit::Result<&LinkKey> {
    state.link_key.as_ref().ok_or_else(|| {
        Error::FailedPrecondition(
            "chat channels need SERVICEDESK_LINK_KEY, which their secrets are derived from".into(),
        )
    })
}

/// A channel's current signing secret.
fn chat_secret(key: &LinkKey, channel: Uuid, generation: i32) -> String {
    key.derive(&secret_label(channel, generation))
}

/// A post that does not verify: one answer for an unknown channel, a bad
/// signature and a stale timestamp.
fn unverified() -> Error {
    Error::Unauthenticated(
        "the post does not verify: check the channel key, its secret, X-CRM-Timestamp (within five minutes) and X-CRM-Signature".into(),
    )
}

/// The channel a post's key names, once its signature and time hold.
async fn verified_channel(
    state: &State,
    caller: &CallerContext,
    request: &ReceiveChatMessageRequest,
) -> kit::Result<store::ChatChannelRow> {
    if !caller.has_role(Role::Service) {
        return Err(Error::PermissionDenied(
            "chat posts arrive through the gateway's /hooks/chat route".into(),
        ));
    }
    let key = state.link_key.as_ref().ok_or_else(unverified)?;
    let (tenant, channel) = request.channel_key.split_once('.').ok_or_else(unverified)?;
    let (Ok(tenant), Ok(channel)) = (Uuid::try_parse(tenant), Uuid::try_parse(channel)) else {
        return Err(unverified());
    };
    if tenant != caller.tenant_id
        || (state.clock.now().timestamp() - request.timestamp).abs() > MAX_SKEW_SECONDS
    {
        return Err(unverified());
    }
    let mut tx = state.begin(caller).await?;
    let found = store::find_chat_channel(&mut tx, tenant, channel)
        .await?
        .ok_or_else(unverified)?;
    let secret = LinkKey::from_secret(&chat_secret(key, channel, found.secret_generation));
    if !secret.verify_body(request.timestamp, &request.body, &request.signature) {
        return Err(unverified());
    }
    Ok(found)
}

#[tonic::async_trait]
impl ChannelService for ChannelHandlers {
    async fn create_mailbox(
        &self,
        request: Request<CreateMailboxRequest>,
    ) -> Result<Response<CreateMailboxResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateMailboxRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut m = request
                .mailbox
                .ok_or_else(|| Error::invalid("mailbox", "is required"))?;
            let mut v = Violations::new();
            normalize_mailbox(&mut m, &mut v);
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let entity = "mailbox";
            if let Some(existing) = kit::idempotency::replayed(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
            )
            .await?
            {
                let found = store::find_mailbox(&mut tx, tenant, existing)
                    .await?
                    .ok_or_else(|| Error::not_found("mailbox", existing))?;
                return Ok(CreateMailboxResponse {
                    mailbox: Some(found),
                });
            }
            let id = Uuid::now_v7();
            let saved = store::insert_mailbox(&mut tx, tenant, id, &m, &caller.subject)
                .await
                .map_err(|e| {
                    Error::from(e).exists_as(|| {
                        format!("mailbox.address: {} already receives mail here", m.address)
                    })
                })?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
                id,
            )
            .await?;
            commit(tx).await?;
            Ok(CreateMailboxResponse {
                mailbox: Some(saved),
            })
        })
        .await
    }

    async fn list_mailboxes(
        &self,
        request: Request<ListMailboxesRequest>,
    ) -> Result<Response<ListMailboxesResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows =
                store::list_mailboxes(&mut tx, caller.tenant_id, page.after, page.fetch_limit())
                    .await?;
            let (mailboxes, next) = finish_page(rows, page.size, |m: &Mailbox| {
                Uuid::parse_str(&m.id).unwrap_or_default()
            });
            Ok(ListMailboxesResponse {
                mailboxes,
                page: page_response(next),
            })
        })
        .await
    }

    async fn create_chat_channel(
        &self,
        request: Request<CreateChatChannelRequest>,
    ) -> Result<Response<CreateChatChannelResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let key = chat_key(&self.0)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateChatChannelRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut c = request
                .channel
                .ok_or_else(|| Error::invalid("channel", "is required"))?;
            let mut v = Violations::new();
            v.check(text("channel.name", &mut c.name, 200));
            if c.name.is_empty() {
                v.add("channel.name", "is required");
            }
            v.check(optional_id("channel.group_id", &c.group_id));
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let entity = "chat_channel";
            let saved = match kit::idempotency::replayed(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
            )
            .await?
            {
                Some(existing) => store::find_chat_channel(&mut tx, tenant, existing)
                    .await?
                    .ok_or_else(|| Error::not_found("chat channel", existing))?,
                None => {
                    let id = Uuid::now_v7();
                    let saved =
                        store::insert_chat_channel(&mut tx, tenant, id, &c, &caller.subject)
                            .await
                            .map_err(|e| name_taken(e, "channel", &c.name))?;
                    kit::idempotency::remember(
                        &mut tx,
                        tenant,
                        entity,
                        &request.request_id,
                        &fingerprint,
                        id,
                    )
                    .await?;
                    commit(tx).await?;
                    saved
                }
            };
            let id = parse_id("channel.id", &saved.channel.id)?;
            Ok(CreateChatChannelResponse {
                signing_secret: chat_secret(key, id, saved.secret_generation),
                channel: Some(saved.channel),
            })
        })
        .await
    }

    async fn list_chat_channels(
        &self,
        request: Request<ListChatChannelsRequest>,
    ) -> Result<Response<ListChatChannelsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let (channels, page) = named_page(
                &self.0,
                &caller,
                request.page.as_ref(),
                store::list_chat_channels,
                |c: &ChatChannel| (&c.name, &c.id),
            )
            .await?;
            Ok(ListChatChannelsResponse { channels, page })
        })
        .await
    }

    async fn delete_chat_channel(
        &self,
        request: Request<DeleteChatChannelRequest>,
    ) -> Result<Response<DeleteChatChannelResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let id = parse_id("id", &request.id)?;
            delete_one(
                &self.0,
                &caller,
                "chat channel",
                id,
                "",
                async |tx, tenant| store::delete_chat_channel(tx, tenant, id).await,
            )
            .await?;
            Ok(DeleteChatChannelResponse {})
        })
        .await
    }

    async fn rotate_chat_secret(
        &self,
        request: Request<RotateChatSecretRequest>,
    ) -> Result<Response<RotateChatSecretResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let key = chat_key(&self.0)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let generation =
                store::rotate_chat_secret(&mut tx, caller.tenant_id, id, &caller.subject)
                    .await?
                    .ok_or_else(|| Error::not_found("chat channel", id))?;
            commit(tx).await?;
            Ok(RotateChatSecretResponse {
                signing_secret: chat_secret(key, id, generation),
            })
        })
        .await
    }

    async fn receive_chat_message(
        &self,
        request: Request<ReceiveChatMessageRequest>,
    ) -> Result<Response<ReceiveChatMessageResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            let found = verified_channel(&self.0, &caller, &request).await?;
            let mut post: chat::Post = serde_json::from_slice(&request.body)
                .map_err(|e| Error::invalid("body", format!("is not a chat post ({e})")))?;
            let mut v = Violations::new();
            let sender = chat::check(&mut post, &mut v);
            v.into_result()?;
            let tenant = caller.tenant_id;
            let channel = parse_id("channel.id", &found.channel.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let thread =
                store::conversation_ticket(&mut tx, tenant, channel, &post.conversation_id).await?;
            drop(tx);
            let incoming = Incoming {
                tenant,
                thread,
                sender: &sender,
                subject: &chat::subject(&post.text),
                body: &post.text,
                channel: TicketChannel::Chat,
                group: found.channel.group_id.clone(),
                request_id: format!(
                    "chat:{}",
                    kit::events::address_hash(&format!("{channel}:{}", post.message_id))
                ),
            };
            let delivered = Intake::new(self.0.clone())
                .deliver(&token, incoming)
                .await?;
            if let Delivered::Opened(ticket) = delivered {
                let mut tx = self.0.begin(&caller).await?;
                store::set_conversation_ticket(
                    &mut tx,
                    tenant,
                    channel,
                    &post.conversation_id,
                    ticket,
                )
                .await?;
                commit(tx).await?;
            }
            Ok(ReceiveChatMessageResponse {
                ticket_id: delivered.ticket().to_string(),
                opened: matches!(delivered, Delivered::Opened(_)),
            })
        })
        .await
    }

    async fn create_support_form(
        &self,
        request: Request<CreateSupportFormRequest>,
    ) -> Result<Response<CreateSupportFormResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateSupportFormRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut f = request
                .form
                .ok_or_else(|| Error::invalid("form", "is required"))?;
            let mut v = Violations::new();
            v.check(text("form.name", &mut f.name, 200));
            if f.name.is_empty() {
                v.add("form.name", "is required");
            }
            v.check(optional_id("form.group_id", &f.group_id));
            let mailbox = v.check(kit::input::required_id("form.mailbox_id", &f.mailbox_id));
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let entity = "support_form";
            if let Some(existing) = kit::idempotency::replayed(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
            )
            .await?
            {
                let found = portal::find_form(&mut tx, tenant, existing)
                    .await?
                    .ok_or_else(|| Error::not_found("support form", existing))?;
                return Ok(CreateSupportFormResponse { form: Some(found) });
            }
            if let Some(mailbox) = mailbox {
                if store::find_mailbox(&mut tx, tenant, mailbox)
                    .await?
                    .is_none()
                {
                    return Err(Error::invalid("form.mailbox_id", "is no mailbox here"));
                }
            }
            let id = Uuid::now_v7();
            let saved = portal::insert_form(&mut tx, tenant, id, &f, &caller.subject)
                .await
                .map_err(|e| name_taken(e, "form", &f.name))?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
                id,
            )
            .await?;
            commit(tx).await?;
            Ok(CreateSupportFormResponse { form: Some(saved) })
        })
        .await
    }

    async fn list_support_forms(
        &self,
        request: Request<ListSupportFormsRequest>,
    ) -> Result<Response<ListSupportFormsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let (forms, page) = named_page(
                &self.0,
                &caller,
                request.page.as_ref(),
                portal::list_forms,
                |f: &SupportForm| (&f.name, &f.id),
            )
            .await?;
            Ok(ListSupportFormsResponse { forms, page })
        })
        .await
    }

    async fn delete_support_form(
        &self,
        request: Request<DeleteSupportFormRequest>,
    ) -> Result<Response<DeleteSupportFormResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let id = parse_id("id", &request.id)?;
            delete_one(
                &self.0,
                &caller,
                "support form",
                id,
                "",
                async |tx, tenant| portal::delete_form(tx, tenant, id).await,
            )
            .await?;
            Ok(DeleteSupportFormResponse {})
        })
        .await
    }

    async fn delete_mailbox(
        &self,
        request: Request<DeleteMailboxRequest>,
    ) -> Result<Response<DeleteMailboxResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let id = parse_id("id", &request.id)?;
            let in_use = "a support form sends from this mailbox: delete the form or give it another mailbox first";
            delete_one(&self.0, &caller, "mailbox", id, in_use, async |tx, tenant| {
                store::delete_mailbox(tx, tenant, id).await
            })
            .await?;
            Ok(DeleteMailboxResponse {})
        })
        .await
    }
}
