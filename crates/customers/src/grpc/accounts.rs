//! `crm.customers.v1.AccountService`.

use crm_proto::crm::customers::v1::account_service_server::AccountService;
use crm_proto::crm::customers::v1::*;
use kit::auth::CallerContext;
use kit::paging::{finish_page, Page};
use kit::rpc::{check_version, version_of};
use kit::Error;
use sqlx::PgConnection;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::contacts::default_ownership;
use super::masks::{apply_account_mask, changed_account_fields};
use super::{
    commit, handle, page_response, publish_side_events, publish_transfers, Change, MergePair,
    SharedState, State,
};
use crate::domain::access::{authorize, scope, Action, Scope};
use crate::domain::account::checked;
use crate::domain::custom_fields::FieldCatalog;
use crate::domain::filter::{self, ACCOUNT_COLUMNS};
use crate::domain::{parse_id, tags};
use crate::store::accounts as store;
use crate::store::records::{self, Table};
use crate::store::{fields, Sort, SortKey};

/// The request's filter with its shortcuts (tag, domain, owner) ANDed in.
fn list_filter(request: &ListAccountsRequest) -> kit::Result<Option<Filter>> {
    use prost_types::value::Kind;
    let mut equals = Vec::new();
    if !request.tag.is_empty() {
        equals.push(("tags", Kind::StringValue(request.tag.clone())));
    }
    if !request.domain.is_empty() {
        equals.push((
            "domain",
            Kind::StringValue(request.domain.trim().to_ascii_lowercase()),
        ));
    }
    if !request.owner_id.is_empty() {
        let owner = parse_id("owner_id", &request.owner_id)?;
        equals.push(("owner_id", Kind::StringValue(owner.to_string())));
    }
    Ok(filter::and_equals(request.filter.as_ref(), equals))
}

pub struct AccountHandlers(pub SharedState);

pub async fn visible_account(
    tx: &mut PgConnection,
    caller: &CallerContext,
    id: Uuid,
    lock: bool,
) -> kit::Result<Account> {
    store::find(tx, caller.tenant_id, &scope(caller), id, lock)
        .await?
        .ok_or_else(|| Error::not_found("account", id))
}

async fn prepare(
    tx: &mut PgConnection,
    caller: &CallerContext,
    account: &mut Account,
    catalog: Option<&FieldCatalog>,
) -> kit::Result<crate::domain::account::AccountKeys> {
    let fetched;
    let catalog = match catalog {
        Some(catalog) => catalog,
        None => {
            fetched = fields::catalog(tx, caller.tenant_id, Entity::Account).await?;
            &fetched
        }
    };
    let keys = checked(account, catalog)?;
    if let Ok(parent) = Uuid::parse_str(&account.parent_account_id) {
        if store::find(tx, caller.tenant_id, &Scope::Tenant, parent, false)
            .await?
            .is_none()
        {
            return Err(Error::invalid(
                "account.parent_account_id",
                "no such account",
            ));
        }
    }
    Ok(keys)
}

/// Creates an account inside `tx`, with its event.
pub async fn create_in(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    catalog: Option<&FieldCatalog>,
    mut account: Account,
) -> kit::Result<Account> {
    account.id = Uuid::now_v7().to_string();
    default_ownership(caller, &mut account.owner_id, &mut account.team_id, false)?;
    let keys = prepare(tx, caller, &mut account, catalog).await?;
    let created = store::save(tx, caller.tenant_id, &account, &keys, &caller.subject, true).await?;
    let id = parse_id("account.id", &created.id)?;
    state
        .outbox
        .enqueue(
            tx,
            caller,
            id,
            1,
            &AccountCreated {
                account: Some(created.clone()),
            },
        )
        .await?;
    Ok(created)
}

/// Writes a changed account and publishes what changed.
pub async fn update_in(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    catalog: Option<&FieldCatalog>,
    before: &Account,
    mut after: Account,
) -> kit::Result<Account> {
    let keys = prepare(tx, caller, &mut after, catalog).await?;
    let changed = changed_account_fields(before, &after);
    if changed.is_empty() {
        return Ok(before.clone());
    }
    let saved = store::save(tx, caller.tenant_id, &after, &keys, &caller.subject, false).await?;
    let id = parse_id("account.id", &saved.id)?;
    let version = version_of(&saved.audit);
    let change = Change {
        entity: Entity::Account,
        id,
        version,
        stage: (before.lifecycle_stage, saved.lifecycle_stage),
        owner: (&before.owner_id, &saved.owner_id),
        team: &saved.team_id,
    };
    publish_side_events(state, tx, caller, change).await?;
    state
        .outbox
        .enqueue(
            tx,
            caller,
            id,
            version,
            &AccountUpdated {
                account: Some(saved.clone()),
                changed_fields: changed,
            },
        )
        .await?;
    Ok(saved)
}

