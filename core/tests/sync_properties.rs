//! Property tests of the sync model: a fake authoritative store and fake replicas in memory,
//! driven by random interleavings of mutations through the real `apply`.

use mishkah_core::mutation::ApplyContext;
use mishkah_core::sync::{ChangeEvent, Delta, DeltaError, Replica};
use mishkah_core::{apply, Action, Mutation, RecordKey, Schema, Timestamp, VersionPolicy};
use proptest::prelude::*;
use serde_json::json;

fn schema() -> Schema {
    Schema::from_json(&json!({"tables": {
        "order_line": {"fields": {"id": {"type": "text", "primaryKey": true}, "qty": {"type": "integer"}}},
        "note": {"fields": {"id": {"type": "text", "primaryKey": true}, "qty": {"type": "integer"}}}
    }}))
    .unwrap()
}

#[derive(Debug, Clone)]
struct Op {
    table: usize,
    key: u8,
    action: Action,
    version: u8,
    qty: i64,
}

fn op() -> impl Strategy<Value = Op> {
    let action = prop_oneof![
        Just(Action::Insert),
        Just(Action::Update),
        Just(Action::Merge),
        Just(Action::Save),
        Just(Action::Delete)
    ];
    (0..2usize, 0..4u8, action, 0..4u8, -5..50i64).prop_map(|(table, key, action, version, qty)| Op {
        table,
        key,
        action,
        version,
        qty,
    })
}

/// Runs ops against an authoritative replica; returns it and the committed log.
fn commit_all(ops: &[Op]) -> (Replica, Vec<ChangeEvent>) {
    let schema = schema();
    let policy = VersionPolicy::default();
    let mut state = Replica::new();
    let mut log = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let table = schema.table(["order_line", "note"][op.table]).unwrap();
        let key = RecordKey(format!("k{}", op.key));
        let current = state.get(&table.name, &key).cloned();
        let current_version = current.as_ref().map(mishkah_core::mutation::row_version).unwrap_or(0);
        let mut m = Mutation::new(&table.name, op.action, json!({"id": key.0, "qty": op.qty}));
        match op.version {
            1 => m = m.expecting(current_version),
            2 => m = m.expecting(current_version - 1), // stale
            3 => {
                m.record.insert("version".into(), (current_version + 1).into());
            }
            _ => {}
        }
        let ctx = ApplyContext::new(Timestamp(i as i64), &policy);
        if let Ok(change) = apply(table, current.as_ref(), &m, &ctx) {
            let event = ChangeEvent {
                sequence: log.len() as u64 + 1,
                event_id: format!("evt-{i}"),
                mutation_id: None,
                created_at: Timestamp(i as i64).to_iso(),
                transaction_id: None,
                change,
            };
            state.apply_event(&event);
            log.push(event);
        }
    }
    (state, log)
}

fn replica_at(log: &[ChangeEvent], cursor: u64) -> Replica {
    let mut r = Replica::new();
    for e in log.iter().take_while(|e| e.sequence <= cursor) {
        r.apply_event(e);
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_replica_at_any_cursor_converges_by_applying_the_delta(ops in prop::collection::vec(op(), 0..60), pick in 0..1000u64) {
        let (truth, log) = commit_all(&ops);
        let head = log.len() as u64;
        let cursor = if head == 0 { 0 } else { pick % (head + 1) };
        let mut replica = replica_at(&log, cursor);
        let delta = Delta::since(cursor, 1, head, &log).unwrap();
        replica.apply_delta(&delta).unwrap();
        prop_assert_eq!(replica.clone().normalized(), truth.clone().normalized());
        // Applying the same delta again changes nothing.
        replica.apply_delta(&delta).unwrap();
        prop_assert_eq!(replica.normalized(), truth.normalized());
    }

    #[test]
    fn deltas_compose(ops in prop::collection::vec(op(), 0..60), a in 0..1000u64, b in 0..1000u64) {
        let (truth, log) = commit_all(&ops);
        let head = log.len() as u64;
        let (c1, c2) = if head == 0 { (0, 0) } else { let (x, y) = (a % (head + 1), b % (head + 1)); (x.min(y), x.max(y)) };
        let mut replica = replica_at(&log, c1);
        let first = Delta::since(c1, 1, c2, log.iter().filter(|e| e.sequence <= c2)).unwrap();
        replica.apply_delta(&first).unwrap();
        prop_assert_eq!(replica.clone().normalized(), replica_at(&log, c2).normalized());
        replica.apply_delta(&Delta::since(c2, 1, head, &log).unwrap()).unwrap();
        prop_assert_eq!(replica.normalized(), truth.normalized());
    }

    #[test]
    fn every_change_bumps_the_row_version_by_one(ops in prop::collection::vec(op(), 0..60)) {
        let (_, log) = commit_all(&ops);
        let mut versions = std::collections::HashMap::new();
        for e in &log {
            let k = (e.change.table.clone(), e.change.key.clone());
            let before = versions.get(&k).copied();
            match before {
                Some(v) if v > 0 => prop_assert_eq!(e.change.version, v + 1),
                _ => prop_assert_eq!(e.change.version, 1), // insert into an empty slot
            }
            versions.insert(k, if e.change.row.is_some() { e.change.version } else { 0 });
        }
    }
}

#[test]
fn a_cursor_behind_the_compacted_log_must_resync() {
    let (_, log) = commit_all(&[
        Op { table: 1, key: 0, action: Action::Insert, version: 0, qty: 1 },
        Op { table: 1, key: 1, action: Action::Insert, version: 0, qty: 1 },
        Op { table: 1, key: 0, action: Action::Merge, version: 0, qty: 2 },
    ]);
    let retained = &log[2..];
    assert!(Delta::since(2, 3, 3, retained).is_ok());
    assert_eq!(Delta::since(1, 3, 3, retained), Err(DeltaError::CursorExpired { cursor: 1, oldest_retained: 3 }));
}

#[test]
fn a_delta_that_skips_changes_is_refused() {
    let mut replica = Replica::new();
    let delta = Delta { from: 5, to: 9, ..Delta::default() };
    assert!(replica.apply_delta(&delta).is_err());
}
