//! `crm.customers.v1.DataService`: streaming CSV / JSON-lines import with a
//! dry run and dedup policy, streaming CSV export, and data-subject requests
//! (GDPR export and erasure).
//!
//! Import rows are checked in batches on a blocking thread while the
//! previous batch is written, one transaction per batch. A bad row is
//! reported (row, column, reason) and left out alone; it never aborts the
//! good ones. New contacts are written set-based (one INSERT per batch for
//! the rows and one for their events, ADR 0016); merges and accounts go row
//! by row in savepoints. Each written record publishes its event like any
//! other write.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use crm_proto::crm::customers::v1::data_service_server::DataService;
use crm_proto::crm::customers::v1::*;
use futures::Stream;
use kit::auth::CallerContext;
use kit::Error;
use sqlx::PgConnection;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use super::import_gate::Running;
use super::{accounts as account_ops, commit, contacts as contact_ops, handle, SharedState, State};
use crate::domain::access::{authorize, scope, Action};
use crate::domain::contact::ContactKeys;
use crate::domain::custom_fields::{entity_name, FieldCatalog};
use crate::domain::filter::{self, ACCOUNT_COLUMNS, CONTACT_COLUMNS};
use crate::domain::parse_id;
use crate::domain::transfer::{
    account_from_row, account_record, check_header, contact_from_row, contact_record, csv_chunk,
    custom_cell, parse_csv, parse_json_lines, row_errors, stage, ParsedRow, Plan,
    ACCOUNT_EXPORT_COLUMNS, CONTACT_EXPORT_COLUMNS,
};
use crate::store::{accounts, activities, contacts, fields, segments};

pub struct DataHandlers(pub SharedState);

const BATCH_ROWS: usize = 1_000;
const MAX_ERRORS_KEPT: usize = 10_000;

#[derive(Default)]
struct Tally {
    response: ImportResponse,
}

impl Tally {
    fn fail(&mut self, errors: Vec<RowError>) {
        self.response.failed += 1;
        self.response.errors.extend(errors);
        self.response.errors.truncate(MAX_ERRORS_KEPT);
    }

    /// Adds a later batch's outcome.
    fn absorb(&mut self, batch: Tally) {
        let (total, batch) = (&mut self.response, batch.response);
        total.rows_read += batch.rows_read;
        total.created += batch.created;
        total.updated += batch.updated;
        total.skipped += batch.skipped;
        total.failed += batch.failed;
        total.errors.extend(batch.errors);
        total.errors.truncate(MAX_ERRORS_KEPT);
    }
}

enum RowOutcome {
    Created,
    Updated,
    Skipped,
}

/// Writes (or, in a dry run, only checks) one contact row.
async fn import_contact(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    plan: &Plan,
    catalog: &FieldCatalog,
    contact: Contact,
) -> kit::Result<RowOutcome> {
    let mut probe = contact.clone();
    let keys = crate::domain::contact::checked(&mut probe, catalog)?;
    let existing = if plan.dedup == DedupPolicy::Create || keys.email_keys.is_empty() {
        None
    } else {
        contacts::find_by_contact_points(tx, caller.tenant_id, &keys.email_keys, &[], None, 1)
            .await?
            .into_iter()
            .next()
    };
    match (existing, plan.dedup) {
        (Some(_), DedupPolicy::Skip) => Ok(RowOutcome::Skipped),
        (Some(found), _) => {
            let id = parse_id("id", &found.id)?;
            let before = contact_ops::visible_contact(tx, caller, id, true).await?;
            let mut after = before.clone();
            let paths: Vec<String> = imported_contact_fields(&contact);
            super::masks::apply_contact_mask(&mut after, contact.clone(), &paths, "row")?;
            after.emails = before.emails.clone();
            after.emails.extend(contact.emails);
            after.tags = crate::domain::tags::union(&before.tags, &after.tags);
            if plan.dry_run {
                let mut check = after;
                crate::domain::contact::checked(&mut check, catalog)?;
            } else {
                contact_ops::update_in(state, tx, caller, Some(catalog), &before, after).await?;
            }
            Ok(RowOutcome::Updated)
        }
        (None, _) => {
            if !plan.dry_run {
                contact_ops::create_in(state, tx, caller, Some(catalog), contact).await?;
            }
            Ok(RowOutcome::Created)
        }
    }
}

