//! Lead-capture forms: definitions checked, submissions checked field by
//! field, stored with the consent wording, published, erased with the
//! person; the public RPCs are the gateway's alone.

use std::collections::HashMap;
use std::time::Duration;

use crm_proto::crm::customers::v1::Channel;
use crm_proto::crm::marketing::v1::*;
use crm_proto::events::DomainEvent;
use kit::auth::{Role, Visibility};
use tonic::Code;
use uuid::Uuid;

use crate::harness::*;

fn field(name: &str, target: FormFieldTarget, required: bool) -> FormField {
    FormField {
        name: name.into(),
        label: format!("Your {name}"),
        target: target as i32,
        required,
    }
}

fn demo_form(campaign_id: &str) -> Form {
    Form {
        name: "Demo request".into(),
        campaign_id: campaign_id.into(),
        fields: vec![
            field("email", FormFieldTarget::Email, true),
            field("name", FormFieldTarget::LastName, false),
            field("company", FormFieldTarget::Company, false),
            field("country", FormFieldTarget::Country, false),
        ],
        consent: Some(FormConsent {
            channel: Channel::Email as i32,
            wording: "Yes, e-mail me product news.".into(),
            required: false,
        }),
        ..Default::default()
    }
}

fn values(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn submissions(client: &mut Client, form: &str) -> Vec<FormSubmission> {
    client
        .forms
        .list_form_submissions(ListFormSubmissionsRequest {
            form_id: form.into(),
            page: None,
        })
        .await
        .expect("submissions")
        .into_inner()
        .submissions
}

#[tokio::test]
async fn a_form_takes_checked_submissions_and_forgets_erased_people() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let mut marketer = app.marketer();
    let campaign = create_campaign(&mut admin, named("Spring webinar")).await;

    // Definitions are checked, each problem named.
    let mut bad = demo_form("not-an-id");
    bad.fields
        .push(field("email", FormFieldTarget::Phone, false));
    bad.fields
        .push(field("website", FormFieldTarget::Title, false));
    bad.redirect_url = "javascript:alert(1)".into();
    bad.consent = Some(FormConsent::default());
    let refused = marketer
        .forms
        .create_form(CreateFormRequest {
            form: Some(bad),
            request_id: String::new(),
        })
        .await
        .expect_err("bad form");
    let mut fields = violated_fields(&refused);
    fields.sort();
    assert_eq!(
        fields,
        [
            "form.campaign_id",
            "form.consent.channel",
            "form.consent.wording",
            "form.fields[4].name",
            "form.fields[5].name",
            "form.redirect_url",
        ]
    );
    // Another tenant's campaign is not one of this tenant's.
    let mut stranger = app.stranger();
    let theirs = create_campaign(&mut stranger, named("Theirs")).await;
    let refused = marketer
        .forms
        .create_form(CreateFormRequest {
            form: Some(demo_form(&theirs.id)),
            request_id: String::new(),
        })
        .await
        .expect_err("another tenant's campaign");
    assert_eq!(violated_fields(&refused), ["form.campaign_id"]);

    let create = CreateFormRequest {
        form: Some(demo_form(&campaign.id)),
        request_id: "form-1".into(),
    };
    let form = marketer
        .forms
        .create_form(create.clone())
        .await
        .expect("form")
        .into_inner()
        .form
        .expect("form");
    let again = marketer.forms.create_form(create).await.expect("retry");
    assert_eq!(again.into_inner().form.map(|f| f.id), Some(form.id.clone()));
    assert_eq!(form.status, FormStatus::Active as i32);
    assert_eq!(form.honeypot_field, "website");
    let key = form.public_key.clone();
    assert!(key.starts_with(&format!("{}.", app.tenant)));

    // A rep reads forms but neither changes them nor reads what people sent.
    let mut rep = app.client(&[Role::SalesRep], Visibility::Own, &[]);
    rep.forms
        .get_form(GetFormRequest {
            id: form.id.clone(),
        })
        .await
        .expect("a rep reads the form");
    let denied = rep
        .forms
        .create_form(CreateFormRequest {
            form: Some(demo_form("")),
            request_id: String::new(),
        })
        .await
        .expect_err("reps make no forms");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = rep
        .forms
        .list_form_submissions(ListFormSubmissionsRequest {
            form_id: form.id.clone(),
            page: None,
        })
        .await
        .expect_err("reps read no submissions");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let hidden = stranger
        .forms
        .get_form(GetFormRequest {
            id: form.id.clone(),
        })
        .await
        .expect_err("another tenant's form");
    assert_eq!(hidden.code(), Code::NotFound);

    // The public RPCs take service callers only.
    let submit = |pairs: &[(&str, &str)]| SubmitFormRequest {
        public_key: key.clone(),
        values: values(pairs),
        page_url: "https://acme.example/demo".into(),
    };
    let denied = admin
        .forms
        .submit_form(submit(&[("email", "ada@example.com")]))
        .await
        .expect_err("users do not submit through the service");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut gateway = app.client(&[Role::Service], Visibility::Tenant, &[]);
    let described = gateway
        .forms
        .describe_form(DescribeFormRequest {
            public_key: key.clone(),
        })
        .await
        .expect("described")
        .into_inner();
    assert_eq!(described.fields.len(), 4);
    // A service of another tenant does not find this tenant's form.
    let mut other_gateway = app.client_in(
        Uuid::now_v7(),
        Uuid::now_v7(),
        &[Role::Service],
        Visibility::Tenant,
        &[],
    );
    let missing = other_gateway
        .forms
        .submit_form(submit(&[("email", "ada@example.com")]))
        .await
        .expect_err("another tenant's key");
    assert_eq!(missing.code(), Code::NotFound);

    let refused = gateway
        .forms
        .submit_form(submit(&[
            ("email", "not an address"),
            ("country", "Germany"),
        ]))
        .await
        .expect_err("bad values");
    let mut fields = violated_fields(&refused);
    fields.sort();
    assert_eq!(fields, ["country", "email"]);
    let dropped = gateway
        .forms
        .submit_form(submit(&[
            ("email", "bot@spam.example"),
            ("website", "http://x"),
        ]))
        .await
        .expect("a honeypot post is answered")
        .into_inner();
    assert!(dropped.submission_id.is_empty());
    let accepted = gateway
        .forms
        .submit_form(submit(&[
            ("email", " Ada@Example.com "),
            ("name", "Lovelace"),
            ("country", "gb"),
            ("consent", "on"),
            ("unknown", "ignored"),
        ]))
        .await
        .expect("accepted")
        .into_inner();
    assert_eq!(accepted.thank_you_message, "Thank you.");
    let event = app
        .event(
            "marketing",
            <FormSubmitted as DomainEvent>::TYPE,
            &accepted.submission_id,
        )
        .await;
    let published: FormSubmitted = kit::events::decode_data(&event).expect("payload");
    let lead = published
        .submission
        .as_ref()
        .and_then(|s| s.lead.clone())
        .expect("lead fields");
    assert_eq!(
        (lead.email.as_str(), lead.country.as_str()),
        ("ada@example.com", "GB")
    );

    let stored = submissions(&mut marketer, &form.id).await;
    assert_eq!(stored.len(), 1, "the honeypot post was not kept");
    assert_eq!(stored[0].id, accepted.submission_id);
    assert!(stored[0].consent_given);
    assert_eq!(stored[0].consent_wording, "Yes, e-mail me product news.");
    assert_eq!(stored[0].campaign_id, campaign.id);
    assert_eq!(stored[0].page_url, "https://acme.example/demo");

    // Archived: the public address answers "not found".
    let archived = marketer
        .forms
        .set_form_status(SetFormStatusRequest {
            id: form.id.clone(),
            status: FormStatus::Archived as i32,
        })
        .await
        .expect("archived")
        .into_inner()
        .form
        .expect("form");
    assert_eq!(archived.submission_count, 1);
    let gone = gateway
        .forms
        .submit_form(submit(&[("email", "late@example.com")]))
        .await
        .expect_err("archived");
    assert_eq!(gone.code(), Code::NotFound);

    // Erasing the person in customers removes what they submitted.
    let contact = create_contact(&mut admin, "Lovelace", "ada@example.com").await;
    app.erase(&contact.id).await;
    testkit::eventually(
        "the erased person's submission gone",
        Duration::from_secs(30),
        || {
            let mut marketer = app.marketer();
            let form = form.id.clone();
            async move {
                submissions(&mut marketer, &form)
                    .await
                    .is_empty()
                    .then_some(())
            }
        },
    )
    .await;
}
