//! Server frames laid over the confirmed state: snapshots, deltas, commits (events and our own
//! acks), transactions, and the live queries' results. Row versions only move forward; a partial
//! store holds only what it held ([`ClientState::partial`]).

use mishkah_core::mutation::row_version;
use mishkah_core::sync::Replica;
use mishkah_core::{RecordKey, Row, Schema};
use serde_json::Value;

use super::{Changed, ClientState};

impl ClientState {
    /// A module snapshot (`server:snapshot` → `modules[m]`): replaces the confirmed state.
    pub fn on_snapshot(&mut self, module: &Value) -> Changed {
        let mut changed = Changed { replaced: true, ..Changed::default() };
        let mut replica = Replica::new();
        replica.cursor = module.get("version").and_then(Value::as_u64).unwrap_or(0);
        let schema = self.schema.clone().unwrap_or_default();
        if let Some(tables) = module.get("tables").and_then(Value::as_object) {
            for (name, rows) in tables {
                let rows: Vec<Row> =
                    rows.as_array().into_iter().flatten().filter_map(|r| r.as_object().cloned()).collect();
                let table = schema.table(name).cloned().unwrap_or_else(|| fallback_table(name));
                let _ = replica.load_table(&table, &rows);
                changed.tables.insert(name.clone());
            }
        }
        changed.tables.extend(self.confirmed.tables.keys().cloned());
        self.confirmed = replica;
        changed
    }

    /// A delta (`server:delta`): rows changed and keys deleted since our cursor.
    pub fn on_delta(&mut self, frame: &Value) -> Changed {
        let mut changed = Changed::default();
        for (name, rows) in frame.get("tables").and_then(Value::as_object).into_iter().flatten() {
            for row in rows.as_array().into_iter().flatten().filter_map(Value::as_object) {
                if let Some(key) = self.key_of(name, row) {
                    let held = self.confirmed.tables.entry(name.clone()).or_default();
                    // A partial store holds what it held; IndexedDB takes the rest.
                    if !self.partial || held.contains_key(&key) {
                        held.insert(key.clone(), row.clone());
                    }
                    changed.persist.push((name.clone(), key, Some(row.clone())));
                }
            }
            changed.tables.insert(name.clone());
        }
        for (name, keys) in frame.get("deleted").and_then(Value::as_object).into_iter().flatten() {
            for key in keys.as_array().into_iter().flatten().filter_map(Value::as_str) {
                let key = RecordKey(key.to_owned());
                if let Some(rows) = self.confirmed.tables.get_mut(name) {
                    rows.remove(&key);
                }
                changed.persist.push((name.clone(), key, None));
            }
            changed.tables.insert(name.clone());
        }
        if let Some(to) = frame.get("to").and_then(Value::as_u64) {
            self.confirmed.cursor = self.confirmed.cursor.max(to);
        }
        changed
    }

    /// A committed change (`server:event`, or the `entry` of our own `server:ack`). Row versions
    /// only move forward, so an older event arriving after a newer ack changes nothing.
    pub fn on_commit(&mut self, frame: &Value) -> Changed {
        let (Some(table), Some(key)) =
            (frame.get("table").and_then(Value::as_str), frame.pointer("/recordRef/key").and_then(Value::as_str))
        else {
            return Changed::default();
        };
        let deleted = frame.get("deleted").and_then(Value::as_bool).unwrap_or(false);
        let version = frame.get("recordVersion").and_then(Value::as_i64).unwrap_or(i64::MAX);
        self.confirm(table, key, deleted, version, frame.pointer("/entry/record").and_then(Value::as_object))
    }

    /// One change of a `server:events` frame (`client:hello {frames: "compact"}`).
    pub fn on_change(&mut self, change: &Value) -> Changed {
        let (Some(table), Some(key)) = (change["table"].as_str(), change["key"].as_str()) else {
            return Changed::default();
        };
        let version = change["version"].as_i64().unwrap_or(i64::MAX);
        self.confirm(table, key, change["op"] == "delete", version, change["row"].as_object())
    }

    /// A committed change of `key`: the row at `version`, or deleted.
    fn confirm(&mut self, table: &str, key: &str, deleted: bool, new_version: i64, row: Option<&Row>) -> Changed {
        let mut changed = Changed::default();
        let key = RecordKey(key.to_owned());
        if self.live.as_ref().is_some_and(|m| !m.holds(table, &key.0)) {
            // Our own write of a row no live query holds: it does not stay on the device.
            return changed;
        }
        let rows = self.confirmed.tables.entry(table.to_owned()).or_default();
        if let Some(current) = rows.get(&key) {
            if row_version(current) > new_version || (!deleted && row_version(current) == new_version) {
                return changed;
            }
        }
        if deleted {
            rows.remove(&key);
            changed.persist.push((table.to_owned(), key, None));
        } else if let Some(row) = row {
            rows.insert(key.clone(), row.clone());
            changed.persist.push((table.to_owned(), key, Some(row.clone())));
        } else {
            return changed;
        }
        changed.tables.insert(table.to_owned());
        changed
    }

    /// `server:transaction`: our transaction committed; its rows as we may see them.
    pub fn on_transaction(&mut self, frame: &Value) -> Changed {
        let mut changed = Changed::default();
        for r in frame["results"].as_array().into_iter().flatten() {
            let (Some(table), Some(key)) = (r["table"].as_str(), r["id"].as_str()) else { continue };
            let version = r["version"].as_i64().unwrap_or(i64::MAX);
            let done = self.confirm(table, key, r["action"] == "delete", version, r["row"].as_object());
            changed.tables.extend(done.tables);
            changed.persist.extend(done.persist);
            changed.tables.insert(table.to_owned());
        }
        changed
    }

