//! [`apply`]: one mutation against the current row.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Action, MutationError, VersionClaim, VersionPolicy};
use crate::record::{fill_missing, validate_values, MissingFields, RecordKey, Row, Strictness, Validated, Values};
use crate::schema::model::{CREATED_AT_FIELD, UPDATED_AT_FIELD, VERSION_FIELD};
use crate::schema::{DefaultValue, Schema, Table};
use crate::time::Timestamp;

/// A write as a client asked for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mutation {
    /// Target table.
    pub table: String,
    /// What to do.
    pub action: Action,
    /// The record (full for insert, a patch for update/merge, the key at least for delete).
    pub record: Row,
    /// The version the client last saw (explicit form). When present, the record's `version`
    /// property is ignored: one request is never read both ways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
    /// Identifies the mutation across retries, so a replay is recognized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutation_id: Option<String>,
}

impl Mutation {
    /// A mutation of `record` (a JSON object; anything else becomes an empty record).
    pub fn new(table: &str, action: Action, record: Value) -> Mutation {
        let record = match record {
            Value::Object(map) => map,
            _ => Row::new(),
        };
        Mutation { table: table.to_owned(), action, record, expected_version: None, mutation_id: None }
    }

    /// Sets `expectedVersion`.
    pub fn expecting(mut self, version: i64) -> Mutation {
        self.expected_version = Some(version);
        self
    }

    /// Sets the mutation id.
    pub fn with_id(mut self, id: impl Into<String>) -> Mutation {
        self.mutation_id = Some(id.into());
        self
    }

    /// How this request states its version.
    pub fn version_claim(&self) -> VersionClaim {
        if let Some(seen) = self.expected_version {
            return VersionClaim::Expected(seen);
        }
        match self.record.get(VERSION_FIELD).and_then(version_number) {
            Some(v) => VersionClaim::Legacy(v),
            None => VersionClaim::None,
        }
    }

    /// Resolves the table and the key this mutation targets, so the caller can load the current row.
    pub fn target<'s>(&self, schema: &'s Schema) -> Result<(&'s Table, RecordKey), MutationError> {
        let table = schema.table(&self.table).ok_or_else(|| MutationError::UnknownTable(self.table.clone()))?;
        let key = RecordKey::of(table, &self.record)?;
        Ok((table, key))
    }
}

/// What stays the same across a batch of [`apply`] calls.
#[derive(Debug, Clone, Copy)]
pub struct ApplyContext<'p> {
    /// The time of the write.
    pub now: Timestamp,
    /// Which tables require versions.
    pub policy: &'p VersionPolicy,
    /// Client write or import.
    pub strictness: Strictness,
    /// Whether a client insert that lacks required fields is filled or refused (imports are
    /// stored as they are either way).
    pub missing: MissingFields,
    /// The writer's branch, filled into a missing `branchId`.
    pub branch_id: Option<&'p str>,
    /// Whether a value that breaks its field's type, length or enum refuses the write.
    pub values: Values,
    /// What an insert of a key that exists does.
    pub reinsert: Reinsert,
}

/// What an insert of a key that is already stored does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reinsert {
    /// Refused with `duplicate-key`.
    #[default]
    Refuse,
    /// Laid over the stored row, as the original's clients expect of `module:insert` (its POS
    /// re-inserts the order it just saved): the fields it carries replace the stored ones, the
    /// rest stay, text does not replace a stored list or object (the POS re-sends its `notes` as
    /// text), and the version stays at the larger of the stored and the sent one, so the
    /// client's next `current + 1` still holds.
    Merge,
}

impl<'p> ApplyContext<'p> {
    /// A context for client writes that fills missing fields, with no branch.
    pub fn new(now: Timestamp, policy: &'p VersionPolicy) -> Self {
        ApplyContext {
            now,
            policy,
            strictness: Strictness::Strict,
            missing: MissingFields::Fill,
            branch_id: None,
            values: Values::Strict,
            reinsert: Reinsert::Refuse,
        }
    }

