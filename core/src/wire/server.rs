//! Server → client frames.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::mutation::ChangeKind;
use crate::record::Row;
use crate::sync::ChangeEvent;

/// A frame the server sends. Serialized with its `type` tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ServerFrame {
    /// Sent on connect.
    #[serde(rename = "server:hello")]
    Hello(ServerHello),
    /// All (or some) modules of a branch.
    #[serde(rename = "server:snapshot")]
    Snapshot(ServerSnapshot),
    /// To the publisher, after commit.
    #[serde(rename = "server:ack")]
    Ack(CommitFrame),
    /// To every client of the branch, after commit.
    #[serde(rename = "server:event")]
    Event(CommitFrame),
    /// Log line (the original's only error channel).
    #[serde(rename = "server:log")]
    Log(ServerLog),
    /// An instruction (`full-sync-flag`, `resync`...).
    #[serde(rename = "server:directive")]
    Directive(ServerDirective),
    /// **(ext)** a structured error addressed to a request.
    #[serde(rename = "server:error")]
    Error(ServerError),
    /// **(ext)** the changes since the client's cursor instead of a snapshot.
    #[serde(rename = "server:delta")]
    Delta(DeltaFrame),
    /// Answer to `client:query`.
    #[serde(rename = "server:query:result")]
    QueryResult(QueryResult),
    /// **(ext)** The first answer to `client:subscribe`.
    #[serde(rename = "server:subscribed")]
    Subscribed(LiveResult),
    /// **(ext)** Answer to `client:unsubscribe`.
    #[serde(rename = "server:unsubscribed")]
    Unsubscribed {
        /// The subscription.
        #[serde(rename = "subId")]
        sub_id: String,
        /// The request it answers.
        #[serde(rename = "requestId", default, skip_serializing_if = "Option::is_none")]
        request_id: Option<Value>,
    },
    /// **(ext)** Answer to `client:auth`: the session's identity, and when its credential expires.
    #[serde(rename = "server:auth")]
    Authenticated {
        /// Who the session is now.
        sub: String,
        /// `exp` of the credential (seconds since the epoch), if it expires.
        #[serde(rename = "expiresAt", default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<u64>,
        /// The request it answers.
        #[serde(rename = "requestId", default, skip_serializing_if = "Option::is_none")]
        request_id: Option<Value>,
    },
    /// **(ext)** Answer to `client:transaction`: what it committed.
    #[serde(rename = "server:transaction")]
    Transaction(super::TransactionAck),
    /// Answer to `ping`.
    #[serde(rename = "pong")]
    Pong {
        /// Server time.
        ts: String,
    },
    /// Pub/sub acknowledgement (`auth`, `subscribe`, `publish`).
    #[serde(rename = "ack")]
    TopicAck {
        /// Which request.
        event: String,
        /// The topic, when any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
    },
    /// Data on a topic.
    #[serde(rename = "publish")]
    TopicPublish {
        topic: String,
        /// Payload.
        data: Value,
    },
    /// Pub/sub error.
    #[serde(rename = "error")]
    TopicError {
        /// `invalid-topic`, `missing-trans-id`...
        code: String,
        /// Explanation.
        message: String,
    },
}

/// `server:hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerHello {
    pub server_id: String,
    /// Server time.
    pub now: String,
    /// `{branchId}`: the default branch.
    pub defaults: Value,
}

/// `server:snapshot`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerSnapshot {
    /// The branch.
    pub branch_id: String,
    /// Module snapshots by id.
    pub modules: BTreeMap<String, ModuleSnapshot>,
    /// Why and when.
    pub meta: SnapshotMeta,
}

/// One module's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleSnapshot {
    /// Module.
    pub module_id: String,
    /// Branch.
    pub branch_id: String,
    /// The module's last sequence: the cursor this snapshot reflects.
    pub version: u64,
    /// Rows per table.
    pub tables: BTreeMap<String, Vec<Row>>,
    /// `{lastUpdatedAt, sequence, ...}`.
    pub meta: Value,
}

