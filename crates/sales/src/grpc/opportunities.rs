//! OpportunityService: opportunities, stage moves with history, won/lost.

use crm_proto::crm::sales::v1::opportunity_service_server::OpportunityService;
use crm_proto::crm::sales::v1::*;
use kit::auth::CallerContext;
use kit::error::Violations;
use kit::paging::{finish_page, Page};
use kit::Error;
use sqlx::PgConnection;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::leads::{check_account_visible, token_of, Token};
use super::{check_version, commit, handle, page_response, version_of, SharedState, State};
use crate::domain::access::{authorize, scope, Action};
use crate::domain::{opportunity, optional_id, parse_id};
use crate::store::opportunities::{self as store, StageMove, Values};
use crate::store::pipelines;

pub struct OpportunityHandlers(pub SharedState);

kit::field_mask!(
    apply_mask,
    changed_fields,
    Opportunity,
    "opportunity",
    [
        name,
        account_id,
        contacts,
        amount,
        close_date,
        probability,
        forecast_category,
        owner_id,
        team_id,
        campaign_id,
        competitors,
        next_step,
        line_items,
    ]
);

/// Creating a record for another owner, or in a team not the caller's, is
/// assigning it: that needs the assign permission (managers, admins).
pub fn require_assign_for_others(
    caller: &CallerContext,
    owner_id: &str,
    team_id: &str,
) -> kit::Result<()> {
    let other_owner = !owner_id.is_empty() && Uuid::parse_str(owner_id).ok() != caller.user_id;
    let other_team =
        !team_id.is_empty() && !Uuid::parse_str(team_id).is_ok_and(|t| caller.teams.contains(&t));
    if other_owner || other_team {
        authorize(caller, Action::Assign)?;
    }
    Ok(())
}

fn status_for(kind: StageKind) -> OpportunityStatus {
    match kind {
        StageKind::Won => OpportunityStatus::Won,
        StageKind::Lost => OpportunityStatus::Lost,
        _ => OpportunityStatus::Open,
    }
}

