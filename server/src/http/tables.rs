//! Rows of one table: list, insert, merge, save, delete; sequence allocation.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mishkah_core::query::{field_value, Bindings, Filter};
use mishkah_core::render::translate;
use mishkah_core::wire::{CommitSite, SaveRequest, SequenceRequest, TableQueryParams, WriteRequest};
use mishkah_core::{Action, Mutation, RecordKey};
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::JsonBody;
use super::error::ApiError;
use crate::engine::{Committed, ModuleHandle};
use crate::render;
use crate::state::AppState;
use crate::storage::PageQuery;

type TablePath = Path<(String, String, String)>;

/// Default of `--max-page`: the most rows one page of the table route holds.
pub const MAX_PAGE: usize = 10_000;

fn table_of<'h>(handle: &'h ModuleHandle, table: &str) -> Result<&'h mishkah_core::Table, ApiError> {
    handle.schema.table(table).ok_or_else(|| {
        ApiError::not_found("table-not-found", format!("module `{}` has no table `{table}`", handle.module))
    })
}

/// A table whose rows never leave the server (`lockedTables`).
fn readable<'t>(handle: &ModuleHandle, table: &'t mishkah_core::Table) -> Result<&'t mishkah_core::Table, ApiError> {
    if table.locked {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "table-locked",
            format!("rows of `{}` in module `{}` are not served", table.name, handle.module),
        ));
    }
    Ok(table)
}

/// `GET .../tables/{t}`: a page of rows. Without `limit` the original returned every row; we
/// return at most `--max-page`, and `meta.hasMore` with `meta.next.afterId` say how to go on.
/// With a `<t>_lang` table, each row gets `i18n.lang.<lang>` (`?lang=`, `?fallback=`, both `ar`).
pub async fn list(
    State(state): State<AppState>,
    Path((branch, module, table)): TablePath,
    Query(p): Query<TableQueryParams>,
) -> Result<Json<Value>, ApiError> {
    let handle = state.module(&branch, &module).await?;
    let t = readable(&handle, table_of(&handle, &table)?)?.clone();
    let max_page = state.max_page;
    let limit = match p.limit.as_deref() {
        None | Some("") => max_page,
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request("invalid-limit", "`limit` must be a non-negative integer"))?,
    }
    .min(max_page);
    let descending = match p.order.as_deref() {
        None | Some("asc") | Some("ASC") => false,
        Some("desc") | Some("DESC") => true,
        Some(_) => return Err(ApiError::bad_request("invalid-order", "`order` is asc or desc")),
    };
    let sort = parse_sort(&t, p.sort.as_deref())?;
    let sort_spec = p.sort.clone().unwrap_or_default();
    let (mut after_key, mut after) = (p.after_id.clone().or(p.after_key.clone()), None);
    if let Some(cursor) = after_key.as_deref().and_then(|c| c.strip_prefix(CURSOR_PREFIX)) {
        let (values, key) = decode_cursor(cursor, &sort_spec)?;
        // Unsorted pages run in insertion order: the key's own position is the cursor.
        if sort.is_empty() {
            after_key = Some(key);
        } else {
            after = Some((values, key));
            after_key = None;
        }
    }
    let query = PageQuery {
        after_key,
        created_after: p.after_created_at.clone(),
        updated_after: p.updated_after.clone(),
        descending,
        // One more than asked: whether it exists is `hasMore`.
        limit: limit.saturating_add(1),
        filter: p.filter.as_deref().map(|text| row_filter(&handle, &t, text)).transpose()?,
        sort: sort.clone(),
        after,
    };
    let key_table = t.clone();
    let lang_table = handle.schema.table(&translate::lang_table_name(&t.name)).cloned();
    let (mut rows, translations) = handle
        .read(move |r, _| {
            let rows = r.page(&t, &query)?;
            let translations = match &lang_table {
                Some(lt) => Some((lt.clone(), r.rows(lt)?)),
                None => None,
            };
            Ok((rows, translations))
        })
        .await?;
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    let last = rows.last();
    let last_id = last.and_then(|row| RecordKey::of(&key_table, row).ok()).map(|k| k.0);
    let last_created = last.and_then(|row| row.get("createdAt").cloned());
    let cursor = last.zip(last_id.as_ref()).map(|(row, key)| {
        let values: Vec<Value> =
            sort.iter().map(|(f, _)| field_value(Some(&key_table), row, std::slice::from_ref(f)).clone()).collect();
        encode_cursor(&values, key, &sort_spec)
    });
    let mut rows = render::rows(&key_table, rows);
    if let Some((lang_table, translations)) = translations {
        let lang = p.lang.as_deref().filter(|l| !l.is_empty()).unwrap_or("ar");
        let fallback = p.fallback.as_deref().filter(|l| !l.is_empty()).unwrap_or("ar");
        render::attach_translations(&lang_table, &key_table.name, &mut rows, translations, lang, fallback);
    }
    if let Some(fields) = p.fields.as_deref().filter(|f| !f.is_empty()) {
        let keep: Vec<&str> = fields.split(',').map(str::trim).filter(|f| !f.is_empty()).collect();
        for row in &mut rows {
            row.retain(|k, _| keep.contains(&k.as_str()));
        }
    }
    let next = match (has_more, sort.is_empty()) {
        (false, _) => Value::Null,
        (true, true) => json!({"afterId": last_id, "after": cursor}),
        (true, false) => json!({"after": cursor}),
    };
    Ok(Json(json!({
        "branchId": branch, "moduleId": module, "table": table, "count": rows.len(),
        "cursor": {"lastId": last_id, "lastCreatedAt": last_created},
        "rows": rows,
        "meta": {"limit": limit, "order": if descending { "desc" } else { "asc" }, "updatedAfter": p.updated_after,
                 "hasMore": has_more, "next": next},
    })))
}

