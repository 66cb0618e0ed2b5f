//! What the original's POS order route makes of an order as the POS sends it (its
//! `normalizeOrder`), and the rows we store from it. Pure: the same order and time give the same
//! rows.
//!
//! The original normalized into names its schema does not have (`status` beside `statusId`,
//! `qty` beside `quantity`) and then cut every row to the schema, so statuses, totals,
//! quantities and prices were lost. We keep its reply (`normalized`) as it was, and store every
//! field the request carried with the schema's fields filled from the values it holds under the
//! other names (`../shared/spec/apps.md` §3.5–3.6).

use serde_json::{json, Map, Value};

pub type Obj = Map<String, Value>;

/// The order as the original's route understood it, and the rows to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    pub id: String,
    /// The reply's `normalized` header (§3.5), without lines.
    pub header: Obj,
    pub lines: Vec<Line>,
    pub notes: Vec<Value>,
    pub status_logs: Vec<Obj>,
    /// Rows to store.
    pub rows: Rows,
}

/// One normalized line: the reply's form and its status logs.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub normalized: Obj,
    pub status_logs: Vec<Obj>,
}

/// The rows an order save writes, each with every field the request carried.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rows {
    pub header: Obj,
    pub lines: Vec<Obj>,
    pub payments: Vec<Obj>,
    pub order_logs: Vec<Obj>,
    pub line_logs: Vec<Obj>,
}

/// Why an order cannot be saved, in the original's words (`order-persist-failed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("POS order payload requires an id.")]
    MissingId,
    #[error("POS order payload requires a shiftId.")]
    MissingShift,
    #[error("EMPTY_ORDER_NOT_ALLOWED: Order must have at least one order_line")]
    Empty,
}

const CLOSED: &[&str] = &["closed", "complete", "completed", "cancelled", "void", "refunded", "returned"];

/// Whether a status ends an order (it leaves the active list).
pub fn is_closed(status: &str) -> bool {
    CLOSED.contains(&status.to_ascii_lowercase().as_str())
}

/// The first of `keys` that holds something (not null, not `""`).
pub fn first<'a>(o: &'a Obj, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().filter_map(|k| o.get(*k)).find(|v| !v.is_null() && v.as_str() != Some(""))
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n: &f64| n.is_finite())
}

fn num_value(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        json!(n as i64)
    } else {
        json!(n)
    }
}

/// Epoch milliseconds: a number as is, text parsed as a date.
fn epoch_ms(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => mishkah_core::Timestamp::parse(s).map(|t| t.0),
        _ => None,
    }
}

fn iso(ms: i64) -> Value {
    Value::String(mishkah_core::Timestamp(ms).to_iso())
}

/// `{ar, en}` names give their Arabic text, else English, `name`, `label`.
fn label(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Object(o) => text(first(o, &["ar", "en", "name", "label"])),
        other => text(Some(other)),
    }
}

fn version(v: Option<&Value>) -> Option<i64> {
    number(v).map(|n| n.trunc() as i64).filter(|n| *n > 0)
}

fn discount(o: &Obj) -> Value {
    let Some(Value::Object(d)) = o.get("discount") else { return Value::Null };
    let value = number(d.get("value")).unwrap_or(0.0);
    if value <= 0.0 {
        return Value::Null;
    }
    match d.get("type").and_then(Value::as_str) {
        Some("percent") => json!({"type": "percent", "value": num_value(value.min(100.0))}),
        _ => json!({"type": "amount", "value": num_value(value)}),
    }
}

fn object(v: Option<&Value>) -> Option<Obj> {
    v.and_then(Value::as_object).cloned()
}

const LOG_SOURCES: &[&str] = &["statusLogs", "status_logs", "statusHistory", "status_history", "events"];

fn sent_logs(o: &Obj) -> Vec<Obj> {
    let mut logs: Vec<Obj> = Vec::new();
    for key in LOG_SOURCES {
        for log in o.get(*key).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_object) {
            let id = text(log.get("id"));
            if id.is_none() || !logs.iter().any(|l| text(l.get("id")) == id) {
                logs.push(log.clone());
            }
        }
    }
    logs
}

