//! FormService: lead-capture forms, and the submissions the gateway's
//! public route passes on (checked here, stored, published as
//! `form.submitted` for the sales service to make a lead of).

use std::collections::HashMap;

use base64::Engine as _;
use crm_proto::crm::marketing::v1::form_service_server::FormService;
use crm_proto::crm::marketing::v1::*;
use kit::error::Violations;
use kit::paging::{finish_page, Page};
use kit::Error;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{commit, handle, page_response, SharedState};
use crate::domain::access::{authorize, Action};
use crate::domain::{form, optional_id, parse_id, text};
use crate::store::{campaigns, forms as store};

pub struct FormHandlers(pub SharedState);

const THANKS: &str = "Thank you.";

/// `<tenant>.<128 random bits>`: the gateway reads the tenant from it.
fn public_key(tenant: Uuid) -> String {
    let random = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes());
    format!("{tenant}.{random}")
}

fn not_found() -> Error {
    Error::not_found("form", "at this address")
}

#[tonic::async_trait]
impl FormService for FormHandlers {
    async fn create_form(
        &self,
        request: Request<CreateFormRequest>,
    ) -> Result<Response<CreateFormResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateFormRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut f = request
                .form
                .ok_or_else(|| Error::invalid("form", "is required"))?;
            let mut v = Violations::new();
            form::check(&mut f, &mut v);
            let campaign = v
                .check(optional_id("form.campaign_id", &f.campaign_id))
                .flatten();
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let replayed = kit::idempotency::replayed(
                &mut tx,
                tenant,
                "form",
                &request.request_id,
                &fingerprint,
            )
            .await?;
            if let Some(existing) = replayed {
                let f = store::find(&mut tx, tenant, existing)
                    .await?
                    .ok_or_else(|| Error::not_found("form", existing))?;
                return Ok(CreateFormResponse { form: Some(f) });
            }
            if let Some(campaign) = campaign {
                if !campaigns::exists(&mut tx, tenant, campaign).await? {
                    return Err(Error::invalid(
                        "form.campaign_id",
                        "is not a campaign of this tenant",
                    ));
                }
            }
            let id = Uuid::now_v7();
            let saved = store::insert(
                &mut tx,
                tenant,
                id,
                &f,
                campaign,
                &public_key(tenant),
                &caller.subject,
            )
            .await?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                "form",
                &request.request_id,
                &fingerprint,
                id,
            )
            .await?;
            commit(tx).await?;
            Ok(CreateFormResponse { form: Some(saved) })
        })
        .await
    }

    async fn get_form(
        &self,
        request: Request<GetFormRequest>,
    ) -> Result<Response<GetFormResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let f = store::find(&mut tx, caller.tenant_id, id)
                .await?
                .ok_or_else(|| Error::not_found("form", id))?;
            Ok(GetFormResponse { form: Some(f) })
        })
        .await
    }

    async fn list_forms(
        &self,
        request: Request<ListFormsRequest>,
    ) -> Result<Response<ListFormsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows =
                store::list(&mut tx, caller.tenant_id, page.after, page.fetch_limit()).await?;
            let (forms, next) = finish_page(rows, page.size, |f: &Form| {
                Uuid::parse_str(&f.id).unwrap_or_default()
            });
            Ok(ListFormsResponse {
                forms,
                page: page_response(next),
            })
        })
        .await
    }

    async fn set_form_status(
        &self,
        request: Request<SetFormStatusRequest>,
    ) -> Result<Response<SetFormStatusResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let id = parse_id("id", &request.id)?;
            let status = match FormStatus::try_from(request.status) {
                Ok(status @ (FormStatus::Active | FormStatus::Archived)) => status,
                _ => {
                    return Err(Error::invalid(
                        "status",
                        "must be FORM_STATUS_ACTIVE or FORM_STATUS_ARCHIVED",
                    ))
                }
            };
            let mut tx = self.0.begin(&caller).await?;
            let f = store::set_status(&mut tx, caller.tenant_id, id, status, &caller.subject)
                .await?
                .ok_or_else(|| Error::not_found("form", id))?;
            commit(tx).await?;
            Ok(SetFormStatusResponse { form: Some(f) })
        })
        .await
    }

    async fn list_form_submissions(
        &self,
        request: Request<ListFormSubmissionsRequest>,
    ) -> Result<Response<ListFormSubmissionsResponse>, Status> {
        handle(request, |caller, request| async move {
            // People's answers: those who run campaigns read them.
            authorize(&caller, Action::Write)?;
            let form_id = parse_id("form_id", &request.form_id)?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            if store::find(&mut tx, tenant, form_id).await?.is_none() {
                return Err(Error::not_found("form", form_id));
            }
            let rows =
                store::list_submissions(&mut tx, tenant, form_id, page.after, page.fetch_limit())
                    .await?;
            let (submissions, next) = finish_page(rows, page.size, |s: &FormSubmission| {
                Uuid::parse_str(&s.id).unwrap_or_default()
            });
            Ok(ListFormSubmissionsResponse {
                submissions,
                page: page_response(next),
            })
        })
        .await
    }

    async fn describe_form(
        &self,
        request: Request<DescribeFormRequest>,
    ) -> Result<Response<DescribeFormResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Track)?;
            let mut tx = self.0.begin(&caller).await?;
            let f = store::active_by_key(&mut tx, caller.tenant_id, &request.public_key)
                .await?
                .ok_or_else(not_found)?;
            Ok(DescribeFormResponse {
                name: f.name,
                fields: f.fields,
                consent: f.consent,
                honeypot_field: f.honeypot_field,
            })
        })
        .await
    }

    async fn submit_form(
        &self,
        request: Request<SubmitFormRequest>,
    ) -> Result<Response<SubmitFormResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Track)?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let f = store::active_by_key(&mut tx, tenant, &request.public_key)
                .await?
                .ok_or_else(not_found)?;
            let answer = |submission_id: String| SubmitFormResponse {
                submission_id,
                thank_you_message: if f.thank_you_message.is_empty() {
                    THANKS.into()
                } else {
                    f.thank_you_message.clone()
                },
                redirect_url: f.redirect_url.clone(),
            };
            let values: HashMap<String, String> = request.values.into_iter().collect();
            if form::is_spam(&f, &values) {
                return Ok(answer(String::new()));
            }
            let mut v = Violations::new();
            let (lead, consent_given) = form::submission(&f, &values, &mut v);
            v.into_result()?;
            // The page is what the browser said; one that is not a plain
            // web address is not kept.
            let mut page_url = request.page_url;
            if text("page_url", &mut page_url, 2000).is_err()
                || !crate::domain::is_web_url(&page_url)
            {
                page_url.clear();
            }
            let hashes: Vec<String> = [&lead.email, &lead.phone]
                .into_iter()
                .filter(|point| !point.is_empty())
                .map(|point| kit::events::contact_point_hash(tenant, point))
                .collect();
            let id = Uuid::now_v7();
            let consent = f.consent.clone().unwrap_or_default();
            let mut submission = FormSubmission {
                id: id.to_string(),
                form_id: f.id.clone(),
                campaign_id: f.campaign_id.clone(),
                lead: Some(lead),
                consent_given,
                consent_channel: consent.channel,
                consent_wording: consent.wording,
                page_url,
                submitted_at: None,
            };
            let form_id = parse_id("form", &f.id)?;
            let at = store::insert_submission(&mut tx, tenant, id, form_id, &submission, &hashes)
                .await?;
            submission.submitted_at = Some(kit::time::to_timestamp(at));
            let event = FormSubmitted {
                submission: Some(submission),
            };
            self.0
                .outbox
                .enqueue(&mut tx, &caller, id, 1, &event)
                .await?;
            commit(tx).await?;
            Ok(answer(id.to_string()))
        })
        .await
    }
}