#[tonic::async_trait]
impl AccountService for AccountHandlers {
    async fn create_account(
        &self,
        request: Request<CreateAccountRequest>,
    ) -> Result<Response<CreateAccountResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateAccountRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let account = request
                .account
                .ok_or_else(|| Error::invalid("account", "is required"))?;
            let mut tx = self.0.begin(&caller).await?;
            let replayed = kit::idempotency::replayed(
                &mut tx,
                caller.tenant_id,
                "account",
                &request.request_id,
                &fingerprint,
            )
            .await?;
            if let Some(id) = replayed {
                let existing = visible_account(&mut tx, &caller, id, false).await?;
                return Ok(CreateAccountResponse {
                    account: Some(existing),
                });
            }
            let created = create_in(&self.0, &mut tx, &caller, None, account).await?;
            kit::idempotency::remember(
                &mut tx,
                caller.tenant_id,
                "account",
                &request.request_id,
                &fingerprint,
                parse_id("account.id", &created.id)?,
            )
            .await?;
            commit(tx).await?;
            Ok(CreateAccountResponse {
                account: Some(created),
            })
        })
        .await
    }

    async fn get_account(
        &self,
        request: Request<GetAccountRequest>,
    ) -> Result<Response<GetAccountResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            Ok(GetAccountResponse {
                account: Some(visible_account(&mut tx, &caller, id, false).await?),
            })
        })
        .await
    }

    async fn update_account(
        &self,
        request: Request<UpdateAccountRequest>,
    ) -> Result<Response<UpdateAccountResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let changes = request
                .account
                .ok_or_else(|| Error::invalid("account", "is required"))?;
            let id = parse_id("account.id", &changes.id)?;
            let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
            let mut tx = self.0.begin(&caller).await?;
            let before = visible_account(&mut tx, &caller, id, true).await?;
            check_version(
                "account",
                &before.id,
                request.expected_version,
                version_of(&before.audit),
            )?;
            let mut after = before.clone();
            apply_account_mask(&mut after, changes, &paths, "update_mask")?;
            if after.owner_id != before.owner_id || after.team_id != before.team_id {
                default_ownership(&caller, &mut after.owner_id, &mut after.team_id, true)?;
            }
            let saved = update_in(&self.0, &mut tx, &caller, None, &before, after).await?;
            commit(tx).await?;
            Ok(UpdateAccountResponse {
                account: Some(saved),
            })
        })
        .await
    }

    async fn delete_account(
        &self,
        request: Request<DeleteAccountRequest>,
    ) -> Result<Response<DeleteAccountResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Delete)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let account = visible_account(&mut tx, &caller, id, true).await?;
            check_version(
                "account",
                &account.id,
                request.expected_version,
                version_of(&account.audit),
            )?;
            let version = records::soft_delete(
                &mut tx,
                Table::Accounts,
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
                    &AccountDeleted {
                        account_id: id.to_string(),
                    },
                )
                .await?;
            commit(tx).await?;
            Ok(DeleteAccountResponse {})
        })
        .await
    }

    async fn list_accounts(
        &self,
        request: Request<ListAccountsRequest>,
    ) -> Result<Response<ListAccountsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let sort = Sort::parse(&request.order_by, "name")?;
            let page = Page::<SortKey>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let catalog = fields::catalog(&mut tx, caller.tenant_id, Entity::Account).await?;
            let filter = filter::check(
                list_filter(&request)?.as_ref(),
                ACCOUNT_COLUMNS,
                &catalog,
                "filter",
            )?;
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
            let (accounts, next) = finish_page(rows, page.size, |a: &Account| {
                sort.key_of(a.audit.as_ref(), &a.name, &a.id)
            });
            Ok(ListAccountsResponse {
                accounts,
                page: page_response(next),
            })
        })
        .await
    }

    async fn count_accounts(
        &self,
        request: Request<CountAccountsRequest>,
    ) -> Result<Response<CountAccountsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let mut tx = self.0.begin(&caller).await?;
            let catalog = fields::catalog(&mut tx, caller.tenant_id, Entity::Account).await?;
            let filter =
                filter::check(request.filter.as_ref(), ACCOUNT_COLUMNS, &catalog, "filter")?;
            Ok(CountAccountsResponse {
                count: store::count(&mut tx, caller.tenant_id, &scope(&caller), filter.as_ref())
                    .await?,
            })
        })
        .await
    }

    async fn find_duplicate_accounts(
        &self,
        request: Request<FindDuplicateAccountsRequest>,
    ) -> Result<Response<FindDuplicateAccountsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("account_id", &request.account_id)?;
            let limit = if request.limit <= 0 {
                10
            } else {
                i64::from(request.limit.min(50))
            };
            let mut tx = self.0.begin(&caller).await?;
            let account = visible_account(&mut tx, &caller, id, false).await?;
            let visible = scope(&caller);
            let sees = |a: &Account| {
                visible.sees(
                    Uuid::parse_str(&a.owner_id).ok(),
                    Uuid::parse_str(&a.team_id).ok(),
                )
            };
            let mut duplicates = Vec::new();
            if !account.domain.is_empty() {
                for candidate in
                    store::find_by_domain(&mut tx, caller.tenant_id, &account.domain, Some(id))
                        .await?
                {
                    if sees(&candidate) {
                        duplicates.push(AccountDuplicate {
                            account: Some(candidate),
                            score: 1.0,
                            reasons: vec!["same domain".into()],
                        });
                    }
                }
            }
            for (candidate, similarity) in
                store::find_similar_names(&mut tx, caller.tenant_id, &account.name, id, limit)
                    .await?
            {
                if duplicates
                    .iter()
                    .any(|d| d.account.as_ref().map(|a| &a.id) == Some(&candidate.id))
                    || !sees(&candidate)
                {
                    continue;
                }
                let reason = format!("similar name ({:.0}%)", similarity * 100.0);
                duplicates.push(AccountDuplicate {
                    account: Some(candidate),
                    score: f64::from(similarity) * 0.8,
                    reasons: vec![reason],
                });
            }
            duplicates.truncate(usize::try_from(limit).unwrap_or(10));
            Ok(FindDuplicateAccountsResponse { duplicates })
        })
        .await
    }

    async fn merge_accounts(
        &self,
        request: Request<MergeAccountsRequest>,
    ) -> Result<Response<MergeAccountsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Merge)?;
            let pair = MergePair::parse(&request.survivor_id, &request.merged_id)?;
            let (survivor_id, merged_id) = (pair.survivor, pair.merged);
            let mut tx = self.0.begin(&caller).await?;
            let (first, second) = pair.lock_order();
            let first = visible_account(&mut tx, &caller, first, true).await?;
            let second = visible_account(&mut tx, &caller, second, true).await?;
            let (survivor, merged) = pair.arrange(first, second);
            let mut after = survivor.clone();
            if !request.take_from_merged.is_empty() {
                apply_account_mask(
                    &mut after,
                    merged.clone(),
                    &request.take_from_merged,
                    "take_from_merged",
                )?;
            }
            after.tags = tags::union(&after.tags, &merged.tags);
            for (key, value) in &merged.custom_fields {
                after
                    .custom_fields
                    .entry(key.clone())
                    .or_insert_with(|| value.clone());
            }
            if after.parent_account_id == survivor.id || after.parent_account_id == merged.id {
                after.parent_account_id = survivor.parent_account_id.clone();
            }
            store::repoint_references(&mut tx, caller.tenant_id, merged_id, survivor_id).await?;
            let merged_version = records::soft_delete(
                &mut tx,
                Table::Accounts,
                caller.tenant_id,
                merged_id,
                &caller.subject,
            )
            .await?;
            let saved = update_in(&self.0, &mut tx, &caller, None, &survivor, after).await?;
            let event = AccountMerged {
                survivor_id: survivor_id.to_string(),
                merged_id: merged_id.to_string(),
            };
            self.0
                .outbox
                .enqueue(&mut tx, &caller, merged_id, merged_version, &event)
                .await?;
            commit(tx).await?;
            Ok(MergeAccountsResponse {
                account: Some(saved),
            })
        })
        .await
    }

    async fn transfer_accounts(
        &self,
        request: Request<TransferAccountsRequest>,
    ) -> Result<Response<TransferAccountsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::TransferOwnership)?;
            let from = parse_id("from_owner_id", &request.from_owner_id)?;
            let to = parse_id("to_owner_id", &request.to_owner_id)?;
            let to_team = crate::domain::optional_id("to_team_id", &request.to_team_id)
                .map_err(|v| Error::InvalidArgument(vec![v]))?;
            let mut tx = self.0.begin(&caller).await?;
            let catalog = fields::catalog(&mut tx, caller.tenant_id, Entity::Account).await?;
            let filter =
                filter::check(request.filter.as_ref(), ACCOUNT_COLUMNS, &catalog, "filter")?;
            let moved = records::transfer(
                &mut tx,
                Table::Accounts,
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
                Entity::Account,
                &moved,
                &from.to_string(),
                &to.to_string(),
                &request.to_team_id,
            )
            .await?;
            commit(tx).await?;
            Ok(TransferAccountsResponse {
                transferred: moved.len() as i64,
            })
        })
        .await
    }
}