/// Fields a row actually carries (an update leaves the others alone).
fn imported_contact_fields(contact: &Contact) -> Vec<String> {
    let mut paths = Vec::new();
    let mut add = |set: bool, name: &str| {
        if set {
            paths.push(name.to_owned());
        }
    };
    add(!contact.first_name.is_empty(), "first_name");
    add(!contact.middle_name.is_empty(), "middle_name");
    add(!contact.last_name.is_empty(), "last_name");
    add(!contact.title.is_empty(), "title");
    add(!contact.phones.is_empty(), "phones");
    add(!contact.tags.is_empty(), "tags");
    add(contact.lifecycle_stage != 0, "lifecycle_stage");
    add(!contact.language.is_empty(), "language");
    add(!contact.source.is_empty(), "source");
    add(!contact.account_id.is_empty(), "account_id");
    add(!contact.birthday.is_empty(), "birthday");
    add(contact.address.is_some(), "address");
    paths.extend(
        contact
            .custom_fields
            .keys()
            .map(|k| format!("custom_fields.{k}")),
    );
    paths
}

async fn import_account(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    plan: &Plan,
    catalog: &FieldCatalog,
    account: Account,
) -> kit::Result<RowOutcome> {
    let mut probe = account.clone();
    crate::domain::account::checked(&mut probe, catalog)?;
    let existing = if plan.dedup == DedupPolicy::Create || probe.domain.is_empty() {
        None
    } else {
        accounts::find_by_domain(tx, caller.tenant_id, &probe.domain, None)
            .await?
            .into_iter()
            .next()
    };
    match (existing, plan.dedup) {
        (Some(_), DedupPolicy::Skip) => Ok(RowOutcome::Skipped),
        (Some(found), _) => {
            let id = parse_id("id", &found.id)?;
            let before = account_ops::visible_account(tx, caller, id, true).await?;
            let mut after = before.clone();
            let mut paths = vec!["name".to_owned()];
            for (set, name) in [
                (!account.industry.is_empty(), "industry"),
                (!account.website.is_empty(), "website"),
                (!account.phone.is_empty(), "phone"),
                (account.lifecycle_stage != 0, "lifecycle_stage"),
                (account.annual_revenue.is_some(), "annual_revenue"),
                (account.address.is_some(), "address"),
                (!account.credit_rating.is_empty(), "credit_rating"),
                (!account.source.is_empty(), "source"),
            ] {
                if set {
                    paths.push(name.to_owned());
                }
            }
            paths.extend(
                account
                    .custom_fields
                    .keys()
                    .map(|k| format!("custom_fields.{k}")),
            );
            let new_tags = account.tags.clone();
            super::masks::apply_account_mask(&mut after, account, &paths, "row")?;
            after.tags = crate::domain::tags::union(&before.tags, &new_tags);
            if !plan.dry_run {
                account_ops::update_in(state, tx, caller, Some(catalog), &before, after).await?;
            }
            Ok(RowOutcome::Updated)
        }
        (None, _) => {
            if !plan.dry_run {
                account_ops::create_in(state, tx, caller, Some(catalog), account).await?;
            }
            Ok(RowOutcome::Created)
        }
    }
}

/// A row turned into a record, with the CSV column of each field (to name
/// it in errors).
struct Candidate {
    number: i64,
    record: Record,
    columns: HashMap<String, String>,
}

enum Record {
    Contact(Contact),
    Account(Account),
}

/// A contact row as given (the row-by-row path, for merges and retries,
/// starts from it) and as it would be created: id, ownership, normalised
/// fields and keys, exactly as CreateContact prepares it.
struct NewContact {
    given: Candidate,
    contact: Contact,
    keys: ContactKeys,
}

