//! Rows of one table: list, insert, merge, save, delete; sequence allocation.

use std::sync::Arc;

use axum::extract::{Path, State};

use super::query::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mishkah_core::query::Filter;
use mishkah_core::wire::{CommitSite, SaveRequest, SequenceRequest, TableQueryParams, WriteRequest};
use mishkah_core::{Action, Mutation};
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::JsonBody;
use super::error::ApiError;
use crate::access::Caller;
use crate::engine::{Committed, ModuleHandle};
use crate::render;
use crate::state::AppState;
use crate::storage::Measure;
use crate::views::page::{table_page, PageError, PageRequest};

type TablePath = Path<(String, String, String)>;

/// Default of `--max-page`: the most rows one page of the table route holds.
pub const MAX_PAGE: usize = 10_000;

fn table_of<'h>(handle: &'h ModuleHandle, table: &str) -> Result<&'h mishkah_core::Table, ApiError> {
    handle.schema.resolve_table(table).ok_or_else(|| {
        ApiError::not_found("table-not-found", format!("module `{}` has no table `{table}`", handle.module))
    })
}

/// The module handle, the table and the parsed `?filter=` a read route starts from.
async fn filtered_table(
    state: &AppState,
    caller: &Caller,
    branch: &str,
    module: &str,
    table: &str,
    p: &TableQueryParams,
) -> Result<(Arc<ModuleHandle>, mishkah_core::Table, Option<Filter>), ApiError> {
    let handle = state.module(caller, branch, module).await?;
    let t = table_of(&handle, table)?.clone();
    let filter = p.filter.as_deref().map(Filter::parse).transpose().map_err(PageError::from)?;
    Ok((handle, t, filter))
}

/// `?limit=`: `default` when absent, at most `cap`.
fn parse_limit(text: Option<&str>, default: usize, cap: usize) -> Result<usize, ApiError> {
    let limit = match text {
        None | Some("") => default,
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request("invalid-limit", "`limit` must be a non-negative integer"))?,
    };
    Ok(limit.min(cap))
}

