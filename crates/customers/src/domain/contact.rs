//! What a valid contact is. `normalize` rewrites a contact in place into its
//! canonical form and records every violation, named by request path.

use crm_proto::crm::customers::v1::{Address, Channel, Contact, LifecycleStage};
use kit::error::Violations;

use super::contact_point::{Email, PhoneE164};
use super::custom_fields::FieldCatalog;
use super::{optional_id, tags, text};

pub const MAX_EMAILS: usize = 20;
pub const MAX_PHONES: usize = 20;

/// Columns derived from a contact for lookups and search.
#[derive(Debug, Default, Clone)]
pub struct ContactKeys {
    pub email_keys: Vec<String>,
    pub phone_keys: Vec<String>,
    pub search_text: String,
    pub custom: serde_json::Value,
}

/// Normalises `contact` and refuses it with every violation found;
/// returns the derived keys.
pub fn checked(contact: &mut Contact, catalog: &FieldCatalog) -> kit::Result<ContactKeys> {
    let mut violations = Violations::new();
    let keys = normalize(contact, catalog, &mut violations);
    violations.into_result().map(|()| keys)
}

/// Normalises `contact` and checks it; returns the derived keys.
pub fn normalize(
    contact: &mut Contact,
    catalog: &FieldCatalog,
    violations: &mut Violations,
) -> ContactKeys {
    for (field, value, max) in [
        ("contact.first_name", &mut contact.first_name, 100),
        ("contact.middle_name", &mut contact.middle_name, 100),
        ("contact.last_name", &mut contact.last_name, 100),
        ("contact.title", &mut contact.title, 200),
        ("contact.source", &mut contact.source, 100),
    ] {
        violations.check(text(field, value, max));
    }

    let mut email_keys = Vec::new();
    let mut seen_primary = false;
    if contact.emails.len() > MAX_EMAILS {
        violations.add(
            "contact.emails",
            format!("at most {MAX_EMAILS} e-mail addresses"),
        );
    }
    contact.emails.retain(|e| !e.address.trim().is_empty());
    for (i, email) in contact.emails.iter_mut().enumerate() {
        match Email::parse(&email.address) {
            Ok(parsed) => email.address = parsed.as_str().to_owned(),
            Err(reason) => violations.add(format!("contact.emails[{i}].address"), reason),
        }
        email.label = email.label.trim().to_lowercase();
        if email.primary && seen_primary {
            violations.add(
                format!("contact.emails[{i}].primary"),
                "only one e-mail address can be primary",
            );
        }
        seen_primary |= email.primary;
    }
    dedup_by_key(&mut contact.emails, |e| e.address.clone());
    if !seen_primary {
        if let Some(first) = contact.emails.first_mut() {
            first.primary = true;
        }
    }
    email_keys.extend(contact.emails.iter().map(|e| e.address.clone()));

    let mut phone_keys = Vec::new();
    let mut seen_primary = false;
    if contact.phones.len() > MAX_PHONES {
        violations.add(
            "contact.phones",
            format!("at most {MAX_PHONES} phone numbers"),
        );
    }
    contact.phones.retain(|p| !p.number.trim().is_empty());
    for (i, phone) in contact.phones.iter_mut().enumerate() {
        match PhoneE164::parse(&phone.number) {
            Ok(parsed) => phone.number = parsed.as_str().to_owned(),
            Err(reason) => violations.add(format!("contact.phones[{i}].number"), reason),
        }
        phone.label = phone.label.trim().to_lowercase();
        if phone.primary && seen_primary {
            violations.add(
                format!("contact.phones[{i}].primary"),
                "only one phone number can be primary",
            );
        }
        seen_primary |= phone.primary;
    }
    dedup_by_key(&mut contact.phones, |p| p.number.clone());
    if !seen_primary {
        if let Some(first) = contact.phones.first_mut() {
            first.primary = true;
        }
    }
    phone_keys.extend(contact.phones.iter().map(|p| p.number.clone()));

    for (i, handle) in contact.handles.iter_mut().enumerate() {
        handle.network = handle.network.trim().to_lowercase();
        handle.handle = handle.handle.trim().to_owned();
        if handle.network.is_empty()
            || handle.handle.is_empty()
            || handle.handle.chars().count() > 100
        {
            violations.add(
                format!("contact.handles[{i}]"),
                "needs a network and a handle of at most 100 characters",
            );
        }
    }

    if contact.first_name.is_empty()
        && contact.last_name.is_empty()
        && email_keys.is_empty()
        && phone_keys.is_empty()
    {
        violations.add(
            "contact.last_name",
            "a contact needs a name, an e-mail address or a phone number",
        );
    }

    if !contact.birthday.is_empty() {
        match chrono::NaiveDate::parse_from_str(contact.birthday.trim(), "%Y-%m-%d") {
            Ok(date) if date <= chrono::Utc::now().date_naive() => {
                contact.birthday = date.to_string()
            }
            Ok(_) => violations.add("contact.birthday", "is in the future"),
            Err(_) => violations.add("contact.birthday", "must be a date as YYYY-MM-DD"),
        }
    }
    contact.language = contact.language.trim().to_owned();
    if contact.language.len() > 35
        || !contact
            .language
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        violations.add(
            "contact.language",
            "must be a BCP 47 language tag such as \"en\" or \"zh-CN\"",
        );
    }
    if let Some(address) = contact.address.as_mut() {
        normalize_address("contact.address", address, violations);
    }
    if Channel::try_from(contact.preferred_channel).is_err() {
        violations.add("contact.preferred_channel", "is not a known channel");
    }
    if LifecycleStage::try_from(contact.lifecycle_stage).is_err() {
        violations.add("contact.lifecycle_stage", "is not a known lifecycle stage");
    }
    for (field, value) in [
        ("contact.account_id", &contact.account_id),
        ("contact.owner_id", &contact.owner_id),
        ("contact.team_id", &contact.team_id),
    ] {
        violations.check(optional_id(field, value));
    }
    violations.check(tags::normalize("contact.tags", &mut contact.tags));
    let custom = catalog.check(&contact.custom_fields, "contact.custom_fields", violations);

    let search_text = [
        contact.first_name.as_str(),
        contact.middle_name.as_str(),
        contact.last_name.as_str(),
    ]
    .into_iter()
    .filter(|s| !s.is_empty())
    .chain(email_keys.iter().map(String::as_str))
    .chain(phone_keys.iter().map(String::as_str))
    .collect::<Vec<_>>()
    .join(" ")
    .to_lowercase();
    ContactKeys {
        email_keys,
        phone_keys,
        search_text,
        custom: serde_json::Value::Object(custom),
    }
}

