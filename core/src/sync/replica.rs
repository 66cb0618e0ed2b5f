//! A local copy of a module's tables: what the browser store keeps, and what tests compare.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ChangeEvent, Delta};
use crate::record::{KeyError, RecordKey, Row};
use crate::schema::Table;

/// Rows per table, and the cursor they reflect.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Replica {
    /// Rows by table, then key.
    pub tables: BTreeMap<String, BTreeMap<RecordKey, Row>>,
    /// The last sequence applied.
    pub cursor: u64,
}

/// A delta or event that does not fit this replica.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaError {
    /// The delta starts after the replica's cursor: changes in between would be missed.
    #[error("delta starts after {from} but the replica is at {cursor}: changes would be missed")]
    Gap {
        /// Delta start.
        from: u64,
        /// Replica cursor.
        cursor: u64,
    },
    /// A snapshot row without its key.
    #[error(transparent)]
    MissingKey(#[from] KeyError),
}

impl Replica {
    /// An empty replica at cursor 0.
    pub fn new() -> Replica {
        Replica::default()
    }

    /// Applies one committed event. Events at or below the cursor are already reflected and ignored,
    /// so a replay is harmless.
    pub fn apply_event(&mut self, event: &ChangeEvent) {
        if event.sequence <= self.cursor {
            return;
        }
        let change = &event.change;
        let rows = self.tables.entry(change.table.clone()).or_default();
        match &change.row {
            Some(row) => {
                rows.insert(change.key.clone(), row.clone());
            }
            None => {
                rows.remove(&change.key);
            }
        }
        self.cursor = event.sequence;
    }

    /// Applies a delta computed from a cursor at or before ours (overlap is harmless: a delta holds
    /// final states). A delta starting after our cursor would skip changes and is refused.
    pub fn apply_delta(&mut self, delta: &Delta) -> Result<(), ReplicaError> {
        if delta.from > self.cursor {
            return Err(ReplicaError::Gap { from: delta.from, cursor: self.cursor });
        }
        if delta.to <= self.cursor {
            return Ok(());
        }
        for (name, table) in &delta.tables {
            let rows = self.tables.entry(name.clone()).or_default();
            for key in &table.deleted {
                rows.remove(key);
            }
            for (key, row) in &table.rows {
                rows.insert(key.clone(), row.clone());
            }
        }
        self.cursor = delta.to;
        Ok(())
    }

    /// Replaces one table's rows from a snapshot.
    pub fn load_table(&mut self, table: &Table, rows: &[Row]) -> Result<(), ReplicaError> {
        let mut keyed = BTreeMap::new();
        for row in rows {
            keyed.insert(RecordKey::of(table, row)?, row.clone());
        }
        self.tables.insert(table.name.clone(), keyed);
        Ok(())
    }

    /// Rows of a table, in key order.
    pub fn rows(&self, table: &str) -> impl Iterator<Item = &Row> {
        self.tables.get(table).into_iter().flat_map(|t| t.values())
    }

    /// One row.
    pub fn get(&self, table: &str, key: &RecordKey) -> Option<&Row> {
        self.tables.get(table)?.get(key)
    }

    /// Drops empty tables, so replicas compare by content.
    pub fn normalized(mut self) -> Replica {
        self.tables.retain(|_, rows| !rows.is_empty());
        self
    }
}