#[utoipa::path(
    get,
    path = "/api/branches/{branch}/modules/{module}/tables/{table}",
    tag = "tables",
    summary = "A page of rows (filter, sort, keyset paging)",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
        ("table" = String, Path, description = "Table name"),
        ("limit" = Option<String>, Query, description = "Rows per page (default and cap 1000)"),
        ("afterId" = Option<String>, Query, description = "Keyset cursor: the key to start after"),
        ("afterKey" = Option<String>, Query, description = "Keyset cursor of a sorted page"),
        ("afterCreatedAt" = Option<String>, Query, description = "Rows created after this time"),
        ("updatedAfter" = Option<String>, Query, description = "Rows updated after this time"),
        ("order" = Option<String>, Query, description = "`asc` or `desc` by creation"),
        ("lang" = Option<String>, Query, description = "Language of translated fields"),
        ("filter" = Option<String>, Query, description = "A filter in the filter language (docs/PROTOCOL.md)"),
        ("sort" = Option<String>, Query, description = "Sort keys, `field,-field`"),
        ("fields" = Option<String>, Query, description = "Fields to return, comma-separated"),
        ("q" = Option<String>, Query, description = "Text search"),
    ),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET .../tables/{t}`: a page of rows. Without `limit` the original returned every row; we
/// return at most `--max-page`, and `meta.hasMore` with `meta.next` say how to go on. Our
/// extensions: `filter=`, `sort=`, `fields=`, `after=<cursor>`. With a `<t>_lang` table, each row
/// gets `i18n.lang.<lang>` (`?lang=`, `?fallback=`, both `ar`).
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module, table)): TablePath,
    Query(p): Query<TableQueryParams>,
) -> Result<Response, ApiError> {
    let (handle, t, filter) = filtered_table(&state, &caller, &branch, &module, &table, &p).await?;
    let max_page = state.max_page;
    let limit = parse_limit(p.limit.as_deref(), max_page, max_page)?;
    let descending = match p.order.as_deref() {
        None | Some("asc") | Some("ASC") => false,
        Some("desc") | Some("DESC") => true,
        Some(_) => return Err(ApiError::bad_request("invalid-order", "`order` is asc or desc")),
    };
    let lang = p.lang.clone().filter(|l| !l.is_empty()).unwrap_or_else(|| "ar".into());
    let fallback = p.fallback.clone().filter(|l| !l.is_empty()).unwrap_or_else(|| "ar".into());
    let request = PageRequest {
        filter,
        sort: p.sort.clone(),
        fields: p
            .fields
            .as_deref()
            .filter(|f| !f.is_empty())
            .map(|f| f.split(',').map(str::trim).filter(|f| !f.is_empty()).map(str::to_owned).collect()),
        limit,
        after: p.after_id.clone().or(p.after_key.clone()),
        created_after: p.after_created_at.clone(),
        updated_after: p.updated_after.clone(),
        descending,
        lang: (lang, fallback),
        caller,
        stored_ok: true,
    };
    let page = table_page(&handle, &t, request).await?;
    let meta = json!({"limit": limit, "order": if descending { "desc" } else { "asc" }, "updatedAfter": p.updated_after,
                      "hasMore": page.has_more, "next": page.next});
    let head = json!({"branchId": branch, "moduleId": module, "table": table, "count": page.rows.len(),
                      "cursor": {"lastId": page.last_id, "lastCreatedAt": page.last_created}});
    // The rows go in as one already-serialized array (stored documents copied as they are); the
    // small parts around them are serialized here.
    let mut body = serde_json::to_string(&head).expect("values serialize");
    body.pop();
    body.push_str(",\"rows\":");
    page.rows.write_json(&mut body);
    body.push_str(",\"meta\":");
    body.push_str(&serde_json::to_string(&meta).expect("values serialize"));
    body.push('}');
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[utoipa::path(
    get,
    path = "/api/branches/{branch}/modules/{module}/tables/{table}/count",
    tag = "tables",
    summary = "How many rows a filter selects",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
        ("table" = String, Path, description = "Table name"),
        ("limit" = Option<String>, Query, description = "Rows per page (default and cap 1000)"),
        ("afterId" = Option<String>, Query, description = "Keyset cursor: the key to start after"),
        ("afterKey" = Option<String>, Query, description = "Keyset cursor of a sorted page"),
        ("afterCreatedAt" = Option<String>, Query, description = "Rows created after this time"),
        ("updatedAfter" = Option<String>, Query, description = "Rows updated after this time"),
        ("order" = Option<String>, Query, description = "`asc` or `desc` by creation"),
        ("lang" = Option<String>, Query, description = "Language of translated fields"),
        ("filter" = Option<String>, Query, description = "A filter in the filter language (docs/PROTOCOL.md)"),
        ("sort" = Option<String>, Query, description = "Sort keys, `field,-field`"),
        ("fields" = Option<String>, Query, description = "Fields to return, comma-separated"),
        ("q" = Option<String>, Query, description = "Text search"),
    ),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET .../tables/{t}/count?filter=`: `{count}` of the rows the filter lets through (all rows
/// without one).
pub async fn count(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module, table)): TablePath,
    Query(p): Query<TableQueryParams>,
) -> Result<Json<Value>, ApiError> {
    let (handle, t, filter) = filtered_table(&state, &caller, &branch, &module, &table, &p).await?;
    let count = crate::views::page::count(&handle, &t, filter.as_ref(), &caller).await?;
    Ok(Json(json!({"branchId": branch, "moduleId": module, "table": table, "count": count})))
}

/// Most hits one search returns.
const MAX_HITS: usize = 200;

