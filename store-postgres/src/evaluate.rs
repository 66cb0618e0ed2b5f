//! Filters, sorts, cursors and aggregates on PostgreSQL.
//!
//! A page whose filter the typed columns decide exactly (or that has none), in insertion order or
//! sorted on typed columns, is read in SQL alone up to its limit, a keyset cursor continuing it
//! (`page_in_sql`). Anything else — a filter part only the evaluator decides (JSON paths, `~` on a
//! column holding values stored as sent),
//! `createdAt` kept only in the document, an aggregate — loads the rows the typed columns narrow
//! to, in insertion order, and lets `mishkah_core`'s evaluator decide: the rows are exactly those
//! the SQLite backend selects in SQL (the conformance suite checks both), linear in what is
//! left. Search alike: the core's folding (`mishkah_core::search`, the browser store's offline
//! search) over every row.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use mishkah_core::query::{compare_values, field_value, Bindings, Filter};
use mishkah_core::schema::{FieldType, Table};
use mishkah_core::Row;
use mishkah_store::layout::sortable;
use mishkah_store::{parse_doc, Group, Measure, PageQuery, StorageError};
use serde_json::{Map, Value};

use crate::filter::{narrow, Fold, Narrowed};
use crate::reader::PgReader;

/// `filter` compiled for this table as it stands: `~` on a typed column only while none of the
/// table's rows holds a value of another kind in that column (read in the reader's snapshot,
/// through the index of such rows, usually empty).
fn narrowed(reader: &PgReader<'_>, table: &Table, filter: &Filter) -> Result<Option<Narrowed>, StorageError> {
    let unicode_lower = reader.unicode_lower;
    let first = narrow(table, filter, &Fold { unicode_lower, refused: &[] });
    let Some(n) = first.as_ref().filter(|n| !n.contains_on.is_empty()) else { return Ok(first) };
    let sql = format!(
        "SELECT DISTINCT unnest(string_to_array(mishkah_misfits, ',')) FROM {} WHERE mishkah_misfits IS NOT NULL",
        reader.table(table)
    );
    let refused: Vec<String> = reader.query(&sql, &[])?.iter().map(|r| r.get(0)).collect();
    if !n.contains_on.iter().any(|c| refused.contains(c)) {
        return Ok(first);
    }
    Ok(narrow(table, filter, &Fold { unicode_lower, refused: &refused }))
}

struct Stored {
    /// Insertion order (`mishkah_row`).
    position: i64,
    doc: String,
    row: Row,
}

/// The rows `filter` lets through, in insertion order: narrowed in SQL where the typed columns
/// decide ([`narrow`]), the evaluator deciding the rest.
fn stored(reader: &PgReader<'_>, table: &Table, filter: Option<&Filter>) -> Result<Vec<Stored>, StorageError> {
    stored_where(reader, table, filter, None)
}

/// [`stored`], among the rows `also` lets through too: a condition whose one parameter is
/// written `{}` in it, and its value.
fn stored_where(
    reader: &PgReader<'_>,
    table: &Table,
    filter: Option<&Filter>,
    also: Option<(&str, &String)>,
) -> Result<Vec<Stored>, StorageError> {
    let t = reader.table(table);
    let narrowed = match filter {
        Some(f) => narrowed(reader, table, f)?,
        None => None,
    };
    let mut conditions = Vec::new();
    let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = Vec::new();
    if let Some(n) = &narrowed {
        conditions.push(n.sql.clone());
        params.extend(n.params.iter().map(|p| p as &(dyn postgres::types::ToSql + Sync)));
    }
    if let Some((condition, value)) = also {
        params.push(value);
        conditions.push(condition.replace("{}", &format!("${}", params.len())));
    }
    let sql = match conditions.is_empty() {
        true => format!("SELECT mishkah_row, mishkah_doc FROM {t} ORDER BY mishkah_row"),
        false => {
            format!("SELECT mishkah_row, mishkah_doc FROM {t} WHERE {} ORDER BY mishkah_row", conditions.join(" AND "))
        }
    };
    let decided = narrowed.as_ref().is_some_and(|n| n.exact);
    let bindings = Bindings::default();
    let mut out = Vec::new();
    for r in reader.query(&sql, &params)? {
        let doc: String = r.get(1);
        let row = parse_doc(&doc)?;
        if decided || filter.is_none_or(|f| f.eval_in(Some(table), &row, &bindings)) {
            out.push(Stored { position: r.get(0), doc, row });
        }
    }
    Ok(out)
}

