//! Users of a tenant: admins create, list, change roles of and disable them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use kit::auth::Role;
use kit::error::Violations;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::problem::{self, Problem};
use super::rest::parse_uuid;
use super::tenants::check_email;
use super::{Caller, JsonBody, SharedState};
use crate::domain::{password, roles};
use crate::store::{audit, identity, refresh_tokens};

/// A role, as named in requests (documentation of the accepted values).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum RoleName {
    Admin,
    Manager,
    SalesRep,
    SupportAgent,
    Marketer,
    Viewer,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[schema(format = "email", min_length = 3, max_length = 254)]
    pub email: String,
    #[schema(min_length = 1, max_length = 200)]
    pub display_name: String,
    #[schema(min_length = 10, max_length = 256)]
    pub password: String,
    #[schema(value_type = Vec<RoleName>, min_items = 1)]
    pub roles: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[schema(value_type = Option<Vec<RoleName>>, min_items = 1)]
    pub roles: Option<Vec<String>>,
    pub disabled: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<identity::User> for UserView {
    fn from(user: identity::User) -> Self {
        UserView {
            id: user.id,
            email: user.email,
            display_name: user.display_name,
            roles: user.roles,
            disabled: user.disabled_at.is_some(),
            created_at: user.created_at,
        }
    }
}

fn check_roles(field: &str, names: &[String], violations: &mut Violations) {
    if names.is_empty() {
        violations.add(field, "at least one role");
    }
    for (i, name) in names.iter().enumerate() {
        if roles::parse(name).is_none() {
            violations.add(
                format!("{field}[{i}]"),
                "must be admin, manager, sales_rep, support_agent, marketer or viewer",
            );
        }
    }
}

#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = CreateUser, security(("bearer" = [])),
    responses((status = 201, body = UserView), (status = 400, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 403, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    JsonBody(request): JsonBody<CreateUser>,
) -> Result<(StatusCode, Json<UserView>), Problem> {
    caller.require_admin("manage users")?;
    let mut violations = Violations::new();
    let email = check_email("email", &request.email, &mut violations);
    if request.display_name.trim().is_empty() {
        violations.add("display_name", "is required");
    }
    violations.check(password::check("password", &request.password));
    check_roles("roles", &request.roles, &mut violations);
    violations.into_result()?;
    let user = identity::User {
        tenant_id: caller.context.tenant_id,
        id: Uuid::now_v7(),
        email,
        display_name: request.display_name.trim().to_owned(),
        password_hash: {
            let given = request.password.clone();
            state
                .login_guard
                .hash(move || password::hash(&given))
                .await?
                .map_err(|e| Problem::from(kit::Error::internal(e)))?
        },
        roles: request.roles,
        disabled_at: None,
        created_at: chrono::Utc::now(),
    };
    let mut tx = state.db.begin_tenant(caller.context.tenant_id).await?;
    identity::insert_user(&mut tx, &user)
        .await
        .map_err(|e| match Problem::from(e) {
            p if p.status == 409 => Problem::invalid("email", "is already registered"),
            p => p,
        })?;
    audit::record(
        &mut tx,
        user.tenant_id,
        &caller.context.subject,
        "user.created",
        &user.id.to_string(),
        serde_json::json!({"roles": user.roles}),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[utoipa::path(get, path = "/v1/users", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = Vec<UserView>), (status = 403, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
) -> Result<Json<Vec<UserView>>, Problem> {
    caller.require_person("list users")?;
    if !(caller.context.has_role(Role::Admin) || caller.context.has_role(Role::Manager)) {
        return Err(Problem::forbidden("only admins and managers list users"));
    }
    let mut tx = state.db.begin_tenant(caller.context.tenant_id).await?;
    let users = identity::list_users(&mut tx, caller.context.tenant_id).await?;
    Ok(Json(users.into_iter().map(UserView::from).collect()))
}

#[utoipa::path(patch, path = "/v1/users/{id}", tag = "users", request_body = UpdateUser, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "user id")),
    responses((status = 200, body = UserView), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn update(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<UpdateUser>,
) -> Result<Json<UserView>, Problem> {
    caller.require_admin("manage users")?;
    let id = parse_uuid("id", &id)?;
    let mut violations = Violations::new();
    if let Some(names) = &request.roles {
        check_roles("roles", names, &mut violations);
    }
    if request.roles.is_none() && request.disabled.is_none() {
        violations.add(
            "body",
            "name at least one field to change: roles or disabled",
        );
    }
    // An admin cannot lock themselves out (and the tenant with them).
    if caller.context.user_id == Some(id) {
        if request.disabled == Some(true) {
            violations.add("disabled", "you cannot disable yourself");
        }
        if request
            .roles
            .as_ref()
            .is_some_and(|names| !names.iter().any(|n| n == "admin"))
        {
            violations.add("roles", "you cannot remove your own admin role");
        }
    }
    violations.into_result()?;
    let tenant = caller.context.tenant_id;
    let mut tx = state.db.begin_tenant(tenant).await?;
    let not_found = || Problem::from(kit::Error::not_found("user", id));
    identity::find_user(&mut tx, tenant, id)
        .await?
        .ok_or_else(not_found)?;
    if let Some(names) = &request.roles {
        identity::set_roles(&mut tx, tenant, id, names).await?;
        audit::record(
            &mut tx,
            tenant,
            &caller.context.subject,
            "user.roles_changed",
            &id.to_string(),
            serde_json::json!({"roles": names}),
        )
        .await?;
    }
    if let Some(disabled) = request.disabled {
        identity::set_disabled(&mut tx, tenant, id, disabled).await?;
        if disabled {
            refresh_tokens::revoke_user(&mut tx, tenant, id).await?;
        }
        let action = if disabled {
            "user.disabled"
        } else {
            "user.enabled"
        };
        audit::record(
            &mut tx,
            tenant,
            &caller.context.subject,
            action,
            &id.to_string(),
            serde_json::json!({}),
        )
        .await?;
    }
    let user = identity::find_user(&mut tx, tenant, id)
        .await?
        .ok_or_else(not_found)?;
    tx.commit().await?;
    Ok(Json(user.into()))
}
