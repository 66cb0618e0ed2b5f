//! Opening a module migrated to the same layout before runs no DDL: it takes no lock on the
//! module's tables, so another node's long write (or a seed) never holds it up.

use std::sync::mpsc;
use std::time::Duration;

use mishkah_store::conformance::simple_table;
use mishkah_store::{Backend, ModuleAt, OpenOptions};
use mishkah_store_postgres::PostgresBackend;
use mishkah_test_support::postgres::TestDatabase;

#[test]
fn opening_an_unchanged_module_waits_for_no_lock_and_a_changed_one_still_migrates() {
    let database = TestDatabase::new();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let at = ModuleAt { branch: "b", module: "m", dir: dir.path() };
    let table = simple_table();
    let first = PostgresBackend::new(&database.url).expect("a valid url");
    let mut opened = first.open(&at, &[&table], &OpenOptions::default()).expect("open");
    opened.writer.mark_initialized("2026-12-06T00:00:00Z").expect("initialized");

    // Another session holds the strongest lock on the module's table (as a long transaction's
    // DDL would; an ordinary write's lock already blocks `CREATE INDEX`).
    let mut side = postgres::Client::connect(&database.url, postgres::NoTls).expect("connect");
    let schema: String = side
        .query_one("SELECT 'm' || id FROM mishkah.modules WHERE branch = 'b' AND module = 'm'", &[])
        .expect("the module")
        .get(0);
    let mut holding = side.transaction().expect("begin");
    holding.batch_execute(&format!("LOCK TABLE \"{schema}\".\"t_t\" IN ACCESS EXCLUSIVE MODE")).expect("lock");

    let (done, reopened) = mpsc::channel();
    let (url, dir_path) = (database.url.clone(), dir.path().to_path_buf());
    let second = std::thread::spawn(move || {
        let node = PostgresBackend::new(&url).expect("a valid url");
        let table = simple_table();
        let at = ModuleAt { branch: "b", module: "m", dir: &dir_path };
        let result = node.open(&at, &[&table], &OpenOptions::default()).map(|o| o.report.migrations);
        let _ = done.send(());
        result
    });
    let waited = reopened.recv_timeout(Duration::from_secs(20)).is_err();
    holding.rollback().expect("release the lock");
    let migrations = second.join().expect("the second node's thread").expect("open");
    assert!(!waited, "a node opening an unchanged module waited for a lock on its table");
    assert!(migrations.is_empty(), "{migrations:?}");

    // A new field is still added: the layout changed.
    let mut grown = simple_table();
    let mut field = grown.fields.last().expect("a field").clone();
    field.name = "added".into();
    field.column = "added".into();
    field.unique = false;
    grown.fields.push(field);
    let node = PostgresBackend::new(&database.url).expect("a valid url");
    let report = node.open(&at, &[&grown], &OpenOptions::default()).expect("open").report;
    assert!(report.migrations.iter().any(|m| m.contains("added")), "{:?}", report.migrations);
}
