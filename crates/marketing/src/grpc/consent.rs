//! ConsentService: whether a contact is reachable, and the suppression
//! lists.

use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::customers::v1::{self as customers, Channel, ConsentStatus};
use crm_proto::crm::marketing::v1::consent_service_server::ConsentService;
use crm_proto::crm::marketing::v1::*;
use kit::contact_point::{Email, PhoneE164};
use kit::error::Violations;
use kit::paging::{finish_page, Page};
use kit::rpc::{on_behalf, token_of};
use kit::Error;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::campaigns::upstream;
use super::{commit, handle, page_response, SharedState};
use crate::domain::access::{authorize, Action};
use crate::domain::reach::{decide, Candidate};
use crate::domain::{parse_id, text};
use crate::store::consent as store;

pub struct ConsentHandlers(pub SharedState);

/// The channels messages are sent on.
fn sending_channel(field: &str, raw: i32) -> Result<Channel, kit::FieldViolation> {
    match Channel::try_from(raw) {
        Ok(channel @ (Channel::Email | Channel::Sms)) => Ok(channel),
        _ => Err(kit::FieldViolation::new(
            field,
            "must be CHANNEL_EMAIL or CHANNEL_SMS",
        )),
    }
}

/// A contact's addresses on a channel, primary first.
pub fn addresses(contact: &customers::Contact, channel: Channel) -> Vec<String> {
    let mut found: Vec<(bool, String)> = match channel {
        Channel::Email => contact
            .emails
            .iter()
            .map(|e| (e.primary, e.address.clone()))
            .collect(),
        _ => contact
            .phones
            .iter()
            .map(|p| (p.primary, p.number.clone()))
            .collect(),
    };
    found.sort_by_key(|(primary, _)| !primary);
    found.into_iter().map(|(_, address)| address).collect()
}

/// The newer of the replica's consent and the one on the contact record
/// just read (the replica may not have seen the latest event yet).
pub(crate) fn newest(
    replica: Option<ChannelConsent>,
    on_record: Option<&customers::Consent>,
) -> Option<ChannelConsent> {
    let key = |t: &Option<prost_types::Timestamp>| t.as_ref().map(|t| (t.seconds, t.nanos));
    match (replica, on_record) {
        (Some(replica), Some(record)) if key(&record.updated_at) > key(&replica.changed_at) => {
            Some(ChannelConsent {
                channel: record.channel,
                status: record.status,
                source: record.source.clone(),
                changed_at: record.updated_at,
            })
        }
        (None, Some(record)) => Some(ChannelConsent {
            channel: record.channel,
            status: record.status,
            source: record.source.clone(),
            changed_at: record.updated_at,
        }),
        (replica, _) => replica,
    }
}

fn normalized_address(channel: Channel, raw: &str) -> Result<String, &'static str> {
    match channel {
        Channel::Email => Email::parse(raw).map(|e| e.as_str().to_owned()),
        _ => PhoneE164::parse(raw).map(|p| p.as_str().to_owned()),
    }
}

