//! Cursor pagination.
//!
//! Lists are keyset-paged: the cursor holds the sort key and id of the last
//! row returned, so a page never repeats or skips rows when others are
//! inserted meanwhile. The cursor is opaque to clients (base64url JSON) and
//! a tampered one is an INVALID_ARGUMENT on `page.page_token`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;

pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 500;

/// A validated page request.
#[derive(Debug, Clone)]
pub struct Page<K> {
    /// Rows to return.
    pub size: i64,
    /// Where the previous page ended; `None` for the first page.
    pub after: Option<K>,
}

impl<K: DeserializeOwned> Page<K> {
    /// Validates a `crm.common.v1.PageRequest` (absent means the first page).
    pub fn from_request(
        request: Option<&crm_proto::crm::common::v1::PageRequest>,
    ) -> Result<Self, Error> {
        let (size, token) = request
            .map(|r| (r.page_size, r.page_token.as_str()))
            .unwrap_or((0, ""));
        let size = match size {
            0 => DEFAULT_PAGE_SIZE,
            n if n < 0 => return Err(Error::invalid("page.page_size", "must not be negative")),
            n => i64::from(n).min(MAX_PAGE_SIZE),
        };
        let after = if token.is_empty() {
            None
        } else {
            Some(decode_cursor(token)?)
        };
        Ok(Page { size, after })
    }

    /// Rows to fetch: one more than the page, to know whether another follows.
    pub fn fetch_limit(&self) -> i64 {
        self.size + 1
    }
}

/// Cuts `rows` (fetched with [`Page::fetch_limit`]) to the page and makes the
/// next page token from the last row kept.
pub fn finish_page<T, K: Serialize>(
    mut rows: Vec<T>,
    size: i64,
    key_of: impl Fn(&T) -> K,
) -> (Vec<T>, String) {
    let size = usize::try_from(size).unwrap_or(0);
    if rows.len() <= size {
        return (rows, String::new());
    }
    rows.truncate(size);
    let token = rows
        .last()
        .map(|last| encode_cursor(&key_of(last)))
        .unwrap_or_default();
    (rows, token)
}

pub fn encode_cursor<K: Serialize>(key: &K) -> String {
    // Serialising plain keys (strings, numbers, uuids, timestamps) cannot fail.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

pub fn decode_cursor<K: DeserializeOwned>(token: &str) -> Result<K, Error> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| Error::invalid("page.page_token", "is not a token returned by this list"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_proto::crm::common::v1::PageRequest;

    #[test]
    fn page_size_defaults_and_caps() {
        let page = Page::<i64>::from_request(None).unwrap();
        assert_eq!(page.size, DEFAULT_PAGE_SIZE);
        let big = PageRequest {
            page_size: 10_000,
            page_token: String::new(),
        };
        assert_eq!(
            Page::<i64>::from_request(Some(&big)).unwrap().size,
            MAX_PAGE_SIZE
        );
        let negative = PageRequest {
            page_size: -1,
            page_token: String::new(),
        };
        assert!(Page::<i64>::from_request(Some(&negative)).is_err());
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let token = encode_cursor(&("Zhang", 42));
        let request = PageRequest {
            page_size: 10,
            page_token: token,
        };
        let page = Page::<(String, i64)>::from_request(Some(&request)).unwrap();
        assert_eq!(page.after, Some(("Zhang".to_owned(), 42)));
        let bad = PageRequest {
            page_size: 10,
            page_token: "%%%".into(),
        };
        let Err(Error::InvalidArgument(violations)) =
            Page::<(String, i64)>::from_request(Some(&bad))
        else {
            panic!("garbage token accepted")
        };
        assert_eq!(violations[0].field, "page.page_token");
    }

    #[test]
    fn finish_page_sets_token_only_when_more_rows_follow() {
        let (rows, token) = finish_page(vec![1, 2, 3], 3, |n| *n);
        assert_eq!((rows.len(), token.as_str()), (3, ""));
        let (rows, token) = finish_page(vec![1, 2, 3, 4], 3, |n| *n);
        assert_eq!(rows, [1, 2, 3]);
        assert_eq!(decode_cursor::<i32>(&token).unwrap(), 3);
    }
}
