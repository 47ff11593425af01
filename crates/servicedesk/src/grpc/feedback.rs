//! FeedbackService: the root causes complaints and feedback are filed
//! under, and NPS surveys of accounts.

use crm_proto::crm::customers::v1 as customers;
use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::servicedesk::v1::feedback_service_server::FeedbackService;
use crm_proto::crm::servicedesk::v1::*;
use kit::auth::{CallerContext, Role};
use kit::error::Violations;
use kit::input::text;
use kit::paging::{finish_page, Page};
use kit::rpc::{on_behalf, token_of, Forwarded};
use kit::Error;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{
    account_seen, commit, delete_one, handle, name_taken, named_page, page_response, SharedState,
    State,
};
use crate::domain::access::{authorize, Action};
use crate::domain::satisfaction::{
    check_nps_answer, nps_group, nps_score, NpsGroup, NpsLink, MAX_NPS_CONTACTS,
};
use crate::domain::{optional_id, parse_id};
use crate::store::feedback as store;

pub struct FeedbackHandlers(pub SharedState);

/// The account, if the caller (whose token this is) may see it in
/// customers; `field` names it in the refusal.
async fn visible_account(
    state: &State,
    token: &Forwarded,
    field: &str,
    raw: &str,
) -> kit::Result<Uuid> {
    let id = parse_id(field, raw)?;
    match account_seen(state, token, raw).await? {
        Some(_) => Ok(id),
        None => Err(Error::not_found("account", id)),
    }
}

/// The account's contacts the caller sees that have an e-mail address (at
/// most [`MAX_NPS_CONTACTS`]).
async fn reachable_contacts(
    state: &State,
    token: &Forwarded,
    account: Uuid,
) -> kit::Result<Vec<Uuid>> {
    let mut contacts = ContactServiceClient::new(state.customers.clone());
    let of_account = customers::Filter::equals("account_id", &account.to_string());
    let found = contacts
        .list_contacts(on_behalf(
            token,
            customers::ListContactsRequest {
                filter: Some(of_account),
                page: Some(crm_proto::crm::common::v1::PageRequest {
                    page_size: MAX_NPS_CONTACTS as i32,
                    ..Default::default()
                }),
                ..Default::default()
            },
        ))
        .await
        .map_err(|status| Error::upstream("customers", &status))?
        .into_inner();
    Ok(found
        .contacts
        .into_iter()
        .filter(|c| !c.emails.is_empty())
        .filter_map(|c| Uuid::parse_str(&c.id).ok())
        .collect())
}

/// The invitation an NPS link names, for the gateway's public route only:
/// (survey, contact, account, mailbox).
async fn nps_of(
    state: &State,
    caller: &CallerContext,
    token: &str,
) -> kit::Result<(Uuid, Uuid, Uuid, Uuid)> {
    if !caller.has_role(Role::Service) {
        return Err(Error::PermissionDenied(
            "surveys are answered through the gateway's public route".into(),
        ));
    }
    let unknown = || Error::not_found("survey", "for this link");
    let link = state
        .link_key
        .as_ref()
        .and_then(|key| key.verify::<NpsLink>(token, state.clock.now().timestamp()))
        .filter(|link| link.tenant == caller.tenant_id)
        .ok_or_else(unknown)?;
    let mut tx = state.begin(caller).await?;
    let (account, mailbox) = store::invitation(&mut tx, link.tenant, link.survey, link.contact)
        .await?
        .ok_or_else(unknown)?;
    Ok((link.survey, link.contact, account, mailbox))
}

