//! CatalogService: products and price books.

use crm_proto::crm::sales::v1::catalog_service_server::CatalogService;
use crm_proto::crm::sales::v1::*;
use kit::error::Violations;
use kit::input::money;
use kit::paging::{finish_page, Page};
use kit::Error;
use rust_decimal::Decimal;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{commit, handle, page_response, SharedState};
use crate::domain::access::{authorize, Action};
use crate::domain::{parse_id, text};
use crate::store::commerce as store;

pub struct CatalogHandlers(pub SharedState);

fn check_product(p: &mut Product, v: &mut Violations) {
    for (name, value, max) in [
        ("sku", &mut p.sku, 64),
        ("name", &mut p.name, 200),
        ("family", &mut p.family, 100),
        ("unit", &mut p.unit, 32),
    ] {
        v.check(text(&format!("product.{name}"), value, max));
    }
    if p.name.is_empty() {
        v.add("product.name", "is required");
    }
    if p.unit.is_empty() {
        p.unit = "each".into();
    }
    let tax = p.tax_percent.trim();
    match kit::input::plain_decimal(if tax.is_empty() { "0" } else { tax }) {
        Some(rate)
            if !rate.is_sign_negative() && rate <= Decimal::ONE_HUNDRED && rate.scale() <= 4 =>
        {
            p.tax_percent = rate.normalize().to_string();
        }
        _ => v.add(
            "product.tax_percent",
            "must be a percentage from 0 to 100 with at most 4 decimals",
        ),
    }
}

