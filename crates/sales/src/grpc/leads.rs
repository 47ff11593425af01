//! LeadService: leads, routing, scoring and conversion.

use chrono::Utc;
use crm_proto::crm::customers::v1 as customers;
use crm_proto::crm::customers::v1::account_service_client::AccountServiceClient;
use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::sales::v1::lead_service_server::LeadService;
use crm_proto::crm::sales::v1::routing_rule::Target;
use crm_proto::crm::sales::v1::*;
use kit::auth::CallerContext;
use kit::error::Violations;
use kit::paging::{finish_page, Page};
use kit::rpc::on_behalf;
use kit::Error;
use sqlx::PgConnection;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{check_version, commit, handle, page_response, version_of, SharedState, State};
use crate::domain::access::{authorize, scope, Action};
use crate::domain::{lead, optional_id, parse_id, routing, scoring};
use crate::store::leads as store_leads;

pub struct LeadHandlers(pub SharedState);

kit::field_mask!(
    apply_mask,
    changed_fields,
    Lead,
    "lead",
    [
        first_name,
        last_name,
        email,
        phone,
        title,
        company,
        company_domain,
        source,
        campaign_id,
        status,
        country,
        region,
        industry,
        company_size,
    ]
);

/// Where routing put a lead.
struct Routed {
    rule_id: String,
}

/// Applies the tenant's rules in order: a user target assigns directly, a
/// team target picks the team member next in rotation (the lead waits in
/// the team's queue when nobody is active); no match leaves the lead in
/// the default queue.
async fn route(tx: &mut PgConnection, tenant: Uuid, lead: &mut Lead) -> kit::Result<Routed> {
    lead.owner_id.clear();
    lead.team_id.clear();
    for rule in store_leads::routing_rules(tx, tenant).await? {
        if !routing::matches(&rule.r#match.clone().unwrap_or_default(), lead) {
            continue;
        }
        match &rule.target {
            Some(Target::UserId(user)) => lead.owner_id = user.clone(),
            Some(Target::TeamId(team)) => {
                let team_id = Uuid::parse_str(team).map_err(|e| Error::Internal(e.into()))?;
                store_leads::lock_team(tx, tenant, team_id).await?;
                lead.team_id = team.clone();
                if let Some(user) = store_leads::next_in_rotation(tx, tenant, team_id).await? {
                    lead.owner_id = user.to_string();
                }
            }
            None => continue,
        }
        return Ok(Routed { rule_id: rule.id });
    }
    Ok(Routed {
        rule_id: String::new(),
    })
}

async fn compute_score(tx: &mut PgConnection, tenant: Uuid, lead: &Lead) -> kit::Result<i32> {
    let settings = store_leads::scoring_settings(tx, tenant).await?;
    let engagements = match Uuid::parse_str(&lead.id) {
        Ok(id) => store_leads::engagements(tx, tenant, id).await?,
        Err(_) => Vec::new(),
    };
    Ok(scoring::score(&settings, lead, &engagements, Utc::now()))
}

async fn publish_score(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    id: Uuid,
    version: i64,
    previous: i32,
    score: i32,
) -> kit::Result<()> {
    if previous != score {
        let event = LeadScoreChanged {
            lead_id: id.to_string(),
            previous_score: previous,
            score,
        };
        state
            .outbox
            .enqueue(tx, caller, id, version, &event)
            .await?;
    }
    Ok(())
}

async fn visible_lead(
    tx: &mut PgConnection,
    caller: &CallerContext,
    id: Uuid,
    lock: bool,
) -> kit::Result<Lead> {
    store_leads::find(tx, caller.tenant_id, &scope(caller), id, lock)
        .await?
        .ok_or_else(|| Error::not_found("lead", id))
}

