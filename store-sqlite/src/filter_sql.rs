//! The filter language compiled to SQL, meaning exactly what `mishkah_core`'s evaluator means
//! (property-tested against it in `server/tests/filter_sql.rs`). Every value is a bound
//! parameter; identifiers come from the schema. The SQL dialect lives here and nowhere else:
//! a PostgreSQL backend implements [`Dialect`] the same way.
//!
//! Each comparison compiles to one of two forms, both 0 or 1, never NULL (so `NOT` and SQL's
//! three-valued logic cannot disagree with the evaluator):
//! - **on the typed column**, when the field has one and the operand is a scalar of the field's
//!   own kind (or null): `("status" IS NOT NULL AND "status" = ?)` — what indexes serve. The
//!   column holds the field's value (name first, then column spelling) when it is of the field's
//!   kind, and an empty BLOB when it is not (a value stored as sent, `--validation lenient`),
//!   which equals nothing of the field's kind, is not NULL, and is kept out of `>`/`>=` by an
//!   upper bound; so comparing there is comparing the JSON values;
//! - **by the core's own comparison**, for everything else (paths into JSON, `~`, fields outside
//!   the typed columns, field against field): `mishkah_cmp(doc, spec)` runs
//!   [`mishkah_core::query::holds`] on the values the evaluator would resolve.

use mishkah_core::query::{holds, Filter, Op, Operand};
use mishkah_core::schema::{FieldType, Table};
use rusqlite::types::Value as SqlValue;
use serde_json::{json, Value};

use super::ddl::typed_columns;

/// What differs between SQL databases, for the filter compiler.
pub trait Dialect {
    /// The placeholder of the `n`-th parameter (1-based).
    fn placeholder(&self, n: usize) -> String;
    /// A call that evaluates one comparison in the server's code over the stored document.
    fn core_compare(&self, document_column: &str, spec_placeholder: &str) -> String;
    /// `~` on a text column: 1 when the column holds text containing the needle (already
    /// lowercased) case-insensitively as Rust's `to_lowercase` folds it, 0 when it holds NULL,
    /// and `otherwise` (the document decides) for anything else the column holds.
    fn text_contains(&self, column: &str, needle_placeholder: &str, otherwise: &str) -> String;
}

/// SQLite: `?N` placeholders, and `mishkah_cmp` registered on every read connection.
pub struct Sqlite;

impl Dialect for Sqlite {
    fn placeholder(&self, n: usize) -> String {
        format!("?{n}")
    }

    fn core_compare(&self, document_column: &str, spec: &str) -> String {
        format!("mishkah_cmp({document_column}, {spec})")
    }

    fn text_contains(&self, column: &str, needle: &str, otherwise: &str) -> String {
        format!(
            "(CASE WHEN typeof({column}) = 'text' THEN mishkah_contains({column}, {needle}) \
             WHEN {column} IS NULL THEN 0 ELSE {otherwise} END)"
        )
    }
}

/// A compiled filter: a boolean SQL expression and its parameters, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlFilter {
    pub sql: String,
    pub params: Vec<SqlValue>,
}

/// Compiles `filter` (variables already bound: [`Filter::bind`]; any left count as null) over
/// the rows of `table`, numbering parameters from `first_param`.
pub fn compile(dialect: &dyn Dialect, table: &Table, filter: &Filter, first_param: usize) -> SqlFilter {
    let mut c = Compiler { dialect, table, columns: typed_columns(table), params: Vec::new(), first_param };
    let sql = c.filter(filter);
    SqlFilter { sql, params: c.params }
}

struct Compiler<'a> {
    dialect: &'a dyn Dialect,
    table: &'a Table,
    columns: Vec<(String, String, &'static str)>,
    params: Vec<SqlValue>,
    first_param: usize,
}

/// The kinds of JSON value a typed column can hold.
#[derive(PartialEq)]
enum Kind {
    Text,
    Number,
    Bool,
}

