//! Lifecycle stages. Any stage may follow any other (sales teams correct
//! mistakes), but every change is published so reporting can build funnels.

use crm_proto::crm::customers::v1::LifecycleStage;

/// Parses a stage name as used in imports and filters: `customer`,
/// `marketing_qualified`, or the enum name `LIFECYCLE_STAGE_CUSTOMER`.
pub fn parse_stage(raw: &str) -> Option<LifecycleStage> {
    let upper = raw.trim().to_ascii_uppercase().replace([' ', '-'], "_");
    let name = if upper.starts_with("LIFECYCLE_STAGE_") {
        upper
    } else {
        format!("LIFECYCLE_STAGE_{upper}")
    };
    LifecycleStage::from_str_name(&name).filter(|stage| *stage != LifecycleStage::Unspecified)
}

/// The stage name without prefix, lower case: `marketing_qualified`.
pub fn stage_name(stage: LifecycleStage) -> String {
    stage
        .as_str_name()
        .trim_start_matches("LIFECYCLE_STAGE_")
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_parse_from_short_and_full_names() {
        assert_eq!(parse_stage("customer"), Some(LifecycleStage::Customer));
        assert_eq!(
            parse_stage("Marketing Qualified"),
            Some(LifecycleStage::MarketingQualified)
        );
        assert_eq!(
            parse_stage("LIFECYCLE_STAGE_LEAD"),
            Some(LifecycleStage::Lead)
        );
        assert_eq!(parse_stage("unspecified"), None);
        assert_eq!(parse_stage("vip"), None);
        assert_eq!(
            stage_name(LifecycleStage::SalesQualified),
            "sales_qualified"
        );
    }
}
