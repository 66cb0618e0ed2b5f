//! The original's POS order routes, for module `pos`: `GET …/orders` (the active orders with
//! their lines and payments), `GET …/orders/{id}`, `POST …/orders` (save). A thin adapter: the
//! save is one plan on the engine's writer ([`crate::orders::save`]), reads go through the one
//! read path (rules, hidden fields).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mishkah_core::query::{Filter, Op, Operand};
use mishkah_core::Row;
use serde_json::{json, Value};

use super::body::JsonBody;
use super::error::ApiError;
use crate::access::Caller;
use crate::engine::{ModuleHandle, WriteError};
use crate::orders::normalize::{first, is_closed};
use crate::orders::{self, field_is};
use crate::state::AppState;
use crate::views::page::{table_page, PageRequest, PageRows};

const MODULE: &str = "pos";

/// The routes exist for module `pos` only, as in the original.
async fn pos_module(
    state: &AppState,
    caller: &Caller,
    branch: &str,
    module: &str,
) -> Result<Arc<ModuleHandle>, ApiError> {
    if module != MODULE {
        return Err(ApiError::not_found("path-not-found", "orders are served for module `pos` only"));
    }
    state.module(caller, branch, module).await
}

/// The rows of `table` that `filter` lets through, as `caller` may see them.
async fn rows(
    state: &AppState,
    handle: &Arc<ModuleHandle>,
    caller: &Caller,
    table: &str,
    filter: Option<Filter>,
) -> Result<Vec<Row>, ApiError> {
    let Some(t) = handle.schema.resolve_table(table).cloned() else { return Ok(Vec::new()) };
    let page = table_page(handle, &t, PageRequest::rendered(filter, state.max_page, caller.clone())).await?;
    Ok(match page.rows {
        PageRows::Rendered(rows) => rows,
        PageRows::Stored { array, .. } => serde_json::from_str(&array).unwrap_or_default(),
    })
}

fn belongs_to(ids: &[Value]) -> Filter {
    Filter::Compare {
        left: Operand::Field(vec!["orderId".into()]),
        op: Op::In,
        right: Operand::Value(Value::Array(ids.to_vec())),
    }
}

/// The order snapshots of these headers.
async fn snapshots(
    state: &AppState,
    handle: &Arc<ModuleHandle>,
    caller: &Caller,
    headers: Vec<Row>,
    include: &Include,
) -> Result<Vec<Value>, ApiError> {
    let ids: Vec<Value> = headers.iter().filter_map(|h| h.get("id").cloned()).collect();
    let any = !ids.is_empty();
    let fetch = |table: &'static str, wanted: bool| {
        let filter = belongs_to(&ids);
        async move {
            match wanted && any {
                true => rows(state, handle, caller, table, Some(filter)).await,
                false => Ok(Vec::new()),
            }
        }
    };
    let lines = fetch("order_line", include.lines).await?;
    let payments = fetch("order_payment", include.payments).await?;
    let logs = fetch("order_status_log", include.status_logs).await?;
    let line_logs = fetch("order_line_status_log", include.line_status_logs).await?;
    let of = |list: &[Row], id: &Value| -> Vec<Row> {
        list.iter().filter(|r| first(r, &["orderId", "order_id"]) == Some(id)).cloned().collect()
    };
    Ok(headers
        .into_iter()
        .map(|h| {
            let id = h.get("id").cloned().unwrap_or(Value::Null);
            let mut order = orders::snapshot(h, of(&lines, &id), of(&payments, &id), of(&logs, &id), &line_logs);
            // A list answers only what was asked for.
            if let Some(o) = order.as_object_mut() {
                for (key, wanted) in
                    [("lines", include.lines), ("payments", include.payments), ("statusLogs", include.status_logs)]
                {
                    if !wanted {
                        o.remove(key);
                    }
                }
            }
            order
        })
        .collect())
}

#[derive(Debug, Clone, Copy)]
struct Include {
    lines: bool,
    payments: bool,
    status_logs: bool,
    line_status_logs: bool,
}

impl Include {
    const ALL: Include = Include { lines: true, payments: true, status_logs: true, line_status_logs: true };
}