/// Recomputes a lead's score (after an engagement or a rule change) and
/// publishes the change. Used by handlers and by the event consumer.
pub async fn rescore(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    id: Uuid,
) -> kit::Result<Option<Lead>> {
    let Some(mut lead) =
        store_leads::find(tx, caller.tenant_id, &kit::access::Scope::Tenant, id, true).await?
    else {
        return Ok(None);
    };
    let score = compute_score(tx, caller.tenant_id, &lead).await?;
    if score == lead.score {
        return Ok(Some(lead));
    }
    let previous = lead.score;
    store_leads::set_score(tx, caller.tenant_id, id, score).await?;
    lead.score = score;
    let version = version_of(&lead.audit) + 1;
    publish_score(state, tx, caller, id, version, previous, score).await?;
    Ok(Some(lead))
}

/// Records an engagement and rescores; shared by the RPC and the consumer.
/// Stores a checked lead: routed when it has no owner, scored, published
/// as lead.created (and lead.assigned when it has an owner or team).
pub async fn insert_lead(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    mut lead: Lead,
    request_id: Option<&str>,
) -> kit::Result<Lead> {
    let tenant = caller.tenant_id;
    let id = Uuid::now_v7();
    lead.id = id.to_string();
    let routed = if lead.owner_id.is_empty() {
        Some(route(tx, tenant, &mut lead).await?)
    } else {
        None
    };
    lead.score = compute_score(tx, tenant, &lead).await?;
    let created = store_leads::insert(tx, tenant, id, &lead, request_id, &caller.subject).await?;
    let event = LeadCreated {
        lead: Some(created.clone()),
    };
    state.outbox.enqueue(tx, caller, id, 1, &event).await?;
    if !created.owner_id.is_empty() || !created.team_id.is_empty() {
        let event = LeadAssigned {
            lead_id: created.id.clone(),
            owner_id: created.owner_id.clone(),
            team_id: created.team_id.clone(),
            rule_id: routed.map(|r| r.rule_id).unwrap_or_default(),
        };
        state.outbox.enqueue(tx, caller, id, 1, &event).await?;
    }
    Ok(created)
}

pub async fn engage(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    scope: &kit::access::Scope,
    id: Uuid,
    engagement: &str,
    at: chrono::DateTime<Utc>,
) -> kit::Result<Option<Lead>> {
    if store_leads::find(tx, caller.tenant_id, scope, id, true)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    store_leads::add_engagement(tx, caller.tenant_id, id, engagement, at).await?;
    store_leads::schedule_decay(tx, caller.tenant_id, id, at).await?;
    rescore(state, tx, caller, id).await
}

pub use kit::rpc::{token_of, Forwarded as Token};

/// Refuses an account the caller cannot see in the customers service (a
/// won deal promotes its account there, so winning one for an account
/// the caller cannot see would change a record beyond its reach).
pub async fn check_account_visible(
    state: &State,
    token: &Token,
    account_id: &str,
) -> kit::Result<()> {
    if account_id.is_empty() {
        return Ok(());
    }
    let mut accounts = AccountServiceClient::new(state.customers.clone());
    let request = customers::GetAccountRequest {
        id: account_id.to_owned(),
    };
    match accounts.get_account(on_behalf(token, request)).await {
        Ok(_) => Ok(()),
        Err(status) if status.code() == tonic::Code::NotFound => {
            Err(Error::invalid("opportunity.account_id", "no such account"))
        }
        Err(status) if status.code() == tonic::Code::InvalidArgument => Err(Error::invalid(
            "opportunity.account_id",
            "is not a valid account id",
        )),
        Err(status) => Err(upstream(status)),
    }
}

fn first_page() -> Option<crm_proto::crm::common::v1::PageRequest> {
    Some(crm_proto::crm::common::v1::PageRequest {
        page_size: 1,
        page_token: String::new(),
    })
}

fn upstream(status: Status) -> Error {
    match status.code() {
        tonic::Code::InvalidArgument => Error::FailedPrecondition(format!(
            "the customers service refused the lead's data: {}",
            status.message()
        )),
        tonic::Code::PermissionDenied => Error::PermissionDenied(status.message().to_owned()),
        // A record an earlier attempt made was deleted since: a retry
        // would meet it again, so this is not a transient failure.
        tonic::Code::NotFound => Error::FailedPrecondition(format!(
            "the customers service no longer has a record of an earlier attempt: {}",
            status.message()
        )),
        _ => Error::Unavailable(format!(
            "the customers service did not complete the conversion ({}); retry",
            status.message()
        )),
    }
}