/// A batch after the checks that need no database.
#[derive(Default)]
struct CheckedBatch {
    rows_read: i64,
    /// Each refused row's errors.
    refused: Vec<Vec<RowError>>,
    contacts: Vec<NewContact>,
    accounts: Vec<Candidate>,
}

/// Everything about a batch that needs no database: parse errors, field
/// mapping, validation and normalisation. Runs on a blocking thread while
/// the previous batch is written.
fn check_batch(
    caller: &CallerContext,
    plan: &Plan,
    catalog: &FieldCatalog,
    batch: Vec<ParsedRow>,
) -> CheckedBatch {
    let mut checked = CheckedBatch::default();
    for parsed in batch {
        checked.rows_read += 1;
        let row = match parsed.row {
            Ok(row) => row,
            Err(error) => {
                checked.refused.push(vec![error]);
                continue;
            }
        };
        let numbered = |errors: Vec<RowError>| -> Vec<RowError> {
            errors
                .into_iter()
                .map(|e| RowError {
                    row: parsed.number,
                    ..e
                })
                .collect()
        };
        if plan.entity == Entity::Account {
            let (account, columns, errors) = account_from_row(&row, plan, catalog);
            if errors.is_empty() {
                checked.accounts.push(Candidate {
                    number: parsed.number,
                    record: Record::Account(account),
                    columns,
                });
            } else {
                checked.refused.push(numbered(errors));
            }
            continue;
        }
        let (given, columns, errors) = contact_from_row(&row, plan, catalog);
        if !errors.is_empty() {
            checked.refused.push(numbered(errors));
            continue;
        }
        let mut contact = given.clone();
        let keys = contact_ops::make_new(caller, &mut contact)
            .and_then(|()| crate::domain::contact::checked(&mut contact, catalog));
        match keys {
            Ok(keys) => checked.contacts.push(NewContact {
                given: Candidate {
                    number: parsed.number,
                    record: Record::Contact(given),
                    columns,
                },
                contact,
                keys,
            }),
            Err(error) => checked
                .refused
                .push(row_errors(parsed.number, error, &columns)),
        }
    }
    checked
}

/// Writes a checked batch in one transaction (rolled back in a dry run) and
/// answers its outcome.
async fn write_batch(
    (state, caller, plan, catalog): Pipeline,
    batch: CheckedBatch,
) -> kit::Result<Tally> {
    let (caller, plan, catalog) = (&*caller, &*plan, &*catalog);
    let mut tally = Tally::default();
    tally.response.rows_read += batch.rows_read;
    for errors in batch.refused {
        tally.fail(errors);
    }
    let mut tx = state.begin(caller).await?;
    let accounts = batch.accounts;
    import_one_by_one(&state, &mut tx, caller, plan, catalog, accounts, &mut tally).await?;
    import_contacts(
        &state,
        &mut tx,
        caller,
        plan,
        catalog,
        batch.contacts,
        &mut tally,
    )
    .await?;
    if plan.dry_run {
        tx.rollback().await.map_err(Error::from)?;
    } else {
        commit(tx).await?;
    }
    Ok(tally)
}

/// What every stage of an import shares.
type Pipeline = (
    SharedState,
    Arc<CallerContext>,
    Arc<Plan>,
    Arc<FieldCatalog>,
);