#[utoipa::path(
    get,
    path = "/api/branches/{branch}/modules/{module}/orders/{id}",
    tag = "orders",
    summary = "One order with its lines and payments",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
        ("id" = String, Path, description = "Key"),
    ),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET …/orders/{id}`: `{branchId, moduleId, orderId, order}`, or `404 order-not-found`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module, id)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let handle = pos_module(&state, &caller, &branch, &module).await?;
    let header = rows(&state, &handle, &caller, "order_header", Some(field_is("id", json!(id)))).await?;
    if header.is_empty() {
        return Err(
            ApiError::not_found("order-not-found", format!("no order `{id}`")).with_details(json!({"orderId": id}))
        );
    }
    let order = snapshots(&state, &handle, &caller, header, &Include::ALL).await?.pop().unwrap_or(Value::Null);
    Ok(Json(json!({"branchId": branch, "moduleId": module, "orderId": id, "order": order})))
}

/// The query of `GET …/orders`.
#[derive(Debug, Default)]
struct ListParams {
    only_active: Option<bool>,
    include: Vec<String>,
    limit: Option<usize>,
    status: Vec<String>,
    stage: Vec<String>,
    kind: Vec<String>,
    shift: Vec<String>,
    updated_after: Option<i64>,
    saved_after: Option<i64>,
}

fn flag(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

impl ListParams {
    fn parse(query: &str) -> ListParams {
        let mut p = ListParams::default();
        let add = |list: &mut Vec<String>, v: &str| {
            list.extend(v.split(',').map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()));
        };
        let date = |v: &str| mishkah_core::Timestamp::parse(v).map(|t| t.0);
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let v = value.as_ref();
            let mut token = |t: &str, on: Option<bool>| {
                if on == Some(true) && !p.include.iter().any(|i| i == t) {
                    p.include.push(t.to_owned());
                }
            };
            match key.as_ref() {
                "onlyActive" => p.only_active = flag(v).or(p.only_active),
                "includeLines" => token("lines", flag(v)),
                "includePayments" => token("payments", flag(v)),
                "includeStatusLogs" => token("statuslogs", flag(v)),
                "includeLineStatus" | "includeLineStatusLogs" => {
                    token("linestatuslogs", flag(v));
                    token("lines", flag(v));
                }
                "include" => {
                    for t in v.split(',').map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()) {
                        token(&t, Some(true));
                    }
                }
                "limit" | "take" => p.limit = v.parse::<f64>().ok().filter(|n| *n >= 1.0).map(|n| n as usize),
                "status" => add(&mut p.status, v),
                "stage" => add(&mut p.stage, v),
                "type" => add(&mut p.kind, v),
                "shiftId" => add(&mut p.shift, v),
                "updatedAfter" | "updated_after" => p.updated_after = date(v),
                "savedAfter" | "saved_after" => p.saved_after = date(v),
                _ => {}
            }
        }
        p
    }

    fn include(&self) -> Include {
        let has = |t: &str| self.include.iter().any(|i| i == t);
        Include {
            lines: has("lines"),
            payments: has("payments"),
            status_logs: has("statuslogs"),
            line_status_logs: has("linestatuslogs"),
        }
    }

    /// Whether a header is listed. Its status, stage and type are read under the apps' names
    /// and the schema's (the original read only the first, so every stored order looked open).
    fn admits(&self, h: &Row) -> bool {
        let text =
            |keys: &[&str], default: &str| first(h, keys).and_then(Value::as_str).unwrap_or(default).to_lowercase();
        let status = text(&["status", "statusId", "status_id", "state"], "open");
        let stage = text(&["fulfillmentStage", "stage", "stageId", "stage_id"], "new");
        let kind = text(&["type", "orderType", "orderTypeId", "order_type"], "dine_in");
        let shift = first(h, &["shiftId", "shift_id"]).and_then(Value::as_str).map(str::to_lowercase);
        let at = |keys: &[&str]| first(h, keys).and_then(Value::as_str).and_then(mishkah_core::Timestamp::parse);
        let listed = |list: &[String], v: &str| list.is_empty() || list.iter().any(|s| s == v);
        if self.status.is_empty() {
            if self.only_active.unwrap_or(true) && is_closed(&status) {
                return false;
            }
        } else if !listed(&self.status, &status) {
            return false;
        }
        if !listed(&self.stage, &stage) || !listed(&self.kind, &kind) {
            return false;
        }
        if !self.shift.is_empty() && !shift.is_some_and(|s| self.shift.contains(&s)) {
            return false;
        }
        let after = |bound: Option<i64>, keys: &[&str]| bound.is_none_or(|b| at(keys).is_some_and(|t| t.0 > b));
        after(self.updated_after, &["updatedAt", "updated_at"]) && after(self.saved_after, &["savedAt", "saved_at"])
    }
}

fn updated_ms(h: &Row) -> i64 {
    match first(h, &["updatedAt", "updated_at", "savedAt", "saved_at"]) {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => mishkah_core::Timestamp::parse(s).map_or(0, |t| t.0),
        _ => 0,
    }
}

#[utoipa::path(
    get,
    path = "/api/branches/{branch}/modules/{module}/orders",
    tag = "orders",
    summary = "Orders with their lines and payments",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
        ("onlyActive" = Option<String>, Query, description = "Only open orders"),
        ("include" = Option<String>, Query, description = "lines, payments"),
        ("limit" = Option<String>, Query, description = "How many"),
        ("status" = Option<String>, Query, description = "Status ids"),
        ("stage" = Option<String>, Query, description = "Stage ids"),
        ("kind" = Option<String>, Query, description = "Order kinds"),
        ("shift" = Option<String>, Query, description = "Shift ids"),
        ("updatedAfter" = Option<String>, Query, description = "Updated after (ms)"),
        ("savedAfter" = Option<String>, Query, description = "Saved after (ms)"),
    ),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET …/orders?include=lines,payments&onlyActive=…`: `{branchId, moduleId, orders, meta}`,
