//! Turns a checked filter into SQL. Column names come from the fixed tables
//! in `domain::filter`; custom field keys were checked against the tenant's
//! definitions and are bound as parameters; every value is bound.

use crm_proto::crm::customers::v1::{FieldType, Operator};
use sqlx::{Postgres, QueryBuilder};

use crate::domain::filter::{ColumnKind, Comparison, FilterExpr, Operand, Target};

/// Appends ` AND (<filter>)` when there is a filter.
pub fn push_filter(query: &mut QueryBuilder<'_, Postgres>, filter: Option<&FilterExpr>) {
    if let Some(filter) = filter {
        query.push(" AND ");
        filter.push_sql(query, &push_comparison);
    }
}

/// The SQL value expression of a target, typed for comparison.
fn push_target(query: &mut QueryBuilder<'_, Postgres>, target: &Target) {
    match target {
        Target::Column(column) => match column.kind {
            ColumnKind::Text => match column.key {
                Some(key) => {
                    query.push(key);
                }
                None => {
                    query.push(format!("lower(coalesce({}, ''))", column.sql));
                }
            },
            _ => {
                query.push(column.sql);
            }
        },
        Target::Custom { key, field_type } => {
            let raw = |q: &mut QueryBuilder<'_, Postgres>| {
                q.push("(custom->>").push_bind(key.clone()).push(")");
            };
            match field_type {
                // Guarded casts: a value stored before a definition changed
                // type compares as NULL instead of failing the query.
                FieldType::Number | FieldType::Decimal => {
                    query.push("(CASE WHEN ");
                    raw(query);
                    query.push(" ~ '^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$' THEN ");
                    raw(query);
                    query.push("::numeric END)");
                }
                FieldType::Bool => {
                    query.push("(CASE WHEN ");
                    raw(query);
                    query.push(" IN ('true','false') THEN ");
                    raw(query);
                    query.push("::boolean END)");
                }
                FieldType::MultiSelect => {
                    query.push("(custom->").push_bind(key.clone()).push(")");
                }
                _ => {
                    query.push("lower(");
                    raw(query);
                    query.push(")");
                }
            }
        }
    }
}

fn push_operand(query: &mut QueryBuilder<'_, Postgres>, operand: &Operand) {
    match operand {
        Operand::Text(s) => {
            query.push("lower(").push_bind(s.clone()).push(")");
        }
        Operand::Number(n) => {
            query.push_bind(*n);
        }
        Operand::Uuid(u) => {
            query.push_bind(*u);
        }
        Operand::Int(i) => {
            query.push_bind(*i);
        }
        Operand::Timestamp(t) => {
            query.push_bind(*t);
        }
        Operand::Bool(b) => {
            query.push_bind(*b);
        }
        Operand::None | Operand::List(_) => {
            query.push("NULL");
        }
    }
}

fn like_pattern(text: &str, prefix_only: bool) -> String {
    let escaped = text
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    if prefix_only {
        format!("{escaped}%")
    } else {
        format!("%{escaped}%")
    }
}