    /// The same, for a writer on `branch`.
    pub fn on_branch(mut self, branch: &'p str) -> Self {
        self.branch_id = Some(branch);
        self
    }
}

/// The effective kind of a change (`save` becomes insert or update).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// A new row.
    Insert,
    /// An existing row changed.
    Update,
    /// A row removed.
    Delete,
}

/// The outcome of a successful mutation: what to store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub table: String,
    /// The row's key.
    pub key: RecordKey,
    /// What happened.
    pub kind: ChangeKind,
    /// The row after the change; `None` for a delete (a tombstone).
    pub row: Option<Row>,
    /// The row's version after the change (a delete bumps it too).
    pub version: i64,
    /// Fields whose values were coerced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coerced: Vec<String>,
    /// Properties the schema does not know (kept in the row).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_fields: Vec<String>,
    /// Values that break their field's type, length or enum, stored as sent ([`Values::Lenient`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerated: Vec<crate::record::FieldError>,
}

/// Applies `mutation` to `current` (the stored row with the mutation's key, if any).
///
/// An insert whose key is missing is refused (`missing-record-key`): the caller fills it first
/// with [`crate::record::fill_key`], because it needs the key to look the stored row up. Other
/// missing fields are filled here when `ctx.missing` says so.
pub fn apply(
    table: &Table,
    current: Option<&Row>,
    mutation: &Mutation,
    ctx: &ApplyContext<'_>,
) -> Result<Change, MutationError> {
    let key = RecordKey::of(table, &mutation.record)?;
    let claim = mutation.version_claim();
    match (mutation.action, current) {
        (Action::Insert | Action::Save, None) => insert(table, key, mutation, ctx),
        (Action::Insert, Some(current)) if ctx.reinsert == Reinsert::Merge => {
            reinsert(table, key, current, mutation, ctx)
        }
        (Action::Insert, Some(_)) => Err(MutationError::DuplicateKey { table: table.name.clone(), key }),
        (Action::Update | Action::Merge | Action::Save, Some(current)) => {
            let current_version = row_version(current);
            ctx.policy.check(&table.name, &key, claim, current_version)?;
            merge(table, key, current, current_version, mutation, ctx)
        }
        (Action::Update | Action::Merge | Action::Delete, None) => {
            Err(MutationError::NotFound { table: table.name.clone(), key })
        }
        (Action::Delete, Some(current)) => {
            let current_version = row_version(current);
            // Deletes were never versioned by old clients; only the explicit form is checked.
            if let VersionClaim::Expected(_) = claim {
                ctx.policy.check(&table.name, &key, claim, current_version)?;
            }
            Ok(Change {
                table: table.name.clone(),
                key,
                kind: ChangeKind::Delete,
                row: None,
                version: current_version + 1,
                coerced: Vec::new(),
                unknown_fields: Vec::new(),
                tolerated: Vec::new(),
            })
        }
    }
}

fn insert(table: &Table, key: RecordKey, mutation: &Mutation, ctx: &ApplyContext<'_>) -> Result<Change, MutationError> {
    let mut row = mutation.record.clone();
    if ctx.strictness == Strictness::Strict && ctx.missing == MissingFields::Fill {
        fill_missing(table, &mut row, ctx.now, ctx.branch_id);
    }
    for field in &table.fields {
        let present = row.get(&field.name).or_else(|| row.get(&field.column)).is_some_and(|v| !v.is_null());
        if present || field.is_system() {
            continue;
        }
        match &field.default {
            Some(DefaultValue::Value(v)) => {
                row.insert(field.name.clone(), v.clone());
            }
            Some(DefaultValue::Now) => {
                row.insert(field.name.clone(), ctx.now.to_iso().into());
            }
            None => {}
        }
    }
    let now = Value::from(ctx.now.to_iso());
    // A provided creation time is kept (imports carry history); the version is always ours.
    let created = row
        .get(CREATED_AT_FIELD)
        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        .cloned()
        .unwrap_or_else(|| now.clone());
    row.insert(VERSION_FIELD.into(), 1.into());
    row.insert(CREATED_AT_FIELD.into(), created);
    row.insert(UPDATED_AT_FIELD.into(), now);
    let lenient = ctx.values == Values::Lenient;
    let Validated { row, coerced, unknown, tolerated } = validate_values(table, row, ctx.strictness, |_| lenient)?;
    Ok(Change {
        table: table.name.clone(),
        key,
        kind: ChangeKind::Insert,
        row: Some(row),
        version: 1,
        coerced,
        unknown_fields: unknown,
        tolerated: tolerated.into_iter().filter(|e| e.rule != "required").collect(),
    })
}

