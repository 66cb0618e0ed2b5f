//! Legacy pub/sub sync topics (`sync:<branch>::<module>`, `pos:sync:<branch>`): a `publish` carries a
//! module's whole state for some tables. It is turned into the row changes that make the stored
//! tables equal to it, written atomically through the one write path (so every client sees them as
//! normal events), and deduplicated by its `trans_id`: each derived mutation's id starts with it, and
//! a publish whose `trans_id` already appears in the log is acknowledged without changing anything.

use std::collections::{BTreeMap, HashMap};

use mishkah_core::mutation::row_version;
use mishkah_core::{Action, Mutation, RecordKey, Row, Schema};
use serde_json::Value;

/// `(branch, module)` of a sync topic.
pub fn parse(topic: &str) -> Option<(String, String)> {
    topic
        .strip_prefix("sync:")
        .and_then(|rest| rest.split_once("::"))
        .filter(|(b, m)| !b.is_empty() && !m.is_empty())
        .map(|(b, m)| (b.to_owned(), m.to_owned()))
        .or_else(|| topic.strip_prefix("pos:sync:").filter(|b| !b.is_empty()).map(|b| (b.to_owned(), "pos".to_owned())))
}

/// The publish's dedup id: `trans_id`, `transId` or `mutationId`.
pub fn trans_id(data: &Value) -> Option<String> {
    ["trans_id", "transId", "mutationId"].iter().find_map(|k| data.get(k)).and_then(|v| match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// The tables a publish carries: `data.tables` (or `data.state.tables`), limited to the schema's.
pub fn tables<'d>(schema: &Schema, data: &'d Value) -> Vec<(String, &'d Vec<Value>)> {
    let tables = data.get("tables").or_else(|| data.pointer("/state/tables")).and_then(Value::as_object);
    tables
        .into_iter()
        .flatten()
        .filter(|(name, _)| schema.table(name).is_some())
        .filter_map(|(name, rows)| rows.as_array().map(|r| (name.clone(), r)))
        .collect()
}

fn same_content(a: &Row, b: &Row) -> bool {
    let strip = |r: &Row| -> Row {
        r.iter()
            .filter(|(k, _)| !matches!(k.as_str(), "version" | "createdAt" | "updatedAt"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    strip(a) == strip(b)
}

/// The mutations that make each published table equal to the published rows: saves for new or
/// changed rows, deletes for rows no longer there, each guarded by the version it was planned on.
///
/// Publishers only ever saw what the renderer showed them, so rows are compared on that: a
/// hidden field absent from a published row is not a change (a save would keep it anyway), and
/// a locked table, whose rows no client has seen, is never touched by a publish.
pub fn plan(schema: &Schema, current: &BTreeMap<String, Vec<Row>>, data: &Value, trans: &str) -> Vec<Mutation> {
    let mut out = Vec::new();
    for (name, rows) in tables(schema, data) {
        let Some(table) = schema.table(&name).filter(|t| !t.locked) else { continue };
        let mut existing: HashMap<RecordKey, &Row> = HashMap::new();
        for row in current.get(&name).into_iter().flatten() {
            if let Ok(key) = RecordKey::of(table, row) {
                existing.insert(key, row);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for row in rows.iter().filter_map(Value::as_object) {
            let Ok(key) = RecordKey::of(table, row) else { continue };
            seen.insert(key.clone());
            let id = format!("{trans}:{name}:{key}");
            match existing.get(&key) {
                Some(stored) if crate::render::row(table, stored).is_some_and(|seen| same_content(&seen, row)) => {}
                Some(stored) => {
                    let m =
                        Mutation::new(&name, Action::Save, Value::Object(row.clone())).expecting(row_version(stored));
                    out.push(m.with_id(id));
                }
                None => out.push(Mutation::new(&name, Action::Save, Value::Object(row.clone())).with_id(id)),
            }
        }
        for (key, stored) in existing {
            if !seen.contains(&key) {
                let record = Value::Object(crate::engine::key_record(table, stored));
                let m = Mutation::new(&name, Action::Delete, record).expecting(row_version(stored));
                out.push(m.with_id(format!("{trans}:{name}:{key}:delete")));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn topics_name_a_branch_and_module() {
        assert_eq!(parse("sync:dar::pos"), Some(("dar".into(), "pos".into())));
        assert_eq!(parse("pos:sync:remal"), Some(("remal".into(), "pos".into())));
        assert_eq!(parse("sync:dar"), None);
        assert_eq!(parse("chat"), None);
        assert_eq!(trans_id(&json!({"trans_id": 7})), Some("7".into()));
        assert_eq!(trans_id(&json!({"tables": {}})), None);
    }

    #[test]
    fn a_whole_state_becomes_saves_and_deletes_of_what_differs() {
        let schema = Schema::from_json(&json!({"tables": {"t": {"fields": {"id": {"type": "text", "primaryKey": true}, "v": {"type": "integer"}}}}}))
            .unwrap();
        let rows = |v: Value| v.as_array().unwrap().iter().map(|r| r.as_object().unwrap().clone()).collect::<Vec<_>>();
        let current = BTreeMap::from([(
            "t".to_owned(),
            rows(
                json!([{"id": "a", "v": 1, "version": 3}, {"id": "b", "v": 2, "version": 1}, {"id": "c", "v": 3, "version": 1}]),
            ),
        )]);
        let data = json!({"trans_id": "x", "tables": {"t": [{"id": "a", "v": 1}, {"id": "b", "v": 20}, {"id": "d", "v": 4}], "unknown": []}});
        let plan = plan(&schema, &current, &data, "x");
        let summary: Vec<_> = plan.iter().map(|m| (m.action, m.record["id"].clone(), m.expected_version)).collect();
        assert_eq!(
            summary,
            vec![
                (Action::Save, json!("b"), Some(1)),
                (Action::Save, json!("d"), None),
                (Action::Delete, json!("c"), Some(1))
            ]
        );
        assert!(plan.iter().all(|m| m.mutation_id.as_deref().is_some_and(|id| id.starts_with("x:t:"))));
    }

    #[test]
    fn hidden_fields_are_no_change_and_locked_tables_are_never_touched() {
        let mut schema = Schema::from_json(&json!({"tables": {
            "t": {"fields": {"id": {"type": "text", "primaryKey": true}, "pin": {"type": "text"}}},
            "s": {"fields": {"id": {"type": "text", "primaryKey": true}}}}}))
        .unwrap();
        schema.tables.get_mut("t").unwrap().hidden.push("pin".into());
        schema.tables.get_mut("s").unwrap().locked = true;
        let stored = |v: Value| vec![v.as_object().unwrap().clone()];
        let current = BTreeMap::from([
            ("t".to_owned(), stored(json!({"id": "a", "pin": "1234", "version": 2}))),
            ("s".to_owned(), stored(json!({"id": "session", "version": 1}))),
        ]);
        let data = json!({"trans_id": "y", "tables": {"t": [{"id": "a"}], "s": []}});
        assert_eq!(plan(&schema, &current, &data, "y"), vec![], "what the publisher saw is unchanged");
    }
}
