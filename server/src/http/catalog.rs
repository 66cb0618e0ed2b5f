//! Schemas, modules, branches and snapshots.

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};

use super::query::Query;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::access::Caller;
use crate::state::AppState;
use crate::views;

#[utoipa::path(
    get,
    path = "/api/schema",
    tag = "catalog",
    summary = "A module's schema (`?branch=&module=`)",
    params(
        ("branch" = Option<String>, Query, description = "Branch id"),
        ("module" = Option<String>, Query, description = "Module id"),
        ("branchId" = Option<String>, Query, description = "Branch id (the original's name)"),
        ("moduleId" = Option<String>, Query, description = "Module id (the original's name)"),
    ),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET /api/schema?branch=&module=&include=`, as the original answers it: per module
/// `{moduleId, branchId, label, description, tables, config, schema, schemaSource}`, where `schema`
/// is the schema document as the data directory holds it (the apps build their stores from it).
/// `module` (also `moduleId`, `modules`) and `include` (also `include[]`, `with`) repeat and take
/// comma lists; `include` names the parts (`schema`, `config`, `seed`); without it, schema and
/// config. An unknown module gets a warning, not an entry.
pub async fn schema(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = DiscoveryParams::parse(query.as_deref().unwrap_or(""));
    if let Some(branch) = &params.branch {
        super::caller::require_branch(&caller, branch)?;
    }
    let data = state.engine.data();
    let requested: Vec<String> = match params.modules.is_empty() {
        true => data.catalog.ids().map(str::to_owned).collect(),
        false => params.modules.clone(),
    };
    if requested.is_empty() {
        return Err(ApiError::not_found("modules-not-found", "modules.json lists no module"));
    }
    let branch = params.branch.clone().unwrap_or_else(|| "lab:test-pad".into());
    let mut modules = serde_json::Map::new();
    let mut warnings = Vec::new();
    for id in &requested {
        let Some(entry) = data.catalog.entry(id) else {
            warnings.push(json!({"moduleId": id, "warning": "module-not-defined"}));
            continue;
        };
        let tables = data.module_tables(&branch, id);
        let mut out = serde_json::Map::new();
        out.insert("moduleId".into(), json!(id));
        out.insert("branchId".into(), json!(branch));
        out.insert("label".into(), entry.get("label").filter(|v| v.is_string()).cloned().unwrap_or(Value::Null));
        out.insert(
            "description".into(),
            entry.get("description").filter(|v| v.is_string()).cloned().unwrap_or(Value::Null),
        );
        out.insert("tables".into(), json!(tables));
        if params.wants("config") {
            let mut config = entry.clone();
            config.insert("tables".into(), json!(tables));
            out.insert("config".into(), Value::Object(config));
        }
        if params.wants("schema") {
            let doc = data.schema_document(&branch, id).map(|(doc, _)| doc);
            if doc.is_none() {
                warnings.push(json!({"moduleId": id, "warning": "schema-not-found"}));
            }
            out.insert("schemaSource".into(), json!(doc.as_ref().map(|_| "central")));
            out.insert("schema".into(), doc.unwrap_or(Value::Null));
        }
        if params.wants("seed") {
            let seed = data.seed_fallback(id);
            if seed.is_none() {
                warnings.push(json!({"moduleId": id, "warning": "seed-not-found"}));
            }
            out.insert("seedSource".into(), json!(seed.as_ref().map(|_| "central")));
            out.insert("seed".into(), seed.unwrap_or(Value::Null));
        }
        if params.wants("live") {
            // The original's live file; ours is a database, read through the module's routes.
            warnings.push(json!({"moduleId": id, "warning": "live-not-found"}));
            out.insert("liveSource".into(), Value::Null);
            out.insert("live".into(), Value::Null);
        }
        modules.insert(id.clone(), Value::Object(out));
    }
    let mut body = json!({"branchId": branch, "modules": modules});
    if !warnings.is_empty() {
        body["warnings"] = Value::Array(warnings);
    }
    Ok(Json(body))
}

/// The query of `/api/schema`: keys repeat and values are comma lists, which `Query` cannot read.
#[derive(Debug, Default, PartialEq)]
struct DiscoveryParams {
    branch: Option<String>,
    modules: Vec<String>,
    include: Vec<String>,
}

impl DiscoveryParams {
    fn parse(query: &str) -> DiscoveryParams {
        let mut p = DiscoveryParams::default();
        let push_list = |list: &mut Vec<String>, value: &str, lower: bool| {
            for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let item = if lower { item.to_lowercase() } else { item.to_owned() };
                if !list.contains(&item) {
                    list.push(item);
                }
            }
        };
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "branch" | "branchId" => p.branch = Some(value.into_owned()),
                "module" | "moduleId" | "modules" => push_list(&mut p.modules, &value, false),
                "include" | "include[]" | "with" => push_list(&mut p.include, &value, true),
                "seed" | "live" if matches!(value.as_ref(), "1" | "true") => push_list(&mut p.include, &key, false),
                _ => {}
            }
        }
        p
    }

    /// Whether a part is asked for: any `include` names exactly the parts; none means schema and
    /// config.
    fn wants(&self, part: &str) -> bool {
        match self.include.is_empty() {
            true => matches!(part, "schema" | "config"),
            false => self.include.iter().any(|i| i == part),
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/schemas",
    tag = "catalog",
    summary = "Every schema file of the data directory",
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET /api/schemas`: the schema files of `schemas/` and the branch modules that have their own.
pub async fn schemas(State(state): State<AppState>) -> Json<Value> {
    let root = state.engine.data().root().to_path_buf();
    let mut global: Vec<String> = std::fs::read_dir(root.join("schemas"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".json")).map(str::to_owned))
        .collect();
    global.sort();
    let mut branches = BTreeMap::new();
    for branch in dir_names(&root.join("branches")) {
        let own: Vec<String> = dir_names(&root.join("branches").join(&branch).join("modules"))
            .into_iter()
            .filter(|m| {
                let dir = root.join("branches").join(&branch).join("modules").join(m);
                dir.join("schema.json").is_file() || dir.join("schema/definition.json").is_file()
            })
            .collect();
        if !own.is_empty() {
            branches.insert(branch, own);
        }
    }
    Json(json!({"global": global, "branches": branches}))
}