/// Account and contact for a lead: an existing one when the customers
/// service already has it (same domain / same e-mail), else created with a
/// request id derived from the lead, so a retry never creates twice.
async fn customer_records(
    state: &State,
    token: &Token,
    lead: &Lead,
) -> kit::Result<(String, bool, String, bool)> {
    let mut accounts = AccountServiceClient::new(state.customers.clone());
    let mut contacts = ContactServiceClient::new(state.customers.clone());
    let (mut account_id, mut account_reused) = (String::new(), false);
    if !lead.company.is_empty() || !lead.company_domain.is_empty() {
        let filter = if lead.company_domain.is_empty() {
            customers::Filter::equals("name", &lead.company)
        } else {
            customers::Filter::equals("domain", &lead.company_domain)
        };
        let found = accounts
            .list_accounts(on_behalf(
                token,
                customers::ListAccountsRequest {
                    filter: Some(filter),
                    page: first_page(),
                    ..Default::default()
                },
            ))
            .await
            .map_err(upstream)?
            .into_inner()
            .accounts;
        if let Some(existing) = found.into_iter().next() {
            (account_id, account_reused) = (existing.id, true);
        } else {
            let created = accounts
                .create_account(on_behalf(
                    token,
                    customers::CreateAccountRequest {
                        account: Some(customers::Account {
                            name: if lead.company.is_empty() {
                                lead.company_domain.clone()
                            } else {
                                lead.company.clone()
                            },
                            domain: lead.company_domain.clone(),
                            industry: lead.industry.clone(),
                            owner_id: lead.owner_id.clone(),
                            lifecycle_stage: customers::LifecycleStage::SalesQualified as i32,
                            ..Default::default()
                        }),
                        request_id: format!("lead-{}-account", lead.id),
                    },
                ))
                .await
                .map_err(upstream)?
                .into_inner()
                .account
                .unwrap_or_default();
            account_id = created.id;
        }
    }
    let mut existing = Vec::new();
    if !lead.email.is_empty() {
        existing = contacts
            .list_contacts(on_behalf(
                token,
                customers::ListContactsRequest {
                    filter: Some(customers::Filter::equals("email", &lead.email)),
                    page: first_page(),
                    ..Default::default()
                },
            ))
            .await
            .map_err(upstream)?
            .into_inner()
            .contacts;
    }
    if let Some(contact) = existing.into_iter().next() {
        return Ok((account_id, account_reused, contact.id, true));
    }
    let contact = contacts
        .create_contact(on_behalf(
            token,
            customers::CreateContactRequest {
                contact: Some(customers::Contact {
                    first_name: lead.first_name.clone(),
                    last_name: if lead.last_name.is_empty() {
                        lead.email.clone()
                    } else {
                        lead.last_name.clone()
                    },
                    title: lead.title.clone(),
                    account_id: account_id.clone(),
                    owner_id: lead.owner_id.clone(),
                    emails: if lead.email.is_empty() {
                        Vec::new()
                    } else {
                        vec![customers::Email {
                            address: lead.email.clone(),
                            label: "work".into(),
                            primary: true,
                        }]
                    },
                    phones: if lead.phone.is_empty() {
                        Vec::new()
                    } else {
                        vec![customers::Phone {
                            number: lead.phone.clone(),
                            label: "work".into(),
                            primary: true,
                        }]
                    },
                    lifecycle_stage: customers::LifecycleStage::SalesQualified as i32,
                    source: "lead".into(),
                    ..Default::default()
                }),
                request_id: format!("lead-{}-contact", lead.id),
            },
        ))
        .await
        .map_err(upstream)?
        .into_inner()
        .contact
        .unwrap_or_default();
    Ok((account_id, account_reused, contact.id, false))
}