#[utoipa::path(
    get,
    path = "/api/branches/{branch}/modules/{module}/tables/{table}/search",
    tag = "tables",
    summary = "Text search (Arabic folded)",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
        ("table" = String, Path, description = "Table name"),
        ("limit" = Option<String>, Query, description = "Rows per page (default and cap 1000)"),
        ("afterId" = Option<String>, Query, description = "Keyset cursor: the key to start after"),
        ("afterKey" = Option<String>, Query, description = "Keyset cursor of a sorted page"),
        ("afterCreatedAt" = Option<String>, Query, description = "Rows created after this time"),
        ("updatedAfter" = Option<String>, Query, description = "Rows updated after this time"),
        ("order" = Option<String>, Query, description = "`asc` or `desc` by creation"),
        ("lang" = Option<String>, Query, description = "Language of translated fields"),
        ("filter" = Option<String>, Query, description = "A filter in the filter language (docs/PROTOCOL.md)"),
        ("sort" = Option<String>, Query, description = "Sort keys, `field,-field`"),
        ("fields" = Option<String>, Query, description = "Fields to return, comma-separated"),
        ("q" = Option<String>, Query, description = "Text search"),
    ),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET .../tables/{t}/search?q=&filter=&limit=20` → `{hits: [{score, row}]}`, best match first:
/// Arabic-aware full-text search over the table's text and bilingual fields, the last term a
/// prefix.
pub async fn search(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module, table)): TablePath,
    Query(p): Query<TableQueryParams>,
) -> Result<Json<Value>, ApiError> {
    let (handle, t, filter) = filtered_table(&state, &caller, &branch, &module, &table, &p).await?;
    let limit = parse_limit(p.limit.as_deref(), 20, MAX_HITS)?;
    let query = p.q.clone().unwrap_or_default();
    let hits = crate::views::page::search(&handle, &t, query.clone(), filter.as_ref(), limit, &caller).await?;
    let hits: Vec<Value> = hits.into_iter().map(|(row, score)| json!({"score": score, "row": row})).collect();
    Ok(Json(
        json!({"branchId": branch, "moduleId": module, "table": table, "q": query, "count": hits.len(), "hits": hits}),
    ))
}

fn names(list: Option<&str>) -> Vec<String> {
    list.unwrap_or_default().split(',').map(str::trim).filter(|f| !f.is_empty()).map(str::to_owned).collect()
}

#[utoipa::path(
    get,
    path = "/api/branches/{branch}/modules/{module}/tables/{table}/aggregate",
    tag = "tables",
    summary = "Sums, averages, minimums and maximums, grouped",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
        ("table" = String, Path, description = "Table name"),
        ("limit" = Option<String>, Query, description = "Rows per page (default and cap 1000)"),
        ("afterId" = Option<String>, Query, description = "Keyset cursor: the key to start after"),
        ("afterKey" = Option<String>, Query, description = "Keyset cursor of a sorted page"),
        ("afterCreatedAt" = Option<String>, Query, description = "Rows created after this time"),
        ("updatedAfter" = Option<String>, Query, description = "Rows updated after this time"),
        ("order" = Option<String>, Query, description = "`asc` or `desc` by creation"),
        ("lang" = Option<String>, Query, description = "Language of translated fields"),
        ("filter" = Option<String>, Query, description = "A filter in the filter language (docs/PROTOCOL.md)"),
        ("sort" = Option<String>, Query, description = "Sort keys, `field,-field`"),
        ("fields" = Option<String>, Query, description = "Fields to return, comma-separated"),
        ("q" = Option<String>, Query, description = "Text search"),
        ("groupBy" = Option<String>, Query, description = "Fields to group by"),
        ("sum" = Option<String>, Query, description = "Fields to sum"),
        ("avg" = Option<String>, Query, description = "Fields to average"),
        ("min" = Option<String>, Query, description = "Fields' minimum"),
        ("max" = Option<String>, Query, description = "Fields' maximum"),
    ),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET .../tables/{t}/aggregate?filter=&groupBy=statusId&sum=subtotal&avg=subtotal&min=createdAt&max=createdAt`
