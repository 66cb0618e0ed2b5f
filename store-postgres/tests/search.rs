//! Search on PostgreSQL through its index: the core's words (an e-mail address split as the core
//! splits it, accents and Arabic folded), kept by every write, dropped when the searched fields
//! change.

use mishkah_core::query::Filter;
use mishkah_core::schema::Schema;
use mishkah_core::{Change, ChangeKind, RecordKey, Table};
use mishkah_store::conformance::read;
use mishkah_store::{Backend, ModuleAt, NewEvent, OpenOptions, Opened};
use mishkah_store_postgres::PostgresBackend;
use mishkah_test_support::postgres::TestDatabase;
use serde_json::{json, Value};

fn table() -> Table {
    let schema = Schema::from_json(&json!({"schema": {"tables": [{"name": "people", "fields": [
        {"name": "id", "type": "string", "primaryKey": true},
        {"name": "name", "type": "string"}, {"name": "note", "type": "string"}]}]}}))
    .expect("schema");
    schema.table("people").expect("people").clone()
}

fn write(opened: &mut Opened, table: &Table, kind: ChangeKind, id: &str, row: Option<Value>) {
    let mut tx = opened.writer.begin().expect("begin");
    let change = Change {
        table: table.name.clone(),
        key: RecordKey(id.into()),
        kind,
        row: row.map(|r| r.as_object().expect("object").clone()),
        version: 1,
        coerced: Vec::new(),
        unknown_fields: Vec::new(),
        tolerated: Vec::new(),
    };
    tx.ops().store_change(table, &change).expect("store");
    let event = NewEvent {
        change,
        mutation: None,
        source: "test",
        meta: &Value::Null,
        created_at: "2026-12-05T00:00:00.000Z",
        actor: None,
        previous: None,
        table_as_sent: None,
        transaction: None,
    };
    tx.ops().append_event(event).expect("log");
    tx.commit().expect("commit");
}

fn found(opened: &Opened, table: &Table, query: &str) -> Vec<String> {
    let hits = read(&*opened.reads, |r| r.search(table, query, &Filter::And(Vec::new()), 50));
    hits.iter().filter_map(|(row, _)| row["id"].as_str().map(str::to_owned)).collect()
}

#[test]
fn search_reads_through_an_index_of_the_cores_words_that_every_write_keeps() {
    let database = TestDatabase::new();
    let backend = PostgresBackend::new(&database.url).expect("url");
    let dir = tempfile::tempdir().expect("dir");
    let at = ModuleAt { branch: "b", module: "m", dir: dir.path() };
    let people = table();
    let mut opened = backend.open(&at, &[&people], &OpenOptions::default()).expect("open");
    opened.writer.mark_initialized("2026-12-05T00:00:00.000Z").expect("initialized");
    let row = |id: &str, name: &str, note: &str| Some(json!({"id": id, "name": name, "note": note}));
    write(&mut opened, &people, ChangeKind::Insert, "p1", row("p1", "Café Koshary", "mail ana@example.com"));
    write(&mut opened, &people, ChangeKind::Insert, "p2", row("p2", "مطعم الكُشَري", "secret plan"));
    opened.writer.enable_search(&people).expect("build the index");
    write(&mut opened, &people, ChangeKind::Insert, "p3", row("p3", "Kosher Deli", "example"));

    assert_eq!(found(&opened, &people, "cafe kosh"), ["p1"], "accents folded, last term a prefix");
    assert_eq!(found(&opened, &people, "example"), ["p1", "p3"], "an address split as the core splits it");
    assert_eq!(found(&opened, &people, "كشري"), ["p2"], "Arabic folded, the article dropped");
    assert_eq!(found(&opened, &people, "kosh"), ["p1", "p3"], "a row written after the index was built");
    assert!(found(&opened, &people, "a-b").is_empty(), "never a word");
    write(&mut opened, &people, ChangeKind::Delete, "p1", None);
    assert_eq!(found(&opened, &people, "kosh"), ["p3"], "a deleted row leaves the index");
    write(&mut opened, &people, ChangeKind::Update, "p3", row("p3", "Deli", "nothing"));
    assert!(found(&opened, &people, "kosh").is_empty(), "an updated row's old words leave it");
    drop(opened);

    // `note` made secret: it leaves what is searched, and the index built with it goes.
    let mut hidden = people.clone();
    hidden.hidden.push("note".into());
    let opened = backend.open(&at, &[&hidden], &OpenOptions::default()).expect("reopen");
    assert!(found(&opened, &hidden, "secret").is_empty(), "a secret field is never searched");
    assert_eq!(found(&opened, &hidden, "مطعم"), ["p2"], "the rest still found, without the index");
}

#[test]
fn a_node_that_opened_the_module_before_another_built_the_index_keeps_it_too() {
    let database = TestDatabase::new();
    let dir = tempfile::tempdir().expect("dir");
    let at = ModuleAt { branch: "b", module: "m", dir: dir.path() };
    let people = table();
    let (one, other) =
        (PostgresBackend::new(&database.url).expect("url"), PostgresBackend::new(&database.url).expect("url"));
    let mut first = one.open(&at, &[&people], &OpenOptions::default()).expect("open");
    first.writer.mark_initialized("2026-12-05T00:00:00.000Z").expect("initialized");
    let mut second = other.open(&at, &[&people], &OpenOptions::default()).expect("open on another node");
    let row = |id: &str, name: &str| Some(json!({"id": id, "name": name, "note": ""}));
    write(&mut second, &people, ChangeKind::Insert, "p1", row("p1", "Falafel King"));
    first.writer.enable_search(&people).expect("the first node builds the index");
    write(&mut second, &people, ChangeKind::Insert, "p2", row("p2", "Falafel Queen"));
    write(&mut second, &people, ChangeKind::Update, "p1", row("p1", "Shawarma King"));
    assert_eq!(found(&first, &people, "falafel"), ["p2"], "the other node's writes keep the index");
    assert_eq!(found(&second, &people, "shawarma"), ["p1"]);
}