/// Normalizes `order` (the POS's `order` object) saved under `id` at `now_ms`.
pub fn normalize(order: &Obj, id: &str, now_ms: i64) -> Result<Normalized, OrderError> {
    if id.is_empty() {
        return Err(OrderError::MissingId);
    }
    let meta_in = object(order.get("metadata")).unwrap_or_default();
    let shift = text(first(order, &["shiftId", "shift_id"])).or_else(|| text(meta_in.get("shiftId")));
    let shift = shift.ok_or(OrderError::MissingShift)?;
    let actor = text(first(order, &["updatedBy", "actorId", "authorId"]))
        .or_else(|| text(meta_in.get("actorId")))
        .or_else(|| text(order.get("userId")))
        .unwrap_or_else(|| "pos".into());
    let created = epoch_ms(order.get("createdAt")).unwrap_or(now_ms);
    let updated = epoch_ms(order.get("updatedAt")).unwrap_or(created);
    let saved = epoch_ms(order.get("savedAt")).unwrap_or(updated);
    let status = text(first(order, &["status", "statusId", "status_id"])).unwrap_or_else(|| "open".into());
    let stage =
        text(first(order, &["fulfillmentStage", "stage", "stageId", "stage_id"])).unwrap_or_else(|| "new".into());
    let payment_state = text(first(order, &["paymentState", "payment_state", "paymentStateId", "payment_state_id"]))
        .unwrap_or_else(|| "unpaid".into());
    let kind = text(first(order, &["type", "orderType"])).unwrap_or_else(|| "dine_in".into());
    let lock_lines = order.get("lockLineEdits").and_then(Value::as_bool).unwrap_or(true);

    let mut lines = Vec::new();
    let mut line_rows = Vec::new();
    let mut line_logs = Vec::new();
    for (i, line) in order.get("lines").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let Some(line) = line.as_object() else { continue };
        let (normalized, logs, row) =
            normalize_line(line, i, id, &stage, &status, lock_lines, created, updated, &actor);
        line_logs.extend(logs.iter().map(|l| log_row(l, &["status"])));
        lines.push(Line { normalized, status_logs: logs });
        line_rows.push(row);
    }
    if lines.is_empty() {
        return Err(OrderError::Empty);
    }

    let notes: Vec<Value> = order
        .get("notes")
        .map(|n| match n {
            Value::Array(list) => list.clone(),
            other => vec![other.clone()],
        })
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| {
            let (message, note) = match &n {
                Value::String(s) => (s.trim().to_owned(), Obj::new()),
                Value::Object(o) => (text(first(o, &["message", "text"])).unwrap_or_default(), o.clone()),
                _ => return None,
            };
            if message.is_empty() {
                return None;
            }
            let note_id =
                text(note.get("id")).unwrap_or_else(|| format!("note-{id}-{}", uuid::Uuid::new_v4().simple()));
            Some(json!({"id": note_id, "orderId": id, "message": message,
                "authorId": text(first(&note, &["authorId", "author_id", "actor"])).unwrap_or_else(|| "pos".into()),
                "authorName": note.get("authorName").cloned().unwrap_or(Value::Null),
                "createdAt": note.get("createdAt").cloned().unwrap_or_else(|| json!(now_ms))}))
        })
        .collect();

    let payments: Vec<Value> = order
        .get("payments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .enumerate()
        .map(|(i, p)| {
            json!({"id": text(p.get("id")).unwrap_or_else(|| format!("pm-{id}-{}", i + 1)),
                   "method": text(first(p, &["method", "id", "type"])).unwrap_or_else(|| "cash".into()),
                   "amount": num_value(number(p.get("amount")).unwrap_or(0.0))})
        })
        .collect();

    let mut sent_order_logs = sent_logs(order);
    sent_order_logs
        .sort_by_key(|l| epoch_ms(first(l, &["changed_at", "changedAt", "at", "timestamp"])).unwrap_or(updated));
    if sent_order_logs.is_empty() {
        sent_order_logs.push(Obj::new());
    }
    let status_logs: Vec<Obj> = sent_order_logs
        .iter()
        .map(|l| {
            let at = epoch_ms(first(l, &["changed_at", "changedAt", "at", "timestamp"])).unwrap_or(updated);
            let mut log = Obj::new();
            log.insert("id".into(), json!(text(l.get("id")).unwrap_or_else(|| format!("{id}::status::{at}"))));
            log.insert("orderId".into(), json!(id));
            log.insert(
                "status".into(),
                json!(text(first(l, &["status_id", "statusId", "status"])).unwrap_or_else(|| status.clone())),
            );
            log.insert(
                "stage".into(),
                json!(text(first(l, &["stage", "stageId", "stage_id"])).unwrap_or_else(|| stage.clone())),
            );
            log.insert(
                "paymentState".into(),
                json!(text(first(l, &["paymentState", "payment_state"])).unwrap_or_else(|| payment_state.clone())),
            );
            log_tail(&mut log, l, &actor, at);
            log
        })
        .collect();
    let order_logs = status_logs.iter().map(|l| log_row(l, &["status", "stage", "paymentState"])).collect();

    let pos_id = text(order.get("posId")).or_else(|| text(meta_in.get("posId")));
    let pos_label = text(order.get("posLabel")).or_else(|| text(meta_in.get("posLabel")));
    let pos_number =
        number(order.get("posNumber")).or_else(|| number(meta_in.get("posNumber"))).map(|n| num_value(n.trunc()));
    let order_discount = discount(order);
    let mut metadata = meta_in.clone();
    metadata.entry("version").or_insert(json!(2));
    metadata.insert("linesCount".into(), json!(lines.len()));
    metadata.insert("notesCount".into(), json!(notes.len()));
    metadata.insert("posId".into(), json!(pos_id));
    metadata.insert("posLabel".into(), json!(pos_label));
    if let Some(n) = &pos_number {
        metadata.insert("posNumber".into(), n.clone());
    }
    if !order_discount.is_null() {
        metadata.insert("discount".into(), order_discount.clone());
    }

    let mut header = Obj::new();
    header.insert("id".into(), json!(id));
    header.insert("type".into(), json!(kind));
    header.insert("status".into(), json!(status));
    header.insert("fulfillmentStage".into(), json!(stage));
    header.insert("paymentState".into(), json!(payment_state));
    header.insert("tableIds".into(), order.get("tableIds").filter(|v| v.is_array()).cloned().unwrap_or(json!([])));
    header.insert("guests".into(), num_value(number(order.get("guests")).unwrap_or(0.0)));
    header.insert("totals".into(), order.get("totals").filter(|v| v.is_object()).cloned().unwrap_or(json!({})));
    header.insert("discount".into(), order_discount);
    header.insert("createdAt".into(), json!(created));
    header.insert("updatedAt".into(), json!(updated));
    header.insert("savedAt".into(), json!(saved));
    header.insert("allowAdditions".into(), order.get("allowAdditions").cloned().unwrap_or(json!(true)));
    header.insert("lockLineEdits".into(), json!(lock_lines));
    header.insert("isPersisted".into(), json!(true));
    header.insert("dirty".into(), json!(false));
    header.insert("origin".into(), order.get("origin").cloned().unwrap_or(json!("pos")));
    header.insert("shiftId".into(), json!(shift));
    header.insert("posId".into(), json!(pos_id));
    header.insert("posLabel".into(), json!(pos_label));
    header.insert("posNumber".into(), pos_number.unwrap_or(Value::Null));
    header.insert("payments".into(), Value::Array(payments.clone()));
    for key in ["customerId", "customerAddressId", "customerAreaId"] {
        header.insert(key.into(), order.get(key).cloned().unwrap_or(Value::Null));
    }
    for key in ["customerName", "customerPhone", "customerAddress"] {
        header.insert(key.into(), order.get(key).cloned().unwrap_or(json!("")));
    }
    if let Some(v) = version(order.get("version")) {
        header.insert("version".into(), json!(v));
    }
    for key in ["finalizedAt", "finishedAt"] {
        if let Some(v) = order.get(key) {
            header.insert(key.into(), v.clone());
        }
    }
    header.insert("metadata".into(), Value::Object(metadata));

    let header_row = header_row(order, &header, &notes, created, &actor);
    let payment_rows = payments
        .iter()
        .filter_map(Value::as_object)
        .zip(order.get("payments").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_object))
        .map(|(p, sent)| {
            let mut row = sent.clone();
            row.insert("id".into(), p["id"].clone());
            row.insert("orderId".into(), json!(id));
            row.insert("shiftId".into(), json!(shift));
            let method = text(first(sent, &["paymentMethodId", "method", "methodId", "id"]));
            row.insert("paymentMethodId".into(), json!(method.unwrap_or_else(|| "cash".into())));
            row.insert("amount".into(), p["amount"].clone());
            row
        })
        .collect();
    Ok(Normalized {
        id: id.to_owned(),
        header,
        lines,
        notes,
        status_logs,
        rows: Rows { header: header_row, lines: line_rows, payments: payment_rows, order_logs, line_logs },
    })
}

