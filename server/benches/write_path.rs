//! Throughput of the write path alone (no network): engine → writer thread → SQLite with
//! `synchronous=FULL` → ack. One producer pipelining its writes; 32 concurrent producers each
//! waiting for every ack before the next write; 32 producers each keeping 16 writes in flight;
//! transactions of ten writes across three tables (an order: header, six lines, three payments)
//! with a read each, pipelined; and the single producer again once the table has a full-text
//! index to keep.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, StreamExt};
use mishkah_core::{Action, Mutation};
use mishkah_server::datadir::DataDir;
use mishkah_server::engine::{Engine, EngineConfig, ModuleHandle, WriteOutcome};
use mishkah_server::hub::Hub;
use mishkah_server::metrics::Metrics;
use serde_json::{json, Value};

fn anyone() -> mishkah_server::engine::Sender {
    mishkah_server::engine::Sender::new(Arc::new(mishkah_core::rules::Principal::anonymous()), None, None)
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn setup(rt: &tokio::runtime::Runtime) -> (tempfile::TempDir, Arc<ModuleHandle>, Arc<Metrics>) {
    let dir = tempfile::tempdir().unwrap();
    mishkah_test_support::copy_dir(&mishkah_test_support::own_data_dir(), dir.path()).unwrap();
    let data = DataDir::load(dir.path()).unwrap();
    let metrics = Arc::new(Metrics::default());
    let m = metrics.clone();
    let handle = rt.block_on(async {
        let hub = Hub::new("bench".into(), metrics.clone());
        let engine = Engine::start(EngineConfig::new(data), hub, metrics);
        engine.module("demo", "pos").await.unwrap()
    });
    (dir, handle, m)
}

fn row(n: u64) -> Value {
    json!({"id": format!("t-{n}"), "name": {"en": "Table", "ar": "طاولة"}, "seats": 4, "zone": "indoor"})
}

/// `count` producers, each writing `each` rows with at most `window` writes awaiting their acks.
async fn producers(handle: &Arc<ModuleHandle>, base: u64, count: u64, each: u64, window: usize) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..count)
        .map(|p| {
            let h = handle.clone();
            tokio::spawn(async move {
                let mut in_flight = FuturesOrdered::<BoxFuture<'static, WriteOutcome>>::new();
                for i in 0..each {
                    if in_flight.len() == window {
                        in_flight.next().await.expect("a write in flight").expect("write acknowledged");
                    }
                    let h = h.clone();
                    let n = base + p * each + i;
                    in_flight.push_back(Box::pin(async move {
                        h.write(Mutation::new("dining_tables", Action::Insert, row(n)), "bench", Value::Null, anyone())
                            .await
                    }));
                }
                while let Some(ack) = in_flight.next().await {
                    ack.expect("write acknowledged");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("producer finished");
    }
    started.elapsed()
}

/// One producer writing `count` rows without waiting (spawned in order: the job queue keeps
/// submission order), until every ack is in.
async fn pipelined(handle: &Arc<ModuleHandle>, next: &mut u64, count: u64) -> Duration {
    let start_at = *next;
    *next += count;
    let started = Instant::now();
    let mut acks = Vec::with_capacity(count as usize);
    for n in start_at..start_at + count {
        let h = handle.clone();
        acks.push(tokio::spawn(async move {
            h.write(Mutation::new("dining_tables", Action::Insert, row(n)), "bench", Value::Null, anyone()).await
        }));
    }
    for a in acks {
        a.await.unwrap().unwrap();
    }
    started.elapsed()
}

/// Order `n` as a transaction: its header (read first: it must not exist), six lines, three
/// payments.
fn order(n: u64) -> mishkah_core::wire::TransactionRequest {
    let id = format!("o-{n}");
    let mut writes =
        vec![json!({"action": "insert", "table": "order_header", "record": {"id": id, "openedBy": "bench"}})];
    for l in 0..6 {
        writes.push(json!({"action": "insert", "table": "order_line", "record": {"id": format!("{id}-l{l}"),
            "orderId": id, "itemId": "item-1", "name": {"en": "Tea"}, "unitPrice": 10, "total": 10}}));
    }
    for p in 0..3 {
        writes.push(json!({"action": "insert", "table": "order_payment", "record": {"id": format!("{id}-p{p}"),
            "orderId": id, "methodId": "cash", "amount": 20}}));
    }
    serde_json::from_value(json!({"reads": [{"table": "order_header", "id": id, "exists": false}], "writes": writes}))
        .expect("a transaction")
}

/// One producer committing `count` transactions without waiting, until every answer is in.
async fn transactions(handle: &Arc<ModuleHandle>, next: &mut u64, count: u64) -> Duration {
    let caller = mishkah_server::access::Caller::new(Arc::new(mishkah_core::rules::Principal::anonymous()), "ws");
    let start_at = *next;
    *next += count;
    let orders: Vec<_> = (start_at..start_at + count).map(order).collect();
    let started = Instant::now();
    let mut answers = Vec::with_capacity(count as usize);
    for order in orders {
        let (h, caller) = (handle.clone(), caller.clone());
        answers
            .push(tokio::spawn(async move { mishkah_server::transactions::commit(&h, &caller, order, "bench").await }));
    }
    for a in answers {
        a.await.unwrap().unwrap();
    }
    started.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (_dir, handle, metrics) = setup(&rt);
    let mut next = 0u64;
    let mut group = c.benchmark_group("write_path_full_durability");
    group.sample_size(10).measurement_time(Duration::from_secs(10));

    const PIPELINED: u64 = 20_000;
    group.throughput(Throughput::Elements(PIPELINED));
    group.bench_function("single_producer_pipelined", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(pipelined(&handle, &mut next, PIPELINED))).sum())
    });

    // 32 producers: each waiting for every ack before its next write (window 1: the worst case
    // for group commit, at most 32 jobs per transaction), and each keeping 16 writes in flight
    // (a client replaying its outbox, a gateway connection carrying several devices).
    const PRODUCERS: u64 = 32;
    const EACH: u64 = 500;
    group.throughput(Throughput::Elements(PRODUCERS * EACH));
    for (name, window) in [("32_producers_each_awaiting_acks", 1), ("32_producers_16_in_flight_each", 16)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let base = next;
                    next += PRODUCERS * EACH;
                    total += rt.block_on(producers(&handle, base, PRODUCERS, EACH, window));
                }
                total
            })
        });
    }
    const TRANSACTIONS: u64 = 2_000;
    group.throughput(Throughput::Elements(TRANSACTIONS));
    let mut orders = 0u64;
    group.bench_function("transactions_of_10_writes_pipelined", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(transactions(&handle, &mut orders, TRANSACTIONS))).sum())
    });
    // Last: once searched, the table keeps its full-text index in every write from then on.
    let table = handle.schema.table("dining_tables").unwrap().clone();
    rt.block_on(handle.ensure_search(&table)).unwrap();
    group.throughput(Throughput::Elements(PIPELINED));
    group.bench_function("single_producer_pipelined_searched_table", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(pipelined(&handle, &mut next, PIPELINED))).sum())
    });
    group.finish();
    // Group-commit effectiveness, for the notes: jobs per transaction and time per transaction.
    for line in metrics.render().lines().filter(|l| {
        ["mishkah_commit_batch_size_sum", "mishkah_commit_batch_size_count", "mishkah_commit_seconds_sum"]
            .iter()
            .any(|name| l.starts_with(name))
    }) {
        println!("{line}");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
