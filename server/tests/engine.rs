//! The write path in-process: an in-process subscriber sees each committed write exactly once,
//! only after it is readable, and failed writes publish nothing.

use std::sync::Arc;
use std::time::Duration;

use mishkah_core::{Action, Mutation};
use mishkah_server::datadir::DataDir;
use mishkah_server::engine::{Engine, EngineConfig};
use mishkah_server::hub::Hub;
use mishkah_server::metrics::Metrics;
use serde_json::{json, Value};

fn anyone() -> mishkah_server::engine::Sender {
    mishkah_server::engine::Sender::new(Arc::new(mishkah_core::rules::Principal::anonymous()), None, None)
}

async fn engine() -> (tempfile::TempDir, Arc<Engine>) {
    let (dir, engine, _) = engine_with(|_| {}).await;
    (dir, engine)
}

async fn engine_with(tune: impl FnOnce(&mut EngineConfig)) -> (tempfile::TempDir, Arc<Engine>, Arc<Metrics>) {
    engine_in(|_| {}, tune).await
}

/// An engine on a copy of our data directory, changed by `prepare` before it is loaded.
async fn engine_in(
    prepare: impl FnOnce(&std::path::Path),
    tune: impl FnOnce(&mut EngineConfig),
) -> (tempfile::TempDir, Arc<Engine>, Arc<Metrics>) {
    let dir = tempfile::tempdir().unwrap();
    mishkah_test_support::copy_dir(&mishkah_test_support::own_data_dir(), dir.path()).unwrap();
    prepare(dir.path());
    let data = DataDir::load(dir.path()).unwrap();
    let metrics = Arc::new(Metrics::default());
    let hub = Hub::new("test".into(), metrics.clone());
    let mut config = EngineConfig::new(data);
    tune(&mut config);
    let engine = Engine::start(config, hub, metrics.clone());
    (dir, engine, metrics)
}

#[tokio::test]
async fn every_committed_write_is_published_once_after_commit_and_failures_never() {
    let (_dir, engine) = engine().await;
    let handle = engine.module("demo", "pos").await.unwrap();
    let mut sub = engine.hub().subscribe("demo", anyone().who, false);
    let mut other = engine.hub().subscribe("elsewhere", anyone().who, false);

    let ok = |id: &str| Mutation::new("dining_tables", Action::Insert, json!({"id": id, "name": "n", "seats": 2}));
    let c1 = handle.write(ok("T-a"), "test", Value::Null, anyone()).await.unwrap();
    let dup = handle.write(ok("T-a"), "test", Value::Null, anyone()).await;
    assert_eq!(dup.unwrap_err().code(), "duplicate-key");
    let c2 = handle.write(ok("T-b").with_id("m-b"), "test", Value::Null, anyone()).await.unwrap();
    let replay = handle.write(ok("T-b").with_id("m-b"), "test", Value::Null, anyone()).await.unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.event.sequence, c2.event.sequence);

    let mut seen = Vec::new();
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_millis(300), sub.recv()).await {
        let v: Value = serde_json::from_str(frame.as_str()).unwrap();
        // By the time an event is out, its row is readable.
        let key = v["recordRef"]["key"].as_str().unwrap().to_owned();
        let table = handle.schema.table("dining_tables").unwrap().clone();
        let stored = handle.read(move |r, _| r.row(&table, &mishkah_core::RecordKey(key))).await.unwrap();
        assert!(stored.is_some());
        seen.push(v["sequence"].as_u64().unwrap());
    }
    assert_eq!(
        seen,
        vec![c1.event.sequence, c2.event.sequence],
        "one event per committed write, none for the failure or the replay"
    );
    assert!(other.try_recv().is_none(), "another branch hears nothing");
}

