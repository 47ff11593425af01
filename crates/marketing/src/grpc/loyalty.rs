//! LoyaltyService: programs, members' points (earned from sales events or
//! by hand, redeemed, expired) and coupons. A member is a contact the
//! caller can see in the customers service.

use crm_proto::crm::marketing::v1::loyalty_service_server::LoyaltyService;
use crm_proto::crm::marketing::v1::*;
use kit::auth::CallerContext;
use kit::error::Violations;
use kit::paging::{finish_page, Page};
use kit::rpc::{token_of, Forwarded};
use kit::Error;
use sqlx::PgConnection;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::messages::visible_contact;
use super::{commit, handle, page_response, SharedState, State};
use crate::domain::access::{authorize, Action};
use crate::domain::loyalty::{self as rules, check_points};
use crate::domain::{parse_id, text};
use crate::store::loyalty::{self as store, Change, Earning, NewCoupon};

pub struct LoyaltyHandlers(pub SharedState);

/// Publishes a change of a balance: points earned, redeemed or expired,
/// and the tier change it made.
pub async fn publish_change(
    outbox: &kit::outbox::Outbox,
    tx: &mut PgConnection,
    caller: &CallerContext,
    change: &Change,
) -> kit::Result<()> {
    let entry = Some(change.entry.clone());
    let balance = change.balance;
    let id = Uuid::parse_str(&change.entry.id).unwrap_or_default();
    match LoyaltyEntryKind::try_from(change.entry.kind).unwrap_or_default() {
        LoyaltyEntryKind::Redeemed => {
            let event = LoyaltyPointsRedeemed { entry, balance };
            outbox.enqueue(tx, caller, id, 1, &event).await?;
        }
        LoyaltyEntryKind::Expired => {
            let event = LoyaltyPointsExpired { entry, balance };
            outbox.enqueue(tx, caller, id, 1, &event).await?;
        }
        _ => {
            let event = LoyaltyPointsEarned { entry, balance };
            outbox.enqueue(tx, caller, id, 1, &event).await?;
        }
    }
    if let Some(previous) = &change.previous_tier {
        let event = LoyaltyTierChanged {
            program_id: change.entry.program_id.clone(),
            contact_id: change.entry.contact_id.clone(),
            previous_tier: previous.clone(),
            tier: change.tier.clone(),
        };
        outbox.enqueue(tx, caller, id, 1, &event).await?;
    }
    Ok(())
}

/// A contact the caller can see in the customers service (asked before
/// any transaction is open).
async fn visible(state: &State, token: &Forwarded, contact: &str) -> kit::Result<Uuid> {
    let contact = visible_contact(state, token, "contact_id", contact).await?;
    parse_id("contact_id", &contact.id)
}

/// A program of the caller's tenant.
async fn program_of(
    tx: &mut PgConnection,
    caller: &CallerContext,
    raw: &str,
) -> kit::Result<LoyaltyProgram> {
    let id = parse_id("program_id", raw)?;
    store::find_program(tx, caller.tenant_id, id)
        .await?
        .ok_or_else(|| Error::not_found("loyalty program", id))
}

fn points_request(points: i64, reason: &mut String, request_id: &str) -> kit::Result<()> {
    let mut v = Violations::new();
    check_points(points, &mut v);
    v.check(text("reason", reason, 500));
    if reason.is_empty() {
        v.add("reason", "is required");
    }
    if request_id.len() > 200 {
        v.add("request_id", "is longer than 200 characters");
    }
    v.into_result()
}

/// The answer a retried award or redemption gets: its first entry and
/// the account now.
async fn replayed_entry(
    tx: &mut PgConnection,
    tenant: Uuid,
    kind: &str,
    request_id: &str,
    fingerprint: &[u8],
) -> kit::Result<Option<(LoyaltyEntry, LoyaltyAccount)>> {
    let Some(id) = kit::idempotency::replayed(tx, tenant, kind, request_id, fingerprint).await?
    else {
        return Ok(None);
    };
    let entry = store::find_entry(tx, tenant, id)
        .await?
        .ok_or_else(|| Error::not_found("loyalty entry", id))?;
    let program = parse_id("program_id", &entry.program_id)?;
    let contact = parse_id("contact_id", &entry.contact_id)?;
    let account = store::account(tx, tenant, program, contact).await?;
    Ok(Some((entry, account)))
}

