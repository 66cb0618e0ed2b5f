//! A write transaction's events, kept column by column until its commit writes them in one
//! statement.

use std::collections::HashMap;

use mishkah_core::sync::ChangeEvent;
use mishkah_core::{Change, RecordKey};
use mishkah_store::{action_kind, mutation_key, parse_doc, EventRow, StorageError};

/// The events of the transaction, column by column, written in one statement when it commits
/// (one round trip per batch instead of one per event).
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) seq: Vec<i64>,
    pub(crate) event_id: Vec<String>,
    pub(crate) mutation_id: Vec<Option<String>>,
    pub(crate) tbl: Vec<String>,
    pub(crate) action: Vec<&'static str>,
    pub(crate) record_key: Vec<String>,
    pub(crate) version: Vec<i64>,
    pub(crate) row: Vec<Option<String>>,
    pub(crate) created_at: Vec<String>,
    pub(crate) source: Vec<String>,
    pub(crate) meta: Vec<Option<String>>,
    pub(crate) actor: Vec<Option<String>>,
    pub(crate) digest: Vec<Option<Vec<u8>>>,
    pub(crate) prev_row: Vec<Option<String>>,
    pub(crate) sent_table: Vec<Option<String>>,
    pub(crate) txn: Vec<Option<String>>,
    /// Stored mutation id → index: a retry inside the same batch is found before it is written.
    pub(crate) by_mutation: HashMap<String, usize>,
}

impl Pending {
    pub(crate) fn len(&self) -> usize {
        self.seq.len()
    }

    pub(crate) fn truncate(&mut self, n: usize) {
        self.seq.truncate(n);
        self.event_id.truncate(n);
        self.mutation_id.truncate(n);
        self.tbl.truncate(n);
        self.action.truncate(n);
        self.record_key.truncate(n);
        self.version.truncate(n);
        self.row.truncate(n);
        self.created_at.truncate(n);
        self.source.truncate(n);
        self.meta.truncate(n);
        self.actor.truncate(n);
        self.digest.truncate(n);
        self.prev_row.truncate(n);
        self.sent_table.truncate(n);
        self.txn.truncate(n);
        self.by_mutation.retain(|_, i| *i < n);
    }

    pub(crate) fn push(&mut self, e: EventRow) {
        if let Some(stored) = &e.mutation_id {
            self.by_mutation.insert(stored.clone(), self.seq.len());
        }
        self.seq.push(e.sequence as i64);
        self.event_id.push(e.event_id);
        self.mutation_id.push(e.mutation_id);
        self.tbl.push(e.table);
        self.action.push(e.action);
        self.record_key.push(e.key);
        self.version.push(e.version);
        self.row.push(e.row);
        self.created_at.push(e.created_at);
        self.source.push(e.source);
        self.meta.push(e.meta);
        // PostgreSQL's text holds no NUL; who wrote is kept legible rather than refused.
        self.actor.push(e.actor.map(|a| if a.contains('\0') { a.replace('\0', "\u{fffd}") } else { a }));
        self.digest.push(e.digest);
        self.prev_row.push(e.previous);
        self.sent_table.push(e.table_as_sent);
        self.txn.push(e.transaction);
    }

    /// The event at `i` as the log would read it back.
    pub(crate) fn event(&self, i: usize) -> Result<ChangeEvent, StorageError> {
        let kind = action_kind(self.action[i])?;
        Ok(ChangeEvent {
            sequence: self.seq[i] as u64,
            event_id: self.event_id[i].clone(),
            mutation_id: self.mutation_id[i].as_deref().map(|m| mutation_key::shown(m).to_owned()),
            created_at: self.created_at[i].clone(),
            transaction_id: self.txn[i].clone(),
            change: Change {
                table: self.tbl[i].clone(),
                key: RecordKey(self.record_key[i].clone()),
                kind,
                row: self.row[i].as_deref().map(parse_doc).transpose()?,
                version: self.version[i],
                coerced: Vec::new(),
                unknown_fields: Vec::new(),
                tolerated: Vec::new(),
            },
        })
    }
}