#[tonic::async_trait]
impl CatalogService for CatalogHandlers {
    async fn create_product(
        &self,
        request: Request<CreateProductRequest>,
    ) -> Result<Response<CreateProductResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateProductRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut product = request
                .product
                .ok_or_else(|| Error::invalid("product", "is required"))?;
            let mut v = Violations::new();
            check_product(&mut product, &mut v);
            if product.sku.is_empty() {
                v.add("product.sku", "is required");
            }
            v.into_result()?;
            product.active = true;
            let mut tx = self.0.begin(&caller).await?;
            let replayed = kit::idempotency::replayed(
                &mut tx,
                caller.tenant_id,
                "product",
                &request.request_id,
                &fingerprint,
            )
            .await?;
            if let Some(id) = replayed {
                let product = store::product(&mut tx, caller.tenant_id, id)
                    .await?
                    .ok_or_else(|| Error::not_found("product", id))?;
                return Ok(CreateProductResponse {
                    product: Some(product),
                });
            }
            let created =
                store::insert_product(&mut tx, caller.tenant_id, &product, &caller.subject)
                    .await
                    .map_err(|e| {
                        Error::from(e)
                            .exists_as(|| format!("a product with SKU {:?} exists", product.sku))
                    })?;
            kit::idempotency::remember(
                &mut tx,
                caller.tenant_id,
                "product",
                &request.request_id,
                &fingerprint,
                parse_id("product.id", &created.id)?,
            )
            .await?;
            commit(tx).await?;
            Ok(CreateProductResponse {
                product: Some(created),
            })
        })
        .await
    }

    async fn update_product(
        &self,
        request: Request<UpdateProductRequest>,
    ) -> Result<Response<UpdateProductResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let mut product = request
                .product
                .ok_or_else(|| Error::invalid("product", "is required"))?;
            let id = parse_id("product.id", &product.id)?;
            let mut v = Violations::new();
            check_product(&mut product, &mut v);
            v.into_result()?;
            let mut tx = self.0.begin(&caller).await?;
            let saved = store::update_product(&mut tx, caller.tenant_id, &product, &caller.subject)
                .await?
                .ok_or_else(|| Error::not_found("product", id))?;
            commit(tx).await?;
            Ok(UpdateProductResponse {
                product: Some(saved),
            })
        })
        .await
    }

    async fn list_products(
        &self,
        request: Request<ListProductsRequest>,
    ) -> Result<Response<ListProductsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows = store::list_products(
                &mut tx,
                caller.tenant_id,
                request.include_inactive,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (products, next) = finish_page(rows, page.size, |p: &Product| {
                Uuid::parse_str(&p.id).unwrap_or_default()
            });
            Ok(ListProductsResponse {
                products,
                page: page_response(next),
            })
        })
        .await
    }

    async fn create_price_book(
        &self,
        request: Request<CreatePriceBookRequest>,
    ) -> Result<Response<CreatePriceBookResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let fingerprint = kit::idempotency::fingerprint(&CreatePriceBookRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut book = request
                .price_book
                .ok_or_else(|| Error::invalid("price_book", "is required"))?;
            let mut v = Violations::new();
            v.check(text("price_book.name", &mut book.name, 100));
            if book.name.is_empty() {
                v.add("price_book.name", "is required");
            }
            book.currency = book.currency.trim().to_ascii_uppercase();
            if book.currency.len() != 3 || !book.currency.chars().all(|c| c.is_ascii_uppercase()) {
                v.add(
                    "price_book.currency",
                    "must be a three-letter ISO 4217 code such as EUR",
                );
            }
            v.into_result()?;
            let mut tx = self.0.begin(&caller).await?;
            let replayed = kit::idempotency::replayed(
                &mut tx,
                caller.tenant_id,
                "price_book",
                &request.request_id,
                &fingerprint,
            )
            .await?;
            if let Some(id) = replayed {
                let book = store::price_book(&mut tx, caller.tenant_id, Some(id))
                    .await?
                    .ok_or_else(|| Error::not_found("price book", id))?;
                return Ok(CreatePriceBookResponse {
                    price_book: Some(book),
                });
            }
            // The first book is the default.
            if store::price_book(&mut tx, caller.tenant_id, None)
                .await?
                .is_none()
            {
                book.is_default = true;
            }
            let created = store::insert_price_book(&mut tx, caller.tenant_id, &book).await?;
            kit::idempotency::remember(
                &mut tx,
                caller.tenant_id,
                "price_book",
                &request.request_id,
                &fingerprint,
                parse_id("price_book.id", &created.id)?,
            )
            .await?;
            commit(tx).await?;
            Ok(CreatePriceBookResponse {
                price_book: Some(created),
            })
        })
        .await
    }

    async fn list_price_books(
        &self,
        request: Request<ListPriceBooksRequest>,
    ) -> Result<Response<ListPriceBooksResponse>, Status> {
        handle(request, |caller, _| async move {
            authorize(&caller, Action::Read)?;
            let mut tx = self.0.begin(&caller).await?;
            Ok(ListPriceBooksResponse {
                price_books: store::price_books(&mut tx, caller.tenant_id).await?,
            })
        })
        .await
    }

    async fn set_prices(
        &self,
        request: Request<SetPricesRequest>,
    ) -> Result<Response<SetPricesResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let book_id = parse_id("price_book_id", &request.price_book_id)?;
            if request.entries.len() > 1000 {
                return Err(Error::invalid("entries", "at most 1,000 prices per call"));
            }
            let mut tx = self.0.begin(&caller).await?;
            let book = store::price_book(&mut tx, caller.tenant_id, Some(book_id))
                .await?
                .ok_or_else(|| Error::not_found("price book", book_id))?;
            let mut v = Violations::new();
            let mut prices = Vec::new();
            for (i, entry) in request.entries.iter().enumerate() {
                let product = v.check(crate::domain::required_id(
                    &format!("entries[{i}].product_id"),
                    &entry.product_id,
                ));
                let price = entry.list_price.clone().unwrap_or_default();
                let checked = money(
                    &format!("entries[{i}].list_price"),
                    &price.amount,
                    &price.currency,
                    &mut v,
                );
                if let Some((_, currency)) = &checked {
                    if *currency != book.currency {
                        v.add(
                            format!("entries[{i}].list_price.currency"),
                            format!("must be the book's currency {}", book.currency),
                        );
                    }
                }
                if let (Some(product), Some((amount, _))) = (product, checked) {
                    prices.push((i, product, amount));
                }
            }
            v.into_result()?;
            for (i, product, amount) in prices {
                if store::product(&mut tx, caller.tenant_id, product)
                    .await?
                    .is_none()
                {
                    return Err(Error::invalid(
                        format!("entries[{i}].product_id"),
                        "no such product",
                    ));
                }
                store::set_price(&mut tx, caller.tenant_id, book_id, product, amount).await?;
            }
            let entries = store::prices(&mut tx, caller.tenant_id, book_id).await?;
            commit(tx).await?;
            Ok(SetPricesResponse { entries })
        })
        .await
    }

    async fn list_prices(
        &self,
        request: Request<ListPricesRequest>,
    ) -> Result<Response<ListPricesResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let book_id = parse_id("price_book_id", &request.price_book_id)?;
            let mut tx = self.0.begin(&caller).await?;
            // An unknown book (or another tenant's) is not found, not empty.
            store::price_book(&mut tx, caller.tenant_id, Some(book_id))
                .await?
                .ok_or_else(|| Error::not_found("price book", book_id))?;
            Ok(ListPricesResponse {
                entries: store::prices(&mut tx, caller.tenant_id, book_id).await?,
            })
        })
        .await
    }
}
