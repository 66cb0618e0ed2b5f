//! Micro-benchmarks of the core: applying mutations and computing deltas.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mishkah_core::mutation::ApplyContext;
use mishkah_core::sync::{ChangeEvent, Delta};
use mishkah_core::{apply, Action, Mutation, RecordKey, Schema, Timestamp, VersionPolicy};
use serde_json::json;

fn schema() -> Schema {
    Schema::from_json(&json!({"tables": {"order_line": {"fields": {
        "id": {"type": "text", "primaryKey": true}, "orderId": {"type": "text", "nullable": false},
        "qty": {"type": "decimal", "nullable": false}, "price": {"type": "decimal"}, "status": {"type": "text", "defaultValue": "draft"},
        "meta": {"type": "json"}}}}}))
    .unwrap()
}

fn mutations(n: usize) -> Vec<Mutation> {
    (0..n)
        .map(|i| {
            let key = format!("line-{}", i % 10_000);
            if i < 10_000 {
                Mutation::new(
                    "order_line",
                    Action::Insert,
                    json!({"id": key, "orderId": "o1", "qty": "2", "price": 12.5, "meta": {"n": i}}),
                )
            } else {
                Mutation::new("order_line", Action::Merge, json!({"id": key, "qty": i % 7}))
                    .expecting((i / 10_000) as i64)
            }
        })
        .collect()
}

fn bench_apply(c: &mut Criterion) {
    let schema = schema();
    let table = schema.table("order_line").unwrap();
    let policy = VersionPolicy::default();
    let ms = mutations(100_000);
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(ms.len() as u64));
    group.sample_size(10);
    group.bench_function("100k_mutations", |b| {
        b.iter(|| {
            let mut rows: HashMap<RecordKey, serde_json::Map<String, serde_json::Value>> =
                HashMap::with_capacity(10_000);
            for (i, m) in ms.iter().enumerate() {
                let key = RecordKey::of(table, &m.record).unwrap();
                let ctx = ApplyContext::new(Timestamp(i as i64), &policy);
                let change = apply(table, rows.get(&key), m, &ctx).unwrap();
                rows.insert(key, change.row.unwrap());
            }
            black_box(rows.len())
        })
    });
    group.finish();
}

fn bench_delta(c: &mut Criterion) {
    let log: Vec<ChangeEvent> = (1..=1_000_000u64)
        .map(|s| ChangeEvent {
            sequence: s,
            event_id: format!("evt-{s}"),
            mutation_id: None,
            created_at: String::new(),
            change: mishkah_core::Change {
                table: "order_line".into(),
                key: RecordKey(format!("line-{}", s % 50_000)),
                kind: mishkah_core::ChangeKind::Update,
                row: Some(json!({"id": format!("line-{}", s % 50_000), "qty": s}).as_object().unwrap().clone()),
                version: 1,
                coerced: vec![],
                unknown_fields: vec![],
            },
        })
        .collect();
    let head = log.len() as u64;
    let cursor = head - 100;
    let mut group = c.benchmark_group("delta");
    group
        .bench_function("100_of_1M_scan", |b| b.iter(|| black_box(Delta::since(cursor, 1, head, &log).unwrap().len())));
    group.bench_function("100_of_1M_range", |b| {
        b.iter_batched(
            || (),
            |_| {
                // What storage does: a range read by sequence, then coalescing.
                let start = log.partition_point(|e| e.sequence <= cursor);
                black_box(Delta::since(cursor, 1, head, &log[start..]).unwrap().len())
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_apply, bench_delta);
criterion_main!(benches);
