//! Live queries: which subscriptions a committed change moves a row into, out of, or within.
//!
//! A live query is a filter over one table, optionally a window (the first `limit` rows in a sort
//! order). The index remembers, per subscription, the rows its client holds, so a change that makes
//! a held row stop matching arrives as a removal even though the new row says nothing about the
//! filter any more. A change finds its candidates without visiting every subscription: through the
//! equality predicate each subscription is indexed under (its first `field = value` or
//! `field in [...]` conjunct), through the holders of the changed key, and — only for filters
//! without an equality conjunct — through a scan list. Each candidate then evaluates its filter.
//!
//! Reads are the caller's (no I/O here). A subscription starts *loading*: changes that concern it
//! are buffered until the caller hands over the rows it read and the sequence it read them at
//! ([`LiveIndex::load`]); buffered changes after that sequence are replayed then, older ones are
//! already in what was read. A window that loses a member while rows may exist beyond it asks to be
//! read again ([`Effect::Reload`]) the same way, and the difference is delivered.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ChangeEvent;
use crate::query::{compare_values, field_value, Bindings, Filter, Op, Operand};
use crate::record::{RecordKey, Row};
use crate::schema::Table;

/// What a subscription selects. The filter's variables are already bound.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveQuery {
    pub table: String,
    /// Rows that pass it are in the result.
    pub filter: Filter,
    /// Only the first rows in an order.
    pub window: Option<Window>,
}

/// The first `limit` rows in the order of `sort` (`(field, descending)`; none: insertion order).
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Sort keys.
    pub sort: Vec<(String, bool)>,
    /// Most rows held.
    pub limit: usize,
}

/// How a change moves a subscription's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LiveOp {
    /// A row entered the result.
    Add,
    /// A row of the result changed and still belongs.
    Update,
    /// A row left the result (it stopped matching, was deleted, or left the window).
    Remove,
}

/// What the caller must do after a change or a load.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect<Id> {
    /// Send this to the subscription's client.
    Deliver {
        /// The subscription.
        id: Id,
        /// How the result moves.
        op: LiveOp,
        /// The row's key.
        key: RecordKey,
        /// The row (stored form; render it before it leaves) for an add or an update.
        row: Option<Arc<Row>>,
        /// The sequence of the change (for a reload: the sequence it read at).
        sequence: u64,
    },
    /// Read the subscription's window again and hand it to [`LiveIndex::load`]; changes are
    /// buffered meanwhile.
    Reload {
        /// The subscription.
        id: Id,
    },
}

/// A scalar as equality sees it: values [`crate::query::holds`] calls equal have equal keys
/// (`1` and `1.0` included).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ValueKey {
    Null,
    Bool(bool),
    Int(i128),
    Float(u64),
    Text(String),
}

impl ValueKey {
    fn of(v: &Value) -> Option<ValueKey> {
        Some(match v {
            Value::Null => ValueKey::Null,
            Value::Bool(b) => ValueKey::Bool(*b),
            Value::String(s) => ValueKey::Text(s.clone()),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    ValueKey::Int(i.into())
                } else if let Some(u) = n.as_u64() {
                    ValueKey::Int(u.into())
                } else {
                    let f = n.as_f64()?;
                    if f.fract() == 0.0 && f.abs() < 1.7e38 {
                        ValueKey::Int(f as i128)
                    } else {
                        ValueKey::Float(f.to_bits())
                    }
                }
            }
            Value::Array(_) | Value::Object(_) => return None,
        })
    }
}

/// Where a subscription is found from a change.
#[derive(Debug, Clone, PartialEq)]
enum Lookup {
    /// Under `path = one of values`: a row can only match with one of them there.
    Equal { path: Vec<String>, values: Vec<ValueKey> },
    /// On every change of the table.
    Scan,
}

impl Lookup {
    fn of(filter: &Filter) -> Lookup {
        let parts = match filter {
            Filter::And(parts) => parts.as_slice(),
            single => std::slice::from_ref(single),
        };
        parts.iter().find_map(Lookup::equality).unwrap_or(Lookup::Scan)
    }