fn merge(
    table: &Table,
    key: RecordKey,
    current: &Row,
    current_version: i64,
    mutation: &Mutation,
    ctx: &ApplyContext<'_>,
) -> Result<Change, MutationError> {
    let mut row = current.clone();
    for (name, value) in &mutation.record {
        if matches!(name.as_str(), VERSION_FIELD | CREATED_AT_FIELD | UPDATED_AT_FIELD) {
            continue;
        }
        // Write under the property name the stored row already uses for this field, so a patch
        // spelled `category_id` does not duplicate a stored `categoryId`.
        let target = table
            .field(name)
            .and_then(|f| [&f.name, &f.column].into_iter().find(|n| current.contains_key(n.as_str())))
            .unwrap_or(name);
        row.insert(target.clone(), value.clone());
    }
    let version = current_version + 1;
    row.insert(VERSION_FIELD.into(), version.into());
    row.insert(UPDATED_AT_FIELD.into(), ctx.now.to_iso().into());
    // Stored rows may predate a required field (imported seeds); only what this patch sets is held
    // to `required`.
    // Stored values were accepted when they were written; only what this patch sets is held to
    // the field's type, length and enum (and, in strict mode, refused when it breaks them).
    let lenient = ctx.values == Values::Lenient;
    let validated = validate_values(table, row, Strictness::Import, |f| {
        lenient || !patch_touches(table, &mutation.record, &f.name)
    })?;
    let (newly_missing, tolerated): (Vec<_>, Vec<_>) =
        validated.tolerated.into_iter().partition(|e| e.rule == "required");
    let tolerated = tolerated.into_iter().filter(|e| patch_touches(table, &mutation.record, &e.field)).collect();
    let newly_missing: Vec<_> = newly_missing
        .into_iter()
        .filter(|e| ctx.strictness == Strictness::Strict && patch_touches(table, &mutation.record, &e.field))
        .collect();
    if !newly_missing.is_empty() {
        return Err(crate::record::ValidationErrors { table: table.name.clone(), errors: newly_missing }.into());
    }
    Ok(Change {
        table: table.name.clone(),
        key,
        kind: ChangeKind::Update,
        row: Some(validated.row),
        version,
        coerced: validated.coerced,
        unknown_fields: validated.unknown,
        tolerated,
    })
}

fn reinsert(
    table: &Table,
    key: RecordKey,
    current: &Row,
    mutation: &Mutation,
    ctx: &ApplyContext<'_>,
) -> Result<Change, MutationError> {
    let stored = |name: &str| {
        table.field(name).map_or_else(|| current.get(name), |f| current.get(&f.name).or_else(|| current.get(&f.column)))
    };
    let mut patch = mutation.clone();
    patch
        .record
        .retain(|name, value| !(value.is_string() && stored(name).is_some_and(|s| s.is_array() || s.is_object())));
    let current_version = row_version(current);
    let mut change = merge(table, key, current, current_version, &patch, ctx)?;
    let sent = mutation.record.get(VERSION_FIELD).and_then(version_number).unwrap_or(0);
    change.version = current_version.max(sent);
    if let Some(row) = change.row.as_mut() {
        row.insert(VERSION_FIELD.into(), change.version.into());
    }
    Ok(change)
}

