//! Client → server frames.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::mutation::{Action, Mutation};
use crate::record::Row;

/// A frame a client sent.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// `client:hello`: register for a branch.
    Hello(ClientHello),
    /// `client:publish`: a mutation.
    Publish(ClientPublish),
    /// `client:request:snapshot` or `client:request:history`.
    RequestSnapshot(RequestSnapshot),
    /// `client:query`: get or list.
    Query(ClientQuery),
    /// `ping` → `pong`.
    Ping,
    /// `auth` → `{type: "ack", event: "auth"}`.
    Auth,
    /// `subscribe {topic}`.
    Subscribe {
        /// Topic name.
        topic: String,
    },
    /// `unsubscribe {topic}`.
    Unsubscribe {
        /// Topic name.
        topic: String,
    },
    /// `publish {topic, data}` (legacy POS sync topics).
    TopicPublish(TopicPublish),
    /// **(ext)** `client:subscribe`: start a live query.
    LiveSubscribe(LiveSubscribe),
    /// **(ext)** `client:unsubscribe`: end one.
    LiveUnsubscribe(LiveUnsubscribe),
    /// **(ext)** `client:auth {token}`: a new token for this session (before the old one expires,
    /// or after `server:directive {directive: "token-expired"}`).
    Authenticate(ClientAuth),
    /// **(ext)** `client:transaction`: writes across tables that commit together, if the reads
    /// they assume still hold; answered by `server:transaction` or `server:error`.
    Transaction(super::TransactionRequest),
}

/// **(ext)** `client:auth`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientAuth {
    /// A JWT or an API key.
    pub token: String,
    /// Echoed back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Value>,
}

/// Why a client frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not JSON, or not an object.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// No `type`.
    #[error("frame has no `type`")]
    MissingType,
    /// A `type` we do not handle.
    #[error("unknown frame type `{0}`")]
    UnknownType(String),
    /// A known frame missing or mistyping a field.
    #[error("invalid `{frame}` frame: {message}")]
    Invalid {
        /// The frame type.
        frame: String,
        /// What is wrong.
        message: String,
    },
    /// An action name we do not handle.
    #[error("Unsupported module action `{0}`")]
    UnknownAction(String),
}

impl FrameError {
    /// `malformed-frame`, `missing-type`, `unknown-frame-type`, `invalid-frame`, `unknown-action`.
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::Malformed(_) => "malformed-frame",
            FrameError::MissingType => "missing-type",
            FrameError::UnknownType(_) => "unknown-frame-type",
            FrameError::Invalid { .. } => "invalid-frame",
            FrameError::UnknownAction(_) => "unknown-action",
        }
    }
}

/// `client:hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientHello {
    /// The branch to register for.
    #[serde(alias = "branch")]
    pub branch_id: String,
    /// Client role (`pos`, `kds`...), informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Preferred language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// Whether to send a snapshot (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_snapshot: Option<bool>,
    /// Legacy, ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_limit: Option<u64>,
    /// Echoed back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Value>,
    /// **(ext)** the last sequence seen, per module (or one number for a one-module branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<HelloCursor>,
    /// **(ext)** `"subscriptions"`: no snapshot and no branch-wide events, only what live queries
    /// (`client:subscribe`) select. Absent or `"module"`: the whole branch, as the original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<String>,
    /// **(ext)** A bearer token, for browsers (they cannot set headers on a WebSocket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// **(ext)** `"compact"`: the branch's changes as `server:events {events: [...]}` of
    /// [`super::CompactChange`]s instead of the original's `server:event` frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<String>,
    /// **(ext)** A stable id of this client (the browser store keeps one with its outbox): an
    /// anonymous client's mutation ids are unique within it, so a replay from a later connection
    /// is still recognised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// **(ext)** `"pages"`: never a `server:snapshot`; where a module's snapshot would be sent
    /// (no cursor, or one the log no longer covers), a `server:directive {directive: "resync"}`
    /// names the module, and the client walks its pages (`GET .../modules/{m}/pages`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

impl ClientHello {
    /// Whether the client takes its snapshots in pages.
    pub fn snapshot_in_pages(&self) -> bool {
        self.snapshot.as_deref() == Some("pages")
    }

    /// Whether the client asked for live queries only.
    pub fn subscriptions_only(&self) -> bool {
        self.sync.as_deref() == Some("subscriptions")
    }

    /// Whether the client asked for compact event frames.
    pub fn compact_frames(&self) -> bool {
        self.frames.as_deref() == Some("compact")
    }
}

/// The cursor of a `client:hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HelloCursor {
    /// One sequence, for every module of the branch.
    Sequence(u64),
    /// module → sequence.
    PerModule(BTreeMap<String, u64>),
}

impl HelloCursor {
    /// The cursor for `module`, if the client gave one.
    pub fn for_module(&self, module: &str) -> Option<u64> {
        match self {
            HelloCursor::Sequence(s) => Some(*s),
            HelloCursor::PerModule(m) => m.get(module).copied(),
        }
    }
}

