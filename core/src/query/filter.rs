//! The filter language's syntax tree and its one evaluator over rows in memory (the browser
//! store, fan-out, rules). Both written forms — the string form ([`Filter::parse`], in
//! `parse.rs`; printed by `Display`, in `print.rs`) and the JSON form ([`Filter::from_json`],
//! in `json_form.rs`) — produce this tree, so anything one can say, the other can.
//!
//! Semantics, which the SQL compiler must reproduce:
//! - A missing field, a missing path step and an unbound variable are `null`.
//! - `=` / `!=`: numbers by value (`1 = 1.0`), everything else by JSON equality; `x = null` holds
//!   for a missing `x`.
//! - `<` `<=` `>` `>=`: only between two numbers, two strings (by code point) or two booleans;
//!   otherwise (nulls included) false.
//! - `in [..]`: equal (as `=`) to one element.
//! - `~`: a string containing the other, case-insensitively (Unicode lowercase); an array
//!   holding an element equal to it. `!~` is its negation (true for a missing field).

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::compare::compare_values;
use crate::record::Row;
use crate::schema::Table;
use crate::time::Timestamp;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `=`
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
    /// `in [..]`
    In,
    /// `~`: contains, case-insensitive (an element, for arrays).
    Contains,
    /// `!~`
    NotContains,
}

impl Op {
    /// The string form's symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::In => "in",
            Op::Contains => "~",
            Op::NotContains => "!~",
        }
    }
}

/// A side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A path into the row (`statusId`, `name.en`).
    Field(Vec<String>),
    /// A path into the bindings (`@auth.role`, `@request.branch`, `@now`, `@new.statusId`).
    Var(Vec<String>),
    /// A JSON value.
    Value(Value),
}

/// Roots a variable may start with; the security rules bind `auth`, `request`, `new` and `row`.
pub const VARIABLE_ROOTS: [&str; 5] = ["now", "auth", "request", "new", "row"];

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// All must hold (`&&`; none: `true`).
    And(Vec<Filter>),
    /// At least one must hold (`||`; none: `false`).
    Or(Vec<Filter>),
    /// `!(..)`
    Not(Box<Filter>),
    /// `left op right`.
    Compare {
        /// Left side.
        left: Operand,
        /// Operator.
        op: Op,
        /// Right side.
        right: Operand,
    },
}

/// Values of the variables a filter may name, by root: `now` → `"2025-…Z"`, `auth` → claims.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bindings(Map<String, Value>);

impl Bindings {
    /// Bindings with `@now` set to `now` (ISO-8601, as timestamps are stored).
    pub fn at(now: Timestamp) -> Bindings {
        let mut map = Map::new();
        map.insert("now".into(), Value::String(now.to_iso()));
        Bindings(map)
    }

    /// Binds a root (`auth`, `request`, `new`, `row`).
    pub fn with(mut self, root: &str, value: Value) -> Bindings {
        self.0.insert(root.to_owned(), value);
        self
    }

    /// Binds `@now` to `now` (ISO-8601).
    pub fn with_now(self, now: Timestamp) -> Bindings {
        self.with("now", Value::String(now.to_iso()))
    }

    fn get(&self, path: &[String]) -> Option<&Value> {
        let (root, rest) = path.split_first()?;
        walk(self.0.get(root)?, rest)
    }
}

