//! The original's POS order API (`/api/branches/{b}/modules/pos/orders`): an order saved as its
//! header, lines, payments and status logs in one transaction through the engine's writer, and
//! read back as the original's order snapshot. The HTTP adapter is `http/orders.rs`.

pub mod normalize;

use std::sync::{Arc, Mutex};

use mishkah_core::mutation::row_version;
use mishkah_core::query::{Filter, Op, Operand};
use mishkah_core::{Action, Mutation, Row};
use serde_json::{json, Value};

use crate::engine::plan::{PlanReads, Planner};
use crate::engine::WriteError;
use normalize::{first, normalize, Normalized, Obj};

/// `source` of the events an order save logs, as the original tagged them.
pub const SOURCE: &str = "pos-order-api";

/// `field = value`.
pub fn field_is(field: &str, value: Value) -> Filter {
    Filter::Compare { left: Operand::Field(vec![field.to_owned()]), op: Op::Eq, right: Operand::Value(value) }
}

fn refused(message: impl Into<String>) -> WriteError {
    WriteError::Refused { code: "order-persist-failed", message: message.into() }
}

fn sent_version(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_f64().map(|f| f.trunc() as i64),
        Value::String(s) => s.trim().parse::<f64>().ok().map(|f| f.trunc() as i64),
        _ => None,
    }
    .filter(|v| *v > 0)
}

/// A row written the way the original's save wrote it: inserted when absent; with `version` 1
/// (or none on a table without versions) laid over the stored row, keeping the fields the
/// request does not carry (the original replaced it and lost them); with another version, held
/// to the stored version + 1.
fn upsert(reads: &mut PlanReads<'_>, table: &str, mut row: Obj, version: Option<i64>) -> Result<Mutation, WriteError> {
    let id = row.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
    let stored = reads.row(table, &id)?;
    let mut m = match (&stored, version) {
        (None, _) => Mutation::new(table, Action::Save, Value::Null),
        (Some(current), None | Some(1)) => {
            let mut m = Mutation::new(table, Action::Merge, Value::Null);
            m.expected_version = Some(row_version(current));
            m
        }
        (Some(_), Some(v)) => {
            row.insert("version".into(), json!(v));
            Mutation::new(table, Action::Save, Value::Null)
        }
    };
    m.record = row;
    Ok(m)
}

