//! Tags: short labels, compared case-insensitively, stored lower case and
//! without duplicates.

use crate::error::FieldViolation;

pub const MAX_TAGS: usize = 100;

pub fn normalize(field: &str, tags: &mut Vec<String>) -> Result<(), FieldViolation> {
    let mut normalized: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags.iter() {
        let tag = tag.trim().to_lowercase();
        if tag.is_empty() {
            continue;
        }
        if tag.chars().count() > 50 || tag.chars().any(|c| c.is_control() || c == ',' || c == ';') {
            return Err(FieldViolation::new(
                field,
                format!(
                    "tag {tag:?} is longer than 50 characters or has , ; or control characters"
                ),
            ));
        }
        if !normalized.contains(&tag) {
            normalized.push(tag);
        }
    }
    if normalized.len() > MAX_TAGS {
        return Err(FieldViolation::new(
            field,
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    *tags = normalized;
    Ok(())
}

/// The union of two tag lists, keeping the order of first appearance.
pub fn union(left: &[String], right: &[String]) -> Vec<String> {
    let mut all = left.to_vec();
    for tag in right {
        if !all.contains(tag) {
            all.push(tag.clone());
        }
    }
    all
}
