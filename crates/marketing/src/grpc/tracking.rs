//! TrackingService: opens, clicks and unsubscribes, as the gateway's public
//! routes report them, and the relay's or SMS provider's delivery reports
//! (delivered, bounced, complaint, opt-out) from its webhook route. The caller is a service token the gateway minted for
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
use crate::domain::reports::{self, Event as ReportEvent, Refusal, Report};
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
            .verify::<Link>(token, Utc::now().timestamp())
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
        store::recipient_engaged(
            &mut tx,
            caller.tenant_id,
            link.recipient,
            kind == Kind::Click,
        )
        .await?;
        let event = event(&link, &r);
        self.0
            .outbox
            .enqueue(&mut tx, caller, link.recipient, 1, &event)
            .await?;
        commit(tx).await?;
        Ok(link)
    }
}

/// A person withdrew from a channel: how and why.
struct Withdrawal {
    channel: Channel,
    source: &'static str,
    reason: SuppressionReason,
    note: &'static str,
}

impl TrackingHandlers {
    /// Unsubscribes the recipient's contact from the channel: consent
    /// withdrawn in the customers service (safe to repeat) and here, the
    /// address suppressed, the member unsubscribed, `message.unsubscribed`
    /// published. False when the recipient is unknown or had withdrawn.
    async fn withdraw(
        &self,
        caller: &CallerContext,
        token: &kit::rpc::Forwarded,
        recipient: uuid::Uuid,
        w: Withdrawal,
    ) -> kit::Result<bool> {
        let tenant = caller.tenant_id;
        let known = {
            let mut tx = self.0.begin(caller).await?;
            store::reached(&mut tx, tenant, recipient, false).await?
        };
        let Some(r) = known.filter(|r| r.unsubscribed_at.is_none()) else {
            return Ok(false);
        };
        let mut contacts = ContactServiceClient::new(self.0.customers.clone());
        let withdraw = customers::UpdateConsentRequest {
            contact_id: r.contact_id.to_string(),
            channel: w.channel as i32,
            status: ConsentStatus::Withdrawn as i32,
            source: w.source.into(),
        };
        match contacts.update_consent(on_behalf(token, withdraw)).await {
            Ok(_) => {}
            // Erased or deleted since: nothing to withdraw there.
            Err(status) if status.code() == tonic::Code::NotFound => {}
            Err(status) => return Err(upstream(status)),
        }
        let mut tx = self.0.begin(caller).await?;
        let Some(r) = store::reached(&mut tx, tenant, recipient, true).await? else {
            return Ok(false);
        };
        if r.unsubscribed_at.is_some() {
            return Ok(false);
        }
        store::mark_unsubscribed(&mut tx, tenant, recipient).await?;
        consent::record(
            &mut tx,
            tenant,
            r.contact_id,
            w.channel as i32,
            ConsentStatus::Withdrawn as i32,
            w.source,
            Utc::now(),
        )
        .await?;
        if !r.address.is_empty() {
            let suppression = Suppression {
                channel: w.channel as i32,
                address: r.address.clone(),
                reason: w.reason as i32,
                note: w.note.into(),
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
            recipient_id: recipient.to_string(),
            contact_id: r.contact_id.to_string(),
            campaign_id: r.campaign_id.map(|c| c.to_string()).unwrap_or_default(),
            source: w.source.into(),
            channel: w.channel as i32,
        };
        self.0
            .outbox
            .enqueue(&mut tx, caller, recipient, 1, &event)
            .await?;
        commit(tx).await?;
        Ok(true)
    }

    /// One delivery report about one of the caller's tenant's recipients;
    /// false when the recipient is unknown or the report was applied before.
    async fn apply(
        &self,
        caller: &CallerContext,
        token: &kit::rpc::Forwarded,
        recipient: uuid::Uuid,
        report: &Report,
    ) -> kit::Result<bool> {
        let tenant = caller.tenant_id;
        let channel = {
            let mut tx = self.0.begin(caller).await?;
            store::reached(&mut tx, tenant, recipient, false).await?
        }
        .map(|r| Channel::try_from(i32::from(r.channel)).unwrap_or(Channel::Email));
        let Some(channel) = channel else {
            return Ok(false);
        };
        match report.event {
            ReportEvent::Complained | ReportEvent::OptedOut => {
                let (source, reason, note) = if report.event == ReportEvent::Complained {
                    ("complaint", SuppressionReason::Complaint, "spam complaint")
                } else {
                    ("opt_out", SuppressionReason::Unsubscribed, "opted out")
                };
                let withdrawal = Withdrawal {
                    channel,
                    source,
                    reason,
                    note,
                };
                return self.withdraw(caller, token, recipient, withdrawal).await;
            }
            ReportEvent::Delivered | ReportEvent::Bounced => {}
        }
        let mut tx = self.0.begin(caller).await?;
        let Some(r) = store::reached(&mut tx, tenant, recipient, true).await? else {
            return Ok(false);
        };
        let campaign_id = r.campaign_id.map(|c| c.to_string()).unwrap_or_default();
        if report.event == ReportEvent::Delivered {
            if !store::mark_reported(&mut tx, tenant, recipient, None).await? {
                return Ok(false);
            }
            let event = MessageDelivered {
                send_id: r.send_id.to_string(),
                recipient_id: recipient.to_string(),
                contact_id: r.contact_id.to_string(),
                campaign_id,
            };
            self.0
                .outbox
                .enqueue(&mut tx, caller, recipient, 1, &event)
                .await?;
        } else {
            let mut detail = report.detail.clone();
            let _ = crate::domain::text("detail", &mut detail, 500);
            detail = detail.chars().take(500).collect();
            if !store::mark_reported(&mut tx, tenant, recipient, Some(&detail)).await? {
                return Ok(false);
            }
            if report.permanent {
                // The address is dead, whoever sends to it.
                if !r.address.is_empty() {
                    consent::suppress_everywhere(
                        &mut tx,
                        channel as i32,
                        &r.address,
                        SuppressionReason::HardBounce as i32,
                    )
                    .await?;
                }
                if let Some(campaign) = r.campaign_id {
                    store::member_reached(
                        &mut tx,
                        tenant,
                        campaign,
                        r.contact_id,
                        MemberStatus::Bounced,
                    )
                    .await?;
                }
            }
            let event = MessageBounced {
                send_id: r.send_id.to_string(),
                recipient_id: recipient.to_string(),
                contact_id: r.contact_id.to_string(),
                campaign_id,
                permanent: report.permanent,
                detail,
            };
            self.0
                .outbox
                .enqueue(&mut tx, caller, recipient, 1, &event)
                .await?;
        }
        commit(tx).await?;
        Ok(true)
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
            let (link, _) = {
                let mut tx = self.0.begin(&caller).await?;
                self.verified(&caller, &request.token, Kind::Unsubscribe, &mut tx, false)
                    .await?
            };
            let withdrawal = Withdrawal {
                channel: Channel::Email,
                source: SOURCE,
                reason: SuppressionReason::Unsubscribed,
                note: "unsubscribe link",
            };
            self.withdraw(&caller, &token, link.recipient, withdrawal)
                .await?;
            Ok(UnsubscribeResponse {})
        })
        .await
    }

    async fn record_delivery_reports(
        &self,
        request: Request<RecordDeliveryReportsRequest>,
    ) -> Result<Response<RecordDeliveryReportsResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Track)?;
            let key = self.0.webhook_key.as_ref().ok_or_else(|| {
                Error::FailedPrecondition(
                    "delivery reports are not configured (MARKETING_WEBHOOK_KEY)".into(),
                )
            })?;
            let now = Utc::now().timestamp();
            let reports = reports::verified(
                key,
                &request.body,
                request.timestamp,
                &request.signature,
                now,
            )
            .map_err(|refusal| match refusal {
                Refusal::Signature => Error::PermissionDenied(
                    "the reports' signature does not hold or is too old".into(),
                ),
                Refusal::Malformed(why) => Error::invalid("body", why),
            })?;
            let (mut applied, mut ignored) = (0, 0);
            for report in &reports {
                let Some((tenant, recipient)) = reports::referenced(&report.reference) else {
                    continue;
                };
                // Another tenant's reports are applied by the call for it.
                if tenant != caller.tenant_id {
                    continue;
                }
                if self.apply(&caller, &token, recipient, report).await? {
                    applied += 1;
                } else {
                    ignored += 1;
                }
            }
            Ok(RecordDeliveryReportsResponse { applied, ignored })
        })
        .await
    }
}
