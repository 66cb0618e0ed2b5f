//! The filter language narrowed in SQL on the typed columns, where PostgreSQL means exactly what
//! the core's evaluator means: scalar comparisons of a field with a value of its own kind (text
//! under `COLLATE "C"`, numbers as `NUMERIC`, booleans), `in` lists, null tests (a value stored as
//! sent is NULL in its column and named in `mishkah_misfits`, so it is told apart from a null),
//! `~`/`!~` of a text field and a string (lowered by ICU's root locale, which folds as Rust's
//! `to_lowercase` does; on a column some row holds a value stored as sent in, the evaluator
//! decides: [`Fold::refused`]), and `&&`, `||`, `!` of those. `~` and `=` of a string through a path into a JSON field narrow to the rows whose
//! field's JSON text holds it (a superset). Anything else (other paths into JSON, field against
//! field) is left to the evaluator: the SQL then selects a superset, which the evaluator filters
//! ([`Narrowed::exact`] says whether it must).

use mishkah_core::query::{holds, Filter, Op, Operand};
use mishkah_core::schema::{FieldType, Table};
use mishkah_store::layout::typed_fields;
use serde_json::Value;

/// A `WHERE` condition and its parameters (text, cast in the SQL), numbered from 1.
pub(crate) struct Narrowed {
    pub sql: String,
    pub params: Vec<String>,
    /// The condition selects exactly the rows the filter lets through.
    pub exact: bool,
    /// The columns `~` was compiled on: exact only while no row holds a value of another kind
    /// in them ([`Fold::refused`]).
    pub contains_on: Vec<String>,
}

/// The collation whose `lower` folds case as the core does (Unicode's default case mapping);
/// a server built without ICU lacks it, and `~` is then left to the evaluator.
pub(crate) const UNICODE_LOWER: &str = "und-x-icu";

/// What `~` may be compiled on.
pub(crate) struct Fold<'a> {
    /// The database has [`UNICODE_LOWER`].
    pub unicode_lower: bool,
    /// Columns some row of the table holds a value of another kind in (stored as sent): `~` on
    /// them is the document's to decide (an array stored as sent contains its members).
    pub refused: &'a [String],
}

/// The condition for `filter` over `table`, or `None` when nothing of it can narrow in SQL.
pub(crate) fn narrow(table: &Table, filter: &Filter, fold: &Fold<'_>) -> Option<Narrowed> {
    let mut c = Compiler { table, columns: typed_fields(table), params: Vec::new(), fold, contains_on: Vec::new() };
    let (sql, exact) = c.filter(filter)?;
    Some(Narrowed { sql, params: c.params, exact, contains_on: c.contains_on })
}

struct Compiler<'t> {
    table: &'t Table,
    columns: Vec<(String, String, FieldType)>,
    params: Vec<String>,
    fold: &'t Fold<'t>,
    contains_on: Vec<String>,
}

