//! A page of one table's rows for a client, the read shared by `GET .../tables/{t}` and
//! WebSocket `client:query`: filter (compiled to SQL), sort, keyset cursor, the original's
//! `afterId`/`updatedAfter`, rendering (hidden fields, translations), projection.

use std::sync::Arc;

use mishkah_core::query::{field_value, Filter, FilterError};
use mishkah_core::render::translate;
use mishkah_core::rules::Action;
use mishkah_core::{RecordKey, Row, Table};
use serde_json::{json, Value};

use crate::access::Caller;
use crate::engine::ModuleHandle;
use crate::render;
use crate::storage::{layout, Group, Measure, PageQuery, StorageError};

/// Why a page cannot be read; each has a stable code.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error(transparent)]
    InvalidFilter(#[from] FilterError),
    #[error("invalid filter: {0}")]
    InvalidFilterForm(String),
    #[error("`{table}` has no field `{field}`")]
    UnknownField { table: String, field: String },
    #[error("`{table}` cannot be sorted on `{field}`: sort on a text, number, boolean or time field")]
    InvalidSort { table: String, field: String },
    #[error("`after` is not a cursor this route gave for this sort")]
    InvalidCursor,
    #[error(
        "cannot {what} `{field}` of `{table}`: group by a text, number, boolean or time field; sum and average numbers"
    )]
    InvalidAggregate { table: String, field: String, what: &'static str },
    #[error("rows of `{0}` are not served")]
    TableLocked(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Write(#[from] crate::engine::WriteError),
}

impl PageError {
    /// `invalid-filter`, `unknown-field`, `invalid-sort`, `invalid-cursor`, `table-locked`...
    pub fn code(&self) -> &'static str {
        match self {
            PageError::InvalidFilter(_) | PageError::InvalidFilterForm(_) => "invalid-filter",
            PageError::UnknownField { .. } => "unknown-field",
            PageError::InvalidSort { .. } => "invalid-sort",
            PageError::InvalidCursor => "invalid-cursor",
            PageError::InvalidAggregate { .. } => "invalid-aggregate",
            PageError::TableLocked(_) => "table-locked",
            PageError::Storage(e) => e.code(),
            PageError::Write(e) => e.code(),
        }
    }

    /// What the error frame or body carries besides the message.
    pub fn details(&self) -> Value {
        match self {
            PageError::InvalidFilter(e) => serde_json::to_value(e).unwrap_or(Value::Null),
            PageError::UnknownField { table, field } | PageError::InvalidSort { table, field } => {
                json!({"table": table, "field": field})
            }
            PageError::TableLocked(table) => json!({"table": table}),
            PageError::InvalidAggregate { table, field, what } => {
                json!({"table": table, "field": field, "measure": what})
            }
            _ => Value::Null,
        }
    }
}

/// What a client asked for.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub filter: Option<Filter>,
    /// `-createdAt,id`.
    pub sort: Option<String>,
    pub fields: Option<Vec<String>>,
    /// Capped by the server's `--max-page`.
    pub limit: usize,
    /// Our cursor (`mk1.…`) or the original's `afterId`.
    pub after: Option<String>,
    pub created_after: Option<String>,
    pub updated_after: Option<String>,
    pub descending: bool,
    /// `(lang, fallback)` of the `i18n.lang` join.
    pub lang: (String, String),
    /// Who asks: the rows are the ones their `list` rule admits.
    pub caller: Caller,
    /// The caller can send stored documents as they are ([`PageRows::Stored`]) when rendering
    /// would not change them.
    pub stored_ok: bool,
}

impl PageRequest {
    /// Up to `limit` rows that `filter` lets through, in stored order, rendered (never passed
    /// through as stored documents): what a route that reshapes rows reads.
    pub fn rendered(filter: Option<Filter>, limit: usize, caller: Caller) -> PageRequest {
        PageRequest {
            filter,
            sort: None,
            fields: None,
            limit,
            after: None,
            created_after: None,
            updated_after: None,
            descending: false,
            lang: ("ar".into(), "ar".into()),
            caller,
            stored_ok: false,
        }
    }
}