    /// `server:subscribed`: a live query's rows (all of them, or on resume what changed).
    pub fn on_subscribed(&mut self, frame: &Value) -> Changed {
        let mut changed = Changed::default();
        let (Some(sub), Some(table)) = (frame["subId"].as_str(), frame["table"].as_str()) else { return changed };
        let rows: Vec<(RecordKey, Row)> = frame["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .filter_map(|r| self.key_of(table, r).map(|k| (k, r.clone())))
            .collect();
        let removed = frame["removed"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned);
        let full = frame["mode"] != "changes";
        let cursor = frame["cursor"].as_u64().unwrap_or(0);
        let Some(m) = self.live.as_mut() else { return changed };
        let keys = rows.iter().map(|(k, _)| k.0.clone()).collect();
        let left = m.on_result(sub, full, keys, removed.collect(), cursor);
        let held = self.confirmed.tables.entry(table.to_owned()).or_default();
        for (key, row) in rows {
            held.insert(key.clone(), row.clone());
            changed.persist.push((table.to_owned(), key, Some(row)));
        }
        for key in left {
            let key = RecordKey(key);
            held.remove(&key);
            changed.persist.push((table.to_owned(), key, None));
        }
        changed.tables.insert(table.to_owned());
        changed
    }

    /// `server:live`: one move of a live query's result.
    pub fn on_live(&mut self, frame: &Value) -> Changed {
        let mut changed = Changed::default();
        let (Some(sub), Some(key)) = (frame["subId"].as_str(), frame["key"].as_str()) else { return changed };
        let Some(m) = self.live.as_mut() else { return changed };
        let Some(table) = m.table_of(sub).map(str::to_owned) else { return changed };
        let remove = frame["op"] == "remove";
        let leaves = m.on_live(sub, remove, key, frame["cursor"].as_u64().unwrap_or(0));
        let key = RecordKey(key.to_owned());
        let held = self.confirmed.tables.entry(table.clone()).or_default();
        if let Some(row) = frame["row"].as_object().filter(|_| !remove) {
            held.insert(key.clone(), row.clone());
            changed.persist.push((table.clone(), key, Some(row.clone())));
        } else if leaves {
            held.remove(&key);
            changed.persist.push((table.clone(), key, None));
        }
        changed.tables.insert(table);
        changed
    }

    /// Ends a live query at `now` (ms): the rows only it held leave (or linger for its TTL).
    pub fn unsubscribe(&mut self, sub_id: &str, now: f64) -> Changed {
        let Some(m) = self.live.as_mut() else { return Changed::default() };
        let table = m.table_of(sub_id).map(str::to_owned).unwrap_or_default();
        let gone = m.remove(sub_id, now).into_iter().map(|k| (table.clone(), k)).collect();
        self.forget(gone)
    }

    /// Drops the lingering rows whose TTL ran out by `now` (ms).
    pub fn expire(&mut self, now: f64) -> Changed {
        let gone = self.live.as_mut().map(|m| m.expire(now)).unwrap_or_default();
        self.forget(gone)
    }

    fn forget(&mut self, gone: Vec<(String, String)>) -> Changed {
        let mut changed = Changed::default();
        for (table, key) in gone {
            let key = RecordKey(key);
            if let Some(rows) = self.confirmed.tables.get_mut(&table) {
                rows.remove(&key);
            }
            changed.persist.push((table.clone(), key, None));
            changed.tables.insert(table);
        }
        changed
    }

    /// Moves the cursor after an event (events come in sequence order on one connection).
    pub fn advance(&mut self, sequence: u64) {
        self.confirmed.cursor = self.confirmed.cursor.max(sequence);
    }

    fn key_of(&self, table: &str, row: &Row) -> Option<RecordKey> {
        let t = self.schema.as_ref().and_then(|s| s.table(table)).cloned().unwrap_or_else(|| fallback_table(table));
        RecordKey::of(&t, row).ok()
    }
}

/// A table the schema does not know, keyed by `id`.
fn fallback_table(name: &str) -> mishkah_core::Table {
    let mut t = Schema::from_json(
        &serde_json::json!({"tables": {"t": {"fields": {"id": {"type": "text", "primaryKey": true}}}}}),
    )
    .expect("a literal schema parses")
    .tables
    .remove("t")
    .expect("the literal has table t");
    t.name = name.to_owned();
    t
}

#[cfg(test)]
mod tests {
    use mishkah_core::Timestamp;
    use serde_json::json;

    #[test]
    fn events_never_move_a_row_backwards_and_deltas_merge() {
        let mut s = super::super::tests::state_with(json!({"note": [{"id": "n1", "body": "v3", "version": 3}]}));
        let old = json!({"type": "server:event", "table": "note", "recordRef": {"key": "n1"}, "recordVersion": 2, "deleted": false,
                         "entry": {"record": {"id": "n1", "body": "v2", "version": 2}}});
        assert!(s.on_commit(&old).tables.is_empty());
        let newer = json!({"type": "server:event", "table": "note", "recordRef": {"key": "n1"}, "recordVersion": 4, "deleted": false,
                           "entry": {"record": {"id": "n1", "body": "v4", "version": 4}}});
        assert_eq!(s.on_commit(&newer).persist.len(), 1);
        let changed = s.on_delta(&json!({"from": 10, "to": 15, "tables": {"note": [{"id": "n9", "version": 1}]}, "deleted": {"note": ["n1"]}}));
        assert_eq!(changed.persist.len(), 2);
        assert_eq!(s.confirmed.cursor, 15);
        let ids: Vec<_> =
            s.view_rows("note", Timestamp(0)).iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(ids, ["n9"]);
    }
}
