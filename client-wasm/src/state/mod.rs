//! The store's state, free of any browser API so it is tested natively: confirmed server state
//! (a core [`Replica`]), the outbox of pending writes, and the view that reads see — confirmed
//! rows with pending writes applied on top, through the same `mishkah_core::apply` the server runs.

use std::collections::{BTreeMap, BTreeSet};

use mishkah_core::mutation::ApplyContext;
use mishkah_core::record::fill_key;
use mishkah_core::rules::{Denied, Principal, RuleSet};
use mishkah_core::sync::Replica;
use mishkah_core::wire::TransactionRead;
use mishkah_core::{apply, Action, Mutation, MutationError, RecordKey, Row, Schema, Timestamp, VersionPolicy};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::membership::Membership;

mod incoming;

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use mishkah_core::Action;
    use serde_json::json;

    pub(super) fn schema() -> Schema {
        Schema::from_json(&json!({"tables": {
            "order_header": {"fields": {"id": {"type": "text", "primaryKey": true}, "total": {"type": "decimal"}}},
            "note": {"fields": {"id": {"type": "text", "primaryKey": true}, "body": {"type": "text"}}}
        }}))
        .unwrap()
    }

    pub(super) fn state_with(rows: Value) -> ClientState {
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
}
