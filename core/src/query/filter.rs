//! Filters: comparisons combined with `and` / `or`.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::compare::{comparable, compare_values};
use super::QueryError;
use crate::record::Row;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `in` (value is an array)
    In,
    /// `not-in`
    NotIn,
    /// `contains`: substring of a string, or element of an array.
    Contains,
}

impl Op {
    /// Parses `==`/`eq`, `!=`/`ne`, `<`/`lt`, `<=`/`lte`, `>`/`gt`, `>=`/`gte`, `in`, `not-in`/`nin`,
    /// `contains`.
    pub fn parse(name: &str) -> Option<Op> {
        Some(match name {
            "==" | "=" | "eq" => Op::Eq,
            "!=" | "<>" | "ne" | "neq" => Op::Ne,
            "<" | "lt" => Op::Lt,
            "<=" | "lte" | "le" => Op::Le,
            ">" | "gt" => Op::Gt,
            ">=" | "gte" | "ge" => Op::Ge,
            "in" => Op::In,
            "not-in" | "notIn" | "nin" | "not_in" => Op::NotIn,
            "contains" => Op::Contains,
            _ => return None,
        })
    }
}

/// A filter tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// All must hold.
    And(Vec<Filter>),
    /// At least one must hold.
    Or(Vec<Filter>),
    /// `field op value`.
    Compare {
        /// Property name.
        field: String,
        /// Operator.
        op: Op,
        /// Operand.
        value: Value,
    },
}

impl Filter {
    /// Parses `{field: value, field: {op: value}, and: [..], or: [..]}`; the keys of one object are
    /// and-ed.
    pub fn from_json(value: &Value) -> Result<Filter, QueryError> {
        let obj = value.as_object().ok_or_else(|| QueryError("`where` must be an object".into()))?;
        let mut parts = Vec::new();
        for (key, v) in obj {
            match key.as_str() {
                "and" | "$and" => parts.push(Filter::And(list(v)?)),
                "or" | "$or" => parts.push(Filter::Or(list(v)?)),
                field => parts.extend(field_conditions(field, v)?),
            }
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Filter::And(parts) })
    }

    /// Whether `row` passes.
    pub fn matches(&self, row: &Row) -> bool {
        match self {
            Filter::And(all) => all.iter().all(|f| f.matches(row)),
            Filter::Or(any) => any.iter().any(|f| f.matches(row)),
            Filter::Compare { field, op, value } => {
                let actual = row.get(field).unwrap_or(&Value::Null);
                compare(actual, *op, value)
            }
        }
    }
}

fn list(value: &Value) -> Result<Vec<Filter>, QueryError> {
    value
        .as_array()
        .ok_or_else(|| QueryError("`and` / `or` take an array of filters".into()))?
        .iter()
        .map(Filter::from_json)
        .collect()
}

fn field_conditions(field: &str, value: &Value) -> Result<Vec<Filter>, QueryError> {
    let cond = |op, value: &Value| Filter::Compare { field: field.to_owned(), op, value: value.clone() };
    match value {
        Value::Object(ops) if is_operator_object(ops) => ops
            .iter()
            .map(|(name, operand)| {
                let op = Op::parse(name.trim_start_matches('$'))
                    .ok_or_else(|| QueryError(format!("unknown operator `{name}` on `{field}`")))?;
                if matches!(op, Op::In | Op::NotIn) && !operand.is_array() {
                    return Err(QueryError(format!("`{name}` on `{field}` needs an array")));
                }
                Ok(cond(op, operand))
            })
            .collect(),
        other => Ok(vec![cond(Op::Eq, other)]),
    }
}

fn is_operator_object(obj: &Map<String, Value>) -> bool {
    !obj.is_empty() && obj.keys().all(|k| Op::parse(k.trim_start_matches('$')).is_some())
}

