//! Throughput of the write path alone (no network): engine → writer thread → SQLite with
//! `synchronous=FULL` → ack. One producer pipelining its writes, and 32 concurrent producers each
//! waiting for every ack before the next write.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mishkah_core::{Action, Mutation};
use mishkah_server::datadir::DataDir;
use mishkah_server::engine::{Engine, EngineConfig, ModuleHandle};
use mishkah_server::hub::Hub;
use mishkah_server::metrics::Metrics;
use serde_json::{json, Value};

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

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (_dir, handle, metrics) = setup(&rt);
    let mut next = 0u64;
    let mut group = c.benchmark_group("write_path_full_durability");
    group.sample_size(10).measurement_time(Duration::from_secs(10));

    const PIPELINED: u64 = 20_000;
    group.throughput(Throughput::Elements(PIPELINED));
    group.bench_function("single_producer_pipelined", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start_at = next;
                next += PIPELINED;
                let h = handle.clone();
                total += rt.block_on(async move {
                    let started = Instant::now();
                    let mut acks = Vec::with_capacity(PIPELINED as usize);
                    for n in start_at..start_at + PIPELINED {
                        let h = h.clone();
                        // Spawned in order: the job queue keeps submission order.
                        acks.push(tokio::spawn(async move {
                            h.write(Mutation::new("dining_tables", Action::Insert, row(n)), "bench", Value::Null).await
                        }));
                    }
                    for a in acks {
                        a.await.unwrap().unwrap();
                    }
                    started.elapsed()
                });
            }
            total
        })
    });

    const PRODUCERS: u64 = 32;
    const EACH: u64 = 500;
    group.throughput(Throughput::Elements(PRODUCERS * EACH));
    group.bench_function("32_producers_each_awaiting_acks", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let base = next;
                next += PRODUCERS * EACH;
                let h = handle.clone();
                total += rt.block_on(async move {
                    let started = Instant::now();
                    let mut tasks = Vec::new();
                    for p in 0..PRODUCERS {
                        let h = h.clone();
                        tasks.push(tokio::spawn(async move {
                            for i in 0..EACH {
                                let n = base + p * EACH + i;
                                h.write(Mutation::new("dining_tables", Action::Insert, row(n)), "bench", Value::Null)
                                    .await
                                    .unwrap();
                            }
                        }));
                    }
                    for t in tasks {
                        t.await.unwrap();
                    }
                    started.elapsed()
                });
            }
            total
        })
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
