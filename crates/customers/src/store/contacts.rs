//! Contacts table.

use chrono::{DateTime, NaiveDate, Utc};
use crm_proto::crm::customers::v1::{Address, Consent, Contact, Email, Handle, Phone};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::PgConnection;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::records::{self, Table};
use super::{audit, id_string, parse_optional, Sort, SortKey};
use crate::domain::access::Scope;
use crate::domain::contact::ContactKeys;
use crate::domain::custom_fields::to_proto_values;
use crate::domain::filter::FilterExpr;

pub const COLUMNS: &str = "id, first_name, middle_name, last_name, title, account_id, birthday, address, emails, phones, \
    handles, preferred_channel, language, consents, lifecycle_stage, owner_id, team_id, tags, custom, source, \
    created_at, created_by, updated_at, updated_by, version";

/// Consent as stored in the `consents` JSON column.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredConsent {
    pub channel: i32,
    pub status: i32,
    pub source: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub struct ContactRow {
    pub id: Uuid,
    pub first_name: String,
    pub middle_name: String,
    pub last_name: String,
    pub title: String,
    pub account_id: Option<Uuid>,
    pub birthday: Option<NaiveDate>,
    pub address: Json<Option<Address>>,
    pub emails: Json<Vec<Email>>,
    pub phones: Json<Vec<Phone>>,
    pub handles: Json<Vec<Handle>>,
    pub preferred_channel: i32,
    pub language: String,
    pub consents: Json<Vec<StoredConsent>>,
    pub lifecycle_stage: i32,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub tags: Vec<String>,
    pub custom: Json<serde_json::Value>,
    pub source: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
    pub version: i64,
}

impl ContactRow {
    pub fn into_proto(self) -> Contact {
        Contact {
            id: self.id.to_string(),
            first_name: self.first_name,
            middle_name: self.middle_name,
            last_name: self.last_name,
            title: self.title,
            account_id: id_string(self.account_id),
            birthday: self.birthday.map(|d| d.to_string()).unwrap_or_default(),
            address: self.address.0.filter(|a| a != &Address::default()),
            emails: self.emails.0,
            phones: self.phones.0,
            handles: self.handles.0,
            preferred_channel: self.preferred_channel,
            language: self.language,
            consents: self
                .consents
                .0
                .into_iter()
                .map(|c| Consent {
                    channel: c.channel,
                    status: c.status,
                    source: c.source,
                    updated_at: Some(kit::time::to_timestamp(c.updated_at)),
                })
                .collect(),
            lifecycle_stage: self.lifecycle_stage,
            owner_id: id_string(self.owner_id),
            team_id: id_string(self.team_id),
            tags: self.tags,
            custom_fields: to_proto_values(&self.custom.0),
            source: self.source,
            audit: audit(
                self.created_at,
                self.created_by,
                self.updated_at,
                self.updated_by,
                self.version,
            ),
        }
    }
}

/// Stored consents of a contact message (kept as they are on update).
pub fn stored_consents(contact: &Contact) -> Vec<StoredConsent> {
    contact
        .consents
        .iter()
        .map(|c| StoredConsent {
            channel: c.channel,
            status: c.status,
            source: c.source.clone(),
            updated_at: c
                .updated_at
                .as_ref()
                .and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
                .unwrap_or_else(Utc::now),
        })
        .collect()
}

/// Inserts a normalised contact; `contact.id` must be set.
pub async fn insert(
    tx: &mut PgConnection,
    tenant: Uuid,
    contact: &Contact,
    keys: &ContactKeys,
    actor: &str,
) -> sqlx::Result<Contact> {
    save(tx, tenant, contact, keys, actor, true).await
}

