//! What a valid account is; `normalize` rewrites it into canonical form.

use crm_proto::crm::customers::v1::{Account, LifecycleStage, SizeBand};
use kit::error::Violations;
use rust_decimal::Decimal;

use super::contact::normalize_address;
use super::contact_point::{normalize_domain, PhoneE164};
use super::custom_fields::FieldCatalog;
use super::{optional_id, tags, text};

/// Columns derived from an account.
#[derive(Debug, Default, Clone)]
pub struct AccountKeys {
    pub revenue: Option<(Decimal, String)>,
    pub search_text: String,
    pub custom: serde_json::Value,
}

/// Normalises `account` and refuses it with every violation found;
/// returns the derived keys.
pub fn checked(account: &mut Account, catalog: &FieldCatalog) -> kit::Result<AccountKeys> {
    let mut violations = Violations::new();
    let keys = normalize(account, catalog, &mut violations);
    violations.into_result().map(|()| keys)
}

pub fn normalize(
    account: &mut Account,
    catalog: &FieldCatalog,
    violations: &mut Violations,
) -> AccountKeys {
    for (field, value, max) in [
        ("account.name", &mut account.name, 200),
        ("account.industry", &mut account.industry, 100),
        ("account.credit_rating", &mut account.credit_rating, 20),
        ("account.source", &mut account.source, 100),
        ("account.website", &mut account.website, 500),
    ] {
        violations.check(text(field, value, max));
    }
    if account.name.is_empty() {
        violations.add("account.name", "is required");
    }
    match normalize_domain(&account.domain) {
        Ok(domain) => account.domain = domain,
        Err(reason) => violations.add("account.domain", reason),
    }
    let website_ok = account.website.is_empty()
        || account.website.starts_with("http://")
        || account.website.starts_with("https://");
    if !website_ok {
        violations.add("account.website", "must be an http(s):// URL");
    }
    if account.domain.is_empty() && !account.website.is_empty() {
        account.domain = normalize_domain(&account.website).unwrap_or_default();
    }
    if !account.phone.trim().is_empty() {
        match PhoneE164::parse(&account.phone) {
            Ok(phone) => account.phone = phone.as_str().to_owned(),
            Err(reason) => violations.add("account.phone", reason),
        }
    } else {
        account.phone.clear();
    }
    let revenue = match account.annual_revenue.as_mut() {
        None => None,
        Some(money) if money.amount.trim().is_empty() => {
            account.annual_revenue = None;
            None
        }
        Some(money) => {
            money.currency = money.currency.trim().to_ascii_uppercase();
            let currency_ok =
                money.currency.len() == 3 && money.currency.chars().all(|c| c.is_ascii_uppercase());
            if !currency_ok {
                violations.add(
                    "account.annual_revenue.currency",
                    "must be an ISO 4217 code such as \"EUR\"",
                );
            }
            match super::plain_decimal(money.amount.trim()).ok_or(()) {
                Ok(amount) if amount.is_sign_negative() => {
                    violations.add("account.annual_revenue.amount", "must not be negative");
                    None
                }
                Ok(amount) if amount.scale() > 10 => {
                    violations.add(
                        "account.annual_revenue.amount",
                        "has more than 10 decimal places",
                    );
                    None
                }
                Ok(amount) => {
                    money.amount = amount.normalize().to_string();
                    currency_ok.then(|| (amount, money.currency.clone()))
                }
                Err(_) => {
                    violations.add(
                        "account.annual_revenue.amount",
                        "must be a decimal string such as \"1250000.00\"",
                    );
                    None
                }
            }
        }
    };
    if let Some(address) = account.address.as_mut() {
        normalize_address("account.address", address, violations);
    }
    if SizeBand::try_from(account.size_band).is_err() {
        violations.add("account.size_band", "is not a known size band");
    }
    if LifecycleStage::try_from(account.lifecycle_stage).is_err() {
        violations.add("account.lifecycle_stage", "is not a known lifecycle stage");
    }
    for (field, value) in [
        ("account.parent_account_id", &account.parent_account_id),
        ("account.owner_id", &account.owner_id),
        ("account.team_id", &account.team_id),
    ] {
        violations.check(optional_id(field, value));
    }
    if !account.id.is_empty() && account.parent_account_id == account.id {
        violations.add(
            "account.parent_account_id",
            "an account cannot be its own parent",
        );
    }
    violations.check(tags::normalize("account.tags", &mut account.tags));
    let custom = catalog.check(&account.custom_fields, "account.custom_fields", violations);
    let search_text = format!("{} {}", account.name, account.domain)
        .trim()
        .to_lowercase();
    AccountKeys {
        revenue,
        search_text,
        custom: serde_json::Value::Object(custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_proto::crm::common::v1::Money;

    #[test]
    fn revenue_is_exact_and_currency_checked() {
        let mut account = Account {
            name: "Analytical Engines".into(),
            website: "https://www.engines.example/".into(),
            annual_revenue: Some(Money {
                amount: "1250000.10".into(),
                currency: "eur".into(),
            }),
            ..Default::default()
        };
        let mut violations = Violations::new();
        let keys = normalize(&mut account, &FieldCatalog::default(), &mut violations);
        assert!(violations.is_empty(), "{violations:?}");
        assert_eq!(account.domain, "engines.example");
        assert_eq!(
            keys.revenue,
            Some((Decimal::new(125000010, 2), "EUR".into()))
        );

        let mut bad = Account {
            name: String::new(),
            annual_revenue: Some(Money {
                amount: "1e9".into(),
                currency: "euro".into(),
            }),
            ..Default::default()
        };
        let mut violations = Violations::new();
        normalize(&mut bad, &FieldCatalog::default(), &mut violations);
        let Err(kit::Error::InvalidArgument(list)) = violations.into_result() else {
            panic!("accepted")
        };
        let fields: Vec<_> = list.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "account.name",
                "account.annual_revenue.currency",
                "account.annual_revenue.amount"
            ]
        );
    }
}
