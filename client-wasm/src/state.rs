//! The store's state, free of any browser API so it is tested natively: confirmed server state
//! (a core [`Replica`]), the outbox of pending writes, and the view that reads see — confirmed
//! rows with pending writes applied on top, through the same `mishkah_core::apply` the server runs.

use std::collections::{BTreeMap, BTreeSet};

use mishkah_core::mutation::{row_version, ApplyContext};
use mishkah_core::record::fill_key;
use mishkah_core::rules::{Denied, Principal, RuleSet};
use mishkah_core::sync::Replica;
use mishkah_core::wire::TransactionRead;
use mishkah_core::{apply, Action, Mutation, MutationError, RecordKey, Row, Schema, Timestamp, VersionPolicy};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::membership::Membership;

/// A write waiting for the server's acknowledgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    /// Order of the write (also its IndexedDB key): earlier writes replay first.
    pub seq: f64,
    /// Unique id; the server applies a mutation id once, so replays are harmless.
    pub mutation_id: String,
    /// The write.
    pub mutation: Mutation,
    /// Sent on the current connection.
    #[serde(default)]
    pub sent: bool,
    /// The tab that owns (and alone sends) this write.
    #[serde(default)]
    pub tab: String,
    /// A transaction's reads and writes (its first write is also `mutation`): one entry, sent
    /// as one `client:transaction`, committed whole or not at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<PendingTransaction>,
}

/// What a pending transaction read and writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingTransaction {
    pub reads: Vec<TransactionRead>,
    pub writes: Vec<Mutation>,
}

impl Pending {
    /// Its writes, in order.
    pub fn writes(&self) -> &[Mutation] {
        match &self.transaction {
            Some(t) => &t.writes,
            None => std::slice::from_ref(&self.mutation),
        }
    }
}

/// What an incoming frame changed.
#[derive(Debug, Default, PartialEq)]
pub struct Changed {
    /// Tables whose visible rows may differ.
    pub tables: BTreeSet<String>,
    /// Confirmed rows to persist: `(table, key, row or None for a delete)`.
    pub persist: Vec<(String, RecordKey, Option<Row>)>,
    /// The whole confirmed state was replaced (persist everything).
    pub replaced: bool,
}

/// The server's write rules for this store's module and who the store is, as the schema route
/// gave them (`{rules, identity}`): the store refuses what the server would, before a write
/// enters the outbox — offline too.
#[derive(Debug, Clone)]
pub struct Access {
    rules: RuleSet,
    who: Principal,
    module: String,
}

impl Access {
    /// From the schema route's answer; `None` when the server has no rules (or the answer none).
    pub fn from_answer(module: &str, answer: &Value) -> Option<Access> {
        let rules = RuleSet::from_client_form(module, answer.get("rules").filter(|r| r.is_object())?).ok()?;
        let who = match answer.get("identity") {
            Some(claims) if claims.is_object() => Principal::from_claims(claims.clone()),
            _ => Principal::anonymous(),
        };
        Some(Access { rules, who, module: module.to_owned() })
    }
}

/// Why a write was refused before it was queued.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refused {
    /// The core refuses it (validation, conflict, not found...).
    #[error(transparent)]
    Mutation(#[from] MutationError),
    /// The security rules refuse it.
    #[error(transparent)]
    Denied(#[from] Denied),
}

impl Refused {
    /// The core's code, or `forbidden` / `read-only-field`.
    pub fn code(&self) -> &'static str {
        match self {
            Refused::Mutation(e) => e.code(),
            Refused::Denied(e) => e.code(),
        }
    }
}

