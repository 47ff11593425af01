//! AutomationService: rules that act on any service's events, and their
//! runs. The rules fire in `events::automation`.

use crm_proto::crm::customers::v1 as customers;
use crm_proto::crm::customers::v1::segment_service_client::SegmentServiceClient;
use crm_proto::crm::marketing::v1::automation_service_server::AutomationService;
use crm_proto::crm::marketing::v1::*;
use kit::auth::{CallerContext, Role};
use kit::error::Violations;
use kit::paging::{finish_page, Page};
use kit::rpc::{on_behalf, token_of, Forwarded};
use kit::Error;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::campaigns::upstream;
use super::messages::check_send_parts;
use super::{commit, handle, page_response, SharedState};
use crate::domain::access::{authorize, Action};
use crate::domain::{automation, parse_id};
use crate::store::automations as store;

pub struct AutomationHandlers(pub SharedState);

/// A rule as callers see it: webhook secrets are written, never read back.
fn shown(mut rule: AutomationRule) -> AutomationRule {
    for action in &mut rule.actions {
        action.webhook_secret.clear();
    }
    rule
}

/// Checks that the caller may set up each action (the rule acts later as
/// the service itself, so it must not reach beyond its author: lead
/// assignment is for admins and managers, as in sales; webhooks, which
/// send data out, for admins, as the gateway's), and that what the actions
/// name exists: templates and identities here, segments in customers with
/// the caller's rights, webhook URLs on public addresses.
/// Opening tickets is for admins and managers too (marketers do not work
/// tickets).
async fn check_targets(
    state: &super::State,
    caller: &CallerContext,
    token: &Forwarded,
    tx: &mut sqlx::PgConnection,
    rule: &AutomationRule,
) -> kit::Result<()> {
    let tenant = caller.tenant_id;
    for a in &rule.actions {
        match ActionKind::try_from(a.kind).unwrap_or_default() {
            ActionKind::AssignLead | ActionKind::CreateTicket
                if !(caller.has_role(Role::Admin) || caller.has_role(Role::Manager)) =>
            {
                return Err(Error::PermissionDenied(
                    "only admins and managers may make rules that assign leads or open tickets"
                        .into(),
                ))
            }
            ActionKind::CallWebhook if !caller.has_role(Role::Admin) => {
                return Err(Error::PermissionDenied(
                    "only admins may make rules that call webhooks".into(),
                ))
            }
            _ => {}
        }
    }
    let mut v = Violations::new();
    let mut segments = SegmentServiceClient::new(state.customers.clone());
    for (i, a) in rule.actions.iter().enumerate() {
        let at = format!("rule.actions[{i}]");
        match ActionKind::try_from(a.kind).unwrap_or_default() {
            ActionKind::SendTemplate => {
                let (template, identity) = (&a.template_id, &a.sender_identity_id);
                check_send_parts(tx, tenant, &at, template, identity, &mut v).await?;
            }
            ActionKind::AddToSegment | ActionKind::RemoveFromSegment => {
                let lookup = customers::GetSegmentRequest {
                    id: a.segment_id.clone(),
                };
                match segments.get_segment(on_behalf(token, lookup)).await {
                    Ok(found) => {
                        let kind = found.into_inner().segment.map(|s| s.kind);
                        if kind != Some(customers::SegmentKind::Static as i32) {
                            v.add(
                                format!("{at}.segment_id"),
                                "must be a static segment (a dynamic one follows its filter)",
                            );
                        }
                    }
                    Err(status) if status.code() == tonic::Code::NotFound => {
                        v.add(format!("{at}.segment_id"), "no such segment")
                    }
                    Err(status) => return Err(upstream(status)),
                }
            }
            ActionKind::CallWebhook => {
                if let Err(reason) = state.webhooks.check(&a.webhook_url).await {
                    v.add(format!("{at}.webhook_url"), reason);
                }
            }
            _ => {}
        }
    }
    v.into_result()
}