fn walk<'v>(mut value: &'v Value, path: &[String]) -> Option<&'v Value> {
    for step in path {
        value = match value {
            Value::Object(map) => map.get(step)?,
            Value::Array(items) => items.get(step.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

const NULL: Value = Value::Null;

impl Operand {
    /// A field operand from a dotted path (`"name.en"`).
    pub fn field(path: &str) -> Operand {
        Operand::Field(path.split('.').map(str::to_owned).collect())
    }

    fn resolve<'a>(&'a self, table: Option<&Table>, row: &'a Row, bindings: &'a Bindings) -> &'a Value {
        match self {
            Operand::Value(v) => v,
            Operand::Field(path) => field_value(table, row, path),
            Operand::Var(path) => bindings.get(path).unwrap_or(&NULL),
        }
    }
}

/// The value at `path` in `row`. With the row's table, the first step may name a schema field by
/// its name or its column, and the row may carry it under either (its name first), as storage
/// reads it for the typed column.
pub fn field_value<'r>(table: Option<&Table>, row: &'r Row, path: &[String]) -> &'r Value {
    let Some((first, rest)) = path.split_first() else { return &NULL };
    let top = match table.and_then(|t| t.field(first)) {
        Some(field) => row.get(&field.name).or_else(|| row.get(&field.column)),
        None => row.get(first),
    };
    top.and_then(|v| walk(v, rest)).unwrap_or(&NULL)
}

impl Filter {
    /// `left op right`.
    pub fn compare(left: Operand, op: Op, right: Operand) -> Filter {
        Filter::Compare { left, op, right }
    }

    /// Whether `row` passes, with no variables bound.
    pub fn matches(&self, row: &Row) -> bool {
        self.eval(row, &Bindings::default())
    }

    /// Whether `row` passes, variables taken from `bindings`.
    pub fn eval(&self, row: &Row, bindings: &Bindings) -> bool {
        self.eval_in(None, row, bindings)
    }

    /// Whether `row` of `table` passes: fields are found under their name or column
    /// ([`field_value`]), as the SQL compiler finds them.
    pub fn eval_in(&self, table: Option<&Table>, row: &Row, bindings: &Bindings) -> bool {
        match self {
            Filter::And(all) => all.iter().all(|f| f.eval_in(table, row, bindings)),
            Filter::Or(any) => any.iter().any(|f| f.eval_in(table, row, bindings)),
            Filter::Not(inner) => !inner.eval_in(table, row, bindings),
            Filter::Compare { left, op, right } => {
                holds(left.resolve(table, row, bindings), *op, right.resolve(table, row, bindings))
            }
        }
    }

    /// The filter with every variable replaced by its value in `bindings` (`null` when unbound),
    /// so it can be compiled to SQL with values as parameters.
    pub fn bind(&self, bindings: &Bindings) -> Filter {
        self.map_operands(&mut |o| match o {
            Operand::Var(path) => Operand::Value(bindings.get(path).cloned().unwrap_or(Value::Null)),
            other => other.clone(),
        })
    }

    /// The filter with the variables whose root `bindings` binds replaced by their values (`null`
    /// when the path inside is missing); the others are kept, to be bound later (`@now` of a
    /// rule bound per subscriber and evaluated per change).
    pub fn substitute(&self, bindings: &Bindings) -> Filter {
        self.map_operands(&mut |o| match o {
            Operand::Var(path) if path.first().is_some_and(|root| bindings.0.contains_key(root)) => {
                Operand::Value(bindings.get(path).cloned().unwrap_or(Value::Null))
            }
            other => other.clone(),
        })
    }

    /// The filter with every comparison of two values decided: `true` is `And([])`, `false` is
    /// `Or([])`, and groups lose their decided members (a rule whose variables are bound often
    /// reduces to one of them, or to its row conditions alone).
    pub fn simplify(self) -> Filter {
        let (yes, no) = (Filter::And(Vec::new()), Filter::Or(Vec::new()));
        match self {
            Filter::Compare { left: Operand::Value(l), op, right: Operand::Value(r) } => {
                if holds(&l, op, &r) {
                    yes
                } else {
                    no
                }
            }
            c @ Filter::Compare { .. } => c,
            Filter::Not(inner) => match inner.simplify() {
                Filter::And(p) if p.is_empty() => no,
                Filter::Or(p) if p.is_empty() => yes,
                other => Filter::Not(Box::new(other)),
            },
            Filter::And(parts) => simplify_group(parts, true),
            Filter::Or(parts) => simplify_group(parts, false),
        }
    }

