//! MessageService: sender identities, templates, sends and recipients.

use std::collections::HashSet;

use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::customers::v1::field_service_client::FieldServiceClient;
use crm_proto::crm::customers::v1::segment_service_client::SegmentServiceClient;
use crm_proto::crm::customers::v1::{self as customers, Channel};
use crm_proto::crm::marketing::v1::message_service_server::MessageService;
use crm_proto::crm::marketing::v1::*;
use kit::auth::CallerContext;
use kit::contact_point::Email;
use kit::error::Violations;
use kit::paging::{finish_page, Page};
use kit::rpc::{on_behalf, token_of, Forwarded};
use kit::Error;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::audience::{accounts_of, contacts_by_id, recipients, variables, Audience, Resolution};
use super::campaigns::{parse_ids, upstream};
use super::consent::addresses;
use super::{commit, handle, page_response, SharedState, State};
use crate::domain::access::{authorize, Action};
use crate::domain::{optional_id, parse_id, template, text};
use crate::events::mailer::compose;
use crate::store::campaigns;
use crate::store::messages::{self as store, NewSend};

pub struct MessageHandlers(pub SharedState);

/// The keys of the tenant's contact custom fields, as the caller reads them.
async fn custom_field_keys(state: &State, token: &Forwarded) -> kit::Result<HashSet<String>> {
    let mut client = FieldServiceClient::new(state.customers.clone());
    let request = customers::ListFieldsRequest {
        entity: customers::Entity::Contact as i32,
    };
    let answer = client
        .list_fields(on_behalf(token, request))
        .await
        .map_err(upstream)?;
    Ok(answer
        .into_inner()
        .fields
        .into_iter()
        .map(|f| f.key)
        .collect())
}

async fn template_of(
    tx: &mut sqlx::PgConnection,
    tenant: Uuid,
    field: &str,
    raw: &str,
) -> kit::Result<Template> {
    let id = parse_id(field, raw)?;
    store::find_template(tx, tenant, id)
        .await?
        .ok_or_else(|| Error::invalid(field, "no such template"))
}

/// The identity named, or the tenant's first; e-mail needs one.
async fn identity_of(
    tx: &mut sqlx::PgConnection,
    tenant: Uuid,
    field: &str,
    raw: &str,
) -> kit::Result<SenderIdentity> {
    let wanted = optional_id(field, raw).map_err(|v| Error::InvalidArgument(vec![v]))?;
    let all = store::identities(tx, tenant).await?;
    match wanted {
        Some(id) => all
            .into_iter()
            .find(|i| i.id == id.to_string())
            .ok_or_else(|| Error::invalid(field, "no such sender identity")),
        None => all.into_iter().next().ok_or_else(|| {
            Error::FailedPrecondition("create a sender identity before sending e-mail".into())
        }),
    }
}

/// That a send an automation action or journey step will make names a
/// template and (if any) a sender identity of the tenant; `at` is the
/// field path of the action or step.
pub(super) async fn check_send_parts(
    tx: &mut sqlx::PgConnection,
    tenant: uuid::Uuid,
    at: &str,
    template_id: &str,
    identity_id: &str,
    v: &mut Violations,
) -> kit::Result<()> {
    let template = parse_id(&format!("{at}.template_id"), template_id)?;
    if store::find_template(tx, tenant, template).await?.is_none() {
        v.add(format!("{at}.template_id"), "no such template");
    }
    if !identity_id.is_empty()
        && !store::identities(tx, tenant)
            .await?
            .iter()
            .any(|x| x.id == identity_id)
    {
        v.add(
            format!("{at}.sender_identity_id"),
            "no such sender identity",
        );
    }
    Ok(())
}

/// One contact read with the caller's rights.
pub(super) async fn visible_contact(
    state: &State,
    token: &Forwarded,
    field: &str,
    raw: &str,
) -> kit::Result<customers::Contact> {
    let id = parse_id(field, raw)?;
    let mut client = ContactServiceClient::new(state.customers.clone());
    let request = customers::GetContactRequest { id: id.to_string() };
    match client.get_contact(on_behalf(token, request)).await {
        Ok(answer) => answer
            .into_inner()
            .contact
            .ok_or_else(|| Error::not_found("contact", id)),
        Err(status) if status.code() == tonic::Code::NotFound => {
            Err(Error::not_found("contact", id))
        }
        Err(status) => Err(upstream(status)),
    }
}