/// Each row in its own savepoint: a bad row is reported and rolled back
/// alone.
async fn import_one_by_one(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    plan: &Plan,
    catalog: &FieldCatalog,
    candidates: Vec<Candidate>,
    tally: &mut Tally,
) -> kit::Result<()> {
    for candidate in candidates {
        let mut savepoint = sqlx::Acquire::begin(&mut *tx).await.map_err(Error::from)?;
        let result = match candidate.record {
            Record::Account(account) => {
                import_account(state, &mut savepoint, caller, plan, catalog, account).await
            }
            Record::Contact(contact) => {
                import_contact(state, &mut savepoint, caller, plan, catalog, contact).await
            }
        };
        match result {
            Ok(outcome) => {
                savepoint.commit().await.map_err(Error::from)?;
                match outcome {
                    RowOutcome::Created => tally.response.created += 1,
                    RowOutcome::Updated => tally.response.updated += 1,
                    RowOutcome::Skipped => tally.response.skipped += 1,
                }
            }
            Err(error) => {
                let _ = savepoint.rollback().await;
                tally.fail(row_errors(candidate.number, error, &candidate.columns));
            }
        }
    }
    Ok(())
}

/// Contacts, set-based: account references and duplicates are looked up
/// for the whole batch at once, and the new contacts and their
/// `contact.created` events are written with one INSERT each (ADR 0016).
/// Rows that merge into an existing contact (dedup `UPDATE`) go one by one
/// after that, as does the whole batch should the set-based write fail, so
/// a row the database refuses is still reported alone.
async fn import_contacts(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    plan: &Plan,
    catalog: &FieldCatalog,
    checked: Vec<NewContact>,
    tally: &mut Tally,
) -> kit::Result<()> {
    if checked.is_empty() {
        return Ok(());
    }
    let account_of = |new: &NewContact| Uuid::parse_str(&new.contact.account_id).ok();

    // Account references: one query for the batch.
    let referenced: Vec<Uuid> = checked.iter().filter_map(account_of).collect();
    let live = accounts::live_ids(tx, caller.tenant_id, &referenced).await?;
    let (checked, dangling): (Vec<_>, Vec<_>) = checked
        .into_iter()
        .partition(|new| account_of(new).is_none_or(|id| live.contains(&id)));
    for new in dangling {
        tally.fail(row_errors(
            new.given.number,
            Error::invalid("contact.account_id", "no such account"),
            &new.given.columns,
        ));
    }

    // Duplicates by e-mail, against stored contacts and earlier rows of the
    // batch (which the row-by-row path would have created first).
    let (fresh, merging) = if plan.dedup == DedupPolicy::Create {
        (checked, Vec::new())
    } else {
        let points: Vec<String> = checked
            .iter()
            .flat_map(|new| new.keys.email_keys.iter().cloned())
            .collect();
        let stored = contacts::existing_points(tx, caller.tenant_id, &points).await?;
        let (mut fresh, mut merging, mut seen) = (Vec::new(), Vec::new(), HashSet::new());
        for new in checked {
            let duplicate = new
                .keys
                .email_keys
                .iter()
                .any(|k| stored.contains(k) || seen.contains(k));
            seen.extend(new.keys.email_keys.iter().cloned());
            match (duplicate, plan.dedup) {
                (false, _) => fresh.push(new),
                (true, DedupPolicy::Skip) => tally.response.skipped += 1,
                (true, _) => merging.push(new.given),
            }
        }
        (fresh, merging)
    };

    if plan.dry_run {
        tally.response.created += fresh.len() as i64;
    } else if !fresh.is_empty() {
        let mut savepoint = sqlx::Acquire::begin(&mut *tx).await.map_err(Error::from)?;
        match insert_new_contacts(state, &mut savepoint, caller, &fresh).await {
            Ok(created) => {
                savepoint.commit().await.map_err(Error::from)?;
                tally.response.created += created as i64;
            }
            Err(error) => {
                let _ = savepoint.rollback().await;
                tracing::warn!(error = ?error, "set-based import write refused; retrying the batch row by row");
                let again = fresh.into_iter().map(|new| new.given).collect();
                import_one_by_one(state, tx, caller, plan, catalog, again, tally).await?;
            }
        }
    }
    import_one_by_one(state, tx, caller, plan, catalog, merging, tally).await
}