/// An award (`loyalty_award`) or a redemption (`loyalty_redemption`) as
/// asked, idempotent by request id.
struct PointsChange {
    kind: &'static str,
    program_id: String,
    contact_id: String,
    points: i64,
    reason: String,
    request_id: String,
    fingerprint: Vec<u8>,
}

impl LoyaltyHandlers {
    /// Checks, applies and publishes an award or a redemption for a member
    /// the caller can see; a retry answers with the first entry.
    async fn change_points(
        &self,
        caller: &CallerContext,
        token: &Forwarded,
        mut asked: PointsChange,
    ) -> kit::Result<(LoyaltyEntry, LoyaltyAccount)> {
        points_request(asked.points, &mut asked.reason, &asked.request_id)?;
        let tenant = caller.tenant_id;
        let contact = visible(&self.0, token, &asked.contact_id).await?;
        let mut tx = self.0.begin(caller).await?;
        if let Some(replayed) = replayed_entry(
            &mut tx,
            tenant,
            asked.kind,
            &asked.request_id,
            &asked.fingerprint,
        )
        .await?
        {
            return Ok(replayed);
        }
        let program = program_of(&mut tx, caller, &asked.program_id).await?;
        let change = if asked.kind == "loyalty_award" {
            let earning = Earning {
                program: &program,
                contact,
                points: asked.points,
                reason: &asked.reason,
                source: None,
            };
            store::earn(&mut tx, tenant, earning, &caller.subject)
                .await?
                .ok_or_else(|| {
                    Error::Internal(anyhow::anyhow!("an award without source was a duplicate"))
                })?
        } else {
            store::redeem(
                &mut tx,
                tenant,
                &program,
                contact,
                asked.points,
                &asked.reason,
                &caller.subject,
            )
            .await?
            .map_err(|balance| {
                Error::FailedPrecondition(format!(
                    "the balance is {balance} points, fewer than the {} to redeem",
                    asked.points
                ))
            })?
        };
        publish_change(&self.0.outbox, &mut tx, caller, &change).await?;
        let entry_id = parse_id("entry", &change.entry.id)?;
        kit::idempotency::remember(
            &mut tx,
            tenant,
            asked.kind,
            &asked.request_id,
            &asked.fingerprint,
            entry_id,
        )
        .await?;
        let program_id = parse_id("program_id", &program.id)?;
        let account = store::account(&mut tx, tenant, program_id, contact).await?;
        commit(tx).await?;
        Ok((change.entry, account))
    }
}

