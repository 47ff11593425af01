//! PipelineService: pipelines and their ordered stages.

use crm_proto::crm::sales::v1::pipeline_service_server::PipelineService;
use crm_proto::crm::sales::v1::*;
use kit::auth::CallerContext;
use kit::error::Violations;
use kit::Error;
use sqlx::PgConnection;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{commit, handle, SharedState, State};
use crate::domain::access::{authorize, Action};
use crate::domain::{parse_id, text};
use crate::store::{opportunities, pipelines as store};

pub struct PipelineHandlers(pub SharedState);

fn check_stage(stage: &mut Stage, at: &str, violations: &mut Violations) {
    violations.check(text(&format!("{at}.name"), &mut stage.name, 100));
    if stage.name.is_empty() {
        violations.add(format!("{at}.name"), "is required");
    }
    if !(0..=100).contains(&stage.probability) {
        violations.add(format!("{at}.probability"), "must be from 0 to 100");
    }
    match StageKind::try_from(stage.kind) {
        Ok(StageKind::Unspecified) => stage.kind = StageKind::Open as i32,
        Ok(StageKind::Won) if stage.probability == 0 => stage.probability = 100,
        Ok(_) => {}
        Err(_) => violations.add(format!("{at}.kind"), "must be open, won or lost"),
    }
}

/// A pipeline needs an open, a won and a lost stage, with distinct names.
fn check_shape(stages: &[Stage], violations: &mut Violations) {
    for kind in [StageKind::Open, StageKind::Won, StageKind::Lost] {
        if !stages.iter().any(|s| s.kind == kind as i32) {
            violations.add(
                "pipeline.stages",
                format!(
                    "needs at least one {} stage",
                    kind.as_str_name()
                        .trim_start_matches("STAGE_KIND_")
                        .to_lowercase()
                ),
            );
        }
    }
    let mut names: Vec<String> = stages.iter().map(|s| s.name.to_lowercase()).collect();
    names.sort();
    if names.windows(2).any(|w| w[0] == w[1]) {
        violations.add("pipeline.stages", "stage names must differ");
    }
}

async fn locked(tx: &mut PgConnection, caller: &CallerContext, id: Uuid) -> kit::Result<Pipeline> {
    store::find(tx, caller.tenant_id, id, true)
        .await?
        .ok_or_else(|| Error::not_found("pipeline", id))
}

/// Writes the pipeline's stages and publishes the pipeline as it now is
/// (`removed`: a removed stage and where its opportunities went).
async fn rewrite(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    id: Uuid,
    stages: &[Stage],
    removed: Option<(Uuid, Uuid)>,
) -> kit::Result<Pipeline> {
    store::write_stages(tx, caller.tenant_id, id, stages).await?;
    let pipeline = store::find(tx, caller.tenant_id, id, false)
        .await?
        .ok_or_else(|| Error::not_found("pipeline", id))?;
    let (removed_stage_id, moved_to_stage_id) = removed
        .map(|(from, to)| (from.to_string(), to.to_string()))
        .unwrap_or_default();
    let event = PipelineChanged {
        pipeline: Some(pipeline.clone()),
        removed_stage_id,
        moved_to_stage_id,
    };
    let version = kit::rpc::version_of(&pipeline.audit);
    state
        .outbox
        .enqueue(tx, caller, id, version, &event)
        .await?;
    Ok(pipeline)
}