fn dir_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// `GET /api/schemas/global/{name}` and `/api/schemas/branch/{b}/{m}`: one schema file as written,
/// `{success, path, schema}` (the path relative to the data directory). Any other shape is
/// `400 invalid-path`, as the original answered.
#[utoipa::path(
    get,
    path = "/api/schemas/global/{name}",
    tag = "catalog",
    summary = "A schema file of `schemas/` by name",
    params(("name" = String, Path, description = "The file's name without `.json`")),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET /api/schemas/global/{name}`.
pub async fn global_schema_file(state: State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    schema_file(state, &["global", &name]).await
}

#[utoipa::path(
    get,
    path = "/api/schemas/branch/{branch}/{module}",
    tag = "catalog",
    summary = "A branch module's own schema file",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
    ),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET /api/schemas/branch/{branch}/{module}`.
pub async fn branch_schema_file(
    state: State<AppState>,
    Path((branch, module)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    schema_file(state, &["branch", &branch, &module]).await
}

#[utoipa::path(
    get,
    path = "/api/schemas/{path}",
    tag = "catalog",
    summary = "Any other schema path: 400 `invalid-path`, naming the two that exist (as the original)",
    params(("path" = String, Path, description = "Not `global/{name}` nor `branch/{branch}/{module}`")),
    responses((status = 400, description = "`invalid-path`", body = crate::http::openapi::Error)),
)]
/// `GET /api/schemas/{path}`: neither schema path.
pub async fn other_schema_path(state: State<AppState>, Path(path): Path<String>) -> Result<Json<Value>, ApiError> {
    schema_file(state, &[&path]).await
}

