//! `crm.sales.v1.SearchService`: leads and deals by trigram similarity
//! and substring, with the same query and scores as the customers service.

use crm_proto::crm::sales::v1::search_service_server::SearchService;
use crm_proto::crm::sales::v1::*;
use tonic::{Request, Response, Status};

use super::{handle, SharedState};
use crate::domain::access::{authorize, scope, Action};

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
            let mut tx = self.0.begin(&caller).await?;
            let hits = kit::search::search(
                &mut tx,
                caller.tenant_id,
                &scope(&caller),
                &[],
                query,
                limit,
            )
            .await?
            .into_iter()
            .map(|(kind, id, title, subtitle, score)| SearchHit {
                kind: if kind == "lead" {
                    HitKind::Lead
                } else {
                    HitKind::Opportunity
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
