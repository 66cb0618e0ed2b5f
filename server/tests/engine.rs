//! The write path in-process: an in-process subscriber sees each committed write exactly once,
//! only after it is readable, and failed writes publish nothing.

use std::sync::Arc;
use std::time::Duration;

use mishkah_core::{Action, Mutation, VersionPolicy};
use mishkah_server::datadir::DataDir;
use mishkah_server::engine::{Engine, EngineConfig};
use mishkah_server::hub::Hub;
use mishkah_server::metrics::Metrics;
use mishkah_server::storage::Durability;
use serde_json::{json, Value};

async fn engine() -> (tempfile::TempDir, Arc<Engine>) {
    let dir = tempfile::tempdir().unwrap();
    mishkah_test_support::copy_dir(&mishkah_test_support::own_data_dir(), dir.path()).unwrap();
    let data = DataDir::load(dir.path()).unwrap();
    let metrics = Arc::new(Metrics::default());
    let hub = Hub::new("test".into(), metrics.clone());
    let engine = Engine::start(
        EngineConfig { data, durability: Durability::Full, policy: VersionPolicy::default(), max_db_pages: None },
        hub,
        metrics,
    );
    (dir, engine)
}

#[tokio::test]
async fn every_committed_write_is_published_once_after_commit_and_failures_never() {
    let (_dir, engine) = engine().await;
    let handle = engine.module("demo", "pos").await.unwrap();
    let mut sub = engine.hub().subscribe("demo");
    let mut other = engine.hub().subscribe("elsewhere");

    let ok = |id: &str| Mutation::new("dining_tables", Action::Insert, json!({"id": id, "name": "n", "seats": 2}));
    let c1 = handle.write(ok("T-a"), "test", Value::Null).await.unwrap();
    let dup = handle.write(ok("T-a"), "test", Value::Null).await;
    assert_eq!(dup.unwrap_err().code(), "duplicate-key");
    let c2 = handle.write(ok("T-b").with_id("m-b"), "test", Value::Null).await.unwrap();
    let replay = handle.write(ok("T-b").with_id("m-b"), "test", Value::Null).await.unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.event.sequence, c2.event.sequence);

    let mut seen = Vec::new();
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_millis(300), sub.rx.recv()).await {
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
    assert!(other.rx.try_recv().is_err(), "another branch hears nothing");
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
    let err = handle.write_atomic(batch, "test", Value::Null).await.unwrap_err();
    assert_eq!(err.code(), "batch-aborted");
    assert_eq!(handle.head(), head, "nothing was logged");
    let table = handle.schema.table("dining_tables").unwrap().clone();
    let row = handle.read(move |r, _| r.row(&table, &mishkah_core::RecordKey("T-x".into()))).await.unwrap();
    assert!(row.is_none(), "the first write of the failed batch was rolled back");
}