fn compare(actual: &Value, op: Op, operand: &Value) -> bool {
    match op {
        Op::Eq => loosely_equal(actual, operand),
        Op::Ne => !loosely_equal(actual, operand),
        Op::Lt | Op::Le | Op::Gt | Op::Ge => {
            if !comparable(actual, operand) {
                return false;
            }
            let ord = compare_values(actual, operand);
            match op {
                Op::Lt => ord == Ordering::Less,
                Op::Le => ord != Ordering::Greater,
                Op::Gt => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            }
        }
        Op::In => operand.as_array().is_some_and(|a| a.iter().any(|v| loosely_equal(actual, v))),
        Op::NotIn => operand.as_array().is_some_and(|a| !a.iter().any(|v| loosely_equal(actual, v))),
        Op::Contains => match (actual, operand) {
            (Value::String(s), Value::String(needle)) => s.contains(needle.as_str()),
            (Value::Array(items), needle) => items.iter().any(|v| loosely_equal(v, needle)),
            _ => false,
        },
    }
}

/// Equality where `1` equals `1.0` (numbers compare by value).
fn loosely_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => compare_values(a, b) == Ordering::Equal,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::Query;
    use serde_json::json;

    fn rows() -> Vec<Row> {
        [
            json!({"id": "a", "total": 5, "status": "open", "tags": ["hot"], "name": "Falafel"}),
            json!({"id": "b", "total": 12.5, "status": "paid", "tags": [], "name": "Koshary"}),
            json!({"id": "c", "total": 12.5, "status": "open", "name": "Ful"}),
            json!({"id": "d", "status": "void"}),
        ]
        .into_iter()
        .map(|v| v.as_object().unwrap().clone())
        .collect()
    }

    fn ids(q: Value) -> Vec<String> {
        let q = Query::from_json(&q).unwrap();
        q.run(rows().iter()).iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
    }

    #[test]
    fn each_operator_selects_the_right_rows() {
        assert_eq!(ids(json!({"where": {"status": "open"}})), ["a", "c"]);
        assert_eq!(ids(json!({"where": {"status": {"!=": "open"}}})), ["b", "d"]);
        assert_eq!(ids(json!({"where": {"total": {"<": 12.5}}})), ["a"]);
        assert_eq!(ids(json!({"where": {"total": {"<=": 12.5}}})), ["a", "b", "c"]);
        assert_eq!(ids(json!({"where": {"total": {">": 5}}})), ["b", "c"]);
        assert_eq!(ids(json!({"where": {"total": {">=": 5, "<": 6}}})), ["a"]);
        assert_eq!(ids(json!({"where": {"status": {"in": ["paid", "void"]}}})), ["b", "d"]);
        assert_eq!(ids(json!({"where": {"status": {"not-in": ["paid", "void"]}}})), ["a", "c"]);
        assert_eq!(ids(json!({"where": {"name": {"contains": "o"}}})), ["b"]);
        assert_eq!(ids(json!({"where": {"tags": {"contains": "hot"}}})), ["a"]);
        assert_eq!(ids(json!({"where": {"or": [{"id": "a"}, {"status": "void"}]}})), ["a", "d"]);
        assert_eq!(ids(json!({"where": {"and": [{"status": "open"}, {"total": 12.5}]}})), ["c"]);
    }

    #[test]
    fn sorts_on_several_fields_then_pages_and_projects() {
        assert_eq!(ids(json!({"orderBy": ["-total", "id"]})), ["b", "c", "a", "d"]);
        assert_eq!(
            ids(json!({"orderBy": [{"field": "total", "dir": "desc"}, "-id"], "offset": 1, "limit": 2})),
            ["b", "a"]
        );
        let q = Query::from_json(&json!({"fields": ["id"], "limit": 1})).unwrap();
        assert_eq!(Value::Object(q.run(rows().iter()).remove(0)), json!({"id": "a"}));
    }

    #[test]
    fn bad_queries_are_errors_not_panics() {
        for bad in [
            json!({"where": {"x": {"in": 3}}}),
            json!({"where": 3}),
            json!({"limit": -1}),
            json!({"orderBy": [3]}),
            json!([]),
        ] {
            assert!(Query::from_json(&bad).is_err(), "{bad}");
        }
    }
}