/// The plan of a `POST …/orders`, and where it leaves the normalized order for the reply.
pub fn save(order: Obj, now_ms: i64) -> (Planner, Arc<Mutex<Option<Normalized>>>) {
    let out = Arc::new(Mutex::new(None));
    let result = out.clone();
    let plan: Planner = Box::new(move |reads: &mut PlanReads<'_>| {
        let mut order = order;
        let sent_id = order.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        let draft = sent_id.as_deref().is_none_or(|id| id.starts_with("draft-"));
        if let Some(id) = sent_id.as_deref().filter(|_| !draft) {
            if let Some(stored) = reads.row("order_header", id)? {
                let stored_lines = reads.rows_where("order_line", &field_is("orderId", json!(id)))?.len();
                let sent_lines = order.get("lines").and_then(Value::as_array).map_or(0, Vec::len);
                if sent_version(order.get("version")) == Some(row_version(&stored)) && sent_lines <= stored_lines {
                    return Err(refused(format!(
                        "DUPLICATE_SAVE_DETECTED: order {id} is already saved at version {}",
                        row_version(&stored)
                    )));
                }
            }
        }
        let id = match (draft, reads.allocate("order_header", "id")?) {
            (true, Some((n, text, rule))) => {
                if reads.row("order_header", &text)?.is_some() {
                    return Err(refused(format!("SEQUENCE_COLLISION: {text} already exists")));
                }
                let meta = order.entry("metadata").or_insert_with(|| json!({}));
                if let Some(meta) = meta.as_object_mut() {
                    meta.insert("invoiceSequence".into(), json!(n));
                    meta.insert("sequenceRule".into(), serde_json::to_value(rule).unwrap_or(Value::Null));
                }
                text
            }
            _ => sent_id.unwrap_or_default(),
        };
        let n = normalize(&order, &id, now_ms).map_err(|e| refused(e.to_string()))?;
        let mut mutations = Vec::new();
        let rows = n.rows.clone();
        mutations.push(upsert(reads, "order_header", rows.header, sent_version(order.get("version")))?);
        let mut saved_lines = Vec::new();
        for (row, line) in rows.lines.into_iter().zip(&n.lines) {
            saved_lines.push(row.get("id").cloned().unwrap_or(Value::Null));
            mutations.push(upsert(reads, "order_line", row, sent_version(line.normalized.get("version")))?);
        }
        for gone in reads.rows_where("order_line", &field_is("orderId", json!(id)))? {
            let key = gone.get("id").cloned().unwrap_or(Value::Null);
            if !saved_lines.contains(&key) {
                mutations.push(Mutation::new("order_line", Action::Delete, json!({"id": key})));
            }
        }
        let now_iso = mishkah_core::Timestamp(now_ms).to_iso();
        for mut payment in rows.payments {
            let pid = payment.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
            let stored = reads.row("order_payment", &pid)?.unwrap_or_default();
            // A payment keeps when and how it was taken (the original overwrote both on every save).
            for (field, fallback) in [("capturedAt", json!(now_iso)), ("reference", Value::Null)] {
                if first(&payment, &[field]).is_none() {
                    payment.insert(field.into(), stored.get(field).cloned().unwrap_or(fallback));
                }
            }
            mutations.push(upsert(reads, "order_payment", payment, None)?);
        }
        // Status history only grows: logs the request does not repeat stay (the original deleted them).
        for log in rows.order_logs {
            mutations.push(upsert(reads, "order_status_log", log, None)?);
        }
        for log in rows.line_logs {
            mutations.push(upsert(reads, "order_line_status_log", log, None)?);
        }
        *result.lock().unwrap_or_else(|p| p.into_inner()) = Some(n);
        Ok(mutations)
    });
    (plan, out)
}

/// The original's order snapshot: the header row with its `lines` (each with its `statusLogs`),
/// `payments` and `statusLogs`.
pub fn snapshot(header: Row, lines: Vec<Row>, payments: Vec<Row>, logs: Vec<Row>, line_logs: &[Row]) -> Value {
    let lines: Vec<Value> = lines
        .into_iter()
        .map(|mut line| {
            let id = line.get("id").cloned();
            let own: Vec<Value> = line_logs
                .iter()
                .filter(|l| id.is_some() && first(l, &["orderLineId", "lineId", "line_id"]) == id.as_ref())
                .map(|l| Value::Object(l.clone()))
                .collect();
            line.insert("statusLogs".into(), Value::Array(own));
            Value::Object(line)
        })
        .collect();
    let mut order = header;
    order.insert("lines".into(), Value::Array(lines));
    order.insert("payments".into(), Value::Array(payments.into_iter().map(Value::Object).collect()));
    order.insert("statusLogs".into(), Value::Array(logs.into_iter().map(Value::Object).collect()));
    Value::Object(order)
}

/// The reply's `normalized`: the normalized header with its lines, notes and status logs.
pub fn normalized_reply(n: &Normalized) -> Value {
    let mut out = n.header.clone();
    let lines: Vec<Value> = n
        .lines
        .iter()
        .map(|l| {
            let mut line = l.normalized.clone();
            line.insert("statusLogs".into(), json!(l.status_logs));
            Value::Object(line)
        })
        .collect();
    out.insert("lines".into(), Value::Array(lines));
    out.insert("notes".into(), Value::Array(n.notes.clone()));
    out.insert("statusLogs".into(), json!(n.status_logs));
    Value::Object(out)
}
