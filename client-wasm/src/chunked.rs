//! The confirmed rows in IndexedDB, as [`crate::chunks`] models them: each table in chunk records
//! of consecutive keys (`{t, keys, rows}`, keys and rows each one JSON text: a record costs
//! IndexedDB the same whatever it holds, and text is cloned and parsed faster than objects), keyed
//! `[table, first key]`, each with its summary under the same key in a store of its own (read
//! without the rows).
//!
//! Every function works inside a transaction the caller opened on both stores: a chunk is found
//! and rewritten in the transaction that reads it, so tabs writing the same database never lose
//! each other's rows. Keys are ordered as IndexedDB orders strings (UTF-16 code units), which is
//! the server's byte order except between astral characters and U+E000..U+FFFF.

use js_sys::{Array, Reflect, JSON};
use mishkah_core::mutation::row_version;
use mishkah_core::{RecordKey, Row, Table};
use rexie::{Direction, KeyRange, Transaction};
use serde_json::Value;
use wasm_bindgen::JsValue;

use crate::chunks::{value_key, Chunk, Summary, CHUNK_ROWS};
use crate::interop::error;

pub(crate) const CHUNKS: &str = "chunks";
pub(crate) const SUMMARIES: &str = "summaries";

fn js_err(e: rexie::Error) -> JsValue {
    error("indexeddb", &e.to_string(), Value::Null)
}

fn corrupt(what: &str) -> JsValue {
    error("indexeddb", &format!("a stored chunk is unreadable: {what}"), Value::Null)
}

fn record_key(table: &str, first: &str) -> JsValue {
    Array::of2(&JsValue::from_str(table), &JsValue::from_str(first)).into()
}

/// Past every key of `table` (IndexedDB orders arrays after strings).
fn table_end(table: &str) -> JsValue {
    Array::of2(&JsValue::from_str(table), &Array::new()).into()
}

fn range(lower: &JsValue, upper: &JsValue, lower_open: bool) -> Result<KeyRange, JsValue> {
    KeyRange::bound(lower, upper, Some(lower_open), Some(false))
        .map_err(|_| error("indexeddb", "a key range IndexedDB refuses", Value::Null))
}

/// The value class of a JS value as [`value_key`] gives it for the same JSON.
fn js_value_key(value: &JsValue) -> Option<String> {
    if value.is_null() || value.is_undefined() {
        return value_key(&Value::Null);
    }
    if let Some(b) = value.as_bool() {
        return value_key(&Value::Bool(b));
    }
    if let Some(s) = value.as_string() {
        return value_key(&Value::String(s));
    }
    let number = value.as_f64().and_then(serde_json::Number::from_f64)?;
    value_key(&Value::Number(number))
}

/// A field of a row the browser parsed, under its name or its column (as filters read it).
fn js_field(table: &Table, row: &JsValue, path: &[String]) -> JsValue {
    let Some(field) = path.first().and_then(|name| table.field(name)) else { return JsValue::NULL };
    let by_name = Reflect::get(row, &JsValue::from_str(&field.name)).unwrap_or(JsValue::UNDEFINED);
    if by_name.is_undefined() && field.column != field.name {
        return Reflect::get(row, &JsValue::from_str(&field.column)).unwrap_or(JsValue::UNDEFINED);
    }
    by_name
}

fn bare_summary(keys: &[String], rows: usize) -> Summary {
    Summary {
        rows: rows as u64,
        first: keys.first().cloned().unwrap_or_default(),
        last: keys.last().cloned().unwrap_or_default(),
        fields: Default::default(),
    }
}

fn text<T: serde::Serialize>(value: &T) -> Result<JsValue, JsValue> {
    serde_json::to_string(value).map(|t| JsValue::from_str(&t)).map_err(|e| corrupt(&e.to_string()))
}

/// Writes a chunk (its keys and rows as JSON text) and its summary (`{t, summary}`, the summary as
/// JSON text) under `[table, first key]`.
async fn put(tx: &Transaction, table: &str, keys: JsValue, rows: JsValue, summary: Summary) -> Result<(), JsValue> {
    let record = js_sys::Object::new();
    Reflect::set(&record, &"t".into(), &JsValue::from_str(table))?;
    Reflect::set(&record, &"keys".into(), &keys)?;
    Reflect::set(&record, &"rows".into(), &rows)?;
    let key = record_key(table, &summary.first);
    let stored = js_sys::Object::new();
    Reflect::set(&stored, &"t".into(), &JsValue::from_str(table))?;
    Reflect::set(&stored, &"summary".into(), &text(&summary)?)?;
    tx.store(CHUNKS).map_err(js_err)?.put(&record.into(), Some(&key)).await.map_err(js_err)?;
    tx.store(SUMMARIES).map_err(js_err)?.put(&stored, Some(&key)).await.map_err(js_err)?;
    Ok(())
}