/// Creates an opportunity inside `tx`: checks it, puts it in the first
/// open stage of its pipeline (the default one when none is given) unless
/// a stage is named, records the first history entry and the event.
/// Idempotent with `request_id`.
pub async fn create_in(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    token: &Token,
    mut o: Opportunity,
    request_id: Option<&str>,
) -> kit::Result<Opportunity> {
    let tenant = caller.tenant_id;
    if let Some(request_id) = request_id {
        if let Some(existing) = store::by_request(tx, tenant, request_id).await? {
            let created_by = existing.audit.as_ref().map(|a| a.created_by.as_str());
            kit::access::check_replay(
                caller,
                created_by.unwrap_or_default(),
                &existing.owner_id,
                &existing.team_id,
            )?;
            return Ok(existing);
        }
    }
    let mut violations = Violations::new();
    let pipeline_id = violations
        .check(optional_id("opportunity.pipeline_id", &o.pipeline_id))
        .flatten();
    let stage_id = violations
        .check(optional_id("opportunity.stage_id", &o.stage_id))
        .flatten();
    let probability_given = o.probability != 0;
    let checked = opportunity::normalize(&mut o, &mut violations);
    violations.into_result()?;
    let Some(checked) = checked else {
        return Err(Error::invalid("opportunity.amount", "is invalid"));
    };
    // The named pipeline's stages, or the default one's, in one query.
    let stages = pipelines::stages_of(tx, tenant, pipeline_id).await?;
    if stages.is_empty() {
        return Err(match pipeline_id {
            Some(_) => Error::invalid("opportunity.pipeline_id", "no such pipeline"),
            None => Error::FailedPrecondition(
                "the tenant has no default pipeline; create one first".into(),
            ),
        });
    }
    let stage = match stage_id {
        Some(id) => stages.iter().find(|s| s.id == id).ok_or_else(|| {
            Error::invalid("opportunity.stage_id", "is not a stage of this pipeline")
        })?,
        None => stages
            .iter()
            .find(|s| s.kind == StageKind::Open as i16)
            .ok_or_else(|| Error::FailedPrecondition("the pipeline has no open stage".into()))?,
    };
    let stage_kind = StageKind::try_from(i32::from(stage.kind)).unwrap_or(StageKind::Open);
    let status = status_for(stage_kind);
    if status == OpportunityStatus::Lost && o.lost_reason.trim().is_empty() {
        return Err(Error::invalid(
            "opportunity.lost_reason",
            "is required for a lost stage",
        ));
    }
    o.pipeline_id = stage.pipeline_id.to_string();
    o.stage_id = stage.id.to_string();
    o.status = status as i32;
    if !probability_given {
        o.probability = stage.probability;
    }
    if o.owner_id.is_empty() {
        o.owner_id = caller.user_id.map(|u| u.to_string()).unwrap_or_default();
    }
    if o.team_id.is_empty() {
        if let Some(team) = caller.teams.first() {
            o.team_id = team.to_string();
        }
    }
    let id = Uuid::now_v7();
    let values = Values {
        opportunity: &o,
        amount: checked.amount,
        currency: &checked.currency,
        close_date: checked.close_date,
    };
    let created = store::insert(tx, tenant, id, &values, request_id, &caller.subject).await?;
    let stage_uuid = Uuid::parse_str(&created.stage_id).map_err(|e| Error::Internal(e.into()))?;
    let first = StageMove {
        opportunity: id,
        from: None,
        to: stage_uuid,
        amount: checked.amount,
        currency: &checked.currency,
    };
    store::record_stage_change(tx, tenant, &first, &caller.subject).await?;
    state
        .outbox
        .enqueue(
            tx,
            caller,
            id,
            1,
            &OpportunityCreated {
                opportunity: Some(created.clone()),
            },
        )
        .await?;
    if status == OpportunityStatus::Won {
        publish_won(state, tx, caller, token, &created).await?;
    }
    Ok(created)
}

/// Records a win. Creating a deal in a won stage and moving one there go
/// through here alike, with the same check of the account.
async fn publish_won(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    token: &Token,
    o: &Opportunity,
) -> kit::Result<()> {
    check_account_visible(state, token, &o.account_id).await?;
    let id = Uuid::parse_str(&o.id).map_err(|e| Error::Internal(e.into()))?;
    let event = OpportunityWon {
        opportunity_id: o.id.clone(),
        account_id: o.account_id.clone(),
        amount: o.amount.clone(),
        line_items: o.line_items.clone(),
        owner_id: o.owner_id.clone(),
        contact_ids: o.contacts.iter().map(|c| c.contact_id.clone()).collect(),
        campaign_id: o.campaign_id.clone(),
    };
    state
        .outbox
        .enqueue(tx, caller, id, version_of(&o.audit), &event)
        .await?;
    Ok(())
}

async fn visible(
    tx: &mut PgConnection,
    caller: &CallerContext,
    id: Uuid,
    lock: bool,
) -> kit::Result<Opportunity> {
    store::find(tx, caller.tenant_id, &scope(caller), id, lock)
        .await?
        .ok_or_else(|| Error::not_found("opportunity", id))
}

/// Saves a changed opportunity after checking it again.
async fn save(
    tx: &mut PgConnection,
    caller: &CallerContext,
    mut o: Opportunity,
) -> kit::Result<Opportunity> {
    let mut violations = Violations::new();
    let checked = opportunity::normalize(&mut o, &mut violations);
    violations.into_result()?;
    let checked = checked.ok_or_else(|| Error::invalid("opportunity.amount", "is invalid"))?;
    let values = Values {
        opportunity: &o,
        amount: checked.amount,
        currency: &checked.currency,
        close_date: checked.close_date,
    };
    Ok(store::update(tx, caller.tenant_id, &values, &caller.subject).await?)
}

