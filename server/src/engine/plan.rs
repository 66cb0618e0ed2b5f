//! A write that reads before it decides: its plan runs on the module's writer, inside the write
//! transaction, over the committed rows (and what its batch wrote before it); the mutations it
//! returns then go through the one write path together, all or none. Sequence numbers it takes
//! are taken in the same transaction, so an abandoned plan burns none.

use mishkah_core::mutation::MutationError;
use mishkah_core::query::Filter;
use mishkah_core::sequence::{counter_key, SequenceRule, SequenceRules};
use mishkah_core::{Mutation, RecordKey, Row, Schema};

use super::WriteError;
use crate::storage::WriteTxn;

/// A plan: what to write, decided on what is stored.
pub type Planner = Box<dyn FnOnce(&mut PlanReads<'_>) -> Result<Vec<Mutation>, WriteError> + Send>;

/// What a plan may do inside the transaction: read rows, take sequence numbers. Writing is left
/// to the mutations it returns.
pub struct PlanReads<'a> {
    pub(super) txn: &'a mut dyn WriteTxn,
    pub(super) schema: &'a Schema,
    pub(super) rules: &'a SequenceRules,
    pub(super) branch: &'a str,
    pub(super) module: &'a str,
    pub(super) now_iso: &'a str,
}

impl PlanReads<'_> {
    pub fn schema(&self) -> &Schema {
        self.schema
    }

    fn table(&self, name: &str) -> Result<&mishkah_core::Table, WriteError> {
        self.schema.resolve_table(name).ok_or_else(|| MutationError::UnknownTable(name.to_owned()).into())
    }

    /// The stored row of `table` with this (single-field) key.
    pub fn row(&mut self, table: &str, key: &str) -> Result<Option<Row>, WriteError> {
        let table = self.table(table)?.clone();
        Ok(self.txn.row(&table, &RecordKey(key.to_owned()))?)
    }

    /// The stored rows of `table` that `filter` lets through, in insertion order.
    pub fn rows_where(&mut self, table: &str, filter: &Filter) -> Result<Vec<Row>, WriteError> {
        let table = self.table(table)?.clone();
        Ok(self.txn.rows_where(&table, filter)?)
    }

    /// Takes the next number of `table.field`'s sequence rule; `None` when the branch has no rule
    /// for it.
    pub fn allocate(&mut self, table: &str, field: &str) -> Result<Option<(i64, String, SequenceRule)>, WriteError> {
        let Some(rule) = self.rules.rule_for(self.branch, self.module, table, field).cloned() else { return Ok(None) };
        let n = self.txn.next_counter(&counter_key(self.module, table, field), &rule, self.now_iso)?;
        Ok(Some((n, rule.format(n), rule)))
    }
}
