//! `crm.customers.v1.SegmentService`.

use crm_proto::crm::customers::v1::segment_service_server::SegmentService;
use crm_proto::crm::customers::v1::*;
use kit::auth::{CallerContext, Role};
use kit::paging::{finish_page, Page};
use kit::Error;
use sqlx::PgConnection;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{commit, handle, page_response, SharedState};
use crate::domain::access::{authorize, scope, Action};
use crate::domain::filter::{self, FilterExpr, CONTACT_COLUMNS};
use crate::domain::{parse_id, text};
use crate::store::{contacts, fields, segments as store};

pub struct SegmentHandlers(pub SharedState);

const MAX_IDS: usize = 10_000;

fn parse_ids(field: &str, raw: &[String]) -> kit::Result<Vec<Uuid>> {
    if raw.len() > MAX_IDS {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_IDS} ids per call"),
        ));
    }
    raw.iter()
        .enumerate()
        .map(|(i, id)| parse_id(&format!("{field}[{i}]"), id))
        .collect()
}

async fn find_segment(
    tx: &mut PgConnection,
    caller: &CallerContext,
    id: &str,
) -> kit::Result<Segment> {
    let id = parse_id("segment_id", id)?;
    store::find(tx, caller.tenant_id, id)
        .await?
        .ok_or_else(|| Error::not_found("segment", id))
}

/// The members of a segment: static ones by membership, dynamic ones by
/// evaluating the filter now.
async fn member_query(
    tx: &mut PgConnection,
    caller: &CallerContext,
    segment: &Segment,
) -> kit::Result<(Option<FilterExpr>, Option<Uuid>)> {
    let id = parse_id("segment_id", &segment.id)?;
    if segment.kind() == SegmentKind::Dynamic {
        let catalog = fields::catalog(tx, caller.tenant_id, Entity::Contact).await?;
        // A filter whose custom field was deleted since matches nothing.
        let filter = filter::check(
            segment.filter.as_ref(),
            CONTACT_COLUMNS,
            &catalog,
            "segment.filter",
        )
        .map_err(|_| {
            Error::FailedPrecondition(
                "the segment's filter names a custom field that no longer exists".into(),
            )
        })?;
        Ok((filter, None))
    } else {
        Ok((None, Some(id)))
    }
}

async fn add_members(
    tx: &mut PgConnection,
    caller: &CallerContext,
    segment: Uuid,
    ids: &[Uuid],
    field: &str,
) -> kit::Result<u64> {
    let missing = store::missing_contacts(tx, caller.tenant_id, &scope(caller), ids).await?;
    if let Some(first) = missing.first() {
        let index = ids.iter().position(|id| id == first).unwrap_or(0);
        return Err(Error::invalid(
            format!("{field}[{index}]"),
            format!("no such contact {first}"),
        ));
    }
    Ok(store::add_members(tx, caller.tenant_id, segment, ids).await?)
}

