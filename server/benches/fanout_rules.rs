//! What the security rules cost the branch-wide fan-out, in process (no sockets): one committed
//! change handed to 100 subscribers of a branch, serialized and queued for each. Without rules;
//! with a `list` rule every subscriber binds alike (by role: one verdict per change); with one
//! that binds a claim each subscriber has its own value of (100 verdicts per change); and the
//! removal case (the row stops passing for everyone).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mishkah_core::rules::{Principal, RuleSet};
use mishkah_core::sync::ChangeEvent;
use mishkah_core::{Change, ChangeKind, RecordKey, Schema};
use mishkah_server::hub::{Hub, Published, Subscription};
use mishkah_server::metrics::Metrics;
use serde_json::{json, Value};

const SUBSCRIBERS: usize = 100;

fn published(access: &Arc<RuleSet>, schema: &Arc<Schema>, seats: i64, before_seats: Option<i64>) -> Published {
    let row = |seats: i64| json!({"id": "T1", "name": "bench", "seats": seats}).as_object().unwrap().clone();
    Published {
        branch: "b".into(),
        module: "pos".into(),
        event: Arc::new(ChangeEvent {
            sequence: 7,
            event_id: "evt-7".into(),
            mutation_id: Some("m-7".into()),
            created_at: "2026-12-01T00:00:00.000Z".into(),
            transaction_id: None,
            change: Change {
                table: "dining_tables".into(),
                key: RecordKey("T1".into()),
                kind: if before_seats.is_some() { ChangeKind::Update } else { ChangeKind::Insert },
                row: Some(row(seats)),
                version: 2,
                coerced: vec![],
                unknown_fields: vec![],
                tolerated: Vec::new(),
            },
        }),
        primary_key: json!({"id": "T1"}).as_object().unwrap().clone(),
        source: "ws",
        client_meta: json!({"requestId": "r-7"}),
        schema: schema.clone(),
        access: access.clone(),
        previous: before_seats.map(|s| Arc::new(row(s))),
        table_as_sent: None,
        txn_end: true,
        handed_at: std::time::Instant::now(),
    }
}

fn setup(rule: Option<&str>, claims: impl Fn(usize) -> Value) -> (Arc<Hub>, Vec<Subscription>, Arc<RuleSet>) {
    let access = Arc::new(match rule {
        None => RuleSet::open(),
        Some(rule) => {
            RuleSet::from_json(&json!({"modules": {"pos": {"tables": {"dining_tables": {"list": rule}}}}})).unwrap()
        }
    });
    let hub = Hub::new("bench".into(), Arc::new(Metrics::default()));
    let subs =
        (0..SUBSCRIBERS).map(|n| hub.subscribe("b", Arc::new(Principal::from_claims(claims(n))), false)).collect();
    (hub, subs, access)
}

fn bench_fanout(c: &mut Criterion) {
    let schema = Arc::new(
        Schema::from_json(&json!({"tables": {"dining_tables": {"fields": {
            "id": {"type": "text", "primaryKey": true}, "name": {"type": "text"}, "seats": {"type": "integer"}}}}}))
        .unwrap(),
    );
    let mut group = c.benchmark_group("fan-out to 100 subscribers");
    group.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    let cases: [(&str, Option<&str>, i64, Option<i64>); 4] = [
        ("no rules", None, 4, None),
        ("list rule by role (one verdict)", Some("@auth.role != \"guest\" && seats >= 0"), 4, None),
        ("list rule by a claim of each (100 verdicts)", Some("seats >= @auth.minSeats"), 4, None),
        ("a row leaving every subscriber (100 removals)", Some("seats >= @auth.minSeats"), -1000, Some(4)),
    ];
    for (name, rule, seats, before) in cases {
        let (hub, mut subs, access) =
            setup(rule, |n| json!({"sub": format!("u{n}"), "role": "cashier", "minSeats": -(n as i64)}));
        let p = published(&access, &schema, seats, before);
        group.bench_function(name, |b| {
            b.iter_batched(
                || (),
                |()| {
                    hub.fan_out(&p);
                    for s in &mut subs {
                        while s.try_recv().is_some() {}
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_fanout);
criterion_main!(benches);