/// The batch's new contacts and one `contact.created` event for each.
async fn insert_new_contacts(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    fresh: &[NewContact],
) -> kit::Result<usize> {
    let rows: Vec<(&Contact, &ContactKeys)> = fresh.iter().map(|n| (&n.contact, &n.keys)).collect();
    let created = contacts::insert_many(tx, caller.tenant_id, &rows, &caller.subject).await?;
    let events: Vec<(Uuid, ContactCreated)> = created
        .into_iter()
        .map(|contact| {
            let id = parse_id("contact.id", &contact.id)?;
            Ok((
                id,
                ContactCreated {
                    contact: Some(contact),
                },
            ))
        })
        .collect::<kit::Result<_>>()?;
    state
        .outbox
        .enqueue_many(tx, caller, events.iter().map(|(id, e)| (*id, 1, e)))
        .await?;
    Ok(events.len())
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Runs an import as a pipeline: the upload is parsed as chunks arrive
/// (blocking thread), batches are checked one ahead of the writer (another
/// blocking thread), and the writer applies them in order, reporting
/// progress after each batch and a summary at the end.
async fn run_import(
    state: SharedState,
    caller: CallerContext,
    plan: Plan,
    (mut inbound, mut running): (Streaming<ImportRequest>, Running),
    progress: mpsc::Sender<Result<ImportResponse, Status>>,
) {
    // Custom field definitions as they are when the import starts.
    let catalog = match state.begin(&caller).await {
        Ok(mut tx) => fields::catalog(&mut tx, caller.tenant_id, plan.entity)
            .await
            .map_err(Error::from),
        Err(error) => Err(error),
    };
    let catalog = match catalog {
        Ok(catalog) => Arc::new(catalog),
        Err(error) => {
            let _ = progress.send(Err(Status::from(error))).await;
            return;
        }
    };
    let (plan, caller) = (Arc::new(plan), Arc::new(caller));
    let (chunk_tx, chunk_rx) = mpsc::channel::<Bytes>(16);
    let (row_tx, mut row_rx) = mpsc::channel::<ParsedRow>(BATCH_ROWS * 2);
    let parser = match plan.format {
        ImportFormat::JsonLines => tokio::spawn(parse_json_lines(chunk_rx, row_tx)),
        _ => {
            let blocking = tokio::task::spawn_blocking(move || parse_csv(chunk_rx, row_tx));
            tokio::spawn(async move {
                let _ = blocking.await;
            })
        }
    };
    let feeder_progress = progress.clone();
    let feeder_state = state.clone();
    let feeder = tokio::spawn(async move {
        while let Some(message) = inbound.next().await {
            match message {
                Ok(ImportRequest {
                    part: Some(import_request::Part::Chunk(chunk)),
                }) => {
                    // Past the import's cap or the tenant's hourly volume
                    // the upload stops; the rows before it are reported.
                    if let Err(status) = feeder_state.imports.upload(&mut running, chunk.len()) {
                        let _ = feeder_progress.send(Err(status)).await;
                        return;
                    }
                    if chunk_tx.send(Bytes::from(chunk)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {
                    let _ = feeder_progress
                        .send(Err(Status::invalid_argument(
                            "part: only the first message carries a header",
                        )))
                        .await;
                    return;
                }
                Err(status) => {
                    tracing::warn!(%status, "import upload interrupted");
                    return;
                }
            }
        }
    });
    // One checked batch waits while the writer writes the one before.
    let (checked_tx, mut checked_rx) = mpsc::channel::<CheckedBatch>(1);
    let (check_caller, check_plan, check_catalog) = (caller.clone(), plan.clone(), catalog.clone());
    let checker = tokio::spawn(async move {
        loop {
            let mut batch = Vec::with_capacity(BATCH_ROWS);
            if row_rx.recv_many(&mut batch, BATCH_ROWS).await == 0 {
                return;
            }
            while batch.len() < BATCH_ROWS {
                let wanted = BATCH_ROWS - batch.len();
                if row_rx.recv_many(&mut batch, wanted).await == 0 {
                    break;
                }
            }
            let (caller, plan, catalog) = (
                check_caller.clone(),
                check_plan.clone(),
                check_catalog.clone(),
            );
            let checked =
                tokio::task::spawn_blocking(move || check_batch(&caller, &plan, &catalog, batch))
                    .await;
            let Ok(checked) = checked else { return };
            if checked_tx.send(checked).await.is_err() {
                return;
            }
        }
    });

    // New contacts without deduplication do not depend on each other's
    // batches, so two are written at once, each on its own connection (a
    // PostgreSQL backend is what bounds an import); with deduplication a
    // batch must see the ones before it committed.
    let writers = if plan.dedup == DedupPolicy::Create && plan.entity != Entity::Account {
        2
    } else {
        1
    };
    let pipeline: Pipeline = (state.clone(), caller.clone(), plan.clone(), catalog.clone());
    let mut in_flight = std::collections::VecDeque::new();
    let (mut tally, mut sent_errors, mut failure) = (Tally::default(), 0, None);
    loop {
        while failure.is_none() && in_flight.len() < writers {
            let Some(batch) = checked_rx.recv().await else {
                break;
            };
            in_flight.push_back(tokio::spawn(write_batch(pipeline.clone(), batch)));
        }
        // Results are taken in batch order. After a failure the batches
        // already being written still finish and are reported before the
        // error, so the summary never misses a committed row.
        let Some(next) = in_flight.pop_front() else {
            break;
        };
        match next.await {
            Ok(Ok(batch)) => tally.absorb(batch),
            Ok(Err(error)) => {
                failure.get_or_insert(error);
                continue;
            }
            Err(crashed) => {
                failure.get_or_insert(Error::Internal(anyhow::anyhow!("import writer: {crashed}")));
                continue;
            }
        }
        if !plan.dry_run {
            let mut update = tally.response.clone();
            update.errors = update.errors[sent_errors..].to_vec();
            sent_errors = tally.response.errors.len();
            if progress.send(Ok(update)).await.is_err() {
                return;
            }
        }
    }
    if let Some(error) = failure {
        let _ = progress.send(Err(Status::from(error))).await;
        return;
    }
    let _ = feeder.await;
    let _ = parser.await;
    let _ = checker.await;
    let mut summary = tally.response;
    if !plan.dry_run {
        summary.errors = summary.errors[sent_errors.min(summary.errors.len())..].to_vec();
    }
    summary.done = true;
    let _ = progress.send(Ok(summary)).await;
}

/// Streams the export page by page, each page in its own short transaction.
async fn run_export(
    state: SharedState,
    caller: CallerContext,
    entity: Entity,
    filter: Option<Filter>,
    out: mpsc::Sender<Result<ExportResponse, Status>>,
) -> kit::Result<()> {
    let columns = if entity == Entity::Account {
        ACCOUNT_COLUMNS
    } else {
        CONTACT_COLUMNS
    };
    let mut tx = state.begin(&caller).await?;
    let catalog = fields::catalog(&mut tx, caller.tenant_id, entity).await?;
    let filter = filter::check(filter.as_ref(), columns, &catalog, "filter")?;
    let custom_keys: Vec<String> = fields::list(&mut tx, caller.tenant_id, entity_name(entity))
        .await?
        .into_iter()
        .map(|d| d.key)
        .collect();
    drop(tx);
    let mut header: Vec<String> = if entity == Entity::Account {
        ACCOUNT_EXPORT_COLUMNS
    } else {
        CONTACT_EXPORT_COLUMNS
    }
    .iter()
    .map(|s| s.to_string())
    .collect();
    header.extend(custom_keys.iter().map(|k| format!("custom.{k}")));
    if out
        .send(
            csv_chunk(&[header])
                .map(|chunk| ExportResponse { chunk })
                .map_err(Status::from),
        )
        .await
        .is_err()
    {
        return Ok(());
    }
    let visible = scope(&caller);
    let mut after: Option<Uuid> = None;
    loop {
        let mut tx = state.begin(&caller).await?;
        let (records, last) = if entity == Entity::Account {
            let page = accounts::ids_after(
                &mut tx,
                caller.tenant_id,
                &visible,
                filter.as_ref(),
                after,
                1000,
            )
            .await?;
            (
                page.iter()
                    .map(|a| account_record(a, &custom_keys))
                    .collect::<Vec<_>>(),
                page.last().map(|a| a.id.clone()),
            )
        } else {
            let page = contacts::ids_after(
                &mut tx,
                caller.tenant_id,
                &visible,
                filter.as_ref(),
                None,
                after,
                1000,
            )
            .await?;
            (
                page.iter()
                    .map(|c| contact_record(c, &custom_keys))
                    .collect::<Vec<_>>(),
                page.last().map(|c| c.id.clone()),
            )
        };
        drop(tx);
        let Some(last) = last else { return Ok(()) };
        after = Uuid::parse_str(&last).ok();
        if out
            .send(
                csv_chunk(&records)
                    .map(|chunk| ExportResponse { chunk })
                    .map_err(Status::from),
            )
            .await
            .is_err()
        {
            return Ok(());
        }
        if records.len() < 1000 {
            return Ok(());
        }
    }
}

fn activity_json(activity: &Activity) -> serde_json::Value {
    let time =
        |t: Option<&prost_types::Timestamp>| t.and_then(|t| kit::time::from_timestamp("", t).ok());
    serde_json::json!({
        "id": activity.id,
        "kind": ActivityKind::try_from(activity.kind).map(|k| k.as_str_name()).unwrap_or(""),
        "subject": activity.subject,
        "body": activity.body,
        "occurred_at": time(activity.occurred_at.as_ref()),
        "outcome": activity.outcome,
        "attendees": activity.attendees,
    })
}

#[tonic::async_trait]
impl DataService for DataHandlers {
    type ImportStream = ResponseStream<ImportResponse>;
    type ExportStream = ResponseStream<ExportResponse>;

    async fn import(
        &self,
        request: Request<Streaming<ImportRequest>>,
    ) -> Result<Response<Self::ImportStream>, Status> {
        let caller = kit::auth::caller(&request)?;
        authorize(&caller, Action::ImportExport)?;
        let mut inbound = request.into_inner();
        let header = match inbound.next().await {
            Some(Ok(ImportRequest {
                part: Some(import_request::Part::Header(header)),
            })) => header,
            Some(Err(status)) => return Err(status),
            _ => {
                return Err(Error::invalid(
                    "header",
                    "the first message must carry the import header",
                )
                .into())
            }
        };
        let plan = check_header(header)?;
        let running = self.0.imports.start(caller.tenant_id)?;
        let (progress, receiver) = mpsc::channel(16);
        tokio::spawn(run_import(
            self.0.clone(),
            caller,
            plan,
            (inbound, running),
            progress,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn export(
        &self,
        request: Request<ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let caller = kit::auth::caller(&request)?;
        authorize(&caller, Action::ImportExport)?;
        let request = request.into_inner();
        let entity = request.entity();
        if entity == Entity::Unspecified {
            return Err(
                Error::invalid("entity", "must be ENTITY_CONTACT or ENTITY_ACCOUNT").into(),
            );
        }
        // Check the filter before the stream starts, so a bad one is a plain error.
        let mut tx = self.0.begin(&caller).await?;
        let catalog = fields::catalog(&mut tx, caller.tenant_id, entity)
            .await
            .map_err(Error::from)?;
        let columns = if entity == Entity::Account {
            ACCOUNT_COLUMNS
        } else {
            CONTACT_COLUMNS
        };
        filter::check(request.filter.as_ref(), columns, &catalog, "filter")?;
        let file = if entity == Entity::Account {
            "accounts.csv"
        } else {
            "contacts.csv"
        };
        audit(&self.0, &mut tx, &caller, "data.exported", file).await?;
        commit(tx).await?;
        let (out, receiver) = mpsc::channel(4);
        let state = self.0.clone();
        tokio::spawn(async move {
            if let Err(error) = run_export(state, caller, entity, request.filter, out.clone()).await
            {
                let _ = out.send(Err(Status::from(error))).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn export_contact_data(
        &self,
        request: Request<ExportContactDataRequest>,
    ) -> Result<Response<ExportContactDataResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::ImportExport)?;
            let id = parse_id("contact_id", &request.contact_id)?;
            let mut tx = self.0.begin(&caller).await?;
            let contact = contact_ops::visible_contact(&mut tx, &caller, id, false).await?;
            let activities = activities::all_of_contact(&mut tx, caller.tenant_id, id).await?;
            let memberships = segments::memberships(&mut tx, caller.tenant_id, id).await?;
            let consents = contacts::consent_history(&mut tx, caller.tenant_id, id).await?;
            let address = contact.address.clone().unwrap_or_default();
            let document = serde_json::json!({
                "contact": {
                    "id": contact.id,
                    "first_name": contact.first_name,
                    "middle_name": contact.middle_name,
                    "last_name": contact.last_name,
                    "title": contact.title,
                    "birthday": contact.birthday,
                    "emails": contact.emails,
                    "phones": contact.phones,
                    "handles": contact.handles,
                    "address": address,
                    "language": contact.language,
                    "lifecycle_stage": stage(contact.lifecycle_stage),
                    "tags": contact.tags,
                    "custom_fields": contact.custom_fields.keys().map(|k| (k.clone(), custom_cell(&contact.custom_fields, k))).collect::<HashMap<_, _>>(),
                    "source": contact.source,
                },
                "activities": activities.iter().map(activity_json).collect::<Vec<_>>(),
                "segments": memberships,
                "consent_history": consents,
                "exported_at": chrono::Utc::now(),
            });
            audit(&self.0, &mut tx, &caller, "contact.personal_data_exported", &id.to_string()).await?;
            commit(tx).await?;
            tracing::info!(contact_id = %id, actor = %caller.subject, "personal data exported");
            Ok(ExportContactDataResponse { json: document.to_string() })
        })
        .await
    }

    async fn erase_contact(
        &self,
        request: Request<EraseContactRequest>,
    ) -> Result<Response<EraseContactResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Erase)?;
            let id = parse_id("contact_id", &request.contact_id)?;
            let mut tx = self.0.begin(&caller).await?;
            if !contacts::exists_any(&mut tx, caller.tenant_id, id).await? {
                return Err(Error::not_found("contact", id));
            }
            let erased = contacts::erase(&mut tx, caller.tenant_id, id, &caller.subject).await?;
            let hashes = erased
                .contact_points
                .iter()
                .map(|point| kit::events::contact_point_hash(caller.tenant_id, point))
                .collect();
            self.0
                .outbox
                .enqueue(
                    &mut tx,
                    &caller,
                    id,
                    erased.version,
                    &ContactErased {
                        contact_id: id.to_string(),
                        contact_point_hashes: hashes,
                    },
                )
                .await?;
            audit(&self.0, &mut tx, &caller, "contact.erased", &id.to_string()).await?;
            commit(tx).await?;
            tracing::info!(contact_id = %id, actor = %caller.subject, "contact erased");
            Ok(EraseContactResponse {})
        })
        .await
    }
}

/// Records a sensitive operation where it happens: `audit.recorded` in the
/// same transaction, whatever protocol reached the service (the gateway
/// files it in the tenant's audit log).
async fn audit(
    state: &State,
    tx: &mut sqlx::PgConnection,
    caller: &CallerContext,
    action: &str,
    target: &str,
) -> kit::Result<()> {
    let record = AuditRecorded {
        action: action.to_owned(),
        target: target.to_owned(),
    };
    state
        .outbox
        .enqueue(tx, caller, Uuid::now_v7(), 1, &record)
        .await?;
    Ok(())
}
