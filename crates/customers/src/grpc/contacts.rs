//! `crm.customers.v1.ContactService`.

use crm_proto::crm::customers::v1::contact_service_server::ContactService;
use crm_proto::crm::customers::v1::*;
use kit::auth::CallerContext;
use kit::error::Violations;
use kit::paging::{finish_page, Page};
use kit::rpc::{check_version, version_of};
use kit::Error;
use sqlx::PgConnection;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::masks::{apply_contact_mask, changed_contact_fields};
use super::{
    commit, handle, page_response, publish_side_events, publish_transfers, Change, MergePair,
    SharedState, State,
};
use crate::domain::access::{authorize, scope, Action, Scope};
use crate::domain::contact::checked;
use crate::domain::custom_fields::FieldCatalog;
use crate::domain::filter::CONTACT_COLUMNS;
use crate::domain::{parse_id, tags};
use crate::store::contacts::{self as store, StoredConsent};
use crate::store::records::{self, Table};
use crate::store::{accounts, fields, Sort, SortKey};

pub struct ContactHandlers(pub SharedState);

/// Loads a contact the caller can see, or NOT_FOUND.
pub async fn visible_contact(
    tx: &mut PgConnection,
    caller: &CallerContext,
    id: Uuid,
    lock: bool,
) -> kit::Result<Contact> {
    store::find(tx, caller.tenant_id, &scope(caller), id, lock)
        .await?
        .ok_or_else(|| Error::not_found("contact", id))
}

/// Fills owner and team from the caller when absent, and refuses records
/// the caller could not see after the write. Giving a record to someone
/// else (another owner, a team not the caller's) needs the transfer
/// permission; `changing` an existing record's ownership always does.
pub fn default_ownership(
    caller: &CallerContext,
    owner_id: &mut String,
    team_id: &mut String,
    changing: bool,
) -> kit::Result<()> {
    if owner_id.is_empty() {
        *owner_id = caller.user_id.map(|u| u.to_string()).unwrap_or_default();
    }
    if team_id.is_empty() {
        *team_id = caller
            .teams
            .first()
            .map(|t| t.to_string())
            .unwrap_or_default();
    }
    let owner = Uuid::parse_str(owner_id).ok();
    let team = Uuid::parse_str(team_id).ok();
    let own = owner.is_some()
        && owner == caller.user_id
        && team.is_none_or(|t| caller.teams.contains(&t));
    if changing || !own {
        authorize(caller, Action::TransferOwnership)?;
    }
    if scope(caller) != Scope::Tenant && !scope(caller).sees(owner, team) {
        return Err(Error::PermissionDenied(
            "you may only assign records you can see yourself (own or team)".into(),
        ));
    }
    Ok(())
}

/// Normalises a contact against the tenant's custom fields and checks its
/// account exists.
async fn prepare(
    tx: &mut PgConnection,
    caller: &CallerContext,
    contact: &mut Contact,
    catalog: Option<&FieldCatalog>,
) -> kit::Result<crate::domain::contact::ContactKeys> {
    let fetched;
    let catalog = match catalog {
        Some(catalog) => catalog,
        None => {
            fetched = fields::catalog(tx, caller.tenant_id, Entity::Contact).await?;
            &fetched
        }
    };
    let keys = checked(contact, catalog)?;
    if let Ok(account) = Uuid::parse_str(&contact.account_id) {
        if accounts::find(tx, caller.tenant_id, &Scope::Tenant, account, false)
            .await?
            .is_none()
        {
            return Err(Error::invalid("contact.account_id", "no such account"));
        }
    }
    Ok(keys)
}

/// What every new contact gets before it is checked: its id, no consents
/// (consent changes go through UpdateConsent) and an owner and team the
/// caller may give. Shared by CreateContact and the bulk import.
pub fn make_new(caller: &CallerContext, contact: &mut Contact) -> kit::Result<()> {
    contact.id = Uuid::now_v7().to_string();
    contact.consents.clear();
    default_ownership(caller, &mut contact.owner_id, &mut contact.team_id, false)
}