/// The insertion position of the row with `key` (none: no such row).
fn position_of(reader: &PgReader<'_>, table: &Table, key: &str) -> Result<Option<i64>, StorageError> {
    if key.contains('\0') {
        // PostgreSQL's text holds no NUL: no stored key has one.
        return Ok(None);
    }
    let sql = format!("SELECT mishkah_row FROM {} WHERE mishkah_key = $1", reader.table(table));
    Ok(reader.query(&sql, &[&key])?.first().map(|r| r.get(0)))
}

/// A sort key read from its typed column: the column, its cast, whether descending.
struct SortColumn {
    column: String,
    cast: &'static str,
    descending: bool,
}

/// The typed columns of `sort`, or `None` when one of its fields has none (`createdAt` kept only
/// in the document): then the evaluator sorts.
fn sort_columns(table: &Table, sort: &[(String, bool)]) -> Option<Vec<SortColumn>> {
    let columns = mishkah_store::layout::typed_fields(table);
    sort.iter()
        .map(|(field, descending)| {
            let (column, _, ty) = columns.iter().find(|(_, f, _)| f == field)?;
            let cast = match ty {
                FieldType::Integer | FieldType::Decimal => "::text::numeric",
                FieldType::Boolean => "::text::boolean",
                FieldType::Json => return None,
                _ => "::text",
            };
            Some(SortColumn { column: column.clone(), cast, descending: *descending })
        })
        .collect()
}

/// A cursor value as its typed column would hold it (`None` inside: SQL NULL), or `None` when
/// it does not fit the column (a value stored as sent: the evaluator decides that page).
fn cursor_text(cast: &str, value: &Value) -> Option<Option<String>> {
    match (cast, value) {
        (_, Value::Null) => Some(None),
        ("::text", Value::String(s)) => Some(Some(s.clone())),
        ("::text::numeric", Value::Number(n)) => Some(Some(n.to_string())),
        ("::text::boolean", Value::Bool(b)) => Some(Some(b.to_string())),
        _ => None,
    }
}

