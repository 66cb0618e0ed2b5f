//! Nodes opening a new module at once: one seeds it, the others wait for the whole seed.

use std::sync::mpsc;
use std::time::Duration;

use mishkah_store::conformance::simple_table;
use mishkah_store::{Backend, ModuleAt, OpenOptions};
use mishkah_store_postgres::PostgresBackend;
use mishkah_test_support::postgres::TestDatabase;

#[test]
fn a_node_opens_a_module_another_node_seeds_only_once_the_seed_is_whole() {
    let database = TestDatabase::new();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let at = ModuleAt { branch: "b", module: "m", dir: dir.path() };
    let table = simple_table();
    let seeder = PostgresBackend::new(&database.url).expect("a valid url");
    let mut seeding = seeder.open(&at, &[&table], &OpenOptions::default()).expect("open");
    assert!(seeding.report.created, "the first node claims the seed");

    let (done, opened) = mpsc::channel();
    let url = database.url.clone();
    let dir_path = dir.path().to_path_buf();
    let other = std::thread::spawn(move || {
        let node = PostgresBackend::new(&url).expect("a valid url");
        let table = simple_table();
        let at = ModuleAt { branch: "b", module: "m", dir: &dir_path };
        let result = node.open(&at, &[&table], &OpenOptions::default()).map(|o| o.report.created);
        let _ = done.send(result.is_ok());
        result
    });
    assert!(
        opened.recv_timeout(Duration::from_millis(500)).is_err(),
        "the other node must not serve the module while its seed is half written"
    );
    seeding.writer.mark_initialized("2026-12-05T00:00:00Z").expect("mark the seed done");
    assert_eq!(opened.recv_timeout(Duration::from_secs(10)), Ok(true), "it opens once the seed is done");
    let created = other.join().expect("the other node's thread").expect("open");
    assert!(!created, "and does not seed it again");
}