/// → `{groups: [{key: {statusId}, count, sum: {subtotal}, avg: {..}, min: {..}, max: {..}}]}`;
/// without `groupBy`, one group. `count` is always given.
pub async fn aggregate(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module, table)): TablePath,
    Query(p): Query<TableQueryParams>,
) -> Result<Json<Value>, ApiError> {
    let (handle, t, filter) = filtered_table(&state, &caller, &branch, &module, &table, &p).await?;
    let mut measures = Vec::new();
    for (measure, list) in
        [(Measure::Sum, &p.sum), (Measure::Avg, &p.avg), (Measure::Min, &p.min), (Measure::Max, &p.max)]
    {
        measures.extend(names(list.as_deref()).into_iter().map(|f| (measure, f)));
    }
    let groups =
        crate::views::page::aggregate(&handle, &t, filter.as_ref(), names(p.group_by.as_deref()), measures, &caller)
            .await?;
    let groups = crate::views::page::groups_json(groups);
    Ok(Json(json!({"branchId": branch, "moduleId": module, "table": table, "groups": groups})))
}

/// Whether the writer may see the row it wrote (its `list` rule): acks echo nothing else.
fn writer_sees(handle: &ModuleHandle, caller: &Caller, c: &Committed) -> bool {
    match (handle.schema.table(&c.event.change.table), &c.event.change.row) {
        (Some(t), Some(row)) => caller.admits(handle, t, row),
        _ => true,
    }
}

/// The ack and notice of a committed REST write, as the original returned them (the record as
/// the writer may see it).
fn commit_body(state: &AppState, handle: &ModuleHandle, caller: &Caller, c: &Committed, meta: Value) -> (Value, Value) {
    let site = CommitSite { branch_id: &handle.branch, module_id: &handle.module, server_id: &state.server_id };
    let seen = writer_sees(handle, caller, c);
    let ack = render::commit_frame(&handle.schema, &c.event, site, "rest", meta, c.primary_key.clone(), seen);
    let notice = ack.clone().into_event().notice;
    (serde_json::to_value(ack).unwrap_or(Value::Null), serde_json::to_value(notice).unwrap_or(Value::Null))
}

fn mutation_id(headers: &HeaderMap, body_id: Option<String>) -> Option<String> {
    body_id.or_else(|| headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned))
}

async fn write(
    state: &AppState,
    caller: &Caller,
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
    let committed = handle.write(mutation, "rest", meta.clone(), caller.sender()).await?;
    let (ack, notice) = commit_body(state, handle, caller, &committed, meta);
    Ok((committed, ack, notice))
}

/// The original's response to a REST write: `{status, branchId, moduleId, table, record, ack, notice}`.
/// The original's response to a REST write; with `Prefer: return=minimal` (RFC 7240) only what a
/// REST client needs — the record, its key, sequence and version — instead of ~3 KB of the
/// original's repeated metadata.
fn written(
    status: &str,
    (handle, caller, headers): (&ModuleHandle, &Caller, &HeaderMap),
    table: &str,
    (c, ack, notice): (Committed, Value, Value),
) -> Value {
    let record = render::event(&handle.schema, &c.event)
        .filter(|_| writer_sees(handle, caller, &c))
        .and_then(|e| e.change.row.clone());
    let minimal = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split([',', ';']).any(|p| p.trim().eq_ignore_ascii_case("return=minimal")));
    if minimal {
        return json!({"status": status, "table": table, "key": c.primary_key, "sequence": c.event.sequence,
                      "version": c.event.change.version, "record": record});
    }
    json!({"status": status, "branchId": handle.branch, "moduleId": handle.module, "table": table,
           "record": record, "ack": ack, "notice": notice})
}

fn write_request(body: Value) -> Result<WriteRequest, ApiError> {
    WriteRequest::from_body(body).map_err(|m| ApiError::bad_request("invalid-body", m))
}

#[utoipa::path(
    post,
    path = "/api/branches/{branch}/modules/{module}/tables/{table}",
    tag = "tables",
    summary = "Insert a row (`record`, or the body itself)",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
        ("table" = String, Path, description = "Table name"),
    ),
    request_body(content = serde_json::Value, description = "JSON", content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `POST .../tables/{t}`: insert → 201.
pub async fn insert(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module, table)): TablePath,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let handle = state.module(&caller, &branch, &module).await?;
    let done = write(&state, &caller, &handle, &table, Action::Insert, write_request(body)?, &headers).await?;
    Ok((StatusCode::CREATED, Json(written("created", (&handle, &caller, &headers), &table, done))).into_response())
}