/// The stored header: what the request carried, the normalized values over it, and the schema's
/// fields filled from both.
fn header_row(order: &Obj, header: &Obj, notes: &[Value], created: i64, actor: &str) -> Obj {
    let mut row = order.clone();
    row.remove("lines");
    for key in LOG_SOURCES {
        row.remove(*key);
    }
    for (k, v) in header {
        row.insert(k.clone(), v.clone());
    }
    let totals = object(order.get("totals")).unwrap_or_default();
    let amount = |keys: &[&str], total: &str| {
        num_value(number(first(order, keys)).or_else(|| number(totals.get(total))).unwrap_or(0.0))
    };
    row.insert("statusId".into(), header["status"].clone());
    row.insert("stageId".into(), header["fulfillmentStage"].clone());
    row.insert("paymentStateId".into(), header["paymentState"].clone());
    row.insert("orderTypeId".into(), header["type"].clone());
    let first_table = order.get("tableIds").and_then(Value::as_array).and_then(|t| t.first()).cloned();
    row.insert(
        "tableId".into(),
        first(order, &["tableId", "table_id"]).cloned().or(first_table).unwrap_or(Value::Null),
    );
    row.insert("subtotal".into(), amount(&["subtotal"], "subtotal"));
    row.insert("service".into(), amount(&["service_amount", "serviceAmount"], "service"));
    row.insert("tax".into(), amount(&["tax_amount", "taxAmount"], "vat"));
    // The order's own `discount` is the rule (kept in `metadata.discount`); the column is the amount.
    row.insert("discount".into(), amount(&["discountAmount", "discount_amount"], "discount"));
    row.insert("deliveryFee".into(), amount(&["delivery_fee", "deliveryFee"], "deliveryFee"));
    row.insert("totalDue".into(), amount(&["totalDue", "total_due"], "due"));
    row.insert("totalPaid".into(), amount(&["totalPaid", "total_paid"], "paid"));
    row.insert("notes".into(), Value::Array(notes.to_vec()));
    row.entry("openedAt").or_insert_with(|| iso(created));
    row.entry("openedBy").or_insert_with(|| json!(actor));
    let status = header["status"].as_str().unwrap_or("");
    let closed_at = is_closed(status).then(|| {
        first(order, &["closedAt", "finalizedAt", "finishedAt"]).cloned().unwrap_or(json!(header["updatedAt"]))
    });
    row.insert("closedAt".into(), closed_at.unwrap_or(Value::Null));
    row.remove("version");
    row
}

