//! How the browser store is to keep a large module's rows (#27's next step; the IndexedDB adapter
//! comes with it): each table in chunks of consecutive keys, a record per chunk, each chunk with a
//! summary of the values its rows hold. IndexedDB's cost is per record (~37 µs in Debian's Chromium,
//! whatever the record holds: `tests/browser/idb-throughput.mjs`), so a record per row cannot
//! store a million rows in 20 s, and a chunk of rows as one record can (565,000 rows/s).
//!
//! The summaries answer without reading rows what a query asks most: which chunks may hold a
//! filter's rows (an equality or `in` on a field whose values a chunk lists), and how many rows
//! such a filter selects. They never guess: a chunk that cannot tell (a field with too many
//! values, a value whose equality does not partition) may hold anything, and a count it cannot
//! give exactly is not given.
//!
//! Pure (no browser API): tested natively, against a map of every row.

use std::collections::BTreeMap;

use mishkah_core::query::{field_value, Filter, Op, Operand};
use mishkah_core::{Field, Row, Table};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Rows a chunk is cut to; a chunk that grows past twice this is split.
pub const CHUNK_ROWS: usize = 200;
/// Distinct values of a field a chunk's summary lists; past this the field is [`Values::Many`].
pub const LISTED_VALUES: usize = 32;
/// Text longer than this is not listed (the field is [`Values::Many`] in that chunk).
const LISTED_TEXT: usize = 64;

/// Consecutive rows of one table, in their keys' byte order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub keys: Vec<String>,
    pub rows: Vec<Row>,
}

/// What a chunk's rows hold, per summarized field of the table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub rows: u64,
    pub first: String,
    pub last: String,
    pub fields: BTreeMap<String, Values>,
}

impl Summary {
    /// The summary of `rows` (keyed `keys`, in order) of `table`, each field's value class read by
    /// `value_key_of(row, [field name])` (the browser reads rows it never converts).
    pub fn of<R>(
        table: &Table,
        keys: &[String],
        rows: &[R],
        value_key_of: impl Fn(&R, &[String]) -> Option<String>,
    ) -> Summary {
        let mut fields = BTreeMap::new();
        for field in summarized(table) {
            let path = [field.name.clone()];
            let mut listed = BTreeMap::new();
            let mut many = false;
            for row in rows {
                match value_key_of(row, &path) {
                    Some(key) => *listed.entry(key).or_insert(0) += 1,
                    None => many = true,
                }
                if many || listed.len() > LISTED_VALUES {
                    many = true;
                    break;
                }
            }
            fields.insert(field.name.clone(), if many { Values::Many } else { Values::Listed(listed) });
        }
        Summary {
            rows: rows.len() as u64,
            first: keys.first().cloned().unwrap_or_default(),
            last: keys.last().cloned().unwrap_or_default(),
            fields,
        }
    }
}

/// The fields a chunk's summary lists: those the schema indexes (a query filters on them), less
/// the unique ones (a value per row: never worth listing).
pub fn summarized(table: &Table) -> Vec<&Field> {
    table
        .fields
        .iter()
        .filter(|f| !f.primary_key && !f.unique)
        .filter(|f| f.indexed || table.indexes.iter().any(|i| !i.unique && i.fields.contains(&f.name)))
        .collect()
}

/// The values one field takes in a chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Values {
    /// Each value (by its [`value_key`]) and how many rows hold it; a missing field counts as
    /// `null`, as filters read it.
    Listed(BTreeMap<String, u64>),
    /// Too many, or some that cannot be listed: the chunk may hold any value.
    Many,
}

/// The class of values a filter's `=` holds equal, as text; `None` for a value whose equality is
/// not a partition or not worth listing (arrays, objects, long text, a negative float zero, floats
/// past 2^53 — the core compares those exactly in ways a key cannot follow).
pub fn value_key(value: &Value) -> Option<String> {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match value {
        Value::Null => Some("null".into()),
        Value::Bool(b) => Some(format!("b:{b}")),
        Value::String(s) if s.len() <= LISTED_TEXT => Some(format!("s:{s}")),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Some(format!("n:{i}")),
            (_, Some(u), _) => Some(format!("n:{u}")),
            (_, _, Some(f)) if f == 0.0 && f.is_sign_negative() => None,
            (_, _, Some(f)) if f.abs() < EXACT && f.fract() == 0.0 => Some(format!("n:{}", f as i64)),
            (_, _, Some(f)) if f.abs() < EXACT => Some(format!("f:{f}")),
            _ => None,
        },
        _ => None,
    }
}

