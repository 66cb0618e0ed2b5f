//! An event on its way into the log, and as the log keeps it.

use mishkah_core::sync::ChangeEvent;
use mishkah_core::{Change, Row};
use serde_json::Value;

/// A change about to be logged.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    /// The change (moved into the event: it is not copied per write).
    pub change: Change,
    /// The mutation id and who sent it, for exactly-once replays.
    pub mutation: Option<MutationStamp<'a>>,
    /// `ws`, `rest`, `seed`, `restore`...
    pub source: &'a str,
    /// Client meta.
    pub meta: &'a Value,
    /// Commit time, ISO-8601.
    pub created_at: &'a str,
    /// Who wrote it (`sub`, `key:<name>`, `system`); none when anonymous.
    pub actor: Option<&'a str>,
    /// The row before the change (none for an insert): a reader of the log (another node, a
    /// delta) needs it to tell whether a caller saw the row before the change.
    pub previous: Option<&'a Row>,
    /// The table's name as the writer gave it, when not the schema's (the original's frames carry it).
    pub table_as_sent: Option<&'a str>,
    /// The transaction it is committed in, when one of several changes committed together.
    pub transaction: Option<&'a str>,
}

/// A mutation id as the log keeps it: unique per sender, with what the write was.
#[derive(Debug, Clone, Copy)]
pub struct MutationStamp<'a> {
    /// Who sent it (an identity, a client, an address): ids are unique only within a scope.
    pub scope: &'a str,
    /// The id as sent.
    pub id: &'a str,
    /// A digest of the write as sent, so a replay can be told from another write under the same id.
    pub digest: &'a [u8],
}

/// A mutation id already committed: its event, and the digest of the write it came from (none
/// for events logged before digests were kept).
#[derive(Debug, Clone)]
pub struct Replay {
    pub event: ChangeEvent,
    pub digest: Option<Vec<u8>>,
}

/// An event as the log keeps it: what a reader that did not commit it needs (another node, a
/// delta, a restore), without the writer's memory.
#[derive(Debug, Clone)]
pub struct LoggedEvent {
    pub event: ChangeEvent,
    pub before: Before,
    /// `ws`, `rest`, `seed`...
    pub source: String,
    /// The writer's meta (`null` when none).
    pub meta: Value,
    /// Who wrote it; none when anonymous.
    pub actor: Option<String>,
    /// The table's name as the writer gave it, when not the schema's.
    pub table_as_sent: Option<String>,
    /// The mutation id as the log keys it (scoped to its sender), with the digest of its write.
    pub mutation: Option<LoggedMutation>,
}

/// A mutation id as the log keeps it: what a copy of the log needs to recognise its retries.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedMutation {
    /// The stored, sender-scoped form ([`crate::mutation_key::stored`]).
    pub stored: String,
    pub digest: Option<Vec<u8>>,
}

/// The row before a logged change.
#[derive(Debug, Clone, PartialEq)]
pub enum Before {
    /// An insert: there was none.
    Absent,
    Row(Row),
    /// Logged before the log kept the row before a change: a reader must assume anyone may have
    /// seen it.
    NotKept,
}