    fn equality(part: &Filter) -> Option<Lookup> {
        let Filter::Compare { left, op, right } = part else { return None };
        let (path, value) = match (left, right) {
            (Operand::Field(p), Operand::Value(v)) | (Operand::Value(v), Operand::Field(p)) => (p, v),
            _ => return None,
        };
        let values = match (op, value) {
            (Op::Eq, v) => vec![ValueKey::of(v)?],
            (Op::In, Value::Array(items)) if matches!(left, Operand::Field(_)) => {
                items.iter().map(ValueKey::of).collect::<Option<Vec<_>>>()?
            }
            _ => return None,
        };
        Some(Lookup::Equal { path: path.clone(), values })
    }
}

#[derive(Debug, Clone)]
struct Member {
    sort: Vec<Value>,
    /// The row's `version` when it had one: a reload re-sends only rows that changed.
    version: Option<Value>,
}

fn version_of(row: &Row) -> Option<Value> {
    row.get("version").cloned()
}

#[derive(Debug)]
struct Sub {
    query: LiveQuery,
    lookup: Lookup,
    members: HashMap<String, Member>,
    /// A window only: rows beyond it may match.
    more: bool,
    /// Changes up to this sequence are in what was read.
    since: u64,
    /// Loading: the changes that arrived meanwhile.
    pending: Option<Vec<ChangeEvent>>,
    loaded: bool,
}

impl Sub {
    fn sort_values(&self, table: &Table, row: &Row) -> Vec<Value> {
        let sort = self.query.window.as_ref().map(|w| w.sort.as_slice()).unwrap_or_default();
        sort.iter().map(|(f, _)| field_value(Some(table), row, std::slice::from_ref(f)).clone()).collect()
    }

    /// The window's order; rows tied on every key compare equal (a newcomer tied with the last
    /// member stays outside until a read decides).
    fn order(&self, a: &[Value], b: &[Value]) -> Ordering {
        let sort = self.query.window.as_ref().map(|w| w.sort.as_slice()).unwrap_or_default();
        for ((x, y), (_, desc)) in a.iter().zip(b).zip(sort) {
            let o = compare_values(x, y);
            if o != Ordering::Equal {
                return if *desc { o.reverse() } else { o };
            }
        }
        Ordering::Equal
    }

    fn last(&self) -> Option<(&String, &Member)> {
        self.members.iter().reduce(|best, m| if self.order(&m.1.sort, &best.1.sort).is_gt() { m } else { best })
    }
}

#[derive(Debug)]
struct TableSubs<Id> {
    by_value: HashMap<(Vec<String>, ValueKey), HashSet<Id>>,
    /// Indexed paths and how many subscriptions use each.
    paths: HashMap<Vec<String>, usize>,
    scan: HashSet<Id>,
    loading: HashSet<Id>,
    holders: HashMap<String, HashSet<Id>>,
}

impl<Id> Default for TableSubs<Id> {
    fn default() -> Self {
        TableSubs {
            by_value: HashMap::new(),
            paths: HashMap::new(),
            scan: HashSet::new(),
            loading: HashSet::new(),
            holders: HashMap::new(),
        }
    }
}

impl<Id: Copy + Eq + Hash + Ord> TableSubs<Id> {
    fn hold(&mut self, key: &str, id: Id) {
        self.holders.entry(key.to_owned()).or_default().insert(id);
    }

    fn release(&mut self, key: &str, id: Id) {
        if let Some(set) = self.holders.get_mut(key) {
            set.remove(&id);
            if set.is_empty() {
                self.holders.remove(key);
            }
        }
    }

