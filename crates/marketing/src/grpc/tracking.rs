//! TrackingService: opens, clicks and unsubscribes, as the gateway's public
//! routes report them. The caller is a service token the gateway minted for
//! the tenant the link names; the link itself is verified here, and
//! anything wrong with it is NOT_FOUND.

use chrono::Utc;
use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::customers::v1::{self as customers, Channel, ConsentStatus};
use crm_proto::crm::marketing::v1::tracking_service_server::TrackingService;
use crm_proto::crm::marketing::v1::*;
use crm_proto::events::DomainEvent;
use kit::auth::CallerContext;
use kit::rpc::{on_behalf, token_of};
use kit::Error;
use tonic::{Request, Response, Status};

use super::campaigns::upstream;
use super::{commit, handle, SharedState};
use crate::domain::access::{authorize, Action};
use crate::domain::links::{Kind, Link};
use crate::store::consent;
use crate::store::messages::{self as store, Reached};

pub struct TrackingHandlers(pub SharedState);

const SOURCE: &str = "unsubscribe_link";

impl TrackingHandlers {
    /// The link, if the token is one of this tenant's of the expected kind,
    /// and the recipient it names.
    async fn verified(
        &self,
        caller: &CallerContext,
        token: &str,
        kind: Kind,
        tx: &mut kit::db::TenantTx,
        lock: bool,
    ) -> kit::Result<(Link, Reached)> {
        authorize(caller, Action::Track)?;
        let invalid = || Error::not_found("link", "in this message");
        let link = self
            .0
            .links
            .verify(token, Utc::now().timestamp())
            .filter(|link| link.tenant == caller.tenant_id && link.kind == kind)
            .ok_or_else(invalid)?;
        let reached = store::reached(tx, caller.tenant_id, link.recipient, lock)
            .await?
            .ok_or_else(invalid)?;
        Ok((link, reached))
    }

    /// An open or a click: the member moves on (opened, clicked) and the
    /// event `event` makes of the link and recipient is published.
    async fn engaged<E: DomainEvent>(
        &self,
        caller: &CallerContext,
        token: &str,
        kind: Kind,
        event: impl FnOnce(&Link, &Reached) -> E,
    ) -> kit::Result<Link> {
        let mut tx = self.0.begin(caller).await?;
        let (link, r) = self.verified(caller, token, kind, &mut tx, false).await?;
        let status = match kind {
            Kind::Click => MemberStatus::Clicked,
            _ => MemberStatus::Opened,
        };
        if let Some(campaign) = r.campaign_id {
            store::member_reached(&mut tx, caller.tenant_id, campaign, r.contact_id, status)
                .await?;
        }
        let event = event(&link, &r);
        self.0
            .outbox
            .enqueue(&mut tx, caller, link.recipient, 1, &event)
            .await?;
        commit(tx).await?;
        Ok(link)
    }
}

#[tonic::async_trait]
impl TrackingService for TrackingHandlers {
    async fn record_open(
        &self,
        request: Request<RecordOpenRequest>,
    ) -> Result<Response<RecordOpenResponse>, Status> {
        handle(request, |caller, request| async move {
            self.engaged(&caller, &request.token, Kind::Open, |link, r| {
                MessageOpened {
                    send_id: r.send_id.to_string(),
                    recipient_id: link.recipient.to_string(),
                    contact_id: r.contact_id.to_string(),
                    campaign_id: r.campaign_id.map(|c| c.to_string()).unwrap_or_default(),
                }
            })
            .await?;
            Ok(RecordOpenResponse {})
        })
        .await
    }

    async fn record_click(
        &self,
        request: Request<RecordClickRequest>,
    ) -> Result<Response<RecordClickResponse>, Status> {
        handle(request, |caller, request| async move {
            let tenant = caller.tenant_id;
            let link = self
                .engaged(&caller, &request.token, Kind::Click, |link, r| {
                    MessageClicked {
                        send_id: r.send_id.to_string(),
                        recipient_id: link.recipient.to_string(),
                        contact_id: r.contact_id.to_string(),
                        campaign_id: r.campaign_id.map(|c| c.to_string()).unwrap_or_default(),
                        url: link.url.clone(),
                        address_hash: if r.address.is_empty() {
                            String::new()
                        } else {
                            kit::events::contact_point_hash(tenant, &r.address)
                        },
                    }
                })
                .await?;
            Ok(RecordClickResponse { url: link.url })
        })
        .await
    }