/// Stores a first-sync page's rows (`{tables: {t: [rows]}, keys: {t: [keys]}}`, parsed by the
/// browser) as chunks: each row is turned into text by the browser, never converted one by one.
/// The walk goes by key, so a page's chunks follow the previous page's.
pub(crate) async fn put_page(
    tx: &Transaction,
    page: &JsValue,
    schema: Option<&mishkah_core::Schema>,
) -> Result<(), JsValue> {
    let tables = Reflect::get(page, &"tables".into())?;
    let keys = Reflect::get(page, &"keys".into())?;
    for entry in js_sys::Object::entries(&tables.into()).iter() {
        let entry: Array = entry.into();
        let name = entry.get(0).as_string().unwrap_or_default();
        let rows: Array = entry.get(1).into();
        let table_keys: Array = Reflect::get(&keys, &JsValue::from_str(&name))?.into();
        let table = schema.and_then(|s| s.table(&name));
        let len = rows.length().min(table_keys.length());
        for start in (0..len).step_by(CHUNK_ROWS) {
            let end = (start + CHUNK_ROWS as u32).min(len);
            let (rows, keys) = (rows.slice(start, end), table_keys.slice(start, end));
            let key_list: Vec<String> = keys.iter().map(|k| k.as_string().unwrap_or_default()).collect();
            let summary = match table {
                Some(t) => {
                    let row_list: Vec<JsValue> = rows.iter().collect();
                    Summary::of(t, &key_list, &row_list, |row, path| js_value_key(&js_field(t, row, path)))
                }
                None => bare_summary(&key_list, key_list.len()),
            };
            put(tx, &name, JSON::stringify(&keys)?.into(), JSON::stringify(&rows)?.into(), summary).await?;
        }
    }
    Ok(())
}

/// A stored chunk as the model holds it.
fn chunk_of(record: &JsValue) -> Result<Chunk, JsValue> {
    let field = |name: &str| -> Result<String, JsValue> {
        Reflect::get(record, &JsValue::from_str(name))?.as_string().ok_or_else(|| corrupt(name))
    };
    let keys: Vec<String> = serde_json::from_str(&field("keys")?).map_err(|e| corrupt(&e.to_string()))?;
    let rows: Vec<Row> = serde_json::from_str(&field("rows")?).map_err(|e| corrupt(&e.to_string()))?;
    if rows.len() != keys.len() {
        return Err(corrupt("as many keys as rows"));
    }
    Ok(Chunk { keys, rows })
}

/// The chunk `key` belongs to in `table` (the first chunk for a key before all of them), with its
/// record key; an empty chunk when the table has none.
async fn locate(tx: &Transaction, table: &str, key: &str) -> Result<(Option<JsValue>, Chunk), JsValue> {
    let chunks = tx.store(CHUNKS).map_err(js_err)?;
    let start = record_key(table, "");
    let before = range(&start, &record_key(table, key), false)?;
    let mut found = chunks.scan(Some(before), Some(1), None, Some(Direction::Prev)).await.map_err(js_err)?;
    if found.is_empty() {
        let all = range(&start, &table_end(table), false)?;
        found = chunks.scan(Some(all), Some(1), None, Some(Direction::Next)).await.map_err(js_err)?;
    }
    match found.pop() {
        Some((id, record)) => Ok((Some(id), chunk_of(&record)?)),
        None => Ok((None, Chunk { keys: Vec::new(), rows: Vec::new() })),
    }
}

/// The first key of the chunk after the one whose record key is `id`.
async fn next_first(tx: &Transaction, table: &str, id: &JsValue) -> Result<Option<String>, JsValue> {
    let after = range(id, &table_end(table), true)?;
    let keys = tx.store(CHUNKS).map_err(js_err)?.get_all_keys(Some(after), Some(1)).await.map_err(js_err)?;
    Ok(keys.first().map(|k| Array::from(k).get(1).as_string().unwrap_or_default()))
}

