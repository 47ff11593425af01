//! `crm.servicedesk.v1.SearchService`: tickets the caller sees and
//! published articles, with the same query and scores as the other
//! services, for the gateway's search across services.

use crm_proto::crm::servicedesk::v1::search_service_server::SearchService;
use crm_proto::crm::servicedesk::v1::*;
use tonic::{Request, Response, Status};

use super::{handle, SharedState};
use crate::domain::access::{authorize, scope, Action};

pub struct SearchHandlers(pub SharedState);

/// Kinds everyone who may read tickets finds: published articles.
const PUBLIC_KINDS: [&str; 1] = ["article"];

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
                &PUBLIC_KINDS,
                query,
                limit,
            )
            .await?
            .into_iter()
            .map(|(kind, id, title, subtitle, score)| SearchHit {
                kind: if kind == "article" {
                    HitKind::Article
                } else {
                    HitKind::Ticket
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