/// Trims an address and checks its country code.
pub fn normalize_address(path: &str, address: &mut Address, violations: &mut Violations) {
    for (name, value) in [
        ("street", &mut address.street),
        ("city", &mut address.city),
        ("region", &mut address.region),
        ("postal_code", &mut address.postal_code),
    ] {
        violations.check(text(&format!("{path}.{name}"), value, 200));
    }
    address.country = address.country.trim().to_ascii_uppercase();
    let country_ok = address.country.is_empty()
        || (address.country.len() == 2 && address.country.chars().all(|c| c.is_ascii_uppercase()));
    if !country_ok {
        violations.add(
            format!("{path}.country"),
            "must be an ISO 3166-1 alpha-2 code such as \"DE\"",
        );
    }
}

fn dedup_by_key<T, K: PartialEq>(items: &mut Vec<T>, key: impl Fn(&T) -> K) {
    let mut kept: Vec<K> = Vec::new();
    items.retain(|item| {
        let k = key(item);
        if kept.contains(&k) {
            false
        } else {
            kept.push(k);
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_proto::crm::customers::v1::{Email as EmailMsg, Phone};

    #[test]
    fn normalises_contact_points_and_picks_a_primary() {
        let mut contact = Contact {
            first_name: "  Ada ".into(),
            emails: vec![
                EmailMsg {
                    address: "ADA@Example.com".into(),
                    ..Default::default()
                },
                EmailMsg {
                    address: "ada@example.com".into(),
                    ..Default::default()
                },
            ],
            phones: vec![Phone {
                number: "+44 20 7946 0958".into(),
                ..Default::default()
            }],
            tags: vec!["VIP".into(), "vip ".into()],
            ..Default::default()
        };
        let mut violations = Violations::new();
        let keys = normalize(&mut contact, &FieldCatalog::default(), &mut violations);
        assert!(violations.is_empty(), "{violations:?}");
        assert_eq!(contact.first_name, "Ada");
        assert_eq!(keys.email_keys, ["ada@example.com"]);
        assert!(contact.emails[0].primary);
        assert_eq!(keys.phone_keys, ["+442079460958"]);
        assert_eq!(contact.tags, ["vip"]);
    }

    #[test]
    fn reports_each_bad_field() {
        let mut contact = Contact {
            emails: vec![EmailMsg {
                address: "not-an-email".into(),
                ..Default::default()
            }],
            phones: vec![Phone {
                number: "12345".into(),
                ..Default::default()
            }],
            birthday: "2990-01-01".into(),
            owner_id: "nope".into(),
            ..Default::default()
        };
        let mut violations = Violations::new();
        normalize(&mut contact, &FieldCatalog::default(), &mut violations);
        let Err(kit::Error::InvalidArgument(list)) = violations.into_result() else {
            panic!("accepted")
        };
        let fields: Vec<_> = list.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "contact.emails[0].address",
                "contact.phones[0].number",
                "contact.birthday",
                "contact.owner_id"
            ]
        );
    }
}
