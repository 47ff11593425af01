//! KnowledgeService: categories, articles, revisions, search, feedback.

use crm_proto::crm::servicedesk::v1::knowledge_service_server::KnowledgeService;
use crm_proto::crm::servicedesk::v1::*;
use kit::auth::CallerContext;
use kit::error::Violations;
use kit::paging::{finish_page, Page};
use kit::Error;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{
    check_version, commit, handle, name_taken, named_page, page_response, version_of, SharedState,
};
use crate::domain::access::{authorize, role_allows, Action};
use crate::domain::knowledge::{self, apply_mask, changed_fields, MAX_COMMENT};
use crate::domain::{optional_id, parse_id, text};
use crate::store::knowledge::{self as store, ArticleFilter, Words};

pub struct KnowledgeHandlers(pub SharedState);

/// Roles that work tickets see drafts and archived articles; the others
/// only what is published.
fn sees_drafts(caller: &CallerContext) -> bool {
    caller
        .roles
        .iter()
        .any(|role| role_allows(*role, Action::Write))
}

fn limit(requested: i32, default: i64, max: i64) -> i64 {
    if requested <= 0 {
        default
    } else {
        i64::from(requested).min(max)
    }
}

async fn check_category(
    tx: &mut sqlx::PgConnection,
    caller: &CallerContext,
    a: &Article,
) -> kit::Result<()> {
    if let Some(id) = optional_id("article.category_id", &a.category_id)
        .map_err(|v| Error::InvalidArgument(vec![v]))?
    {
        if store::find_category(tx, caller.tenant_id, id)
            .await?
            .is_none()
        {
            return Err(Error::invalid("article.category_id", "no such category"));
        }
    }
    Ok(())
}

impl KnowledgeHandlers {
    /// Publishes or archives an article (managers and admins).
    async fn set_status(
        &self,
        caller: CallerContext,
        id: &str,
        status: ArticleStatus,
    ) -> kit::Result<Article> {
        authorize(&caller, Action::Configure)?;
        let id = parse_id("id", id)?;
        let mut tx = self.0.begin(&caller).await?;
        store::find(&mut tx, caller.tenant_id, id, false, true)
            .await?
            .ok_or_else(|| Error::not_found("article", id))?;
        let saved =
            store::set_status(&mut tx, caller.tenant_id, id, status, &caller.subject).await?;
        if status == ArticleStatus::Published {
            let event = ArticlePublished {
                article_id: saved.id.clone(),
                title: saved.title.clone(),
                language: saved.language.clone(),
                audience: saved.audience,
                revision: saved.revision,
            };
            self.0
                .outbox
                .enqueue(&mut tx, &caller, id, version_of(&saved.audit), &event)
                .await?;
        }
        commit(tx).await?;
        Ok(saved)
    }
}

