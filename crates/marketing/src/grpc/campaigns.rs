//! CampaignService: campaigns, their costs and their members.

use crm_proto::crm::customers::v1 as customers;
use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::marketing::v1::campaign_service_server::CampaignService;
use crm_proto::crm::marketing::v1::*;
use kit::auth::CallerContext;
use kit::error::Violations;
use kit::paging::{finish_page, Page};
use kit::rpc::{on_behalf, token_of, Forwarded};
use kit::Error;
use rust_decimal::Decimal;
use sqlx::PgConnection;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{check_version, commit, handle, page_response, version_of, SharedState, State};
use crate::domain::access::{authorize, scope, Action};
use crate::domain::campaign::{self, can_move, status_name, Checked};
use crate::domain::member::advance;
use crate::domain::{optional_date, optional_id, parse_id, text};
use crate::store::attribution;
use crate::store::campaigns as store;
use crate::store::members::{self, Person};

pub struct CampaignHandlers(pub SharedState);

kit::field_mask!(
    apply_mask,
    changed_fields,
    Campaign,
    "campaign",
    [
        name,
        r#type,
        status,
        starts_at,
        ends_at,
        owner_id,
        team_id,
        budget,
        expected_revenue,
        parent_campaign_id,
        goal,
        tags,
    ]
);

/// Ids per AddCampaignMembers call, and per members_added event.
const MAX_MEMBERS_PER_CALL: usize = 1_000;

/// Creating a campaign for another owner, or in a team not the caller's,
/// hands it to them: only roles whose visibility is the whole tenant may.
fn require_visible_owner(caller: &CallerContext, checked: &Checked) -> kit::Result<()> {
    if !scope(caller).sees(checked.owner, checked.team) {
        return Err(Error::PermissionDenied(
            "you may only give campaigns to owners and teams you can see".into(),
        ));
    }
    Ok(())
}

/// Checks a campaign against the stored ones: the parent exists and is not
/// below it.
async fn check_parent(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    checked: &Checked,
) -> kit::Result<()> {
    let Some(parent) = checked.parent else {
        return Ok(());
    };
    if !store::exists(tx, tenant, parent).await? {
        return Err(Error::invalid(
            "campaign.parent_campaign_id",
            "no such campaign",
        ));
    }
    if store::is_below(tx, tenant, id, parent).await? {
        return Err(Error::invalid(
            "campaign.parent_campaign_id",
            "is this campaign or one below it",
        ));
    }
    Ok(())
}

/// A campaign with its member counts, for answers that show one campaign.
async fn with_counts(
    tx: &mut PgConnection,
    tenant: Uuid,
    mut c: Campaign,
) -> kit::Result<Campaign> {
    let id = Uuid::parse_str(&c.id).map_err(Error::internal)?;
    c.member_counts = store::member_counts(tx, tenant, id).await?;
    Ok(c)
}