/// `client:publish`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientPublish {
    /// Target module (the branch's only module when absent).
    #[serde(default, alias = "module", skip_serializing_if = "Option::is_none")]
    pub module_id: Option<String>,
    /// Target table.
    #[serde(alias = "tableName")]
    pub table: String,
    /// `module:insert|update|merge|save|delete`.
    pub action: String,
    #[serde(alias = "data")]
    pub record: Value,
    /// Client metadata, echoed in `meta.clientMeta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
    /// Echoed in the ack and error frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Value>,
    /// Identifies the mutation across retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutation_id: Option<String>,
    /// Put the stored record in the ack.
    #[serde(default)]
    pub include_record: bool,
    /// Informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// **(ext)** the version the client last saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
}

impl ClientPublish {
    /// The core mutation this frame asks for.
    pub fn to_mutation(&self) -> Result<Mutation, FrameError> {
        let action = Action::from_wire(&self.action).ok_or_else(|| FrameError::UnknownAction(self.action.clone()))?;
        let record: Row = match &self.record {
            Value::Object(map) => map.clone(),
            _ => {
                return Err(FrameError::Invalid {
                    frame: "client:publish".into(),
                    message: "`record` must be an object".into(),
                })
            }
        };
        let mutation_id = self.mutation_id.clone().or_else(|| {
            self.meta.as_ref().and_then(|m| m.get("mutationId")).and_then(Value::as_str).map(str::to_owned)
        });
        Ok(Mutation { table: self.table.clone(), action, record, expected_version: self.expected_version, mutation_id })
    }
}

/// `client:request:snapshot` / `client:request:history`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestSnapshot {
    /// Echoed back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Value>,
    /// Only this module.
    #[serde(default, alias = "module", skip_serializing_if = "Option::is_none")]
    pub module_id: Option<String>,
}

/// `client:query`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientQuery {
    /// Module (the branch's only one when absent).
    #[serde(default, alias = "module", skip_serializing_if = "Option::is_none")]
    pub module_id: Option<String>,
    #[serde(alias = "tableName")]
    pub table: String,
    /// `get` or `list`.
    #[serde(default = "list")]
    pub query_type: String,
    /// Key for `get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// `{field: value}` equality filter (or the richer `where` syntax of [`crate::query`]), or
    /// **(ext)** the string form (`statusId = "open" && total > 10`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
    /// **(ext)** Sort keys, `-` for descending: `"-createdAt,id"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    /// **(ext)** Only these fields of each row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    /// **(ext)** At most this many rows (capped by the server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// **(ext)** Continue after this cursor (`meta.next.after` of the previous result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// **(ext)** Groups and measures instead of rows: `result` is `[{key, count, sum, ...}]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<QueryAggregate>,
    /// Echoed back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Value>,
}

/// **(ext)** The aggregate of a `client:query`, as the REST aggregate route takes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryAggregate {
    /// Fields to group by.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Fields to sum.
    #[serde(default)]
    pub sum: Vec<String>,
    /// Fields to average.
    #[serde(default)]
    pub avg: Vec<String>,
    /// Fields whose least value to give.
    #[serde(default)]
    pub min: Vec<String>,
    /// Fields whose greatest value to give.
    #[serde(default)]
    pub max: Vec<String>,
}

/// **(ext)** `client:subscribe`: the rows of `table` that `filter` selects, then every change to
/// that result (`server:live`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveSubscribe {
    /// The client's name for this subscription, echoed in every frame about it.
    pub sub_id: String,
    /// Module (the branch's only one when absent).
    #[serde(default, alias = "module", skip_serializing_if = "Option::is_none")]
    pub module_id: Option<String>,
    #[serde(alias = "tableName")]
    pub table: String,
    /// Either form of the filter language; none: every row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
    /// With `limit`: the window's order (`-createdAt,id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    /// Only the first rows in `sort` order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Only these fields of each row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    /// The `cursor` of the last frame received for this subscription: resume with the changes
    /// since, when the log still holds them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<u64>,
    /// Echoed back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Value>,
}

/// **(ext)** `client:unsubscribe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveUnsubscribe {
    /// The subscription.
    pub sub_id: String,
    /// Echoed back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Value>,
}

fn list() -> String {
    "list".into()
}

/// `publish {topic, data}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicPublish {
    pub topic: String,
    /// Payload.
    #[serde(default)]
    pub data: Value,
}

#[derive(Deserialize)]
struct Topic {
    topic: String,
}

/// A frame's body, to decode as the type its `type` names.
enum Body<'t> {
    /// The frame as sent: decoded straight into the type, without a tree of every value first.
    Text(&'t str),
    Tree(Value),
}

impl Body<'_> {
    fn decode<T: DeserializeOwned>(self, kind: &str) -> Result<T, FrameError> {
        let decoded = match self {
            Body::Text(text) => serde_json::from_str(text),
            Body::Tree(value) => serde_json::from_value(value),
        };
        decoded.map_err(|e| FrameError::Invalid { frame: kind.to_owned(), message: e.to_string() })
    }
}

