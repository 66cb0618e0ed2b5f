//! Live queries against the definition: after any sequence of writes, what a client built from the
//! deliveries alone is exactly the filter's result over the current rows (a window: the first
//! `limit` of them, up to ties with its last row).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use mishkah_core::mutation::{Change, ChangeKind};
use mishkah_core::query::{compare_values, Filter};
use mishkah_core::sync::live::{Effect, LiveIndex, LiveOp, LiveQuery, Window};
use mishkah_core::sync::ChangeEvent;
use mishkah_core::{RecordKey, Row, Schema, Table};
use proptest::prelude::*;
use serde_json::{json, Value};

fn table() -> Table {
    let schema = Schema::from_json(&json!({"tables": [{"name": "orders", "fields": [
        {"name": "id", "type": "string", "primaryKey": true},
        {"name": "section", "type": "string"},
        {"name": "total", "type": "number"}
    ]}]}))
    .unwrap();
    schema.table("orders").unwrap().clone()
}

const FILTERS: [&str; 6] = [
    r#"section = "hot""#,
    r#"section in ["hot", "grill"] && total > 2"#,
    "total >= 3",
    r#"section != "cold" || total = 1"#,
    r#"total = 2.0 && section = "hot""#,
    "true",
];

#[derive(Debug, Clone)]
enum Write {
    Put { key: u8, section: Option<&'static str>, total: Option<i64> },
    Delete { key: u8 },
}

fn write() -> impl Strategy<Value = Write> {
    let section = prop::option::of(prop::sample::select(vec!["hot", "grill", "cold"]));
    prop_oneof![
        4 => (0u8..8, section, prop::option::of(0i64..5)).prop_map(|(key, section, total)| Write::Put { key, section, total }),
        1 => (0u8..8).prop_map(|key| Write::Delete { key }),
    ]
}

struct Model {
    rows: BTreeMap<String, (u64, Row)>,
    next_rowid: u64,
}

impl Model {
    fn matching(&self, t: &Table, q: &LiveQuery) -> Vec<(u64, Row)> {
        let mut out: Vec<(u64, Row)> = self
            .rows
            .values()
            .filter(|(_, row)| q.filter.eval_in(Some(t), row, &Default::default()))
            .cloned()
            .collect();
        let sort = q.window.as_ref().map(|w| w.sort.clone()).unwrap_or_default();
        out.sort_by(|(ra, a), (rb, b)| order(&sort, a, b).then(ra.cmp(rb)));
        out
    }
}

fn order(sort: &[(String, bool)], a: &Row, b: &Row) -> Ordering {
    for (field, desc) in sort {
        let o = compare_values(a.get(field).unwrap_or(&Value::Null), b.get(field).unwrap_or(&Value::Null));
        if o != Ordering::Equal {
            return if *desc { o.reverse() } else { o };
        }
    }
    Ordering::Equal
}

fn run(filter: &str, window: Option<Window>, writes: Vec<Write>, subscribe_at: usize) -> Result<(), TestCaseError> {
    let t = table();
    let query = LiveQuery { table: "orders".into(), filter: Filter::parse(filter).unwrap(), window: window.clone() };
    let mut model = Model { rows: BTreeMap::new(), next_rowid: 0 };
    let mut live = LiveIndex::default();
    let mut client: BTreeSet<String> = BTreeSet::new();
    let read = |model: &Model| {
        let mut rows = model.matching(&t, &query);
        let limit = window.as_ref().map_or(usize::MAX, |w| w.limit);
        let more = rows.len() > limit;
        rows.truncate(limit);
        (rows.into_iter().map(|(_, r)| r).collect::<Vec<_>>(), more)
    };
    let handle =
        |effects: Vec<Effect<u8>>, client: &mut BTreeSet<String>, live: &mut LiveIndex<u8>, model: &Model, seq: u64| {
            let mut queue = effects;
            while !queue.is_empty() {
                let mut next = Vec::new();
                for e in queue {
                    match e {
                        Effect::Deliver { op: LiveOp::Remove, key, .. } => {
                            client.remove(&key.0);
                        }
                        Effect::Deliver { key, .. } => {
                            client.insert(key.0);
                        }
                        Effect::Reload { id } => {
                            let (rows, more) = read(model);
                            next.extend(live.load(&t, id, rows, more, seq));
                        }
                    }
                }
                queue = next;
            }
        };
    for (seq, w) in writes.into_iter().enumerate() {
        let seq = seq as u64 + 1;
        if seq as usize == subscribe_at + 1 {
            live.watch(1, query.clone());
            let (rows, more) = read(&model);
            client = rows.iter().map(|r| RecordKey::of(&t, r).unwrap().0).collect();
            let effects = live.load(&t, 1, rows, more, seq - 1);
            handle(effects, &mut client, &mut live, &model, seq - 1);
        }
        let (key, row) = match w {
            Write::Put { key, section, total } => {
                let mut row = json!({"id": format!("k{key}")});
                if let Some(s) = section {
                    row["section"] = json!(s);
                }
                if let Some(n) = total {
                    row["total"] = json!(n);
                }
                let row = row.as_object().unwrap().clone();
                let k = format!("k{key}");
                let rowid = model.rows.get(&k).map(|(r, _)| *r).unwrap_or_else(|| {
                    model.next_rowid += 1;
                    model.next_rowid
                });
                model.rows.insert(k.clone(), (rowid, row.clone()));
                (k, Some(row))
            }
            Write::Delete { key } => {
                let k = format!("k{key}");
                model.rows.remove(&k);
                (k, None)
            }
        };
        let kind = if row.is_some() { ChangeKind::Update } else { ChangeKind::Delete };
        let event = ChangeEvent {
            sequence: seq,
            event_id: format!("evt-{seq}"),
            mutation_id: None,
            created_at: "2026-01-01T00:00:00Z".into(),
            transaction_id: None,
            change: Change {
                table: "orders".into(),
                key: RecordKey(key),
                kind,
                row,
                version: seq as i64,
                coerced: vec![],
                unknown_fields: vec![],
                tolerated: Vec::new(),
            },
        };
        let effects = live.apply(&t, &event);
        handle(effects, &mut client, &mut live, &model, seq);
        if (seq as usize) <= subscribe_at {
            continue;
        }
        let matching = model.matching(&t, &query);
        let keys =
            |rows: &[(u64, Row)]| rows.iter().map(|(_, r)| RecordKey::of(&t, r).unwrap().0).collect::<BTreeSet<_>>();
        match &window {
            None => prop_assert_eq!(&client, &keys(&matching), "after write {}", seq),
            Some(w) => {
                prop_assert!(client.is_subset(&keys(&matching)), "{:?} not within {:?}", client, keys(&matching));
                prop_assert_eq!(client.len(), w.limit.min(matching.len()));
                // Nothing outside sorts strictly before a row inside.
                let rows: BTreeMap<_, _> =
                    matching.iter().map(|(_, r)| (RecordKey::of(&t, r).unwrap().0, r.clone())).collect();
                for (k, outside) in rows.iter().filter(|(k, _)| !client.contains(*k)) {
                    for inside in client.iter().map(|k| &rows[k]) {
                        prop_assert!(order(&w.sort, outside, inside) != Ordering::Less, "{} belongs in the window", k);
                    }
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_live_result_is_the_filter_over_the_current_rows(
        filter in prop::sample::select(FILTERS.to_vec()),
        writes in prop::collection::vec(write(), 1..40),
        subscribe_at in 0usize..10,
    ) {
        run(filter, None, writes, subscribe_at)?;
    }

    #[test]
    fn a_live_window_holds_the_first_rows_of_the_result(
        filter in prop::sample::select(FILTERS.to_vec()),
        writes in prop::collection::vec(write(), 1..40),
        subscribe_at in 0usize..10,
        limit in 1usize..4,
        desc in any::<bool>(),
    ) {
        let window = Window { sort: vec![("total".into(), desc)], limit };
        run(filter, Some(window), writes, subscribe_at)?;
    }
}