    /// The filter with each operand replaced by `f(operand)`.
    pub fn map_operands(&self, f: &mut impl FnMut(&Operand) -> Operand) -> Filter {
        match self {
            Filter::And(parts) => Filter::And(parts.iter().map(|p| p.map_operands(f)).collect()),
            Filter::Or(parts) => Filter::Or(parts.iter().map(|p| p.map_operands(f)).collect()),
            Filter::Not(inner) => Filter::Not(Box::new(inner.map_operands(f))),
            Filter::Compare { left, op, right } => Filter::Compare { left: f(left), op: *op, right: f(right) },
        }
    }

    /// The canonical shape both parsers produce: groups of one are their member, nested groups of
    /// the same kind are merged, `!!x` is `x`. Printing and re-parsing a canonical filter gives it
    /// back unchanged.
    pub fn normalize(self) -> Filter {
        match self {
            Filter::And(parts) => group(parts, true),
            Filter::Or(parts) => group(parts, false),
            Filter::Not(inner) => match inner.normalize() {
                Filter::Not(x) => *x,
                other => Filter::Not(Box::new(other)),
            },
            c @ Filter::Compare { .. } => c,
        }
    }

    /// Every variable the filter names (for validating rules against what is bound).
    pub fn variables(&self) -> Vec<&[String]> {
        self.operands().filter_map(|o| if let Operand::Var(path) = o { Some(path.as_slice()) } else { None }).collect()
    }

    /// Every field path the filter reads (for validating it against a schema).
    pub fn fields(&self) -> Vec<&[String]> {
        self.operands()
            .filter_map(|o| if let Operand::Field(path) = o { Some(path.as_slice()) } else { None })
            .collect()
    }

    /// How big the filter is: its comparisons, and the values of its `in` lists. What a server
    /// bounds before it compiles a client's filter (a database refuses expressions past a depth).
    pub fn size(&self) -> (usize, usize) {
        let (mut comparisons, mut listed) = (0, 0);
        self.visit(&mut |f| {
            if let Filter::Compare { right, left, .. } = f {
                comparisons += 1;
                for side in [left, right] {
                    if let Operand::Value(Value::Array(items)) = side {
                        listed += items.len();
                    }
                }
            }
        });
        (comparisons, listed)
    }

    /// Both sides of every comparison, in order.
    fn operands(&self) -> impl Iterator<Item = &Operand> {
        let mut out = Vec::new();
        self.visit(&mut |f| {
            if let Filter::Compare { left, right, .. } = f {
                out.push(left);
                out.push(right);
            }
        });
        out.into_iter()
    }

    fn visit<'a>(&'a self, f: &mut impl FnMut(&'a Filter)) {
        f(self);
        match self {
            Filter::And(parts) | Filter::Or(parts) => parts.iter().for_each(|p| p.visit(f)),
            Filter::Not(inner) => inner.visit(f),
            Filter::Compare { .. } => {}
        }
    }
}

/// An `and` (or `or`) group simplified: members that are its identity (`true` for `and`) are
/// dropped, one that absorbs it (`false` for `and`) decides the whole group.
fn simplify_group(parts: Vec<Filter>, and: bool) -> Filter {
    let mut kept = Vec::with_capacity(parts.len());
    for part in parts.into_iter().map(Filter::simplify) {
        match (&part, and) {
            (Filter::And(p), true) | (Filter::Or(p), false) if p.is_empty() => {}
            (Filter::Or(p), true) | (Filter::And(p), false) if p.is_empty() => return part,
            _ => kept.push(part),
        }
    }
    group(kept, and)
}

fn group(parts: Vec<Filter>, and: bool) -> Filter {
    let mut flat = Vec::with_capacity(parts.len());
    for part in parts.into_iter().map(Filter::normalize) {
        match (part, and) {
            (Filter::And(inner), true) | (Filter::Or(inner), false) => flat.extend(inner),
            (other, _) => flat.push(other),
        }
    }
    if flat.len() == 1 {
        return flat.remove(0);
    }
    if and {
        Filter::And(flat)
    } else {
        Filter::Or(flat)
    }
}