impl ServerSnapshot {
    /// The `server:snapshot` frame's text around modules already written as JSON text (module id,
    /// its `ModuleSnapshot` object), in the given order: a server streams each module's rows into
    /// its text instead of holding them as values. The same text `ServerFrame::Snapshot` gives.
    pub fn frame_text<'m>(
        branch_id: &str,
        modules: impl IntoIterator<Item = (&'m str, &'m str)>,
        meta: &SnapshotMeta,
    ) -> String {
        let quoted = |s: &str| serde_json::to_string(s).expect("a string serializes");
        let mut out = String::from("{\"type\":\"server:snapshot\",\"branchId\":");
        out.push_str(&quoted(branch_id));
        out.push_str(",\"modules\":{");
        for (i, (id, text)) in modules.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&quoted(id));
            out.push(':');
            out.push_str(text);
        }
        out.push_str("},\"meta\":");
        out.push_str(&serde_json::to_string(meta).expect("meta serializes"));
        out.push('}');
        out
    }
}

/// `server:snapshot` meta.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotMeta {
    /// When.
    pub snapshot_at: String,
    pub server_id: String,
    /// `hello`, `request`, `reset`...
    pub reason: String,
    /// The request it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Value>,
}

/// `server:delta` **(ext)**: per module, the rows changed and deleted since the client's cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaFrame {
    /// Branch.
    pub branch_id: String,
    /// Module.
    pub module_id: String,
    /// The client's cursor.
    pub from: u64,
    /// The new cursor.
    pub to: u64,
    /// Changed rows per table.
    pub tables: BTreeMap<String, Vec<Row>>,
    /// Deleted keys per table.
    pub deleted: BTreeMap<String, Vec<String>>,
    /// The request it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Value>,
}

/// Reference to a row, as the original names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordRef {
    pub table: String,
    /// Canonical key.
    pub key: String,
    /// `{id: ...}` (the key fields).
    pub primary_key: Map<String, Value>,
    /// The key as the record carries it.
    pub id: Value,
}

/// `meta` of an ack/event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AckMeta {
    pub server_id: String,
    /// Branch.
    pub branch_id: String,
    /// Module.
    pub module_id: String,
    pub table: String,
    /// Commit time.
    pub timestamp: String,
    /// `ws`, `rest`, `seed`...
    pub source: String,
    /// The publisher's own meta (with its `requestId`).
    pub client_meta: Value,
    /// Canonical key.
    pub record_key: String,
    /// The key as the record carries it.
    pub record_id: Value,
    pub event_id: String,
    pub sequence: u64,
    /// Reference.
    pub record_ref: RecordRef,
}

/// `entry` of an ack/event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Event id.
    pub id: String,
    pub table: String,
    /// Effective action.
    pub action: String,
    /// Reference.
    pub record_ref: RecordRef,
    pub meta: AckMeta,
    /// Whether the row was created.
    pub created: bool,
    /// Whether the row was deleted.
    pub deleted: bool,
    /// The stored row (acks with `includeRecord`, and every event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Row>,
}

/// `notice` of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    /// Effective action.
    pub action: String,
    /// Reference.
    pub record_ref: RecordRef,
    pub event_id: String,
    pub sequence: u64,
    /// Module version.
    pub version: u64,
    /// Commit time.
    pub timestamp: String,
    pub created: bool,
    pub deleted: bool,
    pub meta: AckMeta,
}

/// Where a change was committed: which server, branch and module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitSite<'a> {
    /// Branch.
    pub branch_id: &'a str,
    /// Module.
    pub module_id: &'a str,
    pub server_id: &'a str,
}

/// The body of `server:ack` and `server:event`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitFrame {
    /// Effective action (`module:insert`, `module:merge`, `module:delete`).
    pub action: String,
    /// Branch.
    pub branch_id: String,
    /// Module.
    pub module_id: String,
    /// Module version (its last sequence).
    pub version: u64,
    pub table: String,
    /// Reference.
    pub record_ref: RecordRef,
    pub event_id: String,
    pub sequence: u64,
    /// `committed`.
    pub publish_state: String,
    pub meta: AckMeta,
    pub entry: Entry,
    pub created: bool,
    pub deleted: bool,
    /// The row's own version after the change **(ext)**.
    pub record_version: i64,
    /// The publisher's `requestId` (acks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutation_id: Option<String>,
    /// Events only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<Notice>,
    /// The module's name of the table when the writer named it otherwise ([`CommitFrame::named`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonical_table: Option<String>,
    /// **(ext)** The transaction the change was committed in, when one of several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
}

