//! Territory matching of routing rules. The first rule (in order) whose
//! non-empty fields all match the lead wins; comparisons ignore case.

use crm_proto::crm::sales::v1::{Lead, TerritoryMatch};

pub fn matches(rule: &TerritoryMatch, lead: &Lead) -> bool {
    let same = |want: &str, have: &str| want.is_empty() || want.eq_ignore_ascii_case(have.trim());
    same(&rule.country, &lead.country)
        && same(&rule.region, &lead.region)
        && same(&rule.industry, &lead.industry)
        && (rule.min_size == 0 || lead.company_size >= rule.min_size)
        && (rule.max_size == 0 || lead.company_size <= rule.max_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_fields_match_anything_and_sizes_are_inclusive() {
        let lead = Lead {
            country: "DE".into(),
            industry: "Software".into(),
            company_size: 500,
            ..Default::default()
        };
        let rule = |country: &str, min: i32, max: i32| TerritoryMatch {
            country: country.into(),
            industry: "software".into(),
            min_size: min,
            max_size: max,
            ..Default::default()
        };
        assert!(matches(&rule("de", 0, 0), &lead));
        assert!(matches(&rule("", 500, 500), &lead));
        assert!(!matches(&rule("FR", 0, 0), &lead));
        assert!(!matches(&rule("DE", 501, 0), &lead));
        assert!(!matches(&rule("DE", 0, 499), &lead));
    }
}