#[utoipa::path(
    patch,
    path = "/api/branches/{branch}/modules/{module}/tables/{table}",
    tag = "tables",
    summary = "Update fields of a row (`expectedVersion` checks the version)",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
        ("table" = String, Path, description = "Table name"),
    ),
    request_body(content = serde_json::Value, description = "JSON", content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `PATCH .../tables/{t}`: merge (409 on conflict).
pub async fn merge(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module, table)): TablePath,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let handle = state.module(&caller, &branch, &module).await?;
    let done = write(&state, &caller, &handle, &table, Action::Merge, write_request(body)?, &headers).await?;
    Ok(Json(written("updated", (&handle, &caller, &headers), &table, done)))
}

fn save_status(c: &Committed) -> &'static str {
    if c.event.change.kind == mishkah_core::ChangeKind::Insert {
        "created"
    } else {
        "saved"
    }
}

#[utoipa::path(
    put,
    path = "/api/branches/{branch}/modules/{module}/tables/{table}",
    tag = "tables",
    summary = "Insert or update a row",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
        ("table" = String, Path, description = "Table name"),
    ),
    request_body(content = serde_json::Value, description = "JSON", content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `PUT .../tables/{t}`: upsert.
pub async fn save(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module, table)): TablePath,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let handle = state.module(&caller, &branch, &module).await?;
    let done = write(&state, &caller, &handle, &table, Action::Save, write_request(body)?, &headers).await?;
    Ok(Json(written(save_status(&done.0), (&handle, &caller, &headers), &table, done)))
}

#[utoipa::path(
    post,
    path = "/api/branches/{branch}/modules/{module}/save",
    tag = "tables",
    summary = "Save a row given with its table in the body",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
    ),
    request_body(content = serde_json::Value, description = "JSON", content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `POST .../modules/{m}/save` `{table, record, concurrency?}`.
pub async fn save_body(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let req: SaveRequest =
        serde_json::from_value(body).map_err(|e| ApiError::bad_request("invalid-body", e.to_string()))?;
    let handle = state.module(&caller, &branch, &module).await?;
    let expected = req.expected_version.or_else(|| match &req.concurrency {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::Object(o)) => o.get("expectedVersion").or_else(|| o.get("version")).and_then(Value::as_i64),
        _ => None,
    });
    let request =
        WriteRequest { record: req.record, meta: req.meta, expected_version: expected, mutation_id: req.mutation_id };
    let done = write(&state, &caller, &handle, &req.table, Action::Save, request, &headers).await?;
    Ok(Json(written(save_status(&done.0), (&handle, &caller, &headers), &req.table, done)))
}

#[derive(Deserialize)]
pub struct DeleteParams {
    id: Option<String>,
}

#[utoipa::path(
    delete,
    path = "/api/branches/{branch}/modules/{module}/tables/{table}",
    tag = "tables",
    summary = "Delete a row (its key in the body or `?id=`)",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
        ("table" = String, Path, description = "Table name"),
        ("id" = Option<String>, Query, description = "The row's key"),
    ),
    request_body(content = serde_json::Value, description = "JSON", content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `DELETE .../tables/{t}?id=` (or the key in a body record).
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module, table)): TablePath,
    Query(p): Query<DeleteParams>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    delete_by(&state, &caller, (branch, module, table), p.id, body, &headers).await
}

#[utoipa::path(
    delete,
    path = "/api/branches/{branch}/modules/{module}/tables/{table}/{id}",
    tag = "tables",
    summary = "Delete one row by key",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
        ("table" = String, Path, description = "Table name"),
        ("id" = String, Path, description = "Key"),
    ),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `DELETE .../tables/{t}/{id}`: the row with this key.
pub async fn delete_one(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module, table, id)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    delete_by(&state, &caller, (branch, module, table), Some(id), Value::Null, &headers).await
}

