//! A valid lead: trimmed text, a real e-mail, an E.164 phone, a territory.

use crm_proto::crm::sales::v1::{Lead, LeadSource, LeadStatus};
use kit::error::Violations;

use super::{optional_id, text};

/// Normalises `lead` in place and reports every bad field (`lead.<name>`).
pub fn normalize(lead: &mut Lead, violations: &mut Violations) {
    for (name, value, max) in [
        ("first_name", &mut lead.first_name, 100),
        ("last_name", &mut lead.last_name, 100),
        ("title", &mut lead.title, 200),
        ("company", &mut lead.company, 200),
        ("region", &mut lead.region, 100),
        ("industry", &mut lead.industry, 100),
    ] {
        violations.check(text(&format!("lead.{name}"), value, max));
    }
    if lead.last_name.is_empty() && lead.company.is_empty() && lead.email.trim().is_empty() {
        violations.add(
            "lead.last_name",
            "a lead needs a last name, a company or an e-mail",
        );
    }
    lead.email = lead.email.trim().to_lowercase();
    if !lead.email.is_empty() {
        let valid = lead.email.len() <= 254
            && lead
                .email
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
            && !lead.email.chars().any(char::is_whitespace);
        if !valid {
            violations.add("lead.email", "is not an e-mail address");
        }
    }
    lead.phone = lead
        .phone
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    if !lead.phone.is_empty() {
        let digits = lead.phone.strip_prefix('+').unwrap_or("");
        if !(8..=15).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
            violations.add("lead.phone", "must be in E.164 form, such as +4930123456");
        }
    }
    lead.company_domain = lead.company_domain.trim().to_lowercase();
    if !lead.company_domain.is_empty()
        && (!lead.company_domain.contains('.') || lead.company_domain.contains('/'))
    {
        violations.add(
            "lead.company_domain",
            "must be a domain such as example.com",
        );
    }
    lead.country = lead.country.trim().to_ascii_uppercase();
    if !lead.country.is_empty()
        && (lead.country.len() != 2 || !lead.country.chars().all(|c| c.is_ascii_uppercase()))
    {
        violations.add(
            "lead.country",
            "must be an ISO 3166-1 alpha-2 code such as DE",
        );
    }
    if lead.company_size < 0 {
        violations.add("lead.company_size", "must not be negative");
    }
    if LeadSource::try_from(lead.source).is_err() {
        violations.add("lead.source", "is not a known source");
    } else if lead.source == LeadSource::Unspecified as i32 {
        lead.source = LeadSource::Manual as i32;
    }
    for (name, value) in [
        ("owner_id", &lead.owner_id),
        ("team_id", &lead.team_id),
        ("campaign_id", &lead.campaign_id),
    ] {
        violations.check(optional_id(&format!("lead.{name}"), value));
    }
    match LeadStatus::try_from(lead.status) {
        Ok(LeadStatus::Unspecified) => lead.status = LeadStatus::New as i32,
        Ok(LeadStatus::Converted) => {
            violations.add("lead.status", "only a conversion makes a lead converted")
        }
        Ok(_) => {}
        Err(_) => violations.add("lead.status", "is not a known status"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_field_is_named() {
        let mut lead = Lead {
            email: "nope".into(),
            phone: "12".into(),
            country: "Germany".into(),
            company_size: -1,
            ..Default::default()
        };
        let mut violations = Violations::default();
        normalize(&mut lead, &mut violations);
        assert_eq!(
            violations.fields(),
            [
                "lead.email",
                "lead.phone",
                "lead.country",
                "lead.company_size"
            ]
        );
    }

    #[test]
    fn a_good_lead_is_tidied() {
        let mut lead = Lead {
            last_name: " Hopper ".into(),
            email: "Grace@Navy.Example".into(),
            phone: "+1 (202) 555-0100".into(),
            country: "us".into(),
            ..Default::default()
        };
        let mut violations = Violations::default();
        normalize(&mut lead, &mut violations);
        assert!(violations.is_empty(), "{violations:?}");
        assert_eq!(
            (
                lead.last_name.as_str(),
                lead.email.as_str(),
                lead.phone.as_str()
            ),
            ("Hopper", "grace@navy.example", "+12025550100")
        );
        assert_eq!(lead.status, LeadStatus::New as i32);
    }
}
