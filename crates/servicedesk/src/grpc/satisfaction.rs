//! SatisfactionService: survey answers through the gateway's public route,
//! and the list of answers agents and the 360 views read.

use crm_proto::crm::servicedesk::v1::satisfaction_service_server::SatisfactionService;
use crm_proto::crm::servicedesk::v1::*;
use kit::auth::{CallerContext, Role};
use kit::error::Violations;
use kit::paging::{finish_page, Page};
use kit::Error;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{commit, handle, page_response, SharedState, State};
use crate::domain::access::{authorize, scope, Action};
use crate::domain::optional_id;
use crate::domain::satisfaction::{check_answer, Survey};
use crate::store::satisfaction as store;
use crate::store::tickets;

pub struct SatisfactionHandlers(pub SharedState);

/// The ticket a survey token names, for the gateway's public route only;
/// an unknown, forged, expired or other tenant's token is not found.
fn survey_of(state: &State, caller: &CallerContext, token: &str) -> kit::Result<Uuid> {
    if !caller.has_role(Role::Service) {
        return Err(Error::PermissionDenied(
            "surveys are answered through the gateway's public route".into(),
        ));
    }
    state
        .link_key
        .as_ref()
        .and_then(|key| key.verify::<Survey>(token, state.clock.now().timestamp()))
        .filter(|survey| survey.tenant == caller.tenant_id)
        .map(|survey| survey.ticket)
        .ok_or_else(|| Error::not_found("survey", "for this link"))
}

#[tonic::async_trait]
impl SatisfactionService for SatisfactionHandlers {
    async fn describe_survey(
        &self,
        request: Request<DescribeSurveyRequest>,
    ) -> Result<Response<DescribeSurveyResponse>, Status> {
        handle(request, |caller, request| async move {
            let ticket = survey_of(&self.0, &caller, &request.token)?;
            let mut tx = self.0.begin(&caller).await?;
            let t = tickets::find(&mut tx, caller.tenant_id, &scope(&caller), ticket, false)
                .await?
                .ok_or_else(|| Error::not_found("survey", "for this link"))?;
            let answered = store::answered(&mut tx, caller.tenant_id, ticket).await?;
            Ok(DescribeSurveyResponse {
                ticket_number: t.number,
                subject: t.subject,
                answered,
            })
        })
        .await
    }

    async fn answer_survey(
        &self,
        request: Request<AnswerSurveyRequest>,
    ) -> Result<Response<AnswerSurveyResponse>, Status> {
        handle(request, |caller, mut request| async move {
            let ticket = survey_of(&self.0, &caller, &request.token)?;
            let mut v = Violations::new();
            check_answer(request.score, &mut request.comment, &mut v);
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let t = tickets::find(&mut tx, tenant, &scope(&caller), ticket, false)
                .await?
                .ok_or_else(|| Error::not_found("survey", "for this link"))?;
            let now = self.0.clock.now();
            let rating = store::insert(
                &mut tx,
                tenant,
                ticket,
                request.score,
                &request.comment,
                now,
            )
            .await
            .map_err(|e| {
                Error::from(e).exists_as(|| "this survey was answered already".to_owned())
            })?;
            let event = SatisfactionReceived {
                ticket_id: t.id.clone(),
                requester_contact_id: t.requester_contact_id.clone(),
                account_id: t.account_id.clone(),
                group_id: t.group_id.clone(),
                assignee_id: t.assignee_id.clone(),
                score: rating.score,
                commented: !rating.comment.is_empty(),
            };
            let version = super::version_of(&t.audit);
            self.0
                .outbox
                .enqueue(&mut tx, &caller, ticket, version, &event)
                .await?;
            commit(tx).await?;
            Ok(AnswerSurveyResponse {
                rating: Some(rating),
            })
        })
        .await
    }

    async fn list_satisfaction_ratings(
        &self,
        request: Request<ListSatisfactionRatingsRequest>,
    ) -> Result<Response<ListSatisfactionRatingsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let mut v = Violations::new();
            let requester = v
                .check(optional_id(
                    "requester_contact_id",
                    &request.requester_contact_id,
                ))
                .flatten();
            let account = v
                .check(optional_id("account_id", &request.account_id))
                .flatten();
            v.into_result()?;
            let page = Page::<(i64, Uuid)>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows = store::list(
                &mut tx,
                caller.tenant_id,
                &scope(&caller),
                requester,
                account,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (ratings, next) = finish_page(rows, page.size, |r: &SatisfactionRating| {
                (
                    r.answered_at
                        .as_ref()
                        .and_then(|t| {
                            chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
                        })
                        .map(|t| t.timestamp_micros())
                        .unwrap_or_default(),
                    Uuid::parse_str(&r.ticket_id).unwrap_or_default(),
                )
            });
            Ok(ListSatisfactionRatingsResponse {
                ratings,
                page: page_response(next),
            })
        })
        .await
    }
}