/// Creates a contact inside `tx`, with its event. Used by CreateContact and
/// the importer.
pub async fn create_in(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    catalog: Option<&FieldCatalog>,
    mut contact: Contact,
) -> kit::Result<Contact> {
    make_new(caller, &mut contact)?;
    let keys = prepare(tx, caller, &mut contact, catalog).await?;
    let created = store::insert(tx, caller.tenant_id, &contact, &keys, &caller.subject).await?;
    let id = parse_id("contact.id", &created.id)?;
    state
        .outbox
        .enqueue(
            tx,
            caller,
            id,
            1,
            &ContactCreated {
                contact: Some(created.clone()),
            },
        )
        .await?;
    Ok(created)
}

/// Writes a changed contact and publishes what changed.
pub async fn update_in(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    catalog: Option<&FieldCatalog>,
    before: &Contact,
    mut after: Contact,
) -> kit::Result<Contact> {
    let keys = prepare(tx, caller, &mut after, catalog).await?;
    let changed = changed_contact_fields(before, &after);
    if changed.is_empty() {
        return Ok(before.clone());
    }
    let saved = store::update(tx, caller.tenant_id, &after, &keys, &caller.subject).await?;
    let id = parse_id("contact.id", &saved.id)?;
    let version = version_of(&saved.audit);
    let change = Change {
        entity: Entity::Contact,
        id,
        version,
        stage: (before.lifecycle_stage, saved.lifecycle_stage),
        owner: (&before.owner_id, &saved.owner_id),
        team: &saved.team_id,
    };
    publish_side_events(state, tx, caller, change).await?;
    let event = ContactUpdated {
        contact: Some(saved.clone()),
        changed_fields: changed,
    };
    state
        .outbox
        .enqueue(tx, caller, id, version, &event)
        .await?;
    Ok(saved)
}

/// The request's filter with its shortcuts (tag, lifecycle stage, owner)
/// ANDed in, so REST's `?tag=vip&owner_id=...` and a filter tree mean the
/// same thing.
fn list_filter(request: &ListContactsRequest) -> kit::Result<Option<Filter>> {
    use prost_types::value::Kind;
    let mut equals = Vec::new();
    if !request.tag.is_empty() {
        equals.push(("tags", Kind::StringValue(request.tag.clone())));
    }
    if request.lifecycle_stage != LifecycleStage::Unspecified as i32 {
        equals.push((
            "lifecycle_stage",
            Kind::NumberValue(f64::from(request.lifecycle_stage)),
        ));
    }
    if !request.owner_id.is_empty() {
        let owner = parse_id("owner_id", &request.owner_id)?;
        equals.push(("owner_id", Kind::StringValue(owner.to_string())));
    }
    Ok(crate::domain::filter::and_equals(
        request.filter.as_ref(),
        equals,
    ))
}

fn checked_filter(
    tx_catalog: &crate::domain::custom_fields::FieldCatalog,
    filter: Option<&Filter>,
) -> kit::Result<Option<crate::domain::filter::FilterExpr>> {
    crate::domain::filter::check(filter, CONTACT_COLUMNS, tx_catalog, "filter")
}

/// Consent per channel after a merge: a withdrawal on either side stands;
/// otherwise the most recent change wins.
fn merge_consents(survivor: &[Consent], merged: &[Consent]) -> Vec<Consent> {
    let mut result: Vec<Consent> = survivor.to_vec();
    for consent in merged {
        match result.iter_mut().find(|c| c.channel == consent.channel) {
            None => result.push(consent.clone()),
            Some(existing) => {
                let withdrawn = ConsentStatus::Withdrawn as i32;
                let newer = consent.updated_at.as_ref().map(|t| (t.seconds, t.nanos))
                    > existing.updated_at.as_ref().map(|t| (t.seconds, t.nanos));
                if existing.status != withdrawn && (consent.status == withdrawn || newer) {
                    *existing = consent.clone();
                }
            }
        }
    }
    result
}