impl Chunk {
    /// The row keyed `key`, if this chunk holds it.
    pub fn get(&self, key: &str) -> Option<&Row> {
        self.keys.binary_search_by(|k| k.as_str().cmp(key)).ok().map(|i| &self.rows[i])
    }

    /// What this chunk's rows hold, per summarized field of `table` ([`summarized`]).
    pub fn summary(&self, table: &Table) -> Summary {
        Summary::of(table, &self.keys, &self.rows, |row, path| value_key(field_value(Some(table), row, path)))
    }

    /// Applies `changes` (a row, or `None` to remove it), then cuts the result to size: the
    /// chunks this one becomes, in order (none when every row left).
    pub fn apply(mut self, changes: impl IntoIterator<Item = (String, Option<Row>)>) -> Vec<Chunk> {
        for (key, row) in changes {
            match (self.keys.binary_search(&key), row) {
                (Ok(i), Some(row)) => self.rows[i] = row,
                (Ok(i), None) => {
                    self.keys.remove(i);
                    self.rows.remove(i);
                }
                (Err(i), Some(row)) => {
                    self.keys.insert(i, key);
                    self.rows.insert(i, row);
                }
                (Err(_), None) => {}
            }
        }
        if self.keys.is_empty() {
            return Vec::new();
        }
        if self.keys.len() <= 2 * CHUNK_ROWS {
            return vec![self];
        }
        cut(self.keys.into_iter().zip(self.rows).collect())
    }
}

/// Rows in key order cut into chunks of [`CHUNK_ROWS`].
pub fn cut(rows: Vec<(String, Row)>) -> Vec<Chunk> {
    let mut chunks = Vec::with_capacity(rows.len().div_ceil(CHUNK_ROWS));
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let (keys, rows): (Vec<_>, Vec<_>) = rows.by_ref().take(CHUNK_ROWS).unzip();
        chunks.push(Chunk { keys, rows });
    }
    chunks
}

/// Of chunks in order, given their first keys, the one `key` belongs to: the last whose first
/// key is not after it (the first chunk for a key before every chunk).
pub fn locate(firsts: &[&str], key: &str) -> usize {
    firsts.partition_point(|first| *first <= key).saturating_sub(1)
}

/// The field an operand names, as the table declares it (a column name or a path gives none).
fn field_of<'t>(table: &'t Table, operand: &Operand) -> Option<&'t str> {
    match operand {
        Operand::Field(path) if path.len() == 1 => table.field(&path[0]).map(|f| f.name.as_str()),
        _ => None,
    }
}

/// `field op value`, either way round, for `=` and `in` between a declared field and values.
fn equality<'f>(table: &'f Table, filter: &'f Filter) -> Option<(&'f str, Vec<&'f Value>)> {
    let Filter::Compare { left, op, right } = filter else { return None };
    match (op, left, right) {
        (Op::Eq, _, Operand::Value(v)) => Some((field_of(table, left)?, vec![v])),
        (Op::Eq, Operand::Value(v), _) => Some((field_of(table, right)?, vec![v])),
        (Op::In, _, Operand::Value(Value::Array(items))) => Some((field_of(table, left)?, items.iter().collect())),
        _ => None,
    }
}

/// The listed counts of `values` in `field`; `None` when the summary cannot tell.
fn listed_count(summary: &Summary, field: &str, values: &[&Value]) -> Option<u64> {
    let Some(Values::Listed(listed)) = summary.fields.get(field) else { return None };
    let mut keys = Vec::new();
    for value in values {
        keys.push(value_key(value)?);
    }
    keys.sort();
    keys.dedup();
    Some(keys.iter().map(|k| listed.get(k).copied().unwrap_or(0)).sum())
}

/// Whether a chunk with `summary` may hold a row `filter` selects: `false` only when certain.
pub fn may_match(table: &Table, filter: &Filter, summary: &Summary) -> bool {
    match filter {
        Filter::And(all) => all.iter().all(|f| may_match(table, f, summary)),
        Filter::Or(any) => any.iter().any(|f| may_match(table, f, summary)),
        Filter::Not(_) => true,
        compare => match equality(table, compare) {
            Some((field, values)) => listed_count(summary, field, &values) != Some(0),
            None => true,
        },
    }
}