async fn schema_file(State(state): State<AppState>, parts: &[&str]) -> Result<Json<Value>, ApiError> {
    let safe = |s: &str| {
        !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_-.:@".contains(c)) && !s.contains("..")
    };
    let relative = match parts {
        ["global", name, ..] if safe(name) => vec![format!("schemas/{name}.json")],
        ["branch", b, m, ..] if safe(b) && safe(m) => vec![
            format!("branches/{b}/modules/{m}/schema.json"),
            format!("branches/{b}/modules/{m}/schema/definition.json"),
        ],
        _ => {
            return Err(ApiError::bad_request(
                "invalid-path",
                "Invalid schema path: use /api/schemas/global/:name or /api/schemas/branch/:branchId/:moduleId",
            ))
        }
    };
    let root = state.engine.data().root().to_path_buf();
    let Some(found) = relative.into_iter().find(|r| root.join(r).is_file()) else {
        return Err(ApiError::not_found("schema-not-found", "Schema not found"));
    };
    let schema = crate::datadir::read_json(&root.join(&found))
        .map_err(|e| ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, "get-schema-error", e.to_string()))?;
    Ok(Json(json!({"success": true, "path": found, "schema": schema})))
}

#[utoipa::path(
    get,
    path = "/api/modules",
    tag = "catalog",
    summary = "The modules of `modules.json`",
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET /api/modules`: `{modules: [{id, label, description, tables}]}` in `modules.json` order.
pub async fn modules(State(state): State<AppState>, caller: Caller) -> Json<Value> {
    let data = state.engine.data();
    // An identity limited to some branches sees the modules those branches have.
    let claim: Option<Vec<&str>> = match caller.who.auth.get("branches") {
        Some(Value::Array(list)) => Some(list.iter().filter_map(Value::as_str).collect()),
        Some(Value::String(one)) => Some(vec![one.as_str()]),
        _ => None,
    };
    let allowed: Option<Vec<String>> = claim
        .filter(|c| !c.contains(&"*") && !caller.who.admin)
        .map(|branches| branches.iter().flat_map(|b| data.branches.modules_of(b).iter().cloned()).collect());
    let visible = |id: &str| allowed.as_ref().is_none_or(|modules| modules.iter().any(|m| m == id));
    let list: Vec<Value> = data
        .catalog
        .ids()
        .filter(|id| visible(id))
        .map(|id| {
            let entry = data.catalog.entry(id);
            let text = |k: &str| entry.and_then(|e| e.get(k)).and_then(Value::as_str).map(str::to_owned);
            json!({"id": id, "label": text("label").unwrap_or_else(|| id.to_owned()),
                   "description": text("description").unwrap_or_default(),
                   "tables": data.module_tables("", id)})
        })
        .collect();
    Json(json!({"modules": list}))
}

#[utoipa::path(
    get,
    path = "/api/branches",
    tag = "catalog",
    summary = "The branches",
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET /api/branches`.
pub async fn branches(State(state): State<AppState>, caller: Caller) -> Json<Value> {
    let data = state.engine.data();
    let list: Vec<Value> = data
        .branches
        .branches
        .iter()
        .filter(|(id, _)| caller.who.may_use_branch(id))
        .map(|(id, def)| json!({"id": id, "label": def.label, "modules": def.modules}))
        .collect();
    // Which modules a new branch gets is for those who may bring one into being.
    let limited = caller.who.auth.get("branches").is_some_and(|b| !b.is_null()) && !caller.who.admin;
    let defaults = if limited { Vec::new() } else { data.branches.defaults.clone() };
    Json(json!({"branches": list, "defaults": defaults}))
}

#[derive(Deserialize)]
pub struct LangParams {
    lang: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/branches/{branch}",
    tag = "catalog",
    summary = "Every module of a branch, with its rows",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("lang" = Option<String>, Query, description = "Language of translated fields"),
    ),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET /api/branches/{b}?lang=`: every module's snapshot.
pub async fn branch(
    State(state): State<AppState>,
    caller: Caller,
    Path(branch): Path<String>,
    Query(p): Query<LangParams>,
) -> Result<Json<Value>, ApiError> {
    let mut modules = BTreeMap::new();
    for module in state.engine.modules_of(&branch)? {
        let handle = state.module(&caller, &branch, &module).await?;
        modules.insert(module, views::module_snapshot(&handle, p.lang.as_deref(), &caller).await?);
    }
    Ok(Json(json!({"branchId": branch, "modules": modules})))
}

#[utoipa::path(
    get,
    path = "/api/branches/{branch}/modules",
    tag = "catalog",
    summary = "The module ids of a branch",
    params(
        ("branch" = String, Path, description = "Branch id"),
    ),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET /api/branches/{b}/modules`.
