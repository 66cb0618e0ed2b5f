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

/// What the renderer adds per event: nothing to hide (the common case, borrowed) and two hidden
/// fields of a 10-field row (one copy per commit; the hub shares the frame across subscribers).
fn bench_render(c: &mut Criterion) {
    let mut schema = Schema::from_json(&json!({"tables": {"employees": {"fields": {
        "id": {"type": "text", "primaryKey": true}, "fullName": {"type": "text"}, "role": {"type": "text"},
        "pinCode": {"type": "text"}, "phone": {"type": "text"}}}}}))
    .unwrap();
    let row = json!({"id": "emp-1", "fullName": "أحمد محمود", "role": "cashier", "pinCode": "1122", "phone": "+20 100",
                     "email": "a@example.com", "allowedDiscountRate": 0.1, "status": "active", "version": 3,
                     "updatedAt": "2025-12-06T14:22:20.349Z"});
    let event = ChangeEvent {
        sequence: 7,
        event_id: "evt-7".into(),
        mutation_id: Some("m-7".into()),
        created_at: "2025-12-06T14:22:20.349Z".into(),
        transaction_id: None,
        change: mishkah_core::Change {
            table: "employees".into(),
            key: RecordKey("emp-1".into()),
            kind: mishkah_core::ChangeKind::Update,
            row: Some(row.as_object().unwrap().clone()),
            version: 3,
            coerced: vec![],
            unknown_fields: vec![],
            tolerated: Vec::new(),
        },
    };
    let mut group = c.benchmark_group("render");
    let open = schema.table("employees").unwrap().clone();
    group.bench_function("event_nothing_hidden", |b| {
        b.iter(|| black_box(mishkah_core::render::client_event(Some(&open), black_box(&event)).is_some()))
    });
    let t = schema.tables.get_mut("employees").unwrap();
    t.hidden = vec!["pinCode".into(), "pin_code".into(), "phone".into()];
    let hidden = t.clone();
    group.bench_function("event_two_hidden_fields", |b| {
        b.iter(|| black_box(mishkah_core::render::client_event(Some(&hidden), black_box(&event)).is_some()))
    });
    group.finish();
}

/// Filling a partial insert: an `order_header` of the real POS schema's shape from 3 fields.
fn bench_fill(c: &mut Criterion) {
    let schema = Schema::from_json(&json!({"tables": {"order_header": {"fields": {
        "id": {"type": "text", "primaryKey": true}, "shiftId": {"type": "text", "nullable": false},
        "posId": {"type": "text", "nullable": false}, "posNumber": {"type": "integer", "nullable": false},
        "orderTypeId": {"type": "text", "nullable": false}, "statusId": {"type": "text", "nullable": false},
        "tableId": {"type": "text"}, "openedBy": {"type": "text", "nullable": false},
        "openedAt": {"type": "timestamp", "nullable": false}, "guests": {"type": "integer", "defaultValue": 1},
        "notes": {"type": "json", "defaultValue": []}, "subtotal": {"type": "decimal", "defaultValue": 0},
        "totalDue": {"type": "decimal", "defaultValue": 0}, "metadata": {"type": "json", "defaultValue": {}}}}}}))
    .unwrap();
    let table = schema.table("order_header").unwrap();
    let policy = VersionPolicy::default();
    let partial =
        Mutation::new("order_header", Action::Insert, json!({"id": "o1", "statusId": "open", "tableId": "T1"}));
    let full = Mutation::new(
        "order_header",
        Action::Insert,
        json!({"id": "o1", "shiftId": "s", "posId": "p",
        "posNumber": 1, "orderTypeId": "dine_in", "statusId": "open", "tableId": "T1", "openedBy": "u",
        "openedAt": "2025-12-06T14:22:20.349Z", "guests": 2, "notes": [], "subtotal": 0, "totalDue": 0, "metadata": {}}),
    );
    let mut group = c.benchmark_group("insert");
    let ctx = ApplyContext::new(Timestamp(1_765_030_940_349), &policy).on_branch("dar");
    group.bench_function("complete_row", |b| b.iter(|| black_box(apply(table, None, black_box(&full), &ctx).is_ok())));
    group.bench_function("three_fields_filled", |b| {
        b.iter(|| black_box(apply(table, None, black_box(&partial), &ctx).is_ok()))
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
            transaction_id: None,
            change: mishkah_core::Change {
                table: "order_line".into(),
                key: RecordKey(format!("line-{}", s % 50_000)),
                kind: mishkah_core::ChangeKind::Update,
                row: Some(json!({"id": format!("line-{}", s % 50_000), "qty": s}).as_object().unwrap().clone()),
                version: 1,
                coerced: vec![],
                unknown_fields: vec![],
                tolerated: Vec::new(),
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

/// A committed change against 10,000 live queries with distinct equality filters: what matching
/// costs a write (the hub does this once per commit, under its lock).
fn bench_live(c: &mut Criterion) {
    use mishkah_core::query::Filter;
    use mishkah_core::sync::live::{LiveIndex, LiveQuery, Window};
    let schema = Schema::from_json(&json!({"tables": [{"name": "orders", "fields": [
        {"name": "id", "type": "string", "primaryKey": true}, {"name": "zone", "type": "string"}]}]}))
    .unwrap();
    let table = schema.table("orders").unwrap().clone();
    let mut live = LiveIndex::default();
    for k in 0..10_000u64 {
        let filter = Filter::parse(&format!("zone = \"z{k}\"")).unwrap();
        live.watch(
            k,
            LiveQuery { table: "orders".into(), filter, window: Some(Window { sort: vec![], limit: 10_000 }) },
        );
        live.load(&table, k, vec![], false, 0);
    }
    let mut seq = 0;
    let mut group = c.benchmark_group("live");
    group.bench_function("change_against_10k_subscriptions_one_matches", |b| {
        b.iter(|| {
            seq += 1;
            let row =
                json!({"id": format!("o{seq}"), "zone": format!("z{}", seq % 10_000)}).as_object().unwrap().clone();
            let event = ChangeEvent {
                sequence: seq,
                event_id: String::new(),
                mutation_id: None,
                created_at: String::new(),
                transaction_id: None,
                change: mishkah_core::Change {
                    table: "orders".into(),
                    key: RecordKey(format!("o{seq}")),
                    kind: mishkah_core::ChangeKind::Insert,
                    row: Some(row),
                    version: 1,
                    coerced: vec![],
                    unknown_fields: vec![],
                    tolerated: Vec::new(),
                },
            };
            black_box(live.apply(&table, &event).len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_apply, bench_delta, bench_render, bench_fill, bench_live);
criterion_main!(benches);