/// A page that SQL decides whole — no filter, or one the typed columns decide exactly; insertion
/// order or a sort on typed columns — read by the database alone up to its limit, in the core's
/// order (nulls first ascending, last descending; insertion order breaking ties in the last
/// key's direction), a keyset cursor continuing it.
fn page_in_sql(reader: &PgReader<'_>, table: &Table, q: &PageQuery) -> Result<Option<Vec<String>>, StorageError> {
    let sorts: Vec<(String, bool)> = q.sort.iter().filter(|(f, _)| sortable(table, f)).cloned().collect();
    let Some(columns) = sort_columns(table, &sorts) else { return Ok(None) };
    if q.created_after.is_some() || q.updated_after.is_some() {
        return Ok(None);
    }
    let narrowed = match &q.filter {
        None => None,
        Some(filter) => match narrowed(reader, table, filter)? {
            Some(n) if n.exact => Some(n),
            _ => return Ok(None),
        },
    };
    let mut texts: Vec<Option<String>> = Vec::new();
    let mut position = None;
    if columns.is_empty() {
        position = q.after_key.as_deref().map(|k| position_of(reader, table, k)).transpose()?.flatten();
    } else if let Some((values, key)) = &q.after {
        for (c, v) in columns.iter().zip(values) {
            match cursor_text(c.cast, v) {
                Some(text) => texts.push(text),
                None => return Ok(None),
            }
        }
        position = position_of(reader, table, key)?;
    }
    let mut conditions = Vec::new();
    let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = Vec::new();
    if let Some(n) = &narrowed {
        conditions.push(n.sql.clone());
        params.extend(n.params.iter().map(|p| p as &(dyn postgres::types::ToSql + Sync)));
    }
    let last_descending = columns.last().map_or(q.descending, |c| c.descending);
    if let Some(position) = &position {
        let mut after = Vec::new();
        let mut equal = Vec::new();
        for (c, text) in columns.iter().zip(&texts) {
            params.push(text);
            let (col, at) = (format!("\"{}\"", c.column), format!("${}{}", params.len(), c.cast));
            // After in this key, in the core's order (a null is before every value).
            let beyond = match (text.is_some(), c.descending) {
                (false, false) => format!("{col} IS NOT NULL"),
                (false, true) => "FALSE".to_owned(),
                (true, false) => format!("{col} > {at}"),
                (true, true) => format!("({col} < {at} OR {col} IS NULL)"),
            };
            after.push(equal.iter().cloned().chain([beyond]).collect::<Vec<_>>().join(" AND "));
            equal.push(format!("{col} IS NOT DISTINCT FROM {at}"));
        }
        params.push(position);
        let tie = format!("mishkah_row {} ${}", if last_descending { "<" } else { ">" }, params.len());
        after.push(equal.into_iter().chain([tie]).collect::<Vec<_>>().join(" AND "));
        conditions.push(format!("(({}))", after.join(") OR (")));
    }
    let mut order: Vec<String> = columns
        .iter()
        .map(|c| format!("\"{}\" {}", c.column, if c.descending { "DESC NULLS LAST" } else { "ASC NULLS FIRST" }))
        .collect();
    order.push(format!("mishkah_row {}", if last_descending { "DESC" } else { "ASC" }));
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    params.push(&limit);
    let sql = format!(
        "SELECT mishkah_doc FROM {} {} ORDER BY {} LIMIT ${}",
        reader.table(table),
        if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) },
        order.join(", "),
        params.len()
    );
    Ok(Some(reader.query(&sql, &params)?.iter().map(|r| r.get(0)).collect()))
}

/// A page as stored documents.
pub(crate) fn page(reader: &PgReader<'_>, table: &Table, q: &PageQuery) -> Result<Vec<String>, StorageError> {
    if let Some(page) = page_in_sql(reader, table, q)? {
        return Ok(page);
    }
    let found = stored(reader, table, q.filter.as_ref())?;
    let after_key = q.after_key.as_deref().map(|k| position_of(reader, table, k)).transpose()?;
    let cursor = match &q.after {
        Some((values, key)) => Some((values.clone(), position_of(reader, table, key)?)),
        None => None,
    };
    let text_after = |row: &Row, field: &str, at: &Option<String>| match at {
        None => true,
        Some(at) => row.get(field).and_then(Value::as_str).is_some_and(|v| v > at.as_str()),
    };
    let mut rows: Vec<&Stored> = found
        .iter()
        .filter(|s| {
            text_after(&s.row, "createdAt", &q.created_after) && text_after(&s.row, "updatedAt", &q.updated_after)
        })
        .collect();
    let sorts: Vec<(String, bool)> = q.sort.iter().filter(|(f, _)| sortable(table, f)).cloned().collect();
    if sorts.is_empty() {
        if q.descending {
            rows.reverse();
        }
        if let Some(after) = after_key {
            rows.retain(|s| match (after, q.descending) {
                (Some(p), false) => s.position > p,
                (Some(p), true) => s.position < p,
                (None, _) => true,
            });
        }
    } else {
        let last_desc = sorts.last().is_some_and(|(_, d)| *d);
        let key_of = |s: &Stored| -> Vec<Value> {
            sorts.iter().map(|(f, _)| field_value(Some(table), &s.row, std::slice::from_ref(f)).clone()).collect()
        };
        let order = |a: &[Value], pa: Option<i64>, b: &[Value], pb: Option<i64>| -> Ordering {
            for ((x, y), (_, desc)) in a.iter().zip(b).zip(&sorts) {
                let o = compare_values(x, y);
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            let o = pa.cmp(&pb);
            if last_desc {
                o.reverse()
            } else {
                o
            }
        };
        rows.sort_by(|a, b| order(&key_of(a), Some(a.position), &key_of(b), Some(b.position)));
        if let Some((values, position)) = &cursor {
            rows.retain(|s| order(&key_of(s), Some(s.position), values, *position) == Ordering::Greater);
        }
    }
    Ok(rows.into_iter().take(q.limit).map(|s| s.doc.clone()).collect())
}

/// How many rows `filter` lets through (counted in SQL when the typed columns decide).
pub(crate) fn count(reader: &PgReader<'_>, table: &Table, filter: &Filter) -> Result<u64, StorageError> {
    if let Some(n) = narrowed(reader, table, filter)?.filter(|n| n.exact) {
        let sql = format!("SELECT COUNT(*) FROM {} WHERE {}", reader.table(table), n.sql);
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> = n.params.iter().map(|p| p as _).collect();
        return Ok(reader.query(&sql, &params)?[0].get::<_, i64>(0) as u64);
    }
    Ok(stored(reader, table, Some(filter))?.len() as u64)
}

/// A field's value as its typed column holds it: the value when its kind is the field's, else
/// nothing (a value stored as sent).
fn typed<'r>(table: &Table, row: &'r Row, name: &str) -> &'r Value {
    let value = field_value(Some(table), row, &[name.to_owned()]);
    let fits = match table.field(name).map(|f| f.ty) {
        None => value.is_string(),
        Some(FieldType::Text | FieldType::Date | FieldType::Timestamp) => value.is_string(),
        Some(FieldType::Integer | FieldType::Decimal) => value.is_number(),
        Some(FieldType::Boolean) => value.is_boolean(),
        Some(FieldType::Json) => false,
    };
    if fits {
        value
    } else {
        &Value::Null
    }
}

