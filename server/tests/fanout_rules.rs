//! The rules against the branch-wide fan-out, as a property: for random `list` rules, identities
//! and write sequences, every subscriber receives exactly the changes its rule admits — the event
//! when the rule admits the row after the write, a removal when it admitted the row before and
//! not after, nothing otherwise — once each, in commit order; and the rows it ends up holding are
//! the rule applied to the table. The expectation is computed with the core's evaluator on each
//! identity's claims directly, not through the hub's bound and interned scopes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use mishkah_core::query::{Bindings, Filter};
use mishkah_core::rules::{Principal, RuleSet};
use mishkah_core::sync::ChangeEvent;
use mishkah_core::{Change, ChangeKind, RecordKey, Row, Schema};
use mishkah_server::hub::{Hub, Published};
use mishkah_server::metrics::Metrics;
use proptest::prelude::*;
use serde_json::{json, Value};

const SECTIONS: [&str; 3] = ["hot", "cold", "bar"];
const STATUSES: [&str; 3] = ["queued", "cooking", "void"];

fn schema() -> Schema {
    Schema::from_json(&json!({"tables": {"lines": {"fields": {
        "id": {"type": "text", "primaryKey": true}, "section": {"type": "text"},
        "status": {"type": "text"}, "qty": {"type": "integer"}}}}}))
    .unwrap()
}

/// Building blocks of a rule, over the row and the identity.
const ATOMS: [&str; 8] = [
    "section = @auth.section",
    "@auth.role = \"cashier\"",
    "qty > @auth.min",
    "status != \"void\"",
    "status in [\"queued\", \"cooking\"]",
    "@auth.section = \"hot\"",
    "@row.section = \"bar\"",
    "section ~ \"o\"",
];

fn rule() -> impl Strategy<Value = Value> {
    let atom = prop::sample::select(ATOMS.to_vec()).prop_map(|a| a.to_owned());
    let expr = atom.prop_recursive(3, 8, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) && ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) || ({b})")),
            inner.prop_map(|a| format!("!({a})")),
        ]
    });
    prop_oneof![1 => Just(Value::Null), 1 => Just(json!("")), 6 => expr.prop_map(Value::String)]
}

fn identity() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["cashier", "kitchen", "guest", "admin"]),
        prop::sample::select(SECTIONS.to_vec()),
        0..3i64,
        any::<bool>(),
    )
        .prop_map(|(role, section, min, with_section)| {
            let mut claims = json!({"sub": format!("{role}-{section}-{min}"), "role": role, "min": min});
            if with_section {
                claims["section"] = json!(section);
            }
            claims
        })
}

#[derive(Debug, Clone)]
enum Write {
    Put { key: u8, section: usize, status: usize, qty: i64 },
    Delete { key: u8 },
}

fn write() -> impl Strategy<Value = Write> {
    prop_oneof![
        4 => (0..5u8, 0..3usize, 0..3usize, 0..4i64).prop_map(|(key, section, status, qty)| Write::Put { key, section, status, qty }),
        1 => (0..5u8).prop_map(|key| Write::Delete { key }),
    ]
}