impl CommitFrame {
    /// Builds the shared body of an ack or event for a committed change.
    pub fn from_event(
        event: &ChangeEvent,
        site: CommitSite<'_>,
        source: &str,
        client_meta: Value,
        primary_key: Map<String, Value>,
        include_record: bool,
    ) -> CommitFrame {
        let CommitSite { branch_id, module_id, server_id } = site;
        let change = &event.change;
        let (created, deleted) = (change.kind == ChangeKind::Insert, change.kind == ChangeKind::Delete);
        let action = match change.kind {
            ChangeKind::Insert => "module:insert",
            ChangeKind::Update => "module:merge",
            ChangeKind::Delete => "module:delete",
        };
        let id = if primary_key.len() == 1 {
            primary_key.values().next().cloned().unwrap_or(Value::Null)
        } else {
            Value::String(change.key.0.clone())
        };
        let record_ref =
            RecordRef { table: change.table.clone(), key: change.key.0.clone(), primary_key, id: id.clone() };
        let meta = AckMeta {
            server_id: server_id.to_owned(),
            branch_id: branch_id.to_owned(),
            module_id: module_id.to_owned(),
            table: change.table.clone(),
            timestamp: event.created_at.clone(),
            source: source.to_owned(),
            client_meta,
            record_key: change.key.0.clone(),
            record_id: id,
            event_id: event.event_id.clone(),
            sequence: event.sequence,
            record_ref: record_ref.clone(),
        };
        let entry = Entry {
            id: event.event_id.clone(),
            table: change.table.clone(),
            action: action.to_owned(),
            record_ref: record_ref.clone(),
            meta: meta.clone(),
            created,
            deleted,
            record: if include_record { change.row.clone() } else { None },
        };
        CommitFrame {
            action: action.to_owned(),
            branch_id: branch_id.to_owned(),
            module_id: module_id.to_owned(),
            version: event.sequence,
            table: change.table.clone(),
            record_ref,
            event_id: event.event_id.clone(),
            sequence: event.sequence,
            publish_state: "committed".to_owned(),
            meta,
            entry,
            created,
            deleted,
            record_version: change.version,
            request_id: None,
            mutation_id: event.mutation_id.clone(),
            notice: None,
            canonical_table: None,
            transaction_id: event.transaction_id.clone(),
        }
    }

    /// The same frame naming the table as its writer did (`pos_shifts` for `pos_shift`): the
    /// original's clients route a change to their watchers by the name they wrote it under.
    /// `canonicalTable` **(ext)** keeps the module's name.
    pub fn named(mut self, table: &str) -> CommitFrame {
        self.canonical_table = Some(std::mem::replace(&mut self.table, table.to_owned()));
        for reference in [
            &mut self.record_ref,
            &mut self.meta.record_ref,
            &mut self.entry.record_ref,
            &mut self.entry.meta.record_ref,
        ] {
            reference.table = table.to_owned();
        }
        self.meta.table = table.to_owned();
        self.entry.table = table.to_owned();
        self.entry.meta.table = table.to_owned();
        self
    }

    /// Turns the body into an event body: adds the `notice`, drops the publisher's `requestId`.
    pub fn into_event(mut self) -> CommitFrame {
        self.notice = Some(Notice {
            action: self.action.clone(),
            record_ref: self.record_ref.clone(),
            event_id: self.event_id.clone(),
            sequence: self.sequence,
            version: self.version,
            timestamp: self.meta.timestamp.clone(),
            created: self.created,
            deleted: self.deleted,
            meta: self.meta.clone(),
        });
        self.request_id = None;
        self
    }
}

/// `server:log`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerLog {
    /// `info`, `warn`, `error`.
    pub level: String,
    pub message: String,
    pub context: Value,
    /// Time.
    pub ts: String,
    pub server_id: String,
}

/// `server:directive`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerDirective {
    /// `full-sync-flag`, `resync`, `reload-schema`.
    pub directive: String,
    /// Branch.
    pub branch_id: String,
    /// Module, when one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_id: Option<String>,
    /// Flag state.
    pub enabled: bool,
    /// Why.
    pub reason: String,
}

/// `server:error` **(ext)**.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerError {
    /// Machine-readable code (`version-conflict`, `validation-failed`...).
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Code-specific details (conflict versions, field errors...).
    pub details: Value,
    /// The failed request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Value>,
    /// The failed mutation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutation_id: Option<String>,
}