    fn candidates(&self, table: &Table, key: &str, row: Option<&Row>) -> Vec<Id> {
        let mut out: Vec<Id> = self.scan.iter().chain(&self.loading).copied().collect();
        out.extend(self.holders.get(key).into_iter().flatten().copied());
        if let Some(row) = row {
            for path in self.paths.keys() {
                let Some(value) = ValueKey::of(field_value(Some(table), row, path)) else { continue };
                if let Some(ids) = self.by_value.get(&(path.clone(), value)) {
                    out.extend(ids.iter().copied());
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The live queries of one module: register, load, and feed it committed changes in order.
#[derive(Debug)]
pub struct LiveIndex<Id> {
    subs: HashMap<Id, Sub>,
    tables: HashMap<String, TableSubs<Id>>,
}

impl<Id> Default for LiveIndex<Id> {
    fn default() -> Self {
        LiveIndex { subs: HashMap::new(), tables: HashMap::new() }
    }
}

impl<Id: Copy + Eq + Hash + Ord> LiveIndex<Id> {
    /// Number of subscriptions.
    pub fn len(&self) -> usize {
        self.subs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// Whether any subscription reads `table`.
    pub fn watches(&self, table: &str) -> bool {
        self.tables.contains_key(table)
    }

    /// The query of a subscription.
    pub fn query(&self, id: Id) -> Option<&LiveQuery> {
        self.subs.get(&id).map(|s| &s.query)
    }

    /// Registers a subscription, loading: read its rows, then [`LiveIndex::load`] them. An id in
    /// use is replaced.
    pub fn watch(&mut self, id: Id, query: LiveQuery) {
        self.unwatch(id);
        let lookup = Lookup::of(&query.filter);
        let t = self.tables.entry(query.table.clone()).or_default();
        match &lookup {
            Lookup::Equal { path, values } => {
                *t.paths.entry(path.clone()).or_default() += 1;
                for v in values {
                    t.by_value.entry((path.clone(), v.clone())).or_default().insert(id);
                }
            }
            Lookup::Scan => {
                t.scan.insert(id);
            }
        }
        t.loading.insert(id);
        let sub = Sub {
            query,
            lookup,
            members: HashMap::new(),
            more: false,
            since: 0,
            pending: Some(Vec::new()),
            loaded: false,
        };
        self.subs.insert(id, sub);
    }

    /// Removes a subscription.
    pub fn unwatch(&mut self, id: Id) {
        let Some(sub) = self.subs.remove(&id) else { return };
        let Some(t) = self.tables.get_mut(&sub.query.table) else { return };
        match &sub.lookup {
            Lookup::Equal { path, values } => {
                for v in values {
                    let slot = (path.clone(), v.clone());
                    if let Some(set) = t.by_value.get_mut(&slot) {
                        set.remove(&id);
                        if set.is_empty() {
                            t.by_value.remove(&slot);
                        }
                    }
                }
                if let Some(n) = t.paths.get_mut(path) {
                    *n -= 1;
                    if *n == 0 {
                        t.paths.remove(path);
                    }
                }
            }
            Lookup::Scan => {
                t.scan.remove(&id);
            }
        }
        t.loading.remove(&id);
        for key in sub.members.keys() {
            t.release(key, id);
        }
        if t.scan.is_empty() && t.paths.is_empty() && t.loading.is_empty() && t.holders.is_empty() {
            self.tables.remove(&sub.query.table);
        }
    }

    /// Hands over what the caller read for a loading subscription: the rows its query selects
    /// (a window: its first `limit`, with `more` when another exists) as of sequence `at`.
    ///
    /// The first load only records the rows (the caller sends them as the initial result); a
    /// reload delivers the difference from what the client holds. Then the changes buffered
    /// since are replayed.
    pub fn load(&mut self, table: &Table, id: Id, rows: Vec<Row>, more: bool, at: u64) -> Vec<Effect<Id>> {
        let mut out = Vec::new();
        let Some(sub) = self.subs.get_mut(&id) else { return out };
        let Some(t) = self.tables.get_mut(&sub.query.table) else { return out };
        let pending = sub.pending.take().unwrap_or_default();
        t.loading.remove(&id);
        let mut seen = HashSet::new();
        for row in rows {
            let Ok(key) = RecordKey::of(table, &row) else { continue };
            seen.insert(key.0.clone());
            let member = Member { sort: sub.sort_values(table, &row), version: version_of(&row) };
            let unchanged = |old: &Member| old.version.is_some() && old.version == member.version;
            match sub.members.insert(key.0.clone(), member.clone()) {
                None => {
                    t.hold(&key.0, id);
                    if sub.loaded {
                        out.push(Effect::Deliver { id, op: LiveOp::Add, key, row: Some(Arc::new(row)), sequence: at });
                    }
                }
                Some(old) if unchanged(&old) => {}
                Some(_) if sub.loaded => {
                    out.push(Effect::Deliver { id, op: LiveOp::Update, key, row: Some(Arc::new(row)), sequence: at });
                }
                Some(_) => {}
            }
        }
        let gone: Vec<String> = sub.members.keys().filter(|k| !seen.contains(*k)).cloned().collect();
        for key in gone {
            sub.members.remove(&key);
            t.release(&key, id);
            out.push(Effect::Deliver { id, op: LiveOp::Remove, key: RecordKey(key), row: None, sequence: at });
        }
        sub.more = more && sub.query.window.is_some();
        sub.since = at;
        sub.loaded = true;
        for event in pending {
            if sub.pending.is_some() {
                // A replayed change asked for another reload: keep buffering for it.
                if let Some(p) = sub.pending.as_mut() {
                    p.push(event);
                }
                continue;
            }
            step(table, t, id, sub, &event, &mut None, &mut out);
        }
        out
    }

    /// Feeds one committed change of `table` (in commit order).
    pub fn apply(&mut self, table: &Table, event: &ChangeEvent) -> Vec<Effect<Id>> {
        let mut out = Vec::new();
        let Some(t) = self.tables.get_mut(&event.change.table) else { return out };
        let mut shared = None;
        for id in t.candidates(table, &event.change.key.0, event.change.row.as_ref()) {
            let Some(sub) = self.subs.get_mut(&id) else { continue };
            if let Some(buffer) = sub.pending.as_mut() {
                buffer.push(event.clone());
                continue;
            }
            step(table, t, id, sub, event, &mut shared, &mut out);
        }
        out
    }
}

/// One change against one loaded subscription.
fn step<Id: Copy + Eq + Hash + Ord>(
    table: &Table,
    t: &mut TableSubs<Id>,
    id: Id,
    sub: &mut Sub,
    event: &ChangeEvent,
    shared: &mut Option<Arc<Row>>,
    out: &mut Vec<Effect<Id>>,
) {
    if event.sequence <= sub.since {
        return;
    }
    let key = &event.change.key;
    let sequence = event.sequence;
    let matching =
        event.change.row.as_ref().filter(|row| sub.query.filter.eval_in(Some(table), row, &Bindings::default()));
    let mut row = || shared.get_or_insert_with(|| Arc::new(event.change.row.clone().unwrap_or_default())).clone();
    let held = sub.members.get(&key.0).cloned();
    let deliver = |op, row| Effect::Deliver { id, op, key: key.clone(), row, sequence };
    match (matching, held) {
        (Some(new), Some(old)) => {
            let sort = sub.sort_values(table, new);
            let moved_later = sub.order(&sort, &old.sort).is_gt();
            sub.members.insert(key.0.clone(), Member { sort, version: version_of(new) });
            let now_last = sub.last().is_some_and(|(k, _)| k == &key.0);
            if sub.more && moved_later && now_last {
                // Rows beyond the window may now come before it: read the window again.
                sub.members.remove(&key.0);
                t.release(&key.0, id);
                out.push(deliver(LiveOp::Remove, None));
                reload(t, id, sub, out);
            } else {
                out.push(deliver(LiveOp::Update, Some(row())));
            }
        }
        (Some(new), None) => {
            let sort = sub.sort_values(table, new);
            let full = sub.query.window.as_ref().is_some_and(|w| sub.members.len() >= w.limit);
            let member = Member { sort, version: version_of(new) };
            if !full {
                sub.members.insert(key.0.clone(), member);
                t.hold(&key.0, id);
                out.push(deliver(LiveOp::Add, Some(row())));
                return;
            }
            sub.more = true;
            let Some((last_key, last)) = sub.last().map(|(k, m)| (k.clone(), m.clone())) else { return };
            if sub.order(&member.sort, &last.sort).is_lt() {
                sub.members.remove(&last_key);
                t.release(&last_key, id);
                out.push(Effect::Deliver { id, op: LiveOp::Remove, key: RecordKey(last_key), row: None, sequence });
                sub.members.insert(key.0.clone(), member);
                t.hold(&key.0, id);
                out.push(deliver(LiveOp::Add, Some(row())));
            }
        }
        (None, Some(_)) => {
            sub.members.remove(&key.0);
            t.release(&key.0, id);
            out.push(deliver(LiveOp::Remove, None));
            if sub.more {
                reload(t, id, sub, out);
            }
        }
        (None, None) => {}
    }
}

fn reload<Id: Copy + Eq + Hash + Ord>(t: &mut TableSubs<Id>, id: Id, sub: &mut Sub, out: &mut Vec<Effect<Id>>) {
    sub.pending = Some(Vec::new());
    t.loading.insert(id);
    out.push(Effect::Reload { id });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutation::{Change, ChangeKind};
    use crate::schema::Schema;
    use serde_json::json;

    fn table() -> Table {
        let schema = Schema::from_json(&json!({"tables": [{"name": "orders", "fields": [
            {"name": "id", "type": "string", "primaryKey": true},
            {"name": "section", "type": "string"},
            {"name": "status", "type": "string"},
            {"name": "total", "type": "number"}
        ]}]}))
        .unwrap();
        schema.table("orders").unwrap().clone()
    }

    fn event(seq: u64, id: &str, row: Option<Value>) -> ChangeEvent {
        let row = row.map(|v| v.as_object().unwrap().clone());
        let kind = if row.is_some() { ChangeKind::Update } else { ChangeKind::Delete };
        ChangeEvent {
            sequence: seq,
            event_id: format!("evt-{seq}"),
            mutation_id: None,
            created_at: "2026-01-01T00:00:00Z".into(),
            transaction_id: None,
            change: Change {
                table: "orders".into(),
                key: RecordKey(id.into()),
                kind,
                row,
                version: seq as i64,
                coerced: vec![],
                unknown_fields: vec![],
                tolerated: vec![],
            },
        }
    }

    fn ops(effects: &[Effect<u32>]) -> Vec<(u32, LiveOp, String)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Deliver { id, op, key, .. } => Some((*id, *op, key.0.clone())),
                Effect::Reload { .. } => None,
            })
            .collect()
    }

    fn query(filter: &str, window: Option<Window>) -> LiveQuery {
        LiveQuery { table: "orders".into(), filter: Filter::parse(filter).unwrap(), window }
    }

    #[test]
    fn rows_move_in_and_out_and_update_in_between() {
        let t = table();
        let mut live = LiveIndex::default();
        live.watch(1u32, query(r#"section = "hot" && status = "open""#, None));
        assert!(live.load(&t, 1, vec![], false, 0).is_empty());
        let open = json!({"id": "o1", "section": "hot", "status": "open"});
        assert_eq!(ops(&live.apply(&t, &event(1, "o1", Some(open)))), [(1, LiveOp::Add, "o1".into())]);
        let more = json!({"id": "o1", "section": "hot", "status": "open", "total": 5});
        assert_eq!(ops(&live.apply(&t, &event(2, "o1", Some(more)))), [(1, LiveOp::Update, "o1".into())]);
        // It no longer says `hot`: only the holder index finds the subscription.
        let moved = json!({"id": "o1", "section": "grill", "status": "open"});
        assert_eq!(ops(&live.apply(&t, &event(3, "o1", Some(moved.clone())))), [(1, LiveOp::Remove, "o1".into())]);
        assert!(live.apply(&t, &event(4, "o1", Some(moved))).is_empty());
        assert!(live.apply(&t, &event(5, "o1", None)).is_empty());
    }

    #[test]
    fn changes_during_a_load_are_replayed_after_what_was_read() {
        let t = table();
        let mut live = LiveIndex::default();
        live.watch(1u32, query(r#"section = "hot""#, None));
        live.apply(&t, &event(4, "a", Some(json!({"id": "a", "section": "hot"}))));
        live.apply(&t, &event(5, "b", Some(json!({"id": "b", "section": "hot"}))));
        live.apply(&t, &event(6, "a", Some(json!({"id": "a", "section": "cold"}))));
        // The read saw sequence 4 (a), so 5 and 6 are replayed.
        let effects =
            live.load(&t, 1, vec![json!({"id": "a", "section": "hot"}).as_object().unwrap().clone()], false, 4);
        assert_eq!(ops(&effects), [(1, LiveOp::Add, "b".into()), (1, LiveOp::Remove, "a".into())]);
    }

    #[test]
    fn a_write_reaches_only_the_subscriptions_it_can_affect() {
        let t = table();
        let mut live = LiveIndex::default();
        for i in 0..1000u32 {
            live.watch(i, query(&format!("section = \"s{i}\""), None));
            live.load(&t, i, vec![], false, 0);
        }
        let row = json!({"id": "x", "section": "s7"});
        let ids = live.tables["orders"].candidates(&t, "x", row.as_object());
        assert_eq!(ids, [7]);
        assert_eq!(ops(&live.apply(&t, &event(1, "x", Some(row)))), [(7, LiveOp::Add, "x".into())]);
        // `in` and numbers equal by value index the same way.
        live.watch(2000, query("total in [1, 2.5]", None));
        live.load(&t, 2000, vec![], false, 0);
        let ids = live.tables["orders"].candidates(&t, "y", json!({"id": "y", "total": 1.0}).as_object());
        assert_eq!(ids, [2000]);
        live.unwatch(2000);
        assert!(live.tables["orders"].paths.keys().all(|p| p == &["section".to_owned()]));
    }

    #[test]
    fn a_window_keeps_its_first_rows_and_reloads_when_it_loses_one() {
        let t = table();
        let mut live = LiveIndex::default();
        let window = Window { sort: vec![("total".into(), true)], limit: 2 };
        live.watch(1u32, query(r#"status = "open""#, Some(window)));
        let row = |id: &str, total: i64| json!({"id": id, "status": "open", "total": total});
        let rows = vec![row("a", 30).as_object().unwrap().clone(), row("b", 20).as_object().unwrap().clone()];
        live.load(&t, 1, rows, true, 10);
        // Sorts after the last member of a full window: stays out.
        assert!(live.apply(&t, &event(11, "c", Some(row("c", 10)))).is_empty());
        // Sorts first: enters, and the last member is evicted.
        let e = live.apply(&t, &event(12, "d", Some(row("d", 40))));
        assert_eq!(ops(&e), [(1, LiveOp::Remove, "b".into()), (1, LiveOp::Add, "d".into())]);
        // A member leaves while more rows exist: the window is read again.
        let e = live.apply(&t, &event(13, "a", None));
        assert_eq!(ops(&e), [(1, LiveOp::Remove, "a".into())]);
        assert_eq!(e.last(), Some(&Effect::Reload { id: 1 }));
        live.apply(&t, &event(14, "c", Some(json!({"id": "c", "status": "open", "total": 11}))));
        let read = vec![row("d", 40).as_object().unwrap().clone(), row("b", 20).as_object().unwrap().clone()];
        let e = live.load(&t, 1, read, true, 13);
        assert_eq!(ops(&e), [(1, LiveOp::Update, "d".into()), (1, LiveOp::Add, "b".into())]);
    }
}