#[allow(clippy::too_many_arguments)]
fn normalize_line(
    line: &Obj,
    index: usize,
    order_id: &str,
    order_stage: &str,
    order_status: &str,
    lock_lines: bool,
    created: i64,
    updated: i64,
    actor: &str,
) -> (Obj, Vec<Obj>, Obj) {
    let item = text(first(line, &["itemId", "item_id", "menuItemId", "menu_item_id", "productId", "product_id"]));
    let item_key = item.clone().unwrap_or_else(|| format!("ln-{}-{index}", uuid::Uuid::new_v4().simple()));
    let id = text(first(line, &["id", "lineId", "line_id"])).unwrap_or_else(|| format!("{order_id}::{item_key}"));
    let section = text(first(
        line,
        &[
            "kitchenSection",
            "kitchen_section",
            "stationId",
            "station_id",
            "sectionId",
            "section_id",
            "kitchenSectionId",
        ],
    ));
    let qty = number(line.get("qty")).unwrap_or(0.0);
    let price = number(line.get("price")).unwrap_or(0.0);
    let line_created = epoch_ms(line.get("createdAt")).unwrap_or(created);
    let line_updated = epoch_ms(line.get("updatedAt")).unwrap_or(updated);
    let mut logs = sent_logs(line);
    logs.sort_by_key(|l| epoch_ms(first(l, &["changed_at", "changedAt", "at", "timestamp"])).unwrap_or(line_updated));
    let own_status = text(first(line, &["status", "statusId", "status_id"])).unwrap_or_else(|| order_status.to_owned());
    let status = logs.last().and_then(|l| text(first(l, &["status_id", "statusId", "status"]))).unwrap_or_else(|| {
        if own_status.is_empty() {
            "draft".into()
        } else {
            own_status
        }
    });
    if logs.is_empty() {
        logs.push(Obj::new());
    }
    let logs: Vec<Obj> = logs
        .iter()
        .map(|l| {
            let at = epoch_ms(first(l, &["changed_at", "changedAt", "at", "timestamp"])).unwrap_or(line_updated);
            let station = text(first(
                l,
                &["station_id", "stationId", "section_id", "sectionId", "kitchen_section_id", "kitchenSectionId"],
            ))
            .or_else(|| section.clone());
            let mut log = Obj::new();
            log.insert("id".into(), json!(text(l.get("id")).unwrap_or_else(|| format!("{id}::status::{at}"))));
            log.insert("orderId".into(), json!(order_id));
            log.insert("orderLineId".into(), json!(id));
            log.insert(
                "status".into(),
                json!(text(first(l, &["status_id", "statusId", "status"])).unwrap_or_else(|| status.clone())),
            );
            log.insert("stationId".into(), json!(station));
            log_tail(&mut log, l, actor, at);
            log
        })
        .collect();
    let notes = match line.get("notes") {
        Some(Value::Array(list)) => Value::Array(list.clone()),
        Some(Value::Null) | None => json!([]),
        Some(Value::String(s)) if s.trim().is_empty() => json!([]),
        Some(other) => json!([other]),
    };
    let mut n = Obj::new();
    n.insert("id".into(), json!(id));
    n.insert(
        "uid".into(),
        json!(text(first(line, &["uid", "storageId"])).unwrap_or_else(|| format!("{order_id}::{id}"))),
    );
    n.insert("itemId".into(), json!(item.clone().or_else(|| text(line.get("Item_Id")))));
    n.insert("item_id".into(), json!(item.or_else(|| text(line.get("Item_Id")))));
    n.insert(
        "name".into(),
        json!(label(first(line, &["name", "itemName"]))
            .or_else(|| text(first(line, &["item_name", "item_label", "label"])))),
    );
    n.insert(
        "description".into(),
        json!(label(first(line, &["description", "itemDescription"]))
            .or_else(|| text(first(line, &["item_description", "lineDescription", "line_description"])))),
    );
    n.insert("qty".into(), num_value(qty));
    n.insert("price".into(), num_value(price));
    n.insert("total".into(), num_value(number(line.get("total")).unwrap_or(qty * price)));
    n.insert(
        "stage".into(),
        json!(text(first(line, &["stage", "stageId", "stage_id"])).unwrap_or_else(|| order_stage.to_owned())),
    );
    for key in ["kitchenSection", "kitchenSectionId", "kitchen_section_id"] {
        n.insert(key.into(), json!(section));
    }
    n.insert("locked".into(), line.get("locked").cloned().unwrap_or(json!(lock_lines)));
    n.insert("notes".into(), notes.clone());
    n.insert("discount".into(), discount(line));
    n.insert("createdAt".into(), json!(line_created));
    n.insert("updatedAt".into(), json!(line_updated));
    if let Some(m) = object(line.get("metadata")) {
        n.insert("metadata".into(), Value::Object(m));
    }
    n.insert("version".into(), json!(version(line.get("version")).unwrap_or(1)));
    n.insert("status".into(), json!(status));

    let mut row = line.clone();
    for key in LOG_SOURCES {
        row.remove(*key);
    }
    for (k, v) in &n {
        // `{ar, en}` names stay whole in the row; the reply gets the flattened text.
        if matches!(k.as_str(), "name" | "description") && line.get(k).is_some_and(Value::is_object) {
            continue;
        }
        row.insert(k.clone(), v.clone());
    }
    row.insert("orderId".into(), json!(order_id));
    row.insert("quantity".into(), num_value(number(first(line, &["quantity"])).unwrap_or(qty)));
    row.insert("unitPrice".into(), num_value(number(first(line, &["unitPrice", "unit_price"])).unwrap_or(price)));
    row.insert("statusId".into(), json!(status));
    row.insert("metadata".into(), n.get("metadata").cloned().unwrap_or_else(|| json!({})));
    row.remove("version");
    (n, logs, row)
}

