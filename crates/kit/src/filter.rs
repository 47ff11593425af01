//! Filter trees (`crm.customers.v1.Filter`: all/any groups, not, and
//! conditions), the one shape every service filters records with. Each
//! service checks a condition against its own fields; the walk, its limits,
//! the field paths of errors and the SQL of the groups are here.

use crm_proto::crm::customers::v1::{filter, Condition, Filter};
use sqlx::{Postgres, QueryBuilder};

use crate::Error;

/// Deepest nesting and most conditions one filter may have.
pub const MAX_DEPTH: usize = 8;
pub const MAX_CONDITIONS: usize = 64;

/// A checked filter: groups over checked conditions `C`.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterTree<C> {
    All(Vec<FilterTree<C>>),
    Any(Vec<FilterTree<C>>),
    Not(Box<FilterTree<C>>),
    Leaf(C),
}

/// Checks `filter` (absent: match everything); `leaf` checks one condition,
/// given the path of the condition in the request
/// (`filter.all.filters[1].condition`).
pub fn check<C>(
    filter: Option<&Filter>,
    path: &str,
    leaf: &mut impl FnMut(&Condition, &str) -> Result<C, Error>,
) -> Result<Option<FilterTree<C>>, Error> {
    let Some(filter) = filter else {
        return Ok(None);
    };
    let mut conditions = 0;
    check_node(filter, path, 0, &mut conditions, leaf).map(Some)
}

fn check_node<C>(
    filter: &Filter,
    path: &str,
    depth: usize,
    conditions: &mut usize,
    leaf: &mut impl FnMut(&Condition, &str) -> Result<C, Error>,
) -> Result<FilterTree<C>, Error> {
    if depth > MAX_DEPTH {
        return Err(Error::invalid(
            path,
            format!("is nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    match &filter.node {
        None => Err(Error::invalid(
            path,
            "is empty: set all, any, not or condition",
        )),
        Some(filter::Node::All(group)) | Some(filter::Node::Any(group)) => {
            let is_all = matches!(filter.node, Some(filter::Node::All(_)));
            let kind = if is_all { "all" } else { "any" };
            let children = group
                .filters
                .iter()
                .enumerate()
                .map(|(i, child)| {
                    let at = format!("{path}.{kind}.filters[{i}]");
                    check_node(child, &at, depth + 1, conditions, leaf)
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if is_all {
                FilterTree::All(children)
            } else {
                FilterTree::Any(children)
            })
        }
        Some(filter::Node::Not(inner)) => {
            let at = format!("{path}.not");
            let inner = check_node(inner, &at, depth + 1, conditions, leaf)?;
            Ok(FilterTree::Not(Box::new(inner)))
        }
        Some(filter::Node::Condition(condition)) => {
            *conditions += 1;
            if *conditions > MAX_CONDITIONS {
                return Err(Error::invalid(
                    path,
                    format!("has more than {MAX_CONDITIONS} conditions"),
                ));
            }
            leaf(condition, &format!("{path}.condition")).map(FilterTree::Leaf)
        }
    }
}

impl<C> FilterTree<C> {
    /// Appends the tree as one SQL boolean expression; `leaf` appends a
    /// condition (binding every value). An empty all is true, an empty any
    /// false; NOT treats an unknown (NULL) condition as false.
    pub fn push_sql(
        &self,
        query: &mut QueryBuilder<'_, Postgres>,
        leaf: &impl Fn(&mut QueryBuilder<'_, Postgres>, &C),
    ) {
        match self {
            FilterTree::All(children) | FilterTree::Any(children) => {
                let all = matches!(self, FilterTree::All(_));
                if children.is_empty() {
                    query.push(if all { "TRUE" } else { "FALSE" });
                    return;
                }
                query.push("(");
                for (i, child) in children.iter().enumerate() {
                    if i > 0 {
                        query.push(if all { " AND " } else { " OR " });
                    }
                    child.push_sql(query, leaf);
                }
                query.push(")");
            }
            FilterTree::Not(inner) => {
                query.push("NOT coalesce(");
                inner.push_sql(query, leaf);
                query.push(", FALSE)");
            }
            FilterTree::Leaf(condition) => leaf(query, condition),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_proto::crm::customers::v1::FilterGroup;

    fn condition(field: &str) -> Filter {
        Filter {
            node: Some(filter::Node::Condition(Condition {
                field: field.into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn trees_are_walked_with_paths_and_limits() {
        let filter = Filter {
            node: Some(filter::Node::All(FilterGroup {
                filters: vec![
                    condition("a"),
                    Filter {
                        node: Some(filter::Node::Not(Box::new(condition("b")))),
                    },
                ],
            })),
        };
        let mut seen = Vec::new();
        let tree = check(Some(&filter), "report.filter", &mut |c, path| {
            seen.push(path.to_owned());
            Ok(c.field.clone())
        })
        .expect("checked")
        .expect("a tree");
        assert_eq!(
            seen,
            [
                "report.filter.all.filters[0].condition",
                "report.filter.all.filters[1].not.condition"
            ]
        );
        let mut query = QueryBuilder::new("");
        tree.push_sql(&mut query, &|q, field: &String| {
            q.push(format!("{field} = 1"));
        });
        assert_eq!(query.sql(), "(a = 1 AND NOT coalesce(b = 1, FALSE))");
        let empty = Filter { node: None };
        let refused = check(Some(&empty), "filter", &mut |_, _| Ok(()));
        assert!(matches!(refused, Err(Error::InvalidArgument(v)) if v[0].field == "filter"));
        let mut deep = condition("x");
        for _ in 0..=MAX_DEPTH {
            deep = Filter {
                node: Some(filter::Node::Not(Box::new(deep))),
            };
        }
        assert!(check(Some(&deep), "filter", &mut |_, _| Ok(())).is_err());
    }
}