/// newest first.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let handle = pos_module(&state, &caller, &branch, &module).await?;
    let p = ListParams::parse(query.as_deref().unwrap_or(""));
    let mut headers: Vec<Row> =
        rows(&state, &handle, &caller, "order_header", None).await?.into_iter().filter(|h| p.admits(h)).collect();
    headers.sort_by_key(|h| std::cmp::Reverse(updated_ms(h)));
    let total = headers.len();
    if let Some(limit) = p.limit {
        headers.truncate(limit);
    }
    let orders = snapshots(&state, &handle, &caller, headers, &p.include()).await?;
    let meta = json!({"count": orders.len(), "total": total, "onlyActive": p.only_active.unwrap_or(true),
                      "include": p.include, "limit": p.limit});
    Ok(Json(json!({"branchId": branch, "moduleId": module, "orders": orders, "meta": meta})))
}

#[utoipa::path(
    post,
    path = "/api/branches/{branch}/modules/{module}/orders",
    tag = "orders",
    summary = "Save an order with its lines and payments, in one transaction",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
    ),
    request_body(content = serde_json::Value, description = "JSON", content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `POST …/orders {order}`: the order saved as one transaction; `201 {orderId, order, normalized}`.
/// Refusals keep the original's codes (`order-version-conflict` 409, `order-persist-failed`),
/// with `422` where the original answered 500 for the client's own mistakes.
pub async fn save(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let handle = pos_module(&state, &caller, &branch, &module).await?;
    let order = ["order", "data", "record"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_object))
        .cloned()
        .ok_or_else(|| ApiError::bad_request("missing-order-payload", "the body needs an `order` object"))?;
    let now = crate::clock::now();
    let (plan, normalized) = orders::save(order, now.0);
    let meta = json!({"source": orders::SOURCE});
    match handle.write_planned(plan, orders::SOURCE, meta, caller.sender()).await {
        Ok(_) => {}
        Err(WriteError::Mutation(mishkah_core::mutation::MutationError::Conflict(c))) => {
            return Err(ApiError::new(StatusCode::CONFLICT, "order-version-conflict", c.to_string())
                .with_details(json!({"table": c.table, "key": c.key, "expectedVersion": c.expected_version,
                       "currentVersion": c.current_version, "reason": c.reason})))
        }
        Err(e) => return Err(e.into()),
    }
    let normalized = normalized.lock().unwrap_or_else(|p| p.into_inner()).take();
    let Some(normalized) = normalized else {
        return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "order-persist-failed", "the save left no order"));
    };
    let id = normalized.id.clone();
    let header = rows(&state, &handle, &caller, "order_header", Some(field_is("id", json!(id)))).await?;
    let order = snapshots(&state, &handle, &caller, header, &Include::ALL).await?.pop().unwrap_or(Value::Null);
    let body = json!({"branchId": branch, "moduleId": module, "orderId": id, "order": order,
                      "normalized": orders::normalized_reply(&normalized)});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_params_as_the_original_reads_them() {
        let p = ListParams::parse(
            "include=lines,Payments&includeLineStatus=yes&onlyActive=off&limit=2.7&status=Open,closed",
        );
        assert_eq!(p.include, ["lines", "payments", "linestatuslogs"]);
        assert_eq!(p.only_active, Some(false));
        assert_eq!(p.limit, Some(2));
        assert_eq!(p.status, ["open", "closed"]);
        let closed: Row = json!({"statusId": "closed"}).as_object().unwrap().clone();
        assert!(!ListParams::parse("").admits(&closed), "a closed order leaves the active list");
        assert!(ListParams::parse("onlyActive=false").admits(&closed));
        assert!(ListParams::parse("status=closed").admits(&closed));
    }
}
