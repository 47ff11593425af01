//! The knowledge base: what a valid category, article and search are.

use crm_proto::crm::servicedesk::v1::{Article, ArticleAudience, ArticleCategory};
use kit::error::Violations;

use super::{optional_id, text};

pub const MAX_TITLE: usize = 300;
pub const MAX_BODY: usize = 200_000;
pub const MAX_NAME: usize = 200;
pub const MAX_DESCRIPTION: usize = 2_000;
pub const MAX_COMMENT: usize = 2_000;
pub const MAX_TAGS: usize = 20;
pub const DEFAULT_LANGUAGE: &str = "en";

/// The text search configurations of `crm_text_config` (migration 1004):
/// a query without a language is looked up in each, so every article's
/// stemmed words can match.
pub const TEXT_CONFIGS: [&str; 16] = [
    "english",
    "german",
    "french",
    "spanish",
    "italian",
    "portuguese",
    "dutch",
    "swedish",
    "danish",
    "finnish",
    "norwegian",
    "russian",
    "hungarian",
    "romanian",
    "turkish",
    "simple",
];

kit::field_mask!(
    apply_mask,
    changed_fields,
    Article,
    "article",
    [category_id, title, body, language, tags, audience]
);

/// "en", "de-AT", "pt-BR", "zh-Hant": a primary tag of 2-3 letters and
/// optional subtags; lower-cased primary.
pub fn normalize_language(field: &str, language: &mut String, v: &mut Violations) {
    let trimmed = language.trim();
    let mut parts = trimmed.split('-');
    let primary = parts.next().unwrap_or_default();
    let valid = (2..=3).contains(&primary.len())
        && primary.chars().all(|c| c.is_ascii_alphabetic())
        && parts
            .all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if !valid {
        v.add(field, "is not a language tag (e.g. en, de-AT)");
        return;
    }
    let rest = &trimmed[primary.len()..];
    *language = format!("{}{rest}", primary.to_lowercase());
}

/// Trims, defaults and checks an article, reporting under `article.`.
pub fn normalize(a: &mut Article, v: &mut Violations) {
    v.check(text("article.title", &mut a.title, MAX_TITLE));
    if a.title.is_empty() {
        v.add("article.title", "is required");
    }
    a.body = a.body.replace("\r\n", "\n");
    v.check(text("article.body", &mut a.body, MAX_BODY));
    if a.body.is_empty() {
        v.add("article.body", "is required");
    }
    if a.language.trim().is_empty() {
        a.language = DEFAULT_LANGUAGE.to_owned();
    }
    normalize_language("article.language", &mut a.language, v);
    v.check(kit::tags::normalize("article.tags", &mut a.tags));
    if a.tags.len() > MAX_TAGS {
        v.add("article.tags", format!("at most {MAX_TAGS} tags"));
    }
    match ArticleAudience::try_from(a.audience) {
        Ok(ArticleAudience::Unspecified) => a.audience = ArticleAudience::Internal as i32,
        Ok(_) => {}
        Err(_) => v.add("article.audience", "is not a known audience"),
    }
    v.check(optional_id("article.category_id", &a.category_id));
}

pub fn normalize_category(c: &mut ArticleCategory, v: &mut Violations) {
    v.check(text("category.name", &mut c.name, MAX_NAME));
    if c.name.is_empty() {
        v.add("category.name", "is required");
    }
    v.check(text(
        "category.description",
        &mut c.description,
        MAX_DESCRIPTION,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn articles_get_defaults_and_bad_fields_are_named() {
        let mut a = Article {
            title: " Reset your password ".into(),
            body: "Open settings.\r\n".into(),
            language: "DE-at".into(),
            ..Default::default()
        };
        let mut v = Violations::new();
        normalize(&mut a, &mut v);
        assert!(v.is_empty());
        assert_eq!(
            (a.title.as_str(), a.language.as_str()),
            ("Reset your password", "de-at")
        );
        assert_eq!(a.audience, ArticleAudience::Internal as i32);

        let mut bad = Article {
            language: "english!".into(),
            audience: 7,
            category_id: "x".into(),
            ..Default::default()
        };
        let mut v = Violations::new();
        normalize(&mut bad, &mut v);
        assert_eq!(
            v.fields(),
            vec![
                "article.title",
                "article.body",
                "article.language",
                "article.audience",
                "article.category_id"
            ]
        );
    }
}