fn kind_of_field(ty: FieldType) -> Option<Kind> {
    match ty {
        FieldType::Text | FieldType::Date | FieldType::Timestamp => Some(Kind::Text),
        FieldType::Integer | FieldType::Decimal => Some(Kind::Number),
        FieldType::Boolean => Some(Kind::Bool),
        FieldType::Json => None,
    }
}

fn kind_of_value(v: &Value) -> Option<Kind> {
    match v {
        Value::String(_) => Some(Kind::Text),
        Value::Number(_) => Some(Kind::Number),
        Value::Bool(_) => Some(Kind::Bool),
        _ => None,
    }
}

fn sql_scalar(v: &Value) -> SqlValue {
    match v {
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        _ => SqlValue::Null,
    }
}

fn mirrored(op: Op) -> Option<Op> {
    Some(match op {
        Op::Eq => Op::Eq,
        Op::Ne => Op::Ne,
        Op::Lt => Op::Gt,
        Op::Le => Op::Ge,
        Op::Gt => Op::Lt,
        Op::Ge => Op::Le,
        _ => return None,
    })
}

impl Compiler<'_> {
    fn param(&mut self, value: SqlValue) -> String {
        self.params.push(value);
        self.dialect.placeholder(self.first_param + self.params.len() - 1)
    }

    fn filter(&mut self, f: &Filter) -> String {
        match f {
            Filter::And(parts) if parts.is_empty() => "1".into(),
            Filter::Or(parts) if parts.is_empty() => "0".into(),
            Filter::And(parts) => self.group(parts, " AND "),
            Filter::Or(parts) => self.group(parts, " OR "),
            Filter::Not(inner) => format!("(NOT {})", self.filter(inner)),
            Filter::Compare { left, op, right } => match (left, right) {
                (Operand::Field(path), Operand::Value(v)) => {
                    self.on_column(path, *op, v).unwrap_or_else(|| self.in_core(left, *op, right))
                }
                (Operand::Value(v), Operand::Field(path)) => mirrored(*op)
                    .and_then(|m| self.on_column(path, m, v))
                    .unwrap_or_else(|| self.in_core(left, *op, right)),
                (Operand::Value(a), Operand::Value(b)) => if holds(a, *op, b) { "1" } else { "0" }.into(),
                _ => self.in_core(left, *op, right),
            },
        }
    }

    fn group(&mut self, parts: &[Filter], joiner: &str) -> String {
        let compiled: Vec<String> = parts.iter().map(|p| self.filter(p)).collect();
        format!("({})", compiled.join(joiner))
    }

    /// The typed-column form, when it means exactly what the evaluator means.
    fn on_column(&mut self, path: &[String], op: Op, value: &Value) -> Option<String> {
        let [name] = path else { return None };
        let field = self.table.field(name)?;
        let column = self.columns.iter().find(|(_, f, _)| *f == field.name)?.0.clone();
        let kind = kind_of_field(field.ty)?;
        let col = format!("\"{column}\"");
        let same = |v: &Value| kind_of_value(v).is_some_and(|k| k == kind);
        Some(match op {
            Op::Eq | Op::Ne if value.is_null() => {
                if op == Op::Eq {
                    format!("({col} IS NULL)")
                } else {
                    format!("({col} IS NOT NULL)")
                }
            }
            // Another kind can only be a value stored as sent (`--validation lenient`), which the
            // column does not hold: the document decides.
            Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge if !same(value) => return None,
            Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                let p = self.param(sql_scalar(value));
                // A value stored as sent that does not fit the column is an empty BLOB there, and
                // BLOBs sort after every number and text: bound `>` and `>=` below them.
                let above = if matches!(op, Op::Gt | Op::Ge) { format!(" AND {col} < X''") } else { String::new() };
                let test = format!(
                    "({col} IS NOT NULL AND {col} {} {p}{above})",
                    match op {
                        Op::Eq | Op::Ne => "=",
                        other => other.symbol(),
                    }
                );
                if op == Op::Ne {
                    format!("(NOT {test})")
                } else {
                    test
                }
            }
            Op::In => {
                let items = value.as_array()?;
                if items.iter().any(|v| !v.is_null() && !same(v)) {
                    return None;
                }
                let mut placeholders = Vec::new();
                for item in items.iter().filter(|v| same(v)) {
                    placeholders.push(self.param(sql_scalar(item)));
                }
                let listed = if placeholders.is_empty() {
                    "0".to_owned()
                } else {
                    format!("({col} IS NOT NULL AND {col} IN ({}))", placeholders.join(", "))
                };
                if items.iter().any(Value::is_null) {
                    format!("({listed} OR {col} IS NULL)")
                } else {
                    listed
                }
            }
            // A string needle in a text column: the column's text decides, without reading the
            // document (a value stored as sent, which the column does not hold, still does).
            Op::Contains | Op::NotContains if kind == Kind::Text => {
                let needle = value.as_str()?;
                let p = self.param(SqlValue::Text(needle.to_lowercase()));
                let spec = json!([{"f": [field.name, field.column], "p": []}, "~", {"v": value}]);
                let spec = self.param(SqlValue::Text(spec.to_string()));
                let test = self.dialect.text_contains(&col, &p, &self.dialect.core_compare("mishkah_doc", &spec));
                if op == Op::NotContains {
                    format!("(NOT {test})")
                } else {
                    test
                }
            }
            Op::Contains | Op::NotContains => return None,
        })
    }

    fn in_core(&mut self, left: &Operand, op: Op, right: &Operand) -> String {
        let spec = json!([self.operand_spec(left), op.symbol(), self.operand_spec(right)]);
        let p = self.param(SqlValue::Text(spec.to_string()));
        self.dialect.core_compare("mishkah_doc", &p)
    }

    /// A field as the names to try (the schema field's name, then its column) and the path below.
    fn operand_spec(&self, operand: &Operand) -> Value {
        match operand {
            Operand::Field(path) => {
                let (first, rest) = path.split_first().map(|(f, r)| (f.clone(), r.to_vec())).unwrap_or_default();
                let names = match self.table.field(&first) {
                    Some(field) => vec![field.name.clone(), field.column.clone()],
                    None => vec![first],
                };
                json!({"f": names, "p": rest})
            }
            Operand::Value(v) => json!({"v": v}),
            Operand::Var(_) => json!({"v": null}),
        }
    }
}

