//! Teams: admins create them and manage members. Membership travels in the
//! access token (`teams`), so services apply team visibility; a change takes
//! effect with the member's next token.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::problem::{self, Problem};
use super::rest::parse_uuid;
use super::{Caller, JsonBody, SharedState};
use crate::store::{audit, identity};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct TeamView {
    pub id: Uuid,
    pub name: String,
    pub members: Vec<Uuid>,
}

#[utoipa::path(post, path = "/v1/teams", tag = "teams", request_body = CreateTeam, security(("bearer" = [])),
    responses((status = 201, body = TeamView), (status = 409, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    JsonBody(request): JsonBody<CreateTeam>,
) -> Result<(StatusCode, Json<TeamView>), Problem> {
    caller.require_admin("manage teams")?;
    let name = request.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Problem::invalid("name", "must be 1 to 100 characters"));
    }
    let tenant = caller.context.tenant_id;
    let id = Uuid::now_v7();
    let mut tx = state.db.begin_tenant(tenant).await?;
    identity::insert_team(&mut tx, tenant, id, &name)
        .await
        .map_err(|e| match Problem::from(e) {
            p if p.status == 409 => Problem::invalid("name", "a team with this name exists"),
            p => p,
        })?;
    audit::record(
        &mut tx,
        tenant,
        &caller.context.subject,
        "team.created",
        &id.to_string(),
        serde_json::json!({"name": name}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(TeamView {
            id,
            name,
            members: Vec::new(),
        }),
    ))
}

#[utoipa::path(get, path = "/v1/teams", tag = "teams", security(("bearer" = [])), responses((status = 200, body = Vec<TeamView>),
    (status = 403, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
) -> Result<Json<Vec<TeamView>>, Problem> {
    caller.require_person("list teams")?;
    let mut tx = state.db.begin_tenant(caller.context.tenant_id).await?;
    let teams = identity::list_teams(&mut tx, caller.context.tenant_id).await?;
    Ok(Json(
        teams
            .into_iter()
            .map(|(id, name, members)| TeamView { id, name, members })
            .collect(),
    ))
}

#[utoipa::path(put, path = "/v1/teams/{id}/members/{user_id}", tag = "teams", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "team id"), ("user_id" = Uuid, Path, description = "user id")),
    responses((status = 204), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn add_member(
    State(state): State<SharedState>,
    caller: Caller,
    Path((team, user)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    caller.require_admin("manage teams")?;
    let (team, user) = (parse_uuid("id", &team)?, parse_uuid("user_id", &user)?);
    let tenant = caller.context.tenant_id;
    let mut tx = state.db.begin_tenant(tenant).await?;
    if !identity::team_exists(&mut tx, tenant, team).await? {
        return Err(Problem::from(kit::Error::not_found("team", team)));
    }
    if identity::find_user(&mut tx, tenant, user).await?.is_none() {
        return Err(Problem::from(kit::Error::not_found("user", user)));
    }
    identity::add_member(&mut tx, tenant, team, user).await?;
    audit::record(
        &mut tx,
        tenant,
        &caller.context.subject,
        "team.member_added",
        &team.to_string(),
        serde_json::json!({"user": user}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/v1/teams/{id}/members/{user_id}", tag = "teams", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "team id"), ("user_id" = Uuid, Path, description = "user id")),
    responses((status = 204), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn remove_member(
    State(state): State<SharedState>,
    caller: Caller,
    Path((team, user)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    caller.require_admin("manage teams")?;
    let (team, user) = (parse_uuid("id", &team)?, parse_uuid("user_id", &user)?);
    let tenant = caller.context.tenant_id;
    let mut tx = state.db.begin_tenant(tenant).await?;
    if !identity::remove_member(&mut tx, tenant, team, user).await? {
        return Err(Problem::from(kit::Error::not_found(
            "team membership",
            user,
        )));
    }
    audit::record(
        &mut tx,
        tenant,
        &caller.context.subject,
        "team.member_removed",
        &team.to_string(),
        serde_json::json!({"user": user}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
