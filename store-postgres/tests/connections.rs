//! A node's connections to PostgreSQL follow its load, not how many modules it has open: every
//! module's writer takes a connection of the write pool for one batch at a time.

use mishkah_core::ChangeKind;
use mishkah_store::conformance::{change, row, simple_table};
use mishkah_store::{Backend, ModuleAt, OpenOptions};
use mishkah_store_postgres::PostgresBackend;
use mishkah_test_support::postgres::TestDatabase;

#[test]
fn many_open_modules_share_a_bounded_number_of_connections() {
    let database = TestDatabase::new();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let backend = PostgresBackend::new(&database.url).expect("a valid url");
    let table = simple_table();
    let modules = backend.max_connections() + 8;
    let mut writers = Vec::new();
    for i in 0..modules {
        let branch = format!("b{i}");
        let at = ModuleAt { branch: &branch, module: "m", dir: dir.path() };
        let opened = backend.open(&at, &[&table], &OpenOptions::default()).expect("open");
        let mut writer = opened.writer;
        let mut tx = writer.begin().expect("begin");
        tx.ops().store_change(&table, &change(ChangeKind::Insert, "a", Some(row("a", 1, "A")), 1)).expect("write");
        tx.commit().expect("commit");
        // As the engine's writer thread does after every batch.
        writer.between_batches();
        writers.push((writer, opened.reads));
    }
    let mut side = postgres::Client::connect(&database.url, postgres::NoTls).expect("connect");
    let open: i64 = side
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .expect("count")
        .get(0);
    assert!(
        (open as usize) <= backend.max_connections(),
        "{modules} open modules hold {open} connections, more than the backend's {}",
        backend.max_connections()
    );
    // Every module still writes after the others.
    for (writer, _) in &mut writers {
        let mut tx = writer.begin().expect("begin");
        tx.ops().store_change(&table, &change(ChangeKind::Insert, "b", Some(row("b", 2, "B")), 1)).expect("write");
        tx.commit().expect("commit");
        writer.between_batches();
    }
}