/// The SQL expression a page may be sorted by for `name`: the typed column of a scalar field
/// (the order of its values is the core's order: nulls first, then by value), or the row's
/// `createdAt` / `updatedAt`. `None` for anything else (JSON fields, unknown names): sorting on a
/// JSON blob has no order worth promising.
pub fn sort_expr(table: &Table, name: &str) -> Option<String> {
    if let Some(field) = table.field(name) {
        if kind_of_field(field.ty).is_some() {
            if let Some((column, _, _)) = typed_columns(table).into_iter().find(|(_, f, _)| *f == field.name) {
                return Some(format!("\"{column}\""));
            }
        }
    }
    matches!(name, "createdAt" | "updatedAt").then(|| format!("json_extract(mishkah_doc, '$.{name}')"))
}

/// `ORDER BY` for sort expressions, insertion order (the rowid, in the last key's direction)
/// breaking ties: the order is total, a cursor lands between two rows, and an index on the last
/// key serves the whole order (its entries end with the rowid).
pub fn order_by(sorts: &[(String, bool)]) -> String {
    let dir = |desc: bool| if desc { "DESC" } else { "ASC" };
    let mut keys: Vec<String> = sorts.iter().map(|(expr, desc)| format!("{expr} {}", dir(*desc))).collect();
    keys.push(format!("rowid {}", dir(sorts.last().is_some_and(|(_, desc)| *desc))));
    keys.join(", ")
}

