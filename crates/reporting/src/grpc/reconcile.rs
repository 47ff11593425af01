//! ReconcileService: reporting's totals against the sources' answers.
//! The sources are read through their list APIs with the caller's own
//! token, so both sides count what the caller may see.

use std::collections::BTreeMap;
use std::future::Future;
use std::str::FromStr;

use chrono::Datelike;
use crm_proto::crm::common::v1::PageRequest;
use crm_proto::crm::reporting::v1::reconcile_service_server::ReconcileService;
use crm_proto::crm::reporting::v1::*;
use crm_proto::crm::sales::v1 as sales;
use crm_proto::crm::sales::v1::lead_service_client::LeadServiceClient;
use crm_proto::crm::sales::v1::opportunity_service_client::OpportunityServiceClient;
use crm_proto::crm::sales::v1::order_service_client::OrderServiceClient;
use crm_proto::crm::servicedesk::v1 as desk;
use crm_proto::crm::servicedesk::v1::ticket_service_client::TicketServiceClient;
use futures::{Stream, StreamExt};
use kit::auth::{CallerContext, Role};
use kit::rpc::{on_behalf, token_of, Forwarded};
use kit::time::to_optional_timestamp;
use kit::Error;
use rust_decimal::Decimal;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::{handle, SharedState};
use crate::domain::access::{authorize_write, scope};
use crate::store::{freshness, reconcile as store};

pub struct ReconcileHandlers(pub SharedState);

/// The most records one reconciliation reads from a source.
const MAX_RECORDS: usize = 2_000_000;
const PAGE: i32 = 500;

type Totals = BTreeMap<(String, String), Decimal>;

fn add(totals: &mut Totals, figure: &str, key: String, value: Decimal) {
    *totals.entry((figure.to_owned(), key)).or_default() += value;
}

fn id_or_none(id: &str) -> String {
    if id.is_empty() {
        "none".into()
    } else {
        id.to_owned()
    }
}

fn unavailable(what: &str) -> impl Fn(Status) -> Error + '_ {
    move |status| Error::Unavailable(format!("{what} did not answer: {}", status.message()))
}

/// Every page `fetch` answers (given each page's request), until the last
/// page or [`MAX_RECORDS`]; `fetch` answers a page's records and the next
/// page's token.
fn pages<T, F, Fut>(fetch: F) -> impl Stream<Item = kit::Result<Vec<T>>>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = kit::Result<(Vec<T>, String)>>,
{
    futures::stream::unfold(
        (fetch, Some(String::new()), 0usize),
        |(mut fetch, next, read)| async move {
            let token = next.filter(|_| read < MAX_RECORDS)?;
            let request = PageRequest {
                page_size: PAGE,
                page_token: token,
            };
            match fetch(request).await {
                Ok((records, next)) => {
                    let read = read + records.len();
                    let next = (!next.is_empty()).then_some(next);
                    Some((Ok(records), (fetch, next, read)))
                }
                Err(error) => Some((Err(error), (fetch, None, read))),
            }
        },
    )
}

/// Sales' deals of `status` (unspecified: all) the caller sees, a page at
/// a time.
fn deal_pages<'a>(
    channel: Channel,
    token: &'a Forwarded,
    status: sales::OpportunityStatus,
) -> impl Stream<Item = kit::Result<Vec<sales::Opportunity>>> + 'a {
    let client = OpportunityServiceClient::new(channel);
    pages(move |page| {
        let mut client = client.clone();
        let request = sales::ListOpportunitiesRequest {
            status: status as i32,
            page: Some(page),
            ..Default::default()
        };
        async move {
            let answer = client
                .list_opportunities(on_behalf(token, request))
                .await
                .map_err(unavailable("sales"))?
                .into_inner();
            let next = answer.page.map(|p| p.next_page_token).unwrap_or_default();
            Ok((answer.opportunities, next))
        }
    })
}

/// The service desk's tickets (open ones only when `open_only`) the caller
/// sees, a page at a time.
fn ticket_pages<'a>(
    channel: Channel,
    token: &'a Forwarded,
    open_only: bool,
) -> impl Stream<Item = kit::Result<Vec<desk::Ticket>>> + 'a {
    let client = TicketServiceClient::new(channel);
    pages(move |page| {
        let mut client = client.clone();
        let request = desk::ListTicketsRequest {
            open_only,
            page: Some(page),
            ..Default::default()
        };
        async move {
            let answer = client
                .list_tickets(on_behalf(token, request))
                .await
                .map_err(unavailable("the service desk"))?
                .into_inner();
            let next = answer.page.map(|p| p.next_page_token).unwrap_or_default();
            Ok((answer.tickets, next))
        }
    })
}