/// Inserts many normalised contacts (ids set) in one statement and returns
/// them as stored, in the order given. The import's batches go through
/// here: one round trip and one index-maintenance pass per batch instead of
/// one per row (the search index and contact points are kept by a
/// statement-level trigger over the inserted rows).
pub async fn insert_many(
    tx: &mut PgConnection,
    tenant: Uuid,
    contacts: &[(&Contact, &ContactKeys)],
    actor: &str,
) -> sqlx::Result<Vec<Contact>> {
    if contacts.is_empty() {
        return Ok(Vec::new());
    }
    // Text arrays of different lengths cannot be one SQL array, so each
    // row's list travels as JSON and is unpacked into text[] by the server.
    let to_text_array =
        |column: &str| format!("ARRAY(SELECT jsonb_array_elements_text(r.{column}))");
    let sql = format!(
        "INSERT INTO contacts (tenant_id, id, first_name, middle_name, last_name, title, account_id, birthday,
            address, emails, phones, handles, email_keys, phone_keys, preferred_channel, language, consents,
            lifecycle_stage, owner_id, team_id, tags, custom, source, search_text,
            created_at, created_by, updated_at, updated_by, version)
         SELECT $1, r.id, r.first_name, r.middle_name, r.last_name, r.title, r.account_id, r.birthday,
            r.address, r.emails, r.phones, r.handles, {}, {}, r.preferred_channel, r.language, r.consents,
            r.lifecycle_stage, r.owner_id, r.team_id, {}, r.custom, r.source, r.search_text,
            now(), $25, now(), $25, 1
           FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::uuid[], $8::date[],
                       $9::jsonb[], $10::jsonb[], $11::jsonb[], $12::jsonb[], $13::jsonb[], $14::jsonb[],
                       $15::int[], $16::text[], $17::jsonb[], $18::int[], $19::uuid[], $20::uuid[],
                       $21::jsonb[], $22::jsonb[], $23::text[], $24::text[])
                WITH ORDINALITY AS r (id, first_name, middle_name, last_name, title, account_id, birthday,
                       address, emails, phones, handles, email_keys, phone_keys, preferred_channel, language,
                       consents, lifecycle_stage, owner_id, team_id, tags, custom, source, search_text, n)
          ORDER BY r.n
         RETURNING {COLUMNS}",
        to_text_array("email_keys"),
        to_text_array("phone_keys"),
        to_text_array("tags"),
    );
    let rows: Vec<ContactRow> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(each(contacts, |c, _| parse_optional(&c.id)))
        .bind(each(contacts, |c, _| c.first_name.as_str()))
        .bind(each(contacts, |c, _| c.middle_name.as_str()))
        .bind(each(contacts, |c, _| c.last_name.as_str()))
        .bind(each(contacts, |c, _| c.title.as_str()))
        .bind(each(contacts, |c, _| parse_optional(&c.account_id)))
        .bind(each(contacts, |c, _| {
            NaiveDate::parse_from_str(&c.birthday, "%Y-%m-%d").ok()
        }))
        .bind(each(contacts, |c, _| Json(&c.address)))
        .bind(each(contacts, |c, _| Json(&c.emails)))
        .bind(each(contacts, |c, _| Json(&c.phones)))
        .bind(each(contacts, |c, _| Json(&c.handles)))
        .bind(each(contacts, |_, k| Json(&k.email_keys)))
        .bind(each(contacts, |_, k| Json(&k.phone_keys)))
        .bind(each(contacts, |c, _| c.preferred_channel))
        .bind(each(contacts, |c, _| c.language.as_str()))
        .bind(each(contacts, |c, _| Json(stored_consents(c))))
        .bind(each(contacts, |c, _| c.lifecycle_stage))
        .bind(each(contacts, |c, _| parse_optional(&c.owner_id)))
        .bind(each(contacts, |c, _| parse_optional(&c.team_id)))
        .bind(each(contacts, |c, _| Json(&c.tags)))
        .bind(each(contacts, |_, k| Json(&k.custom)))
        .bind(each(contacts, |c, _| c.source.as_str()))
        .bind(each(contacts, |_, k| k.search_text.as_str()))
        .bind(actor)
        .fetch_all(&mut *tx)
        .await?;
    // RETURNING gives no order guarantee; put the rows back in input order.
    let mut by_id: std::collections::HashMap<Uuid, Contact> =
        rows.into_iter().map(|r| (r.id, r.into_proto())).collect();
    Ok(contacts
        .iter()
        .filter_map(|(c, _)| parse_optional(&c.id).and_then(|id| by_id.remove(&id)))
        .collect())
}

/// One bound array: `f` applied to every contact of a batch.
fn each<'a, T>(
    contacts: &[(&'a Contact, &'a ContactKeys)],
    f: impl Fn(&'a Contact, &'a ContactKeys) -> T,
) -> Vec<T> {
    contacts.iter().map(|&(c, k)| f(c, k)).collect()
}

/// Which of `points` (normalised e-mail addresses or phone numbers) belong
/// to a live contact of the tenant: the import's duplicate check for a
/// whole batch in one btree lookup.
pub async fn existing_points(
    tx: &mut PgConnection,
    tenant: Uuid,
    points: &[String],
) -> sqlx::Result<std::collections::HashSet<String>> {
    if points.is_empty() {
        return Ok(Default::default());
    }
    let found: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT point FROM contact_points WHERE tenant_id = $1 AND point = ANY($2)",
    )
    .bind(tenant)
    .bind(points)
    .fetch_all(&mut *tx)
    .await?;
    Ok(found.into_iter().map(|(p,)| p).collect())
}