fn push_comparison(query: &mut QueryBuilder<'_, Postgres>, comparison: &Comparison) {
    let Comparison {
        target,
        op,
        operand,
    } = comparison;
    let is_array = matches!(
        target,
        Target::Column(c) if matches!(c.kind, ColumnKind::TextArray | ColumnKind::ContactPoints)
    );
    let is_multi = matches!(
        target,
        Target::Custom {
            field_type: FieldType::MultiSelect,
            ..
        }
    );
    if is_array || is_multi {
        return push_array_comparison(query, target, *op, operand, is_multi);
    }
    match op {
        Operator::IsSet | Operator::IsNotSet => {
            query.push("(");
            push_target(query, target);
            let text_column = matches!(target, Target::Column(c) if c.kind == ColumnKind::Text);
            match (op, text_column) {
                (Operator::IsSet, true) => query.push(" <> '')"),
                (Operator::IsNotSet, true) => query.push(" = '')"),
                (Operator::IsSet, false) => query.push(" IS NOT NULL)"),
                _ => query.push(" IS NULL)"),
            };
        }
        Operator::Contains | Operator::StartsWith => {
            let Operand::Text(text) = operand else {
                return push_false(query);
            };
            push_target(query, target);
            query
                .push(" LIKE ")
                .push_bind(like_pattern(text, *op == Operator::StartsWith));
        }
        Operator::In => {
            let Operand::List(items) = operand else {
                return push_false(query);
            };
            if items.is_empty() {
                return push_false(query);
            }
            push_target(query, target);
            query.push(" IN (");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    query.push(", ");
                }
                push_operand(query, item);
            }
            query.push(")");
        }
        _ => {
            let sql_op = match op {
                Operator::Eq => " = ",
                Operator::Neq => " IS DISTINCT FROM ",
                Operator::Gt => " > ",
                Operator::Gte => " >= ",
                Operator::Lt => " < ",
                _ => " <= ",
            };
            query.push("(");
            push_target(query, target);
            query.push(sql_op);
            push_operand(query, operand);
            query.push(")");
        }
    }
}

fn push_false(query: &mut QueryBuilder<'_, Postgres>) {
    query.push("FALSE");
}

/// Arrays (tags, e-mails, phones, multi-selects): EQ/IN = contains any of
/// the values, NEQ = contains none, IS_SET = not empty.
fn push_array_comparison(
    query: &mut QueryBuilder<'_, Postgres>,
    target: &Target,
    op: Operator,
    operand: &Operand,
    is_multi: bool,
) {
    let values: Vec<String> = match operand {
        Operand::Text(s) => vec![s.clone()],
        Operand::List(items) => items
            .iter()
            .filter_map(|i| {
                if let Operand::Text(s) = i {
                    Some(s.clone())
                } else {
                    None
                }
            })
            .collect(),
        _ => Vec::new(),
    };
    // Tags and e-mails are stored lower case; phones and selects as given.
    let values: Vec<String> = match target {
        Target::Column(c) if c.name == "tags" || c.name == "email" => {
            values.iter().map(|v| v.trim().to_lowercase()).collect()
        }
        _ => values,
    };
    // E-mail addresses and phone numbers are found through contact_points'
    // btree: `&&` on the arrays cannot use an index under row-level
    // security (not leakproof), so it would read every contact of the
    // tenant. The table holds exactly the live contacts' points.
    if let Target::Column(c) = target {
        if c.kind == ColumnKind::ContactPoints
            && matches!(
                op,
                Operator::Eq | Operator::In | Operator::Contains | Operator::Neq
            )
        {
            query.push(if op == Operator::Neq {
                "NOT (id IN (SELECT contact_id FROM contact_points WHERE point = ANY("
            } else {
                "(id IN (SELECT contact_id FROM contact_points WHERE point = ANY("
            });
            query.push_bind(values).push("::text[])))");
            return;
        }
    }
    let column = |q: &mut QueryBuilder<'_, Postgres>| {
        if is_multi {
            q.push("coalesce(ARRAY(SELECT jsonb_array_elements_text(");
            push_target(q, target);
            q.push(")), '{}')");
        } else {
            push_target(q, target);
        }
    };
    match op {
        Operator::IsSet => {
            query.push("cardinality(");
            column(query);
            query.push(") > 0");
        }
        Operator::IsNotSet => {
            query.push("cardinality(");
            column(query);
            query.push(") = 0");
        }
        Operator::Neq => {
            query.push("NOT (");
            column(query);
            query.push(" && ").push_bind(values).push("::text[])");
        }
        Operator::Eq | Operator::In | Operator::Contains => {
            query.push("(");
            column(query);
            query.push(" && ").push_bind(values).push("::text[])");
        }
        _ => push_false(query),
    }
}
