//! A transaction as a client sends it ([`crate::wire::TransactionRequest`]), checked against the
//! schema: the writes to commit together, and the reads they assume still hold when the writer
//! takes them. What the reads are checked against (a stored row, as the caller may see it) is the
//! caller's to give: this module decides only whether a read holds.

use serde_json::{json, Value};

use crate::record::KeyError;
use crate::wire::{TransactionRead, TransactionRequest};
use crate::{Action, Mutation, RecordKey, Row, Schema, Table};

/// Most reads and writes one transaction may name, in all.
pub const MAX_ITEMS: usize = 500;

/// A transaction ready for the writer.
#[derive(Debug, Clone)]
pub struct Transaction {
    pub writes: Vec<Mutation>,
    pub reads: Vec<Expectation>,
}

/// A read the transaction assumes: row `key` of `table` at `version`, or (`None`) no such row.
#[derive(Debug, Clone)]
pub struct Expectation {
    /// Its place among the transaction's reads.
    pub index: usize,
    pub table: Table,
    pub key: RecordKey,
    pub version: Option<i64>,
}

/// Why a transaction was refused before it reached the writer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransactionError {
    #[error("a transaction has 1 to {MAX_ITEMS} writes and reads in all")]
    Size,
    #[error("write #{index}: unknown action `{action}`")]
    UnknownAction { index: usize, action: String },
    #[error("write #{index}: `record` must be an object")]
    NotAnObject { index: usize },
    #[error("read #{index}: unknown table `{table}`")]
    UnknownTable { index: usize, table: String },
    #[error("read #{index}: `{table}` has a composite key: `id` must be an object")]
    CompositeKey { index: usize, table: String },
    #[error("read #{index}: {error}")]
    MissingKey { index: usize, error: KeyError },
    #[error("read #{index}: give the `version` read, or `exists: false`")]
    NoVersion { index: usize },
}

impl TransactionError {
    /// `invalid-transaction`, `unknown-action`, `table-not-found`, `missing-record-key`.
    pub fn code(&self) -> &'static str {
        match self {
            TransactionError::UnknownAction { .. } => "unknown-action",
            TransactionError::UnknownTable { .. } => "table-not-found",
            TransactionError::MissingKey { .. } => "missing-record-key",
            TransactionError::Size
            | TransactionError::NotAnObject { .. }
            | TransactionError::CompositeKey { .. }
            | TransactionError::NoVersion { .. } => "invalid-transaction",
        }
    }
}

/// A read that no longer holds.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("read #{index} of `{table}` `{id}` no longer holds")]
pub struct PreconditionFailed {
    pub index: usize,
    pub table: String,
    pub id: String,
    /// The version the read named (`None`: no such row).
    pub expected: Option<i64>,
    /// What is stored: `None` no row (or none the caller may see), else its version.
    pub actual: Option<Option<i64>>,
}

impl PreconditionFailed {
    /// `precondition-failed`.
    pub fn code(&self) -> &'static str {
        "precondition-failed"
    }

    /// `{index, table, id, expected, actual}`, each of the last two `{version}` or `{exists: false}`.
    pub fn details(&self) -> Value {
        let shape = |v: Option<Option<i64>>| match v {
            None => json!({"exists": false}),
            Some(v) => json!({"version": v}),
        };
        json!({"index": self.index, "table": self.table, "id": self.id,
               "expected": shape(self.expected.map(Some)), "actual": shape(self.actual)})
    }
}

impl Transaction {
    /// Checks `request` against `schema` (its records move into the writes). Its writes' mutation ids are `<mutationId>/<index>` when
    /// the request names one, so a retried transaction is recognised write by write.
    pub fn of(request: TransactionRequest, schema: &Schema) -> Result<Transaction, TransactionError> {
        if request.writes.is_empty() || request.reads.len() + request.writes.len() > MAX_ITEMS {
            return Err(TransactionError::Size);
        }
        let mut writes = Vec::with_capacity(request.writes.len());
        for (index, w) in request.writes.into_iter().enumerate() {
            let action = Action::from_wire(&w.action)
                .ok_or_else(|| TransactionError::UnknownAction { index, action: w.action.clone() })?;
            if !w.record.is_object() {
                return Err(TransactionError::NotAnObject { index });
            }
            let mut m = Mutation::new(&w.table, action, w.record);
            m.expected_version = w.expected_version;
            m.mutation_id = request.mutation_id.as_ref().map(|id| write_mutation_id(id, index));
            writes.push(m);
        }
        let reads = request.reads.iter().enumerate().map(|(index, read)| Expectation::of(schema, index, read));
        Ok(Transaction { writes, reads: reads.collect::<Result<_, _>>()? })
    }

    /// The mutation id of the first write, when the transaction has one: if it was committed,
    /// the transaction was, and a retry is answered with what it wrote, not its reads checked again.
    pub fn first_mutation_id(&self) -> Option<&str> {
        self.writes.first()?.mutation_id.as_deref()
    }
}

/// The mutation id of write `index` of the transaction `id`.
pub fn write_mutation_id(id: &str, index: usize) -> String {
    format!("{id}/{index}")
}