#[tonic::async_trait]
impl OpportunityService for OpportunityHandlers {
    async fn create_opportunity(
        &self,
        request: Request<CreateOpportunityRequest>,
    ) -> Result<Response<CreateOpportunityResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let o = request
                .opportunity
                .ok_or_else(|| Error::invalid("opportunity", "is required"))?;
            require_assign_for_others(&caller, &o.owner_id, &o.team_id)?;
            if request.request_id.len() > 200 {
                return Err(Error::invalid(
                    "request_id",
                    "is longer than 200 characters",
                ));
            }
            let mut tx = self.0.begin(&caller).await?;
            let request_id =
                (!request.request_id.is_empty()).then_some(request.request_id.as_str());
            let created = create_in(&self.0, &mut tx, &caller, &token, o, request_id).await?;
            commit(tx).await?;
            Ok(CreateOpportunityResponse {
                opportunity: Some(created),
            })
        })
        .await
    }

    async fn get_opportunity(
        &self,
        request: Request<GetOpportunityRequest>,
    ) -> Result<Response<GetOpportunityResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            Ok(GetOpportunityResponse {
                opportunity: Some(visible(&mut tx, &caller, id, false).await?),
            })
        })
        .await
    }

    async fn update_opportunity(
        &self,
        request: Request<UpdateOpportunityRequest>,
    ) -> Result<Response<UpdateOpportunityResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let input = request
                .opportunity
                .ok_or_else(|| Error::invalid("opportunity", "is required"))?;
            let id = parse_id("opportunity.id", &input.id)?;
            let paths = request
                .update_mask
                .map(|mask| mask.paths)
                .unwrap_or_default();
            let mut tx = self.0.begin(&caller).await?;
            let mut o = visible(&mut tx, &caller, id, true).await?;
            check_version(
                "opportunity",
                &input.id,
                request.expected_version,
                version_of(&o.audit),
            )?;
            let (owner, team) = (o.owner_id.clone(), o.team_id.clone());
            apply_mask(&mut o, input, &paths, "update_mask")?;
            if o.owner_id != owner || o.team_id != team {
                authorize(&caller, Action::Assign)?;
            }
            let saved = save(&mut tx, &caller, o).await?;
            let event = OpportunityUpdated {
                opportunity: Some(saved.clone()),
            };
            self.0
                .outbox
                .enqueue(&mut tx, &caller, id, version_of(&saved.audit), &event)
                .await?;
            commit(tx).await?;
            Ok(UpdateOpportunityResponse {
                opportunity: Some(saved),
            })
        })
        .await
    }

    async fn move_stage(
        &self,
        request: Request<MoveStageRequest>,
    ) -> Result<Response<MoveStageResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let id = parse_id("id", &request.id)?;
            let to = parse_id("stage_id", &request.stage_id)?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let mut o = visible(&mut tx, &caller, id, true).await?;
            check_version(
                "opportunity",
                &request.id,
                request.expected_version,
                version_of(&o.audit),
            )?;
            let stage = pipelines::stage(&mut tx, tenant, to)
                .await?
                .filter(|s| s.pipeline_id.to_string() == o.pipeline_id)
                .ok_or_else(|| {
                    Error::invalid("stage_id", "is not a stage of the opportunity's pipeline")
                })?;
            let from = o.stage_id.clone();
            if from == to.to_string() {
                return Ok(MoveStageResponse {
                    opportunity: Some(o),
                });
            }
            let kind = StageKind::try_from(i32::from(stage.kind)).unwrap_or(StageKind::Open);
            let status = status_for(kind);
            let lost_reason = request.lost_reason.trim().to_owned();
            if status == OpportunityStatus::Lost {
                if lost_reason.is_empty() {
                    return Err(Error::invalid(
                        "lost_reason",
                        "is required to move to a lost stage",
                    ));
                }
                if lost_reason.chars().count() > 500 {
                    return Err(Error::invalid(
                        "lost_reason",
                        "is longer than 500 characters",
                    ));
                }
            }
            o.stage_id = to.to_string();
            o.status = status as i32;
            o.probability = stage.probability;
            o.lost_reason = if status == OpportunityStatus::Lost {
                lost_reason
            } else {
                String::new()
            };
            o.forecast_category = match status {
                OpportunityStatus::Won => ForecastCategory::Closed as i32,
                OpportunityStatus::Lost => ForecastCategory::Omitted as i32,
                _ if o.forecast_category == ForecastCategory::Closed as i32 => {
                    ForecastCategory::Pipeline as i32
                }
                _ => o.forecast_category,
            };
            let saved = save(&mut tx, &caller, o).await?;
            let amount = saved.amount.clone().unwrap_or_default();
            let decimal = amount.amount.parse().unwrap_or_default();
            let from_id = Uuid::parse_str(&from).ok();
            let change = StageMove {
                opportunity: id,
                from: from_id,
                to,
                amount: decimal,
                currency: &amount.currency,
            };
            store::record_stage_change(&mut tx, tenant, &change, &caller.subject).await?;
            let version = version_of(&saved.audit);
            let state = &self.0;
            let event = OpportunityStageChanged {
                opportunity_id: saved.id.clone(),
                from_stage_id: from,
                to_stage_id: saved.stage_id.clone(),
                probability: saved.probability,
                opportunity: Some(saved.clone()),
            };
            state
                .outbox
                .enqueue(&mut tx, &caller, id, version, &event)
                .await?;
            match status {
                OpportunityStatus::Won => {
                    publish_won(state, &mut tx, &caller, &token, &saved).await?
                }
                OpportunityStatus::Lost => {
                    let event = OpportunityLost {
                        opportunity_id: saved.id.clone(),
                        account_id: saved.account_id.clone(),
                        lost_reason: saved.lost_reason.clone(),
                    };
                    state
                        .outbox
                        .enqueue(&mut tx, &caller, id, version, &event)
                        .await?;
                }
                _ => {}
            }
            commit(tx).await?;
            Ok(MoveStageResponse {
                opportunity: Some(saved),
            })
        })
        .await
    }

    async fn list_opportunities(
        &self,
        request: Request<ListOpportunitiesRequest>,
    ) -> Result<Response<ListOpportunitiesResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let mut v = Violations::new();
            let filter = store::OpportunityFilter {
                pipeline: v
                    .check(optional_id("pipeline_id", &request.pipeline_id))
                    .flatten(),
                stage: v
                    .check(optional_id("stage_id", &request.stage_id))
                    .flatten(),
                account: v
                    .check(optional_id("account_id", &request.account_id))
                    .flatten(),
                owner: v
                    .check(optional_id("owner_id", &request.owner_id))
                    .flatten(),
                contact: v
                    .check(optional_id("contact_id", &request.contact_id))
                    .flatten(),
                status: match OpportunityStatus::try_from(request.status) {
                    Ok(OpportunityStatus::Unspecified) => None,
                    Ok(s) => Some(s as i16),
                    Err(_) => {
                        v.add("status", "is not a known status");
                        None
                    }
                },
            };
            v.into_result()?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows = store::list(
                &mut tx,
                caller.tenant_id,
                &scope(&caller),
                &filter,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (opportunities, next) = finish_page(rows, page.size, |o: &Opportunity| {
                Uuid::parse_str(&o.id).unwrap_or_default()
            });
            Ok(ListOpportunitiesResponse {
                opportunities,
                page: page_response(next),
            })
        })
        .await
    }

    async fn get_stage_history(
        &self,
        request: Request<GetStageHistoryRequest>,
    ) -> Result<Response<GetStageHistoryResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("opportunity_id", &request.opportunity_id)?;
            let mut tx = self.0.begin(&caller).await?;
            visible(&mut tx, &caller, id, false).await?;
            Ok(GetStageHistoryResponse {
                changes: store::history(&mut tx, caller.tenant_id, id).await?,
            })
        })
        .await
    }
}