#[tonic::async_trait]
impl SegmentService for SegmentHandlers {
    async fn create_segment(
        &self,
        request: Request<CreateSegmentRequest>,
    ) -> Result<Response<CreateSegmentResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateSegmentRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut segment = request
                .segment
                .ok_or_else(|| Error::invalid("segment", "is required"))?;
            text("segment.name", &mut segment.name, 200)
                .map_err(|v| Error::InvalidArgument(vec![v]))?;
            if segment.name.is_empty() {
                return Err(Error::invalid("segment.name", "is required"));
            }
            let ids = parse_ids("contact_ids", &request.contact_ids)?;
            let mut tx = self.0.begin(&caller).await?;
            let replayed = kit::idempotency::replayed(
                &mut tx,
                caller.tenant_id,
                "segment",
                &request.request_id,
                &fingerprint,
            )
            .await?;
            if let Some(existing) = replayed {
                let segment = find_segment(&mut tx, &caller, &existing.to_string()).await?;
                return Ok(CreateSegmentResponse {
                    segment: Some(segment),
                });
            }
            match segment.kind() {
                SegmentKind::Dynamic => {
                    let catalog =
                        fields::catalog(&mut tx, caller.tenant_id, Entity::Contact).await?;
                    if segment.filter.is_none() {
                        return Err(Error::invalid(
                            "segment.filter",
                            "a dynamic segment needs a filter",
                        ));
                    }
                    filter::check(
                        segment.filter.as_ref(),
                        CONTACT_COLUMNS,
                        &catalog,
                        "segment.filter",
                    )?;
                    if !ids.is_empty() {
                        return Err(Error::invalid(
                            "contact_ids",
                            "a dynamic segment has no listed members",
                        ));
                    }
                }
                SegmentKind::Static => {
                    if segment.filter.is_some() {
                        return Err(Error::invalid(
                            "segment.filter",
                            "a static segment has no filter",
                        ));
                    }
                }
                SegmentKind::Unspecified => {
                    return Err(Error::invalid("segment.kind", "is required"))
                }
            }
            let id = Uuid::now_v7();
            let created = store::insert(&mut tx, caller.tenant_id, id, &segment, &caller.subject)
                .await
                .map_err(|e| {
                    Error::from(e).exists_as(|| {
                        format!("a segment named \"{}\" already exists", segment.name)
                    })
                })?;
            if !ids.is_empty() {
                add_members(&mut tx, &caller, id, &ids, "contact_ids").await?;
            }
            kit::idempotency::remember(
                &mut tx,
                caller.tenant_id,
                "segment",
                &request.request_id,
                &fingerprint,
                id,
            )
            .await?;
            commit(tx).await?;
            Ok(CreateSegmentResponse {
                segment: Some(created),
            })
        })
        .await
    }

    async fn get_segment(
        &self,
        request: Request<GetSegmentRequest>,
    ) -> Result<Response<GetSegmentResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let mut tx = self.0.begin(&caller).await?;
            let mut segment = find_segment(&mut tx, &caller, &request.id).await?;
            segment.member_count = count_members(&mut tx, &caller, &segment).await?;
            Ok(GetSegmentResponse {
                segment: Some(segment),
            })
        })
        .await
    }

    async fn list_segments(
        &self,
        request: Request<ListSegmentsRequest>,
    ) -> Result<Response<ListSegmentsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let page = Page::<(String, Uuid)>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows = store::list(
                &mut tx,
                caller.tenant_id,
                page.after.clone(),
                page.fetch_limit(),
            )
            .await?;
            let (segments, next) = finish_page(rows, page.size, |s: &Segment| {
                (s.name.clone(), Uuid::parse_str(&s.id).unwrap_or_default())
            });
            Ok(ListSegmentsResponse {
                segments,
                page: page_response(next),
            })
        })
        .await
    }

    async fn delete_segment(
        &self,
        request: Request<DeleteSegmentRequest>,
    ) -> Result<Response<DeleteSegmentResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Delete)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            // A segment belongs to whoever made it; managers and admins
            // may delete anyone's.
            let segment = find_segment(&mut tx, &caller, &request.id).await?;
            let made_it = segment
                .audit
                .as_ref()
                .is_some_and(|a| a.created_by == caller.subject);
            if !(made_it || caller.has_role(Role::Manager) || caller.has_role(Role::Admin)) {
                return Err(Error::PermissionDenied(
                    "only the segment's creator, managers and admins may delete it".into(),
                ));
            }
            if !store::delete(&mut tx, caller.tenant_id, id).await? {
                return Err(Error::not_found("segment", id));
            }
            commit(tx).await?;
            Ok(DeleteSegmentResponse {})
        })
        .await
    }

    async fn add_segment_members(
        &self,
        request: Request<AddSegmentMembersRequest>,
    ) -> Result<Response<AddSegmentMembersResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let ids = parse_ids("contact_ids", &request.contact_ids)?;
            let mut tx = self.0.begin(&caller).await?;
            let segment = find_segment(&mut tx, &caller, &request.segment_id).await?;
            if segment.kind() != SegmentKind::Static {
                return Err(Error::FailedPrecondition(
                    "members are added to static segments only".into(),
                ));
            }
            let segment_id = parse_id("segment_id", &segment.id)?;
            let added = add_members(&mut tx, &caller, segment_id, &ids, "contact_ids").await?;
            commit(tx).await?;
            Ok(AddSegmentMembersResponse {
                added: added as i64,
            })
        })
        .await
    }

    async fn remove_segment_members(
        &self,
        request: Request<RemoveSegmentMembersRequest>,
    ) -> Result<Response<RemoveSegmentMembersResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let ids = parse_ids("contact_ids", &request.contact_ids)?;
            let mut tx = self.0.begin(&caller).await?;
            let segment = find_segment(&mut tx, &caller, &request.segment_id).await?;
            if segment.kind() != SegmentKind::Static {
                return Err(Error::FailedPrecondition(
                    "members are removed from static segments only".into(),
                ));
            }
            let removed = store::remove_members(
                &mut tx,
                caller.tenant_id,
                &scope(&caller),
                parse_id("segment_id", &segment.id)?,
                &ids,
            )
            .await?;
            commit(tx).await?;
            Ok(RemoveSegmentMembersResponse {
                removed: removed as i64,
            })
        })
        .await
    }

    async fn list_segment_members(
        &self,
        request: Request<ListSegmentMembersRequest>,
    ) -> Result<Response<ListSegmentMembersResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let segment = find_segment(&mut tx, &caller, &request.segment_id).await?;
            let (filter, member_of) = member_query(&mut tx, &caller, &segment).await?;
            let rows = contacts::ids_after(
                &mut tx,
                caller.tenant_id,
                &scope(&caller),
                filter.as_ref(),
                member_of,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (contacts, next) = finish_page(rows, page.size, |c: &Contact| {
                Uuid::parse_str(&c.id).unwrap_or_default()
            });
            Ok(ListSegmentMembersResponse {
                contacts,
                page: page_response(next),
            })
        })
        .await
    }

    async fn count_segment_members(
        &self,
        request: Request<CountSegmentMembersRequest>,
    ) -> Result<Response<CountSegmentMembersResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let mut tx = self.0.begin(&caller).await?;
            let segment = find_segment(&mut tx, &caller, &request.segment_id).await?;
            let count = count_members(&mut tx, &caller, &segment).await?;
            Ok(CountSegmentMembersResponse { count })
        })
        .await
    }
}

/// Members of the segment the caller can see, counted now (dynamic
/// segments are evaluated).
async fn count_members(
    tx: &mut PgConnection,
    caller: &CallerContext,
    segment: &Segment,
) -> kit::Result<i64> {
    let (filter, member_of) = member_query(tx, caller, segment).await?;
    Ok(contacts::count(
        tx,
        caller.tenant_id,
        &scope(caller),
        filter.as_ref(),
        member_of,
    )
    .await?)
}