    async fn describe_unsubscribe(
        &self,
        request: Request<DescribeUnsubscribeRequest>,
    ) -> Result<Response<DescribeUnsubscribeResponse>, Status> {
        handle(request, |caller, request| async move {
            let mut tx = self.0.begin(&caller).await?;
            let (_, r) = self
                .verified(&caller, &request.token, Kind::Unsubscribe, &mut tx, false)
                .await?;
            Ok(DescribeUnsubscribeResponse {
                masked_address: crm_proto::pii::mask_email(&r.address),
                sender_name: r.sender_name.unwrap_or_default(),
            })
        })
        .await
    }

    async fn unsubscribe(
        &self,
        request: Request<UnsubscribeRequest>,
    ) -> Result<Response<UnsubscribeResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            let tenant = caller.tenant_id;
            let (link, r) = {
                let mut tx = self.0.begin(&caller).await?;
                self.verified(&caller, &request.token, Kind::Unsubscribe, &mut tx, false)
                    .await?
            };
            if r.unsubscribed_at.is_some() {
                return Ok(UnsubscribeResponse {});
            }
            // The consent lives in the customers service: withdrawn there
            // first (safe to repeat), then recorded here.
            let mut contacts = ContactServiceClient::new(self.0.customers.clone());
            let withdraw = customers::UpdateConsentRequest {
                contact_id: r.contact_id.to_string(),
                channel: Channel::Email as i32,
                status: ConsentStatus::Withdrawn as i32,
                source: SOURCE.into(),
            };
            match contacts.update_consent(on_behalf(&token, withdraw)).await {
                Ok(_) => {}
                // Erased or deleted since: nothing to withdraw there.
                Err(status) if status.code() == tonic::Code::NotFound => {}
                Err(status) => return Err(upstream(status)),
            }
            let mut tx = self.0.begin(&caller).await?;
            let (link, r) = {
                let locked = store::reached(&mut tx, tenant, link.recipient, true)
                    .await?
                    .ok_or_else(|| Error::not_found("link", "in this message"))?;
                (link, locked)
            };
            if r.unsubscribed_at.is_some() {
                return Ok(UnsubscribeResponse {});
            }
            store::mark_unsubscribed(&mut tx, tenant, link.recipient).await?;
            consent::record(
                &mut tx,
                tenant,
                r.contact_id,
                Channel::Email as i32,
                ConsentStatus::Withdrawn as i32,
                SOURCE,
                Utc::now(),
            )
            .await?;
            if !r.address.is_empty() {
                let suppression = Suppression {
                    channel: Channel::Email as i32,
                    address: r.address.clone(),
                    reason: SuppressionReason::Unsubscribed as i32,
                    note: "unsubscribe link".into(),
                    ..Default::default()
                };
                consent::suppress(&mut tx, tenant, &suppression, &caller.subject).await?;
            }
            if let Some(campaign) = r.campaign_id {
                store::member_reached(
                    &mut tx,
                    tenant,
                    campaign,
                    r.contact_id,
                    MemberStatus::Unsubscribed,
                )
                .await?;
            }
            let event = MessageUnsubscribed {
                send_id: r.send_id.to_string(),
                recipient_id: link.recipient.to_string(),
                contact_id: r.contact_id.to_string(),
                campaign_id: r.campaign_id.map(|c| c.to_string()).unwrap_or_default(),
            };
            self.0
                .outbox
                .enqueue(&mut tx, &caller, link.recipient, 1, &event)
                .await?;
            commit(tx).await?;
            Ok(UnsubscribeResponse {})
        })
        .await
    }
}
