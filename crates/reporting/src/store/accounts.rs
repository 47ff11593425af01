//! Accounts, orders, invoices and payments as projected, the facts churn
//! risk and credit grades are computed from, and the churn risks computed.

use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use crm_proto::crm::customers::v1::{Account, Contact};
use crm_proto::crm::sales::v1::{Invoice, Order, Payment};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{id, time};
use crate::domain::insights::{ChurnFacts, ChurnRisk, CreditFacts};

fn decimal(raw: &str) -> Decimal {
    Decimal::from_str(raw).unwrap_or_default()
}

fn date(raw: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()
}

/// An account as customers now has it (created or updated at `at`).
pub async fn account(
    tx: &mut PgConnection,
    tenant: Uuid,
    a: &Account,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let Some(account) = id(&a.id) else {
        return Ok(());
    };
    let created_at = time(a.audit.as_ref().and_then(|a| a.created_at.as_ref())).unwrap_or(at);
    let address = a.address.clone().unwrap_or_default();
    sqlx::query(
        "INSERT INTO accounts (tenant_id, id, owner_id, team_id, lifecycle, industry, country, region, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET owner_id = EXCLUDED.owner_id, team_id = EXCLUDED.team_id, \
         lifecycle = EXCLUDED.lifecycle, industry = EXCLUDED.industry, country = EXCLUDED.country, region = EXCLUDED.region",
    )
    .bind(tenant)
    .bind(account)
    .bind(id(&a.owner_id))
    .bind(id(&a.team_id))
    .bind(a.lifecycle_stage as i16)
    .bind(a.industry.trim())
    .bind(address.country.trim().to_ascii_uppercase())
    .bind(address.region.trim())
    .bind(created_at)
    .execute(&mut *tx)
    .await?;
    super::sales::account_region(tx, tenant, account).await?;
    churn_due(tx, tenant, account).await
}

pub async fn lifecycle(
    tx: &mut PgConnection,
    tenant: Uuid,
    account: Uuid,
    stage: i32,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE accounts SET lifecycle = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(account)
        .bind(stage as i16)
        .execute(tx)
        .await?;
    Ok(())
}

pub async fn owner(
    tx: &mut PgConnection,
    tenant: Uuid,
    account: Uuid,
    owner: Option<Uuid>,
    team: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE accounts SET owner_id = $3, team_id = coalesce($4, team_id) WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(account)
        .bind(owner)
        .bind(team)
        .execute(tx)
        .await?;
    Ok(())
}

/// A deleted account (or one merged away) is no longer counted; its
/// orders and invoices stay for the sales figures.
pub async fn deleted(tx: &mut PgConnection, tenant: Uuid, account: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM accounts WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(account)
        .execute(&mut *tx)
        .await?;
    super::sales::account_region(tx, tenant, account).await?;
    forget_churn(tx, tenant, account).await
}

/// The account's churn risk is to be computed again at once (something
/// about it happened). Due at minus infinity: at once whatever the scan's
/// clock says.
pub async fn churn_due(tx: &mut PgConnection, tenant: Uuid, account: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO churn_due (tenant_id, account_id, due_at) VALUES ($1, $2, '-infinity') \
         ON CONFLICT (tenant_id, account_id) DO UPDATE SET due_at = '-infinity'",
    )
    .bind(tenant)
    .bind(account)
    .execute(tx)
    .await?;
    Ok(())
}

/// The churn risk of the account a ticket is about is due at once.
pub async fn churn_due_for_ticket(
    tx: &mut PgConnection,
    tenant: Uuid,
    ticket: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO churn_due (tenant_id, account_id, due_at) \
         SELECT tenant_id, account_id, '-infinity' FROM tickets WHERE tenant_id = $1 AND id = $2 AND account_id IS NOT NULL \
         ON CONFLICT (tenant_id, account_id) DO UPDATE SET due_at = '-infinity'",
    )
    .bind(tenant)
    .bind(id(ticket))
    .execute(tx)
    .await?;
    Ok(())
}

/// An order as created, for its account.
pub async fn order(
    tx: &mut PgConnection,
    tenant: Uuid,
    o: &Order,
    account: Option<Uuid>,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let Some(order) = id(&o.id) else {
        return Ok(());
    };
    let total = o.total.clone().unwrap_or_default();
    let ordered_at = time(o.audit.as_ref().and_then(|a| a.created_at.as_ref())).unwrap_or(at);
    sqlx::query(
        "INSERT INTO orders (tenant_id, id, account_id, owner_id, team_id, total, currency, ordered_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id, id) DO NOTHING",
    )
    .bind(tenant)
    .bind(order)
    .bind(account)
    .bind(id(&o.owner_id))
    .bind(id(&o.team_id))
    .bind(decimal(&total.amount))
    .bind(&total.currency)
    .bind(ordered_at)
    .execute(&mut *tx)
    .await?;
    match account {
        Some(account) => churn_due(tx, tenant, account).await,
        None => Ok(()),
    }
}

