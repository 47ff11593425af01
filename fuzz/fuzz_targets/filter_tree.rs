//! The filter tree as the REST API receives it: any JSON is either refused
//! with a problem or becomes a checked tree whose SQL has balanced
//! parentheses and carries no text of the request (every value is bound).
#![no_main]

use crm_proto::crm::customers::v1::Filter;
use customers::domain::custom_fields::FieldCatalog;
use customers::domain::filter::{check, ACCOUNT_COLUMNS, CONTACT_COLUMNS};
use customers::store::filter_sql::push_filter;
use gateway::http::transcode::message;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let descriptor = message::pool()
        .get_message_by_name("crm.customers.v1.Filter")
        .expect("the contracts define Filter");
    let Ok(dynamic) = message::decode(descriptor, json) else {
        return;
    };
    let filter =
        Filter::decode(dynamic.encode_to_vec().as_slice()).expect("re-encoded filter decodes");
    let catalog = FieldCatalog::new(Vec::new());
    for columns in [CONTACT_COLUMNS, ACCOUNT_COLUMNS] {
        let Ok(expr) = check(Some(&filter), columns, &catalog, "filter") else {
            continue;
        };
        let mut query = sqlx::QueryBuilder::<sqlx::Postgres>::new("SELECT 1 FROM t WHERE TRUE");
        push_filter(&mut query, expr.as_ref());
        let sql = query.sql();
        let mut depth = 0i32;
        for c in sql.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            assert!(depth >= 0, "unbalanced SQL: {sql}");
        }
        assert_eq!(depth, 0, "unbalanced SQL: {sql}");
        assert!(
            !sql.contains(';') && !sql.contains("--"),
            "request text in SQL: {sql}"
        );
    }
});
