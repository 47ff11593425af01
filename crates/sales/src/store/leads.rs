//! Leads, their engagements, routing rules, team rosters, scoring settings.

use chrono::{DateTime, Utc};
use crm_proto::crm::sales::v1::{
    routing_rule::Target, Lead, RosterMember, RoutingRule, ScoringSettings, TeamRoster,
    TerritoryMatch,
};
use kit::access::Scope;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{audit, checked_id, id_text};

const COLUMNS: &str = "id, first_name, last_name, email, phone, title, company, company_domain, source, campaign_id, status, owner_id, team_id, score, country, region, industry, company_size, converted_account_id, converted_contact_id, converted_opportunity_id, converted_at, created_at, created_by, updated_at, updated_by, version";

#[derive(sqlx::FromRow)]
struct LeadRow {
    id: Uuid,
    first_name: String,
    last_name: String,
    email: String,
    phone: String,
    title: String,
    company: String,
    company_domain: String,
    source: i16,
    campaign_id: Option<Uuid>,
    status: i16,
    owner_id: Option<Uuid>,
    team_id: Option<Uuid>,
    score: i32,
    country: String,
    region: String,
    industry: String,
    company_size: i32,
    converted_account_id: Option<Uuid>,
    converted_contact_id: Option<Uuid>,
    converted_opportunity_id: Option<Uuid>,
    converted_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

impl From<LeadRow> for Lead {
    fn from(r: LeadRow) -> Self {
        Lead {
            id: r.id.to_string(),
            first_name: r.first_name,
            last_name: r.last_name,
            email: r.email,
            phone: r.phone,
            title: r.title,
            company: r.company,
            company_domain: r.company_domain,
            source: r.source.into(),
            campaign_id: id_text(r.campaign_id),
            status: r.status.into(),
            owner_id: id_text(r.owner_id),
            team_id: id_text(r.team_id),
            score: r.score,
            country: r.country,
            region: r.region,
            industry: r.industry,
            company_size: r.company_size,
            converted_account_id: id_text(r.converted_account_id),
            converted_contact_id: id_text(r.converted_contact_id),
            converted_opportunity_id: id_text(r.converted_opportunity_id),
            converted_at: r.converted_at.map(kit::time::to_timestamp),
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

pub async fn insert(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    lead: &Lead,
    request_id: Option<&str>,
    actor: &str,
) -> sqlx::Result<Lead> {
    let row: LeadRow = sqlx::query_as(&format!(
        "INSERT INTO leads (tenant_id, id, first_name, last_name, email, phone, title, company, company_domain, source, campaign_id, status, owner_id, team_id, score, country, region, industry, company_size, request_id, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $21) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&lead.first_name)
    .bind(&lead.last_name)
    .bind(&lead.email)
    .bind(&lead.phone)
    .bind(&lead.title)
    .bind(&lead.company)
    .bind(&lead.company_domain)
    .bind(lead.source as i16)
    .bind(checked_id(&lead.campaign_id))
    .bind(lead.status as i16)
    .bind(checked_id(&lead.owner_id))
    .bind(checked_id(&lead.team_id))
    .bind(lead.score)
    .bind(&lead.country)
    .bind(&lead.region)
    .bind(&lead.industry)
    .bind(lead.company_size)
    .bind(request_id)
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

pub async fn by_request(
    tx: &mut PgConnection,
    tenant: Uuid,
    request_id: &str,
) -> sqlx::Result<Option<Lead>> {
    let row: Option<LeadRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM leads WHERE tenant_id = $1 AND request_id = $2"
    ))
    .bind(tenant)
    .bind(request_id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(Lead::from))
}

/// A lead the scope sees, locked for update when `lock`.
pub async fn find(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<Lead>> {
    let row: Option<LeadRow> = scope
        .select_one(COLUMNS, "leads", tenant, id, lock)
        .build_query_as()
        .fetch_optional(tx)
        .await?;
    Ok(row.map(Lead::from))
}

/// Writes every editable field and bumps the version.
pub async fn update(
    tx: &mut PgConnection,
    tenant: Uuid,
    lead: &Lead,
    actor: &str,
) -> sqlx::Result<Lead> {
    let row: LeadRow = sqlx::query_as(&format!(
        "UPDATE leads SET first_name = $3, last_name = $4, email = $5, phone = $6, title = $7, company = $8, company_domain = $9, \
         source = $10, campaign_id = $11, status = $12, owner_id = $13, team_id = $14, score = $15, country = $16, region = $17, \
         industry = $18, company_size = $19, converted_account_id = $20, converted_contact_id = $21, converted_opportunity_id = $22, \
         converted_at = CASE WHEN $20::uuid IS NOT NULL THEN coalesce(converted_at, now()) END, \
         updated_at = now(), updated_by = $23, version = version + 1 \
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(checked_id(&lead.id))
    .bind(&lead.first_name)
    .bind(&lead.last_name)
    .bind(&lead.email)
    .bind(&lead.phone)
    .bind(&lead.title)
    .bind(&lead.company)
    .bind(&lead.company_domain)
    .bind(lead.source as i16)
    .bind(checked_id(&lead.campaign_id))
    .bind(lead.status as i16)
    .bind(checked_id(&lead.owner_id))
    .bind(checked_id(&lead.team_id))
    .bind(lead.score)
    .bind(&lead.country)
    .bind(&lead.region)
    .bind(&lead.industry)
    .bind(lead.company_size)
    .bind(checked_id(&lead.converted_account_id))
    .bind(checked_id(&lead.converted_contact_id))
    .bind(checked_id(&lead.converted_opportunity_id))
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

pub struct LeadFilter {
    pub status: Option<i16>,
    pub owner: Option<Uuid>,
    pub unassigned: bool,
}

pub async fn list(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    filter: &LeadFilter,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Lead>> {
    let mut query =
        QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM leads WHERE tenant_id = "));
    query.push_bind(tenant);
    if let Some(status) = filter.status {
        query.push(" AND status = ").push_bind(status);
    }
    if let Some(owner) = filter.owner {
        query.push(" AND owner_id = ").push_bind(owner);
    }
    if filter.unassigned {
        // The tenant's queue (no team) is open to everyone who may read
        // leads; a team's queue only to those who see that team.
        query.push(" AND owner_id IS NULL");
        match scope {
            Scope::Tenant => {}
            Scope::Team { teams, .. } => {
                query
                    .push(" AND (team_id IS NULL OR team_id = ANY(")
                    .push_bind(teams.clone())
                    .push("))");
            }
            Scope::Own { .. } => {
                query.push(" AND team_id IS NULL");
            }
        }
    } else {
        scope.push_sql(&mut query);
    }
    if let Some(after) = after {
        query.push(" AND id > ").push_bind(after);
    }
    query.push(" ORDER BY id LIMIT ").push_bind(limit);
    let rows: Vec<LeadRow> = query.build_query_as().fetch_all(tx).await?;
    Ok(rows.into_iter().map(Lead::from).collect())
}

pub async fn add_engagement(
    tx: &mut PgConnection,
    tenant: Uuid,
    lead: Uuid,
    engagement: &str,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO lead_engagements (tenant_id, id, lead_id, engagement, occurred_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(tenant)
        .bind(Uuid::now_v7())
        .bind(lead)
        .bind(engagement)
        .bind(at)
        .execute(tx)
        .await?;
    Ok(())
}

pub async fn engagements(
    tx: &mut PgConnection,
    tenant: Uuid,
    lead: Uuid,
) -> sqlx::Result<Vec<(String, DateTime<Utc>)>> {
    sqlx::query_as("SELECT engagement, occurred_at FROM lead_engagements WHERE tenant_id = $1 AND lead_id = $2")
        .bind(tenant)
        .bind(lead)
        .fetch_all(tx)
        .await
}

/// Open leads (not converted or unqualified) of a tenant, for rescoring.
pub async fn open_ids(tx: &mut PgConnection, tenant: Uuid) -> sqlx::Result<Vec<Uuid>> {
    let rows: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT id FROM leads WHERE tenant_id = $1 AND status NOT IN (5, 6) ORDER BY id",
    )
    .bind(tenant)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

pub async fn set_score(
    tx: &mut PgConnection,
    tenant: Uuid,
    lead: Uuid,
    score: i32,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE leads SET score = $3, updated_at = now(), version = version + 1 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(lead)
        .bind(score)
        .execute(tx)
        .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct RuleRow {
    id: Uuid,
    name: String,
    country: String,
    region: String,
    industry: String,
    min_size: i32,
    max_size: i32,
    user_id: Option<Uuid>,
    team_id: Option<Uuid>,
}

pub async fn routing_rules(tx: &mut PgConnection, tenant: Uuid) -> sqlx::Result<Vec<RoutingRule>> {
    let rows: Vec<RuleRow> = sqlx::query_as(
        "SELECT id, name, country, region, industry, min_size, max_size, user_id, team_id FROM routing_rules WHERE tenant_id = $1 ORDER BY position",
    )
    .bind(tenant)
    .fetch_all(tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| RoutingRule {
            id: r.id.to_string(),
            name: r.name,
            r#match: Some(TerritoryMatch {
                country: r.country,
                region: r.region,
                industry: r.industry,
                min_size: r.min_size,
                max_size: r.max_size,
            }),
            target: match (r.user_id, r.team_id) {
                (Some(user), _) => Some(Target::UserId(user.to_string())),
                (_, Some(team)) => Some(Target::TeamId(team.to_string())),
                _ => None,
            },
        })
        .collect())
}

/// Replaces the tenant's rules (already checked; ids assigned).
pub async fn replace_routing_rules(
    tx: &mut PgConnection,
    tenant: Uuid,
    rules: &[RoutingRule],
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM routing_rules WHERE tenant_id = $1")
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    for (position, rule) in rules.iter().enumerate() {
        let m = rule.r#match.clone().unwrap_or_default();
        let (user, team) = match &rule.target {
            Some(Target::UserId(u)) => (checked_id(u), None),
            Some(Target::TeamId(t)) => (None, checked_id(t)),
            None => (None, None),
        };
        sqlx::query("INSERT INTO routing_rules (tenant_id, id, position, name, country, region, industry, min_size, max_size, user_id, team_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
            .bind(tenant)
            .bind(checked_id(&rule.id))
            .bind(position as i32)
            .bind(&rule.name)
            .bind(&m.country)
            .bind(&m.region)
            .bind(&m.industry)
            .bind(m.min_size)
            .bind(m.max_size)
            .bind(user)
            .bind(team)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

pub async fn rosters(tx: &mut PgConnection, tenant: Uuid) -> sqlx::Result<Vec<TeamRoster>> {
    let rows: Vec<(Uuid, Uuid, bool)> = sqlx::query_as(
        "SELECT team_id, user_id, active FROM team_rosters WHERE tenant_id = $1 ORDER BY team_id, user_id",
    )
    .bind(tenant)
    .fetch_all(tx)
    .await?;
    let mut rosters: Vec<TeamRoster> = Vec::new();
    for (team, user, active) in rows {
        let team = team.to_string();
        if rosters.last().is_none_or(|r| r.team_id != team) {
            rosters.push(TeamRoster {
                team_id: team,
                members: Vec::new(),
            });
        }
        if let Some(roster) = rosters.last_mut() {
            roster.members.push(RosterMember {
                user_id: user.to_string(),
                active,
            });
        }
    }
    Ok(rosters)
}

/// Replaces a team's roster; members who stay keep their round-robin turn.
pub async fn replace_roster(
    tx: &mut PgConnection,
    tenant: Uuid,
    team: Uuid,
    members: &[(Uuid, bool)],
) -> sqlx::Result<()> {
    let users: Vec<Uuid> = members.iter().map(|(u, _)| *u).collect();
    sqlx::query("DELETE FROM team_rosters WHERE tenant_id = $1 AND team_id = $2 AND NOT (user_id = ANY($3))")
        .bind(tenant)
        .bind(team)
        .bind(&users)
        .execute(&mut *tx)
        .await?;
    for (user, active) in members {
        sqlx::query("INSERT INTO team_rosters (tenant_id, team_id, user_id, active) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, team_id, user_id) DO UPDATE SET active = EXCLUDED.active")
            .bind(tenant)
            .bind(team)
            .bind(user)
            .bind(active)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Round robin: the active member of `team` who has waited longest (never
/// assigned first) gets the lead. The row lock makes concurrent routings
/// take turns instead of picking the same person.
pub async fn next_in_rotation(
    tx: &mut PgConnection,
    tenant: Uuid,
    team: Uuid,
) -> sqlx::Result<Option<Uuid>> {
    let next: Option<(Uuid,)> = sqlx::query_as(
        "SELECT user_id FROM team_rosters WHERE tenant_id = $1 AND team_id = $2 AND active \
         ORDER BY last_assigned_at NULLS FIRST, user_id LIMIT 1 FOR UPDATE",
    )
    .bind(tenant)
    .bind(team)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((user,)) = next {
        sqlx::query("UPDATE team_rosters SET last_assigned_at = clock_timestamp(), assigned_count = assigned_count + 1 WHERE tenant_id = $1 AND team_id = $2 AND user_id = $3")
            .bind(tenant)
            .bind(team)
            .bind(user)
            .execute(&mut *tx)
            .await?;
    }
    Ok(next.map(|(u,)| u))
}

/// Serialises routings of one team, so each sees the previous one's turn.
pub async fn lock_team(tx: &mut PgConnection, tenant: Uuid, team: Uuid) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1::text || $2::text))")
        .bind(tenant)
        .bind(team)
        .execute(tx)
        .await?;
    Ok(())
}

pub async fn scoring_settings(
    tx: &mut PgConnection,
    tenant: Uuid,
) -> sqlx::Result<ScoringSettings> {
    let row: Option<(serde_json::Value, i32)> =
        sqlx::query_as("SELECT rules, half_life_days FROM scoring_settings WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(tx)
            .await?;
    Ok(row
        .map(|(rules, half_life_days)| ScoringSettings {
            rules: crate::domain::scoring::rules_from_json(&rules),
            half_life_days,
        })
        .unwrap_or_default())
}

pub async fn save_scoring_settings(
    tx: &mut PgConnection,
    tenant: Uuid,
    settings: &ScoringSettings,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO scoring_settings (tenant_id, rules, half_life_days) VALUES ($1, $2, $3) ON CONFLICT (tenant_id) DO UPDATE SET rules = EXCLUDED.rules, half_life_days = EXCLUDED.half_life_days")
        .bind(tenant)
        .bind(crate::domain::scoring::rules_to_json(&settings.rules))
        .bind(settings.half_life_days)
        .execute(tx)
        .await?;
    Ok(())
}

/// Re-points leads converted into a merged account or contact.
pub async fn repoint(
    tx: &mut PgConnection,
    tenant: Uuid,
    column: &str,
    from: Uuid,
    to: Uuid,
) -> sqlx::Result<u64> {
    let column = match column {
        "account" => "converted_account_id",
        _ => "converted_contact_id",
    };
    let done = sqlx::query(&format!(
        "UPDATE leads SET {column} = $3, version = version + 1, updated_at = now() WHERE tenant_id = $1 AND {column} = $2"
    ))
    .bind(tenant)
    .bind(from)
    .bind(to)
    .execute(tx)
    .await?;
    Ok(done.rows_affected())
}

/// Removes the personal data of leads that became an erased contact.
pub async fn anonymise_for_contact(
    tx: &mut PgConnection,
    tenant: Uuid,
    contact: Uuid,
    contact_point_hashes: &[String],
) -> sqlx::Result<u64> {
    // The leads that became the contact, and the unconverted ones with one
    // of its e-mail addresses or phone numbers (matched by hash: the event
    // names no address).
    let erased: Vec<(Uuid,)> = sqlx::query_as(
        "UPDATE leads SET first_name = '', last_name = 'erased', email = '', phone = '', title = '', \
         updated_at = now(), updated_by = 'system:sales', version = version + 1 \
         WHERE tenant_id = $1 AND (converted_contact_id = $2 OR (converted_contact_id IS NULL AND ( \
           (email <> '' AND encode(sha256(convert_to($1::text || ':' || email, 'UTF8')), 'hex') = ANY($3)) \
           OR (phone <> '' AND encode(sha256(convert_to($1::text || ':' || phone, 'UTF8')), 'hex') = ANY($3))))) \
         RETURNING id",
    )
    .bind(tenant)
    .bind(contact)
    .bind(contact_point_hashes)
    .fetch_all(&mut *tx)
    .await?;
    let ids: Vec<Uuid> = erased.into_iter().map(|(id,)| id).collect();
    sqlx::query("DELETE FROM lead_engagements WHERE tenant_id = $1 AND lead_id = ANY($2)")
        .bind(tenant)
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    kit::outbox::forget_published(tx, tenant, &ids).await?;
    Ok(ids.len() as u64)
}

/// Unconverted leads with the e-mail address whose contact-point hash
/// this is (`kit::events::contact_point_hash`).
pub async fn unconverted_with_email(
    tx: &mut PgConnection,
    tenant: Uuid,
    address_hash: &str,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM leads WHERE tenant_id = $1 AND converted_contact_id IS NULL AND email <> '' \
         AND encode(sha256(convert_to($1::text || ':' || email, 'UTF8')), 'hex') = $2",
    )
    .bind(tenant)
    .bind(address_hash)
    .fetch_all(tx)
    .await
}

/// Rescoring daily while an engagement made at `at` still decays.
pub async fn schedule_decay(
    tx: &mut PgConnection,
    tenant: Uuid,
    lead: Uuid,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO lead_decay_schedule (tenant_id, lead_id, next_at, until_at) VALUES ($1, $2, now() + interval '1 day', $3 + interval '60 days') \
         ON CONFLICT (tenant_id, lead_id) DO UPDATE SET until_at = greatest(lead_decay_schedule.until_at, EXCLUDED.until_at)",
    )
    .bind(tenant)
    .bind(lead)
    .bind(at)
    .execute(tx)
    .await?;
    Ok(())
}

/// Leads due for a decay rescore, locked so pods share the work.
pub async fn lock_decay_due(
    tx: &mut PgConnection,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, Uuid, bool)>> {
    sqlx::query_as(
        "SELECT tenant_id, lead_id, until_at < now() FROM lead_decay_schedule WHERE next_at <= now() \
         ORDER BY next_at LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(tx)
    .await
}

pub async fn reschedule_decay(
    tx: &mut PgConnection,
    tenant: Uuid,
    lead: Uuid,
    done: bool,
) -> sqlx::Result<()> {
    let sql = if done {
        "DELETE FROM lead_decay_schedule WHERE tenant_id = $1 AND lead_id = $2"
    } else {
        "UPDATE lead_decay_schedule SET next_at = now() + interval '1 day' WHERE tenant_id = $1 AND lead_id = $2"
    };
    sqlx::query(sql).bind(tenant).bind(lead).execute(tx).await?;
    Ok(())
}