/// `server:query:result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryResult {
    /// The request it answers.
    pub request_id: Option<Value>,
    pub table: String,
    /// `get` / `list`.
    pub query_type: String,
    /// A row (get; null when absent) or rows (list).
    pub result: Value,
    /// Time.
    pub timestamp: String,
    /// **(ext)** For a list: `{hasMore, next}`, `next.after` continuing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
}

/// **(ext)** `server:subscribed`: a live query's result when it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveResult {
    /// The subscription.
    pub sub_id: String,
    /// Module.
    pub module_id: String,
    pub table: String,
    /// `rows`: `rows` is the whole result (replace what you hold). `changes`: resuming from the
    /// client's cursor, `rows` are the rows that changed and still belong, `removed` the keys that
    /// left; everything else the client holds is unchanged.
    pub mode: String,
    /// Rows, as clients see them.
    pub rows: Vec<Row>,
    /// Keys that left the result (mode `changes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// A window: rows beyond it match too.
    pub has_more: bool,
    /// Where this result stands in the module's log: give it back to resume.
    pub cursor: u64,
    /// The request it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Value>,
}

/// **(ext)** `server:live`: one move of a live query's result. Borrows the row so the server
/// serializes it without copying.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "server:live", rename_all = "camelCase")]
pub struct LiveChange<'r> {
    /// The subscription.
    pub sub_id: std::borrow::Cow<'r, str>,
    /// `add`, `update` or `remove`.
    pub op: crate::sync::live::LiveOp,
    /// The row's key.
    pub key: std::borrow::Cow<'r, str>,
    /// The row, as clients see it (add and update).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<std::borrow::Cow<'r, Row>>,
    /// The sequence of the change: the subscription's cursor from now on.
    pub cursor: u64,
}

/// **(ext)** One committed change as `client:hello {frames: "compact"}` clients get it: what a
/// client applies, once (the original's `server:event` repeats the commit's meta three times in
/// about 2 KB). Several go out in one `server:events {events: [...]}` frame when they are queued
/// together; a change that is alone goes out alone, at once.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompactChange<'a> {
    /// The module sequence of the change (the client's new cursor).
    pub seq: u64,
    pub module: Cow<'a, str>,
    pub table: Cow<'a, str>,
    /// `insert`, `update` or `delete`.
    pub op: &'a str,
    /// The row's key.
    pub key: Cow<'a, str>,
    /// The row after the change, as the client may see it (none for a delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<Cow<'a, Row>>,
    /// The row's version after the change.
    pub version: i64,
    /// The writer's `requestId`, so a client knows its own write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a Value>,
    /// The transaction the change was committed in, when one of several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn: Option<&'a str>,
}

impl<'a> CompactChange<'a> {
    /// The compact form of `event` (already rendered for clients) of `module`; `client_meta` is
    /// the writer's meta (its `requestId`).
    pub fn of(event: &'a ChangeEvent, module: &'a str, client_meta: &'a Value) -> CompactChange<'a> {
        let op = match event.change.kind {
            ChangeKind::Insert => "insert",
            ChangeKind::Update => "update",
            ChangeKind::Delete => "delete",
        };
        CompactChange {
            seq: event.sequence,
            module: Cow::Borrowed(module),
            table: Cow::Borrowed(&event.change.table),
            op,
            key: Cow::Borrowed(&event.change.key.0),
            row: event.change.row.as_ref().map(Cow::Borrowed),
            version: event.change.version,
            request_id: client_meta.get("requestId"),
            txn: event.transaction_id.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_snapshot_frame_written_around_module_texts_is_the_one_serde_writes() {
        let module = ModuleSnapshot {
            module_id: "pos".into(),
            branch_id: "b".into(),
            version: 7,
            tables: BTreeMap::from([("t".into(), vec![json!({"id": "1", "x": "é\""}).as_object().unwrap().clone()])]),
            meta: json!({"sequence": 7}),
        };
        let meta = SnapshotMeta {
            snapshot_at: "now".into(),
            server_id: "s".into(),
            reason: "hello".into(),
            request_id: Some(json!("r1")),
        };
        let text = serde_json::to_string(&module).unwrap();
        let streamed = ServerSnapshot::frame_text("b\"ranch", [("pos", text.as_str())], &meta);
        let whole = ServerFrame::Snapshot(ServerSnapshot {
            branch_id: "b\"ranch".into(),
            modules: BTreeMap::from([("pos".into(), module)]),
            meta,
        });
        assert_eq!(streamed, serde_json::to_string(&whole).unwrap());
    }
}