/// Creates a send: CreateSend, and automation rules acting as the
/// service (`token` is then the service's own).
pub(crate) async fn create_send(
    state: &SharedState,
    caller: CallerContext,
    token: Forwarded,
    request: CreateSendRequest,
) -> kit::Result<CreateSendResponse> {
    authorize(&caller, Action::Send)?;
    let fingerprint = kit::idempotency::fingerprint(&CreateSendRequest {
        request_id: String::new(),
        ..request.clone()
    });
    let s = request
        .send
        .ok_or_else(|| Error::invalid("send", "is required"))?;
    let mut v = Violations::new();
    let campaign = v
        .check(optional_id("send.campaign_id", &s.campaign_id))
        .flatten();
    let segment = v
        .check(optional_id("send.segment_id", &s.segment_id))
        .flatten();
    let named = parse_ids("send.contact_ids", &s.contact_ids, &mut v);
    let audiences = usize::from(campaign.is_some())
        + usize::from(segment.is_some())
        + usize::from(!s.contact_ids.is_empty());
    if audiences != 1 {
        v.add(
            "send",
            "name exactly one audience: campaign_id, segment_id or contact_ids",
        );
    }
    v.into_result()?;
    let tenant = caller.tenant_id;
    let mut tx = state.begin(&caller).await?;
    let replayed =
        kit::idempotency::replayed(&mut tx, tenant, "send", &request.request_id, &fingerprint)
            .await?;
    if let Some(existing) = replayed {
        let send = store::find_send(&mut tx, tenant, existing)
            .await?
            .ok_or_else(|| Error::not_found("send", existing))?;
        return Ok(CreateSendResponse { send: Some(send) });
    }
    let t = template_of(&mut tx, tenant, "send.template_id", &s.template_id).await?;
    let channel = Channel::try_from(t.channel).unwrap_or(Channel::Email);
    // E-mail needs the relay and a sender identity; SMS the provider
    // (it sends from MARKETING_SMS_FROM).
    let identity = if channel == Channel::Sms {
        if state.sms.is_none() {
            return Err(Error::FailedPrecondition(
                "no SMS provider is configured (MARKETING_SMS_URL)".into(),
            ));
        }
        None
    } else {
        if state.mailer.is_none() {
            return Err(Error::FailedPrecondition(
                "no mail relay is configured (MARKETING_SMTP_URL)".into(),
            ));
        }
        Some(
            identity_of(
                &mut tx,
                tenant,
                "send.sender_identity_id",
                &s.sender_identity_id,
            )
            .await?,
        )
    };
    let mut members = Vec::new();
    if let Some(campaign) = campaign {
        let c = campaigns::find_to_change(
            &mut tx,
            tenant,
            &crate::domain::access::scope(&caller),
            campaign,
        )
        .await?
        .ok_or_else(|| Error::invalid("send.campaign_id", "no campaign you may send for"))?;
        let status = CampaignStatus::try_from(c.status).unwrap_or_default();
        if status != CampaignStatus::Active {
            return Err(Error::FailedPrecondition(format!(
                "the campaign is {}; activate it to send",
                crate::domain::campaign::status_name(status)
            )));
        }
        members = crate::store::members::contact_ids(&mut tx, tenant, campaign).await?;
    }
    commit(tx).await?;
    let new = NewSend {
        id: Uuid::now_v7(),
        template: parse_id("send.template_id", &t.id)?,
        identity: identity.and_then(|i| Uuid::parse_str(&i.id).ok()),
        campaign,
        segment,
        contacts: named.clone(),
        channel: t.channel,
    };
    // A contact list (at most 1,000) is resolved now, so a bad id
    // is refused; a campaign or a segment, of any size, in the
    // background (ADR 0023), both with the caller's rights.
    let audience = match (campaign, segment) {
        (Some(_), _) => Some(Audience::Campaign(members)),
        (None, Some(segment)) => {
            let mut client = SegmentServiceClient::new(state.customers.clone());
            let lookup = customers::GetSegmentRequest {
                id: segment.to_string(),
            };
            match client.get_segment(on_behalf(&token, lookup)).await {
                Ok(_) => {}
                Err(status) if status.code() == tonic::Code::NotFound => {
                    return Err(Error::invalid("send.segment_id", "no such segment"))
                }
                Err(status) => return Err(upstream(status)),
            }
            Some(Audience::Segment(segment))
        }
        (None, None) => None,
    };
    let resolved = match audience {
        Some(_) => Vec::new(),
        None => {
            let found = contacts_by_id(state, &token, &named).await?;
            let seen: HashSet<&str> = found.iter().map(|c| c.id.as_str()).collect();
            if let Some(i) = s
                .contact_ids
                .iter()
                .position(|id| !seen.contains(id.as_str()))
            {
                return Err(Error::invalid(
                    format!("send.contact_ids[{i}]"),
                    "no such contact",
                ));
            }
            let mut taken = HashSet::new();
            let (state, token) = (state, &token);
            recipients(
                state,
                token,
                &caller,
                channel,
                found,
                Vec::new(),
                &mut taken,
            )
            .await?
        }
    };
    let status = match &audience {
        Some(_) => SendStatus::Resolving,
        None if resolved.iter().all(|r| r.skipped.is_some()) => SendStatus::Completed,
        None => SendStatus::Queued,
    };
    let mut tx = state.begin(&caller).await?;
    store::insert_send(&mut tx, tenant, &new, status, &caller.subject).await?;
    if audience.is_some() {
        store::lease_resolution(&mut tx, tenant, new.id, state.resolution_lease).await?;
    } else {
        store::insert_recipients(&mut tx, tenant, new.id, &resolved).await?;
        store::schedule(&mut tx, tenant, new.id, state.sending_rate).await?;
    }
    kit::idempotency::remember(
        &mut tx,
        tenant,
        "send",
        &request.request_id,
        &fingerprint,
        new.id,
    )
    .await?;
    let send = store::find_send(&mut tx, tenant, new.id)
        .await?
        .ok_or_else(|| Error::not_found("send", new.id))?;
    commit(tx).await?;
    if let Some(audience) = audience {
        Resolution {
            state: state.clone(),
            token,
            caller,
            send: new.id,
            channel,
            audience,
        }
        .spawn();
    }
    Ok(CreateSendResponse { send: Some(send) })
}

