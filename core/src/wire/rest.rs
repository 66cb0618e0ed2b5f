//! REST bodies (spec §5).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::record::Row;

/// `POST|PATCH|PUT .../tables/{t}` body: `{record, meta}`; a bare record is accepted too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteRequest {
    #[serde(alias = "data")]
    pub record: Row,
    /// Client meta.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
    /// **(ext)** the version the client last saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
    /// Identifies the mutation across retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutation_id: Option<String>,
}

impl WriteRequest {
    /// Reads `{record, meta}`, or a bare record object.
    pub fn from_body(body: Value) -> Result<WriteRequest, String> {
        if body.get("record").is_some_and(Value::is_object) || body.get("data").is_some_and(Value::is_object) {
            return serde_json::from_value(body).map_err(|e| e.to_string());
        }
        match body {
            Value::Object(record) => Ok(WriteRequest { record, meta: None, expected_version: None, mutation_id: None }),
            _ => Err("body must be a JSON object: {record, meta} or the record itself".into()),
        }
    }
}

/// `POST .../modules/{m}/save`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SaveRequest {
    #[serde(alias = "tableName")]
    pub table: String,
    pub record: Row,
    /// Client meta.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
    /// The original's guard spellings; a number is read as the expected version.
    #[serde(default, alias = "expected", alias = "guard", skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Value>,
    /// **(ext)** the version the client last saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutation_id: Option<String>,
}

/// `POST .../modules/{m}/sequences`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SequenceRequest {
    #[serde(default, alias = "tableName")]
    pub table: String,
    #[serde(default, alias = "fieldName")]
    pub field: String,
    /// Record, informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Value>,
}

/// `POST .../events/batch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventsBatchRequest {
    /// Must equal the log's last event id.
    #[serde(default)]
    pub last_ack_id: Option<String>,
    /// Events: `{table, action?, record}`.
    pub events: Vec<Value>,
    /// Broadcast to clients (always true in practice: every write is broadcast).
    #[serde(default)]
    pub broadcast: Option<bool>,
}

/// Query parameters of `GET .../tables/{t}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableQueryParams {
    /// Page size.
    #[serde(default, alias = "take")]
    pub limit: Option<String>,
    /// Rows after this id.
    #[serde(default, alias = "after", alias = "lastId")]
    pub after_id: Option<String>,
    /// Rows after this key.
    #[serde(default, alias = "cursor")]
    pub after_key: Option<String>,
    /// Rows created after.
    #[serde(default, alias = "since")]
    pub after_created_at: Option<String>,
    /// Rows updated after.
    #[serde(default)]
    pub updated_after: Option<String>,
    /// `asc` / `desc`.
    #[serde(default)]
    pub order: Option<String>,
    /// Language of the `i18n.lang.<lang>` join (default `ar`) when the table has `<t>_lang`.
    #[serde(default)]
    pub lang: Option<String>,
    /// **(ext)** A filter in the string form (`statusId = "open" && total > 10`).
    #[serde(default)]
    pub filter: Option<String>,
    /// **(ext)** Sort keys, `-` for descending: `-createdAt,id`.
    #[serde(default)]
    pub sort: Option<String>,
    /// **(ext)** Only these fields of each row: `id,subtotal`.
    #[serde(default)]
    pub fields: Option<String>,
    /// **(ext)** Search route: what to find (`كشرى`, `kosh`).
    #[serde(default)]
    pub q: Option<String>,
    /// **(ext)** Aggregate route: group by these fields (`statusId,kitchenSectionId`).
    #[serde(default, rename = "groupBy")]
    pub group_by: Option<String>,
    /// **(ext)** Aggregate route: fields to sum.
    #[serde(default)]
    pub sum: Option<String>,
    /// **(ext)** Aggregate route: fields to average.
    #[serde(default)]
    pub avg: Option<String>,
    /// **(ext)** Aggregate route: fields whose least value to give.
    #[serde(default)]
    pub min: Option<String>,
    /// **(ext)** Aggregate route: fields whose greatest value to give.
    #[serde(default)]
    pub max: Option<String>,
    /// Language whose translation fills what `lang`'s lacks (default `ar`).
    #[serde(default, alias = "fallbackLang")]
    pub fallback: Option<String>,
}