/// A `?filter=` of the table route: parsed, checked against the table's fields (a hidden field is
/// as unknown as a missing one: filtering on it would reveal it), variables bound.
fn row_filter(handle: &ModuleHandle, table: &mishkah_core::Table, text: &str) -> Result<Filter, ApiError> {
    let filter = Filter::parse(text).map_err(|e| {
        ApiError::bad_request(e.code(), e.to_string()).with_details(serde_json::to_value(&e).unwrap_or(Value::Null))
    })?;
    for path in filter.fields() {
        let name = &path[0];
        let known = table.field(name).is_some() || matches!(name.as_str(), "version" | "createdAt" | "updatedAt");
        if !known || table.hides(name) || table.field(name).is_some_and(|f| table.hides(&f.name)) {
            return Err(ApiError::bad_request("unknown-field", format!("`{}` has no field `{name}`", table.name))
                .with_details(json!({"table": table.name, "field": name})));
        }
    }
    let bindings = Bindings::at(crate::clock::now())
        .with("request", json!({"branch": handle.branch, "module": handle.module, "source": "rest"}));
    Ok(filter.bind(&bindings))
}

/// Our cursors start so; any other `after` is the original's `afterId`.
const CURSOR_PREFIX: &str = "mk1.";

/// `sort=-createdAt,id` → `(field, descending)`; a field that cannot be sorted on is a 400.
fn parse_sort(table: &mishkah_core::Table, spec: Option<&str>) -> Result<Vec<(String, bool)>, ApiError> {
    let mut out = Vec::new();
    for part in spec.unwrap_or_default().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (field, desc) = match part.strip_prefix('-') {
            Some(f) => (f, true),
            None => (part.strip_prefix('+').unwrap_or(part), false),
        };
        if crate::storage::filter_sql::sort_expr(table, field).is_none() || table.hides(field) {
            return Err(ApiError::bad_request(
                "invalid-sort",
                format!(
                    "`{}` cannot be sorted on `{field}`: sort on a text, number, boolean or time field",
                    table.name
                ),
            )
            .with_details(json!({"table": table.name, "field": field})));
        }
        out.push((field.to_owned(), desc));
    }
    Ok(out)
}