/// Whether `left op right` holds for two resolved values: the one definition of each operator.
pub fn holds(left: &Value, op: Op, right: &Value) -> bool {
    match op {
        Op::Eq => equal(left, right),
        Op::Ne => !equal(left, right),
        Op::Lt | Op::Le | Op::Gt | Op::Ge => {
            let same_kind = matches!(
                (left, right),
                (Value::Number(_), Value::Number(_))
                    | (Value::String(_), Value::String(_))
                    | (Value::Bool(_), Value::Bool(_))
            );
            if !same_kind {
                return false;
            }
            let ord = compare_values(left, right);
            match op {
                Op::Lt => ord == Ordering::Less,
                Op::Le => ord != Ordering::Greater,
                Op::Gt => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            }
        }
        Op::In => right.as_array().is_some_and(|items| items.iter().any(|v| equal(left, v))),
        Op::Contains => contains(left, right),
        Op::NotContains => !contains(left, right),
    }
}

fn contains(haystack: &Value, needle: &Value) -> bool {
    match (haystack, needle) {
        (Value::String(s), Value::String(n)) => s.to_lowercase().contains(&n.to_lowercase()),
        (Value::Array(items), needle) => items.iter().any(|v| equal(v, needle)),
        _ => false,
    }
}

/// Equality where `1` equals `1.0` (numbers compare by value).
fn equal(a: &Value, b: &Value) -> bool {
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
        assert_eq!(ids(json!({"where": {"name": {"~": "KOSH"}}})), ["b"], "case-insensitive");
        assert_eq!(ids(json!({"where": {"tags": {"contains": "hot"}}})), ["a"]);
        assert_eq!(ids(json!({"where": {"or": [{"id": "a"}, {"status": "void"}]}})), ["a", "d"]);
        assert_eq!(ids(json!({"where": {"and": [{"status": "open"}, {"total": 12.5}]}})), ["c"]);
        assert_eq!(ids(json!({"where": {"not": {"status": "open"}}})), ["b", "d"]);
    }

    #[test]
    fn nulls_missing_fields_and_mixed_types_follow_the_documented_rules() {
        let r = |v: Value| v.as_object().unwrap().clone();
        let f = |s: &str| Filter::parse(s).unwrap();
        let row = r(json!({"n": 3, "s": "3", "z": null, "name": {"en": "Koshary", "ar": "كُشَري"}}));
        assert!(f("missing = null && z = null && !(n = null)").matches(&row));
        assert!(!f("missing > 1").matches(&row) && !f("missing <= 1").matches(&row));
        assert!(!f("n = \"3\"").matches(&row) && !f("s > 2").matches(&row), "no cross-type comparison");
        assert!(f("n = 3.0 && name.en ~ \"kosh\" && missing !~ \"x\"").matches(&row));
        assert!(f("name.ar ~ \"كُشَري\" && !(name.fr ~ \"\")").matches(&row));
    }

    #[test]
    fn variables_come_from_the_bindings_and_are_null_when_unbound() {
        let row = json!({"statusId": "cooking", "at": "2020-01-01T00:00:00.000Z"}).as_object().unwrap().clone();
        let f = Filter::parse("@auth.role = \"kitchen\" && statusId in [\"cooking\", \"ready\"] && at < @now").unwrap();
        let bound = Bindings::at(Timestamp(1_765_030_940_349)).with("auth", json!({"role": "kitchen"}));
        assert!(f.eval(&row, &bound));
        assert!(!f.matches(&row), "unbound: @auth.role is null");
        assert_eq!(f.variables(), vec![&["auth".to_string(), "role".to_string()][..], &["now".to_string()][..]]);
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
            json!({"where": "status = "}),
            json!({"limit": -1}),
            json!({"orderBy": [3]}),
            json!([]),
        ] {
            assert!(Query::from_json(&bad).is_err(), "{bad}");
        }
    }
}