/// Rows of table `sql_table` after the cursor `(values, key)` in the order [`order_by`] gives,
/// NULLs included (first ascending, last descending, as SQLite sorts them).
pub fn after_cursor(
    dialect: &dyn Dialect,
    sql_table: &str,
    sorts: &[(String, bool)],
    values: &[Value],
    key: &str,
    first_param: usize,
) -> SqlFilter {
    let mut params = Vec::new();
    let mut param = |v: SqlValue| {
        params.push(v);
        dialect.placeholder(first_param + params.len() - 1)
    };
    let mut clauses = Vec::new();
    let mut equal_so_far: Vec<String> = Vec::new();
    for ((expr, desc), value) in sorts.iter().zip(values) {
        let beyond = match (value.is_null(), desc) {
            (true, false) => format!("{expr} IS NOT NULL"),
            (true, true) => "0".into(),
            (false, false) => format!("COALESCE({expr} > {}, 0)", param(sql_scalar(value))),
            (false, true) => format!("({expr} < {} OR {expr} IS NULL)", param(sql_scalar(value))),
        };
        clauses.push(if equal_so_far.is_empty() {
            beyond
        } else {
            format!("({} AND {beyond})", equal_so_far.join(" AND "))
        });
        equal_so_far.push(format!("{expr} IS {}", param(sql_scalar(value))));
    }
    let past = if sorts.last().is_some_and(|(_, desc)| *desc) { "<" } else { ">" };
    let last = format!(
        "rowid {past} (SELECT rowid FROM \"{sql_table}\" WHERE mishkah_key = {})",
        param(SqlValue::Text(key.to_owned()))
    );
    clauses.push(if equal_so_far.is_empty() { last } else { format!("({} AND {last})", equal_so_far.join(" AND ")) });
    SqlFilter { sql: format!("({})", clauses.join(" OR ")), params }
}

/// `mishkah_cmp(doc, spec)`: the core's comparison over a stored document. Registered on read
/// connections by [`register`].
fn core_compare(doc: &str, spec: &str) -> bool {
    let (Ok(doc), Ok(spec)) = (serde_json::from_str::<Value>(doc), serde_json::from_str::<Value>(spec)) else {
        return false;
    };
    let [left, op, right] = spec.as_array().map(Vec::as_slice).unwrap_or_default() else { return false };
    let op = match op.as_str() {
        Some("=") => Op::Eq,
        Some("!=") => Op::Ne,
        Some("<") => Op::Lt,
        Some("<=") => Op::Le,
        Some(">") => Op::Gt,
        Some(">=") => Op::Ge,
        Some("in") => Op::In,
        Some("~") => Op::Contains,
        Some("!~") => Op::NotContains,
        _ => return false,
    };
    holds(resolve(&doc, left), op, resolve(&doc, right))
}

const NULL: Value = Value::Null;

fn resolve<'d>(doc: &'d Value, spec: &'d Value) -> &'d Value {
    if let Some(v) = spec.get("v") {
        return v;
    }
    let names = spec.get("f").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str);
    let Some(mut value) = names.into_iter().find_map(|n| doc.get(n)) else { return &NULL };
    for step in spec.get("p").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        value = match value {
            Value::Object(map) => match map.get(step) {
                Some(v) => v,
                None => return &NULL,
            },
            Value::Array(items) => match step.parse::<usize>().ok().and_then(|i| items.get(i)) {
                Some(v) => v,
                None => return &NULL,
            },
            _ => return &NULL,
        };
    }
    value
}

/// Registers `mishkah_cmp` and `mishkah_contains` on a connection that runs compiled filters.
pub fn register(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "mishkah_contains",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let text = ctx.get_raw(0).as_str().map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
            let needle = ctx.get_raw(1).as_str().map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
            Ok(i64::from(contains_folded(text, needle)))
        },
    )?;
    conn.create_scalar_function(
        "mishkah_cmp",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let doc: String = ctx.get(0)?;
            let spec: String = ctx.get(1)?;
            Ok(i64::from(core_compare(&doc, &spec)))
        },
    )
}