/// Writes every field of a normalised contact and bumps its version.
pub async fn update(
    tx: &mut PgConnection,
    tenant: Uuid,
    contact: &Contact,
    keys: &ContactKeys,
    actor: &str,
) -> sqlx::Result<Contact> {
    save(tx, tenant, contact, keys, actor, false).await
}

/// One set of bound values for both statements, so a new column is bound
/// once.
async fn save(
    tx: &mut PgConnection,
    tenant: Uuid,
    contact: &Contact,
    keys: &ContactKeys,
    actor: &str,
    insert: bool,
) -> sqlx::Result<Contact> {
    let sql = if insert {
        format!(
            "INSERT INTO contacts (tenant_id, id, first_name, middle_name, last_name, title, account_id, birthday,
                address, emails, phones, handles, email_keys, phone_keys, preferred_channel, language, consents,
                lifecycle_stage, owner_id, team_id, tags, custom, source, search_text,
                created_at, created_by, updated_at, updated_by, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
                $21, $22, $23, $24, now(), $25, now(), $25, 1)
             RETURNING {COLUMNS}"
        )
    } else {
        format!(
            "UPDATE contacts SET first_name = $3, middle_name = $4, last_name = $5, title = $6, account_id = $7,
                birthday = $8, address = $9, emails = $10, phones = $11, handles = $12, email_keys = $13,
                phone_keys = $14, preferred_channel = $15, language = $16, consents = $17, lifecycle_stage = $18,
                owner_id = $19, team_id = $20, tags = $21, custom = $22, source = $23, search_text = $24,
                updated_at = now(), updated_by = $25, version = version + 1
              WHERE tenant_id = $1 AND id = $2
              RETURNING {COLUMNS}"
        )
    };
    let row: ContactRow = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(parse_optional(&contact.id))
        .bind(&contact.first_name)
        .bind(&contact.middle_name)
        .bind(&contact.last_name)
        .bind(&contact.title)
        .bind(parse_optional(&contact.account_id))
        .bind(NaiveDate::parse_from_str(&contact.birthday, "%Y-%m-%d").ok())
        .bind(Json(&contact.address))
        .bind(Json(&contact.emails))
        .bind(Json(&contact.phones))
        .bind(Json(&contact.handles))
        .bind(&keys.email_keys)
        .bind(&keys.phone_keys)
        .bind(contact.preferred_channel)
        .bind(&contact.language)
        .bind(Json(stored_consents(contact)))
        .bind(contact.lifecycle_stage)
        .bind(parse_optional(&contact.owner_id))
        .bind(parse_optional(&contact.team_id))
        .bind(&contact.tags)
        .bind(Json(&keys.custom))
        .bind(&contact.source)
        .bind(&keys.search_text)
        .bind(actor)
        .fetch_one(&mut *tx)
        .await?;
    Ok(row.into_proto())
}

/// A live contact, locked for update when `lock` is set.
/// The row of `id` with its deletion time. The lookup names only the
/// primary key: a `deleted_at IS NULL` condition here would let the planner
/// pick a partial index on the tenant and scan all its rows for one id.
#[derive(sqlx::FromRow)]
struct FoundRow {
    #[sqlx(flatten)]
    row: ContactRow,
    deleted_at: Option<DateTime<Utc>>,
}

/// One live contact by id, if `scope` sees it.
pub async fn find(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<Contact>> {
    let found: Option<FoundRow> = scope
        .select_one(
            &format!("{COLUMNS}, deleted_at"),
            "contacts",
            tenant,
            id,
            lock,
        )
        .build_query_as()
        .fetch_optional(&mut *tx)
        .await?;
    Ok(found
        .filter(|f| f.deleted_at.is_none())
        .map(|f| f.row.into_proto()))
}

fn select_visible<'a>(
    columns: &str,
    tenant: Uuid,
    scope: &Scope,
    filter: Option<&FilterExpr>,
    member_of: Option<Uuid>,
) -> QueryBuilder<'a, Postgres> {
    let mut query = records::select_visible(Table::Contacts, columns, tenant, scope, filter);
    if let Some(segment) = member_of {
        query
            .push(" AND id IN (SELECT contact_id FROM segment_members WHERE tenant_id = ")
            .push_bind(tenant)
            .push(" AND segment_id = ")
            .push_bind(segment)
            .push(")");
    }
    query
}