/// Groups and measures, as the SQLite backend computes them over the typed columns: in SQL when
/// the typed columns decide the filter and hold every group and measured field, else by the
/// evaluator.
pub(crate) fn aggregate(
    reader: &PgReader<'_>,
    table: &Table,
    filter: &Filter,
    group_by: &[String],
    measures: &[(Measure, String)],
) -> Result<Vec<Group>, StorageError> {
    let groups: Vec<&String> = group_by.iter().filter(|f| sortable(table, f)).collect();
    let measured: Vec<&(Measure, String)> = measures
        .iter()
        .filter(|(m, f)| sortable(table, f) && table.field(f).is_some_and(|field| m.applies_to(field.ty)))
        .collect();
    if let Some(found) = aggregate_in_sql(reader, table, filter, &groups, &measured)? {
        return Ok(found);
    }
    aggregate_by_evaluator(reader, table, filter, &groups, &measured)
}

/// A typed column's name and type, for a field that has one.
fn column_of(table: &Table, field: &str) -> Option<(String, FieldType)> {
    mishkah_store::layout::typed_fields(table)
        .into_iter()
        .find(|(_, f, ty)| f == field && *ty != FieldType::Json)
        .map(|(column, _, ty)| (column, ty))
}

/// A value read back as text from a typed column of type `ty`, as the document held it.
fn json_of(ty: FieldType, text: Option<String>) -> Value {
    let Some(text) = text else { return Value::Null };
    match ty {
        FieldType::Integer | FieldType::Decimal => number_of(&text),
        FieldType::Boolean => Value::Bool(text == "true"),
        _ => Value::String(text),
    }
}

/// A decimal's text as a JSON number: an integer when it has no fraction part (null when it
/// leaves i64, as the evaluator's checked sum does), else the nearest f64.
fn number_of(text: &str) -> Value {
    if !text.contains(['.', 'e', 'E']) {
        return text.parse::<i64>().map_or(Value::Null, Value::from);
    }
    float_of(text)
}

/// A number's text as the nearest f64 (null when it is none).
fn float_of(text: &str) -> Value {
    text.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
}

