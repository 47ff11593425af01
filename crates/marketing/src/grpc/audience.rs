//! Audiences: contacts resolved through the customers service with the
//! creator's rights, each one's fate decided (address, or why not), and
//! the background resolution of campaign and segment sends (ADR 0023).

use std::collections::{HashMap, HashSet};

use crm_proto::crm::common::v1::PageRequest;
use crm_proto::crm::customers::v1::account_service_client::AccountServiceClient;
use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::customers::v1::segment_service_client::SegmentServiceClient;
use crm_proto::crm::customers::v1::{self as customers, Channel, ConsentStatus};
use crm_proto::crm::marketing::v1::SkipReason;
use kit::auth::CallerContext;
use kit::rpc::{on_behalf, Forwarded};
use kit::Error;
use uuid::Uuid;

use super::campaigns::upstream;
use super::consent::{addresses, newest};
use super::{commit, SharedState, State};
use crate::domain::reach::{decide, Candidate};
use crate::store::consent;
use crate::store::messages::{self as store, NewRecipient};

/// Ids per customers lookup (an `id IN [...]` filter).
const LOOKUP: usize = 200;
/// Contacts per page of a segment.
const SEGMENT_PAGE: i32 = 500;

fn id_in(ids: &[Uuid]) -> customers::Filter {
    use prost_types::value::Kind;
    customers::Filter {
        node: Some(customers::filter::Node::Condition(customers::Condition {
            field: "id".into(),
            op: customers::Operator::In as i32,
            value: Some(prost_types::Value {
                kind: Some(Kind::ListValue(prost_types::ListValue {
                    values: ids
                        .iter()
                        .map(|id| prost_types::Value {
                            kind: Some(Kind::StringValue(id.to_string())),
                        })
                        .collect(),
                })),
            }),
        })),
    }
}

fn page(size: i32, token: String) -> Option<PageRequest> {
    Some(PageRequest {
        page_size: size,
        page_token: token,
    })
}

/// The contacts among `ids` the caller can see, through the customers service.
pub(super) async fn contacts_by_id(
    state: &State,
    token: &Forwarded,
    ids: &[Uuid],
) -> kit::Result<Vec<customers::Contact>> {
    let mut client = ContactServiceClient::new(state.customers.clone());
    let mut found = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(LOOKUP) {
        let request = customers::ListContactsRequest {
            filter: Some(id_in(chunk)),
            page: page(LOOKUP as i32, String::new()),
            ..Default::default()
        };
        let answer = client
            .list_contacts(on_behalf(token, request))
            .await
            .map_err(upstream)?;
        found.extend(answer.into_inner().contacts);
    }
    Ok(found)
}

/// One page of a segment's members the caller can see, in id order, and
/// the token of the next page (empty after the last). `field` names the
/// segment in the error when there is no such segment.
pub(super) async fn segment_page(
    state: &State,
    token: &Forwarded,
    field: &str,
    segment: &str,
    next: String,
) -> kit::Result<(Vec<customers::Contact>, String)> {
    let mut client = SegmentServiceClient::new(state.customers.clone());
    let request = customers::ListSegmentMembersRequest {
        segment_id: segment.to_owned(),
        page: page(SEGMENT_PAGE, next),
    };
    match client.list_segment_members(on_behalf(token, request)).await {
        Ok(answer) => {
            let answer = answer.into_inner();
            let next = answer.page.map(|p| p.next_page_token).unwrap_or_default();
            Ok((answer.contacts, next))
        }
        Err(status) if status.code() == tonic::Code::NotFound => {
            Err(Error::invalid(field, "no such segment"))
        }
        Err(status) => Err(upstream(status)),
    }
}