/// `POST /api/sync/{b}/{m}/delta` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaRequest {
    /// The module version (= sequence) the client has; our cursor.
    #[serde(default)]
    pub version: Option<u64>,
    /// **(ext)** alias of `version`.
    #[serde(default)]
    pub sequence: Option<u64>,
    /// Opaque marker of the last snapshot.
    #[serde(default)]
    pub snapshot_marker: Option<Value>,
    /// Per-table cursors in the original's form.
    #[serde(default)]
    pub tables: BTreeMap<String, DeltaTableCursor>,
}

/// A per-table cursor of the delta route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaTableCursor {
    /// Last id seen.
    #[serde(default)]
    pub last_id: Option<Value>,
    /// `{updatedAt}`.
    #[serde(default)]
    pub cursor: Option<Value>,
}

/// `POST /api/sync/{b}/{m}/delta` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaResponse {
    /// Branch.
    pub branch_id: String,
    /// Module.
    pub module_id: String,
    /// The module's current sequence: the client's next cursor.
    pub version: u64,
    /// Time.
    pub updated_at: String,
    /// Marker.
    pub snapshot_marker: Value,
    /// The cursor is older than the retained log: fetch a snapshot.
    pub requires_full_sync: bool,
    /// Tables whose cursor could not be honoured.
    pub cursor_misses: Vec<String>,
    /// Last id per table in the delta.
    pub last_table_ids: BTreeMap<String, Value>,
    /// Last reference per table.
    pub last_table_refs: BTreeMap<String, Value>,
    /// Rows changed per table.
    pub deltas: BTreeMap<String, Vec<Row>>,
    /// Keys deleted per table **(the original had none: its deltas were insert-only)**.
    pub deletions: BTreeMap<String, Vec<String>>,
    /// Per-table counts.
    pub stats: BTreeMap<String, DeltaTableStats>,
}

/// Per-table stats of a delta.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaTableStats {
    /// Rows in the table.
    pub total: u64,
    /// Rows returned.
    pub returned: u64,
    /// Whether the client's table cursor was found.
    pub cursor_matched: bool,
}

/// The one REST error shape: `{error, message, details}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Code.
    pub error: String,
    pub message: String,
    #[serde(default)]
    pub details: Value,
}

/// `POST .../transactions` (and the WebSocket's `client:transaction`): `writes` commit together
/// or not at all, and only if every one of `reads` still holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionRequest {
    /// The target module (WebSocket only; the branch's only module when absent).
    #[serde(default, alias = "module", skip_serializing_if = "Option::is_none")]
    pub module_id: Option<String>,
    /// Echoed in the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Value>,
    /// Identifies the transaction across retries: a retry of a committed transaction is
    /// answered with what it committed (write `i` is logged as mutation `<mutationId>/<i>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutation_id: Option<String>,
    #[serde(default)]
    pub reads: Vec<TransactionRead>,
    pub writes: Vec<TransactionWrite>,
    /// Put each stored row (as the caller may see it) in the answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_records: bool,
}

/// What a committed transaction answers (`POST .../transactions`, `server:transaction`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionAck {
    #[serde(default)]
    pub request_id: Option<Value>,
    pub branch_id: String,
    pub module_id: String,
    /// Tags every event of the transaction in the log and in event frames.
    pub transaction_id: Option<String>,
    pub first_sequence: Option<u64>,
    pub last_sequence: Option<u64>,
    /// One per write, in order.
    pub results: Vec<TransactionResult>,
}

/// One committed write of a transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionResult {
    pub table: String,
    /// The row's key.
    pub id: String,
    /// `insert`, `update` or `delete`.
    pub action: crate::ChangeKind,
    /// The row's version after the write.
    pub version: i64,
    pub sequence: u64,
    pub event_id: String,
    /// The row as stored, as the caller may see it (none for a delete, or a row it may not see).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<Row>,
}

/// What the client read: the row `id` of `table` at `version`, or (`exists: false`) no such row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionRead {
    pub table: String,
    /// The primary key: a value, or an object of the key's fields (composite keys).
    pub id: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
}

/// One write: `{action, table, record, expectedVersion?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionWrite {
    pub action: String,
    pub table: String,
    pub record: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
}