fn aggregate_in_sql(
    reader: &PgReader<'_>,
    table: &Table,
    filter: &Filter,
    groups: &[&String],
    measured: &[&(Measure, String)],
) -> Result<Option<Vec<Group>>, StorageError> {
    let Some(narrowed) = narrowed(reader, table, filter)?.filter(|n| n.exact) else { return Ok(None) };
    let Some(keys) = groups.iter().map(|f| column_of(table, f)).collect::<Option<Vec<_>>>() else { return Ok(None) };
    let Some(values) = measured.iter().map(|(_, f)| column_of(table, f)).collect::<Option<Vec<_>>>() else {
        return Ok(None);
    };
    let mut select: Vec<String> = keys.iter().map(|(c, _)| format!("\"{c}\"::text")).collect();
    select.push("count(*)".into());
    for ((measure, _), (c, ty)) in measured.iter().map(|m| (m.0, &m.1)).zip(&values) {
        let c = format!("\"{c}\"");
        select.push(match (measure, ty) {
            // Whole numbers as sent (scale 0) add up exactly; any other in f64, in insertion
            // order, as the evaluator adds them.
            (Measure::Sum, _) => {
                format!("CASE WHEN bool_and(scale({c}) = 0) THEN sum({c})::text ELSE 'f' || sum({c}::float8)::text END")
            }
            // In f64, summed in insertion order, as the evaluator sums.
            (Measure::Avg, _) => format!("(sum({c}::float8) / NULLIF(count({c}), 0))::text"),
            (Measure::Min, FieldType::Boolean) => format!("bool_and({c})::text"),
            (Measure::Max, FieldType::Boolean) => format!("bool_or({c})::text"),
            (Measure::Min, _) => format!("min({c})::text"),
            (Measure::Max, _) => format!("max({c})::text"),
        });
    }
    let mut sql = format!("SELECT {} FROM {} WHERE {}", select.join(", "), reader.table(table), narrowed.sql);
    let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
        narrowed.params.iter().map(|p| p as &(dyn postgres::types::ToSql + Sync)).collect();
    if !keys.is_empty() {
        // Grouped on the columns themselves, ordered by their typed values (not their text).
        let columns: Vec<String> = keys.iter().map(|(c, _)| format!("\"{c}\"")).collect();
        sql.push_str(&format!(" GROUP BY {} ORDER BY {}", columns.join(", "), {
            columns.iter().map(|c| format!("{c} ASC NULLS FIRST")).collect::<Vec<_>>().join(", ")
        }));
    }
    let rows = reader.query(&sql, &params)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let key = groups.iter().zip(&keys).enumerate().map(|(i, (f, (_, ty)))| ((*f).clone(), json_of(*ty, r.get(i))));
        let mut measures: BTreeMap<Measure, Map<String, Value>> = BTreeMap::new();
        for (j, ((measure, field), (_, ty))) in measured.iter().map(|m| (m.0, &m.1)).zip(&values).enumerate() {
            let text: Option<String> = r.get(keys.len() + 1 + j);
            let value = match (measure, text.as_deref()) {
                (_, None) => Value::Null,
                (Measure::Avg, Some(t)) => float_of(t),
                (Measure::Sum, Some(t)) => t.strip_prefix('f').map_or_else(|| number_of(t), float_of),
                _ => json_of(*ty, text),
            };
            measures.entry(measure).or_default().insert(field.clone(), value);
        }
        out.push(Group { key: key.collect(), count: r.get::<_, i64>(keys.len()) as u64, measures });
    }
    Ok(Some(out))
}

