//! Field masks of partial updates: which fields of the request replace the
//! stored record's, and which fields a change touched.

use crm_proto::crm::customers::v1::{Account, Activity, Contact};
use kit::Error;

macro_rules! masked_fields {
    ($name:ident, $changed:ident, $ty:ty, [$($field:ident),* $(,)?]) => {
        /// Copies the masked fields of `source` onto `target`; an empty mask
        /// copies every writable field. `custom_fields.<key>` sets one key.
        pub fn $name(target: &mut $ty, source: $ty, paths: &[String], path_prefix: &str) -> Result<(), Error> {
            let all: Vec<String>;
            let paths = if paths.is_empty() {
                all = [$(stringify!($field)),*].iter().map(|s| s.to_string()).collect();
                &all
            } else {
                paths
            };
            let mut source = source;
            for (i, path) in paths.iter().enumerate() {
                match path.as_str() {
                    $(stringify!($field) => target.$field = std::mem::take(&mut source.$field),)*
                    other => match other.strip_prefix("custom_fields.") {
                        Some(key) => match source.custom_fields.remove(key) {
                            Some(value) => { target.custom_fields.insert(key.to_owned(), value); }
                            None => { target.custom_fields.remove(key); }
                        },
                        None => return Err(Error::invalid(
                            format!("{path_prefix}.paths[{i}]"),
                            format!("{other:?} is not a writable field"),
                        )),
                    },
                }
            }
            Ok(())
        }

        /// Names of the fields that differ between two versions.
        pub fn $changed(before: &$ty, after: &$ty) -> Vec<String> {
            let mut changed = Vec::new();
            $(if before.$field != after.$field { changed.push(stringify!($field).to_owned()); })*
            changed
        }
    };
}

masked_fields!(
    apply_contact_mask,
    changed_contact_fields,
    Contact,
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
    ]
);

masked_fields!(
    apply_account_mask,
    changed_account_fields,
    Account,
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
    ]
);

/// Activities have no custom fields; same rules otherwise.
pub fn apply_activity_mask(
    target: &mut Activity,
    source: Activity,
    paths: &[String],
) -> Result<(), Error> {
    const EDITABLE: &[&str] = &[
        "subject",
        "body",
        "related",
        "occurred_at",
        "ends_at",
        "direction",
        "duration_seconds",
        "outcome",
        "attendees",
        "task",
    ];
    let all: Vec<String>;
    let paths = if paths.is_empty() {
        all = EDITABLE.iter().map(|s| s.to_string()).collect();
        &all
    } else {
        paths
    };
    let mut source = source;
    for (i, path) in paths.iter().enumerate() {
        match path.as_str() {
            "subject" => target.subject = std::mem::take(&mut source.subject),
            "body" => target.body = std::mem::take(&mut source.body),
            "related" => target.related = std::mem::take(&mut source.related),
            "occurred_at" => target.occurred_at = source.occurred_at.take(),
            "ends_at" => target.ends_at = source.ends_at.take(),
            "direction" => target.direction = source.direction,
            "duration_seconds" => target.duration_seconds = source.duration_seconds,
            "outcome" => target.outcome = std::mem::take(&mut source.outcome),
            "attendees" => target.attendees = std::mem::take(&mut source.attendees),
            "task" => {
                let completed = target.task.as_ref().and_then(|t| t.completed_at);
                target.task = source.task.take().map(|mut task| {
                    task.completed_at = completed; // completion goes through CompleteTask
                    task
                });
            }
            other => {
                return Err(Error::invalid(
                    format!("update_mask.paths[{i}]"),
                    format!("{other:?} is not an editable activity field"),
                ))
            }
        }
    }
    Ok(())
}

/// Names of the activity fields that differ between two versions.
pub fn changed_activity_fields(before: &Activity, after: &Activity) -> Vec<String> {
    let mut changed = Vec::new();
    let mut check = |same: bool, name: &str| {
        if !same {
            changed.push(name.to_owned());
        }
    };
    check(before.subject == after.subject, "subject");
    check(before.body == after.body, "body");
    check(before.related == after.related, "related");
    check(before.occurred_at == after.occurred_at, "occurred_at");
    check(before.ends_at == after.ends_at, "ends_at");
    check(before.direction == after.direction, "direction");
    check(
        before.duration_seconds == after.duration_seconds,
        "duration_seconds",
    );
    check(before.outcome == after.outcome, "outcome");
    check(before.attendees == after.attendees, "attendees");
    check(before.task == after.task, "task");
    changed
}