/// An order as sales has it now (a backfill), for the account of its deal
/// as projected; an order already known stays as it is.
pub async fn order_snapshot(tx: &mut PgConnection, tenant: Uuid, o: &Order) -> sqlx::Result<()> {
    let account: Option<Uuid> =
        sqlx::query_scalar("SELECT account_id FROM deals WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id(&o.opportunity_id))
            .fetch_optional(&mut *tx)
            .await?
            .flatten();
    let at = time(o.audit.as_ref().and_then(|a| a.created_at.as_ref())).unwrap_or_else(Utc::now);
    order(tx, tenant, o, account, at).await
}

/// An invoice as issued, or as it is after a payment or when overdue
/// (`paid_on`: the day a payment settled it in full).
pub async fn invoice(
    tx: &mut PgConnection,
    tenant: Uuid,
    i: &Invoice,
    paid_on: Option<NaiveDate>,
) -> sqlx::Result<()> {
    let (Some(invoice), Some(issued_on), Some(due_on)) =
        (id(&i.id), date(&i.issued_on), date(&i.due_on))
    else {
        return Ok(());
    };
    let amount = i.amount.clone().unwrap_or_default();
    let paid = i.paid.clone().unwrap_or_default();
    let (amount, paid) = (decimal(&amount.amount), decimal(&paid.amount));
    let settled = (paid >= amount).then_some(paid_on).flatten();
    sqlx::query(
        "INSERT INTO invoices (tenant_id, id, order_id, account_id, amount, paid, currency, issued_on, due_on, paid_on) \
         VALUES ($1, $2, $3, (SELECT account_id FROM orders WHERE tenant_id = $1 AND id = $3), $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET paid = greatest(invoices.paid, EXCLUDED.paid), \
         paid_on = coalesce(invoices.paid_on, EXCLUDED.paid_on)",
    )
    .bind(tenant)
    .bind(invoice)
    .bind(id(&i.order_id))
    .bind(amount)
    .bind(paid)
    .bind(amount_currency(i))
    .bind(issued_on)
    .bind(due_on)
    .bind(settled)
    .execute(tx)
    .await?;
    Ok(())
}

fn amount_currency(i: &Invoice) -> String {
    i.amount
        .as_ref()
        .map(|m| m.currency.clone())
        .unwrap_or_default()
}

/// A payment: the invoice as it now is, settled on the payment's day if
/// paid in full.
pub async fn payment(
    tx: &mut PgConnection,
    tenant: Uuid,
    p: &Payment,
    i: &Invoice,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let received = date(&p.received_on).unwrap_or(at.date_naive());
    invoice(tx, tenant, i, Some(received)).await
}

/// An account, its latest order, its activities in the last 30 days and
/// the 30 before, its open complaints and its recent satisfaction.
type ChurnRow = (Uuid, Option<DateTime<Utc>>, i64, i64, i64, Option<Decimal>);

/// The churn facts of each account, as of `now`.
pub async fn churn_facts(
    tx: &mut PgConnection,
    tenant: Uuid,
    accounts: &[Uuid],
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<(Uuid, ChurnFacts)>> {
    let rows: Vec<ChurnRow> = sqlx::query_as(
        "SELECT a.id, \
           (SELECT max(ordered_at) FROM orders o WHERE o.tenant_id = a.tenant_id AND o.account_id = a.id), \
           (SELECT count(*) FROM activities x WHERE x.tenant_id = a.tenant_id AND x.account_id = a.id \
              AND x.occurred_at >= $3 - interval '30 days' AND x.occurred_at < $3), \
           (SELECT count(*) FROM activities x WHERE x.tenant_id = a.tenant_id AND x.account_id = a.id \
              AND x.occurred_at >= $3 - interval '60 days' AND x.occurred_at < $3 - interval '30 days'), \
           (SELECT count(*) FROM tickets t WHERE t.tenant_id = a.tenant_id AND t.account_id = a.id \
              AND t.type = 4 AND t.status NOT IN (6, 7)), \
           (SELECT avg(csat_score) FROM tickets t WHERE t.tenant_id = a.tenant_id AND t.account_id = a.id \
              AND t.csat_score IS NOT NULL AND t.solved_at >= $3 - interval '90 days') \
         FROM accounts a WHERE a.tenant_id = $1 AND a.id = ANY($2)",
    )
    .bind(tenant)
    .bind(accounts)
    .bind(now)
    .fetch_all(tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(account, last, recent, earlier, complaints, csat)| {
            let facts = ChurnFacts {
                days_since_order: last.map(|l| (now - l).num_days()),
                recent_activities: recent,
                earlier_activities: earlier,
                open_complaints: complaints,
                csat,
            };
            (account, facts)
        })
        .collect())
}

/// Up to `limit` accounts whose churn risk is due, any tenant, locked for
/// this transaction (`SKIP LOCKED`: pods share the work).
pub async fn lock_churn_due(
    tx: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
    sqlx::query_as(
        "SELECT tenant_id, account_id FROM churn_due WHERE due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(tx)
    .await
}

/// Drops the risk and the due row of an account reporting does not know
/// or that has no order (the next order makes it due again).
pub async fn forget_churn(tx: &mut PgConnection, tenant: Uuid, account: Uuid) -> sqlx::Result<()> {
    for statement in [
        "DELETE FROM churn_risks WHERE tenant_id = $1 AND account_id = $2",
        "DELETE FROM churn_due WHERE tenant_id = $1 AND account_id = $2",
    ] {
        sqlx::query(statement)
            .bind(tenant)
            .bind(account)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Keeps the account's new risk; returns the level it had before, if any.
pub async fn set_churn(
    tx: &mut PgConnection,
    tenant: Uuid,
    account: Uuid,
    risk: &ChurnRisk,
    now: DateTime<Utc>,
    next: Duration,
) -> sqlx::Result<Option<i16>> {
    let before: Option<i16> = sqlx::query_scalar(
        "SELECT level FROM churn_risks WHERE tenant_id = $1 AND account_id = $2 FOR UPDATE",
    )
    .bind(tenant)
    .bind(account)
    .fetch_optional(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO churn_risks (tenant_id, account_id, score, level, reasons, computed_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (tenant_id, account_id) DO UPDATE SET score = EXCLUDED.score, level = EXCLUDED.level, \
         reasons = EXCLUDED.reasons, computed_at = EXCLUDED.computed_at",
    )
    .bind(tenant)
    .bind(account)
    .bind(risk.score)
    .bind(risk.level as i16)
    .bind(&risk.reasons)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE churn_due SET due_at = $3 WHERE tenant_id = $1 AND account_id = $2")
        .bind(tenant)
        .bind(account)
        .bind(now + next)
        .execute(&mut *tx)
        .await?;
    Ok(before)
}

/// The credit facts of one account, as of `today`.
/// The currency most of the account's invoices are in.
pub async fn invoice_currency(
    tx: &mut PgConnection,
    tenant: Uuid,
    account: Uuid,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT currency FROM invoices WHERE tenant_id = $1 AND account_id = $2 GROUP BY currency ORDER BY count(*) DESC, currency LIMIT 1",
    )
    .bind(tenant)
    .bind(account)
    .fetch_optional(tx)
    .await
}

/// The credit facts of one account, as of `today`; the overdue amount over
/// its invoices in `currency`.
pub async fn credit_facts(
    tx: &mut PgConnection,
    tenant: Uuid,
    account: Uuid,
    currency: &str,
    today: NaiveDate,
) -> sqlx::Result<CreditFacts> {
    let row: (
        i64,
        i64,
        i64,
        Option<Decimal>,
        i64,
        Option<Decimal>,
        Option<i32>,
    ) = sqlx::query_as(
        "SELECT count(*), count(paid_on), count(*) FILTER (WHERE paid_on > due_on), \
           round(avg(paid_on - issued_on), 1), \
           count(*) FILTER (WHERE paid_on IS NULL AND due_on < $3), \
           sum(amount - paid) FILTER (WHERE paid_on IS NULL AND due_on < $3 AND currency = $4), \
           max($3 - due_on) FILTER (WHERE paid_on IS NULL AND due_on < $3) \
         FROM invoices WHERE tenant_id = $1 AND account_id = $2",
    )
    .bind(tenant)
    .bind(account)
    .bind(today)
    .bind(currency)
    .fetch_one(tx)
    .await?;
    let (invoices, paid, paid_late, average_days_to_pay, overdue, overdue_amount, oldest) = row;
    Ok(CreditFacts {
        invoices,
        paid,
        paid_late,
        average_days_to_pay,
        overdue,
        overdue_amount: overdue_amount.unwrap_or_default(),
        oldest_overdue_days: oldest.map_or(0, i64::from),
    })
}

/// A contact as customers now has it: ids, lifecycle, country and times,
/// nothing that names the person.
pub async fn contact(
    tx: &mut PgConnection,
    tenant: Uuid,
    c: &Contact,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let Some(contact) = id(&c.id) else {
        return Ok(());
    };
    let created_at = time(c.audit.as_ref().and_then(|a| a.created_at.as_ref())).unwrap_or(at);
    let country = c
        .address
        .as_ref()
        .map(|a| a.country.trim().to_ascii_uppercase())
        .unwrap_or_default();
    sqlx::query(
        "INSERT INTO contacts (tenant_id, id, account_id, owner_id, team_id, lifecycle_stage, country, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET account_id = EXCLUDED.account_id, owner_id = EXCLUDED.owner_id, \
         team_id = EXCLUDED.team_id, lifecycle_stage = EXCLUDED.lifecycle_stage, country = EXCLUDED.country",
    )
    .bind(tenant)
    .bind(contact)
    .bind(id(&c.account_id))
    .bind(id(&c.owner_id))
    .bind(id(&c.team_id))
    .bind(c.lifecycle_stage as i16)
    .bind(country)
    .bind(created_at)
    .execute(tx)
    .await?;
    Ok(())
}

/// A contact deleted, merged away or erased leaves the dataset.
pub async fn contact_gone(tx: &mut PgConnection, tenant: Uuid, contact: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM contacts WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(contact)
        .execute(tx)
        .await?;
    Ok(())
}