/// An opaque, stable keyset cursor: the last row's sort values and key, and the sort it is for.
fn encode_cursor(values: &[Value], key: &str, sort: &str) -> String {
    use base64::Engine;
    let body = json!({"v": values, "k": key, "s": sort}).to_string();
    format!("{CURSOR_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body))
}

fn decode_cursor(text: &str, sort: &str) -> Result<(Vec<Value>, String), ApiError> {
    use base64::Engine;
    let invalid = || ApiError::bad_request("invalid-cursor", "`after` is not a cursor this route gave for this sort");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
    let body: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if body["s"].as_str() != Some(sort) {
        return Err(invalid());
    }
    let values = body["v"].as_array().cloned().ok_or_else(invalid)?;
    let key = body["k"].as_str().ok_or_else(invalid)?.to_owned();
    Ok((values, key))
}

/// `GET .../tables/{t}/count?filter=`: `{count}` of the rows the filter lets through (all rows
/// without one).
pub async fn count(
    State(state): State<AppState>,
    Path((branch, module, table)): TablePath,
    Query(p): Query<TableQueryParams>,
) -> Result<Json<Value>, ApiError> {
    let handle = state.module(&branch, &module).await?;
    let t = readable(&handle, table_of(&handle, &table)?)?.clone();
    let filter = match p.filter.as_deref() {
        Some(text) => row_filter(&handle, &t, text)?,
        None => Filter::And(Vec::new()),
    };
    let count = handle.read(move |r, _| r.count_where(&t, &filter)).await?;
    Ok(Json(json!({"branchId": branch, "moduleId": module, "table": table, "count": count})))
}

/// The ack and notice of a committed REST write, as the original returned them (the record as
/// clients may see it).
fn commit_body(state: &AppState, handle: &ModuleHandle, c: &Committed, meta: Value) -> (Value, Value) {
    let site = CommitSite { branch_id: &handle.branch, module_id: &handle.module, server_id: &state.server_id };
    let ack = render::commit_frame(&handle.schema, &c.event, site, "rest", meta, c.primary_key.clone(), true);
    let notice = ack.clone().into_event().notice;
    (serde_json::to_value(ack).unwrap_or(Value::Null), serde_json::to_value(notice).unwrap_or(Value::Null))
}

fn mutation_id(headers: &HeaderMap, body_id: Option<String>) -> Option<String> {
    body_id.or_else(|| headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned))
}

async fn write(
    state: &AppState,
    handle: &Arc<ModuleHandle>,
    table: &str,
    action: Action,
    request: WriteRequest,
    headers: &HeaderMap,
) -> Result<(Committed, Value, Value), ApiError> {
    table_of(handle, table)?;
    let mutation = Mutation {
        table: table.to_owned(),
        action,
        record: request.record,
        expected_version: request.expected_version,
        mutation_id: mutation_id(headers, request.mutation_id),
    };
    let meta = request.meta.unwrap_or(Value::Null);
    let committed = handle.write(mutation, "rest", meta.clone()).await?;
    let (ack, notice) = commit_body(state, handle, &committed, meta);
    Ok((committed, ack, notice))
}

/// The original's response to a REST write: `{status, branchId, moduleId, table, record, ack, notice}`.
fn written(status: &str, handle: &ModuleHandle, table: &str, (c, ack, notice): (Committed, Value, Value)) -> Value {
    let record = render::event(&handle.schema, &c.event).and_then(|e| e.change.row.clone());
    json!({"status": status, "branchId": handle.branch, "moduleId": handle.module, "table": table,
           "record": record, "ack": ack, "notice": notice})
}

fn write_request(body: Value) -> Result<WriteRequest, ApiError> {
    WriteRequest::from_body(body).map_err(|m| ApiError::bad_request("invalid-body", m))
}

/// `POST .../tables/{t}`: insert → 201.
pub async fn insert(
    State(state): State<AppState>,
    Path((branch, module, table)): TablePath,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let handle = state.module(&branch, &module).await?;
    let done = write(&state, &handle, &table, Action::Insert, write_request(body)?, &headers).await?;
    Ok((StatusCode::CREATED, Json(written("created", &handle, &table, done))).into_response())
}