#[tonic::async_trait]
impl ContactService for ContactHandlers {
    async fn create_contact(
        &self,
        request: Request<CreateContactRequest>,
    ) -> Result<Response<CreateContactResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateContactRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let contact = request
                .contact
                .ok_or_else(|| Error::invalid("contact", "is required"))?;
            let mut tx = self.0.begin(&caller).await?;
            let replayed = kit::idempotency::replayed(
                &mut tx,
                caller.tenant_id,
                "contact",
                &request.request_id,
                &fingerprint,
            )
            .await?;
            if let Some(id) = replayed {
                let existing = visible_contact(&mut tx, &caller, id, false).await?;
                return Ok(CreateContactResponse {
                    contact: Some(existing),
                });
            }
            let created = create_in(&self.0, &mut tx, &caller, None, contact).await?;
            kit::idempotency::remember(
                &mut tx,
                caller.tenant_id,
                "contact",
                &request.request_id,
                &fingerprint,
                parse_id("contact.id", &created.id)?,
            )
            .await?;
            commit(tx).await?;
            Ok(CreateContactResponse {
                contact: Some(created),
            })
        })
        .await
    }

    async fn get_contact(
        &self,
        request: Request<GetContactRequest>,
    ) -> Result<Response<GetContactResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let contact = visible_contact(&mut tx, &caller, id, false).await?;
            Ok(GetContactResponse {
                contact: Some(contact),
            })
        })
        .await
    }

    async fn update_contact(
        &self,
        request: Request<UpdateContactRequest>,
    ) -> Result<Response<UpdateContactResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let changes = request
                .contact
                .ok_or_else(|| Error::invalid("contact", "is required"))?;
            let id = parse_id("contact.id", &changes.id)?;
            let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
            let mut tx = self.0.begin(&caller).await?;
            let before = visible_contact(&mut tx, &caller, id, true).await?;
            check_version(
                "contact",
                &before.id,
                request.expected_version,
                version_of(&before.audit),
            )?;
            let mut after = before.clone();
            apply_contact_mask(&mut after, changes, &paths, "update_mask")?;
            if after.owner_id != before.owner_id || after.team_id != before.team_id {
                default_ownership(&caller, &mut after.owner_id, &mut after.team_id, true)?;
            }
            let saved = update_in(&self.0, &mut tx, &caller, None, &before, after).await?;
            commit(tx).await?;
            Ok(UpdateContactResponse {
                contact: Some(saved),
            })
        })
        .await
    }

    async fn delete_contact(
        &self,
        request: Request<DeleteContactRequest>,
    ) -> Result<Response<DeleteContactResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Delete)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let contact = visible_contact(&mut tx, &caller, id, true).await?;
            check_version(
                "contact",
                &contact.id,
                request.expected_version,
                version_of(&contact.audit),
            )?;
            let version = records::soft_delete(
                &mut tx,
                Table::Contacts,
                caller.tenant_id,
                id,
                &caller.subject,
            )
            .await?;
            self.0
                .outbox
                .enqueue(
                    &mut tx,
                    &caller,
                    id,
                    version,
                    &ContactDeleted {
                        contact_id: id.to_string(),
                    },
                )
                .await?;
            commit(tx).await?;
            Ok(DeleteContactResponse {})
        })
        .await
    }

    async fn list_contacts(
        &self,
        request: Request<ListContactsRequest>,
    ) -> Result<Response<ListContactsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let sort = Sort::parse(&request.order_by, "last_name")?;
            let page = Page::<SortKey>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let catalog = fields::catalog(&mut tx, caller.tenant_id, Entity::Contact).await?;
            let filter = checked_filter(&catalog, list_filter(&request)?.as_ref())?;
            let rows = store::list(
                &mut tx,
                caller.tenant_id,
                &scope(&caller),
                filter.as_ref(),
                &sort,
                page.after.as_ref(),
                page.fetch_limit(),
            )
            .await?;
            let (contacts, next) = finish_page(rows, page.size, |c: &Contact| {
                sort.key_of(c.audit.as_ref(), &c.last_name, &c.id)
            });
            Ok(ListContactsResponse {
                contacts,
                page: page_response(next),
            })
        })
        .await
    }

    async fn count_contacts(
        &self,
        request: Request<CountContactsRequest>,
    ) -> Result<Response<CountContactsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let mut tx = self.0.begin(&caller).await?;
            let catalog = fields::catalog(&mut tx, caller.tenant_id, Entity::Contact).await?;
            let filter = checked_filter(&catalog, request.filter.as_ref())?;
            let count = store::count(
                &mut tx,
                caller.tenant_id,
                &scope(&caller),
                filter.as_ref(),
                None,
            )
            .await?;
            Ok(CountContactsResponse { count })
        })
        .await
    }

    async fn find_duplicate_contacts(
        &self,
        request: Request<FindDuplicateContactsRequest>,
    ) -> Result<Response<FindDuplicateContactsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("contact_id", &request.contact_id)?;
            let limit = if request.limit <= 0 {
                10
            } else {
                i64::from(request.limit.min(50))
            };
            let mut tx = self.0.begin(&caller).await?;
            let contact = visible_contact(&mut tx, &caller, id, false).await?;
            let duplicates = find_duplicates(&mut tx, &caller, &contact, limit).await?;
            Ok(FindDuplicateContactsResponse { duplicates })
        })
        .await
    }

    async fn merge_contacts(
        &self,
        request: Request<MergeContactsRequest>,
    ) -> Result<Response<MergeContactsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Merge)?;
            let pair = MergePair::parse(&request.survivor_id, &request.merged_id)?;
            let (survivor_id, merged_id) = (pair.survivor, pair.merged);
            let mut tx = self.0.begin(&caller).await?;
            let (first, second) = pair.lock_order();
            let first = visible_contact(&mut tx, &caller, first, true).await?;
            let second = visible_contact(&mut tx, &caller, second, true).await?;
            let (survivor, merged) = pair.arrange(first, second);

            let mut after = survivor.clone();
            if !request.take_from_merged.is_empty() {
                apply_contact_mask(
                    &mut after,
                    merged.clone(),
                    &request.take_from_merged,
                    "take_from_merged",
                )?;
            }
            // The union: the survivor's contact points stay first and primary.
            let not_primary = |mut email: Email| {
                email.primary = false;
                email
            };
            after
                .emails
                .extend(merged.emails.iter().cloned().map(not_primary));
            after
                .phones
                .extend(merged.phones.iter().cloned().map(|mut phone| {
                    phone.primary = false;
                    phone
                }));
            after.handles.extend(merged.handles.iter().cloned());
            after.tags = tags::union(&after.tags, &merged.tags);
            for (key, value) in &merged.custom_fields {
                after
                    .custom_fields
                    .entry(key.clone())
                    .or_insert_with(|| value.clone());
            }
            after.consents = merge_consents(&survivor.consents, &merged.consents);

            store::repoint_references(&mut tx, caller.tenant_id, merged_id, survivor_id).await?;
            let merged_version = records::soft_delete(
                &mut tx,
                Table::Contacts,
                caller.tenant_id,
                merged_id,
                &caller.subject,
            )
            .await?;
            let saved = update_in(&self.0, &mut tx, &caller, None, &survivor, after).await?;
            let event = ContactMerged {
                survivor_id: survivor_id.to_string(),
                merged_id: merged_id.to_string(),
            };
            self.0
                .outbox
                .enqueue(&mut tx, &caller, merged_id, merged_version, &event)
                .await?;
            commit(tx).await?;
            Ok(MergeContactsResponse {
                contact: Some(saved),
            })
        })
        .await
    }

    async fn transfer_contacts(
        &self,
        request: Request<TransferContactsRequest>,
    ) -> Result<Response<TransferContactsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::TransferOwnership)?;
            let from = parse_id("from_owner_id", &request.from_owner_id)?;
            let to = parse_id("to_owner_id", &request.to_owner_id)?;
            let to_team = crate::domain::optional_id("to_team_id", &request.to_team_id)
                .map_err(|v| Error::InvalidArgument(vec![v]))?;
            let mut tx = self.0.begin(&caller).await?;
            let catalog = fields::catalog(&mut tx, caller.tenant_id, Entity::Contact).await?;
            let filter = checked_filter(&catalog, request.filter.as_ref())?;
            let moved = records::transfer(
                &mut tx,
                Table::Contacts,
                caller.tenant_id,
                &scope(&caller),
                from,
                to,
                to_team,
                filter.as_ref(),
                &caller.subject,
            )
            .await?;
            publish_transfers(
                &self.0,
                &mut tx,
                &caller,
                Entity::Contact,
                &moved,
                &from.to_string(),
                &to.to_string(),
                &request.to_team_id,
            )
            .await?;
            commit(tx).await?;
            Ok(TransferContactsResponse {
                transferred: moved.len() as i64,
            })
        })
        .await
    }

    async fn update_consent(
        &self,
        request: Request<UpdateConsentRequest>,
    ) -> Result<Response<UpdateConsentResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let id = parse_id("contact_id", &request.contact_id)?;
            let mut violations = Violations::new();
            if matches!(request.channel(), Channel::Unspecified)
                || Channel::try_from(request.channel).is_err()
            {
                violations.add("channel", "is required");
            }
            if matches!(request.status(), ConsentStatus::Unspecified)
                || ConsentStatus::try_from(request.status).is_err()
            {
                violations.add("status", "is required");
            }
            let source = request.source.trim().to_owned();
            if source.is_empty() || source.chars().count() > 100 {
                violations.add(
                    "source",
                    "must say where the consent came from (1 to 100 characters)",
                );
            }
            violations.into_result()?;
            let mut tx = self.0.begin(&caller).await?;
            let before = visible_contact(&mut tx, &caller, id, true).await?;
            let now = chrono::Utc::now();
            let change = StoredConsent {
                channel: request.channel,
                status: request.status,
                source: source.clone(),
                updated_at: now,
            };
            let mut after = before.clone();
            after.consents.retain(|c| c.channel != request.channel);
            after.consents.push(Consent {
                channel: request.channel,
                status: request.status,
                source: source.clone(),
                updated_at: Some(kit::time::to_timestamp(now)),
            });
            store::record_consent_event(&mut tx, caller.tenant_id, id, &change, &caller.subject)
                .await?;
            let keys = prepare(&mut tx, &caller, &mut after, None).await?;
            let saved =
                store::update(&mut tx, caller.tenant_id, &after, &keys, &caller.subject).await?;
            let event = ConsentChanged {
                contact_id: id.to_string(),
                channel: request.channel,
                status: request.status,
                source,
            };
            self.0
                .outbox
                .enqueue(&mut tx, &caller, id, version_of(&saved.audit), &event)
                .await?;
            commit(tx).await?;
            Ok(UpdateConsentResponse {
                contact: Some(saved),
            })
        })
        .await
    }
}