/// How many rows `filter` selects, from the summaries alone, when they can say exactly (no
/// filter, or one equality or `in` on a field every chunk lists); `None` otherwise.
pub fn count(table: &Table, filter: Option<&Filter>, summaries: &[Summary]) -> Option<u64> {
    let Some(filter) = filter else { return Some(summaries.iter().map(|s| s.rows).sum()) };
    if let Filter::And(only) = filter {
        return match only.as_slice() {
            [] => count(table, None, summaries),
            [one] => count(table, Some(one), summaries),
            _ => None,
        };
    }
    let (field, values) = equality(table, filter)?;
    summaries.iter().map(|s| listed_count(s, field, &values)).sum()
}

// Native only: proptest does not build for wasm32.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use mishkah_core::Schema;
    use proptest::prelude::*;
    use serde_json::json;

    fn table() -> Table {
        let schema = Schema::from_json(&json!({"tables": {"t": {"fields": {
            "id": {"type": "text", "primaryKey": true}, "status": {"type": "text", "index": true},
            "n": {"type": "decimal"}, "note": {"type": "text"}, "plain": {"type": "text"}},
            "indexes": [{"fields": ["n", "note"]}]}}}))
        .unwrap();
        schema.table("t").unwrap().clone()
    }

    /// Values drawn so that equal classes mix spellings (1 and 1.0), nulls and missing fields.
    fn value() -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            Just(None),
            Just(Some(Value::Null)),
            prop::sample::select(vec!["open", "paid", "void"]).prop_map(|s| Some(json!(s))),
            (0i64..4).prop_map(|n| Some(json!(n))),
            (0i64..4).prop_map(|n| Some(json!(n as f64))),
            Just(Some(json!(0.5))),
            Just(Some(json!(-0.0))),
            Just(Some(json!([1]))),
        ]
    }

    fn row(key: &str, status: Option<Value>, n: Option<Value>) -> Row {
        let mut r = Row::new();
        r.insert("id".into(), json!(key));
        if let Some(s) = status {
            r.insert("status".into(), s);
        }
        if let Some(n) = n {
            r.insert("n".into(), n);
        }
        r
    }

    fn filters() -> impl Strategy<Value = Filter> {
        let operand = prop_oneof![
            prop::sample::select(vec!["open", "paid", "void"]).prop_map(|s| json!(s)),
            (0i64..4).prop_map(|n| json!(n)),
            (0i64..4).prop_map(|n| json!(n as f64)),
            Just(json!(0.5)),
            Just(json!(0)),
            Just(Value::Null),
        ];
        let leaf = (prop::sample::select(vec!["status", "n", "note", "plain"]), operand.clone(), any::<bool>())
            .prop_map(|(field, value, reversed)| {
                let (field, value) = (Operand::Field(vec![field.into()]), Operand::Value(value));
                let (left, right) = if reversed { (value, field) } else { (field, value) };
                Filter::Compare { left, op: Op::Eq, right }
            });
        let listed = (prop::sample::select(vec!["status", "n"]), prop::collection::vec(operand, 0..3)).prop_map(
            |(field, items)| Filter::Compare {
                left: Operand::Field(vec![field.into()]),
                op: Op::In,
                right: Operand::Value(Value::Array(items)),
            },
        );
        prop_oneof![leaf, listed].prop_recursive(2, 6, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Filter::And),
                prop::collection::vec(inner.clone(), 0..3).prop_map(Filter::Or),
                inner.prop_map(|f| Filter::Not(Box::new(f))),
            ]
        })
    }

    /// Applies `changes` to `chunks` as a store of chunks would: each change to the chunk its
    /// key belongs to, that chunk replaced by what it becomes.
    fn apply_all(chunks: &mut Vec<Chunk>, changes: Vec<(String, Option<Row>)>) {
        let mut by_chunk: BTreeMap<usize, Vec<(String, Option<Row>)>> = BTreeMap::new();
        let firsts: Vec<String> = chunks.iter().map(|c| c.keys[0].clone()).collect();
        let firsts: Vec<&str> = firsts.iter().map(String::as_str).collect();
        for (key, row) in changes {
            by_chunk.entry(locate(&firsts, &key)).or_default().push((key, row));
        }
        if chunks.is_empty() {
            *chunks = Chunk { keys: Vec::new(), rows: Vec::new() }.apply(by_chunk.into_values().flatten());
            return;
        }
        // Back to front, so the indexes of chunks not yet replaced stay right.
        for (i, changes) in by_chunk.into_iter().rev() {
            let became = chunks[i].clone().apply(changes);
            chunks.splice(i..=i, became);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn chunks_hold_every_row_once_in_order_and_summaries_never_guess(
            initial in prop::collection::btree_map(0u32..3000, (value(), value()), 0..900),
            batches in prop::collection::vec(
                prop::collection::vec((0u32..3000, prop::option::of((value(), value()))), 0..400), 0..4),
            filter in filters(),
        ) {
            let t = table();
            let key = |k: u32| format!("k{k:05}");
            let mut model: BTreeMap<String, Row> =
                initial.into_iter().map(|(k, (s, n))| (key(k), row(&key(k), s, n))).collect();
            let mut chunks = cut(model.iter().map(|(k, r)| (k.clone(), r.clone())).collect());
            for batch in batches {
                let mut changes = Vec::new();
                for (k, change) in batch {
                    let row = change.map(|(s, n)| row(&key(k), s, n));
                    match &row {
                        Some(r) => model.insert(key(k), r.clone()),
                        None => model.remove(&key(k)),
                    };
                    changes.push((key(k), row));
                }
                apply_all(&mut chunks, changes);
            }
            let held: Vec<(String, Row)> =
                chunks.iter().flat_map(|c| c.keys.iter().cloned().zip(c.rows.iter().cloned())).collect();
            prop_assert_eq!(held, model.clone().into_iter().collect::<Vec<_>>());
            prop_assert!(chunks.iter().all(|c| !c.keys.is_empty() && c.keys.len() <= 2 * CHUNK_ROWS));
            for (k, r) in &model {
                let firsts: Vec<&str> = chunks.iter().map(|c| c.keys[0].as_str()).collect();
                prop_assert_eq!(chunks[locate(&firsts, k)].get(k), Some(r));
            }
            let summaries: Vec<Summary> = chunks.iter().map(|c| c.summary(&t)).collect();
            for (chunk, summary) in chunks.iter().zip(&summaries) {
                let hit = chunk.rows.iter().any(|r| filter.matches(r));
                prop_assert!(!hit || may_match(&t, &filter, summary), "a chunk holding a match was skipped: {}", filter);
            }
            if let Some(n) = count(&t, Some(&filter), &summaries) {
                let truth = model.values().filter(|r| filter.matches(r)).count() as u64;
                prop_assert_eq!(n, truth, "count of {}", filter);
            }
            prop_assert_eq!(count(&t, None, &summaries), Some(model.len() as u64));
        }
    }

    #[test]
    fn a_summary_lists_few_values_and_gives_up_on_many() {
        let t = table();
        let rows: Vec<(String, Row)> = (0..100)
            .map(|i| {
                let k = format!("k{i:03}");
                let mut r = row(&k, Some(json!(["open", "paid"][i % 2])), Some(json!(i)));
                r.insert("note".into(), json!("x".repeat(100)));
                (k, r)
            })
            .collect();
        let chunk = cut(rows).remove(0);
        let s = chunk.summary(&t);
        assert_eq!(s.fields["status"], Values::Listed(BTreeMap::from([("s:open".into(), 50), ("s:paid".into(), 50)])));
        assert_eq!(s.fields["n"], Values::Many, "100 distinct values");
        assert_eq!(s.fields["note"], Values::Many, "long text is not listed");
        let paid = Filter::parse(r#"status = "paid""#).unwrap();
        assert_eq!(count(&t, Some(&paid), &[s.clone(), s.clone()]), Some(100));
        assert!(!may_match(&t, &Filter::parse(r#"status = "void""#).unwrap(), &s));
        assert_eq!(count(&t, Some(&Filter::parse("n = 3").unwrap()), std::slice::from_ref(&s)), None);
        assert!(!s.fields.contains_key("plain") && !s.fields.contains_key("id"), "only indexed fields are listed");
        let plain = Filter::parse(r#"plain = "x""#).unwrap();
        assert!(may_match(&t, &plain, &s), "a field not listed may hold anything");
        assert_eq!(count(&t, Some(&plain), &[s]), None);
    }

    #[test]
    fn numbers_equal_by_value_share_a_key_and_the_others_none() {
        assert_eq!(value_key(&json!(3)), value_key(&json!(3.0)));
        assert_ne!(value_key(&json!(3)), value_key(&json!(3.5)));
        assert_eq!(value_key(&json!(-0.0)), None);
        assert_eq!(value_key(&json!(1e300)), None);
        assert_eq!(value_key(&json!([1])), None);
        assert_eq!(locate(&["b", "d", "f"], "a"), 0);
        assert_eq!(locate(&["b", "d", "f"], "d"), 1);
        assert_eq!(locate(&["b", "d", "f"], "e"), 1);
        assert_eq!(locate(&["b", "d", "f"], "z"), 2);
    }
}