#[tokio::test]
async fn an_atomic_batch_commits_all_or_nothing() {
    let (_dir, engine) = engine().await;
    let handle = engine.module("demo", "pos").await.unwrap();
    let head = handle.head();
    let batch = vec![
        Mutation::new("dining_tables", Action::Insert, json!({"id": "T-x", "name": "n"})),
        Mutation::new("dining_tables", Action::Merge, json!({"id": "T-missing", "name": "n"})),
    ];
    let err = handle.write_atomic(batch, "test", Value::Null, anyone()).await.unwrap_err();
    assert_eq!(err.code(), "batch-aborted");
    assert_eq!(handle.head(), head, "nothing was logged");
    let table = handle.schema.table("dining_tables").unwrap().clone();
    let row = handle.read(move |r, _| r.row(&table, &mishkah_core::RecordKey("T-x".into()))).await.unwrap();
    assert!(row.is_none(), "the first write of the failed batch was rolled back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_starts_over_while_writes_never_pause() {
    // Checkpoints every few milliseconds, so the load below spans many of them.
    let (dir, engine, metrics) = engine_with(|c| c.store.maintenance_interval = Duration::from_millis(5)).await;
    let handle = engine.module("demo", "pos").await.unwrap();
    const PRODUCERS: usize = 16;
    const EACH: usize = 500;
    // Producers that each wait for their ack keep the writer busy with small commits, so the
    // checkpointer thread never finds the log still.
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let handle = handle.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    let row = json!({"id": format!("T-{p}-{i}"), "name": "n", "seats": 2});
                    handle
                        .write(Mutation::new("dining_tables", Action::Insert, row), "test", Value::Null, anyone())
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    let wal = dir.path().join("branches/demo/modules/pos/live/mishkah.sqlite3-wal");
    let size = std::fs::metadata(&wal).unwrap().len();
    let commits = metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("mishkah_commit_batch_size_count "))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .unwrap();
    // The file keeps its largest extent, so its size is the most the log ever held. Started over
    // at each checkpoint, that is a few milliseconds of commits; never started over, it is all of
    // them (53 MB here, measured before the writer finished checkpoints).
    assert!(size < 8 << 20, "WAL is {size} bytes after {commits} commits of {} writes", PRODUCERS * EACH);
}

/// Makes `order_header.invoiceSequence` unique in the demo schema.
fn unique_invoice_sequence(dir: &std::path::Path) {
    let path = dir.join("schemas/pos_schema.json");
    let mut schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let tables = schema["schema"]["tables"].as_array_mut().unwrap();
    let orders = tables.iter_mut().find(|t| t["name"] == "order_header").unwrap();
    let fields = orders["fields"].as_array_mut().unwrap();
    let field = fields.iter_mut().find(|f| f["name"] == "invoiceSequence").unwrap();
    field["unique"] = json!(true);
    std::fs::write(&path, schema.to_string()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_refused_by_a_unique_index_fails_alone_and_burns_no_number() {
    let (_dir, engine, _) = engine_in(unique_invoice_sequence, |_| {}).await;
    let handle = engine.module("demo", "pos").await.unwrap();
    let order = |extra: Value| {
        let mut record = json!({"orderType": "dine_in", "status": "open", "stage": "new"});
        record.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        Mutation::new("order_header", Action::Insert, record)
    };
    let mut mine = engine.hub().subscribe("demo", anyone().who, false);
    let first = handle.write(order(json!({})), "test", Value::Null, anyone()).await.unwrap();
    let taken = first.event.change.row.as_ref().unwrap()["invoiceSequence"].clone();

    // Queued together and in this order (`join!` polls them in turn), so they usually share one
    // transaction: the clash must fail alone there.
    let (before, clash, after) = tokio::join!(
        handle.write(order(json!({"notes": "before"})), "test", Value::Null, anyone()),
        handle.write(order(json!({"invoiceSequence": taken})), "test", Value::Null, anyone()),
        handle.write(order(json!({"notes": "after"})), "test", Value::Null, anyone()),
    );
    let outcomes = [before, clash, after];
    let refused = outcomes[1].as_ref().unwrap_err();
    assert_eq!(refused.code(), "unique-violation", "{refused}");
    let ids: Vec<String> =
        [&outcomes[0], &outcomes[2]].iter().map(|o| o.as_ref().unwrap().event.change.key.0.clone()).collect();
    let sequences: Vec<u64> = [&outcomes[0], &outcomes[2]].iter().map(|o| o.as_ref().unwrap().event.sequence).collect();
    assert_eq!(sequences, vec![first.event.sequence + 1, first.event.sequence + 2], "no gap in the log");
    assert_eq!(ids, vec!["DEMO-001002", "DEMO-001003"], "the refused insert burned no number");

    let mut published = Vec::new();
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_millis(300), mine.recv()).await {
        let v: Value = serde_json::from_str(frame.as_str()).unwrap();
        // The seed's events may still be on their way to the hub when the module is handed out.
        if v["table"] == "order_header" {
            published.push(v["recordRef"]["key"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(published, ["DEMO-001001", &ids[0], &ids[1]], "stored writes are published, the refused one is not");
    let table = handle.schema.table("order_header").unwrap().clone();
    let rows = handle.read(move |r, _| r.rows(&table)).await.unwrap();
    assert_eq!(rows.len(), 3);
}
