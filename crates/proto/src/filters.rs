//! Constructors other services use to ask the customers service for
//! records by one field (`ListContacts` by e-mail, by account, ...).

use crate::crm::customers::v1::{filter::Node, Condition, Filter, Operator};

impl Filter {
    /// `field` equals the string `value`.
    pub fn equals(field: &str, value: &str) -> Self {
        Filter {
            node: Some(Node::Condition(Condition {
                field: field.to_owned(),
                op: Operator::Eq as i32,
                value: Some(prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue(value.to_owned())),
                }),
            })),
        }
    }
}