/// What the core's evaluator says `claims` may see of `row` under `rule`.
fn admits(rule: &Value, claims: &Value, row: &Row, schema: &Schema) -> bool {
    if claims["role"] == "admin" {
        return true;
    }
    match rule {
        Value::Null => false,
        Value::String(s) if s.is_empty() => true,
        Value::String(s) => {
            let filter = Filter::parse(s).unwrap();
            let bindings = Bindings::default()
                .with("auth", claims.clone())
                .with("row", Value::Object(row.clone()))
                .with("request", json!({"branch": "b", "module": "m", "source": "ws"}));
            filter.eval_in(schema.table("lines"), row, &bindings)
        }
        _ => unreachable!(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn every_subscriber_gets_exactly_what_its_rule_admits_once_and_in_order(
        rule in rule(),
        identities in prop::collection::vec(identity(), 1..7),
        writes in prop::collection::vec(write(), 1..30),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let schema = Arc::new(schema());
            let rules = Arc::new(
                RuleSet::from_json(&json!({"modules": {"m": {"tables": {"lines": {"list": rule.clone()}}}}})).unwrap(),
            );
            prop_assert!(rules.check_against("m", &schema).is_empty());
            let hub = Hub::new("test".into(), Arc::new(Metrics::default()));
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let publisher = tokio::spawn(hub.clone().run_publisher(rx));
            let mut subs: Vec<_> = identities
                .iter()
                .map(|claims| hub.subscribe("b", Arc::new(Principal::from_claims(claims.clone())), false))
                .collect();

            let mut rows: BTreeMap<String, Row> = BTreeMap::new();
            let mut expected: Vec<Vec<(u64, String, bool)>> = vec![Vec::new(); identities.len()];
            for (i, w) in writes.iter().enumerate() {
                let sequence = i as u64 + 1;
                let (key, after) = match w {
                    Write::Put { key, section, status, qty } => {
                        let key = format!("k{key}");
                        let row = json!({"id": key, "section": SECTIONS[*section], "status": STATUSES[*status], "qty": qty});
                        (key, Some(row.as_object().unwrap().clone()))
                    }
                    Write::Delete { key } => (format!("k{key}"), None),
                };
                let before = rows.get(&key).cloned();
                if before.is_none() && after.is_none() {
                    continue; // deleting nothing commits nothing
                }
                for (n, claims) in identities.iter().enumerate() {
                    let was = before.as_ref().is_some_and(|r| admits(&rule, claims, r, &schema));
                    let is = after.as_ref().is_some_and(|r| admits(&rule, claims, r, &schema));
                    if is {
                        expected[n].push((sequence, key.clone(), false));
                    } else if was {
                        expected[n].push((sequence, key.clone(), true));
                    }
                }
                let kind = match (&before, &after) {
                    (None, Some(_)) => ChangeKind::Insert,
                    (Some(_), Some(_)) => ChangeKind::Update,
                    _ => ChangeKind::Delete,
                };
                let event = ChangeEvent {
                    sequence,
                    event_id: format!("evt-{sequence}"),
                    mutation_id: None,
                    created_at: "2026-01-01T00:00:00.000Z".into(),
                    transaction_id: None,
                    change: Change {
                        table: "lines".into(),
                        key: RecordKey(key.clone()),
                        kind,
                        row: after.clone(),
                        version: sequence as i64,
                        coerced: vec![],
                        unknown_fields: vec![],
                        tolerated: Vec::new(),
                    },
                };
                match &after {
                    Some(r) => rows.insert(key.clone(), r.clone()),
                    None => rows.remove(&key),
                };
                tx.send(Published {
                    branch: "b".into(),
                    module: "m".into(),
                    event: Arc::new(event),
                    primary_key: json!({"id": key}).as_object().unwrap().clone(),
                    source: "ws",
                    client_meta: Value::Null,
                    schema: schema.clone(),
                    access: rules.clone(),
                    previous: before.map(Arc::new),
                    table_as_sent: None,
                    txn_end: true,
                    handed_at: std::time::Instant::now(),
                })
                .unwrap();
            }
            drop(tx);
            publisher.await.unwrap();

            for (n, sub) in subs.iter_mut().enumerate() {
                let mut got = Vec::new();
                let mut held = BTreeSet::new();
                while let Some(frame) = sub.try_recv() {
                    let f: Value = serde_json::from_str(frame.as_str()).unwrap();
                    let key = f["recordRef"]["id"].as_str().unwrap().to_owned();
                    let deleted = f["deleted"] == json!(true);
                    if deleted {
                        held.remove(&key);
                    } else {
                        held.insert(key.clone());
                    }
                    got.push((f["sequence"].as_u64().unwrap(), key, deleted));
                }
                prop_assert_eq!(&got, &expected[n], "identity {} under {}", identities[n], rule);
                let visible: BTreeSet<String> = rows
                    .iter()
                    .filter(|(_, r)| admits(&rule, &identities[n], r, &schema))
                    .map(|(k, _)| k.clone())
                    .collect();
                prop_assert_eq!(held, visible, "what the subscriber holds is the rule over the table");
            }
            Ok(())
        })?;
    }
}