/// What every status log ends with: who, from where, why, and when.
fn log_tail(log: &mut Obj, sent: &Obj, actor: &str, at: i64) {
    log.insert("actorId".into(), json!(text(first(sent, &["actorId", "actor_id"])).unwrap_or_else(|| actor.into())));
    log.insert("source".into(), first(sent, &["source", "channel", "origin"]).cloned().unwrap_or(json!("pos")));
    log.insert("reason".into(), first(sent, &["reason", "note"]).cloned().unwrap_or(Value::Null));
    log.insert("metadata".into(), first(sent, &["metadata", "meta"]).cloned().unwrap_or_else(|| json!({})));
    log.insert("changedAt".into(), json!(at));
}

/// A status log as stored: the normalized entry, with the schema's `…Id` names filled.
fn log_row(log: &Obj, names: &[&str]) -> Obj {
    let mut row = log.clone();
    for name in names {
        let id_name = match *name {
            "status" => "statusId",
            "stage" => "stageId",
            _ => "paymentStateId",
        };
        row.insert(id_name.into(), log.get(*name).cloned().unwrap_or(Value::Null));
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Obj {
        json!({
            "id": "REM-002001", "shiftId": "S1", "posId": "P001", "posNumber": 1, "status": "open",
            "type": "dine_in", "tableIds": ["T01"], "totals": {"subtotal": 300, "due": 300},
            "notes": ["no onions", " "], "createdAt": 1_000, "updatedAt": 2_000,
            "discount": {"type": "percent", "value": 150},
            "lines": [
                {"id": "L1", "itemId": "item-1", "name": {"ar": "كشري", "en": "Koshary"}, "qty": 3, "price": 50,
                 "status": "draft", "kitchenSection": "hot", "notes": "hot"},
                {"itemId": "item-3", "quantity": 2, "unitPrice": 25, "qty": 2, "price": 25}
            ],
            "payments": [{"method": "cash", "amount": "100"}]
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn stores_what_the_original_lost_under_the_schema_names() {
        let n = normalize(&order(), "REM-002001", 5_000).unwrap();
        let h = &n.rows.header;
        assert_eq!(
            (&h["statusId"], &h["orderTypeId"], &h["tableId"]),
            (&json!("open"), &json!("dine_in"), &json!("T01"))
        );
        assert_eq!((&h["subtotal"], &h["totalDue"], &h["discount"]), (&json!(300), &json!(300), &json!(0)));
        assert_eq!(h["metadata"]["discount"], json!({"type": "percent", "value": 100}), "capped at 100");
        assert_eq!(h["notes"][0]["message"], "no onions");
        assert_eq!(h["notes"].as_array().unwrap().len(), 1, "blank notes skipped");
        assert_eq!(h["closedAt"], Value::Null, "an open order is not closed");
        let lines = &n.rows.lines;
        assert_eq!(
            (&lines[0]["quantity"], &lines[0]["unitPrice"], &lines[0]["total"]),
            (&json!(3), &json!(50), &json!(150))
        );
        assert_eq!(lines[0]["name"], json!({"ar": "كشري", "en": "Koshary"}), "the row keeps both names");
        assert_eq!(n.lines[0].normalized["name"], "كشري", "the reply gets the original's text");
        assert_eq!(lines[0]["notes"], json!(["hot"]));
        assert_eq!(lines[0]["kitchenSectionId"], "hot");
        assert_eq!(lines[1]["id"], "REM-002001::item-3");
        assert_eq!((&lines[1]["quantity"], &lines[1]["unitPrice"]), (&json!(2), &json!(25)));
        assert_eq!(n.rows.payments[0]["amount"], json!(100));
        assert_eq!(n.rows.payments[0]["paymentMethodId"], "cash");
        assert_eq!(n.rows.order_logs[0]["id"], "REM-002001::status::2000");
        assert_eq!(n.rows.order_logs[0]["statusId"], "open");
        assert_eq!(n.rows.line_logs.len(), 2);
        assert_eq!(n.rows.line_logs[0]["orderLineId"], "L1");
        assert_eq!(n.rows.line_logs[0]["statusId"], "draft");
    }

    #[test]
    fn refuses_what_the_original_refused() {
        let mut o = order();
        assert_eq!(normalize(&o, "", 0), Err(OrderError::MissingId));
        o.remove("shiftId");
        assert_eq!(normalize(&o, "X", 0), Err(OrderError::MissingShift));
        let mut o = order();
        o.insert("lines".into(), json!([]));
        assert_eq!(normalize(&o, "X", 0), Err(OrderError::Empty));
    }

    #[test]
    fn a_closed_order_gets_its_closing_time() {
        let mut o = order();
        o.insert("status".into(), json!("closed"));
        let n = normalize(&o, "X", 9_000).unwrap();
        assert_eq!(n.rows.header["closedAt"], json!(2_000));
    }
}