async fn readable(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> kit::Result<Campaign> {
    store::find(tx, tenant, id, false)
        .await?
        .ok_or_else(|| Error::not_found("campaign", id))
}

/// A campaign the caller may change, locked: one outside the caller's
/// scope is refused as such (every reader sees campaigns, so hiding it
/// would hide nothing).
async fn changeable(
    tx: &mut PgConnection,
    caller: &CallerContext,
    id: Uuid,
) -> kit::Result<Campaign> {
    if let Some(c) = store::find_to_change(tx, caller.tenant_id, &scope(caller), id).await? {
        return Ok(c);
    }
    readable(tx, caller.tenant_id, id).await?;
    Err(Error::PermissionDenied(
        "the campaign belongs to an owner or team outside your visibility".into(),
    ))
}

/// A closed campaign (completed, cancelled) takes no more costs or members.
fn require_open(c: &Campaign) -> kit::Result<()> {
    let status = CampaignStatus::try_from(c.status).unwrap_or_default();
    if matches!(
        status,
        CampaignStatus::Completed | CampaignStatus::Cancelled
    ) {
        return Err(Error::FailedPrecondition(format!(
            "the campaign is {}",
            status_name(status)
        )));
    }
    Ok(())
}

/// Up to 1,000 ids, each checked and named by its place; sorted, without repeats.
pub(crate) fn parse_ids(field: &str, raw: &[String], v: &mut Violations) -> Vec<Uuid> {
    if raw.len() > MAX_MEMBERS_PER_CALL {
        v.add(
            field,
            format!("at most {MAX_MEMBERS_PER_CALL} ids per call"),
        );
        return Vec::new();
    }
    let mut ids: Vec<Uuid> = raw
        .iter()
        .enumerate()
        .filter_map(|(i, id)| v.check(kit::input::required_id(&format!("{field}[{i}]"), id)))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Contacts the caller can see, of those asked for: each is looked up in
/// the customers service with the caller's token.
async fn visible_contacts(state: &State, token: &Forwarded, ids: &[Uuid]) -> kit::Result<()> {
    let mut contacts = ContactServiceClient::new(state.customers.clone());
    for (i, id) in ids.iter().enumerate() {
        let request = customers::GetContactRequest { id: id.to_string() };
        match contacts.get_contact(on_behalf(token, request)).await {
            Ok(_) => {}
            Err(status) if status.code() == tonic::Code::NotFound => {
                return Err(Error::invalid(
                    format!("contact_ids[{i}]"),
                    "no such contact",
                ))
            }
            Err(status) => return Err(upstream(status)),
        }
    }
    Ok(())
}

/// Every member of a customers segment the caller can see, page by page.
async fn segment_contacts(
    state: &State,
    token: &Forwarded,
    segment_id: &str,
) -> kit::Result<Vec<Uuid>> {
    let mut ids = Vec::new();
    let mut next = String::new();
    loop {
        let (contacts, after) =
            super::audience::segment_page(state, token, "segment_id", segment_id, next).await?;
        ids.extend(contacts.iter().filter_map(|c| Uuid::parse_str(&c.id).ok()));
        if after.is_empty() {
            return Ok(ids);
        }
        next = after;
    }
}

pub(crate) fn upstream(status: Status) -> Error {
    match status.code() {
        tonic::Code::PermissionDenied => Error::PermissionDenied(status.message().to_owned()),
        tonic::Code::InvalidArgument => Error::FailedPrecondition(format!(
            "the customers service refused the request: {}",
            status.message()
        )),
        _ => Error::upstream("customers", &status),
    }
}

/// Adds members in one transaction and publishes one members_added event
/// per chunk of at most 1,000.
async fn add_members(
    state: &State,
    caller: &CallerContext,
    campaign: Uuid,
    people: &[(Person, Vec<Uuid>)],
) -> kit::Result<AddCampaignMembersResponse> {
    let mut tx = state.begin(caller).await?;
    let c = changeable(&mut tx, caller, campaign).await?;
    require_open(&c)?;
    let (mut added, mut asked) = (0, 0);
    for (person, ids) in people {
        for chunk in ids.chunks(MAX_MEMBERS_PER_CALL) {
            asked += chunk.len();
            let made = members::add(&mut tx, caller.tenant_id, campaign, *person, chunk).await?;
            added += made.len();
            if !made.is_empty() {
                let event = CampaignMembersAdded {
                    campaign_id: campaign.to_string(),
                    members: made,
                };
                let version = version_of(&c.audit);
                state
                    .outbox
                    .enqueue(&mut tx, caller, campaign, version, &event)
                    .await?;
            }
        }
    }
    commit(tx).await?;
    Ok(AddCampaignMembersResponse {
        added: added as i64,
        already_members: (asked - added) as i64,
    })
}

/// `part / whole` as a decimal string with 4 places; empty for no whole.
fn ratio(part: Decimal, whole: Decimal) -> String {
    if whole.is_zero() {
        return String::new();
    }
    (part / whole).round_dp(4).normalize().to_string()
}

/// A campaign's funnel, rates and attributed revenue with its return.
async fn performance(
    tx: &mut PgConnection,
    tenant: Uuid,
    c: &Campaign,
) -> kit::Result<CampaignPerformance> {
    let id = Uuid::parse_str(&c.id).map_err(Error::internal)?;
    let (members, sent, opened, clicked, responded) = attribution::funnel(tx, tenant, id).await?;
    let cost = c.actual_cost.clone();
    let (cost_amount, cost_currency) = cost
        .as_ref()
        .map(|m| {
            (
                m.amount.parse::<Decimal>().unwrap_or_default(),
                m.currency.clone(),
            )
        })
        .unwrap_or_default();
    let attributed = attribution::revenue(tx, tenant, id)
        .await?
        .into_iter()
        .map(|(model, currency, revenue, deals)| AttributedRevenue {
            model: model.into(),
            roi: if currency == cost_currency {
                ratio(revenue - cost_amount, cost_amount)
            } else {
                String::new()
            },
            revenue: crate::store::money(Some(revenue), &currency),
            deals,
        })
        .collect();
    let sent_d = Decimal::from(sent);
    Ok(CampaignPerformance {
        campaign_id: c.id.clone(),
        members,
        sent,
        opened,
        clicked,
        responded,
        open_rate: ratio(Decimal::from(opened), sent_d),
        click_rate: ratio(Decimal::from(clicked), sent_d),
        response_rate: ratio(Decimal::from(responded), sent_d),
        actual_cost: cost,
        attributed,
    })
}

#[tonic::async_trait]
impl CampaignService for CampaignHandlers {
    async fn get_campaign_performance(
        &self,
        request: Request<GetCampaignPerformanceRequest>,
    ) -> Result<Response<GetCampaignPerformanceResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("campaign_id", &request.campaign_id)?;
            let mut tx = self.0.begin(&caller).await?;
            let c = readable(&mut tx, caller.tenant_id, id).await?;
            Ok(GetCampaignPerformanceResponse {
                performance: Some(performance(&mut tx, caller.tenant_id, &c).await?),
            })
        })
        .await
    }

    async fn create_campaign(
        &self,
        request: Request<CreateCampaignRequest>,
    ) -> Result<Response<CreateCampaignResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateCampaignRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut c = request
                .campaign
                .ok_or_else(|| Error::invalid("campaign", "is required"))?;
            c.id.clear();
            if c.owner_id.is_empty() {
                c.owner_id = caller.user_id.map(|u| u.to_string()).unwrap_or_default();
            }
            if c.team_id.is_empty() {
                c.team_id = caller
                    .teams
                    .first()
                    .map(Uuid::to_string)
                    .unwrap_or_default();
            }
            let mut v = Violations::new();
            let checked = campaign::normalize(&mut c, &mut v);
            v.into_result()?;
            require_visible_owner(&caller, &checked)?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let replayed = kit::idempotency::replayed(
                &mut tx,
                tenant,
                "campaign",
                &request.request_id,
                &fingerprint,
            )
            .await?;
            if let Some(existing) = replayed {
                let c = readable(&mut tx, tenant, existing).await?;
                return Ok(CreateCampaignResponse {
                    campaign: Some(with_counts(&mut tx, tenant, c).await?),
                });
            }
            let id = Uuid::now_v7();
            check_parent(&mut tx, tenant, id, &checked).await?;
            let created = store::insert(&mut tx, tenant, id, &c, &checked, &caller.subject).await?;
            let event = CampaignCreated {
                campaign: Some(created.clone()),
            };
            self.0
                .outbox
                .enqueue(&mut tx, &caller, id, 1, &event)
                .await?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                "campaign",
                &request.request_id,
                &fingerprint,
                id,
            )
            .await?;
            commit(tx).await?;
            Ok(CreateCampaignResponse {
                campaign: Some(created),
            })
        })
        .await
    }

    async fn get_campaign(
        &self,
        request: Request<GetCampaignRequest>,
    ) -> Result<Response<GetCampaignResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let c = readable(&mut tx, caller.tenant_id, id).await?;
            Ok(GetCampaignResponse {
                campaign: Some(with_counts(&mut tx, caller.tenant_id, c).await?),
            })
        })
        .await
    }

    async fn update_campaign(
        &self,
        request: Request<UpdateCampaignRequest>,
    ) -> Result<Response<UpdateCampaignResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let input = request
                .campaign
                .ok_or_else(|| Error::invalid("campaign", "is required"))?;
            let id = parse_id("campaign.id", &input.id)?;
            let paths = request
                .update_mask
                .map(|mask| mask.paths)
                .unwrap_or_default();
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let before = changeable(&mut tx, &caller, id).await?;
            check_version(
                "campaign",
                &input.id,
                request.expected_version,
                version_of(&before.audit),
            )?;
            let mut after = before.clone();
            apply_mask(&mut after, input, &paths, "update_mask")?;
            let mut v = Violations::new();
            let checked = campaign::normalize(&mut after, &mut v);
            v.into_result()?;
            let has_costs = before
                .actual_cost
                .as_ref()
                .is_some_and(|cost| cost.amount != "0");
            let old_currency = before
                .actual_cost
                .as_ref()
                .map(|m| m.currency.clone())
                .unwrap_or_default();
            if has_costs && !checked.currency.is_empty() && checked.currency != old_currency {
                return Err(Error::invalid(
                    "campaign.budget.currency",
                    format!("must stay {old_currency}: costs are booked in it"),
                ));
            }
            if (checked.owner, checked.team)
                != (
                    optional_id("", &before.owner_id).ok().flatten(),
                    optional_id("", &before.team_id).ok().flatten(),
                )
            {
                require_visible_owner(&caller, &checked)?;
            }
            let (from, to) = (
                CampaignStatus::try_from(before.status).unwrap_or_default(),
                CampaignStatus::try_from(after.status).unwrap_or_default(),
            );
            if !can_move(from, to) {
                return Err(Error::invalid(
                    "campaign.status",
                    format!(
                        "a {} campaign cannot become {}",
                        status_name(from),
                        status_name(to)
                    ),
                ));
            }
            check_parent(&mut tx, tenant, id, &checked).await?;
            let changed = changed_fields(&before, &after);
            if changed.is_empty() {
                return Ok(UpdateCampaignResponse {
                    campaign: Some(with_counts(&mut tx, tenant, before).await?),
                });
            }
            let saved =
                store::update(&mut tx, tenant, id, &after, &checked, &caller.subject).await?;
            let version = version_of(&saved.audit);
            if from != to {
                let event = CampaignStatusChanged {
                    campaign_id: saved.id.clone(),
                    previous_status: from as i32,
                    status: to as i32,
                };
                self.0
                    .outbox
                    .enqueue(&mut tx, &caller, id, version, &event)
                    .await?;
            }
            if changed.iter().any(|field| field != "status") {
                let event = CampaignUpdated {
                    campaign: Some(saved.clone()),
                    changed_fields: changed,
                };
                self.0
                    .outbox
                    .enqueue(&mut tx, &caller, id, version, &event)
                    .await?;
            }
            let saved = with_counts(&mut tx, tenant, saved).await?;
            commit(tx).await?;
            Ok(UpdateCampaignResponse {
                campaign: Some(saved),
            })
        })
        .await
    }

    async fn list_campaigns(
        &self,
        request: Request<ListCampaignsRequest>,
    ) -> Result<Response<ListCampaignsResponse>, Status> {
        handle(request, |caller, mut request| async move {
            authorize(&caller, Action::Read)?;
            let mut v = Violations::new();
            let status = match CampaignStatus::try_from(request.status) {
                Ok(CampaignStatus::Unspecified) => None,
                Ok(s) => Some(s as i16),
                Err(_) => {
                    v.add("status", "is not a known campaign status");
                    None
                }
            };
            let kind = match CampaignType::try_from(request.r#type) {
                Ok(CampaignType::Unspecified) => None,
                Ok(t) => Some(t as i16),
                Err(_) => {
                    v.add("type", "is not a known campaign type");
                    None
                }
            };
            v.check(text("tag", &mut request.tag, 50));
            let filter = store::CampaignFilter {
                status,
                r#type: kind,
                owner: v
                    .check(optional_id("owner_id", &request.owner_id))
                    .flatten(),
                parent: v
                    .check(optional_id(
                        "parent_campaign_id",
                        &request.parent_campaign_id,
                    ))
                    .flatten(),
                tag: (!request.tag.is_empty()).then(|| request.tag.to_lowercase()),
            };
            v.into_result()?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows = store::list(
                &mut tx,
                caller.tenant_id,
                &filter,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (campaigns, next) = finish_page(rows, page.size, |c: &Campaign| {
                Uuid::parse_str(&c.id).unwrap_or_default()
            });
            Ok(ListCampaignsResponse {
                campaigns,
                page: page_response(next),
            })
        })
        .await
    }

    async fn add_campaign_cost(
        &self,
        request: Request<AddCampaignCostRequest>,
    ) -> Result<Response<AddCampaignCostResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let fingerprint = kit::idempotency::fingerprint(&AddCampaignCostRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut cost = request
                .cost
                .ok_or_else(|| Error::invalid("cost", "is required"))?;
            let mut v = Violations::new();
            let campaign_id = v.check(kit::input::required_id(
                "cost.campaign_id",
                &cost.campaign_id,
            ));
            let money = cost.amount.clone().unwrap_or_default();
            // Refunds are negative: the sign is checked here, the rest by
            // the one money rule.
            let (negative, magnitude) = match money.amount.trim().strip_prefix('-') {
                Some(rest) => (true, rest.to_owned()),
                None => (false, money.amount.trim().to_owned()),
            };
            let amount = kit::input::money("cost.amount", &magnitude, &money.currency, &mut v)
                .map(|(value, currency)| (if negative { -value } else { value }, currency));
            if amount.as_ref().is_some_and(|(value, _)| value.is_zero()) {
                v.add("cost.amount.amount", "must not be zero");
            }
            let incurred_on = v
                .check(optional_date("cost.incurred_on", &cost.incurred_on))
                .flatten()
                .unwrap_or_else(|| chrono::Utc::now().date_naive());
            v.check(text("cost.description", &mut cost.description, 500));
            v.into_result()?;
            let (Some(campaign_id), Some((amount, currency))) = (campaign_id, amount) else {
                return Err(Error::invalid("cost", "is invalid"));
            };
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let c = changeable(&mut tx, &caller, campaign_id).await?;
            let replayed = kit::idempotency::replayed(
                &mut tx,
                tenant,
                "campaign_cost",
                &request.request_id,
                &fingerprint,
            )
            .await?;
            let campaign_currency = c
                .actual_cost
                .as_ref()
                .map(|m| m.currency.clone())
                .unwrap_or_default();
            if let Some(existing) = replayed {
                let cost = store::find_cost(&mut tx, tenant, existing, &campaign_currency)
                    .await?
                    .ok_or_else(|| Error::not_found("cost", existing))?;
                return Ok(AddCampaignCostResponse {
                    cost: Some(cost),
                    actual_cost: c.actual_cost,
                });
            }
            require_open(&c)?;
            if !campaign_currency.is_empty() && campaign_currency != currency {
                return Err(Error::invalid(
                    "cost.amount.currency",
                    format!("must be the campaign's currency {campaign_currency}"),
                ));
            }
            let new = store::NewCost {
                id: Uuid::now_v7(),
                campaign: campaign_id,
                amount,
                currency: &currency,
                incurred_on,
                description: &cost.description,
            };
            let (entry, total) = store::add_cost(&mut tx, tenant, &new, &caller.subject).await?;
            let actual_cost = crate::store::money(Some(total), &currency);
            let event = CampaignCostAdded {
                cost: Some(entry.clone()),
                actual_cost: actual_cost.clone(),
            };
            self.0
                .outbox
                .enqueue(&mut tx, &caller, campaign_id, version_of(&c.audit), &event)
                .await?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                "campaign_cost",
                &request.request_id,
                &fingerprint,
                new.id,
            )
            .await?;
            commit(tx).await?;
            Ok(AddCampaignCostResponse {
                cost: Some(entry),
                actual_cost,
            })
        })
        .await
    }

    async fn list_campaign_costs(
        &self,
        request: Request<ListCampaignCostsRequest>,
    ) -> Result<Response<ListCampaignCostsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("campaign_id", &request.campaign_id)?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let c = readable(&mut tx, caller.tenant_id, id).await?;
            let currency = c.actual_cost.map(|m| m.currency).unwrap_or_default();
            let rows = store::list_costs(
                &mut tx,
                caller.tenant_id,
                id,
                &currency,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (costs, next) = finish_page(rows, page.size, |c: &CostEntry| {
                Uuid::parse_str(&c.id).unwrap_or_default()
            });
            Ok(ListCampaignCostsResponse {
                costs,
                page: page_response(next),
            })
        })
        .await
    }

    async fn add_campaign_members(
        &self,
        request: Request<AddCampaignMembersRequest>,
    ) -> Result<Response<AddCampaignMembersResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let mut v = Violations::new();
            let campaign = v.check(kit::input::required_id("campaign_id", &request.campaign_id));
            let mut contacts = parse_ids("contact_ids", &request.contact_ids, &mut v);
            let leads = parse_ids("lead_ids", &request.lead_ids, &mut v);
            let segment = v
                .check(optional_id("segment_id", &request.segment_id))
                .flatten();
            if request.contact_ids.is_empty()
                && request.lead_ids.is_empty()
                && request.segment_id.is_empty()
            {
                v.add("contact_ids", "name contacts, leads or a segment to add");
            }
            v.into_result()?;
            let Some(campaign) = campaign else {
                return Err(Error::invalid("campaign_id", "is required"));
            };
            // Checked before the customers service is asked anything.
            {
                let mut tx = self.0.begin(&caller).await?;
                require_open(&changeable(&mut tx, &caller, campaign).await?)?;
            }
            visible_contacts(&self.0, &token, &contacts).await?;
            if let Some(segment) = segment {
                contacts.extend(segment_contacts(&self.0, &token, &segment.to_string()).await?);
                contacts.sort_unstable();
                contacts.dedup();
            }
            add_members(
                &self.0,
                &caller,
                campaign,
                &[(Person::Contact, contacts), (Person::Lead, leads)],
            )
            .await
        })
        .await
    }

    async fn list_campaign_members(
        &self,
        request: Request<ListCampaignMembersRequest>,
    ) -> Result<Response<ListCampaignMembersResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("campaign_id", &request.campaign_id)?;
            let status = match MemberStatus::try_from(request.status) {
                Ok(MemberStatus::Unspecified) => None,
                Ok(s) => Some(s as i16),
                Err(_) => return Err(Error::invalid("status", "is not a known member status")),
            };
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            readable(&mut tx, caller.tenant_id, id).await?;
            let rows = members::list(
                &mut tx,
                caller.tenant_id,
                id,
                status,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (members, next) = finish_page(rows, page.size, |m: &CampaignMember| {
                Uuid::parse_str(&m.id).unwrap_or_default()
            });
            Ok(ListCampaignMembersResponse {
                members,
                page: page_response(next),
            })
        })
        .await
    }

    async fn set_member_status(
        &self,
        request: Request<SetMemberStatusRequest>,
    ) -> Result<Response<SetMemberStatusResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let campaign = parse_id("campaign_id", &request.campaign_id)?;
            let member = parse_id("member_id", &request.member_id)?;
            let next = match MemberStatus::try_from(request.status) {
                Ok(MemberStatus::Unspecified) | Err(_) => {
                    return Err(Error::invalid("status", "is not a known member status"))
                }
                Ok(status) => status,
            };
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let c = changeable(&mut tx, &caller, campaign).await?;
            let current = members::find(&mut tx, tenant, campaign, member, true)
                .await?
                .ok_or_else(|| Error::not_found("member", member))?;
            let previous = MemberStatus::try_from(current.status).unwrap_or_default();
            let status = advance(previous, next);
            let saved =
                members::set_status(&mut tx, tenant, member, status, next, chrono::Utc::now())
                    .await?;
            if status != previous {
                let event = MemberStatusChanged {
                    member: Some(saved.clone()),
                    previous_status: previous as i32,
                };
                self.0
                    .outbox
                    .enqueue(&mut tx, &caller, campaign, version_of(&c.audit), &event)
                    .await?;
            }
            commit(tx).await?;
            Ok(SetMemberStatusResponse {
                member: Some(saved),
            })
        })
        .await
    }

    async fn remove_campaign_member(
        &self,
        request: Request<RemoveCampaignMemberRequest>,
    ) -> Result<Response<RemoveCampaignMemberResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let campaign = parse_id("campaign_id", &request.campaign_id)?;
            let member = parse_id("member_id", &request.member_id)?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let c = changeable(&mut tx, &caller, campaign).await?;
            members::find(&mut tx, tenant, campaign, member, true)
                .await?
                .ok_or_else(|| Error::not_found("member", member))?;
            members::remove(&mut tx, tenant, member).await?;
            let event = MemberRemoved {
                campaign_id: campaign.to_string(),
                member_id: member.to_string(),
            };
            self.0
                .outbox
                .enqueue(&mut tx, &caller, campaign, version_of(&c.audit), &event)
                .await?;
            commit(tx).await?;
            Ok(RemoveCampaignMemberResponse {})
        })
        .await
    }
}