/// The rows of a page: rendered, or (when rendering would change nothing: no hidden field, no
/// projection, no translation) the stored documents themselves, never parsed.
#[derive(Debug)]
pub enum PageRows {
    Rendered(Vec<Row>),
    /// Documents as storage wrote them (serde_json's output, so valid JSON), as one array.
    Stored {
        array: String,
        count: usize,
    },
}

impl PageRows {
    pub fn len(&self) -> usize {
        match self {
            PageRows::Rendered(rows) => rows.len(),
            PageRows::Stored { count, .. } => *count,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows as values (parsing stored documents: a corrupt one is an error, never an empty
    /// page that looks like "no rows").
    pub fn into_rows(self) -> Result<Vec<Row>, StorageError> {
        match self {
            PageRows::Rendered(rows) => Ok(rows),
            PageRows::Stored { array, .. } => serde_json::from_str(&array)
                .map_err(|e| StorageError::Corrupt(format!("a stored page is not an array of records: {e}"))),
        }
    }

    /// Appends the rows as a JSON array.
    pub fn write_json(&self, out: &mut String) {
        match self {
            PageRows::Rendered(rows) => out.push_str(&serde_json::to_string(rows).expect("rows serialize")),
            PageRows::Stored { array, .. } => out.push_str(array),
        }
    }
}

/// A page as clients see it.
#[derive(Debug)]
pub struct Page {
    pub rows: PageRows,
    pub has_more: bool,
    /// `{after}` (and `afterId` when unsorted), or null at the end.
    pub next: Value,
    pub last_id: Option<String>,
    pub last_created: Option<Value>,
}

/// Our cursors start so; any other `after` is the original's `afterId`.
const CURSOR_PREFIX: &str = "mk1.";

/// A filter as a WebSocket frame carries it, and whether it may name only the schema's fields:
/// the string form is ours and checked strictly; the JSON form is also old clients'
/// `{field: value}`, which may name properties the schema lacks.
pub fn filter_of(value: Option<&Value>) -> Result<Option<Filter>, PageError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(Filter::parse(text)?)),
        Some(json_form) => {
            // The browser store's query object `{where: {...}}`, or its `where` alone.
            let json_form = match json_form.as_object().and_then(|o| o.get("where").filter(|_| o.len() == 1)) {
                Some(inner) if inner.is_object() => inner,
                _ => json_form,
            };
            Filter::from_json(json_form).map(Some).map_err(|e| PageError::InvalidFilterForm(e.to_string()))
        }
    }
}

/// The most comparisons one client filter may hold (SQLite refuses expressions past a depth of
/// 1,000, and the rules' own terms are added to it).
pub const MAX_COMPARISONS: usize = 500;
/// The most values a client filter's `in` lists may hold together.
pub const MAX_LISTED: usize = 10_000;

/// Checks a request's filter against the table, restricts it to the rows the caller's `list`
/// rule admits, and binds every variable for this request (`@auth` is the caller's claims).
/// Properties the schema does not declare may be filtered on (real rows carry them: dar's menu
/// keeps its names in `item_name`), read from the stored document. A hidden field is as unknown
/// as a missing one: filtering on it would reveal it (the rule itself may read hidden fields: it
/// never leaves the server). `None`: every row.
pub fn prepare_filter(
    handle: &ModuleHandle,
    table: &Table,
    filter: Option<&Filter>,
    caller: &Caller,
) -> Result<Option<Filter>, PageError> {
    let (comparisons, listed) = filter.map(Filter::size).unwrap_or_default();
    if comparisons > MAX_COMPARISONS || listed > MAX_LISTED {
        return Err(PageError::InvalidFilterForm(format!(
            "a filter holds at most {MAX_COMPARISONS} comparisons and {MAX_LISTED} listed values (this one: {comparisons}, {listed})"
        )));
    }
    for path in filter.map(Filter::fields).unwrap_or_default() {
        let name = &path[0];
        let field = table.field(name);
        let hidden = table.hides(name) || field.is_some_and(|f| table.hides(&f.name));
        if hidden {
            return Err(PageError::UnknownField { table: table.name.clone(), field: name.clone() });
        }
    }
    let scope = caller.scope(handle, &table.name, Action::List);
    let Some(filter) = scope.and(filter.cloned()) else { return Ok(None) };
    let bindings = caller.who.bindings(&handle.branch, &handle.module, caller.source).with_now(crate::clock::now());
    Ok(Some(filter.bind(&bindings)))
}

