//! The editable fields of contacts, accounts and activities (partial
//! updates go through `kit::field_mask!`).

use crm_proto::crm::customers::v1::{Account, Activity, Contact};

kit::field_mask!(
    apply_contact_mask,
    changed_contact_fields,
    Contact,
    "contact",
    [
        first_name,
        middle_name,
        last_name,
        title,
        account_id,
        birthday,
        address,
        emails,
        phones,
        handles,
        preferred_channel,
        language,
        lifecycle_stage,
        owner_id,
        team_id,
        tags,
        custom_fields,
        source,
    ],
    map custom_fields
);

kit::field_mask!(
    apply_account_mask,
    changed_account_fields,
    Account,
    "account",
    [
        name,
        domain,
        industry,
        size_band,
        annual_revenue,
        address,
        phone,
        website,
        parent_account_id,
        lifecycle_stage,
        credit_rating,
        owner_id,
        team_id,
        tags,
        custom_fields,
        source,
    ],
    map custom_fields
);

// A task's completion is not editable here (it goes through CompleteTask):
// the caller puts the stored `completed_at` back after applying the mask.
kit::field_mask!(
    apply_activity_mask,
    changed_activity_fields,
    Activity,
    "activity",
    [
        subject,
        body,
        related,
        occurred_at,
        ends_at,
        direction,
        duration_seconds,
        outcome,
        attendees,
        task,
    ]
);
