//! Schemas, modules, branches and snapshots.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::access::Caller;
use crate::state::AppState;
use crate::views;

#[derive(Deserialize)]
pub struct SchemaParams {
    branch: Option<String>,
    #[serde(alias = "module")]
    module_id: Option<String>,
}

/// `GET /api/schema?branch=&module=`: the normalized schema of every module of a branch (default:
/// the first named branch).
pub async fn schema(State(state): State<AppState>, Query(p): Query<SchemaParams>) -> Result<Json<Value>, ApiError> {
    let data = state.engine.data();
    let branch = p.branch.or_else(|| data.branches.branches.keys().next().cloned()).unwrap_or_else(|| "default".into());
    let modules = state.engine.modules_of(&branch)?;
    let mut out = BTreeMap::new();
    for module in modules.iter().filter(|m| p.module_id.as_ref().is_none_or(|want| want == *m)) {
        match data.schema_for(&branch, module) {
            Ok((schema, _)) => {
                out.insert(module.clone(), serde_json::to_value(&schema).unwrap_or(Value::Null));
            }
            Err(e) => {
                out.insert(module.clone(), json!({"error": e.to_string()}));
            }
        }
    }
    Ok(Json(json!({"branchId": branch, "modules": out})))
}

/// `GET /api/schemas`: the schema files of `schemas/`.
pub async fn schemas(State(state): State<AppState>) -> Json<Value> {
    let dir = state.engine.data().root().join("schemas");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".json")).map(str::to_owned))
        .collect();
    names.sort();
    Json(json!({"schemas": names}))
}

/// `GET /api/schemas/{name}`: one schema file, normalized.
pub async fn schema_named(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(ApiError::bad_request("invalid-name", "schema names are letters, digits, _ and -"));
    }
    let path = state.engine.data().root().join("schemas").join(format!("{name}.json"));
    let doc = crate::datadir::read_json(&path)
        .map_err(|_| ApiError::not_found("schema-not-found", format!("no schema `{name}`")))?;
    let schema = mishkah_core::Schema::from_json(&doc)
        .map_err(|e| ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string()))?;
    Ok(Json(json!({"name": name, "schema": schema})))
}

/// `GET /api/modules`.
pub async fn modules(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"modules": state.engine.data().modules}))
}

/// `GET /api/branches`.
pub async fn branches(State(state): State<AppState>) -> Json<Value> {
    let data = state.engine.data();
    let list: Vec<Value> = data
        .branches
        .branches
        .iter()
        .map(|(id, def)| json!({"id": id, "label": def.label, "modules": def.modules}))
        .collect();
    Json(json!({"branches": list, "defaults": data.branches.defaults}))
}

#[derive(Deserialize)]
pub struct LangParams {
    lang: Option<String>,
}

/// `GET /api/branches/{b}?lang=`: every module's snapshot.
pub async fn branch(
    State(state): State<AppState>,
    caller: Caller,
    Path(branch): Path<String>,
    Query(p): Query<LangParams>,
) -> Result<Json<Value>, ApiError> {
    let mut modules = BTreeMap::new();
    for module in state.engine.modules_of(&branch)? {
        let handle = state.module(&branch, &module).await?;
        modules.insert(module, views::module_snapshot(&handle, p.lang.as_deref(), &caller).await?);
    }
    Ok(Json(json!({"branchId": branch, "modules": modules})))
}

/// `GET /api/branches/{b}/modules`.
pub async fn branch_modules(
    State(state): State<AppState>,
    // Taken for its check: an identity limited to other branches learns nothing of this one.
    _caller: Caller,
    Path(branch): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"branchId": branch, "modules": state.engine.modules_of(&branch)?})))
}

/// `GET /api/branches/{b}/modules/{m}?lang=` (and `/api/sync/{b}/{m}`): the module snapshot.
pub async fn module_snapshot(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module)): Path<(String, String)>,
    Query(p): Query<LangParams>,
) -> Result<Json<Value>, ApiError> {
    let handle = state.module(&branch, &module).await?;
    let snapshot = views::module_snapshot(&handle, p.lang.as_deref(), &caller).await?;
    Ok(Json(serde_json::to_value(snapshot).unwrap_or(Value::Null)))
}

/// `GET .../modules/{m}/tables`: the module's tables and how many of their rows the caller sees.
pub async fn module_tables(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let handle = state.module(&branch, &module).await?;
    let mut scopes = BTreeMap::new();
    for t in handle.schema.tables.values() {
        scopes.insert(t.name.clone(), crate::views::page::prepare_filter(&handle, t, None, false, &caller)?);
    }
    let counts = handle
        .read(move |reader, schema| {
            let mut out = BTreeMap::new();
            for t in schema.tables.values() {
                let n = match scopes.get(&t.name) {
                    Some(Some(scope)) => reader.count_where(t, scope)?,
                    Some(None) => reader.count(t)?,
                    None => 0,
                };
                out.insert(t.name.clone(), n);
            }
            Ok(out)
        })
        .await?;
    Ok(Json(json!({"branchId": branch, "moduleId": module, "tables": counts})))
}

/// `GET .../modules/{m}/schema`: the normalized schema the module runs on (including tables kept
/// for seed data), as `mishkah-core` serializes it — what the browser store validates against —
/// with the write rules and the caller's claims, which the store checks writes with.
pub async fn module_schema(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let handle = state.module(&branch, &module).await?;
    // The write rules too (they hold no secrets), so the browser store refuses what the server
    // would refuse, offline too. Absent without a rules file.
    let rules = (!handle.access.is_open()).then(|| handle.access.client_form(&module, &handle.schema));
    // And whom they were given for: the store evaluates them with the caller's own claims.
    let identity = &caller.who.auth;
    Ok(Json(json!({"branchId": branch, "moduleId": module, "schema": handle.schema.as_ref(), "rules": rules,
                   "identity": identity})))
}