pub(crate) fn parse_sort(table: &Table, spec: Option<&str>) -> Result<Vec<(String, bool)>, PageError> {
    let mut out = Vec::new();
    for part in spec.unwrap_or_default().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (field, desc) = match part.strip_prefix('-') {
            Some(f) => (f, true),
            None => (part.strip_prefix('+').unwrap_or(part), false),
        };
        if !layout::sortable(table, field) || table.hides(field) {
            return Err(PageError::InvalidSort { table: table.name.clone(), field: field.to_owned() });
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

fn decode_cursor(text: &str, sort: &str) -> Result<(Vec<Value>, String), PageError> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).map_err(|_| PageError::InvalidCursor)?;
    let body: Value = serde_json::from_slice(&bytes).map_err(|_| PageError::InvalidCursor)?;
    if body["s"].as_str() != Some(sort) {
        return Err(PageError::InvalidCursor);
    }
    let values = body["v"].as_array().cloned().ok_or(PageError::InvalidCursor)?;
    let key = body["k"].as_str().ok_or(PageError::InvalidCursor)?.to_owned();
    Ok((values, key))
}

/// Reads one page of `table` as `req` asks.
pub async fn table_page(handle: &Arc<ModuleHandle>, table: &Table, req: PageRequest) -> Result<Page, PageError> {
    if table.locked {
        return Err(PageError::TableLocked(table.name.clone()));
    }
    let sort = parse_sort(table, req.sort.as_deref())?;
    let sort_spec = req.sort.clone().unwrap_or_default();
    let (mut after_key, mut after) = (req.after.clone(), None);
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
    let filter = prepare_filter(handle, table, req.filter.as_ref(), &req.caller)?;
    let limit = req.limit;
    let query = PageQuery {
        after_key,
        created_after: req.created_after.clone(),
        updated_after: req.updated_after.clone(),
        descending: req.descending,
        // One more than asked: whether it exists is `hasMore`.
        limit: limit.saturating_add(1),
        filter,
        sort: sort.clone(),
        after,
    };
    let lang_name = translate::lang_table_name(&table.name);
    let has_translations = handle.schema.table(&lang_name).is_some();
    let untouched = req.stored_ok && table.hidden.is_empty() && req.fields.is_none() && !has_translations;
    // The table as the module's schema has it, looked up inside the read (no copy per request);
    // only a table the schema lacks is copied in.
    let name = table.name.clone();
    let copy = handle.schema.table(&name).is_none().then(|| table.clone());
    let (mut docs, translations) = handle
        .read(move |r, schema| {
            let Some(t) = copy.as_ref().or_else(|| schema.table(&name)) else {
                return Err(StorageError::Corrupt(format!("table `{name}` left the schema")));
            };
            if untouched {
                return Ok((Err(r.page_array(t, &query, limit)?), None));
            }
            let rows = r.page(t, &query)?;
            let translations = match schema.table(&lang_name) {
                Some(lt) => Some((lt.clone(), r.rows(lt)?)),
                None => None,
            };
            Ok((Ok(rows), translations))
        })
        .await?;
    let has_more = match &mut docs {
        Ok(rows) => truncated(rows, limit),
        Err(stored) => stored.more,
    };
    // Only the last row is needed parsed, for the cursor.
    let last = match &docs {
        Ok(rows) => rows.last().cloned(),
        Err(stored) => stored
            .last
            .as_deref()
            .map(serde_json::from_str::<Row>)
            .transpose()
            .map_err(|e| PageError::Storage(StorageError::Corrupt(format!("stored row: {e}"))))?,
    };
    let last = last.as_ref();
    let last_id = last.and_then(|row| RecordKey::of(table, row).ok()).map(|k| k.0);
    let last_created = last.and_then(|row| row.get("createdAt").cloned());
    let cursor = last.zip(last_id.as_ref()).map(|(row, key)| {
        let values: Vec<Value> =
            sort.iter().map(|(f, _)| field_value(Some(table), row, std::slice::from_ref(f)).clone()).collect();
        encode_cursor(&values, key, &sort_spec)
    });
    let rows = match docs {
        Err(stored) => PageRows::Stored { array: stored.array, count: stored.count },
        Ok(rows) => {
            let mut rows = render::rows(table, rows);
            if let Some((lang_table, translations)) = translations {
                let (lang, fallback) = &req.lang;
                render::attach_translations(&lang_table, &table.name, &mut rows, translations, lang, fallback);
            }
            if let Some(keep) = &req.fields {
                for row in &mut rows {
                    row.retain(|k, _| keep.iter().any(|f| f == k));
                }
            }
            PageRows::Rendered(rows)
        }
    };
    let next = match (has_more, sort.is_empty()) {
        (false, _) => Value::Null,
        (true, true) => json!({"afterId": last_id, "after": cursor}),
        (true, false) => json!({"after": cursor}),
    };
    Ok(Page { rows, has_more, next, last_id, last_created })
}