/// `PATCH .../tables/{t}`: merge (409 on conflict).
pub async fn merge(
    State(state): State<AppState>,
    Path((branch, module, table)): TablePath,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let handle = state.module(&branch, &module).await?;
    let done = write(&state, &handle, &table, Action::Merge, write_request(body)?, &headers).await?;
    Ok(Json(written("updated", &handle, &table, done)))
}

fn save_status(c: &Committed) -> &'static str {
    if c.event.change.kind == mishkah_core::ChangeKind::Insert {
        "created"
    } else {
        "saved"
    }
}

/// `PUT .../tables/{t}`: upsert.
pub async fn save(
    State(state): State<AppState>,
    Path((branch, module, table)): TablePath,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let handle = state.module(&branch, &module).await?;
    let done = write(&state, &handle, &table, Action::Save, write_request(body)?, &headers).await?;
    Ok(Json(written(save_status(&done.0), &handle, &table, done)))
}

/// `POST .../modules/{m}/save` `{table, record, concurrency?}`.
pub async fn save_body(
    State(state): State<AppState>,
    Path((branch, module)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let req: SaveRequest =
        serde_json::from_value(body).map_err(|e| ApiError::bad_request("invalid-body", e.to_string()))?;
    let handle = state.module(&branch, &module).await?;
    let expected = req.expected_version.or_else(|| match &req.concurrency {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::Object(o)) => o.get("expectedVersion").or_else(|| o.get("version")).and_then(Value::as_i64),
        _ => None,
    });
    let request =
        WriteRequest { record: req.record, meta: req.meta, expected_version: expected, mutation_id: req.mutation_id };
    let done = write(&state, &handle, &req.table, Action::Save, request, &headers).await?;
    Ok(Json(written(save_status(&done.0), &handle, &req.table, done)))
}

#[derive(Deserialize)]
pub struct DeleteParams {
    id: Option<String>,
}

/// `DELETE .../tables/{t}?id=` (or the key in a body record).
pub async fn delete(
    State(state): State<AppState>,
    Path((branch, module, table)): TablePath,
    Query(p): Query<DeleteParams>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let handle = state.module(&branch, &module).await?;
    let t = table_of(&handle, &table)?;
    let request = match (p.id, body) {
        (Some(id), _) => {
            let fields = t.key_fields();
            let [field] = fields.as_slice() else {
                return Err(ApiError::bad_request(
                    "missing-record-key",
                    "this table has a composite key: send the record",
                ));
            };
            let mut record = mishkah_core::Row::new();
            record.insert((*field).to_owned(), Value::String(id));
            WriteRequest { record, meta: None, expected_version: None, mutation_id: None }
        }
        (None, Value::Null) => {
            return Err(ApiError::bad_request("missing-record-key", "give ?id= or a record with the key"))
        }
        (None, body) => write_request(body)?,
    };
    let (_, ack, notice) = write(&state, &handle, &table, Action::Delete, request, &headers).await?;
    let record_ref = ack.get("recordRef").cloned();
    Ok(Json(
        json!({"status": "deleted", "branchId": branch, "moduleId": module, "table": table, "recordRef": record_ref, "notice": notice, "ack": ack}),
    ))
}

/// `POST .../modules/{m}/sequences` `{table, field}`: allocates the next value.
pub async fn allocate_sequence(
    State(state): State<AppState>,
    Path((branch, module)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let req: SequenceRequest =
        serde_json::from_value(body).map_err(|e| ApiError::bad_request("invalid-body", e.to_string()))?;
    let handle = state.module(&branch, &module).await?;
    let rule = state
        .engine
        .data()
        .sequence_rules
        .rule_for(&branch, &module, &req.table, &req.field)
        .cloned()
        .ok_or_else(|| {
            ApiError::not_found("sequence-not-configured", format!("no sequence rule for {}.{}", req.table, req.field))
        })?;
    let n = handle.allocate_counter(&req.table, &req.field, rule.clone()).await?;
    Ok(Json(
        json!({"branchId": branch, "moduleId": module, "table": req.table, "field": req.field, "value": rule.format(n), "id": n, "rule": rule}),
    ))
}