/// Likely duplicates of `contact`: same e-mail or phone (certain), or a
/// similar name with an e-mail at the same domain (likely).
pub async fn find_duplicates(
    tx: &mut PgConnection,
    caller: &CallerContext,
    contact: &Contact,
    limit: i64,
) -> kit::Result<Vec<ContactDuplicate>> {
    let id = parse_id("contact_id", &contact.id)?;
    let emails: Vec<String> = contact.emails.iter().map(|e| e.address.clone()).collect();
    let phones: Vec<String> = contact.phones.iter().map(|p| p.number.clone()).collect();
    let visible = scope(caller);
    let sees = |c: &Contact| {
        visible.sees(
            Uuid::parse_str(&c.owner_id).ok(),
            Uuid::parse_str(&c.team_id).ok(),
        )
    };
    let mut found: Vec<ContactDuplicate> = Vec::new();
    for candidate in
        store::find_by_contact_points(tx, caller.tenant_id, &emails, &phones, Some(id), limit)
            .await?
    {
        if !sees(&candidate) {
            continue;
        }
        let mut reasons = Vec::new();
        if candidate.emails.iter().any(|e| emails.contains(&e.address)) {
            reasons.push("same e-mail address".to_owned());
        }
        if candidate.phones.iter().any(|p| phones.contains(&p.number)) {
            reasons.push("same phone number".to_owned());
        }
        found.push(ContactDuplicate {
            contact: Some(candidate),
            score: 1.0,
            reasons,
        });
    }
    let name = format!("{} {}", contact.first_name, contact.last_name);
    if name.trim().len() >= 3 {
        let domains: Vec<&str> = emails
            .iter()
            .filter_map(|e| e.rsplit_once('@').map(|(_, d)| d))
            .collect();
        for (candidate, similarity) in
            store::find_similar_names(tx, caller.tenant_id, name.trim(), id, limit).await?
        {
            if found
                .iter()
                .any(|f| f.contact.as_ref().map(|c| &c.id) == Some(&candidate.id))
                || !sees(&candidate)
            {
                continue;
            }
            let same_domain = candidate.emails.iter().any(|e| {
                e.address
                    .rsplit_once('@')
                    .is_some_and(|(_, d)| domains.contains(&d))
            });
            let same_account =
                !contact.account_id.is_empty() && candidate.account_id == contact.account_id;
            if !(same_domain || same_account) {
                continue;
            }
            let mut reasons = vec![format!("similar name ({:.0}%)", similarity * 100.0)];
            reasons.push(if same_domain {
                "e-mail at the same domain".into()
            } else {
                "same account".into()
            });
            found.push(ContactDuplicate {
                contact: Some(candidate),
                score: f64::from(similarity) * 0.9,
                reasons,
            });
        }
    }
    found.truncate(usize::try_from(limit).unwrap_or(10));
    Ok(found)
}