/// Whether `text` contains `needle` (already lowercased) as the core's `~` decides: both folded
/// by `to_lowercase`. ASCII text is folded without a copy.
fn contains_folded(text: &str, needle: &str) -> bool {
    if text.is_ascii() && needle.is_ascii() {
        let (t, n) = (text.as_bytes(), needle.as_bytes());
        return n.is_empty() || t.windows(n.len()).any(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b));
    }
    text.to_lowercase().contains(needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mishkah_core::Schema;

    fn table() -> Table {
        let schema = Schema::from_json(&json!({"schema": {"tables": [{"name": "t", "fields": [
            {"name": "id", "type": "string", "primaryKey": true},
            {"name": "statusId", "columnName": "status_id", "type": "string"},
            {"name": "total", "type": "decimal"},
            {"name": "name", "type": "json"}]}]}}))
        .unwrap();
        schema.table("t").unwrap().clone()
    }

    #[test]
    fn scalar_comparisons_on_typed_fields_use_the_column_and_bind_every_value() {
        let f = Filter::parse(r#"statusId = "open" && total >= 10 && !(statusId in ["a", null])"#).unwrap();
        let c = compile(&Sqlite, &table(), &f, 1);
        assert_eq!(
            c.sql,
            "((\"status_id\" IS NOT NULL AND \"status_id\" = ?1) AND (\"total\" IS NOT NULL AND \"total\" >= ?2 AND \"total\" < X'') \
             AND (NOT ((\"status_id\" IS NOT NULL AND \"status_id\" IN (?3)) OR \"status_id\" IS NULL)))"
        );
        assert_eq!(c.params, vec![SqlValue::Text("open".into()), SqlValue::Integer(10), SqlValue::Text("a".into())]);
    }

    #[test]
    fn everything_else_runs_the_cores_comparison() {
        let f = Filter::parse(r#"name.en ~ "kosh" || 5 < total || total = "5" || other = 1"#).unwrap();
        let c = compile(&Sqlite, &table(), &f, 1);
        assert_eq!(c.sql, "(mishkah_cmp(mishkah_doc, ?1) OR (\"total\" IS NOT NULL AND \"total\" > ?2 AND \"total\" < X'') OR mishkah_cmp(mishkah_doc, ?3) OR mishkah_cmp(mishkah_doc, ?4))");
        let doc = json!({"name": {"en": "Koshary"}}).to_string();
        let SqlValue::Text(spec) = &c.params[0] else { panic!() };
        assert!(core_compare(&doc, spec));
    }

    #[test]
    fn contains_on_a_text_field_reads_its_column_not_the_document() {
        let f = Filter::parse(r#"statusId ~ "OP" && !(statusId ~ "x")"#).unwrap();
        let c = compile(&Sqlite, &table(), &f, 1);
        assert!(!c.sql.starts_with("(mishkah_cmp"), "{}", c.sql);
        assert!(c.sql.contains("mishkah_contains(\"status_id\", ?1)"), "{}", c.sql);
        assert_eq!(c.params[0], SqlValue::Text("op".into()), "the needle is folded once, at compile time");
        for (text, needle, expected) in [
            ("Open", "op", true),
            ("OPEN", "pen", true),
            ("closed", "op", false),
            ("", "", true),
            ("ab", "abc", false),
            ("KOSHARY كشري", "كشري", true),
            ("\u{212A}oshary", "kosh", true),
            ("İstanbul", "i\u{307}st", true),
        ] {
            let folded = needle.to_lowercase();
            assert_eq!(contains_folded(text, &folded), text.to_lowercase().contains(&folded), "{text} ~ {needle}");
            assert_eq!(contains_folded(text, &folded), expected, "{text} ~ {needle}");
        }
    }
}