/// Open and won deals as sales answers them.
async fn deals(channel: Channel, token: &Forwarded, totals: &mut Totals) -> kit::Result<()> {
    use sales::OpportunityStatus::{Open, Won};
    for status in [Open, Won] {
        let mut pages = std::pin::pin!(deal_pages(channel.clone(), token, status));
        while let Some(page) = pages.next().await {
            for o in page? {
                let amount = o.amount.clone().unwrap_or_default();
                let value = Decimal::from_str(&amount.amount).unwrap_or_default();
                let pipeline = id_or_none(&o.pipeline_id);
                if status == Open {
                    add(totals, "open_deals", pipeline.clone(), Decimal::ONE);
                    let key = format!("{pipeline} {}", amount.currency);
                    add(totals, "open_deal_amount", key, value);
                } else if let Some(closed) = crate::store::time(o.closed_at.as_ref()) {
                    let quarter = format!("{}-Q{}", closed.year(), (closed.month() - 1) / 3 + 1);
                    let key = format!("{quarter} {}", amount.currency);
                    add(totals, "won_deal_amount", key, value);
                }
            }
        }
    }
    Ok(())
}

/// Open tickets per group as the service desk answers them.
async fn tickets(channel: Channel, token: &Forwarded, totals: &mut Totals) -> kit::Result<()> {
    let mut pages = std::pin::pin!(ticket_pages(channel, token, true));
    while let Some(page) = pages.next().await {
        for t in page? {
            add(
                totals,
                "open_tickets",
                id_or_none(&t.group_id),
                Decimal::ONE,
            );
        }
    }
    Ok(())
}

/// A source's record as a backfill writes it into its projection.
trait Snapshot: Sync {
    fn write<'a>(
        &'a self,
        tx: &'a mut sqlx::PgConnection,
        tenant: uuid::Uuid,
    ) -> impl Future<Output = sqlx::Result<()>> + Send + 'a;
}

impl Snapshot for sales::Opportunity {
    async fn write(&self, tx: &mut sqlx::PgConnection, tenant: uuid::Uuid) -> sqlx::Result<()> {
        let audit = self.audit.clone().unwrap_or_default();
        let at = crate::store::time(audit.updated_at.as_ref()).unwrap_or_else(chrono::Utc::now);
        crate::store::sales::deal(tx, tenant, self, at, audit.version).await
    }
}

impl Snapshot for sales::Lead {
    async fn write(&self, tx: &mut sqlx::PgConnection, tenant: uuid::Uuid) -> sqlx::Result<()> {
        crate::store::leads::snapshot(tx, tenant, self).await
    }
}

impl Snapshot for sales::Order {
    async fn write(&self, tx: &mut sqlx::PgConnection, tenant: uuid::Uuid) -> sqlx::Result<()> {
        crate::store::accounts::order_snapshot(tx, tenant, self).await
    }
}

impl Snapshot for desk::Ticket {
    async fn write(&self, tx: &mut sqlx::PgConnection, tenant: uuid::Uuid) -> sqlx::Result<()> {
        crate::store::tickets::snapshot(tx, tenant, self).await
    }
}

/// Every record `pages` reads, written into its projection unless the
/// projection holds a newer version; one transaction per page.
async fn backfill<T: Snapshot>(
    state: &crate::grpc::State,
    caller: &CallerContext,
    pages: impl Stream<Item = kit::Result<Vec<T>>>,
) -> kit::Result<i64> {
    let mut pages = std::pin::pin!(pages);
    let mut read = 0;
    while let Some(page) = pages.next().await {
        let page = page?;
        let mut tx = state.begin(caller).await?;
        for record in &page {
            record.write(&mut tx, caller.tenant_id).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        read += page.len() as i64;
    }
    Ok(read)
}

/// Sales' leads the caller sees, a page at a time.
fn lead_pages(
    channel: Channel,
    token: &Forwarded,
) -> impl Stream<Item = kit::Result<Vec<sales::Lead>>> + '_ {
    let client = LeadServiceClient::new(channel);
    pages(move |page| {
        let mut client = client.clone();
        let request = sales::ListLeadsRequest {
            page: Some(page),
            ..Default::default()
        };
        async move {
            let answer = client
                .list_leads(on_behalf(token, request))
                .await
                .map_err(unavailable("sales"))?
                .into_inner();
            let next = answer.page.map(|p| p.next_page_token).unwrap_or_default();
            Ok((answer.leads, next))
        }
    })
}

