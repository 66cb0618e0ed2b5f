//! Local queries over rows in memory: filter, sort on several fields, limit/offset, projection.
//! Used by the browser store's live queries and by the server's query routes.
//!
//! Filters are one language ([`Filter`]) with two written forms that make the same tree: a string
//! (`statusId = "open" && name.en ~ "kosh"`, [`Filter::parse`]) and the JSON form below
//! ([`Filter::from_json`]); `where` takes either.
//!
//! The JSON form, as apps write it:
//! ```
//! use mishkah_core::query::Query;
//! use serde_json::json;
//! let q = Query::from_json(&json!({
//!     "where": {"status": "open", "total": {">=": 10}, "or": [{"table": "T1"}, {"table": {"in": ["T2", "T3"]}}]},
//!     "orderBy": ["-total", "id"], "limit": 20, "offset": 0, "fields": ["id", "total"]
//! })).unwrap();
//! let rows = vec![json!({"id": "a", "status": "open", "total": 12, "table": "T2"}).as_object().unwrap().clone()];
//! assert_eq!(q.run(rows.iter()).len(), 1);
//! ```

mod compare;
mod filter;
mod json_form;
mod parse;
mod print;

pub use compare::compare_values;
pub use filter::{field_value, holds, Bindings, Filter, Op, Operand, VARIABLE_ROOTS};
pub use parse::FilterError;

use std::cmp::Ordering;

use serde_json::Value;

use crate::record::Row;

/// A query could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid query: {0}")]
pub struct QueryError(pub String);

impl QueryError {
    /// `invalid-query`.
    pub fn code(&self) -> &'static str {
        "invalid-query"
    }
}

/// One sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    /// Property name.
    pub field: String,
    /// Descending order.
    pub descending: bool,
}

/// A whole query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// Which rows (all when `None`).
    pub filter: Option<Filter>,
    /// Sort keys, most significant first.
    pub order_by: Vec<Sort>,
    /// At most this many rows.
    pub limit: Option<usize>,
    /// Skip this many rows first.
    pub offset: usize,
    /// Keep only these properties (all when `None`).
    pub fields: Option<Vec<String>>,
}

impl Query {
    /// Parses `{where, orderBy, limit, offset, fields}` (`order_by`/`select` accepted too).
    pub fn from_json(value: &Value) -> Result<Query, QueryError> {
        let obj = match value {
            Value::Null => return Ok(Query::default()),
            Value::Object(obj) => obj,
            _ => return Err(QueryError("a query is an object".into())),
        };
        let mut query = Query::default();
        if let Some(w) = obj.get("where").or_else(|| obj.get("filter")).filter(|w| !w.is_null()) {
            query.filter = Some(match w {
                Value::String(text) => Filter::parse(text).map_err(|e| QueryError(e.to_string()))?,
                other => Filter::from_json(other)?,
            });
        }
        if let Some(order) = obj.get("orderBy").or_else(|| obj.get("order_by")).or_else(|| obj.get("sort")) {
            query.order_by = parse_order(order)?;
        }
        query.limit = match obj.get("limit") {
            None | Some(Value::Null) => None,
            Some(v) => {
                Some(v.as_u64().ok_or_else(|| QueryError("`limit` must be a non-negative integer".into()))? as usize)
            }
        };
        query.offset = match obj.get("offset") {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_u64().ok_or_else(|| QueryError("`offset` must be a non-negative integer".into()))? as usize,
        };
        if let Some(fields) = obj.get("fields").or_else(|| obj.get("select")).filter(|f| !f.is_null()) {
            let list = fields.as_array().ok_or_else(|| QueryError("`fields` must be an array of names".into()))?;
            let names = list
                .iter()
                .map(|f| f.as_str().map(str::to_owned).ok_or_else(|| QueryError("`fields` must hold names".into())))
                .collect::<Result<_, _>>()?;
            query.fields = Some(names);
        }
        Ok(query)
    }

    /// Whether `row` passes the filter.
    pub fn matches(&self, row: &Row) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(row))
    }

    /// Orders two rows by the sort keys.
    pub fn compare(&self, a: &Row, b: &Row) -> Ordering {
        for sort in &self.order_by {
            let null = Value::Null;
            let ord = compare_values(a.get(&sort.field).unwrap_or(&null), b.get(&sort.field).unwrap_or(&null));
            let ord = if sort.descending { ord.reverse() } else { ord };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    }

    /// Runs the query: filter, sort (stable), offset, limit, projection.
    pub fn run<'r>(&self, rows: impl IntoIterator<Item = &'r Row>) -> Vec<Row> {
        let mut hits: Vec<&Row> = rows.into_iter().filter(|r| self.matches(r)).collect();
        if !self.order_by.is_empty() {
            hits.sort_by(|a, b| self.compare(a, b));
        }
        let page = hits.into_iter().skip(self.offset).take(self.limit.unwrap_or(usize::MAX));
        match &self.fields {
            None => page.cloned().collect(),
            Some(fields) => page
                .map(|row| fields.iter().filter_map(|f| row.get(f).map(|v| (f.clone(), v.clone()))).collect())
                .collect(),
        }
    }
}

fn parse_order(value: &Value) -> Result<Vec<Sort>, QueryError> {
    let one = |v: &Value| -> Result<Sort, QueryError> {
        match v {
            Value::String(s) => Ok(match s.strip_prefix('-') {
                Some(f) => Sort { field: f.to_owned(), descending: true },
                None => Sort { field: s.clone(), descending: false },
            }),
            Value::Object(o) => {
                let field = o
                    .get("field")
                    .and_then(Value::as_str)
                    .ok_or_else(|| QueryError("sort key needs `field`".into()))?;
                let dir = o.get("dir").or_else(|| o.get("direction")).and_then(Value::as_str).unwrap_or("asc");
                Ok(Sort { field: field.to_owned(), descending: dir.eq_ignore_ascii_case("desc") })
            }
            _ => Err(QueryError("a sort key is \"field\", \"-field\" or {field, dir}".into())),
        }
    };
    match value {
        Value::Array(list) => list.iter().map(one).collect(),
        Value::Null => Ok(Vec::new()),
        other => Ok(vec![one(other)?]),
    }
}