pub async fn branch_modules(
    State(state): State<AppState>,
    // Taken for its check: an identity limited to other branches learns nothing of this one.
    _caller: Caller,
    Path(branch): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"branchId": branch, "modules": state.engine.modules_of(&branch)?})))
}

#[utoipa::path(
    get,
    path = "/api/branches/{branch}/modules/{module}",
    tag = "catalog",
    summary = "A module's snapshot: every table's rows",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
        ("lang" = Option<String>, Query, description = "Language of translated fields"),
    ),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET /api/branches/{b}/modules/{m}?lang=` (and `/api/sync/{b}/{m}`): the module snapshot.
pub async fn module_snapshot(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module)): Path<(String, String)>,
    Query(p): Query<LangParams>,
) -> Result<Json<Value>, ApiError> {
    let handle = state.module(&caller, &branch, &module).await?;
    let snapshot = views::module_snapshot(&handle, p.lang.as_deref(), &caller).await?;
    Ok(Json(serde_json::to_value(snapshot).unwrap_or(Value::Null)))
}

#[utoipa::path(
    get,
    path = "/api/sync/{branch}/{module}",
    tag = "sync",
    summary = "A module's snapshot (the original's sync route)",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
        ("lang" = Option<String>, Query, description = "Language of translated fields"),
    ),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET /api/sync/{b}/{m}`: [`module_snapshot`] under the original's sync path.
pub async fn sync_snapshot(
    state: State<AppState>,
    caller: Caller,
    path: Path<(String, String)>,
    query: Query<LangParams>,
) -> Result<Json<Value>, ApiError> {
    module_snapshot(state, caller, path, query).await
}

#[utoipa::path(
    get,
    path = "/api/branches/{branch}/modules/{module}/tables",
    tag = "catalog",
    summary = "A module's tables with their row counts",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
    ),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET .../modules/{m}/tables`: the module's tables and how many of their rows the caller sees.
pub async fn module_tables(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let handle = state.module(&caller, &branch, &module).await?;
    let mut scopes = BTreeMap::new();
    for t in handle.schema.tables.values() {
        scopes.insert(t.name.clone(), crate::views::page::prepare_filter(&handle, t, None, &caller)?);
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

#[utoipa::path(
    get,
    path = "/api/branches/{branch}/modules/{module}/schema",
    tag = "catalog",
    summary = "A module's schema, rules and the caller's identity",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
    ),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET .../modules/{m}/schema`: the normalized schema the module runs on (including tables kept
/// for seed data), as `mishkah-core` serializes it — what the browser store validates against —
/// with the write rules and the caller's claims, which the store checks writes with.
pub async fn module_schema(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let handle = state.module(&caller, &branch, &module).await?;
    // The write rules too (they hold no secrets), so the browser store refuses what the server
    // would refuse, offline too. Absent without a rules file.
    let rules = (!handle.access.is_open()).then(|| handle.access.client_form(&module, &handle.schema));
    // And whom they were given for: the store evaluates them with the caller's own claims.
    let identity = &caller.who.auth;
    Ok(Json(json!({"branchId": branch, "moduleId": module, "schema": handle.schema.as_ref(), "rules": rules,
                   "identity": identity})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_params_repeat_and_split() {
        let p = DiscoveryParams::parse("branch=remal&module=pos,%20gym&modules=pos&include=Schema&with=seed&live=1");
        assert_eq!(p.branch.as_deref(), Some("remal"));
        assert_eq!(p.modules, ["pos", "gym"]);
        assert_eq!(p.include, ["schema", "seed", "live"]);
        assert!(p.wants("seed") && !p.wants("config"));
        assert!(DiscoveryParams::parse("").wants("config"));
        // `%25zz` is `%zz` once decoded, and stays so (the original decoded twice and crashed).
        assert_eq!(DiscoveryParams::parse("branch=%25zz").branch.as_deref(), Some("%zz"));
    }
}
