//! Lead scores: points for attributes plus points for engagements that
//! halve every `half_life_days` (no decay when 0).

use chrono::{DateTime, Utc};
use crm_proto::crm::sales::v1::{scoring_rule::Condition, Lead, LeadSource, ScoringSettings};
use kit::error::Violations;

/// Engagement kinds that earn points.
pub const ENGAGEMENTS: [&str; 3] = ["email_clicked", "form_submitted", "meeting_logged"];

/// Lead fields an attribute rule may test.
const FIELDS: [&str; 6] = [
    "title",
    "industry",
    "country",
    "region",
    "source",
    "company_size_min",
];

pub fn check(settings: &ScoringSettings, violations: &mut Violations) {
    if settings.half_life_days < 0 {
        violations.add("settings.half_life_days", "must not be negative");
    }
    for (i, rule) in settings.rules.iter().enumerate() {
        let at = format!("settings.rules[{i}]");
        match &rule.condition {
            None => violations.add(at.clone(), "needs an attribute or an engagement"),
            Some(Condition::Attribute(a)) => {
                if !FIELDS.contains(&a.field.as_str()) {
                    violations.add(
                        format!("{at}.attribute.field"),
                        format!("must be one of {}", FIELDS.join(", ")),
                    );
                }
                if a.field == "company_size_min" && a.value.parse::<i32>().is_err() {
                    violations.add(format!("{at}.attribute.value"), "must be a whole number");
                }
            }
            Some(Condition::Engagement(kind)) => {
                if !ENGAGEMENTS.contains(&kind.as_str()) {
                    violations.add(
                        format!("{at}.engagement"),
                        format!("must be one of {}", ENGAGEMENTS.join(", ")),
                    );
                }
            }
        }
        if !(-1000..=1000).contains(&rule.points) {
            violations.add(format!("{at}.points"), "must be from -1000 to 1000");
        }
    }
}

fn attribute_matches(field: &str, value: &str, lead: &Lead) -> bool {
    let eq = |have: &str| !have.is_empty() && have.eq_ignore_ascii_case(value.trim());
    match field {
        "title" => {
            !value.trim().is_empty()
                && lead
                    .title
                    .to_lowercase()
                    .contains(&value.trim().to_lowercase())
        }
        "industry" => eq(&lead.industry),
        "country" => eq(&lead.country),
        "region" => eq(&lead.region),
        "source" => LeadSource::try_from(lead.source).is_ok_and(|s| {
            s.as_str_name()
                .trim_start_matches("LEAD_SOURCE_")
                .eq_ignore_ascii_case(value.trim())
        }),
        "company_size_min" => value
            .parse::<i32>()
            .is_ok_and(|min| lead.company_size >= min),
        _ => false,
    }
}

/// The score of `lead` now, given its engagements (kind, when).
pub fn score(
    settings: &ScoringSettings,
    lead: &Lead,
    engagements: &[(String, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> i32 {
    let mut total = 0.0_f64;
    for rule in &settings.rules {
        match &rule.condition {
            Some(Condition::Attribute(a)) if attribute_matches(&a.field, &a.value, lead) => {
                total += f64::from(rule.points);
            }
            Some(Condition::Engagement(kind)) => {
                for (_, at) in engagements.iter().filter(|(k, _)| k == kind) {
                    let age_days = (now - *at).num_seconds().max(0) as f64 / 86_400.0;
                    let factor = if settings.half_life_days > 0 {
                        0.5_f64.powf(age_days / f64::from(settings.half_life_days))
                    } else {
                        1.0
                    };
                    total += f64::from(rule.points) * factor;
                }
            }
            _ => {}
        }
    }
    total
        .round()
        .clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
}

/// Rules as stored (JSON), so a tenant's settings are one row.
pub fn rules_to_json(rules: &[crm_proto::crm::sales::v1::ScoringRule]) -> serde_json::Value {
    serde_json::Value::Array(
        rules
            .iter()
            .map(|rule| {
                let mut json = serde_json::json!({"id": rule.id, "points": rule.points});
                match &rule.condition {
                    Some(Condition::Attribute(a)) => {
                        json["field"] = a.field.clone().into();
                        json["value"] = a.value.clone().into();
                    }
                    Some(Condition::Engagement(kind)) => json["engagement"] = kind.clone().into(),
                    None => {}
                }
                json
            })
            .collect(),
    )
}

pub fn rules_from_json(json: &serde_json::Value) -> Vec<crm_proto::crm::sales::v1::ScoringRule> {
    use crm_proto::crm::sales::v1::{AttributeCondition, ScoringRule};
    let text = |v: &serde_json::Value, key: &str| v[key].as_str().unwrap_or_default().to_owned();
    json.as_array()
        .map(|rules| {
            rules
                .iter()
                .map(|r| ScoringRule {
                    id: text(r, "id"),
                    points: r["points"].as_i64().unwrap_or_default() as i32,
                    condition: if r.get("engagement").is_some() {
                        Some(Condition::Engagement(text(r, "engagement")))
                    } else {
                        Some(Condition::Attribute(AttributeCondition {
                            field: text(r, "field"),
                            value: text(r, "value"),
                        }))
                    },
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_proto::crm::sales::v1::{AttributeCondition, ScoringRule};

    fn rule(condition: Condition, points: i32) -> ScoringRule {
        ScoringRule {
            id: String::new(),
            condition: Some(condition),
            points,
        }
    }

    #[test]
    fn attributes_add_up_and_engagements_decay() {
        let settings = ScoringSettings {
            rules: vec![
                rule(
                    Condition::Attribute(AttributeCondition {
                        field: "title".into(),
                        value: "VP".into(),
                    }),
                    20,
                ),
                rule(
                    Condition::Attribute(AttributeCondition {
                        field: "company_size_min".into(),
                        value: "100".into(),
                    }),
                    10,
                ),
                rule(Condition::Engagement("email_clicked".into()), 8),
            ],
            half_life_days: 7,
        };
        let lead = Lead {
            title: "SVP Sales".into(),
            company_size: 50,
            ..Default::default()
        };
        let now = Utc::now();
        assert_eq!(score(&settings, &lead, &[], now), 20);
        let fresh = vec![("email_clicked".to_owned(), now)];
        assert_eq!(score(&settings, &lead, &fresh, now), 28);
        let week_old = vec![("email_clicked".to_owned(), now - chrono::Duration::days(7))];
        assert_eq!(
            score(&settings, &lead, &week_old, now),
            24,
            "half after one half-life"
        );
    }
}