/// Confirmed state + outbox for one module.
#[derive(Debug, Default)]
pub struct ClientState {
    /// The module schema (from the server, or the cache).
    pub schema: Option<Schema>,
    /// Server state as last confirmed, with its cursor.
    pub confirmed: Replica,
    /// Pending writes in order.
    pub outbox: Vec<Pending>,
    /// The store's branch: filled into a missing `branchId` as the server fills it.
    pub branch: Option<String>,
    /// `{sync: "subscriptions"}`: the rows held are exactly what live queries hold.
    pub live: Option<Membership>,
    /// The write rules, when the server has some.
    pub access: Option<Access>,
    /// IndexedDB holds the module and `confirmed` only a working set of it (a store whose module
    /// is larger than it keeps in memory): a row not held may exist. Rows come in through
    /// [`ClientState::hold`] (a write loads its row first), every confirmed change is held until
    /// it is saved, and [`ClientState::trim`] lets go of what no pending write needs.
    pub partial: bool,
    policy: VersionPolicy,
}

impl ClientState {
    /// A state with a schema and nothing else.
    pub fn new(schema: Option<Schema>) -> ClientState {
        ClientState { schema, ..ClientState::default() }
    }

    /// The schema's table `name`.
    pub fn table_of(&self, name: &str) -> Result<&mishkah_core::Table, MutationError> {
        self.schema.as_ref().and_then(|s| s.table(name)).ok_or_else(|| MutationError::UnknownTable(name.to_owned()))
    }

    /// Applies the outbox to `rows` of `table` (keyed), ignoring writes the view refuses (the
    /// server will say why).
    fn overlay(&self, table: &str, rows: &mut BTreeMap<RecordKey, Row>, now: Timestamp) {
        let Ok(t) = self.table_of(table) else { return };
        let ctx = self.apply_context(now);
        for m in self.outbox.iter().flat_map(Pending::writes).filter(|m| m.table == table) {
            let Ok(key) = RecordKey::of(t, &m.record) else { continue };
            if let Ok(change) = apply(t, rows.get(&key), m, &ctx) {
                match change.row {
                    Some(row) => rows.insert(key, row),
                    None => rows.remove(&key),
                };
            }
        }
    }