#[tonic::async_trait]
impl LoyaltyService for LoyaltyHandlers {
    async fn create_loyalty_program(
        &self,
        request: Request<CreateLoyaltyProgramRequest>,
    ) -> Result<Response<CreateLoyaltyProgramResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateLoyaltyProgramRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut p = request
                .program
                .ok_or_else(|| Error::invalid("program", "is required"))?;
            let mut v = Violations::new();
            rules::check_program(&mut p, &mut v);
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let replayed = kit::idempotency::replayed(
                &mut tx,
                tenant,
                "loyalty_program",
                &request.request_id,
                &fingerprint,
            )
            .await?;
            if let Some(id) = replayed {
                let p = store::find_program(&mut tx, tenant, id)
                    .await?
                    .ok_or_else(|| Error::not_found("loyalty program", id))?;
                return Ok(CreateLoyaltyProgramResponse { program: Some(p) });
            }
            let id = Uuid::now_v7();
            let saved = store::insert_program(&mut tx, tenant, id, &p, &caller.subject)
                .await
                .map_err(|e| {
                    Error::from(e).exists_as(|| format!("a program named {:?} exists", p.name))
                })?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                "loyalty_program",
                &request.request_id,
                &fingerprint,
                id,
            )
            .await?;
            commit(tx).await?;
            Ok(CreateLoyaltyProgramResponse {
                program: Some(saved),
            })
        })
        .await
    }

    async fn get_loyalty_program(
        &self,
        request: Request<GetLoyaltyProgramRequest>,
    ) -> Result<Response<GetLoyaltyProgramResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let p = store::find_program(&mut tx, caller.tenant_id, id)
                .await?
                .ok_or_else(|| Error::not_found("loyalty program", id))?;
            Ok(GetLoyaltyProgramResponse { program: Some(p) })
        })
        .await
    }

    async fn list_loyalty_programs(
        &self,
        request: Request<ListLoyaltyProgramsRequest>,
    ) -> Result<Response<ListLoyaltyProgramsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows =
                store::list_programs(&mut tx, caller.tenant_id, page.after, page.fetch_limit())
                    .await?;
            let (programs, next) = finish_page(rows, page.size, |p: &LoyaltyProgram| {
                Uuid::parse_str(&p.id).unwrap_or_default()
            });
            Ok(ListLoyaltyProgramsResponse {
                programs,
                page: page_response(next),
            })
        })
        .await
    }

    async fn get_loyalty_account(
        &self,
        request: Request<GetLoyaltyAccountRequest>,
    ) -> Result<Response<GetLoyaltyAccountResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let contact = visible(&self.0, &token, &request.contact_id).await?;
            let mut tx = self.0.begin(&caller).await?;
            let program = program_of(&mut tx, &caller, &request.program_id).await?;
            let program = parse_id("program_id", &program.id)?;
            let account = store::account(&mut tx, caller.tenant_id, program, contact).await?;
            Ok(GetLoyaltyAccountResponse {
                account: Some(account),
            })
        })
        .await
    }

    async fn list_loyalty_entries(
        &self,
        request: Request<ListLoyaltyEntriesRequest>,
    ) -> Result<Response<ListLoyaltyEntriesResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let contact = visible(&self.0, &token, &request.contact_id).await?;
            let mut tx = self.0.begin(&caller).await?;
            let program = program_of(&mut tx, &caller, &request.program_id).await?;
            let program = parse_id("program_id", &program.id)?;
            let rows = store::list_entries(
                &mut tx,
                caller.tenant_id,
                program,
                contact,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (entries, next) = finish_page(rows, page.size, |e: &LoyaltyEntry| {
                Uuid::parse_str(&e.id).unwrap_or_default()
            });
            Ok(ListLoyaltyEntriesResponse {
                entries,
                page: page_response(next),
            })
        })
        .await
    }

    async fn award_points(
        &self,
        request: Request<AwardPointsRequest>,
    ) -> Result<Response<AwardPointsResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let fingerprint = kit::idempotency::fingerprint(&AwardPointsRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let asked = PointsChange {
                kind: "loyalty_award",
                program_id: request.program_id,
                contact_id: request.contact_id,
                points: request.points,
                reason: request.reason,
                request_id: request.request_id,
                fingerprint,
            };
            let (entry, account) = self.change_points(&caller, &token, asked).await?;
            Ok(AwardPointsResponse {
                entry: Some(entry),
                account: Some(account),
            })
        })
        .await
    }

    async fn redeem_points(
        &self,
        request: Request<RedeemPointsRequest>,
    ) -> Result<Response<RedeemPointsResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Redeem)?;
            let fingerprint = kit::idempotency::fingerprint(&RedeemPointsRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let asked = PointsChange {
                kind: "loyalty_redemption",
                program_id: request.program_id,
                contact_id: request.contact_id,
                points: request.points,
                reason: request.reason,
                request_id: request.request_id,
                fingerprint,
            };
            let (entry, account) = self.change_points(&caller, &token, asked).await?;
            Ok(RedeemPointsResponse {
                entry: Some(entry),
                account: Some(account),
            })
        })
        .await
    }

    async fn create_coupon(
        &self,
        request: Request<CreateCouponRequest>,
    ) -> Result<Response<CreateCouponResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateCouponRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut c = request
                .coupon
                .ok_or_else(|| Error::invalid("coupon", "is required"))?;
            let mut v = Violations::new();
            let discount = rules::check_coupon(&mut c, &mut v);
            let valid_from =
                kit::time::from_optional_timestamp("coupon.valid_from", c.valid_from.as_ref());
            let valid_until =
                kit::time::from_optional_timestamp("coupon.valid_until", c.valid_until.as_ref());
            let (valid_from, valid_until) = match (valid_from, valid_until) {
                (Ok(from), Ok(until)) => (from, until),
                (Err(e), _) | (_, Err(e)) => return Err(e),
            };
            if let (Some(from), Some(until)) = (valid_from, valid_until) {
                if until <= from {
                    v.add("coupon.valid_until", "must be after valid_from");
                }
            }
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let replayed = kit::idempotency::replayed(
                &mut tx,
                tenant,
                "coupon",
                &request.request_id,
                &fingerprint,
            )
            .await?;
            if let Some(id) = replayed {
                let c = store::find_coupon(&mut tx, tenant, id)
                    .await?
                    .ok_or_else(|| Error::not_found("coupon", id))?;
                return Ok(CreateCouponResponse { coupon: Some(c) });
            }
            let id = Uuid::now_v7();
            let new = NewCoupon {
                code: &c.code,
                percent_off: discount.percent,
                amount_off: discount.amount,
                max_redemptions: c.max_redemptions,
                once_per_contact: c.once_per_contact,
                valid_from,
                valid_until,
            };
            let saved = store::insert_coupon(&mut tx, tenant, id, new, &caller.subject)
                .await
                .map_err(|e| {
                    Error::from(e).exists_as(|| format!("a coupon {:?} exists", c.code))
                })?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                "coupon",
                &request.request_id,
                &fingerprint,
                id,
            )
            .await?;
            commit(tx).await?;
            Ok(CreateCouponResponse {
                coupon: Some(saved),
            })
        })
        .await
    }

    async fn get_coupon(
        &self,
        request: Request<GetCouponRequest>,
    ) -> Result<Response<GetCouponResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let c = store::find_coupon(&mut tx, caller.tenant_id, id)
                .await?
                .ok_or_else(|| Error::not_found("coupon", id))?;
            Ok(GetCouponResponse { coupon: Some(c) })
        })
        .await
    }

    async fn list_coupons(
        &self,
        request: Request<ListCouponsRequest>,
    ) -> Result<Response<ListCouponsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows =
                store::list_coupons(&mut tx, caller.tenant_id, page.after, page.fetch_limit())
                    .await?;
            let (coupons, next) = finish_page(rows, page.size, |c: &Coupon| {
                Uuid::parse_str(&c.id).unwrap_or_default()
            });
            Ok(ListCouponsResponse {
                coupons,
                page: page_response(next),
            })
        })
        .await
    }

    async fn redeem_coupon(
        &self,
        request: Request<RedeemCouponRequest>,
    ) -> Result<Response<RedeemCouponResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, mut request| async move {
            authorize(&caller, Action::Redeem)?;
            let mut v = Violations::new();
            v.check(text("order_reference", &mut request.order_reference, 200));
            if request.code.trim().is_empty() {
                v.add("code", "is required");
            }
            if request.request_id.len() > 200 {
                v.add("request_id", "is longer than 200 characters");
            }
            v.into_result()?;
            let fingerprint = kit::idempotency::fingerprint(&RedeemCouponRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let tenant = caller.tenant_id;
            let contact = visible(&self.0, &token, &request.contact_id).await?;
            let mut tx = self.0.begin(&caller).await?;
            if let Some(id) = kit::idempotency::replayed(
                &mut tx,
                tenant,
                "coupon_redemption",
                &request.request_id,
                &fingerprint,
            )
            .await?
            {
                let redemption = store::find_redemption(&mut tx, tenant, id).await?;
                return Ok(RedeemCouponResponse { redemption });
            }
            let code = rules::normalize_code(&request.code);
            let coupon = store::lock_coupon_by_code(&mut tx, tenant, &code)
                .await?
                .ok_or_else(|| Error::not_found("coupon", &code))?;
            let now = chrono::Utc::now().timestamp();
            if coupon.valid_from.is_some_and(|t| t.seconds > now) {
                return Err(Error::FailedPrecondition(
                    "the coupon is not valid yet".into(),
                ));
            }
            if coupon.valid_until.is_some_and(|t| t.seconds <= now) {
                return Err(Error::FailedPrecondition("the coupon has expired".into()));
            }
            if coupon.max_redemptions > 0 && coupon.redemptions >= coupon.max_redemptions {
                return Err(Error::FailedPrecondition("the coupon is used up".into()));
            }
            let redemption =
                store::redeem_coupon(&mut tx, tenant, &coupon, contact, &request.order_reference)
                    .await?
                    .ok_or_else(|| {
                        Error::FailedPrecondition(
                            "the contact has already redeemed this coupon".into(),
                        )
                    })?;
            let id = parse_id("redemption", &redemption.id)?;
            let event = CouponRedeemed {
                redemption: Some(redemption.clone()),
            };
            self.0
                .outbox
                .enqueue(&mut tx, &caller, id, 1, &event)
                .await?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                "coupon_redemption",
                &request.request_id,
                &fingerprint,
                id,
            )
            .await?;
            commit(tx).await?;
            Ok(RedeemCouponResponse {
                redemption: Some(redemption),
            })
        })
        .await
    }
}