async fn delete_by(
    state: &AppState,
    caller: &Caller,
    (branch, module, table): (String, String, String),
    id: Option<String>,
    body: Value,
    headers: &HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let handle = state.module(caller, &branch, &module).await?;
    let t = table_of(&handle, &table)?;
    let request = match (id, body) {
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
    let (_, ack, notice) = write(state, caller, &handle, &table, Action::Delete, request, headers).await?;
    let record_ref = ack.get("recordRef").cloned();
    Ok(Json(
        json!({"status": "deleted", "branchId": branch, "moduleId": module, "table": table, "recordRef": record_ref, "notice": notice, "ack": ack}),
    ))
}

#[utoipa::path(
    get,
    path = "/api/branches/{branch}/modules/{module}/tables/{table}/{id}",
    tag = "tables",
    summary = "One row by key",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
        ("table" = String, Path, description = "Table name"),
        ("id" = String, Path, description = "Key"),
    ),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET .../tables/{t}/{id}`: `{branchId, moduleId, table, record}` — the row as the caller may
/// see it; `404 not-found` alike for a row that is missing and one the caller may not see.
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module, table, id)): Path<(String, String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let handle = state.module(&caller, &branch, &module).await?;
    let t = table_of(&handle, &table)?.clone();
    let keys = t.key_fields();
    let [field] = keys.as_slice() else {
        return Err(ApiError::bad_request("missing-record-key", "this table has a composite key: filter on it"));
    };
    let filter = Filter::Compare {
        left: mishkah_core::query::Operand::Field(vec![(*field).to_owned()]),
        op: mishkah_core::query::Op::Eq,
        right: mishkah_core::query::Operand::Value(Value::String(id.clone())),
    };
    let page = table_page(&handle, &t, PageRequest::rendered(Some(filter), 1, caller)).await?;
    let record = match page.rows {
        crate::views::page::PageRows::Rendered(mut rows) => rows.pop().map(Value::Object),
        crate::views::page::PageRows::Stored { array, .. } => {
            serde_json::from_str::<Vec<Value>>(&array).ok().and_then(|mut rows| rows.pop())
        }
    };
    let Some(record) = record else {
        return Err(ApiError::not_found("not-found", format!("`{table}` has no row `{id}`")));
    };
    Ok(Json(json!({"branchId": branch, "moduleId": module, "table": table, "record": record})))
}

#[utoipa::path(
    post,
    path = "/api/branches/{branch}/modules/{module}/sequences",
    tag = "tables",
    summary = "Allocate the next number of a sequence",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
    ),
    request_body(content = serde_json::Value, description = "JSON", content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `POST .../modules/{m}/sequences` `{table, field}`: allocates the next value.
pub async fn allocate_sequence(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    // An empty body is `null`, and asks for no sequence (the original crashed on it).
    let req: SequenceRequest = serde_json::from_value(body)
        .ok()
        .filter(|r: &SequenceRequest| !r.table.trim().is_empty() && !r.field.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("missing-table-or-field", "`table` and `field` are required"))?;
    let (table, field) = (req.table.trim(), req.field.trim());
    let handle = state.module(&caller, &branch, &module).await?;
    // A number is taken for a row to be created: whoever may never create one gets none.
    let rules = handle.access.table(&module, table);
    if !caller.who.admin && *rules.rule(mishkah_core::rules::Action::Create) == mishkah_core::rules::Rule::AdminOnly {
        let denied = mishkah_core::rules::Denied::Forbidden { table: table.to_owned(), action: "create" };
        return Err(crate::engine::WriteError::from(denied).into());
    }
    let configured = state.engine.data().sequence_rules.rule_for(&branch, &module, table, field).cloned();
    // As the original, a sequence nobody configured starts at 1 with no prefix; unlike it, the
    // operator's rules file is left alone (the counter lives in the module's database).
    let rule = configured.clone().unwrap_or_else(|| {
        tracing::info!(%branch, %module, table, field, "sequence without a rule: counting from 1, unformatted");
        mishkah_core::sequence::SequenceRule::plain()
    });
    let n = handle.allocate_counter(table, field, rule.clone()).await?;
    // `id` is the formatted number the POS names its order by, `value` the number itself.
    Ok(Json(
        json!({"branchId": branch, "moduleId": module, "table": table, "field": field, "value": n, "id": rule.format(n), "rule": configured}),
    ))
}