/// Cuts to `limit`; whether there was more.
fn truncated<T>(items: &mut Vec<T>, limit: usize) -> bool {
    let more = items.len() > limit;
    items.truncate(limit);
    more
}

/// How many rows of `table` the filter lets through.
pub async fn count(
    handle: &Arc<ModuleHandle>,
    table: &Table,
    filter: Option<&Filter>,
    caller: &Caller,
) -> Result<u64, PageError> {
    if table.locked {
        return Err(PageError::TableLocked(table.name.clone()));
    }
    let filter = prepare_filter(handle, table, filter, caller)?.unwrap_or(Filter::And(Vec::new()));
    let t = table.clone();
    Ok(handle.read(move |r, _| r.count_where(&t, &filter)).await?)
}

/// Groups of the rows `filter` lets through: `count`, and the `measures` of fields, per distinct
/// value of the `group_by` fields (one group without them).
pub async fn aggregate(
    handle: &Arc<ModuleHandle>,
    table: &Table,
    filter: Option<&Filter>,
    group_by: Vec<String>,
    measures: Vec<(Measure, String)>,
    caller: &Caller,
) -> Result<Vec<Group>, PageError> {
    if table.locked {
        return Err(PageError::TableLocked(table.name.clone()));
    }
    let invalid = |field: &str, what: &'static str| PageError::InvalidAggregate {
        table: table.name.clone(),
        field: field.to_owned(),
        what,
    };
    for field in &group_by {
        if !layout::sortable(table, field) || table.hides(field) {
            return Err(invalid(field, "group by"));
        }
    }
    for (measure, field) in &measures {
        let fits = table.field(field).is_some_and(|f| measure.applies_to(f.ty)) && layout::sortable(table, field);
        if !fits || table.hides(field) {
            return Err(invalid(field, measure.name()));
        }
    }
    let filter = prepare_filter(handle, table, filter, caller)?.unwrap_or(Filter::And(Vec::new()));
    let t = table.clone();
    Ok(handle.read(move |r, _| r.aggregate(&t, &filter, &group_by, &measures)).await?)
}

/// The answer shape of an aggregate: `[{key, count, sum: {..}, avg: {..}, min: {..}, max: {..}}]`.
pub fn groups_json(groups: Vec<Group>) -> Value {
    Value::Array(
        groups
            .into_iter()
            .map(|g| {
                let mut out = json!({"key": g.key, "count": g.count});
                for (measure, values) in g.measures {
                    out[measure.name()] = Value::Object(values);
                }
                out
            })
            .collect(),
    )
}

/// Rows of `table` matching the text `query` (and `filter`), best match first, with their scores,
/// as clients see them.
pub async fn search(
    handle: &Arc<ModuleHandle>,
    table: &Table,
    query: String,
    filter: Option<&Filter>,
    limit: usize,
    caller: &Caller,
) -> Result<Vec<(Row, f64)>, PageError> {
    if table.locked {
        return Err(PageError::TableLocked(table.name.clone()));
    }
    let filter = prepare_filter(handle, table, filter, caller)?.unwrap_or(Filter::And(Vec::new()));
    handle.ensure_search(table).await?;
    let t = table.clone();
    let hits = handle.read(move |r, _| r.search(&t, &query, &filter, limit)).await?;
    Ok(hits
        .into_iter()
        .filter_map(|(row, score)| render::row(table, &row).map(|seen| (seen.into_owned(), score)))
        .collect())
}
