//! Loyalty programs, balances, entries and coupons.
//!
//! Locks are always taken in one order: an account's expiry schedule row,
//! then its account row, then (without a lock: the account row guards
//! them) its lots. Earning, redeeming and expiring take the account row
//! first, so they run one after another per member; the balance's CHECK
//! is the second fence against overdrawing.

use chrono::{DateTime, Utc};
use crm_proto::crm::marketing::v1::{
    Coupon, CouponRedemption, EarnRule, LoyaltyAccount, LoyaltyEntry, LoyaltyEntryKind,
    LoyaltyProgram, Tier,
};
use kit::time::{to_optional_timestamp, to_timestamp};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{audit, id_text, money};
use crate::domain::loyalty::tier_for;

// ---- programs

const PROGRAM_COLUMNS: &str = "id, name, currency, earn_rules, tiers, points_valid_days, created_at, created_by, updated_at, updated_by, version";

#[derive(sqlx::FromRow)]
struct ProgramRow {
    id: Uuid,
    name: String,
    currency: String,
    earn_rules: sqlx::types::Json<Vec<EarnRule>>,
    tiers: sqlx::types::Json<Vec<Tier>>,
    points_valid_days: i32,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

impl From<ProgramRow> for LoyaltyProgram {
    fn from(r: ProgramRow) -> Self {
        LoyaltyProgram {
            id: r.id.to_string(),
            name: r.name,
            currency: r.currency,
            earn_rules: r.earn_rules.0,
            tiers: r.tiers.0,
            points_valid_days: r.points_valid_days,
            audit: audit(
                r.created_at,
                r.created_by,
                r.updated_at,
                r.updated_by,
                r.version,
            ),
        }
    }
}

pub async fn insert_program(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    p: &LoyaltyProgram,
    actor: &str,
) -> sqlx::Result<LoyaltyProgram> {
    let row: ProgramRow = sqlx::query_as(&format!(
        "INSERT INTO loyalty_programs (tenant_id, id, name, currency, earn_rules, tiers, points_valid_days, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING {PROGRAM_COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&p.name)
    .bind(&p.currency)
    .bind(sqlx::types::Json(&p.earn_rules))
    .bind(sqlx::types::Json(&p.tiers))
    .bind(p.points_valid_days)
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

pub async fn find_program(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<LoyaltyProgram>> {
    let row: Option<ProgramRow> = sqlx::query_as(&format!(
        "SELECT {PROGRAM_COLUMNS} FROM loyalty_programs WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(LoyaltyProgram::from))
}

/// Newest first; every program when `limit` is `i64::MAX`.
pub async fn list_programs(
    tx: &mut PgConnection,
    tenant: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<LoyaltyProgram>> {
    let rows: Vec<ProgramRow> = sqlx::query_as(&format!(
        "SELECT {PROGRAM_COLUMNS} FROM loyalty_programs WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
    ))
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(LoyaltyProgram::from).collect())
}

// ---- accounts and entries

/// A member's balance, locked.
#[derive(sqlx::FromRow)]
pub struct Balance {
    pub balance: i64,
    pub lifetime: i64,
    pub tier: String,
}

/// Creates the member's account if need be and locks it.
async fn lock_account(
    tx: &mut PgConnection,
    tenant: Uuid,
    program: Uuid,
    contact: Uuid,
) -> sqlx::Result<Balance> {
    sqlx::query(
        "INSERT INTO loyalty_accounts (tenant_id, program_id, contact_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(program)
    .bind(contact)
    .execute(&mut *tx)
    .await?;
    sqlx::query_as(
        "SELECT balance, lifetime, tier FROM loyalty_accounts WHERE tenant_id = $1 AND program_id = $2 AND contact_id = $3 FOR UPDATE",
    )
    .bind(tenant)
    .bind(program)
    .bind(contact)
    .fetch_one(tx)
    .await
}

const ENTRY_COLUMNS: &str =
    "id, program_id, contact_id, kind, points, reason, source, expires_at, created_at, created_by";

#[derive(sqlx::FromRow)]
struct EntryRow {
    id: Uuid,
    program_id: Uuid,
    contact_id: Uuid,
    kind: i16,
    points: i64,
    reason: String,
    source: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    created_by: String,
}

impl From<EntryRow> for LoyaltyEntry {
    fn from(r: EntryRow) -> Self {
        LoyaltyEntry {
            id: r.id.to_string(),
            program_id: r.program_id.to_string(),
            contact_id: r.contact_id.to_string(),
            kind: r.kind.into(),
            points: r.points,
            reason: r.reason,
            source: r.source.unwrap_or_default(),
            expires_at: to_optional_timestamp(r.expires_at),
            created_at: Some(to_timestamp(r.created_at)),
            created_by: r.created_by,
        }
    }
}

/// A change of a balance, as stored.
pub struct Change {
    pub entry: LoyaltyEntry,
    pub balance: i64,
    /// The tier before, when this change moved it.
    pub previous_tier: Option<String>,
    pub tier: String,
}

/// What a member earns, once per source.
pub struct Earning<'a> {
    pub program: &'a LoyaltyProgram,
    pub contact: Uuid,
    pub points: i64,
    pub reason: &'a str,
    /// `order:<id>` and the like; none for awards by hand.
    pub source: Option<&'a str>,
}

/// Adds an earned lot; none when the source already earned in this program.
pub async fn earn(
    tx: &mut PgConnection,
    tenant: Uuid,
    e: Earning<'_>,
    actor: &str,
) -> sqlx::Result<Option<Change>> {
    let program = Uuid::parse_str(&e.program.id).unwrap_or_default();
    let expires_at = (e.program.points_valid_days > 0)
        .then(|| Utc::now() + chrono::Duration::days(i64::from(e.program.points_valid_days)));
    if let Some(due) = expires_at {
        sqlx::query(
            "INSERT INTO loyalty_expiry_schedule (tenant_id, program_id, contact_id, due_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, program_id, contact_id) DO UPDATE SET due_at = least(loyalty_expiry_schedule.due_at, excluded.due_at)",
        )
        .bind(tenant)
        .bind(program)
        .bind(e.contact)
        .bind(due)
        .execute(&mut *tx)
        .await?;
    }
    let before = lock_account(tx, tenant, program, e.contact).await?;
    let row: Option<EntryRow> = sqlx::query_as(&format!(
        "INSERT INTO loyalty_entries (tenant_id, id, program_id, contact_id, kind, points, remaining, expires_at, reason, source, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9, $10) ON CONFLICT (tenant_id, program_id, source) DO NOTHING RETURNING {ENTRY_COLUMNS}"
    ))
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(program)
    .bind(e.contact)
    .bind(LoyaltyEntryKind::Earned as i16)
    .bind(e.points)
    .bind(expires_at)
    .bind(e.reason)
    .bind(e.source)
    .bind(actor)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let lifetime = before.lifetime.saturating_add(e.points);
    let tier = tier_for(&e.program.tiers, lifetime);
    let balance = set_balance(
        tx,
        tenant,
        program,
        e.contact,
        before.balance + e.points,
        lifetime,
        &tier,
    )
    .await?;
    Ok(Some(Change {
        entry: row.into(),
        balance,
        previous_tier: (tier != before.tier).then_some(before.tier),
        tier,
    }))
}

async fn set_balance(
    tx: &mut PgConnection,
    tenant: Uuid,
    program: Uuid,
    contact: Uuid,
    balance: i64,
    lifetime: i64,
    tier: &str,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "UPDATE loyalty_accounts SET balance = $4, lifetime = $5, tier = $6 \
         WHERE tenant_id = $1 AND program_id = $2 AND contact_id = $3 RETURNING balance",
    )
    .bind(tenant)
    .bind(program)
    .bind(contact)
    .bind(balance)
    .bind(lifetime)
    .bind(tier)
    .fetch_one(tx)
    .await
}

/// Spends `points` from the oldest lots; `Err(balance)` when the balance
/// is smaller.
pub async fn redeem(
    tx: &mut PgConnection,
    tenant: Uuid,
    program: &LoyaltyProgram,
    contact: Uuid,
    points: i64,
    reason: &str,
    actor: &str,
) -> sqlx::Result<Result<Change, i64>> {
    let id = Uuid::parse_str(&program.id).unwrap_or_default();
    let before = lock_account(tx, tenant, id, contact).await?;
    if before.balance < points {
        return Ok(Err(before.balance));
    }
    // Lot by lot, oldest expiry first: `running` is the lots' total up to
    // and including this one.
    sqlx::query(
        "WITH lots AS (SELECT id, remaining, sum(remaining) OVER (ORDER BY expires_at NULLS LAST, id) AS running \
           FROM loyalty_entries WHERE tenant_id = $1 AND program_id = $2 AND contact_id = $3 AND remaining > 0) \
         UPDATE loyalty_entries e SET remaining = CASE WHEN lots.running <= $4 THEN 0 ELSE lots.running - $4 END \
         FROM lots WHERE e.tenant_id = $1 AND e.id = lots.id AND lots.running - lots.remaining < $4",
    )
    .bind(tenant)
    .bind(id)
    .bind(contact)
    .bind(points)
    .execute(&mut *tx)
    .await?;
    let entry = insert_spent(
        tx,
        tenant,
        id,
        contact,
        LoyaltyEntryKind::Redeemed,
        points,
        reason,
        actor,
    )
    .await?;
    let balance = set_balance(
        tx,
        tenant,
        id,
        contact,
        before.balance - points,
        before.lifetime,
        &before.tier,
    )
    .await?;
    Ok(Ok(Change {
        entry,
        balance,
        previous_tier: None,
        tier: before.tier,
    }))
}

#[allow(clippy::too_many_arguments)]
async fn insert_spent(
    tx: &mut PgConnection,
    tenant: Uuid,
    program: Uuid,
    contact: Uuid,
    kind: LoyaltyEntryKind,
    points: i64,
    reason: &str,
    actor: &str,
) -> sqlx::Result<LoyaltyEntry> {
    let row: EntryRow = sqlx::query_as(&format!(
        "INSERT INTO loyalty_entries (tenant_id, id, program_id, contact_id, kind, points, reason, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {ENTRY_COLUMNS}"
    ))
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(program)
    .bind(contact)
    .bind(kind as i16)
    .bind(-points)
    .bind(reason)
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

/// Expiry schedule rows that are due, locked (`SKIP LOCKED`: several pods
/// share the scan): (tenant, program, contact).
pub async fn lock_expiry_due(
    tx: &mut PgConnection,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, Uuid, Uuid)>> {
    sqlx::query_as(
        "SELECT tenant_id, program_id, contact_id FROM loyalty_expiry_schedule WHERE due_at <= now() \
         ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(tx)
    .await
}

/// Expires the member's lots that are due and schedules the next expiry;
/// the change when any points expired.
pub async fn expire_due(
    tx: &mut PgConnection,
    tenant: Uuid,
    program: Uuid,
    contact: Uuid,
) -> sqlx::Result<Option<Change>> {
    let before = lock_account(tx, tenant, program, contact).await?;
    let expired: i64 = sqlx::query_scalar(
        "WITH due AS (SELECT id, remaining FROM loyalty_entries WHERE tenant_id = $1 AND program_id = $2 AND contact_id = $3 \
           AND remaining > 0 AND expires_at <= now()), \
         spent AS (UPDATE loyalty_entries e SET remaining = 0 FROM due WHERE e.tenant_id = $1 AND e.id = due.id) \
         SELECT coalesce(sum(remaining), 0)::bigint FROM due",
    )
    .bind(tenant)
    .bind(program)
    .bind(contact)
    .fetch_one(&mut *tx)
    .await?;
    let next: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT min(expires_at) FROM loyalty_entries WHERE tenant_id = $1 AND program_id = $2 AND contact_id = $3 \
         AND remaining > 0 AND expires_at > now()",
    )
    .bind(tenant)
    .bind(program)
    .bind(contact)
    .fetch_one(&mut *tx)
    .await?;
    match next {
        Some(due) => sqlx::query(
            "UPDATE loyalty_expiry_schedule SET due_at = $4 WHERE tenant_id = $1 AND program_id = $2 AND contact_id = $3",
        )
        .bind(tenant)
        .bind(program)
        .bind(contact)
        .bind(due),
        None => sqlx::query(
            "DELETE FROM loyalty_expiry_schedule WHERE tenant_id = $1 AND program_id = $2 AND contact_id = $3",
        )
        .bind(tenant)
        .bind(program)
        .bind(contact),
    }
    .execute(&mut *tx)
    .await?;
    if expired == 0 {
        return Ok(None);
    }
    // The expired points are gone from the balance; a balance already spent
    // below them (it cannot be: spending takes lots) stays at zero.
    let balance = (before.balance - expired).max(0);
    let entry = insert_spent(
        tx,
        tenant,
        program,
        contact,
        LoyaltyEntryKind::Expired,
        expired,
        "points expired",
        "system:marketing",
    )
    .await?;
    let balance = set_balance(
        tx,
        tenant,
        program,
        contact,
        balance,
        before.lifetime,
        &before.tier,
    )
    .await?;
    Ok(Some(Change {
        entry,
        balance,
        previous_tier: None,
        tier: before.tier,
    }))
}

/// The member's account; zero when they never earned.
pub async fn account(
    tx: &mut PgConnection,
    tenant: Uuid,
    program: Uuid,
    contact: Uuid,
) -> sqlx::Result<LoyaltyAccount> {
    let row: Option<(i64, i64, String)> = sqlx::query_as(
        "SELECT balance, lifetime, tier FROM loyalty_accounts WHERE tenant_id = $1 AND program_id = $2 AND contact_id = $3",
    )
    .bind(tenant)
    .bind(program)
    .bind(contact)
    .fetch_optional(&mut *tx)
    .await?;
    let (balance, lifetime, tier) = row.unwrap_or_default();
    let next: Option<(DateTime<Utc>, i64)> = sqlx::query_as(
        "SELECT expires_at, remaining FROM loyalty_entries WHERE tenant_id = $1 AND program_id = $2 AND contact_id = $3 \
         AND remaining > 0 AND expires_at IS NOT NULL ORDER BY expires_at, id LIMIT 1",
    )
    .bind(tenant)
    .bind(program)
    .bind(contact)
    .fetch_optional(tx)
    .await?;
    Ok(LoyaltyAccount {
        program_id: program.to_string(),
        contact_id: contact.to_string(),
        balance,
        lifetime_points: lifetime,
        tier,
        next_expiry_at: next.map(|(at, _)| to_timestamp(at)),
        next_expiry_points: next.map(|(_, points)| points).unwrap_or_default(),
    })
}

pub async fn find_entry(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<LoyaltyEntry>> {
    let row: Option<EntryRow> = sqlx::query_as(&format!(
        "SELECT {ENTRY_COLUMNS} FROM loyalty_entries WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(LoyaltyEntry::from))
}

/// Newest first.
pub async fn list_entries(
    tx: &mut PgConnection,
    tenant: Uuid,
    program: Uuid,
    contact: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<LoyaltyEntry>> {
    let rows: Vec<EntryRow> = sqlx::query_as(&format!(
        "SELECT {ENTRY_COLUMNS} FROM loyalty_entries WHERE tenant_id = $1 AND program_id = $2 AND contact_id = $3 \
         AND ($4::uuid IS NULL OR id < $4) ORDER BY id DESC LIMIT $5"
    ))
    .bind(tenant)
    .bind(program)
    .bind(contact)
    .bind(after)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(LoyaltyEntry::from).collect())
}

// ---- orders, merges, erasure

/// Remembers which contact an order earns for.
pub async fn remember_order(
    tx: &mut PgConnection,
    tenant: Uuid,
    order: Uuid,
    contact: Uuid,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO loyalty_orders (tenant_id, order_id, contact_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(order)
    .bind(contact)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn contact_of_order(
    tx: &mut PgConnection,
    tenant: Uuid,
    order: Uuid,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "SELECT contact_id FROM loyalty_orders WHERE tenant_id = $1 AND order_id = $2",
    )
    .bind(tenant)
    .bind(order)
    .fetch_optional(tx)
    .await
}

/// A merge: the merged contact's points, history and orders belong to the
/// survivor (balances and lifetime points add up; tiers are recomputed by
/// the caller from the returned programs).
pub async fn repoint_contact(
    tx: &mut PgConnection,
    tenant: Uuid,
    from: Uuid,
    to: Uuid,
) -> sqlx::Result<Vec<Uuid>> {
    let programs: Vec<Uuid> = sqlx::query_scalar(
        "WITH gone AS (DELETE FROM loyalty_accounts WHERE tenant_id = $1 AND contact_id = $2 RETURNING program_id, balance, lifetime) \
         INSERT INTO loyalty_accounts (tenant_id, program_id, contact_id, balance, lifetime) \
         SELECT $1, program_id, $3, balance, lifetime FROM gone \
         ON CONFLICT (tenant_id, program_id, contact_id) DO UPDATE \
           SET balance = loyalty_accounts.balance + excluded.balance, lifetime = loyalty_accounts.lifetime + excluded.lifetime \
         RETURNING program_id",
    )
    .bind(tenant)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *tx)
    .await?;
    for sql in [
        "UPDATE loyalty_entries SET contact_id = $3 WHERE tenant_id = $1 AND contact_id = $2",
        "UPDATE loyalty_orders SET contact_id = $3 WHERE tenant_id = $1 AND contact_id = $2",
        "UPDATE coupon_redemptions SET contact_id = $3 WHERE tenant_id = $1 AND contact_id = $2",
        // The earliest expiry of either stays scheduled.
        "INSERT INTO loyalty_expiry_schedule (tenant_id, program_id, contact_id, due_at) \
         SELECT tenant_id, program_id, $3, due_at FROM loyalty_expiry_schedule WHERE tenant_id = $1 AND contact_id = $2 \
         ON CONFLICT (tenant_id, program_id, contact_id) DO UPDATE SET due_at = least(loyalty_expiry_schedule.due_at, excluded.due_at)",
        "DELETE FROM loyalty_expiry_schedule WHERE tenant_id = $1 AND contact_id = $2",
    ] {
        sqlx::query(sql)
            .bind(tenant)
            .bind(from)
            .bind(to)
            .execute(&mut *tx)
            .await?;
    }
    Ok(programs)
}

/// Sets a member's tier from their lifetime points; the change if it moved.
pub async fn retier(
    tx: &mut PgConnection,
    tenant: Uuid,
    program: &LoyaltyProgram,
    contact: Uuid,
) -> sqlx::Result<Option<(String, String)>> {
    let id = Uuid::parse_str(&program.id).unwrap_or_default();
    let before = lock_account(tx, tenant, id, contact).await?;
    let tier = tier_for(&program.tiers, before.lifetime);
    if tier == before.tier {
        return Ok(None);
    }
    set_balance(
        tx,
        tenant,
        id,
        contact,
        before.balance,
        before.lifetime,
        &tier,
    )
    .await?;
    Ok(Some((before.tier, tier)))
}

/// Erasure: the person's accounts, history and orders go; their coupon
/// redemptions stay counted without them.
pub async fn forget_contact(
    tx: &mut PgConnection,
    tenant: Uuid,
    contact: Uuid,
) -> sqlx::Result<()> {
    for sql in [
        "DELETE FROM loyalty_expiry_schedule WHERE tenant_id = $1 AND contact_id = $2",
        "DELETE FROM loyalty_entries WHERE tenant_id = $1 AND contact_id = $2",
        "DELETE FROM loyalty_accounts WHERE tenant_id = $1 AND contact_id = $2",
        "DELETE FROM loyalty_orders WHERE tenant_id = $1 AND contact_id = $2",
        "UPDATE coupon_redemptions SET contact_id = NULL, once_key = id WHERE tenant_id = $1 AND contact_id = $2",
    ] {
        sqlx::query(sql)
            .bind(tenant)
            .bind(contact)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

// ---- coupons

const COUPON_COLUMNS: &str = "id, code, percent_off, amount_off, currency, max_redemptions, once_per_contact, valid_from, valid_until, \
     redemptions, created_at, created_by, updated_at, updated_by, version";

#[derive(sqlx::FromRow)]
struct CouponRow {
    id: Uuid,
    code: String,
    percent_off: Option<Decimal>,
    amount_off: Option<Decimal>,
    currency: String,
    max_redemptions: i32,
    once_per_contact: bool,
    valid_from: Option<DateTime<Utc>>,
    valid_until: Option<DateTime<Utc>>,
    redemptions: i32,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

impl From<CouponRow> for Coupon {
    fn from(r: CouponRow) -> Self {
        Coupon {
            id: r.id.to_string(),
            code: r.code,
            percent_off: r
                .percent_off
                .map(|p| p.normalize().to_string())
                .unwrap_or_default(),
            amount_off: money(r.amount_off, &r.currency),
            max_redemptions: r.max_redemptions,
            once_per_contact: r.once_per_contact,
            valid_from: to_optional_timestamp(r.valid_from),
            valid_until: to_optional_timestamp(r.valid_until),
            redemptions: r.redemptions,
            audit: audit(
                r.created_at,
                r.created_by,
                r.updated_at,
                r.updated_by,
                r.version,
            ),
        }
    }
}

/// A checked coupon's values.
pub struct NewCoupon<'a> {
    pub code: &'a str,
    pub percent_off: Option<Decimal>,
    pub amount_off: Option<(Decimal, String)>,
    pub max_redemptions: i32,
    pub once_per_contact: bool,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
}

pub async fn insert_coupon(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    c: NewCoupon<'_>,
    actor: &str,
) -> sqlx::Result<Coupon> {
    let (amount, currency) = c.amount_off.unzip();
    let row: CouponRow = sqlx::query_as(&format!(
        "INSERT INTO coupons (tenant_id, id, code, percent_off, amount_off, currency, max_redemptions, once_per_contact, valid_from, valid_until, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING {COUPON_COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(c.code)
    .bind(c.percent_off)
    .bind(amount)
    .bind(currency.unwrap_or_default())
    .bind(c.max_redemptions)
    .bind(c.once_per_contact)
    .bind(c.valid_from)
    .bind(c.valid_until)
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

pub async fn find_coupon(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Coupon>> {
    let row: Option<CouponRow> = sqlx::query_as(&format!(
        "SELECT {COUPON_COLUMNS} FROM coupons WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(Coupon::from))
}

/// The coupon with this code, locked: redemptions of one coupon run one
/// after another.
pub async fn lock_coupon_by_code(
    tx: &mut PgConnection,
    tenant: Uuid,
    code: &str,
) -> sqlx::Result<Option<Coupon>> {
    let row: Option<CouponRow> = sqlx::query_as(&format!(
        "SELECT {COUPON_COLUMNS} FROM coupons WHERE tenant_id = $1 AND code = $2 FOR UPDATE"
    ))
    .bind(tenant)
    .bind(code)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(Coupon::from))
}

/// Newest first.
pub async fn list_coupons(
    tx: &mut PgConnection,
    tenant: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Coupon>> {
    let rows: Vec<CouponRow> = sqlx::query_as(&format!(
        "SELECT {COUPON_COLUMNS} FROM coupons WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
    ))
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(Coupon::from).collect())
}

/// Records a redemption of a locked coupon that is valid and not used up;
/// none when a once-per-contact coupon was already redeemed by the contact.
pub async fn redeem_coupon(
    tx: &mut PgConnection,
    tenant: Uuid,
    coupon: &Coupon,
    contact: Uuid,
    order_reference: &str,
) -> sqlx::Result<Option<CouponRedemption>> {
    let coupon_id = Uuid::parse_str(&coupon.id).unwrap_or_default();
    let id = Uuid::now_v7();
    let once_key = if coupon.once_per_contact { contact } else { id };
    let at: Option<DateTime<Utc>> = sqlx::query_scalar(
        "INSERT INTO coupon_redemptions (tenant_id, id, coupon_id, contact_id, once_key, order_reference) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, coupon_id, once_key) DO NOTHING RETURNING redeemed_at",
    )
    .bind(tenant)
    .bind(id)
    .bind(coupon_id)
    .bind(contact)
    .bind(once_key)
    .bind(order_reference)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(at) = at else {
        return Ok(None);
    };
    sqlx::query(
        "UPDATE coupons SET redemptions = redemptions + 1 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(coupon_id)
    .execute(&mut *tx)
    .await?;
    Ok(Some(CouponRedemption {
        id: id.to_string(),
        coupon_id: coupon.id.clone(),
        code: coupon.code.clone(),
        contact_id: contact.to_string(),
        order_reference: order_reference.to_owned(),
        redeemed_at: Some(to_timestamp(at)),
    }))
}

#[derive(sqlx::FromRow)]
struct RedemptionRow {
    id: Uuid,
    coupon_id: Uuid,
    code: String,
    contact_id: Option<Uuid>,
    order_reference: String,
    redeemed_at: DateTime<Utc>,
}

pub async fn find_redemption(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<CouponRedemption>> {
    let row: Option<RedemptionRow> = sqlx::query_as(
        "SELECT r.id, r.coupon_id, c.code, r.contact_id, r.order_reference, r.redeemed_at FROM coupon_redemptions r \
         JOIN coupons c ON c.tenant_id = r.tenant_id AND c.id = r.coupon_id WHERE r.tenant_id = $1 AND r.id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(|r| CouponRedemption {
        id: r.id.to_string(),
        coupon_id: r.coupon_id.to_string(),
        code: r.code,
        contact_id: id_text(r.contact_id),
        order_reference: r.order_reference,
        redeemed_at: Some(to_timestamp(r.redeemed_at)),
    }))
}