fn aggregate_by_evaluator(
    reader: &PgReader<'_>,
    table: &Table,
    filter: &Filter,
    groups: &[&String],
    measured: &[&(Measure, String)],
) -> Result<Vec<Group>, StorageError> {
    // Without groups there is one answer, rows or none (a count of 0).
    let mut buckets: Vec<(Vec<Value>, Vec<Row>)> =
        if groups.is_empty() { vec![(Vec::new(), Vec::new())] } else { Vec::new() };
    for s in stored(reader, table, Some(filter))? {
        let key: Vec<Value> = groups.iter().map(|f| typed(table, &s.row, f).clone()).collect();
        match buckets.iter_mut().find(|(k, _)| k == &key) {
            Some((_, rows)) => rows.push(s.row),
            None => buckets.push((key, vec![s.row])),
        }
    }
    buckets.sort_by(|(a, _), (b, _)| {
        a.iter().zip(b).map(|(x, y)| compare_values(x, y)).find(|o| *o != Ordering::Equal).unwrap_or(Ordering::Equal)
    });
    Ok(buckets
        .into_iter()
        .map(|(key, rows)| {
            let mut out: BTreeMap<Measure, Map<String, Value>> = BTreeMap::new();
            for (measure, field) in measured.iter().map(|m| (&m.0, &m.1)) {
                let values: Vec<&Value> =
                    rows.iter().map(|r| typed(table, r, field)).filter(|v| !v.is_null()).collect();
                out.entry(*measure).or_default().insert(field.clone(), measure_of(*measure, &values));
            }
            let key = groups.iter().map(|f| (*f).clone()).zip(key).collect();
            Group { key, count: rows.len() as u64, measures: out }
        })
        .collect())
}

fn measure_of(measure: Measure, values: &[&Value]) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    match measure {
        Measure::Sum => match values.iter().map(|v| v.as_i64()).collect::<Option<Vec<i64>>>() {
            Some(ints) => ints.iter().try_fold(0i64, |a, b| a.checked_add(*b)).map_or(Value::Null, Value::from),
            None => serde_json::Number::from_f64(values.iter().filter_map(|v| v.as_f64()).sum())
                .map_or(Value::Null, Value::Number),
        },
        Measure::Avg => {
            let sum: f64 = values.iter().filter_map(|v| v.as_f64()).sum();
            serde_json::Number::from_f64(sum / values.len() as f64).map_or(Value::Null, Value::Number)
        }
        Measure::Min => values.iter().min_by(|a, b| compare_values(a, b)).map_or(Value::Null, |v| (*v).clone()),
        Measure::Max => values.iter().max_by(|a, b| compare_values(a, b)).map_or(Value::Null, |v| (*v).clone()),
    }
}