#[tonic::async_trait]
impl ConsentService for ConsentHandlers {
    async fn get_reachability(
        &self,
        request: Request<GetReachabilityRequest>,
    ) -> Result<Response<GetReachabilityResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let contact_id = parse_id("contact_id", &request.contact_id)?;
            // E-mail unless another channel is named.
            let channel = match request.channel {
                0 => Channel::Email,
                raw => sending_channel("channel", raw)
                    .map_err(|violation| Error::InvalidArgument(vec![violation]))?,
            };
            let mut contacts = ContactServiceClient::new(self.0.customers.clone());
            let lookup = customers::GetContactRequest {
                id: contact_id.to_string(),
            };
            let contact = match contacts.get_contact(on_behalf(&token, lookup)).await {
                Ok(found) => found.into_inner().contact.unwrap_or_default(),
                Err(status) if status.code() == tonic::Code::NotFound => {
                    return Err(Error::not_found("contact", contact_id))
                }
                Err(status) => return Err(upstream(status)),
            };
            let addresses = addresses(&contact, channel);
            let mut tx = self.0.begin(&caller).await?;
            let replica =
                store::of_contact(&mut tx, caller.tenant_id, contact_id, channel as i32).await?;
            let on_record = contact
                .consents
                .iter()
                .find(|c| c.channel == channel as i32);
            let consent = newest(replica, on_record);
            let suppressed =
                store::suppressed(&mut tx, caller.tenant_id, channel as i32, &addresses).await?;
            let candidates: Vec<Candidate> = addresses
                .iter()
                .map(|address| Candidate {
                    address,
                    suppressed: suppressed.contains(address),
                })
                .collect();
            let status = consent
                .as_ref()
                .and_then(|c| ConsentStatus::try_from(c.status).ok());
            let decision = decide(status, &candidates);
            Ok(GetReachabilityResponse {
                reachable: decision.is_ok(),
                reason: decision.err().unwrap_or_default() as i32,
                consent,
                address: decision.map(str::to_owned).unwrap_or_default(),
            })
        })
        .await
    }

    async fn add_suppression(
        &self,
        request: Request<AddSuppressionRequest>,
    ) -> Result<Response<AddSuppressionResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let mut s = request
                .suppression
                .ok_or_else(|| Error::invalid("suppression", "is required"))?;
            let mut v = Violations::new();
            let channel = v.check(sending_channel("suppression.channel", s.channel));
            if let Some(channel) = channel {
                match normalized_address(channel, &s.address) {
                    Ok(address) => s.address = address,
                    Err(problem) => v.add("suppression.address", problem),
                }
            }
            match SuppressionReason::try_from(s.reason) {
                Ok(SuppressionReason::Unspecified) => s.reason = SuppressionReason::Manual as i32,
                Ok(_) => {}
                Err(_) => v.add("suppression.reason", "is not a known reason"),
            }
            v.check(text("suppression.note", &mut s.note, 500));
            v.into_result()?;
            let mut tx = self.0.begin(&caller).await?;
            let saved = store::suppress(&mut tx, caller.tenant_id, &s, &caller.subject).await?;
            if s.reason == SuppressionReason::HardBounce as i32 {
                store::suppress_everywhere(&mut tx, s.channel, &s.address, s.reason).await?;
            }
            commit(tx).await?;
            Ok(AddSuppressionResponse {
                suppression: Some(saved),
            })
        })
        .await
    }

    async fn list_suppressions(
        &self,
        request: Request<ListSuppressionsRequest>,
    ) -> Result<Response<ListSuppressionsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let mut v = Violations::new();
            let channel = match request.channel {
                0 => None,
                raw => v.check(sending_channel("channel", raw)).map(|c| c as i16),
            };
            let reason = match SuppressionReason::try_from(request.reason) {
                Ok(SuppressionReason::Unspecified) => None,
                Ok(r) => Some(r as i16),
                Err(_) => {
                    v.add("reason", "is not a known reason");
                    None
                }
            };
            v.into_result()?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows = store::list(
                &mut tx,
                caller.tenant_id,
                &store::SuppressionFilter { channel, reason },
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (suppressions, next) = finish_page(rows, page.size, |s: &Suppression| {
                Uuid::parse_str(&s.id).unwrap_or_default()
            });
            Ok(ListSuppressionsResponse {
                suppressions,
                page: page_response(next),
            })
        })
        .await
    }

    async fn delete_suppression(
        &self,
        request: Request<DeleteSuppressionRequest>,
    ) -> Result<Response<DeleteSuppressionResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            if !store::delete(&mut tx, caller.tenant_id, id).await? {
                return Err(Error::not_found("suppression", id));
            }
            commit(tx).await?;
            Ok(DeleteSuppressionResponse {})
        })
        .await
    }
}