    /// The context the server's writer uses too: fill missing fields, this branch.
    fn apply_context(&self, now: Timestamp) -> ApplyContext<'_> {
        let ctx = ApplyContext::new(now, &self.policy);
        match &self.branch {
            Some(branch) => ctx.on_branch(branch),
            None => ctx,
        }
    }

    /// Pending writes laid over `rows` of `table` (the rows they touch must be among them).
    pub fn overlay_view(&self, table: &str, rows: &mut BTreeMap<RecordKey, Row>, now: Timestamp) {
        self.overlay(table, rows, now)
    }

    /// The keys pending writes touch in `table`.
    pub fn pending_keys(&self, table: &str) -> BTreeSet<RecordKey> {
        let Ok(t) = self.table_of(table) else { return BTreeSet::new() };
        let writes = self.outbox.iter().flat_map(Pending::writes).filter(|m| m.table == table);
        writes.filter_map(|m| RecordKey::of(t, &m.record).ok()).collect()
    }

    /// A row read from IndexedDB for a write (`None`: there is none), held unless a newer state of
    /// it is held already.
    pub fn hold(&mut self, table: &str, key: RecordKey, row: Option<Row>) {
        let rows = self.confirmed.tables.entry(table.to_owned()).or_default();
        if let (Some(row), false) = (row, rows.contains_key(&key)) {
            rows.insert(key, row);
        }
    }

    /// Lets go of the held rows no pending write touches and `keep` does not name (a partial
    /// store's working set, once their changes are saved).
    pub fn trim(&mut self, keep: impl Fn(&str, &RecordKey) -> bool) {
        if !self.partial {
            return;
        }
        let pinned: BTreeSet<(String, RecordKey)> = self
            .outbox
            .iter()
            .flat_map(Pending::writes)
            .filter_map(|m| Some((m.table.clone(), RecordKey::of(self.table_of(&m.table).ok()?, &m.record).ok()?)))
            .collect();
        for (table, rows) in &mut self.confirmed.tables {
            rows.retain(|key, _| keep(table, key) || pinned.contains(&(table.clone(), key.clone())));
        }
    }

    /// Rows of a table as reads see them.
    pub fn view_rows(&self, table: &str, now: Timestamp) -> Vec<Row> {
        let mut rows = self.confirmed.tables.get(table).cloned().unwrap_or_default();
        self.overlay(table, &mut rows, now);
        rows.into_values().collect()
    }

    /// One row as reads see it.
    pub fn view_row(&self, table: &str, key: &RecordKey, now: Timestamp) -> Option<Row> {
        let mut rows: BTreeMap<RecordKey, Row> = BTreeMap::new();
        if let Some(row) = self.confirmed.get(table, key) {
            rows.insert(key.clone(), row.clone());
        }
        self.overlay(table, &mut rows, now);
        rows.remove(key)
    }

    /// Checks a write against the current view (the optimistic apply) and queues it. A write the
    /// core refuses here would be refused by the server too: it is not queued.
    ///
    /// An insert without a key gets one here, as the server would give it one: the write's own
    /// id, unique and the same on every replay, so the optimistic row and the stored row match.
    pub fn enqueue(
        &mut self,
        mut mutation: Mutation,
        mutation_id: String,
        seq: f64,
        now: Timestamp,
    ) -> Result<Pending, Refused> {
        let table = self.table_of(&mutation.table)?.clone();
        let sent = mutation.record.clone();
        if matches!(mutation.action, Action::Insert | Action::Save) && RecordKey::of(&table, &mutation.record).is_err()
        {
            fill_key(&table, &mut mutation.record, &mutation_id);
        }
        let key = RecordKey::of(&table, &mutation.record).map_err(MutationError::from)?;
        let current = self.view_row(&table.name, &key, now);
        self.check(&table, current.as_ref(), &mutation, &sent, now)?;
        let mutation = Mutation { mutation_id: Some(mutation_id.clone()), ..mutation };
        Ok(self.queue(Pending { seq, mutation_id, mutation, sent: false, tab: String::new(), transaction: None }))
    }

    /// Queues a transaction whose writes a [`crate::transaction::Draft`] checked, as one entry.
    pub fn enqueue_transaction(
        &mut self,
        reads: Vec<TransactionRead>,
        writes: Vec<Mutation>,
        mutation_id: String,
        seq: f64,
    ) -> Option<Pending> {
        let first = writes.first()?.clone();
        let transaction = Some(PendingTransaction { reads, writes });
        Some(self.queue(Pending { seq, mutation_id, mutation: first, sent: false, tab: String::new(), transaction }))
    }

    fn queue(&mut self, pending: Pending) -> Pending {
        self.outbox.push(pending.clone());
        self.outbox.sort_by(|a, b| a.seq.total_cmp(&b.seq));
        pending
    }

    /// What `mutation` of `table` does to `current` as the server would decide it: the core's
    /// apply, then the write rules (judging `sent` as the fields the writer sent).
    pub fn check(
        &self,
        table: &mishkah_core::Table,
        current: Option<&Row>,
        mutation: &Mutation,
        sent: &Row,
        now: Timestamp,
    ) -> Result<mishkah_core::Change, Refused> {
        let change = apply(table, current, mutation, &self.apply_context(now))?;
        if let Some(access) = &self.access {
            let branch = self.branch.as_deref().unwrap_or_default();
            let bindings = access.who.bindings(branch, &access.module, "ws").with_now(now);
            access.rules.table(&access.module, &table.name).check_write(
                &access.who,
                &bindings,
                table,
                current,
                change.row.as_ref(),
                sent,
            )?;
        }
        Ok(change)
    }

    /// Removes a pending write (acknowledged or refused).
    pub fn settle(&mut self, mutation_id: &str) -> Option<Pending> {
        let i = self.outbox.iter().position(|p| p.mutation_id == mutation_id)?;
        Some(self.outbox.remove(i))
    }

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
    use super::*;
    use mishkah_core::Action;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::from_json(&json!({"tables": {
            "order_header": {"fields": {"id": {"type": "text", "primaryKey": true}, "total": {"type": "decimal"}}},
            "note": {"fields": {"id": {"type": "text", "primaryKey": true}, "body": {"type": "text"}}}
        }}))
        .unwrap()
    }

    fn state_with(rows: Value) -> ClientState {
        let mut s = ClientState::new(Some(schema()));
        s.on_snapshot(&json!({"version": 10, "tables": rows}));
        s
    }

    #[test]
    fn the_servers_write_rules_refuse_a_write_before_it_is_queued() {
        let mut s = state_with(json!({"note": [{"id": "n1", "body": "server", "version": 1}]}));
        let answer = json!({
            "rules": {"note": {"create": "@auth.role = \"cashier\"", "update": "body != \"\"", "delete": null,
                               "readOnly": ["body"]}},
            "identity": {"sub": "k1", "role": "kitchen"}});
        s.access = Access::from_answer("pos", &answer);
        let insert = Mutation::new("note", Action::Insert, json!({"id": "n2"}));
        let refused = s.enqueue(insert, "m1".into(), 1.0, Timestamp(0)).unwrap_err();
        assert_eq!(refused.code(), "forbidden");
        let delete = Mutation::new("note", Action::Delete, json!({"id": "n1"}));
        assert_eq!(s.enqueue(delete, "m2".into(), 2.0, Timestamp(0)).unwrap_err().code(), "forbidden");
        let rewrite = Mutation::new("note", Action::Merge, json!({"id": "n1", "body": "mine"}));
        assert_eq!(s.enqueue(rewrite, "m3".into(), 3.0, Timestamp(0)).unwrap_err().code(), "read-only-field");
        assert!(s.outbox.is_empty(), "nothing refused reaches the outbox");
        let touch = Mutation::new("note", Action::Merge, json!({"id": "n1", "body": "server"}));
        s.enqueue(touch, "m4".into(), 4.0, Timestamp(0)).unwrap();
        assert_eq!(s.outbox.len(), 1, "an allowed write is queued");
        s.access = Access::from_answer("pos", &json!({"rules": null}));
        assert!(s.access.is_none(), "no rules: nothing to check");
    }

    #[test]
    fn reads_show_pending_writes_over_confirmed_rows_in_order() {
        let mut s = state_with(json!({"note": [{"id": "n1", "body": "server", "version": 1}]}));
        s.enqueue(
            Mutation::new("note", Action::Merge, json!({"id": "n1", "body": "mine"})),
            "m1".into(),
            1.0,
            Timestamp(0),
        )
        .unwrap();
        s.enqueue(
            Mutation::new("note", Action::Insert, json!({"id": "n2", "body": "new"})),
            "m2".into(),
            2.0,
            Timestamp(0),
        )
        .unwrap();
        s.enqueue(
            Mutation::new("note", Action::Merge, json!({"id": "n2", "body": "newer"})),
            "m3".into(),
            3.0,
            Timestamp(0),
        )
        .unwrap();
        let rows = s.view_rows("note", Timestamp(0));
        let bodies: Vec<_> = rows.iter().map(|r| r["body"].as_str().unwrap()).collect();
        assert_eq!(bodies, ["mine", "newer"]);
        assert_eq!(
            s.confirmed.get("note", &RecordKey("n1".into())).unwrap()["body"],
            "server",
            "confirmed state untouched"
        );
    }

    #[test]
    fn the_outbox_keeps_write_order_whatever_the_insertion_order() {
        let mut s = state_with(json!({}));
        for (seq, id) in [(3.0, "c"), (1.0, "a"), (2.0, "b")] {
            s.enqueue(Mutation::new("note", Action::Insert, json!({"id": id})), id.into(), seq, Timestamp(0)).unwrap();
        }
        let order: Vec<_> = s.outbox.iter().map(|p| p.mutation_id.as_str()).collect();
        assert_eq!(order, ["a", "b", "c"]);
    }

    #[test]
    fn writes_the_core_refuses_are_not_queued() {
        let mut s = state_with(json!({}));
        let err = s
            .enqueue(Mutation::new("note", Action::Merge, json!({"id": "ghost"})), "m".into(), 1.0, Timestamp(0))
            .unwrap_err();
        assert_eq!(err.code(), "not-found");
        assert!(s
            .enqueue(Mutation::new("nope", Action::Insert, json!({"id": "x"})), "m".into(), 1.0, Timestamp(0))
            .is_err());
        assert!(s.outbox.is_empty());
    }

    #[test]
    fn settling_a_refused_write_rolls_the_view_back() {
        let mut s = state_with(json!({"order_header": [{"id": "o1", "total": 5, "version": 2}]}));
        s.enqueue(
            Mutation::new("order_header", Action::Merge, json!({"id": "o1", "total": 9})).expecting(2),
            "m1".into(),
            1.0,
            Timestamp(0),
        )
        .unwrap();
        assert_eq!(s.view_row("order_header", &RecordKey("o1".into()), Timestamp(0)).unwrap()["total"], json!(9));
        s.settle("m1");
        assert_eq!(s.view_row("order_header", &RecordKey("o1".into()), Timestamp(0)).unwrap()["total"], json!(5));
    }

    #[test]
    fn a_partial_insert_gets_its_key_from_the_write_and_fills_what_the_server_fills() {
        let schema = Schema::from_json(&json!({"tables": {"order_header": {"fields": {
            "id": {"type": "text", "primaryKey": true}, "branchId": {"type": "text", "nullable": false},
            "subtotal": {"type": "decimal", "nullable": false}, "statusId": {"type": "text", "defaultValue": "open"}}}}}))
        .unwrap();
        let mut s = ClientState::new(Some(schema));
        s.branch = Some("dar".into());
        let p = s
            .enqueue(
                Mutation::new("order_header", Action::Insert, json!({"tableId": "T1"})),
                "m-1".into(),
                1.0,
                Timestamp(0),
            )
            .unwrap();
        assert_eq!(
            p.mutation.record["id"],
            json!("m-1"),
            "the key travels with the write, so the server stores the same"
        );
        let row = s.view_row("order_header", &RecordKey("m-1".into()), Timestamp(0)).unwrap();
        assert_eq!(
            (&row["branchId"], &row["subtotal"], &row["statusId"], &row["tableId"]),
            (&json!("dar"), &json!(0), &json!("open"), &json!("T1"))
        );
    }

    #[test]
    fn a_partial_store_holds_only_what_writes_and_unsaved_changes_need() {
        let mut s = ClientState::new(Some(schema()));
        s.partial = true;
        let changed = s.on_delta(
            &json!({"from": 0, "to": 5, "tables": {"note": [{"id": "n1", "version": 1}, {"id": "n2", "version": 1}]}}),
        );
        assert_eq!(changed.persist.len(), 2, "IndexedDB takes every row of a delta");
        assert!(s.confirmed.tables["note"].is_empty(), "the working set does not");
        s.hold(
            "note",
            RecordKey("n1".into()),
            Some(json!({"id": "n1", "body": "stored", "version": 1}).as_object().unwrap().clone()),
        );
        s.hold(
            "note",
            RecordKey("n1".into()),
            Some(json!({"id": "n1", "body": "older", "version": 1}).as_object().unwrap().clone()),
        );
        assert_eq!(
            s.confirmed.get("note", &RecordKey("n1".into())).unwrap()["body"],
            "stored",
            "a held row is not replaced by a read"
        );
        s.enqueue(
            Mutation::new("note", Action::Merge, json!({"id": "n1", "body": "mine"})),
            "m1".into(),
            1.0,
            Timestamp(0),
        )
        .unwrap();
        s.hold("note", RecordKey("n3".into()), Some(json!({"id": "n3", "version": 1}).as_object().unwrap().clone()));
        s.hold("note", RecordKey("n4".into()), Some(json!({"id": "n4", "version": 1}).as_object().unwrap().clone()));
        s.trim(|_, k| k.0 == "n4");
        let held: Vec<&str> = s.confirmed.tables["note"].keys().map(|k| k.0.as_str()).collect();
        assert_eq!(held, ["n1", "n4"], "kept: a pending write's row and an unsaved one");
        assert_eq!(s.pending_keys("note"), BTreeSet::from([RecordKey("n1".into())]));
    }

    #[test]
    fn events_never_move_a_row_backwards_and_deltas_merge() {
        let mut s = state_with(json!({"note": [{"id": "n1", "body": "v3", "version": 3}]}));
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
