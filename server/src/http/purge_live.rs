//! `POST /api/manage/purge-live-data`: the original's "reset the day" of its finance screen
//! (`pos_finance.html`), as a thin adapter over the purge every management route uses: the rows
//! are archived (restorable with `/api/manage/restore`) and deleted through the write path, so
//! every client sees each removal as an event. Unlike the original, the event log is never
//! reset (`resetEvents` is accepted and ignored): clients resume from their cursors.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::body::JsonBody;
use super::caller::{require_branch, require_manager};
use super::error::ApiError;
use crate::access::Caller;
use crate::clock::now_iso;
use crate::state::AppState;

/// The tables a purge without a list clears, as the original's.
const DEFAULT_TABLES: [&str; 4] = ["order_header", "order_line", "order_payment", "pos_shift"];

/// The original's purge names: lower-cased, other characters folded to `_`, its aliases.
fn purge_name(name: &str) -> String {
    let mut folded = String::new();
    for c in name.trim().to_lowercase().chars() {
        match c.is_ascii_alphanumeric() {
            true => folded.push(c),
            false if !folded.ends_with('_') => folded.push('_'),
            false => {}
        }
    }
    let folded = folded.trim_matches('_').to_owned();
    match folded.as_str() {
        "orders" | "order" | "order_headers" | "orderheader" => "order_header".into(),
        "order_lines" | "orders_lines" | "orderline" | "orderlines" | "line_items" => "order_line".into(),
        "payments" | "payment" | "order_payments" | "pos_payments" | "pos_payment" => "order_payment".into(),
        "pos_shifts" | "shifts" | "shift" => "pos_shift".into(),
        _ => folded,
    }
}

#[utoipa::path(
    post,
    path = "/api/manage/purge-live-data",
    tag = "manage",
    summary = "Purge a branch's live data (admin)",
    request_body(content = serde_json::Value, description = "JSON", content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `{branchId, moduleId?, tables?, reason?, requestedBy?}` → the original's reply:
/// `{status: "ok", totalRemoved, tables: [{table, status, removed}], historyEntry, ...}`.
pub async fn purge_live_data(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    require_manager(&state, &caller, "purge")?;
    let branch = body
        .get("branchId")
        .and_then(Value::as_str)
        .filter(|b| !b.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing-branch-id", "`branchId` is required"))?
        .to_owned();
    require_branch(&caller, &branch)?;
    let module = body.get("moduleId").and_then(Value::as_str).unwrap_or("pos").to_owned();
    let handle = state.module(&caller, &branch, &module).await?;
    let asked: Vec<String> = match body.get("tables").and_then(Value::as_array) {
        Some(list) if !list.iter().any(|t| t == "*") => {
            list.iter().filter_map(Value::as_str).map(str::to_owned).collect()
        }
        _ => DEFAULT_TABLES.iter().map(|t| (*t).to_owned()).collect(),
    };
    let mut skipped = Vec::new();
    let mut tables: Vec<String> = Vec::new();
    for name in &asked {
        match handle.schema.resolve_table(&purge_name(name)) {
            Some(t) if !tables.contains(&t.name) => tables.push(t.name.clone()),
            Some(_) => {}
            None => skipped.push(json!({"table": name, "status": "skipped", "reason": "table-not-registered"})),
        }
    }
    if tables.is_empty() {
        return Err(ApiError::bad_request("no-tables-resolved", "none of `tables` is a table of the module")
            .with_details(json!({"tables": skipped})));
    }
    let archive = format!("purge-{}", now_iso());
    let purged = handle.purge(tables.clone(), archive.clone()).await?;
    let removed = |table: &str| purged.iter().filter(|c| c.event.change.table == table).count();
    let mut report: Vec<Value> = tables
        .iter()
        .map(|t| json!({"table": t, "status": if removed(t) > 0 { "cleared" } else { "empty" }, "removed": removed(t)}))
        .collect();
    report.extend(skipped);
    let version = purged.last().map(|c| c.event.sequence);
    let reason = body.get("reason").cloned().unwrap_or(Value::Null);
    let requested_by = body.get("requestedBy").cloned().unwrap_or(Value::Null);
    let history = (!purged.is_empty()).then(|| {
        json!({"id": archive, "branchId": branch, "moduleId": module, "createdAt": now_iso(), "reason": reason,
               "requestedBy": requested_by, "totalRecords": purged.len(),
               "tables": tables.iter().map(|t| json!({"name": t, "count": removed(t)})).collect::<Vec<_>>()})
    });
    Ok(Json(json!({
        "status": "ok", "branchId": branch, "moduleId": module, "requestedBy": requested_by, "reason": reason,
        "resetEvents": false, "broadcast": true, "version": version, "totalRemoved": purged.len(),
        "changed": !purged.is_empty(), "tables": report, "historyEntry": history,
        "message": format!("{} rows archived as `{archive}` and removed", purged.len()),
    })))
}

#[cfg(test)]
mod tests {
    use super::purge_name;

    #[test]
    fn names_fold_as_the_originals_purge_folded_them() {
        assert_eq!(purge_name("Orders"), "order_header");
        assert_eq!(purge_name("line-items"), "order_line");
        assert_eq!(purge_name("POS Payments"), "order_payment");
        assert_eq!(purge_name("shifts"), "pos_shift");
        assert_eq!(purge_name("job_order_header"), "job_order_header");
    }
}