#[tonic::async_trait]
impl KnowledgeService for KnowledgeHandlers {
    async fn create_category(
        &self,
        request: Request<CreateCategoryRequest>,
    ) -> Result<Response<CreateCategoryResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateCategoryRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut c = request
                .category
                .ok_or_else(|| Error::invalid("category", "is required"))?;
            let mut v = Violations::new();
            knowledge::normalize_category(&mut c, &mut v);
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let entity = "article_category";
            if let Some(existing) = kit::idempotency::replayed(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
            )
            .await?
            {
                let found = store::find_category(&mut tx, tenant, existing)
                    .await?
                    .ok_or_else(|| Error::not_found("category", existing))?;
                return Ok(CreateCategoryResponse {
                    category: Some(found),
                });
            }
            let id = Uuid::now_v7();
            let saved = store::insert_category(&mut tx, tenant, id, &c, &caller.subject)
                .await
                .map_err(|e| name_taken(e, "category", &c.name))?;
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
            Ok(CreateCategoryResponse {
                category: Some(saved),
            })
        })
        .await
    }

    async fn list_categories(
        &self,
        request: Request<ListCategoriesRequest>,
    ) -> Result<Response<ListCategoriesResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let (categories, page) = named_page(
                &self.0,
                &caller,
                request.page.as_ref(),
                store::list_categories,
                |c: &ArticleCategory| (&c.name, &c.id),
            )
            .await?;
            Ok(ListCategoriesResponse { categories, page })
        })
        .await
    }

    async fn create_article(
        &self,
        request: Request<CreateArticleRequest>,
    ) -> Result<Response<CreateArticleResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateArticleRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut a = request
                .article
                .ok_or_else(|| Error::invalid("article", "is required"))?;
            let mut v = Violations::new();
            knowledge::normalize(&mut a, &mut v);
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let entity = "article";
            if let Some(existing) = kit::idempotency::replayed(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
            )
            .await?
            {
                let found = store::find(&mut tx, tenant, existing, false, false)
                    .await?
                    .ok_or_else(|| Error::not_found("article", existing))?;
                return Ok(CreateArticleResponse {
                    article: Some(found),
                });
            }
            check_category(&mut tx, &caller, &a).await?;
            let id = Uuid::now_v7();
            let saved = store::insert(&mut tx, tenant, id, &a, &caller.subject).await?;
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
            Ok(CreateArticleResponse {
                article: Some(saved),
            })
        })
        .await
    }

    async fn get_article(
        &self,
        request: Request<GetArticleRequest>,
    ) -> Result<Response<GetArticleResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let found = store::find(&mut tx, caller.tenant_id, id, !sees_drafts(&caller), false)
                .await?
                .ok_or_else(|| Error::not_found("article", id))?;
            Ok(GetArticleResponse {
                article: Some(found),
            })
        })
        .await
    }

    async fn list_articles(
        &self,
        request: Request<ListArticlesRequest>,
    ) -> Result<Response<ListArticlesResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let mut v = Violations::new();
            let mut status = match ArticleStatus::try_from(request.status) {
                Ok(ArticleStatus::Unspecified) => None,
                Ok(s) => Some(s as i16),
                Err(_) => {
                    v.add("status", "is not a known article status");
                    None
                }
            };
            let audience = match ArticleAudience::try_from(request.audience) {
                Ok(ArticleAudience::Unspecified) => None,
                Ok(a) => Some(a as i16),
                Err(_) => {
                    v.add("audience", "is not a known audience");
                    None
                }
            };
            let category = v
                .check(optional_id("category_id", &request.category_id))
                .flatten();
            let mut language = request.language.clone();
            if !language.is_empty() {
                knowledge::normalize_language("language", &mut language, &mut v);
            }
            v.into_result()?;
            if !sees_drafts(&caller) {
                status = Some(ArticleStatus::Published as i16);
            }
            let filter = ArticleFilter {
                status,
                category,
                language: (!language.is_empty()).then_some(language),
                audience,
            };
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
            let (articles, next) = finish_page(rows, page.size, |a: &Article| {
                Uuid::parse_str(&a.id).unwrap_or_default()
            });
            Ok(ListArticlesResponse {
                articles,
                page: page_response(next),
            })
        })
        .await
    }

    async fn update_article(
        &self,
        request: Request<UpdateArticleRequest>,
    ) -> Result<Response<UpdateArticleResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let input = request
                .article
                .ok_or_else(|| Error::invalid("article", "is required"))?;
            let id = parse_id("article.id", &input.id)?;
            let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
            let mut tx = self.0.begin(&caller).await?;
            let before = store::find(&mut tx, caller.tenant_id, id, false, true)
                .await?
                .ok_or_else(|| Error::not_found("article", id))?;
            check_version(
                "article",
                &input.id,
                request.expected_version,
                version_of(&before.audit),
            )?;
            let mut after = before.clone();
            apply_mask(&mut after, input, &paths, "update_mask")?;
            let mut v = Violations::new();
            knowledge::normalize(&mut after, &mut v);
            v.into_result()?;
            if changed_fields(&before, &after).is_empty() {
                return Ok(UpdateArticleResponse {
                    article: Some(before),
                });
            }
            if after.category_id != before.category_id {
                check_category(&mut tx, &caller, &after).await?;
            }
            let saved =
                store::update(&mut tx, caller.tenant_id, &before, &after, &caller.subject).await?;
            commit(tx).await?;
            Ok(UpdateArticleResponse {
                article: Some(saved),
            })
        })
        .await
    }

    async fn publish_article(
        &self,
        request: Request<PublishArticleRequest>,
    ) -> Result<Response<PublishArticleResponse>, Status> {
        handle(request, |caller, request| async move {
            let article = self
                .set_status(caller, &request.id, ArticleStatus::Published)
                .await?;
            Ok(PublishArticleResponse {
                article: Some(article),
            })
        })
        .await
    }

    async fn archive_article(
        &self,
        request: Request<ArchiveArticleRequest>,
    ) -> Result<Response<ArchiveArticleResponse>, Status> {
        handle(request, |caller, request| async move {
            let article = self
                .set_status(caller, &request.id, ArticleStatus::Archived)
                .await?;
            Ok(ArchiveArticleResponse {
                article: Some(article),
            })
        })
        .await
    }

    async fn list_article_revisions(
        &self,
        request: Request<ListArticleRevisionsRequest>,
    ) -> Result<Response<ListArticleRevisionsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let id = parse_id("article_id", &request.article_id)?;
            let page = Page::<i32>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            store::find(&mut tx, caller.tenant_id, id, false, false)
                .await?
                .ok_or_else(|| Error::not_found("article", id))?;
            let rows = store::revisions(
                &mut tx,
                caller.tenant_id,
                id,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (revisions, next) = finish_page(rows, page.size, |r: &ArticleRevision| r.revision);
            Ok(ListArticleRevisionsResponse {
                revisions,
                page: page_response(next),
            })
        })
        .await
    }

    async fn search_articles(
        &self,
        request: Request<SearchArticlesRequest>,
    ) -> Result<Response<SearchArticlesResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let mut v = Violations::new();
            let query = v.check(kit::search::query("query", &request.query));
            let mut language = request.language.clone();
            if !language.is_empty() {
                knowledge::normalize_language("language", &mut language, &mut v);
            }
            v.into_result()?;
            let mut tx = self.0.begin(&caller).await?;
            let hits = store::search(
                &mut tx,
                caller.tenant_id,
                query.unwrap_or_default(),
                Words::All,
                (!language.is_empty()).then_some(language.as_str()),
                request.public_only,
                limit(request.limit, 10, 50),
            )
            .await?;
            Ok(SearchArticlesResponse { hits })
        })
        .await
    }

    async fn suggest_articles(
        &self,
        request: Request<SuggestArticlesRequest>,
    ) -> Result<Response<SuggestArticlesResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("ticket_id", &request.ticket_id)?;
            let mut tx = self.0.begin(&caller).await?;
            let ticket = super::tickets::visible(&mut tx, &caller, id, false).await?;
            let words: String = format!("{} {}", ticket.subject, ticket.description)
                .chars()
                .take(2_000)
                .collect();
            let hits = store::search(
                &mut tx,
                caller.tenant_id,
                &words,
                Words::Any,
                None,
                false,
                limit(request.limit, 5, 20),
            )
            .await?;
            Ok(SuggestArticlesResponse { hits })
        })
        .await
    }

    async fn rate_article(
        &self,
        request: Request<RateArticleRequest>,
    ) -> Result<Response<RateArticleResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("article_id", &request.article_id)?;
            let mut comment = request.comment.clone();
            text("comment", &mut comment, MAX_COMMENT)
                .map_err(|v| Error::InvalidArgument(vec![v]))?;
            let mut tx = self.0.begin(&caller).await?;
            store::find(&mut tx, caller.tenant_id, id, true, true)
                .await?
                .ok_or_else(|| Error::not_found("article", id))?;
            store::rate(
                &mut tx,
                caller.tenant_id,
                id,
                &caller.subject,
                request.helpful,
                &comment,
            )
            .await?;
            let saved = store::find(&mut tx, caller.tenant_id, id, true, false)
                .await?
                .ok_or_else(|| Error::not_found("article", id))?;
            commit(tx).await?;
            Ok(RateArticleResponse {
                article: Some(saved),
            })
        })
        .await
    }
}