impl Compiler<'_> {
    /// `(sql, exact)`; `None`: unknown (every row may pass), and the parameters of what was
    /// compiled of it and dropped are dropped too.
    fn filter(&mut self, f: &Filter) -> Option<(String, bool)> {
        let (mark, contains_mark) = (self.params.len(), self.contains_on.len());
        let compiled = self.compile(f);
        if compiled.is_none() {
            self.params.truncate(mark);
            self.contains_on.truncate(contains_mark);
        }
        compiled
    }

    fn compile(&mut self, f: &Filter) -> Option<(String, bool)> {
        match f {
            Filter::And(parts) => {
                let compiled: Vec<Option<(String, bool)>> = parts.iter().map(|p| self.filter(p)).collect();
                let exact = compiled.iter().all(|c| c.as_ref().is_some_and(|(_, e)| *e));
                let known: Vec<String> = compiled.into_iter().flatten().map(|(s, _)| s).collect();
                match known.is_empty() {
                    true if parts.is_empty() => Some(("TRUE".into(), true)),
                    true => None,
                    false => Some((format!("({})", known.join(" AND ")), exact)),
                }
            }
            Filter::Or(parts) => {
                if parts.is_empty() {
                    return Some(("FALSE".into(), true));
                }
                let compiled: Option<Vec<(String, bool)>> = parts.iter().map(|p| self.filter(p)).collect();
                let compiled = compiled?;
                let exact = compiled.iter().all(|(_, e)| *e);
                Some((format!("({})", compiled.into_iter().map(|(s, _)| s).collect::<Vec<_>>().join(" OR ")), exact))
            }
            Filter::Not(inner) => match self.filter(inner)? {
                (sql, true) => Some((format!("(NOT {sql})"), true)),
                // The complement of a superset is not a superset of the complement.
                (_, false) => None,
            },
            Filter::Compare { left, op, right } => match (left, right) {
                (Operand::Field(path), Operand::Value(v)) if path.len() > 1 => {
                    self.on_json_path(path, *op, v).map(|s| (s, false))
                }
                (Operand::Field(path), Operand::Value(v)) => self.on_column(path, *op, v).map(|s| (s, true)),
                (Operand::Value(a), Operand::Value(b)) => {
                    Some((if holds(a, *op, b) { "TRUE" } else { "FALSE" }.into(), true))
                }
                _ => None,
            },
        }
    }

    /// A path into a JSON field (`name.en ~ "kosh"`, `name.en = "Koshary"`), narrowed to the rows
    /// whose field's JSON text holds the needle (lowered, for `~`) or the value as JSON writes
    /// it (`=`): every row whose value matches does (a string is written verbatim in the JSON
    /// text but for the characters JSON escapes, which such a needle must not hold), so the
    /// evaluator decides among fewer rows.
    fn on_json_path(&mut self, path: &[String], op: Op, value: &Value) -> Option<String> {
        let field = self.table.field(&path[0])?;
        let (column, _, ty) = self.columns.iter().find(|(_, f, _)| *f == field.name)?.clone();
        let Value::String(text) = value else { return None };
        if ty != FieldType::Json {
            return None;
        }
        let col = format!("\"{column}\"");
        match op {
            Op::Contains if self.fold.unicode_lower => {
                if text.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
                    return None;
                }
                let lowered = self.param(text.to_lowercase(), "")?;
                Some(format!("({col} IS NOT NULL AND strpos(lower({col} COLLATE \"{UNICODE_LOWER}\"), {lowered}) > 0)"))
            }
            Op::Eq => {
                let written = self.param(value.to_string(), "")?;
                Some(format!("({col} IS NOT NULL AND strpos({col}, {written}) > 0)"))
            }
            _ => None,
        }
    }

    /// `None` for a text PostgreSQL cannot hold (a NUL): the evaluator decides that part.
    fn param(&mut self, value: String, cast: &str) -> Option<String> {
        if value.contains('\0') {
            return None;
        }
        self.params.push(value);
        Some(format!("${}::text{cast}", self.params.len()))
    }

    fn on_column(&mut self, path: &[String], op: Op, value: &Value) -> Option<String> {
        let [name] = path else { return None };
        let field = self.table.field(name)?;
        let (column, _, ty) = self.columns.iter().find(|(_, f, _)| *f == field.name)?.clone();
        let cast = match ty {
            FieldType::Text | FieldType::Date | FieldType::Timestamp => "",
            FieldType::Integer | FieldType::Decimal => "::numeric",
            FieldType::Boolean => "::boolean",
            FieldType::Json => return None,
        };
        let col = format!("\"{column}\"");
        let misfit =
            format!("(mishkah_misfits IS NOT NULL AND strpos(',' || mishkah_misfits || ',', ',{column},') > 0)");
        let null = format!("({col} IS NULL AND NOT {misfit})");
        let text_of = |v: &Value| -> Option<String> {
            match (ty, v) {
                (FieldType::Text | FieldType::Date | FieldType::Timestamp, Value::String(s)) => Some(s.clone()),
                (FieldType::Integer | FieldType::Decimal, Value::Number(n)) => Some(n.to_string()),
                (FieldType::Boolean, Value::Bool(b)) => Some(b.to_string()),
                _ => None,
            }
        };
        Some(match op {
            Op::Eq if value.is_null() => null,
            Op::Ne if value.is_null() => format!("(NOT {null})"),
            Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                let p = self.param(text_of(value)?, cast)?;
                let symbol = match op {
                    Op::Eq | Op::Ne => "=",
                    other => other.symbol(),
                };
                let test = format!("({col} IS NOT NULL AND {col} {symbol} {p})");
                if op == Op::Ne {
                    format!("(NOT {test})")
                } else {
                    test
                }
            }
            Op::In => {
                let items = value.as_array()?;
                let values: Option<Vec<String>> = items.iter().filter(|v| !v.is_null()).map(text_of).collect();
                let placeholders: Vec<String> =
                    values?.into_iter().map(|v| self.param(v, cast)).collect::<Option<_>>()?;
                let listed = match placeholders.is_empty() {
                    true => "FALSE".to_owned(),
                    false => format!("({col} IS NOT NULL AND {col} IN ({}))", placeholders.join(", ")),
                };
                match items.iter().any(Value::is_null) {
                    true => format!("({listed} OR {null})"),
                    false => listed,
                }
            }
            Op::Contains | Op::NotContains => {
                let contains = self.contains(&column, ty, value)?;
                match op {
                    Op::Contains => contains,
                    _ => format!("(NOT {contains})"),
                }
            }
        })
    }

    /// `~` on a text column, as the core decides it (text contains the needle, both lowered; a
    /// null or missing value contains nothing) for a table none of whose rows holds a value of
    /// another kind in the column (which only the document holds: [`Fold::refused`]).
    fn contains(&mut self, column: &str, ty: FieldType, needle: &Value) -> Option<String> {
        let (FieldType::Text | FieldType::Date | FieldType::Timestamp, Value::String(text)) = (ty, needle) else {
            return None;
        };
        if !self.fold.unicode_lower || self.fold.refused.iter().any(|c| c == column) {
            return None;
        }
        let lowered = self.param(text.to_lowercase(), "")?;
        self.contains_on.push(column.to_owned());
        let col = format!("\"{column}\"");
        Some(format!("({col} IS NOT NULL AND strpos(lower({col} COLLATE \"{UNICODE_LOWER}\"), {lowered}) > 0)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mishkah_core::Schema;
    use serde_json::json;

    const ALL: Fold<'static> = Fold { unicode_lower: true, refused: &[] };

    fn table() -> Table {
        let schema = Schema::from_json(&json!({"schema": {"tables": [{"name": "t", "fields": [
            {"name": "id", "type": "string", "primaryKey": true},
            {"name": "status", "type": "string"},
            {"name": "total", "type": "decimal"},
            {"name": "name", "type": "json"}]}]}}))
        .unwrap();
        schema.table("t").unwrap().clone()
    }

    #[test]
    fn typed_comparisons_narrow_exactly_and_the_rest_leaves_a_superset() {
        let exact = narrow(&table(), &Filter::parse(r#"status = "open" && total >= 10"#).unwrap(), &ALL).unwrap();
        assert!(exact.exact, "{}", exact.sql);
        assert_eq!(exact.params, ["open", "10"]);
        let partial =
            narrow(&table(), &Filter::parse(r#"status = "open" && name.en ~ "kosh""#).unwrap(), &ALL).unwrap();
        assert!(!partial.exact && partial.sql.contains("\"status\""), "{}", partial.sql);
        let either = narrow(&table(), &Filter::parse(r#"status = "open" || name.en ~ "kosh""#).unwrap(), &ALL).unwrap();
        assert!(!either.exact && either.sql.contains("strpos(lower(\"name\""), "{}", either.sql);
        let escaped = narrow(&table(), &Filter::parse(r#"name.en ~ "a\"b""#).unwrap(), &ALL);
        assert!(escaped.is_none(), "a needle JSON escapes narrows nothing");
        assert!(narrow(&table(), &Filter::parse(r#"!(status = "a" && name.en ~ "k")"#).unwrap(), &ALL).is_none());
        assert!(
            narrow(&table(), &Filter::parse(r#"status = 5"#).unwrap(), &ALL).is_none(),
            "another kind: the document"
        );
    }

    #[test]
    fn a_dropped_part_takes_its_parameters_with_it() {
        for filter in [
            r#"status = "x" && !(status = "a" && name.en ~ "k")"#,
            r#"status = "x" && (total > 1 || name.en ~ "k") && total < 9"#,
        ] {
            let n = narrow(&table(), &Filter::parse(filter).unwrap(), &ALL).unwrap();
            let placeholders = (1..=n.params.len()).filter(|i| n.sql.contains(&format!("${i}::"))).count();
            assert_eq!(
                (placeholders, n.params.len()),
                (n.params.len(), n.sql.matches('$').count()),
                "{filter}: {}",
                n.sql
            );
        }
    }
}