#[tonic::async_trait]
impl MessageService for MessageHandlers {
    async fn create_sender_identity(
        &self,
        request: Request<CreateSenderIdentityRequest>,
    ) -> Result<Response<CreateSenderIdentityResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateSenderIdentityRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut identity = request
                .identity
                .ok_or_else(|| Error::invalid("identity", "is required"))?;
            let mut v = Violations::new();
            match Email::parse(&identity.from_address) {
                Ok(email) => identity.from_address = email.as_str().to_owned(),
                Err(problem) => v.add("identity.from_address", problem),
            }
            if !identity.reply_to.trim().is_empty() {
                match Email::parse(&identity.reply_to) {
                    Ok(email) => identity.reply_to = email.as_str().to_owned(),
                    Err(problem) => v.add("identity.reply_to", problem),
                }
            } else {
                identity.reply_to.clear();
            }
            v.check(text("identity.from_name", &mut identity.from_name, 100));
            if identity.from_name.contains(['\n', '\t']) {
                v.add("identity.from_name", "must be one line");
            }
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let replayed = kit::idempotency::replayed(
                &mut tx,
                tenant,
                "sender_identity",
                &request.request_id,
                &fingerprint,
            )
            .await?;
            if let Some(existing) = replayed {
                let identity = store::identities(&mut tx, tenant)
                    .await?
                    .into_iter()
                    .find(|i| i.id == existing.to_string())
                    .ok_or_else(|| Error::not_found("sender identity", existing))?;
                return Ok(CreateSenderIdentityResponse {
                    identity: Some(identity),
                });
            }
            let saved = store::insert_identity(&mut tx, tenant, &identity, &caller.subject)
                .await
                .map_err(|e| {
                    Error::from(e).exists_as(|| "a sender identity with this address exists".into())
                })?;
            let id = Uuid::parse_str(&saved.id).map_err(Error::internal)?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                "sender_identity",
                &request.request_id,
                &fingerprint,
                id,
            )
            .await?;
            commit(tx).await?;
            Ok(CreateSenderIdentityResponse {
                identity: Some(saved),
            })
        })
        .await
    }

    async fn list_sender_identities(
        &self,
        request: Request<ListSenderIdentitiesRequest>,
    ) -> Result<Response<ListSenderIdentitiesResponse>, Status> {
        handle(request, |caller, _| async move {
            authorize(&caller, Action::Read)?;
            let mut tx = self.0.begin(&caller).await?;
            Ok(ListSenderIdentitiesResponse {
                identities: store::identities(&mut tx, caller.tenant_id).await?,
            })
        })
        .await
    }

    async fn create_template(
        &self,
        request: Request<CreateTemplateRequest>,
    ) -> Result<Response<CreateTemplateResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateTemplateRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut t = request
                .template
                .ok_or_else(|| Error::invalid("template", "is required"))?;
            let custom = custom_field_keys(&self.0, &token).await?;
            let mut v = Violations::new();
            template::check(&mut t, &custom, &mut v);
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let replayed = kit::idempotency::replayed(
                &mut tx,
                tenant,
                "template",
                &request.request_id,
                &fingerprint,
            )
            .await?;
            if let Some(existing) = replayed {
                let t = store::find_template(&mut tx, tenant, existing)
                    .await?
                    .ok_or_else(|| Error::not_found("template", existing))?;
                return Ok(CreateTemplateResponse { template: Some(t) });
            }
            let id = Uuid::now_v7();
            let saved = store::insert_template(&mut tx, tenant, id, &t, &caller.subject)
                .await
                .map_err(|e| {
                    Error::from(e).exists_as(|| format!("a template named {:?} exists", t.name))
                })?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                "template",
                &request.request_id,
                &fingerprint,
                id,
            )
            .await?;
            commit(tx).await?;
            Ok(CreateTemplateResponse {
                template: Some(saved),
            })
        })
        .await
    }

    async fn get_template(
        &self,
        request: Request<GetTemplateRequest>,
    ) -> Result<Response<GetTemplateResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let t = store::find_template(&mut tx, caller.tenant_id, id)
                .await?
                .ok_or_else(|| Error::not_found("template", id))?;
            Ok(GetTemplateResponse { template: Some(t) })
        })
        .await
    }

    async fn list_templates(
        &self,
        request: Request<ListTemplatesRequest>,
    ) -> Result<Response<ListTemplatesResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows =
                store::list_templates(&mut tx, caller.tenant_id, page.after, page.fetch_limit())
                    .await?;
            let (templates, next) = finish_page(rows, page.size, |t: &Template| {
                Uuid::parse_str(&t.id).unwrap_or_default()
            });
            Ok(ListTemplatesResponse {
                templates,
                page: page_response(next),
            })
        })
        .await
    }

    async fn preview_template(
        &self,
        request: Request<PreviewTemplateRequest>,
    ) -> Result<Response<PreviewTemplateResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let mut tx = self.0.begin(&caller).await?;
            let t = template_of(
                &mut tx,
                caller.tenant_id,
                "template_id",
                &request.template_id,
            )
            .await?;
            commit(tx).await?;
            let contact =
                visible_contact(&self.0, &token, "contact_id", &request.contact_id).await?;
            let address = addresses(&contact, Channel::Email)
                .into_iter()
                .next()
                .unwrap_or_default();
            let accounts = accounts_of(&self.0, &token, std::slice::from_ref(&contact)).await?;
            let rendered = template::render(&t, &variables(&contact, &address, &accounts), None)
                .map_err(|error| {
                    Error::FailedPrecondition(format!("the template does not render: {error}"))
                })?;
            Ok(PreviewTemplateResponse {
                message: Some(rendered),
            })
        })
        .await
    }

    async fn test_send(
        &self,
        request: Request<TestSendRequest>,
    ) -> Result<Response<TestSendResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Send)?;
            let to = Email::parse(&request.address)
                .map_err(|problem| Error::invalid("address", problem))?;
            let Some(mailer) = self.0.mailer.clone() else {
                return Err(Error::FailedPrecondition(
                    "no mail relay is configured (MARKETING_SMTP_URL)".into(),
                ));
            };
            let mut tx = self.0.begin(&caller).await?;
            let t = template_of(
                &mut tx,
                caller.tenant_id,
                "template_id",
                &request.template_id,
            )
            .await?;
            let identity = identity_of(
                &mut tx,
                caller.tenant_id,
                "sender_identity_id",
                &request.sender_identity_id,
            )
            .await?;
            commit(tx).await?;
            if t.channel != Channel::Email as i32 {
                return Err(Error::invalid(
                    "template_id",
                    "test sends are e-mails; this is an SMS template",
                ));
            }
            let contact =
                visible_contact(&self.0, &token, "contact_id", &request.contact_id).await?;
            let accounts = accounts_of(&self.0, &token, std::slice::from_ref(&contact)).await?;
            let rendered = template::render(&t, &variables(&contact, to.as_str(), &accounts), None)
                .map_err(|error| {
                    Error::FailedPrecondition(format!("the template does not render: {error}"))
                })?;
            let domain = to.domain().to_owned();
            let email = compose(
                &identity,
                to.as_str(),
                &rendered,
                &format!("<test-{}@{domain}>", Uuid::now_v7()),
                None,
            )
            .map_err(Error::FailedPrecondition)?;
            mailer.send(email).await.map_err(|refused| {
                Error::Unavailable(format!(
                    "the mail relay refused the test: {}",
                    refused.reason
                ))
            })?;
            Ok(TestSendResponse {})
        })
        .await
    }

    async fn create_send(
        &self,
        request: Request<CreateSendRequest>,
    ) -> Result<Response<CreateSendResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            create_send(&self.0, caller, token, request).await
        })
        .await
    }

    async fn get_send(
        &self,
        request: Request<GetSendRequest>,
    ) -> Result<Response<GetSendResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let send = store::find_send(&mut tx, caller.tenant_id, id)
                .await?
                .ok_or_else(|| Error::not_found("send", id))?;
            Ok(GetSendResponse { send: Some(send) })
        })
        .await
    }

    async fn list_sends(
        &self,
        request: Request<ListSendsRequest>,
    ) -> Result<Response<ListSendsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let campaign = optional_id("campaign_id", &request.campaign_id)
                .map_err(|v| Error::InvalidArgument(vec![v]))?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows = store::list_sends(
                &mut tx,
                caller.tenant_id,
                campaign,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (sends, next) = finish_page(rows, page.size, |s: &Send| {
                Uuid::parse_str(&s.id).unwrap_or_default()
            });
            Ok(ListSendsResponse {
                sends,
                page: page_response(next),
            })
        })
        .await
    }

    async fn list_send_recipients(
        &self,
        request: Request<ListSendRecipientsRequest>,
    ) -> Result<Response<ListSendRecipientsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Send)?;
            let id = parse_id("send_id", &request.send_id)?;
            let status = match RecipientStatus::try_from(request.status) {
                Ok(RecipientStatus::Unspecified) => None,
                Ok(s) => Some(s as i16),
                Err(_) => return Err(Error::invalid("status", "is not a known recipient status")),
            };
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            store::find_send(&mut tx, caller.tenant_id, id)
                .await?
                .ok_or_else(|| Error::not_found("send", id))?;
            let rows = store::list_recipients(
                &mut tx,
                caller.tenant_id,
                id,
                status,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (recipients, next) = finish_page(rows, page.size, |r: &SendRecipient| {
                Uuid::parse_str(&r.id).unwrap_or_default()
            });
            Ok(ListSendRecipientsResponse {
                recipients,
                page: page_response(next),
            })
        })
        .await
    }

    async fn cancel_send(
        &self,
        request: Request<CancelSendRequest>,
    ) -> Result<Response<CancelSendResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Send)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let send = store::find_send(&mut tx, caller.tenant_id, id)
                .await?
                .ok_or_else(|| Error::not_found("send", id))?;
            if !store::cancel(&mut tx, caller.tenant_id, id, &caller.subject).await? {
                return Err(Error::FailedPrecondition(format!(
                    "the send is already {}",
                    SendStatus::try_from(send.status)
                        .unwrap_or_default()
                        .as_str_name()
                        .trim_start_matches("SEND_STATUS_")
                        .to_lowercase()
                )));
            }
            let send = store::find_send(&mut tx, caller.tenant_id, id)
                .await?
                .ok_or_else(|| Error::not_found("send", id))?;
            commit(tx).await?;
            Ok(CancelSendResponse { send: Some(send) })
        })
        .await
    }
}