/// Name, domain and industry of the accounts the contacts belong to.
pub(super) async fn accounts_of(
    state: &State,
    token: &Forwarded,
    contacts: &[customers::Contact],
) -> kit::Result<HashMap<String, serde_json::Value>> {
    let mut ids: Vec<Uuid> = contacts
        .iter()
        .filter_map(|c| Uuid::parse_str(&c.account_id).ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut client = AccountServiceClient::new(state.customers.clone());
    let mut found = HashMap::new();
    for chunk in ids.chunks(LOOKUP) {
        let request = customers::ListAccountsRequest {
            filter: Some(id_in(chunk)),
            page: page(LOOKUP as i32, String::new()),
            ..Default::default()
        };
        let answer = client
            .list_accounts(on_behalf(token, request))
            .await
            .map_err(upstream)?;
        for a in answer.into_inner().accounts {
            let fields =
                serde_json::json!({"name": a.name, "domain": a.domain, "industry": a.industry});
            found.insert(a.id, fields);
        }
    }
    Ok(found)
}

/// The template variables of one contact (see `Template` in the proto).
pub(super) fn variables(
    contact: &customers::Contact,
    address: &str,
    accounts: &HashMap<String, serde_json::Value>,
) -> serde_json::Value {
    let full_name = [contact.first_name.as_str(), contact.last_name.as_str()]
        .iter()
        .filter(|part| !part.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let custom: serde_json::Map<String, serde_json::Value> = contact
        .custom_fields
        .iter()
        .map(|(key, value)| (key.clone(), kit::values::value_to_json(value)))
        .collect();
    serde_json::json!({
        "contact": {
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "full_name": full_name,
            "title": contact.title,
            // The address the message goes to for e-mail; the primary
            // e-mail address for SMS.
            "email": if address.contains('@') {
                address.to_owned()
            } else {
                addresses(contact, Channel::Email).into_iter().next().unwrap_or_default()
            },
            "language": contact.language,
            "custom": custom,
        },
        "account": accounts.get(&contact.account_id).cloned().unwrap_or_else(|| serde_json::json!({})),
    })
}

/// Decides each contact's fate: the address to send to, or why not.
/// `taken` holds the addresses given to earlier pages of the audience,
/// which came in id order.
pub(super) async fn recipients(
    state: &State,
    token: &Forwarded,
    caller: &CallerContext,
    channel: Channel,
    contacts: Vec<customers::Contact>,
    invisible: Vec<Uuid>,
    taken: &mut HashSet<String>,
) -> kit::Result<Vec<NewRecipient>> {
    // Ids are UUIDv7: of contacts sharing an address, the oldest gets it.
    let mut contacts = contacts;
    contacts.sort_by(|a, b| a.id.cmp(&b.id));
    let accounts = accounts_of(state, token, &contacts).await?;
    let ids: Vec<Uuid> = contacts
        .iter()
        .filter_map(|c| Uuid::parse_str(&c.id).ok())
        .collect();
    let all_addresses: Vec<String> = contacts
        .iter()
        .flat_map(|c| addresses(c, channel))
        .collect();
    let mut tx = state.begin(caller).await?;
    let replica = consent::of_contacts(&mut tx, caller.tenant_id, &ids, channel as i32).await?;
    let suppressed: HashSet<String> =
        consent::suppressed(&mut tx, caller.tenant_id, channel as i32, &all_addresses)
            .await?
            .into_iter()
            .collect();
    commit(tx).await?;
    let mut out = Vec::with_capacity(contacts.len() + invisible.len());
    for (contact, id) in contacts.iter().zip(&ids) {
        let own = addresses(contact, channel);
        let candidates: Vec<Candidate> = own
            .iter()
            .map(|address| Candidate {
                address,
                suppressed: suppressed.contains(address),
            })
            .collect();
        let on_record = contact
            .consents
            .iter()
            .find(|c| c.channel == channel as i32);
        let status = newest(replica.get(id).cloned(), on_record)
            .and_then(|c| ConsentStatus::try_from(c.status).ok());
        let decision = match decide(status, &candidates) {
            Ok(address) if !taken.insert(address.to_owned()) => Err(SkipReason::DuplicateAddress),
            other => other,
        };
        let address = decision.unwrap_or(own.first().map(String::as_str).unwrap_or_default());
        out.push(NewRecipient {
            contact: *id,
            address: address.to_owned(),
            variables: if decision.is_ok() {
                variables(contact, address, &accounts)
            } else {
                serde_json::json!({})
            },
            skipped: decision.err(),
        });
    }
    out.extend(invisible.into_iter().map(|contact| NewRecipient {
        contact,
        address: String::new(),
        variables: serde_json::json!({}),
        skipped: Some(SkipReason::NotVisible),
    }));
    Ok(out)
}

/// Who a campaign or segment send goes to.
pub(super) enum Audience {
    /// The campaign's contact members.
    Campaign(Vec<Uuid>),
    Segment(Uuid),
}

/// Resolves a send's audience after CreateSend answered: page by page,
/// each page's recipients stored with the lease renewed in one
/// transaction; the queued ones are scheduled, all at once, when the
/// whole audience is known. It runs with the creator's forwarded token;
/// if the resolver stops, its lease runs out and the sender cancels the
/// send with the reason (the token cannot be kept to resume).
pub(super) struct Resolution {
    pub state: SharedState,
    pub token: Forwarded,
    pub caller: CallerContext,
    pub send: Uuid,
    pub channel: Channel,
    pub audience: Audience,
}

impl Resolution {
    pub fn spawn(self) {
        tokio::spawn(async move {
            if let Err(error) = self.resolve().await {
                let reason = format!("the audience could not be resolved: {error}");
                tracing::warn!(send = %self.send, %error, "send resolution failed");
                if let Err(error) = self.abandon(&reason).await {
                    // The lease runs out and the sender cancels it.
                    tracing::warn!(send = %self.send, %error, "cancelling the send failed");
                }
            }
        });
    }

    async fn resolve(&self) -> kit::Result<()> {
        let state = &self.state;
        let mut taken = HashSet::new();
        // Each page is decided and stored while the next one is fetched.
        match &self.audience {
            Audience::Campaign(members) => {
                let mut members = members.clone();
                members.sort_unstable();
                let token = &self.token;
                let mut chunks = members.chunks(LOOKUP);
                let Some(first) = chunks.next() else {
                    return self.finish().await;
                };
                let mut current = (first, contacts_by_id(state, token, first).await?);
                loop {
                    let (chunk, found) = current;
                    let seen: HashSet<String> = found.iter().map(|c| c.id.clone()).collect();
                    let hidden: Vec<Uuid> = chunk
                        .iter()
                        .filter(|id| !seen.contains(&id.to_string()))
                        .copied()
                        .collect();
                    let work = async {
                        let page = self.decide(found, hidden, &mut taken).await?;
                        self.store(&page).await
                    };
                    let Some(next) = chunks.next() else {
                        if !work.await? {
                            return Ok(());
                        }
                        break;
                    };
                    let (stored, fetched) = tokio::join!(work, contacts_by_id(state, token, next));
                    if !stored? {
                        return Ok(());
                    }
                    current = (next, fetched?);
                }
            }
            Audience::Segment(segment) => {
                let segment = segment.to_string();
                let fetch = |next: String| {
                    segment_page(state, &self.token, "send.segment_id", &segment, next)
                };
                let mut current = fetch(String::new()).await?;
                loop {
                    let (contacts, after) = current;
                    let work = async {
                        let page = self.decide(contacts, Vec::new(), &mut taken).await?;
                        self.store(&page).await
                    };
                    if after.is_empty() {
                        if !work.await? {
                            return Ok(());
                        }
                        break;
                    }
                    let (stored, fetched) = tokio::join!(work, fetch(after));
                    if !stored? {
                        return Ok(());
                    }
                    current = fetched?;
                }
            }
        }
        self.finish().await
    }

    /// The whole audience is known: schedule it (unless cancelled).
    async fn finish(&self) -> kit::Result<()> {
        let state = &self.state;
        let tenant = self.caller.tenant_id;
        let mut tx = state.begin(&self.caller).await?;
        if store::still_resolving(&mut tx, tenant, self.send).await? {
            store::finish_resolution(&mut tx, tenant, self.send, state.sending_rate).await?;
        }
        commit(tx).await
    }

    async fn decide(
        &self,
        contacts: Vec<customers::Contact>,
        hidden: Vec<Uuid>,
        taken: &mut HashSet<String>,
    ) -> kit::Result<Vec<NewRecipient>> {
        let (state, token, caller) = (&self.state, &self.token, &self.caller);
        recipients(state, token, caller, self.channel, contacts, hidden, taken).await
    }

    /// Stores one page and renews the lease; false when the send stopped
    /// resolving (cancelled, or its lease was reaped).
    async fn store(&self, page: &[NewRecipient]) -> kit::Result<bool> {
        let tenant = self.caller.tenant_id;
        let mut tx = self.state.begin(&self.caller).await?;
        if !store::still_resolving(&mut tx, tenant, self.send).await? {
            return Ok(false);
        }
        store::insert_recipients(&mut tx, tenant, self.send, page).await?;
        store::lease_resolution(&mut tx, tenant, self.send, self.state.resolution_lease).await?;
        commit(tx).await?;
        Ok(true)
    }

    async fn abandon(&self, reason: &str) -> kit::Result<()> {
        let mut tx = self.state.begin(&self.caller).await?;
        store::abandon_resolution(&mut tx, self.caller.tenant_id, self.send, reason).await?;
        commit(tx).await
    }
}