/// Rows matching `query` the way the core folds text (every term a word, the last a prefix) and
/// `filter`, most matching words first, then in insertion order; the score is that count. A table
/// with a search index (`search.rs`) reads only the rows it finds.
pub(crate) fn search(
    reader: &PgReader<'_>,
    table: &Table,
    query: &str,
    filter: &Filter,
    limit: usize,
) -> Result<Vec<(Row, f64)>, StorageError> {
    use mishkah_core::search::{matches_terms, query_terms, search_text};
    let terms = query_terms(query);
    if terms.is_empty() {
        return Ok(Vec::new());
    }
    let candidates = match reader.search_indexed(table)? {
        // The index finds the candidates; the core decides, as without it.
        true => match crate::search::tsquery(&terms) {
            Some(q) => stored_where(reader, table, Some(filter), Some(("mishkah_search @@ {}::text::tsquery", &q)))?,
            None => return Ok(Vec::new()),
        },
        false => stored(reader, table, Some(filter))?,
    };
    let mut hits: Vec<(Row, f64)> = candidates
        .into_iter()
        .filter(|s| matches_terms(table, &s.row, &terms))
        .map(|s| {
            let text = search_text(table, &s.row);
            let words = text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty());
            let score = words.filter(|w| terms.iter().any(|t| w.starts_with(t.as_str()))).count() as f64;
            (s.row, score)
        })
        .collect();
    hits.sort_by(|a, b| b.1.total_cmp(&a.1));
    hits.truncate(limit);
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::PgReads;
    use crate::PostgresBackend;
    use mishkah_core::schema::Schema;
    use mishkah_core::{Change, ChangeKind, RecordKey};
    use mishkah_store::{Backend, ModuleAt, NewEvent, OpenOptions};
    use serde_json::json;

    /// A value of kind `k` (a number, text, boolean, null, or one stored as sent) from `seed`.
    fn value(kind: u64, seed: u64) -> Value {
        match (kind, seed % 7) {
            (_, 0) => Value::Null,
            (_, 1) => json!("as sent"),
            (0, s) => json!(["a", "B", "b", "ä", ""][s as usize % 5]),
            (1, s) => json!(s as i64 * 3 - 9),
            (2, s) => json!([0.1, 2.5, -1.25, 3.0, 1e3][s as usize % 5]),
            (_, s) => json!(s % 2 == 0),
        }
    }

    /// The SQL aggregate says what the evaluator says, over nulls, values stored as sent,
    /// integers, decimals, booleans and text, grouped or not, filtered or not.
    #[test]
    fn aggregates_in_sql_equal_the_evaluators() {
        let database = mishkah_test_support::postgres::TestDatabase::new();
        let schema = Schema::from_json(&json!({"schema": {"tables": [{"name": "t", "fields": [
            {"name": "id", "type": "string", "primaryKey": true},
            {"name": "g", "type": "string"}, {"name": "n", "type": "integer"},
            {"name": "d", "type": "number"}, {"name": "b", "type": "boolean"}]}]}}))
        .expect("schema");
        let table = schema.table("t").expect("t").clone();
        let backend = PostgresBackend::new(&database.url).expect("url");
        let dir = tempfile::tempdir().expect("dir");
        let at = ModuleAt { branch: "b", module: "m", dir: dir.path() };
        let mut opened = backend.open(&at, &[&table], &OpenOptions::default()).expect("open");
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            seed >> 33
        };
        let mut tx = opened.writer.begin().expect("begin");
        for i in 0..300 {
            let mut row = serde_json::Map::new();
            row.insert("id".into(), json!(format!("r{i}")));
            for (k, f) in ["g", "n", "d", "b"].iter().enumerate() {
                row.insert((*f).into(), value(k as u64, next()));
            }
            let change = Change {
                table: "t".into(),
                key: RecordKey(format!("r{i}")),
                kind: ChangeKind::Insert,
                row: Some(row),
                version: 1,
                coerced: Vec::new(),
                unknown_fields: Vec::new(),
                tolerated: Vec::new(),
            };
            tx.ops().store_change(&table, &change).expect("store");
            let event = NewEvent {
                change,
                mutation: None,
                source: "test",
                meta: &Value::Null,
                created_at: "2026-12-05T00:00:00.000Z",
                actor: None,
                previous: None,
                table_as_sent: None,
                transaction: None,
            };
            tx.ops().append_event(event).expect("log");
        }
        tx.commit().expect("commit");
        let reads = PgReads { pool: backend.readers.clone(), schema: "m1".into() };
        let measures: Vec<(Measure, String)> = [Measure::Sum, Measure::Avg, Measure::Min, Measure::Max]
            .into_iter()
            .flat_map(|m| ["n", "d", "b", "g"].map(|f| (m, f.to_owned())))
            .collect();
        let measured: Vec<&(Measure, String)> =
            measures.iter().filter(|(m, f)| table.field(f).is_some_and(|field| m.applies_to(field.ty))).collect();
        for filter in [None, Some("n > 0"), Some("g = \"b\" || b = true")] {
            let filter = filter.map_or(Filter::And(Vec::new()), |f| Filter::parse(f).expect("filter"));
            for groups in [vec![], vec!["g"], vec!["b", "n"]] {
                let groups: Vec<String> = groups.into_iter().map(str::to_owned).collect();
                let groups: Vec<&String> = groups.iter().collect();
                let (sql, evaluated) = reads
                    .with_pg(|r| {
                        let sql = aggregate_in_sql(r, &table, &filter, &groups, &measured).expect("sql");
                        (sql, aggregate_by_evaluator(r, &table, &filter, &groups, &measured).expect("evaluator"))
                    })
                    .expect("read");
                let sql = sql.expect("decided in SQL");
                assert_eq!(format!("{sql:?}"), format!("{evaluated:?}"), "filter {filter} groups {groups:?}");
            }
        }
    }
}