/// One page of visible contacts matching `filter`, plus one row more when
/// another page follows.
pub async fn list(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    filter: Option<&FilterExpr>,
    sort: &Sort,
    after: Option<&SortKey>,
    limit: i64,
) -> kit::Result<Vec<Contact>> {
    let mut query = select_visible(COLUMNS, tenant, scope, filter, None);
    sort.push_after(&mut query, after)?;
    sort.push_order(&mut query);
    query.push(" LIMIT ").push_bind(limit);
    let rows: Vec<ContactRow> = query.build_query_as().fetch_all(&mut *tx).await?;
    Ok(rows.into_iter().map(ContactRow::into_proto).collect())
}

pub async fn count(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    filter: Option<&FilterExpr>,
    member_of: Option<Uuid>,
) -> sqlx::Result<i64> {
    let mut query = select_visible("count(*)", tenant, scope, filter, member_of);
    let (count,): (i64,) = query.build_query_as().fetch_one(&mut *tx).await?;
    Ok(count)
}

/// Visible contacts matching `filter` (and members of `member_of`), in id
/// order, after `after`: for exports and segment member lists.
#[allow(clippy::too_many_arguments)]
pub async fn ids_after(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    filter: Option<&FilterExpr>,
    member_of: Option<Uuid>,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Contact>> {
    let mut query = select_visible(COLUMNS, tenant, scope, filter, member_of);
    if let Some(after) = after {
        query.push(" AND id > ").push_bind(after);
    }
    query.push(" ORDER BY id LIMIT ").push_bind(limit);
    let rows: Vec<ContactRow> = query.build_query_as().fetch_all(&mut *tx).await?;
    Ok(rows.into_iter().map(ContactRow::into_proto).collect())
}

/// Live contacts sharing an e-mail or phone with the given keys.
pub async fn find_by_contact_points(
    tx: &mut PgConnection,
    tenant: Uuid,
    email_keys: &[String],
    phone_keys: &[String],
    exclude: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Contact>> {
    let points: Vec<&String> = email_keys.iter().chain(phone_keys).collect();
    if points.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<(Uuid,)> = sqlx::query_as(CONTACT_POINT_MATCHES)
        .bind(tenant)
        .bind(points)
        .bind(exclude)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    let ids: Vec<Uuid> = ids.into_iter().map(|(id,)| id).collect();
    let rows: Vec<ContactRow> = sqlx::query_as(&contacts_by_id())
        .bind(tenant)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
    let mut found: Vec<Contact> = rows.into_iter().map(ContactRow::into_proto).collect();
    found.sort_by(|a, b| {
        let at = |c: &Contact| {
            c.audit
                .as_ref()
                .and_then(|a| a.created_at)
                .map(|t| (t.seconds, t.nanos))
        };
        at(a).cmp(&at(b)).then_with(|| a.id.cmp(&b.id))
    });
    Ok(found)
}

/// The live contacts with one of the contact points `$2` (other than `$3`),
/// at most `$4`, oldest first (ids are UUIDv7). Duplicate checks run this
/// on every created or imported row, so it reads one btree and nothing
/// else: a lookup that stale statistics cannot turn into a scan of the
/// tenant (ORDER BY ... LIMIT over the contacts themselves did, at 25-36 ms
/// a row in a tenant of 30,000).
pub const CONTACT_POINT_MATCHES: &str = "SELECT DISTINCT contact_id FROM contact_points
      WHERE tenant_id = $1 AND point = ANY($2) AND ($3::uuid IS NULL OR contact_id <> $3)
      ORDER BY contact_id LIMIT $4";

/// Contacts `$2` by primary key. No `deleted_at IS NULL`: the ids come
/// from `contact_points`, which holds live contacts only (its trigger runs
/// in the deleting transaction, so both agree in any snapshot), and that
/// predicate would offer the planner the partial indexes, which look empty
/// to it until the table is first analyzed.
pub fn contacts_by_id() -> String {
    format!("SELECT {COLUMNS} FROM contacts WHERE tenant_id = $1 AND id = ANY($2)")
}

/// Live contacts whose name is similar (trigram) to `name`, with the score.
pub async fn find_similar_names(
    tx: &mut PgConnection,
    tenant: Uuid,
    name: &str,
    exclude: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<(Contact, f32)>> {
    let rows: Vec<(f32, Uuid)> = sqlx::query_as(
        "SELECT similarity(lower(first_name || ' ' || last_name), $2) AS score, id FROM contacts
          WHERE tenant_id = $1 AND deleted_at IS NULL AND id <> $3
            AND lower(first_name || ' ' || last_name) % $2
          ORDER BY score DESC LIMIT $4",
    )
    .bind(tenant)
    .bind(name.to_lowercase())
    .bind(exclude)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let mut found = Vec::with_capacity(rows.len());
    for (score, id) in rows {
        if let Some(contact) = find(tx, tenant, &Scope::Tenant, id, false).await? {
            found.push((contact, score));
        }
    }
    Ok(found)
}

/// Moves every reference from `merged` to `survivor` inside this service.
pub async fn repoint_references(
    tx: &mut PgConnection,
    tenant: Uuid,
    merged: Uuid,
    survivor: Uuid,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE activities SET contact_id = $3 WHERE tenant_id = $1 AND contact_id = $2")
        .bind(tenant)
        .bind(merged)
        .bind(survivor)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO segment_members (tenant_id, segment_id, contact_id)
         SELECT tenant_id, segment_id, $3 FROM segment_members WHERE tenant_id = $1 AND contact_id = $2
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(merged)
    .bind(survivor)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM segment_members WHERE tenant_id = $1 AND contact_id = $2")
        .bind(tenant)
        .bind(merged)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE consent_events SET contact_id = $3 WHERE tenant_id = $1 AND contact_id = $2",
    )
    .bind(tenant)
    .bind(merged)
    .bind(survivor)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Appends one consent change to the history.
pub async fn record_consent_event(
    tx: &mut PgConnection,
    tenant: Uuid,
    contact: Uuid,
    consent: &StoredConsent,
    actor: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO consent_events (tenant_id, id, contact_id, channel, status, source, actor, changed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(contact)
    .bind(consent.channel)
    .bind(consent.status)
    .bind(&consent.source)
    .bind(actor)
    .bind(consent.updated_at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The consent history of a contact, oldest first, as JSON objects.
pub async fn consent_history(
    tx: &mut PgConnection,
    tenant: Uuid,
    contact: Uuid,
) -> sqlx::Result<Vec<serde_json::Value>> {
    let rows: Vec<(i32, i32, String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT channel, status, source, actor, changed_at FROM consent_events
          WHERE tenant_id = $1 AND contact_id = $2 ORDER BY changed_at, id",
    )
    .bind(tenant)
    .bind(contact)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(channel, status, source, actor, at)| {
            serde_json::json!({"channel": channel, "status": status, "source": source, "actor": actor, "changed_at": at})
        })
        .collect())
}

/// Removes personal data for good: names, contact points, address, custom
/// values, notes' bodies about the person. Keeps the row (ids referenced
/// elsewhere stay valid) marked erased and deleted.
pub async fn erase(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    actor: &str,
) -> sqlx::Result<Erased> {
    let (contact_points,): (Vec<String>,) = sqlx::query_as(
        "SELECT email_keys || phone_keys FROM contacts WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(tenant)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    let (version,): (i64,) = sqlx::query_as(
        "UPDATE contacts SET first_name = '', middle_name = '', last_name = '', title = '', birthday = NULL,
            address = '{}', emails = '[]', phones = '[]', handles = '[]', email_keys = '{}', phone_keys = '{}',
            language = '', custom = '{}', tags = '{}', search_text = '', source = '',
            erased_at = now(), deleted_at = coalesce(deleted_at, now()), updated_at = now(), updated_by = $3,
            version = version + 1
          WHERE tenant_id = $1 AND id = $2 RETURNING version",
    )
    .bind(tenant)
    .bind(id)
    .bind(actor)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE activities SET subject = '[erased]', body = '', attendees = '{}', outcome = ''
          WHERE tenant_id = $1 AND contact_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM segment_members WHERE tenant_id = $1 AND contact_id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE consent_events SET source = '[erased]' WHERE tenant_id = $1 AND contact_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    // Events already published about the contact leave the outbox now (the
    // stream keeps them until its age limit; see ADR 0013).
    kit::outbox::forget_published(tx, tenant, &[id]).await?;
    Ok(Erased {
        version,
        contact_points,
    })
}

/// What an erasure leaves to tell other services.
pub struct Erased {
    pub version: i64,
    /// The e-mail addresses and phone numbers the contact had (normalised).
    pub contact_points: Vec<String>,
}

/// Whether a contact row exists at all (also deleted or erased ones).
pub async fn exists_any(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let row: Option<(i32,)> =
        sqlx::query_as("SELECT 1 FROM contacts WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    Ok(row.is_some())
}
