//! A shipped piece of a module's log: consecutive events as the log keeps them (what a restore
//! replays), with the module's sequence counters as of its last event, gzipped JSON at
//! `log/<branch>/<module>/<first>-<last>.json.gz` (sequences zero-padded, so keys sort by them).

use std::io::{Read, Write};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use mishkah_core::sync::ChangeEvent;
use mishkah_core::Row;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::storage::{Before, LoggedEvent, LoggedMutation, StorageError};

const VERSION: u32 = 1;

/// A shipped segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    pub version: u32,
    pub branch: String,
    pub module: String,
    pub first: u64,
    pub last: u64,
    /// Every sequence counter as of `last` (invoice numbers): a restore ends with these, so a
    /// number given before is never given again.
    pub counters: Vec<(String, i64)>,
    pub events: Vec<Shipped>,
}

/// One event as the log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shipped {
    pub event: ChangeEvent,
    pub before: ShippedBefore,
    pub source: String,
    #[serde(default)]
    pub meta: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_as_sent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutation: Option<ShippedMutation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ShippedBefore {
    Absent,
    Row(Row),
    NotKept,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShippedMutation {
    pub stored: String,
    /// Base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl From<LoggedEvent> for Shipped {
    fn from(l: LoggedEvent) -> Shipped {
        Shipped {
            event: l.event,
            before: match l.before {
                Before::Absent => ShippedBefore::Absent,
                Before::Row(row) => ShippedBefore::Row(row),
                Before::NotKept => ShippedBefore::NotKept,
            },
            source: l.source,
            meta: l.meta,
            actor: l.actor,
            table_as_sent: l.table_as_sent,
            mutation: l
                .mutation
                .map(|m| ShippedMutation { stored: m.stored, digest: m.digest.map(|d| BASE64.encode(d)) }),
        }
    }
}

impl TryFrom<Shipped> for LoggedEvent {
    type Error = StorageError;

    fn try_from(s: Shipped) -> Result<LoggedEvent, StorageError> {
        let mutation = match s.mutation {
            None => None,
            Some(m) => {
                let digest = m.digest.as_deref().map(|text| {
                    BASE64.decode(text).map_err(|e| StorageError::Corrupt(format!("a shipped mutation digest: {e}")))
                });
                Some(LoggedMutation { digest: digest.transpose()?, stored: m.stored })
            }
        };
        Ok(LoggedEvent {
            event: s.event,
            before: match s.before {
                ShippedBefore::Absent => Before::Absent,
                ShippedBefore::Row(row) => Before::Row(row),
                ShippedBefore::NotKept => Before::NotKept,
            },
            source: s.source,
            meta: s.meta,
            actor: s.actor,
            table_as_sent: s.table_as_sent,
            mutation,
        })
    }
}

impl Segment {
    /// A segment of `events` (consecutive, at least one).
    pub fn new(branch: &str, module: &str, events: Vec<LoggedEvent>, counters: Vec<(String, i64)>) -> Option<Segment> {
        let first = events.first()?.event.sequence;
        let last = events.last()?.event.sequence;
        Some(Segment {
            version: VERSION,
            branch: branch.to_owned(),
            module: module.to_owned(),
            first,
            last,
            counters,
            events: events.into_iter().map(Shipped::from).collect(),
        })
    }

    pub fn key(&self) -> String {
        format!("{}/{:020}-{:020}.json.gz", folder(&self.branch, &self.module), self.first, self.last)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let json = serde_json::to_vec(self).expect("a segment serializes");
        gz.write_all(&json).expect("writing to memory");
        gz.finish().expect("writing to memory")
    }

    pub fn decode(bytes: &[u8]) -> Result<Segment, StorageError> {
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut json)
            .map_err(|e| StorageError::Corrupt(format!("a shipped log segment is not gzip: {e}")))?;
        let segment: Segment = serde_json::from_slice(&json)
            .map_err(|e| StorageError::Corrupt(format!("a shipped log segment does not parse: {e}")))?;
        if segment.version != VERSION {
            return Err(StorageError::Corrupt(format!("a shipped log segment of version {}", segment.version)));
        }
        Ok(segment)
    }
}

/// Where a module's segments are.
pub fn folder(branch: &str, module: &str) -> String {
    format!("log/{branch}/{module}")
}

/// The first and last sequence a segment's key names.
pub fn span_of(key: &str) -> Option<(u64, u64)> {
    let name = key.rsplit('/').next()?.strip_suffix(".json.gz")?;
    let (first, last) = name.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mishkah_core::{Change, ChangeKind, RecordKey};

    fn logged(sequence: u64, before: Before, digest: Option<Vec<u8>>) -> LoggedEvent {
        let row: Row = serde_json::from_value(serde_json::json!({"id": "a", "n": sequence})).unwrap();
        LoggedEvent {
            event: ChangeEvent {
                sequence,
                event_id: format!("evt-{sequence}"),
                mutation_id: Some("m".into()),
                created_at: "2026-12-06T07:00:00.000Z".into(),
                transaction_id: Some("txn-1".into()),
                change: Change {
                    table: "t".into(),
                    key: RecordKey("a".into()),
                    kind: ChangeKind::Update,
                    row: Some(row),
                    version: 2,
                    coerced: Vec::new(),
                    unknown_fields: Vec::new(),
                    tolerated: Vec::new(),
                },
            },
            before,
            source: "ws".into(),
            meta: serde_json::json!({"x": 1}),
            actor: Some("cashier".into()),
            table_as_sent: Some("T".into()),
            mutation: Some(LoggedMutation { stored: "scope\u{1f}m".into(), digest }),
        }
    }

    #[test]
    fn a_segment_carries_every_event_as_logged_through_its_encoding() {
        let row: Row = serde_json::from_value(serde_json::json!({"id": "a", "n": 0})).unwrap();
        let events = vec![
            logged(7, Before::Row(row), Some(vec![0, 15, 255])),
            logged(8, Before::Absent, None),
            logged(9, Before::NotKept, Some(Vec::new())),
        ];
        let segment = Segment::new("b1", "pos", events.clone(), vec![("inv".into(), 41)]).unwrap();
        assert_eq!(span_of(&segment.key()), Some((7, 9)));
        assert!(segment.key().starts_with("log/b1/pos/00000000000000000007-"));
        let back = Segment::decode(&segment.encode()).unwrap();
        assert_eq!(back, segment);
        for (shipped, original) in back.events.into_iter().zip(events) {
            let restored = LoggedEvent::try_from(shipped).unwrap();
            assert_eq!(format!("{restored:?}"), format!("{original:?}"));
        }
    }

    #[test]
    fn damaged_segments_are_refused() {
        assert!(Segment::decode(b"not gzip").is_err());
        assert_eq!(span_of("log/b/m/notes.txt"), None);
    }
}