/// Sales' orders the caller sees, a page at a time.
fn order_pages(
    channel: Channel,
    token: &Forwarded,
) -> impl Stream<Item = kit::Result<Vec<sales::Order>>> + '_ {
    let client = OrderServiceClient::new(channel);
    pages(move |page| {
        let mut client = client.clone();
        let request = sales::ListOrdersRequest {
            page: Some(page),
            ..Default::default()
        };
        async move {
            let answer = client
                .list_orders(on_behalf(token, request))
                .await
                .map_err(unavailable("sales"))?
                .into_inner();
            let next = answer.page.map(|p| p.next_page_token).unwrap_or_default();
            Ok((answer.orders, next))
        }
    })
}

/// The datasets a backfill reads again, each from its source.
const DATASETS: &str = "must be deals, leads or orders (sales) or tickets (the service desk)";

fn may_reconcile(caller: &CallerContext) -> Result<(), Error> {
    authorize_write(caller)?;
    if caller.has_role(Role::Admin) || caller.has_role(Role::Manager) {
        Ok(())
    } else {
        Err(Error::PermissionDenied(
            "admins and managers reconcile reporting".into(),
        ))
    }
}

#[tonic::async_trait]
impl ReconcileService for ReconcileHandlers {
    async fn backfill(
        &self,
        request: Request<BackfillRequest>,
    ) -> Result<Response<BackfillResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            authorize_write(&caller)?;
            if !caller.has_role(Role::Admin) {
                return Err(Error::PermissionDenied("admins backfill reporting".into()));
            }
            let missing =
                |setting: &str| Error::FailedPrecondition(format!("this backfill needs {setting}"));
            let sales = || {
                self.0
                    .sales
                    .clone()
                    .ok_or_else(|| missing("REPORTING_SALES_URL"))
            };
            let (state, caller) = (&self.0, &caller);
            let read = match request.dataset.as_str() {
                "deals" => {
                    let all = sales::OpportunityStatus::Unspecified;
                    backfill(state, caller, deal_pages(sales()?, &token, all)).await?
                }
                "leads" => backfill(state, caller, lead_pages(sales()?, &token)).await?,
                // After deals: an order's account is its deal's.
                "orders" => backfill(state, caller, order_pages(sales()?, &token)).await?,
                "tickets" => {
                    let desk = self
                        .0
                        .servicedesk
                        .clone()
                        .ok_or_else(|| missing("REPORTING_SERVICEDESK_URL"))?;
                    backfill(state, caller, ticket_pages(desk, &token, false)).await?
                }
                _ => return Err(Error::invalid("dataset", DATASETS)),
            };
            Ok(BackfillResponse { read })
        })
        .await
    }

    async fn reconcile(
        &self,
        request: Request<ReconcileRequest>,
    ) -> Result<Response<ReconcileResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, _| async move {
            may_reconcile(&caller)?;
            let state = &self.0;
            let (Some(sales), Some(desk)) = (state.sales.clone(), state.servicedesk.clone()) else {
                return Err(Error::FailedPrecondition(
                    "reconciling needs REPORTING_SALES_URL and REPORTING_SERVICEDESK_URL".into(),
                ));
            };
            // Reporting's side first: anything applied while the sources
            // are read shows as drift the next time, not as a false match.
            let mut tx = state.begin(&caller).await?;
            let ours = store::totals(&mut tx, caller.tenant_id, &scope(&caller)).await?;
            let sales_as_of = freshness::as_of(&mut tx, caller.tenant_id, "sales").await?;
            let desk_as_of = freshness::as_of(&mut tx, caller.tenant_id, "servicedesk").await?;
            drop(tx);
            let mut theirs = Totals::new();
            deals(sales, &token, &mut theirs).await?;
            tickets(desk, &token, &mut theirs).await?;
            let mut reporting = Totals::new();
            for (figure, key, value) in ours {
                add(&mut reporting, &figure, key, value);
            }
            let keys: std::collections::BTreeSet<&(String, String)> =
                theirs.keys().chain(reporting.keys()).collect();
            let figures: Vec<Drift> = keys
                .into_iter()
                .map(|key| {
                    let source = theirs.get(key).copied().unwrap_or_default();
                    let counted = reporting.get(key).copied().unwrap_or_default();
                    Drift {
                        figure: key.0.clone(),
                        key: key.1.clone(),
                        source: source.normalize().to_string(),
                        reporting: counted.normalize().to_string(),
                        difference: (counted - source).normalize().to_string(),
                    }
                })
                .collect();
            Ok(ReconcileResponse {
                drifting: figures.iter().filter(|d| d.difference != "0").count() as i64,
                figures,
                sales_as_of: to_optional_timestamp(sales_as_of),
                servicedesk_as_of: to_optional_timestamp(desk_as_of),
            })
        })
        .await
    }
}
