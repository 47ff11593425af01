//! Tenants, users and the e-mail login index.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub default_currency: String,
    pub time_zone: String,
    pub locale: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
    pub roles: Vec<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

pub async fn insert_tenant(tx: &mut PgConnection, tenant: &Tenant) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO tenants (id, name, default_currency, time_zone, locale) VALUES ($1, $2, $3, $4, $5)")
        .bind(tenant.id)
        .bind(&tenant.name)
        .bind(&tenant.default_currency)
        .bind(&tenant.time_zone)
        .bind(&tenant.locale)
        .execute(tx)
        .await?;
    Ok(())
}

pub async fn find_tenant(tx: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Tenant>> {
    sqlx::query_as(
        "SELECT id, name, default_currency, time_zone, locale FROM tenants WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(tx)
    .await
}

/// Inserts a user and its login entry; a taken e-mail is a unique violation.
pub async fn insert_user(tx: &mut PgConnection, user: &User) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO logins (email, tenant_id, user_id) VALUES ($1, $2, $3)")
        .bind(&user.email)
        .bind(user.tenant_id)
        .bind(user.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO users (tenant_id, id, email, display_name, password_hash, roles) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(user.tenant_id)
    .bind(user.id)
    .bind(&user.email)
    .bind(&user.display_name)
    .bind(&user.password_hash)
    .bind(&user.roles)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The most tenants one e-mail is tried in at login (each costs argon2).
pub const MAX_LOGIN_TENANTS: i64 = 5;

/// Which users (tenant, user) an e-mail may log in as: in `tenant` only
/// when it is named, else in each tenant that has it (oldest first).
pub async fn find_logins(
    tx: &mut PgConnection,
    email: &str,
    tenant: Option<Uuid>,
) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
    sqlx::query_as(
        "SELECT tenant_id, user_id FROM logins
          WHERE email = $1 AND ($2::uuid IS NULL OR tenant_id = $2)
          ORDER BY user_id LIMIT $3",
    )
    .bind(email)
    .bind(tenant)
    .bind(MAX_LOGIN_TENANTS)
    .fetch_all(tx)
    .await
}

const USER_COLUMNS: &str =
    "tenant_id, id, email, display_name, password_hash, roles, disabled_at, created_at";

pub async fn find_user(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<User>> {
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await
}

pub async fn list_users(tx: &mut PgConnection, tenant: Uuid) -> sqlx::Result<Vec<User>> {
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 ORDER BY email"
    ))
    .bind(tenant)
    .fetch_all(tx)
    .await
}

pub async fn set_disabled(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    disabled: bool,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE users SET disabled_at = CASE WHEN $3 THEN coalesce(disabled_at, now()) END WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(disabled)
    .execute(tx)
    .await?;
    Ok(result.rows_affected() > 0)
}

pub async fn set_roles(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    roles: &[String],
) -> sqlx::Result<bool> {
    let result = sqlx::query("UPDATE users SET roles = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .bind(roles)
        .execute(tx)
        .await?;
    Ok(result.rows_affected() > 0)
}

pub async fn teams_of(tx: &mut PgConnection, tenant: Uuid, user: Uuid) -> sqlx::Result<Vec<Uuid>> {
    let rows: Vec<(Uuid,)> =
        sqlx::query_as("SELECT team_id FROM team_members WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant)
            .bind(user)
            .fetch_all(tx)
            .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

pub async fn insert_team(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    name: &str,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO teams (tenant_id, id, name) VALUES ($1, $2, $3)")
        .bind(tenant)
        .bind(id)
        .bind(name)
        .execute(tx)
        .await?;
    Ok(())
}

/// Teams with their member ids.
pub async fn list_teams(
    tx: &mut PgConnection,
    tenant: Uuid,
) -> sqlx::Result<Vec<(Uuid, String, Vec<Uuid>)>> {
    sqlx::query_as(
        "SELECT t.id, t.name, coalesce(array_agg(m.user_id) FILTER (WHERE m.user_id IS NOT NULL), '{}')
           FROM teams t LEFT JOIN team_members m ON m.tenant_id = t.tenant_id AND m.team_id = t.id
          WHERE t.tenant_id = $1 GROUP BY t.id, t.name ORDER BY t.name",
    )
    .bind(tenant)
    .fetch_all(tx)
    .await
}

pub async fn team_exists(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let row: Option<(i32,)> =
        sqlx::query_as("SELECT 1 FROM teams WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(tx)
            .await?;
    Ok(row.is_some())
}

pub async fn add_member(
    tx: &mut PgConnection,
    tenant: Uuid,
    team: Uuid,
    user: Uuid,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO team_members (tenant_id, team_id, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(tenant)
        .bind(team)
        .bind(user)
        .execute(tx)
        .await?;
    Ok(())
}

pub async fn remove_member(
    tx: &mut PgConnection,
    tenant: Uuid,
    team: Uuid,
    user: Uuid,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "DELETE FROM team_members WHERE tenant_id = $1 AND team_id = $2 AND user_id = $3",
    )
    .bind(tenant)
    .bind(team)
    .bind(user)
    .execute(tx)
    .await?;
    Ok(result.rows_affected() > 0)
}