/// Applies row changes of `table` (`(key, row or None to delete)`, later ones winning) to the
/// chunks they fall in: each chunk read, changed, cut to size and written back with its summary.
pub(crate) async fn apply(
    tx: &Transaction,
    table: &str,
    schema: Option<&Table>,
    changes: Vec<(String, Option<Row>)>,
) -> Result<(), JsValue> {
    let changes: std::collections::BTreeMap<String, Option<Row>> = changes.into_iter().collect();
    let mut changes = changes.into_iter().peekable();
    while let Some((key, _)) = changes.peek() {
        let (id, chunk) = locate(tx, table, key).await?;
        let bound = match &id {
            Some(id) => next_first(tx, table, id).await?,
            None => None,
        };
        let mut group = Vec::new();
        while let Some((key, row)) = changes.next_if(|(k, _)| bound.as_ref().is_none_or(|b| k < b)) {
            // Row versions only move forward: an event older than the row it would replace (it
            // arrived after our own newer ack) changes nothing.
            let stored = chunk.get(&key).map(row_version);
            if row.as_ref().is_some_and(|r| stored.is_some_and(|v| v > row_version(r))) {
                continue;
            }
            group.push((key, row));
        }
        let old_first = chunk.keys.first().cloned();
        let mut kept = false;
        for became in chunk.apply(group) {
            let summary = match schema {
                Some(t) => became.summary(t),
                None => bare_summary(&became.keys, became.rows.len()),
            };
            kept |= old_first.as_ref() == Some(&summary.first);
            put(tx, table, text(&became.keys)?, text(&became.rows)?, summary).await?;
        }
        if let (Some(old), false) = (id, kept) {
            // Its first row went (or moved before it): the chunk lives under a new key, or not at all.
            tx.store(CHUNKS).map_err(js_err)?.delete(old.clone()).await.map_err(js_err)?;
            tx.store(SUMMARIES).map_err(js_err)?.delete(old).await.map_err(js_err)?;
        }
    }
    Ok(())
}

/// The summaries of `table`'s chunks, in key order.
pub(crate) async fn summaries(tx: &Transaction, table: &str) -> Result<Vec<Summary>, JsValue> {
    let all = range(&record_key(table, ""), &table_end(table), false)?;
    let mut list = Vec::new();
    for stored in tx.store(SUMMARIES).map_err(js_err)?.get_all(Some(all), None).await.map_err(js_err)? {
        let text = Reflect::get(&stored, &"summary".into())?.as_string().ok_or_else(|| corrupt("summary"))?;
        list.push(serde_json::from_str(&text).map_err(|e| corrupt(&e.to_string()))?);
    }
    Ok(list)
}

/// How many rows every table holds (from the summaries alone).
pub(crate) async fn count_all(tx: &Transaction) -> Result<u64, JsValue> {
    let mut rows = 0;
    for stored in tx.store(SUMMARIES).map_err(js_err)?.get_all(None, None).await.map_err(js_err)? {
        let text = Reflect::get(&stored, &"summary".into())?.as_string().ok_or_else(|| corrupt("summary"))?;
        let summary: Summary = serde_json::from_str(&text).map_err(|e| corrupt(&e.to_string()))?;
        rows += summary.rows;
    }
    Ok(rows)
}

/// The chunk of `table` whose first key is `first`, if it is still stored.
pub(crate) async fn chunk_at(tx: &Transaction, table: &str, first: &str) -> Result<Option<Chunk>, JsValue> {
    let record = tx.store(CHUNKS).map_err(js_err)?.get(record_key(table, first)).await.map_err(js_err)?;
    record.map(|r| chunk_of(&r)).transpose()
}

/// The stored row of `table` keyed `key`.
pub(crate) async fn row(tx: &Transaction, table: &str, key: &str) -> Result<Option<Row>, JsValue> {
    let (_, chunk) = locate(tx, table, key).await?;
    Ok(chunk.get(key).cloned())
}

/// Every stored row: `(table, key, row)`.
pub(crate) async fn read_all(tx: &Transaction) -> Result<Vec<(String, RecordKey, Row)>, JsValue> {
    let mut rows = Vec::new();
    for record in tx.store(CHUNKS).map_err(js_err)?.get_all(None, None).await.map_err(js_err)? {
        let table = Reflect::get(&record, &"t".into())?.as_string().ok_or_else(|| corrupt("table"))?;
        let chunk = chunk_of(&record)?;
        rows.extend(chunk.keys.into_iter().zip(chunk.rows).map(|(k, r)| (table.clone(), RecordKey(k), r)));
    }
    Ok(rows)
}

/// Drops every stored row.
pub(crate) async fn clear(tx: &Transaction) -> Result<(), JsValue> {
    tx.store(CHUNKS).map_err(js_err)?.clear().await.map_err(js_err)?;
    tx.store(SUMMARIES).map_err(js_err)?.clear().await.map_err(js_err)?;
    Ok(())
}