impl ClientFrame {
    /// Parses one text frame.
    pub fn parse(text: &str) -> Result<ClientFrame, FrameError> {
        #[derive(Deserialize)]
        struct Head {
            #[serde(rename = "type")]
            kind: Option<String>,
        }
        // Its type first (every other field skipped unread), then the frame as that type: one
        // pass building what the frame holds. Anything odd takes the tree, for its precise error.
        match serde_json::from_str::<Head>(text) {
            Ok(Head { kind: Some(kind) }) => ClientFrame::decode(&kind, Body::Text(text)),
            _ => {
                let value: Value = serde_json::from_str(text).map_err(|e| FrameError::Malformed(e.to_string()))?;
                ClientFrame::from_value(value)
            }
        }
    }

    /// Parses an already-decoded frame.
    pub fn from_value(value: Value) -> Result<ClientFrame, FrameError> {
        if !value.is_object() {
            return Err(FrameError::Malformed("a frame is a JSON object".into()));
        }
        let kind = value.get("type").and_then(Value::as_str).ok_or(FrameError::MissingType)?.to_owned();
        ClientFrame::decode(&kind, Body::Tree(value))
    }

    fn decode(kind: &str, body: Body<'_>) -> Result<ClientFrame, FrameError> {
        Ok(match kind {
            "client:hello" => ClientFrame::Hello(body.decode(kind)?),
            "client:publish" => ClientFrame::Publish(body.decode(kind)?),
            "client:request:snapshot" | "client:request:history" => ClientFrame::RequestSnapshot(body.decode(kind)?),
            "client:query" => ClientFrame::Query(body.decode(kind)?),
            "ping" => ClientFrame::Ping,
            "auth" => ClientFrame::Auth,
            "subscribe" => ClientFrame::Subscribe { topic: body.decode::<Topic>(kind)?.topic },
            "unsubscribe" => ClientFrame::Unsubscribe { topic: body.decode::<Topic>(kind)?.topic },
            "publish" => ClientFrame::TopicPublish(body.decode(kind)?),
            "client:subscribe" => ClientFrame::LiveSubscribe(body.decode(kind)?),
            "client:unsubscribe" => ClientFrame::LiveUnsubscribe(body.decode(kind)?),
            "client:auth" => ClientFrame::Authenticate(body.decode(kind)?),
            "client:transaction" => ClientFrame::Transaction(body.decode(kind)?),
            _ => return Err(FrameError::UnknownType(kind.to_owned())),
        })
    }

    /// The `requestId` of a raw frame, to address an error to it even when the frame is invalid.
    pub fn request_id_of(text: &str) -> Option<Value> {
        let value: Value = serde_json::from_str(text).ok()?;
        value.get("requestId").cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_the_aliases_real_clients_send() {
        let frame = ClientFrame::parse(
            &json!({"type": "client:publish", "module": "pos", "tableName": "order_header", "action": "module:update",
                    "data": {"id": "o1"}, "requestId": "r1", "meta": {"mutationId": "m1"}})
            .to_string(),
        )
        .unwrap();
        let ClientFrame::Publish(p) = frame else { panic!("not a publish") };
        assert_eq!((p.module_id.as_deref(), p.table.as_str()), (Some("pos"), "order_header"));
        let m = p.to_mutation().unwrap();
        assert_eq!((m.action, m.mutation_id.as_deref()), (Action::Update, Some("m1")));
    }

    #[test]
    fn tells_each_kind_of_bad_frame_apart() {
        assert_eq!(ClientFrame::parse("{nope").unwrap_err().code(), "malformed-frame");
        assert_eq!(ClientFrame::parse("[1]").unwrap_err().code(), "malformed-frame");
        assert_eq!(ClientFrame::parse("{}").unwrap_err().code(), "missing-type");
        assert_eq!(ClientFrame::parse(r#"{"type":"client:dance"}"#).unwrap_err().code(), "unknown-frame-type");
        assert_eq!(
            ClientFrame::parse(r#"{"type":"client:publish","action":"module:insert"}"#).unwrap_err().code(),
            "invalid-frame"
        );
        let p = r#"{"type":"client:publish","table":"t","action":"module:fly","record":{}}"#;
        let ClientFrame::Publish(p) = ClientFrame::parse(p).unwrap() else { panic!() };
        assert_eq!(p.to_mutation().unwrap_err().code(), "unknown-action");
        assert_eq!(ClientFrame::request_id_of(r#"{"type":"x","requestId":7}"#), Some(json!(7)));
    }

    #[test]
    fn hello_cursor_is_a_number_or_per_module() {
        let ClientFrame::Hello(h) =
            ClientFrame::parse(r#"{"type":"client:hello","branchId":"dar","cursor":{"pos":12}}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(h.cursor.unwrap().for_module("pos"), Some(12));
    }
}
