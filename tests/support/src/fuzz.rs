//! Fuzzing helpers shared by the fuzz targets of every crate: a runner bounded by time
//! (`MISHKAH_FUZZ_SECS`, `scripts/fuzz`) and generators of outside input — arbitrary JSON and
//! protocol frames that are valid but for one field.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

/// Runs `test` on values of `strategy` until `MISHKAH_FUZZ_SECS` are spent (at least one round
/// of 256 cases), on a fresh random seed each round; panics with the failing input.
pub fn fuzz<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let secs: f64 = std::env::var("MISHKAH_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut rounds = 0u64;
    loop {
        let mut runner = TestRunner::new(Config { cases: 256, failure_persistence: None, ..Config::default() });
        if let Err(e) = runner.run(&strategy, &test) {
            panic!("{name}: {e}");
        }
        rounds += 1;
        if Instant::now() >= deadline {
            break;
        }
    }
    if secs > 0.0 {
        println!("{name}: {} inputs, no panic", rounds * 256);
    }
}

pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "client:hello",
            "client:publish",
            "client:query",
            "client:subscribe",
            "client:auth",
            "module:insert",
            "module:merge",
            "=",
            "in",
            "~",
            "@auth.role",
            "and",
            "or",
            "not",
            "where",
            "tables",
            "list",
            "",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "type",
                    "branchId",
                    "moduleId",
                    "table",
                    "record",
                    "action",
                    "requestId",
                    "filter",
                    "where",
                    "sort",
                    "limit",
                    "fields",
                    "subId",
                    "token",
                    "cursor",
                    "sync",
                    "aggregate",
                    "id",
                    "queryType",
                    "modules",
                    "tables",
                    "list",
                    "create",
                    "update",
                    "hidden",
                    "readOnly",
                    "in",
                    "=",
                    "or",
                    "x",
                ])
                .prop_map(str::to_owned),
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid frame of each kind, then bent: a field removed, retyped or replaced.
pub fn near_valid_frame() -> impl Strategy<Value = Value> {
    let base = prop::sample::select(vec![
        json!({"type": "client:hello", "branchId": "demo", "cursor": {"pos": 3}, "sync": "subscriptions", "token": "t"}),
        json!({"type": "client:publish", "moduleId": "pos", "table": "t", "action": "module:insert",
               "record": {"id": "x"}, "requestId": "r", "meta": {}}),
        json!({"type": "client:query", "table": "t", "queryType": "list", "filter": "a = 1", "sort": "-a",
               "limit": 5, "aggregate": {"groupBy": ["a"], "sum": ["b"]}}),
        json!({"type": "client:subscribe", "subId": "s", "moduleId": "pos", "table": "t", "filter": {"a": 1},
               "limit": 10, "cursor": 4}),
        json!({"type": "client:unsubscribe", "subId": "s"}),
        json!({"type": "client:auth", "token": "t", "requestId": 1}),
        json!({"type": "publish", "topic": "sync:demo::pos", "data": {"trans_id": "x", "tables": {}}}),
        json!({"type": "subscribe", "topic": "pos:sync:demo"}),
        json!({"type": "client:request:snapshot", "requestId": "r"}),
        json!({"type": "client:transaction", "moduleId": "pos", "requestId": "r", "mutationId": "m",
               "reads": [{"table": "t", "id": "x", "version": 2}, {"table": "t", "id": {"a": 1}, "exists": false}],
               "writes": [{"action": "insert", "table": "t", "record": {"id": "y"}, "expectedVersion": 1}]}),
    ]);
    (
        base,
        prop::sample::select(vec![
            "type",
            "branchId",
            "table",
            "record",
            "action",
            "filter",
            "limit",
            "subId",
            "token",
            "cursor",
            "topic",
            "data",
            "aggregate",
            "queryType",
            "moduleId",
            "reads",
            "writes",
        ]),
        json_value(),
        any::<bool>(),
    )
        .prop_map(|(mut frame, key, value, remove)| {
            let obj = frame.as_object_mut().expect("frames are objects");
            if remove {
                obj.remove(key);
            } else {
                obj.insert(key.to_owned(), value);
            }
            frame
        })
}