#[tonic::async_trait]
impl FeedbackService for FeedbackHandlers {
    async fn create_root_cause(
        &self,
        request: Request<CreateRootCauseRequest>,
    ) -> Result<Response<CreateRootCauseResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateRootCauseRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut c = request
                .root_cause
                .ok_or_else(|| Error::invalid("root_cause", "is required"))?;
            let mut v = Violations::new();
            v.check(text("root_cause.name", &mut c.name, 100));
            if c.name.is_empty() {
                v.add("root_cause.name", "is required");
            }
            v.check(text("root_cause.description", &mut c.description, 500));
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let entity = "root_cause";
            if let Some(existing) = kit::idempotency::replayed(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
            )
            .await?
            {
                let found = store::find_root_cause(&mut tx, tenant, existing)
                    .await?
                    .ok_or_else(|| Error::not_found("root cause", existing))?;
                return Ok(CreateRootCauseResponse {
                    root_cause: Some(found),
                });
            }
            let id = Uuid::now_v7();
            let saved = store::insert_root_cause(&mut tx, tenant, id, &c, &caller.subject)
                .await
                .map_err(|e| name_taken(e, "root_cause", &c.name))?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
                id,
            )
            .await?;
            let event = RootCauseCreated {
                root_cause: Some(saved.clone()),
            };
            self.0
                .outbox
                .enqueue(&mut tx, &caller, id, 1, &event)
                .await?;
            commit(tx).await?;
            Ok(CreateRootCauseResponse {
                root_cause: Some(saved),
            })
        })
        .await
    }

    async fn list_root_causes(
        &self,
        request: Request<ListRootCausesRequest>,
    ) -> Result<Response<ListRootCausesResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let (root_causes, page) = named_page(
                &self.0,
                &caller,
                request.page.as_ref(),
                store::list_root_causes,
                |c: &RootCause| (&c.name, &c.id),
            )
            .await?;
            Ok(ListRootCausesResponse { root_causes, page })
        })
        .await
    }

    async fn delete_root_cause(
        &self,
        request: Request<DeleteRootCauseRequest>,
    ) -> Result<Response<DeleteRootCauseResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let id = parse_id("id", &request.id)?;
            let in_use = "tickets name this root cause; it stays for their statistics";
            delete_one(
                &self.0,
                &caller,
                "root cause",
                id,
                in_use,
                async |tx, tenant| store::delete_root_cause(tx, tenant, id).await,
            )
            .await?;
            Ok(DeleteRootCauseResponse {})
        })
        .await
    }

    async fn create_nps_survey(
        &self,
        request: Request<CreateNpsSurveyRequest>,
    ) -> Result<Response<CreateNpsSurveyResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateNpsSurveyRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let s = request
                .survey
                .ok_or_else(|| Error::invalid("survey", "is required"))?;
            let mut v = Violations::new();
            let mailbox = v.check(kit::input::required_id("survey.mailbox_id", &s.mailbox_id));
            v.check(kit::input::required_id("survey.account_id", &s.account_id));
            let mut chosen = Vec::new();
            if s.contact_ids.len() > MAX_NPS_CONTACTS {
                v.add(
                    "survey.contact_ids",
                    format!("at most {MAX_NPS_CONTACTS} contacts"),
                );
            }
            for (i, raw) in s.contact_ids.iter().enumerate() {
                if let Some(Some(id)) =
                    v.check(optional_id(&format!("survey.contact_ids[{i}]"), raw))
                {
                    chosen.push(id);
                }
            }
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let entity = "nps_survey";
            if let Some(existing) = kit::idempotency::replayed(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
            )
            .await?
            {
                let found = store::find_survey(&mut tx, tenant, existing)
                    .await?
                    .ok_or_else(|| Error::not_found("NPS survey", existing))?;
                return Ok(CreateNpsSurveyResponse {
                    survey: Some(found),
                });
            }
            if let Some(mailbox) = mailbox {
                if crate::store::mail::find_mailbox(&mut tx, tenant, mailbox)
                    .await?
                    .is_none()
                {
                    return Err(Error::invalid("survey.mailbox_id", "is no mailbox here"));
                }
            }
            drop(tx);
            let account = visible_account(&self.0, &token, "survey.account_id", &s.account_id)
                .await
                .map_err(|e| match e {
                    Error::NotFound { .. } => {
                        Error::invalid("survey.account_id", "no such account")
                    }
                    other => other,
                })?;
            let reachable = reachable_contacts(&self.0, &token, account).await?;
            let contacts = if chosen.is_empty() {
                reachable
            } else {
                let mut v = Violations::new();
                for (i, id) in chosen.iter().enumerate() {
                    if !reachable.contains(id) {
                        v.add(
                            format!("survey.contact_ids[{i}]"),
                            "is no contact of the account with an e-mail address",
                        );
                    }
                }
                v.into_result()?;
                chosen.sort();
                chosen.dedup();
                chosen
            };
            if contacts.is_empty() {
                return Err(Error::invalid(
                    "survey.account_id",
                    "the account has no contact with an e-mail address to ask",
                ));
            }
            if !self.0.mails_portal_links() {
                return Err(Error::FailedPrecondition(
                    "NPS surveys are mailed: set SERVICEDESK_SMTP_URL and SERVICEDESK_LINK_KEY"
                        .into(),
                ));
            }
            let mut tx = self.0.begin(&caller).await?;
            let id = Uuid::now_v7();
            let saved = store::insert_survey(
                &mut tx,
                tenant,
                id,
                &s,
                &contacts,
                &caller.subject,
                self.0.clock.now(),
            )
            .await?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
                id,
            )
            .await?;
            commit(tx).await?;
            Ok(CreateNpsSurveyResponse {
                survey: Some(saved),
            })
        })
        .await
    }

    async fn get_account_nps(
        &self,
        request: Request<GetAccountNpsRequest>,
    ) -> Result<Response<GetAccountNpsResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let since = kit::time::from_optional_timestamp("since", request.since.as_ref())?;
            let account =
                visible_account(&self.0, &token, "account_id", &request.account_id).await?;
            let mut tx = self.0.begin(&caller).await?;
            let (responses, promoters, detractors, last) =
                store::summary(&mut tx, caller.tenant_id, account, since).await?;
            Ok(GetAccountNpsResponse {
                summary: Some(NpsSummary {
                    account_id: account.to_string(),
                    responses: responses as i32,
                    promoters: promoters as i32,
                    passives: (responses - promoters - detractors) as i32,
                    detractors: detractors as i32,
                    score: nps_score(promoters, detractors, responses),
                    last_answered_at: kit::time::to_optional_timestamp(last),
                }),
            })
        })
        .await
    }

    async fn list_nps_responses(
        &self,
        request: Request<ListNpsResponsesRequest>,
    ) -> Result<Response<ListNpsResponsesResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let account =
                visible_account(&self.0, &token, "account_id", &request.account_id).await?;
            let page = Page::<(i64, Uuid)>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows = store::list_responses(
                &mut tx,
                caller.tenant_id,
                account,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (rows, next) = finish_page(rows, page.size, |(id, r): &(Uuid, NpsResponse)| {
                let micros = r
                    .answered_at
                    .as_ref()
                    .and_then(|t| {
                        chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
                    })
                    .map(|t| t.timestamp_micros())
                    .unwrap_or_default();
                (micros, *id)
            });
            Ok(ListNpsResponsesResponse {
                responses: rows.into_iter().map(|(_, r)| r).collect(),
                page: page_response(next),
            })
        })
        .await
    }

    async fn describe_nps_survey(
        &self,
        request: Request<DescribeNpsSurveyRequest>,
    ) -> Result<Response<DescribeNpsSurveyResponse>, Status> {
        handle(request, |caller, request| async move {
            let (survey, contact, _, mailbox) = nps_of(&self.0, &caller, &request.token).await?;
            let mut tx = self.0.begin(&caller).await?;
            let sender = crate::store::mail::find_mailbox(&mut tx, caller.tenant_id, mailbox)
                .await?
                .map(|m| m.name)
                .unwrap_or_default();
            let answered = store::nps_answered(&mut tx, caller.tenant_id, survey, contact).await?;
            Ok(DescribeNpsSurveyResponse { sender, answered })
        })
        .await
    }

    async fn answer_nps_survey(
        &self,
        request: Request<AnswerNpsSurveyRequest>,
    ) -> Result<Response<AnswerNpsSurveyResponse>, Status> {
        handle(request, |caller, mut request| async move {
            let (survey, contact, account, _) = nps_of(&self.0, &caller, &request.token).await?;
            let mut v = Violations::new();
            check_nps_answer(request.score, &mut request.comment, &mut v);
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let response = store::insert_response(
                &mut tx,
                tenant,
                survey,
                account,
                contact,
                request.score,
                &request.comment,
                self.0.clock.now(),
            )
            .await
            .map_err(|e| {
                Error::from(e).exists_as(|| "this survey was answered already".to_owned())
            })?;
            let event = NpsReceived {
                survey_id: survey.to_string(),
                account_id: account.to_string(),
                contact_id: contact.to_string(),
                score: request.score,
                commented: !response.comment.is_empty(),
            };
            self.0
                .outbox
                .enqueue(&mut tx, &caller, survey, 1, &event)
                .await?;
            metrics::counter!(
                "crm_servicedesk_nps_answers_total",
                "group" => match nps_group(request.score) {
                    NpsGroup::Promoter => "promoter",
                    NpsGroup::Passive => "passive",
                    NpsGroup::Detractor => "detractor",
                }
            )
            .increment(1);
            commit(tx).await?;
            Ok(AnswerNpsSurveyResponse {
                response: Some(response),
            })
        })
        .await
    }
}