impl Expectation {
    fn of(schema: &Schema, index: usize, read: &TransactionRead) -> Result<Expectation, TransactionError> {
        let table = schema
            .resolve_table(&read.table)
            .ok_or_else(|| TransactionError::UnknownTable { index, table: read.table.clone() })?;
        let record: Row = match &read.id {
            Value::Object(fields) => fields.clone(),
            single => match table.key_fields().as_slice() {
                [field] => Row::from_iter([((*field).to_owned(), single.clone())]),
                _ => return Err(TransactionError::CompositeKey { index, table: table.name.clone() }),
            },
        };
        let key = RecordKey::of(table, &record).map_err(|error| TransactionError::MissingKey { index, error })?;
        let version = match (read.exists, read.version) {
            (Some(false), None) => None,
            (_, Some(v)) => Some(v),
            _ => return Err(TransactionError::NoVersion { index }),
        };
        Ok(Expectation { index, table: table.clone(), key, version })
    }

    /// Whether the read holds of `stored` (the row as the caller may see it; `None`: absent or
    /// hidden from it).
    pub fn check(&self, stored: Option<&Row>) -> Result<(), PreconditionFailed> {
        let actual = stored.map(|r| r.get("version").and_then(Value::as_i64));
        let holds = match (self.version, actual) {
            (None, None) => true,
            (Some(v), Some(found)) => found == Some(v),
            _ => false,
        };
        if holds {
            return Ok(());
        }
        Err(PreconditionFailed {
            index: self.index,
            table: self.table.name.clone(),
            id: self.key.0.clone(),
            expected: self.version,
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::TransactionWrite;

    fn schema() -> Schema {
        Schema::from_json(&json!({"tables": [
            {"name": "order_header", "fields": [{"name": "id", "type": "text", "primaryKey": true}]},
            {"name": "line", "fields": [
                {"name": "order_id", "type": "text", "primaryKey": true},
                {"name": "n", "type": "integer", "primaryKey": true}]}
        ]}))
        .unwrap()
    }

    fn request(reads: Value, writes: Value) -> TransactionRequest {
        serde_json::from_value(json!({"mutationId": "tx1", "reads": reads, "writes": writes})).unwrap()
    }

    #[test]
    fn writes_are_numbered_under_the_transactions_mutation_id() {
        let writes = json!([{"action": "insert", "table": "order_header", "record": {"id": "o1"}},
                            {"action": "module:merge", "table": "line", "record": {"order_id": "o1", "n": 1},
                             "expectedVersion": 3}]);
        let t = Transaction::of(request(json!([]), writes), &schema()).unwrap();
        let ids: Vec<_> = t.writes.iter().map(|w| w.mutation_id.as_deref().unwrap()).collect();
        assert_eq!(ids, ["tx1/0", "tx1/1"]);
        assert_eq!((t.writes[1].action, t.writes[1].expected_version), (Action::Merge, Some(3)));
        assert_eq!(t.first_mutation_id(), Some("tx1/0"));
    }

    #[test]
    fn a_malformed_item_is_refused_with_its_index() {
        let insert = json!({"action": "insert", "table": "order_header", "record": {"id": "o1"}});
        let refused = |reads: Value, writes: Value| Transaction::of(request(reads, writes), &schema()).unwrap_err();
        assert_eq!(refused(json!([]), json!([])), TransactionError::Size);
        let many: Vec<Value> = (0..=MAX_ITEMS).map(|_| insert.clone()).collect();
        assert_eq!(refused(json!([]), Value::Array(many)), TransactionError::Size);
        let fly = json!([insert, {"action": "fly", "table": "t", "record": {}}]);
        assert_eq!(refused(json!([]), fly).code(), "unknown-action");
        assert_eq!(
            refused(json!([]), json!([{"action": "insert", "table": "t", "record": 1}])),
            TransactionError::NotAnObject { index: 0 }
        );
        let w = json!([insert]);
        assert_eq!(refused(json!([{"table": "nope", "id": "x", "version": 1}]), w.clone()).code(), "table-not-found");
        assert_eq!(
            refused(json!([{"table": "line", "id": "o1", "version": 1}]), w.clone()),
            TransactionError::CompositeKey { index: 0, table: "line".into() }
        );
        assert_eq!(
            refused(json!([{"table": "line", "id": {"order_id": "o1"}, "version": 1}]), w.clone()).code(),
            "missing-record-key"
        );
        assert_eq!(
            refused(json!([{"table": "order_header", "id": "o1"}]), w),
            TransactionError::NoVersion { index: 0 }
        );
    }

    #[test]
    fn a_read_holds_only_of_the_version_it_names_or_of_no_row() {
        let reads = json!([{"table": "order_header", "id": "o1", "version": 2},
                           {"table": "line", "id": {"order_id": "o1", "n": 1}, "exists": false}]);
        let writes = vec![TransactionWrite {
            action: "insert".into(),
            table: "order_header".into(),
            record: json!({"id": "o2"}),
            expected_version: None,
        }];
        let mut req = request(reads, json!([]));
        req.writes = writes;
        let t = Transaction::of(req, &schema()).unwrap();
        let row = |v: i64| json!({"id": "o1", "version": v}).as_object().unwrap().clone();
        assert_eq!(t.reads[0].check(Some(&row(2))), Ok(()));
        let failed = t.reads[0].check(Some(&row(3))).unwrap_err();
        assert_eq!(
            failed.details(),
            json!({"index": 0, "table": "order_header", "id": "o1",
                   "expected": {"version": 2}, "actual": {"version": 3}})
        );
        assert_eq!(t.reads[0].check(None).unwrap_err().actual, None);
        assert_eq!(t.reads[1].check(None), Ok(()));
        assert_eq!(t.reads[1].check(Some(&row(1))).unwrap_err().details()["actual"], json!({"version": 1}));
        assert_eq!(t.reads[1].key.0, r#"["o1",1]"#);
    }
}