fn patch_touches(table: &Table, patch: &Row, field: &str) -> bool {
    table.field(field).is_some_and(|f| patch.contains_key(&f.name) || patch.contains_key(&f.column))
}

/// The version stored in a row (rows from before versioning count as 1).
pub fn row_version(row: &Row) -> i64 {
    row.get(VERSION_FIELD).and_then(version_number).unwrap_or(1)
}

fn version_number(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutation::{Conflict, ConflictReason};
    use serde_json::json;

    fn schema() -> Schema {
        Schema::from_json(&json!({"tables": {
            "order_header": {"fields": {"id": {"type": "text", "primaryKey": true},
                                        "total": {"type": "decimal", "nullable": false},
                                        "status": {"type": "text", "defaultValue": "open"}}},
            "dining_tables": {"fields": {"id": {"type": "text", "primaryKey": true},
                                         "state": {"type": "text"}}}
        }}))
        .unwrap()
    }

    fn run(table: &str, current: Option<&Row>, m: Mutation) -> Result<Change, MutationError> {
        let schema = schema();
        let policy = VersionPolicy::default();
        apply(schema.table(table).unwrap(), current, &m, &ApplyContext::new(Timestamp(1_000), &policy))
    }

    fn stored(version: i64) -> Row {
        json!({"id": "o1", "total": 10, "status": "open", "version": version}).as_object().unwrap().clone()
    }

    #[test]
    fn insert_sets_version_one_defaults_and_times() {
        let c = run(
            "order_header",
            None,
            Mutation::new("order_header", Action::Insert, json!({"id": "o1", "total": "5", "version": 9})),
        )
        .unwrap();
        let row = c.row.unwrap();
        assert_eq!((c.kind, c.version), (ChangeKind::Insert, 1));
        assert_eq!(row["version"], json!(1));
        assert_eq!(row["total"], json!(5.0));
        assert_eq!(row["status"], json!("open"));
        assert_eq!(row["createdAt"], json!("1970-01-01T00:00:01.000Z"));
    }

    #[test]
    fn legacy_version_names_the_version_to_produce() {
        let ok = run(
            "order_header",
            Some(&stored(3)),
            Mutation::new("order_header", Action::Merge, json!({"id": "o1", "version": 4})),
        );
        assert_eq!(ok.unwrap().version, 4);
        let stale = run(
            "order_header",
            Some(&stored(3)),
            Mutation::new("order_header", Action::Merge, json!({"id": "o1", "version": 3})),
        );
        assert!(matches!(
            stale,
            Err(MutationError::Conflict(Conflict { reason: ConflictReason::StaleVersion, current_version: 3, .. }))
        ));
        // The original's special case: 1 is accepted while the row is at 1.
        let special = run(
            "order_header",
            Some(&stored(1)),
            Mutation::new("order_header", Action::Merge, json!({"id": "o1", "version": 1})),
        );
        assert_eq!(special.unwrap().version, 2);
    }

    #[test]
    fn versioned_tables_refuse_a_missing_version() {
        let r = run(
            "order_header",
            Some(&stored(2)),
            Mutation::new("order_header", Action::Update, json!({"id": "o1", "total": 3})),
        );
        assert_eq!(r.unwrap_err().code(), "version-conflict");
    }

    #[test]
    fn other_tables_are_last_writer_wins_unless_expected_version_given() {
        let current = json!({"id": "T1", "state": "active", "version": 5}).as_object().unwrap().clone();
        let lww = run(
            "dining_tables",
            Some(&current),
            Mutation::new("dining_tables", Action::Merge, json!({"id": "T1", "state": "x", "version": 1})),
        );
        assert_eq!(lww.unwrap().version, 6);
        let stale = run(
            "dining_tables",
            Some(&current),
            Mutation::new("dining_tables", Action::Merge, json!({"id": "T1"})).expecting(4),
        );
        assert_eq!(stale.unwrap_err().code(), "version-conflict");
    }

    #[test]
    fn expected_version_is_the_only_reading_when_present() {
        // `version: 3` would be stale under the legacy reading; with expectedVersion 3 it is ignored.
        let r = run(
            "order_header",
            Some(&stored(3)),
            Mutation::new("order_header", Action::Merge, json!({"id": "o1", "version": 3})).expecting(3),
        );
        assert_eq!(r.unwrap().version, 4);
    }

    #[test]
    fn save_with_version_one_never_replaces_a_newer_row() {
        let r = run(
            "order_header",
            Some(&stored(5)),
            Mutation::new("order_header", Action::Save, json!({"id": "o1", "total": 0, "version": 1})),
        );
        assert_eq!(r.unwrap_err().code(), "version-conflict");
        let inserted =
            run("order_header", None, Mutation::new("order_header", Action::Save, json!({"id": "o2", "total": 1})))
                .unwrap();
        assert_eq!(inserted.kind, ChangeKind::Insert);
    }

    #[test]
    fn a_partial_insert_is_filled_or_refused_as_the_operator_chose() {
        let schema = schema();
        let policy = VersionPolicy::default();
        let table = schema.table("order_header").unwrap();
        let partial = Mutation::new("order_header", Action::Insert, json!({"id": "o9"}));
        let fill = ApplyContext::new(Timestamp(1_000), &policy);
        let row = apply(table, None, &partial, &fill).unwrap().row.unwrap();
        assert_eq!((row["total"].clone(), row["status"].clone()), (json!(0), json!("open")));
        let refuse = ApplyContext { missing: MissingFields::Refuse, ..fill };
        let err = apply(table, None, &partial, &refuse).unwrap_err();
        assert_eq!(err.code(), "validation-failed");
        let typed = Mutation::new("order_header", Action::Insert, json!({"id": "o9", "total": "lots"}));
        assert_eq!(apply(table, None, &typed, &fill).unwrap_err().code(), "validation-failed", "types still count");
    }

    #[test]
    fn merge_and_delete_of_missing_rows_are_not_found() {
        for action in [Action::Merge, Action::Update, Action::Delete] {
            let r = run("dining_tables", None, Mutation::new("dining_tables", action, json!({"id": "nope"})));
            assert_eq!(r.unwrap_err().code(), "not-found");
        }
    }

    #[test]
    fn insert_of_existing_key_and_missing_key_are_refused() {
        let dup = run(
            "order_header",
            Some(&stored(1)),
            Mutation::new("order_header", Action::Insert, json!({"id": "o1", "total": 1})),
        );
        assert_eq!(dup.unwrap_err().code(), "duplicate-key");
        let nokey = run("order_header", None, Mutation::new("order_header", Action::Insert, json!({"total": 1})));
        assert_eq!(nokey.unwrap_err().code(), "missing-record-key");
    }

    #[test]
    fn merge_refuses_nulling_a_required_field_but_not_old_gaps() {
        let gap = json!({"id": "o1", "version": 1}).as_object().unwrap().clone();
        let ok = run(
            "order_header",
            Some(&gap),
            Mutation::new("order_header", Action::Merge, json!({"id": "o1", "status": "paid", "version": 2})),
        );
        assert!(ok.is_ok());
        let bad = run(
            "order_header",
            Some(&stored(1)),
            Mutation::new("order_header", Action::Merge, json!({"id": "o1", "total": null, "version": 2})),
        );
        assert_eq!(bad.unwrap_err().code(), "validation-failed");
    }

    #[test]
    fn delete_yields_a_tombstone_one_version_up() {
        let c =
            run("dining_tables", Some(&stored(2)), Mutation::new("dining_tables", Action::Delete, json!({"id": "o1"})))
                .unwrap();
        assert_eq!((c.kind, c.row, c.version), (ChangeKind::Delete, None, 3));
    }
}