#[tonic::async_trait]
impl LeadService for LeadHandlers {
    async fn create_lead(
        &self,
        request: Request<CreateLeadRequest>,
    ) -> Result<Response<CreateLeadResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let mut lead = request
                .lead
                .ok_or_else(|| Error::invalid("lead", "is required"))?;
            let mut violations = Violations::new();
            lead::normalize(&mut lead, &mut violations);
            if request.request_id.len() > 200 {
                violations.add("request_id", "is longer than 200 characters");
            }
            violations.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let request_id =
                (!request.request_id.is_empty()).then_some(request.request_id.as_str());
            if let Some(request_id) = request_id {
                if let Some(existing) = store_leads::by_request(&mut tx, tenant, request_id).await?
                {
                    let created_by = existing.audit.as_ref().map(|a| a.created_by.as_str());
                    kit::access::check_replay(
                        &caller,
                        created_by.unwrap_or_default(),
                        &existing.owner_id,
                        &existing.team_id,
                    )?;
                    return Ok(CreateLeadResponse {
                        lead: Some(existing),
                    });
                }
            }
            super::opportunities::require_assign_for_others(
                &caller,
                &lead.owner_id,
                &lead.team_id,
            )?;
            let created = insert_lead(&self.0, &mut tx, &caller, lead, request_id).await?;
            commit(tx).await?;
            Ok(CreateLeadResponse {
                lead: Some(created),
            })
        })
        .await
    }

    async fn get_lead(
        &self,
        request: Request<GetLeadRequest>,
    ) -> Result<Response<GetLeadResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            Ok(GetLeadResponse {
                lead: Some(visible_lead(&mut tx, &caller, id, false).await?),
            })
        })
        .await
    }

    async fn update_lead(
        &self,
        request: Request<UpdateLeadRequest>,
    ) -> Result<Response<UpdateLeadResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let input = request
                .lead
                .ok_or_else(|| Error::invalid("lead", "is required"))?;
            let id = parse_id("lead.id", &input.id)?;
            let paths = request
                .update_mask
                .map(|mask| mask.paths)
                .unwrap_or_default();
            let mut tx = self.0.begin(&caller).await?;
            let mut lead = visible_lead(&mut tx, &caller, id, true).await?;
            check_version(
                "lead",
                &input.id,
                request.expected_version,
                version_of(&lead.audit),
            )?;
            if lead.status == LeadStatus::Converted as i32 {
                return Err(Error::FailedPrecondition(
                    "a converted lead cannot change".into(),
                ));
            }
            let before = (lead.status, lead.score);
            apply_mask(&mut lead, input, &paths, "update_mask")?;
            let mut violations = Violations::new();
            lead::normalize(&mut lead, &mut violations);
            violations.into_result()?;
            lead.score = compute_score(&mut tx, caller.tenant_id, &lead).await?;
            let saved =
                store_leads::update(&mut tx, caller.tenant_id, &lead, &caller.subject).await?;
            let version = version_of(&saved.audit);
            publish_score(
                &self.0,
                &mut tx,
                &caller,
                id,
                version,
                before.1,
                saved.score,
            )
            .await?;
            if before.0 != saved.status && saved.status == LeadStatus::Qualified as i32 {
                let event = LeadQualified {
                    lead_id: saved.id.clone(),
                };
                self.0
                    .outbox
                    .enqueue(&mut tx, &caller, id, version, &event)
                    .await?;
            }
            commit(tx).await?;
            Ok(UpdateLeadResponse { lead: Some(saved) })
        })
        .await
    }

    async fn list_leads(
        &self,
        request: Request<ListLeadsRequest>,
    ) -> Result<Response<ListLeadsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let mut violations = Violations::new();
            let owner = violations
                .check(optional_id("owner_id", &request.owner_id))
                .flatten();
            let status = match LeadStatus::try_from(request.status) {
                Ok(LeadStatus::Unspecified) => None,
                Ok(status) => Some(status as i16),
                Err(_) => {
                    violations.add("status", "is not a known status");
                    None
                }
            };
            violations.into_result()?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let filter = store_leads::LeadFilter {
                status,
                owner,
                unassigned: request.unassigned,
            };
            let mut tx = self.0.begin(&caller).await?;
            let rows = store_leads::list(
                &mut tx,
                caller.tenant_id,
                &scope(&caller),
                &filter,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (leads, next) = finish_page(rows, page.size, |l: &Lead| {
                Uuid::parse_str(&l.id).unwrap_or_default()
            });
            Ok(ListLeadsResponse {
                leads,
                page: page_response(next),
            })
        })
        .await
    }

    async fn assign_leads(
        &self,
        request: Request<AssignLeadsRequest>,
    ) -> Result<Response<AssignLeadsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Assign)?;
            let user = optional_id("user_id", &request.user_id)
                .map_err(|v| Error::InvalidArgument(vec![v]))?;
            if request.lead_ids.is_empty() || request.lead_ids.len() > 500 {
                return Err(Error::invalid("lead_ids", "must hold 1 to 500 ids"));
            }
            let mut ids = Vec::with_capacity(request.lead_ids.len());
            for (i, raw) in request.lead_ids.iter().enumerate() {
                ids.push(parse_id(&format!("lead_ids[{i}]"), raw)?);
            }
            ids.sort();
            ids.dedup();
            let mut tx = self.0.begin(&caller).await?;
            let mut saved = Vec::with_capacity(ids.len());
            for id in ids {
                let mut lead = visible_lead(&mut tx, &caller, id, true).await?;
                let rule_id = match user {
                    Some(user) => {
                        lead.owner_id = user.to_string();
                        String::new()
                    }
                    None => route(&mut tx, caller.tenant_id, &mut lead).await?.rule_id,
                };
                let lead =
                    store_leads::update(&mut tx, caller.tenant_id, &lead, &caller.subject).await?;
                let event = LeadAssigned {
                    lead_id: lead.id.clone(),
                    owner_id: lead.owner_id.clone(),
                    team_id: lead.team_id.clone(),
                    rule_id,
                };
                self.0
                    .outbox
                    .enqueue(&mut tx, &caller, id, version_of(&lead.audit), &event)
                    .await?;
                saved.push(lead);
            }
            commit(tx).await?;
            Ok(AssignLeadsResponse { leads: saved })
        })
        .await
    }

    async fn record_engagement(
        &self,
        request: Request<RecordEngagementRequest>,
    ) -> Result<Response<RecordEngagementResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let id = parse_id("lead_id", &request.lead_id)?;
            if !scoring::ENGAGEMENTS.contains(&request.engagement.as_str()) {
                return Err(Error::invalid(
                    "engagement",
                    format!("must be one of {}", scoring::ENGAGEMENTS.join(", ")),
                ));
            }
            let at = match request.occurred_at {
                Some(t) => kit::time::from_timestamp("occurred_at", &t)?,
                None => Utc::now(),
            };
            let fingerprint = kit::idempotency::fingerprint(&RecordEngagementRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut tx = self.0.begin(&caller).await?;
            let entity = "lead_engagement";
            if kit::idempotency::replayed(
                &mut tx,
                caller.tenant_id,
                entity,
                &request.request_id,
                &fingerprint,
            )
            .await?
            .is_some()
            {
                let lead = visible_lead(&mut tx, &caller, id, false).await?;
                return Ok(RecordEngagementResponse { lead: Some(lead) });
            }
            // Recorded only on a lead the caller sees; others are not found.
            let lead = engage(
                &self.0,
                &mut tx,
                &caller,
                &scope(&caller),
                id,
                &request.engagement,
                at,
            )
            .await?
            .ok_or_else(|| Error::not_found("lead", id))?;
            kit::idempotency::remember(
                &mut tx,
                caller.tenant_id,
                entity,
                &request.request_id,
                &fingerprint,
                id,
            )
            .await?;
            commit(tx).await?;
            Ok(RecordEngagementResponse { lead: Some(lead) })
        })
        .await
    }

    async fn convert_lead(
        &self,
        request: Request<ConvertLeadRequest>,
    ) -> Result<Response<ConvertLeadResponse>, Status> {
        // The caller's own token goes on to the customers service, which
        // checks it again (zero trust).
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let id = parse_id("lead_id", &request.lead_id)?;
            let mut violations = Violations::new();
            let pipeline = violations
                .check(optional_id("pipeline_id", &request.pipeline_id))
                .flatten();
            violations.into_result()?;
            let state = &self.0;
            // 1. Read the lead; a converted one is the answer to a retry.
            let mut tx = state.begin(&caller).await?;
            let lead = visible_lead(&mut tx, &caller, id, false).await?;
            commit(tx).await?;
            if lead.status == LeadStatus::Converted as i32 {
                return Ok(ConvertLeadResponse {
                    lead: Some(lead),
                    account_reused: false,
                    contact_reused: false,
                });
            }
            if lead.status != LeadStatus::Qualified as i32 {
                return Err(Error::FailedPrecondition(
                    "only a qualified lead can be converted".into(),
                ));
            }
            // 2. Account and contact in the customers service (idempotent).
            let (account_id, account_reused, contact_id, contact_reused) =
                customer_records(state, &token, &lead).await?;
            // 3. Opportunity and the lead's new state, in one transaction.
            let mut tx = state.begin(&caller).await?;
            let mut lead = visible_lead(&mut tx, &caller, id, true).await?;
            if lead.status == LeadStatus::Converted as i32 {
                commit(tx).await?;
                return Ok(ConvertLeadResponse {
                    lead: Some(lead),
                    account_reused,
                    contact_reused,
                });
            }
            let mut opportunity_id = String::new();
            if request.create_opportunity {
                let opportunity = Opportunity {
                    pipeline_id: pipeline.map(|p| p.to_string()).unwrap_or_default(),
                    account_id: account_id.clone(),
                    contacts: vec![ContactRole {
                        contact_id: contact_id.clone(),
                        role: "primary".into(),
                    }],
                    name: if request.opportunity_name.is_empty() {
                        format!(
                            "{} deal",
                            if lead.company.is_empty() {
                                &lead.last_name
                            } else {
                                &lead.company
                            }
                        )
                    } else {
                        request.opportunity_name.clone()
                    },
                    amount: request.amount.clone(),
                    close_date: request.close_date.clone(),
                    owner_id: lead.owner_id.clone(),
                    team_id: lead.team_id.clone(),
                    campaign_id: lead.campaign_id.clone(),
                    lead_id: lead.id.clone(),
                    ..Default::default()
                };
                let created = super::opportunities::create_in(
                    state,
                    &mut tx,
                    &caller,
                    &token,
                    opportunity,
                    Some(&format!("lead-{}-opportunity", lead.id)),
                )
                .await?;
                opportunity_id = created.id;
            }
            lead.status = LeadStatus::Converted as i32;
            lead.converted_account_id = account_id.clone();
            lead.converted_contact_id = contact_id.clone();
            lead.converted_opportunity_id = opportunity_id.clone();
            let saved =
                store_leads::update(&mut tx, caller.tenant_id, &lead, &caller.subject).await?;
            let event = LeadConverted {
                lead_id: saved.id.clone(),
                account_id,
                contact_id,
                opportunity_id,
            };
            state
                .outbox
                .enqueue(&mut tx, &caller, id, version_of(&saved.audit), &event)
                .await?;
            commit(tx).await?;
            Ok(ConvertLeadResponse {
                lead: Some(saved),
                account_reused,
                contact_reused,
            })
        })
        .await
    }

    async fn set_routing_rules(
        &self,
        request: Request<SetRoutingRulesRequest>,
    ) -> Result<Response<SetRoutingRulesResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let mut rules = request.rules;
            let mut violations = Violations::new();
            if rules.len() > 200 {
                violations.add("rules", "at most 200 rules");
            }
            for (i, rule) in rules.iter_mut().enumerate() {
                rule.id = Uuid::now_v7().to_string();
                violations.check(crate::domain::text(
                    &format!("rules[{i}].name"),
                    &mut rule.name,
                    200,
                ));
                let m = rule.r#match.get_or_insert_with(Default::default);
                m.country = m.country.trim().to_ascii_uppercase();
                if m.min_size < 0 || m.max_size < 0 || (m.max_size > 0 && m.max_size < m.min_size) {
                    violations.add(
                        format!("rules[{i}].match.max_size"),
                        "sizes must be 0 (unbounded) or min <= max",
                    );
                }
                match &rule.target {
                    Some(Target::UserId(u)) => {
                        violations.check(crate::domain::required_id(
                            &format!("rules[{i}].user_id"),
                            u,
                        ));
                    }
                    Some(Target::TeamId(t)) => {
                        violations.check(crate::domain::required_id(
                            &format!("rules[{i}].team_id"),
                            t,
                        ));
                    }
                    None => {
                        violations.add(format!("rules[{i}].target"), "needs a user_id or a team_id")
                    }
                }
            }
            violations.into_result()?;
            let mut tx = self.0.begin(&caller).await?;
            store_leads::replace_routing_rules(&mut tx, caller.tenant_id, &rules).await?;
            let rules = store_leads::routing_rules(&mut tx, caller.tenant_id).await?;
            commit(tx).await?;
            Ok(SetRoutingRulesResponse { rules })
        })
        .await
    }

    async fn get_routing_rules(
        &self,
        request: Request<GetRoutingRulesRequest>,
    ) -> Result<Response<GetRoutingRulesResponse>, Status> {
        handle(request, |caller, _| async move {
            authorize(&caller, Action::Read)?;
            let mut tx = self.0.begin(&caller).await?;
            Ok(GetRoutingRulesResponse {
                rules: store_leads::routing_rules(&mut tx, caller.tenant_id).await?,
                rosters: store_leads::rosters(&mut tx, caller.tenant_id).await?,
            })
        })
        .await
    }

    async fn set_team_roster(
        &self,
        request: Request<SetTeamRosterRequest>,
    ) -> Result<Response<SetTeamRosterResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let roster = request
                .roster
                .ok_or_else(|| Error::invalid("roster", "is required"))?;
            let team = parse_id("roster.team_id", &roster.team_id)?;
            let mut members = Vec::new();
            for (i, m) in roster.members.iter().enumerate() {
                members.push((
                    parse_id(&format!("roster.members[{i}].user_id"), &m.user_id)?,
                    m.active,
                ));
            }
            let mut tx = self.0.begin(&caller).await?;
            store_leads::replace_roster(&mut tx, caller.tenant_id, team, &members).await?;
            let roster = store_leads::rosters(&mut tx, caller.tenant_id)
                .await?
                .into_iter()
                .find(|r| r.team_id == roster.team_id)
                .unwrap_or(TeamRoster {
                    team_id: team.to_string(),
                    members: Vec::new(),
                });
            commit(tx).await?;
            Ok(SetTeamRosterResponse {
                roster: Some(roster),
            })
        })
        .await
    }

    async fn set_scoring_settings(
        &self,
        request: Request<SetScoringSettingsRequest>,
    ) -> Result<Response<SetScoringSettingsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let mut settings = request
                .settings
                .ok_or_else(|| Error::invalid("settings", "is required"))?;
            let mut violations = Violations::new();
            if settings.rules.len() > 200 {
                violations.add("settings.rules", "at most 200 rules");
            }
            scoring::check(&settings, &mut violations);
            violations.into_result()?;
            for rule in &mut settings.rules {
                rule.id = Uuid::now_v7().to_string();
            }
            let mut tx = self.0.begin(&caller).await?;
            store_leads::save_scoring_settings(&mut tx, caller.tenant_id, &settings).await?;
            // Open leads follow the new rules at once.
            for id in store_leads::open_ids(&mut tx, caller.tenant_id).await? {
                rescore(&self.0, &mut tx, &caller, id).await?;
            }
            commit(tx).await?;
            Ok(SetScoringSettingsResponse {
                settings: Some(settings),
            })
        })
        .await
    }

    async fn get_scoring_settings(
        &self,
        request: Request<GetScoringSettingsRequest>,
    ) -> Result<Response<GetScoringSettingsResponse>, Status> {
        handle(request, |caller, _| async move {
            authorize(&caller, Action::Read)?;
            let mut tx = self.0.begin(&caller).await?;
            Ok(GetScoringSettingsResponse {
                settings: Some(store_leads::scoring_settings(&mut tx, caller.tenant_id).await?),
            })
        })
        .await
    }
}