#[tonic::async_trait]
impl PipelineService for PipelineHandlers {
    async fn create_pipeline(
        &self,
        request: Request<CreatePipelineRequest>,
    ) -> Result<Response<CreatePipelineResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let fingerprint = kit::idempotency::fingerprint(&CreatePipelineRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut pipeline = request
                .pipeline
                .ok_or_else(|| Error::invalid("pipeline", "is required"))?;
            let mut violations = Violations::new();
            violations.check(text("pipeline.name", &mut pipeline.name, 100));
            if pipeline.name.is_empty() {
                violations.add("pipeline.name", "is required");
            }
            if pipeline.stages.len() > 50 {
                violations.add("pipeline.stages", "at most 50 stages");
            }
            for (i, stage) in pipeline.stages.iter_mut().enumerate() {
                check_stage(stage, &format!("pipeline.stages[{i}]"), &mut violations);
                stage.id = Uuid::now_v7().to_string();
            }
            check_shape(&pipeline.stages, &mut violations);
            violations.into_result()?;
            let id = Uuid::now_v7();
            let mut tx = self.0.begin(&caller).await?;
            let replayed = kit::idempotency::replayed(
                &mut tx,
                caller.tenant_id,
                "pipeline",
                &request.request_id,
                &fingerprint,
            )
            .await?;
            if let Some(existing) = replayed {
                let pipeline = store::find(&mut tx, caller.tenant_id, existing, false)
                    .await?
                    .ok_or_else(|| Error::not_found("pipeline", existing))?;
                return Ok(CreatePipelineResponse {
                    pipeline: Some(pipeline),
                });
            }
            // The first pipeline is the default; a new default replaces it.
            let has_default = store::has_default(&mut tx, caller.tenant_id).await?;
            if pipeline.is_default && has_default {
                sqlx::query(
                    "UPDATE pipelines SET is_default = false WHERE tenant_id = $1 AND is_default",
                )
                .bind(caller.tenant_id)
                .execute(&mut *tx)
                .await
                .map_err(Error::from)?;
            }
            store::insert(
                &mut tx,
                caller.tenant_id,
                id,
                &pipeline.name,
                pipeline.is_default || !has_default,
                &caller.subject,
            )
            .await
            .map_err(|e| {
                Error::from(e)
                    .exists_as(|| format!("a pipeline named {:?} already exists", pipeline.name))
            })?;
            let created = rewrite(&self.0, &mut tx, &caller, id, &pipeline.stages, None).await?;
            kit::idempotency::remember(
                &mut tx,
                caller.tenant_id,
                "pipeline",
                &request.request_id,
                &fingerprint,
                id,
            )
            .await?;
            commit(tx).await?;
            Ok(CreatePipelineResponse {
                pipeline: Some(created),
            })
        })
        .await
    }

    async fn get_pipeline(
        &self,
        request: Request<GetPipelineRequest>,
    ) -> Result<Response<GetPipelineResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let pipeline = store::find(&mut tx, caller.tenant_id, id, false)
                .await?
                .ok_or_else(|| Error::not_found("pipeline", id))?;
            Ok(GetPipelineResponse {
                pipeline: Some(pipeline),
            })
        })
        .await
    }

    async fn list_pipelines(
        &self,
        request: Request<ListPipelinesRequest>,
    ) -> Result<Response<ListPipelinesResponse>, Status> {
        handle(request, |caller, _| async move {
            authorize(&caller, Action::Read)?;
            let mut tx = self.0.begin(&caller).await?;
            Ok(ListPipelinesResponse {
                pipelines: store::list(&mut tx, caller.tenant_id).await?,
            })
        })
        .await
    }

    async fn add_stage(
        &self,
        request: Request<AddStageRequest>,
    ) -> Result<Response<AddStageResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let id = parse_id("pipeline_id", &request.pipeline_id)?;
            let mut stage = request
                .stage
                .ok_or_else(|| Error::invalid("stage", "is required"))?;
            let mut violations = Violations::new();
            check_stage(&mut stage, "stage", &mut violations);
            violations.into_result()?;
            stage.id = Uuid::now_v7().to_string();
            let mut tx = self.0.begin(&caller).await?;
            let mut stages = locked(&mut tx, &caller, id).await?.stages;
            if stages
                .iter()
                .any(|s| s.name.eq_ignore_ascii_case(&stage.name))
            {
                return Err(Error::invalid(
                    "stage.name",
                    "a stage with this name exists",
                ));
            }
            let at = usize::try_from(request.position)
                .unwrap_or(stages.len())
                .min(stages.len());
            stages.insert(at, stage);
            let pipeline = rewrite(&self.0, &mut tx, &caller, id, &stages, None).await?;
            commit(tx).await?;
            Ok(AddStageResponse {
                pipeline: Some(pipeline),
            })
        })
        .await
    }

    async fn update_stage(
        &self,
        request: Request<UpdateStageRequest>,
    ) -> Result<Response<UpdateStageResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let id = parse_id("pipeline_id", &request.pipeline_id)?;
            let mut input = request
                .stage
                .ok_or_else(|| Error::invalid("stage", "is required"))?;
            parse_id("stage.id", &input.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let mut stages = locked(&mut tx, &caller, id).await?.stages;
            let Some(stage) = stages.iter_mut().find(|s| s.id == input.id) else {
                return Err(Error::not_found("stage", &input.id));
            };
            // The kind of a stage is fixed: opportunities' status follows it.
            input.kind = stage.kind;
            let mut violations = Violations::new();
            check_stage(&mut input, "stage", &mut violations);
            violations.into_result()?;
            stage.name = input.name;
            stage.probability = input.probability;
            let mut v = Violations::new();
            check_shape(&stages, &mut v);
            if !v.is_empty() {
                return Err(Error::invalid(
                    "stage.name",
                    "a stage with this name exists",
                ));
            }
            let pipeline = rewrite(&self.0, &mut tx, &caller, id, &stages, None).await?;
            commit(tx).await?;
            Ok(UpdateStageResponse {
                pipeline: Some(pipeline),
            })
        })
        .await
    }

    async fn reorder_stages(
        &self,
        request: Request<ReorderStagesRequest>,
    ) -> Result<Response<ReorderStagesResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let id = parse_id("pipeline_id", &request.pipeline_id)?;
            let mut tx = self.0.begin(&caller).await?;
            let stages = locked(&mut tx, &caller, id).await?.stages;
            let mut sorted = request.stage_ids.clone();
            sorted.sort();
            let mut existing: Vec<String> = stages.iter().map(|s| s.id.clone()).collect();
            existing.sort();
            if sorted != existing {
                return Err(Error::invalid(
                    "stage_ids",
                    "must list every stage of the pipeline exactly once",
                ));
            }
            let ordered: Vec<Stage> = request
                .stage_ids
                .iter()
                .filter_map(|id| stages.iter().find(|s| &s.id == id).cloned())
                .collect();
            let pipeline = rewrite(&self.0, &mut tx, &caller, id, &ordered, None).await?;
            commit(tx).await?;
            Ok(ReorderStagesResponse {
                pipeline: Some(pipeline),
            })
        })
        .await
    }

    async fn remove_stage(
        &self,
        request: Request<RemoveStageRequest>,
    ) -> Result<Response<RemoveStageResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let id = parse_id("pipeline_id", &request.pipeline_id)?;
            let stage_id = parse_id("stage_id", &request.stage_id)?;
            let target = parse_id("move_to_stage_id", &request.move_to_stage_id)?;
            if target == stage_id {
                return Err(Error::invalid("move_to_stage_id", "must be another stage"));
            }
            let mut tx = self.0.begin(&caller).await?;
            let mut stages = locked(&mut tx, &caller, id).await?.stages;
            let (Some(removed), Some(to)) = (
                stages
                    .iter()
                    .find(|s| s.id == stage_id.to_string())
                    .cloned(),
                stages.iter().find(|s| s.id == target.to_string()).cloned(),
            ) else {
                return Err(Error::invalid(
                    "stage_id",
                    "both stages must belong to the pipeline",
                ));
            };
            if removed.kind != to.kind {
                return Err(Error::invalid(
                    "move_to_stage_id",
                    "must be a stage of the same kind (open, won or lost)",
                ));
            }
            stages.retain(|s| s.id != removed.id);
            let mut v = Violations::new();
            check_shape(&stages, &mut v);
            v.into_result()?;
            let moved = opportunities::move_all(
                &mut tx,
                caller.tenant_id,
                stage_id,
                target,
                &caller.subject,
            )
            .await?;
            store::delete_stage(&mut tx, caller.tenant_id, stage_id).await?;
            let pipeline = rewrite(
                &self.0,
                &mut tx,
                &caller,
                id,
                &stages,
                Some((stage_id, target)),
            )
            .await?;
            commit(tx).await?;
            Ok(RemoveStageResponse {
                pipeline: Some(pipeline),
                opportunities_moved: moved as i64,
            })
        })
        .await
    }
}
