//! `crm.customers.v1.SearchService`: one ranked list over contacts and
//! accounts, by trigram similarity (typo tolerant) and substring.

use crm_proto::crm::customers::v1::search_service_server::SearchService;
use crm_proto::crm::customers::v1::*;
use tonic::{Request, Response, Status};

use super::{handle, SharedState};
use crate::domain::access::{authorize, scope, Action};
use crate::store::search;

pub struct SearchHandlers(pub SharedState);

#[tonic::async_trait]
impl SearchService for SearchHandlers {
    async fn search(
        &self,
        request: Request<SearchRequest>,
    ) -> Result<Response<SearchResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let query = kit::search::checked_query("query", &request.query)?;
            let limit = kit::search::limit(request.limit);
            let visible = scope(&caller);
            let mut tx = self.0.begin(&caller).await?;
            let hits = search::search(&mut tx, caller.tenant_id, &visible, &[], query, limit)
                .await?
                .into_iter()
                .map(|(kind, id, title, subtitle, score)| SearchHit {
                    kind: if kind == "account" {
                        HitKind::Account
                    } else {
                        HitKind::Contact
                    } as i32,
                    id: id.to_string(),
                    title,
                    subtitle,
                    score: f64::from(score),
                })
                .collect();
            Ok(SearchResponse { hits })
        })
        .await
    }
}