#[tonic::async_trait]
impl AutomationService for AutomationHandlers {
    async fn create_rule(
        &self,
        request: Request<CreateRuleRequest>,
    ) -> Result<Response<CreateRuleResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateRuleRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut rule = request
                .rule
                .ok_or_else(|| Error::invalid("rule", "is required"))?;
            let mut v = Violations::new();
            automation::check(&mut rule, &mut v);
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let replayed = kit::idempotency::replayed(
                &mut tx,
                tenant,
                "automation_rule",
                &request.request_id,
                &fingerprint,
            )
            .await?;
            if let Some(existing) = replayed {
                let rule = store::find(&mut tx, tenant, existing)
                    .await?
                    .ok_or_else(|| Error::not_found("automation rule", existing))?;
                return Ok(CreateRuleResponse {
                    rule: Some(shown(rule)),
                });
            }
            check_targets(&self.0, &caller, &token, &mut tx, &rule).await?;
            let id = Uuid::now_v7();
            let saved = store::insert(&mut tx, tenant, id, &rule, &caller.subject).await?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                "automation_rule",
                &request.request_id,
                &fingerprint,
                id,
            )
            .await?;
            commit(tx).await?;
            Ok(CreateRuleResponse {
                rule: Some(shown(saved)),
            })
        })
        .await
    }

    async fn get_rule(
        &self,
        request: Request<GetRuleRequest>,
    ) -> Result<Response<GetRuleResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let rule = store::find(&mut tx, caller.tenant_id, id)
                .await?
                .ok_or_else(|| Error::not_found("automation rule", id))?;
            Ok(GetRuleResponse {
                rule: Some(shown(rule)),
            })
        })
        .await
    }

    async fn list_rules(
        &self,
        request: Request<ListRulesRequest>,
    ) -> Result<Response<ListRulesResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows =
                store::list(&mut tx, caller.tenant_id, page.after, page.fetch_limit()).await?;
            let (rules, next) = finish_page(rows, page.size, |r: &AutomationRule| {
                Uuid::parse_str(&r.id).unwrap_or_default()
            });
            Ok(ListRulesResponse {
                rules: rules.into_iter().map(shown).collect(),
                page: page_response(next),
            })
        })
        .await
    }

    async fn set_rule_status(
        &self,
        request: Request<SetRuleStatusRequest>,
    ) -> Result<Response<SetRuleStatusResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let id = parse_id("id", &request.id)?;
            let status = match RuleStatus::try_from(request.status) {
                Ok(status @ (RuleStatus::Active | RuleStatus::Paused)) => status,
                _ => {
                    return Err(Error::invalid(
                        "status",
                        "must be RULE_STATUS_ACTIVE or RULE_STATUS_PAUSED",
                    ))
                }
            };
            let mut tx = self.0.begin(&caller).await?;
            let rule = store::set_status(&mut tx, caller.tenant_id, id, status, &caller.subject)
                .await?
                .ok_or_else(|| Error::not_found("automation rule", id))?;
            commit(tx).await?;
            Ok(SetRuleStatusResponse {
                rule: Some(shown(rule)),
            })
        })
        .await
    }

    async fn list_rule_runs(
        &self,
        request: Request<ListRuleRunsRequest>,
    ) -> Result<Response<ListRuleRunsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let rule = parse_id("rule_id", &request.rule_id)?;
            let status = match RunStatus::try_from(request.status) {
                Ok(RunStatus::Unspecified) => None,
                Ok(s) => Some(s as i16),
                Err(_) => return Err(Error::invalid("status", "is not a known run status")),
            };
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            if store::find(&mut tx, tenant, rule).await?.is_none() {
                return Err(Error::not_found("automation rule", rule));
            }
            let rows = store::list_runs(
                &mut tx,
                tenant,
                rule,
                status,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (runs, next) = finish_page(rows, page.size, |r: &RuleRun| {
                Uuid::parse_str(&r.id).unwrap_or_default()
            });
            Ok(ListRuleRunsResponse {
                runs,
                page: page_response(next),
            })
        })
        .await
    }
}
