//! What the writer and readers of one module promise, whatever the backend.

use mishkah_core::{ChangeKind, RecordKey, Row};
use serde_json::{json, Value};

use super::{change, plain_table, read, row, simple_table, Harness};
use crate::{Backend, Before, MutationStamp, NewEvent, Prefetch, StorageError, WriteTxn};

const NOW: &str = "2026-12-05T00:00:00.000Z";

fn log(txn: &mut dyn WriteTxn, c: &mishkah_core::Change, before: Option<&Row>) -> Result<u64, StorageError> {
    let event = NewEvent {
        change: c.clone(),
        mutation: None,
        source: "rest",
        meta: &Value::Null,
        created_at: NOW,
        actor: None,
        previous: before,
        table_as_sent: None,
        transaction: None,
    };
    Ok(txn.append_event(event)?.sequence)
}

pub(super) fn insert(txn: &mut dyn WriteTxn, table: &mishkah_core::Table, r: &Row) -> Result<u64, StorageError> {
    let c = change(ChangeKind::Insert, r["id"].as_str().unwrap_or_default(), Some(r.clone()), 1);
    txn.store_change(table, &c)?;
    log(txn, &c, None)
}

fn ids(rows: &[Row]) -> Vec<&str> {
    rows.iter().filter_map(|r| r["id"].as_str()).collect()
}

/// A write the store refuses (a unique key taken) fails alone: the transaction stays open, the
/// other writes of the batch commit.
pub fn a_refused_write_fails_alone(backend: &dyn Backend) {
    let harness = Harness::new(backend);
    let table = simple_table();
    let opened = harness.open(&[&table]);
    let mut writer = opened.writer;
    let mut tx = writer.begin().expect("begin");
    let ops = tx.ops();
    insert(ops, &table, &row("a", 1, "A")).expect("first write");
    let refused = insert(ops, &table, &row("b", 2, "A"));
    assert!(matches!(refused, Err(StorageError::Unique { .. })), "a taken unique key: {refused:?}");
    assert!(ops.in_transaction(), "a refused write does not end the transaction");
    insert(ops, &table, &row("c", 3, "C")).expect("a write after the refused one");
    tx.commit().expect("commit");
    let (rows, bounds) = read(&*opened.reads, |r| Ok((r.rows(&table)?, r.bounds()?)));
    assert_eq!(ids(&rows), ["a", "c"]);
    assert_eq!(bounds, (1, 2), "two events, numbered 1 and 2");
}

/// A transaction dropped or abandoned numbers nothing: the next commit takes the next sequence.
pub fn sequences_stay_gap_free(backend: &dyn Backend) {
    let harness = Harness::new(backend);
    let table = simple_table();
    let opened = harness.open(&[&table]);
    let mut writer = opened.writer;
    {
        let mut tx = writer.begin().expect("begin");
        assert_eq!(insert(tx.ops(), &table, &row("a", 1, "A")).expect("write"), 1);
    }
    assert_eq!(writer.head(), 0, "a dropped transaction publishes no head");
    let mut tx = writer.begin().expect("begin");
    assert_eq!(insert(tx.ops(), &table, &row("b", 1, "B")).expect("write"), 1);
    tx.commit().expect("commit");
    {
        let mut tx = writer.begin().expect("begin");
        insert(tx.ops(), &table, &row("c", 1, "C")).expect("write");
        tx.ops().abandon();
        assert!(!tx.ops().in_transaction());
    }
    let mut tx = writer.begin().expect("begin");
    assert_eq!(insert(tx.ops(), &table, &row("d", 1, "D")).expect("write"), 2);
    tx.commit().expect("commit");
    assert_eq!(writer.head(), 2);
    let (rows, events) = read(&*opened.reads, |r| Ok((r.rows(&table)?, r.events_after(0, 10)?)));
    assert_eq!(ids(&rows), ["b", "d"]);
    let seqs: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, [1, 2]);
}

/// A mutation id is found again only under the scope that sent it, with its digest.
pub fn mutation_ids_are_unique_per_sender(backend: &dyn Backend) {
    let harness = Harness::new(backend);
    let table = simple_table();
    let opened = harness.open(&[&table]);
    let mut writer = opened.writer;
    let stamped = |txn: &mut dyn WriteTxn, scope: &str, id: &str, r: Row| {
        let c = change(ChangeKind::Insert, r["id"].as_str().unwrap_or_default(), Some(r.clone()), 1);
        txn.store_change(&table, &c).expect("store");
        let mutation = Some(MutationStamp { scope, id, digest: &[7, 7] });
        let event = NewEvent {
            change: c,
            mutation,
            source: "ws",
            meta: &Value::Null,
            created_at: NOW,
            actor: None,
            previous: None,
            table_as_sent: None,
            transaction: None,
        };
        txn.append_event(event).expect("append")
    };
    let mut tx = writer.begin().expect("begin");
    let first = stamped(tx.ops(), "id:alice", "m1", row("a", 1, "A"));
    assert_eq!(first.mutation_id.as_deref(), Some("m1"), "the id reads back as sent");
    tx.commit().expect("commit");
    let mut tx = writer.begin().expect("begin");
    let replay = tx.ops().committed_event("id:alice", "m1").expect("lookup").expect("alice's m1 is known");
    assert_eq!((replay.event.sequence, replay.digest.as_deref()), (1, Some(&[7u8, 7][..])));
    assert!(tx.ops().committed_event("id:bob", "m1").expect("lookup").is_none(), "bob never sent m1");
    let bobs = stamped(tx.ops(), "id:bob", "m1", row("b", 1, "B"));
    let again = tx.ops().committed_event("id:bob", "m1").expect("lookup").expect("a retry in the same batch is known");
    assert_eq!((again.event.sequence, again.event.change.row.as_ref()), (2, bobs.change.row.as_ref()));
    assert_eq!(tx.ops().last_event_id().expect("last id"), Some(bobs.event_id.clone()), "the batch's own last event");
    tx.commit().expect("another sender may use the same id");
    let (alice, carol) = read(&*opened.reads, |r| {
        Ok((r.has_mutation_prefix("id:alice", "m")?, r.has_mutation_prefix("id:carol", "m")?))
    });
    assert!(alice && !carol);
}

/// Compaction forgets events through a sequence, never the head: the next event continues it.
pub fn compaction_bounds_the_log(backend: &dyn Backend) {
    let harness = Harness::new(backend);
    let table = simple_table();
    let opened = harness.open(&[&table]);
    let mut writer = opened.writer;
    let mut tx = writer.begin().expect("begin");
    for i in 0..5 {
        insert(tx.ops(), &table, &row(&format!("r{i}"), i, &format!("C{i}"))).expect("write");
    }
    tx.commit().expect("commit");
    writer.compact(3).expect("compact");
    let (bounds, events) = read(&*opened.reads, |r| Ok((r.bounds()?, r.events_after(0, 10)?)));
    assert_eq!(bounds, (4, 5));
    assert_eq!(events.first().map(|e| e.sequence), Some(4));
    writer.compact(100).expect("compact past the head");
    assert_eq!(read(&*opened.reads, |r| r.bounds()), (6, 5), "everything compacted, the head kept");
    let mut tx = writer.begin().expect("begin");
    assert_eq!(insert(tx.ops(), &table, &row("next", 9, "N")).expect("write"), 6);
    tx.commit().expect("commit");
}

/// A read snapshot sees one commit, however many the writer makes while it reads.
pub fn a_read_sees_one_commit(backend: &dyn Backend) {
    let harness = Harness::new(backend);
    let table = simple_table();
    let opened = harness.open(&[&table]);
    let mut writer = opened.writer;
    let mut tx = writer.begin().expect("begin");
    insert(tx.ops(), &table, &row("a", 1, "A")).expect("write");
    tx.commit().expect("commit");
    let (before, during, head_during) = read(&*opened.reads, |r| {
        let before = r.count(&table)?;
        let mut tx = writer.begin()?;
        insert(tx.ops(), &table, &row("b", 2, "B"))?;
        tx.commit()?;
        Ok((before, r.count(&table)?, r.bounds()?.1))
    });
    assert_eq!((before, during, head_during), (1, 1, 1), "the snapshot did not move");
    assert_eq!(read(&*opened.reads, |r| Ok((r.count(&table)?, r.bounds()?.1))), (2, 2), "a new snapshot does");
}

/// What is stored is read back exactly: key order, Unicode, numbers, nesting, unknown properties.
pub fn documents_come_back_byte_for_byte(backend: &dyn Backend) {
    let harness = Harness::new(backend);
    let table = simple_table();
    let opened = harness.open(&[&table]);
    let mut writer = opened.writer;
    let docs = [
        json!({"id": "z", "zeta": 1, "alpha": 2, "code": "Z", "n": 3}),
        json!({"id": "ar", "name": {"ar": "كُشَري بالصلصة", "en": "Koshary 🍲"}, "code": "ع", "n": -7}),
        json!({"id": "num", "n": 9007199254740993u64, "f": 0.1, "e": 1e300, "neg": -0.0, "code": null}),
        json!({"id": "deep", "a": [1, [2, {"b": null}], "\u{0}\u{1f}\"\\"], "n": "not a number", "code": "D"}),
    ];
    let rows: Vec<Row> = docs.iter().map(|d| d.as_object().expect("object").clone()).collect();
    let mut tx = writer.begin().expect("begin");
    for r in &rows {
        insert(tx.ops(), &table, r).expect("write");
    }
    tx.commit().expect("commit");
    let expected: Vec<String> = rows.iter().map(|r| serde_json::to_string(r).expect("json")).collect();
    let (docs, array, streamed, one) = read(&*opened.reads, |r| {
        let q = crate::PageQuery { limit: 10, ..Default::default() };
        let mut streamed = Vec::new();
        r.each_doc(&table, &mut |doc| {
            streamed.push(doc.to_owned());
            Ok(())
        })?;
        Ok((r.page_docs(&table, &q)?, r.page_array(&table, &q, 10)?, streamed, r.row(&table, &RecordKey("ar".into()))?))
    });
    assert_eq!(docs, expected);
    assert_eq!(streamed, expected);
    assert_eq!(array.array, format!("[{}]", expected.join(",")));
    assert_eq!((array.count, array.more, array.last.as_deref()), (4, false, expected.last().map(String::as_str)));
    assert_eq!(one.as_ref(), Some(&rows[1]));
}

/// Walking a table by key in pages yields every row once, in the keys' byte order, and a page
/// after a deleted key (the last row of the previous page, deleted meanwhile) goes on after it.
pub fn pages_by_key_walk_every_row_once(backend: &dyn Backend) {
    let harness = Harness::new(backend);
    let table = simple_table();
    let opened = harness.open(&[&table]);
    let mut writer = opened.writer;
    // Insertion order differs from key order; keys mix case, digits and non-ASCII.
    let keys = ["m", "B", "a", "z9", "z10", "é", "A", "0", "Z", "b", "ب", "_"];
    let mut tx = writer.begin().expect("begin");
    for (i, k) in keys.iter().enumerate() {
        insert(tx.ops(), &table, &row(k, i as i64, &format!("c{i}"))).expect("write");
    }
    tx.commit().expect("commit");
    let mut expected: Vec<&str> = keys.to_vec();
    expected.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let page = |after: Option<String>, limit| {
        read(&*opened.reads, |r| {
            let mut got = Vec::new();
            r.docs_by_key(&table, after.as_deref(), limit, &mut |key, doc| {
                let parsed: Row = serde_json::from_str(doc).map_err(|e| StorageError::Corrupt(e.to_string()))?;
                assert_eq!(parsed["id"].as_str(), Some(key), "each document comes with its own key");
                got.push(key.to_owned());
                Ok(())
            })?;
            Ok(got)
        })
    };
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let got = page(after.take(), 5);
        let Some(last) = got.last().cloned() else { break };
        walked.extend(got);
        after = Some(last);
    }
    assert_eq!(walked, expected);
    assert_eq!(page(None, 0), Vec::<String>::new(), "a limit of none reads none");
    // The last key read is deleted before the next page: the walk goes on after it.
    let first = page(None, 4);
    let mut tx = writer.begin().expect("begin");
    let gone = first[3].clone();
    let c = change(ChangeKind::Delete, &gone, None, 2);
    tx.ops().store_change(&table, &c).expect("delete");
    log(tx.ops(), &c, None).expect("log");
    tx.commit().expect("commit");
    assert_eq!(page(Some(gone), 100), expected[4..].iter().map(|k| k.to_string()).collect::<Vec<_>>());
}

/// Each event keeps the row before its change, source, meta, actor and the table's name as sent.
pub fn the_log_is_self_sufficient(backend: &dyn Backend) {
    let harness = Harness::new(backend);
    let table = simple_table();
    let opened = harness.open(&[&table]);
    let mut writer = opened.writer;
    let meta = json!({"device": "till-1"});
    let steps = [
        (change(ChangeKind::Insert, "a", Some(row("a", 1, "A")), 1), None),
        (change(ChangeKind::Update, "a", Some(row("a", 2, "A")), 2), Some(row("a", 1, "A"))),
        (change(ChangeKind::Delete, "a", None, 3), Some(row("a", 2, "A"))),
    ];
    let mut tx = writer.begin().expect("begin");
    for (c, before) in &steps {
        let ops = tx.ops();
        // The writer reads the row before it changes it (a backend may reuse that read).
        assert_eq!(ops.row(&table, &c.key).expect("read"), *before);
        ops.store_change(&table, c).expect("store");
        let event = NewEvent {
            change: c.clone(),
            mutation: None,
            source: "rest",
            meta: &meta,
            created_at: NOW,
            actor: Some("cashier-1"),
            previous: before.as_ref(),
            table_as_sent: Some("T"),
            transaction: Some("txn-1"),
        };
        let appended = ops.append_event(event).expect("append");
        assert_eq!(appended.transaction_id.as_deref(), Some("txn-1"));
    }
    tx.commit().expect("commit");
    let logged = read(&*opened.reads, |r| r.logged_after(0, 10));
    let befores: Vec<Before> = logged.iter().map(|l| l.before.clone()).collect();
    assert_eq!(befores, [Before::Absent, Before::Row(row("a", 1, "A")), Before::Row(row("a", 2, "A"))]);
    for l in &logged {
        assert_eq!((l.source.as_str(), &l.meta, l.actor.as_deref()), ("rest", &meta, Some("cashier-1")));
        assert_eq!(l.table_as_sent.as_deref(), Some("T"));
        assert_eq!(l.event.transaction_id.as_deref(), Some("txn-1"), "the transaction it was committed in");
    }
    let events = read(&*opened.reads, |r| r.events_after(0, 10));
    assert!(events.iter().all(|e| e.transaction_id.as_deref() == Some("txn-1")), "{events:?}");
    assert_eq!(logged[1].event.change.row, Some(row("a", 2, "A")));
}

/// A store that fails in the middle of a batch (fault injection: [`super::Failing`]) keeps
/// nothing of it; the writer goes on from the same head.
pub fn a_failure_mid_batch_keeps_nothing(backend: &dyn Backend) {
    let harness = Harness::new(backend);
    let table = simple_table();
    for fail_after in 0..4 {
        let opened = harness.open(&[&table]);
        let mut writer = opened.writer;
        let mut tx = writer.begin().expect("begin");
        insert(tx.ops(), &table, &row("kept", 0, "K")).expect("write");
        tx.commit().expect("commit");
        let mut tx = writer.begin().expect("begin");
        let mut failing = super::Failing::new(tx.ops(), fail_after);
        let mut failed = false;
        for i in 0..3 {
            if insert(&mut failing, &table, &row(&format!("r{i}"), i, &format!("C{i}"))).is_err() {
                failed = true;
                break;
            }
        }
        if failed {
            // What the engine's writer does when a write fails after its row was stored.
            tx.ops().abandon();
            drop(tx);
        } else {
            tx.commit().expect("commit");
        }
        let (rows, head) = read(&*opened.reads, |r| Ok((r.rows(&table)?, r.bounds()?.1)));
        match failed {
            true => assert_eq!((ids(&rows), head), (vec!["kept"], 1), "failing after {fail_after} writes"),
            false => assert_eq!(rows.len(), 4),
        }
        let mut tx = writer.begin().expect("begin");
        let next = insert(tx.ops(), &table, &row("after", 9, "AF")).expect("write");
        tx.commit().expect("commit");
        assert_eq!(next, head + 1, "the next write continues the log without a gap");
    }
}

/// A log copied event by event (`import_event`, `import_compaction`) reads back as the original:
/// sequences, ids, rows before, mutation ids and their digests, the compaction mark.
pub fn a_copied_log_reads_back_as_the_original(backend: &dyn Backend) {
    let harness = Harness::new(backend);
    let table = simple_table();
    let original = harness.open(&[&table]);
    let mut writer = original.writer;
    let mut tx = writer.begin().expect("begin");
    for i in 0..4 {
        let r = row(&format!("r{i}"), i, &format!("C{i}"));
        let c = change(ChangeKind::Insert, &format!("r{i}"), Some(r), 1);
        tx.ops().store_change(&table, &c).expect("store");
        let id = format!("m{i}");
        let event = NewEvent {
            change: c,
            mutation: Some(MutationStamp { scope: "id:alice", id: &id, digest: &[i as u8] }),
            source: "ws",
            meta: &Value::Null,
            created_at: NOW,
            actor: Some("alice"),
            previous: None,
            table_as_sent: None,
            transaction: Some("txn-copied"),
        };
        tx.ops().append_event(event).expect("append");
    }
    let before = row("r0", 0, "C0");
    let update = change(ChangeKind::Update, "r0", Some(row("r0", 9, "C0")), 2);
    tx.ops().store_change(&table, &update).expect("store");
    log(tx.ops(), &update, Some(&before)).expect("log");
    tx.commit().expect("commit");
    writer.compact(2).expect("compact");
    let (bounds, logged) = read(&*original.reads, |r| Ok((r.bounds()?, r.logged_after(0, 100)?)));

    let copy = harness.open(&[&table]);
    let mut target = copy.writer;
    target.import_compaction(bounds.0 - 1).expect("the mark");
    let mut tx = target.begin().expect("begin");
    for l in &logged {
        tx.ops().import_event(l).expect("import");
    }
    let replay = tx.ops().committed_event("id:alice", "m3").expect("lookup").expect("m3 copied");
    assert_eq!((replay.event.sequence, replay.digest), (4, Some(vec![3])));
    assert_eq!(replay.event.transaction_id.as_deref(), Some("txn-copied"));
    tx.commit().expect("commit");
    assert_eq!(target.head(), 5);
    let (copied_bounds, copied) = read(&*copy.reads, |r| Ok((r.bounds()?, r.logged_after(0, 100)?)));
    assert_eq!(copied_bounds, bounds);
    let show = |l: &[crate::LoggedEvent]| format!("{l:?}");
    assert_eq!(show(&copied), show(&logged), "the copy's log is the original's");
    let mut tx = target.begin().expect("begin");
    let next = insert(tx.ops(), &table, &row("new", 1, "N")).expect("write");
    tx.commit().expect("commit");
    assert_eq!(next, 6, "the copy continues the sequence");
}

/// Two writers of one module (two nodes on one database) commit at the same time: they take turns,
/// every write commits, and the log numbers them without a gap or a repeat.
pub fn two_writers_take_turns(backend: &dyn Backend) {
    let harness = Harness::new(backend);
    let table = simple_table();
    let (first, second) = harness.open_twice(&[&table]);
    let write = |mut writer: Box<dyn crate::ModuleWriter>, name: &'static str| {
        let table = table.clone();
        move || {
            for i in 0..40 {
                let mut tx = writer.begin().expect("begin");
                for j in 0..2 {
                    let id = format!("{name}-{i}-{j}");
                    insert(tx.ops(), &table, &row(&id, i, &id)).expect("write");
                }
                tx.commit().expect("commit");
            }
        }
    };
    std::thread::scope(|s| {
        s.spawn(write(first.writer, "a"));
        s.spawn(write(second.writer, "b"));
    });
    let (rows, events) = read(&*first.reads, |r| Ok((r.count(&table)?, r.logged_after(0, 1000)?)));
    assert_eq!(rows, 160);
    let seqs: Vec<u64> = events.iter().map(|e| e.event.sequence).collect();
    assert_eq!(seqs, (1..=160).collect::<Vec<u64>>(), "every event once, numbered without a gap");
}

/// Rows and mutation ids read ahead for a batch answer as the store would have without it, after
/// the batch wrote, deleted, or undid a savepoint (on a table whose writes may be refused and on
/// one whose writes cannot be).
pub fn a_prefetch_changes_no_read(backend: &dyn Backend) {
    let harness = Harness::new(backend);
    let (guarded, plain) = (simple_table(), plain_table());
    let opened = harness.open(&[&guarded, &plain]);
    let mut writer = opened.writer;
    let stamp = |txn: &mut dyn WriteTxn, id: &str, c: mishkah_core::Change| {
        let mutation = Some(MutationStamp { scope: "s", id, digest: &[1] });
        let event = NewEvent {
            change: c,
            mutation,
            source: "ws",
            meta: &Value::Null,
            created_at: NOW,
            actor: None,
            previous: None,
            table_as_sent: None,
            transaction: None,
        };
        txn.append_event(event).expect("append")
    };
    let mut tx = writer.begin().expect("begin");
    for table in [&guarded, &plain] {
        insert(tx.ops(), table, &row("a", 1, "A")).expect("a");
        insert(tx.ops(), table, &row("b", 1, "B")).expect("b");
    }
    let c = change(ChangeKind::Insert, "z", Some(row("z", 1, "Z")), 1);
    tx.ops().store_change(&plain, &c).expect("z");
    stamp(tx.ops(), "m1", c);
    tx.commit().expect("commit");

    let n = |txn: &mut dyn WriteTxn, table, key: &str| {
        txn.row(table, &RecordKey(key.into())).expect("read").map(|r| r["n"].as_i64().unwrap_or_default())
    };
    let mut tx = writer.begin().expect("begin");
    let txn = tx.ops();
    let mut wants = Prefetch { rows: Vec::new(), mutations: vec![("s", "m1"), ("s", "m2"), ("t", "m1")] };
    for table in [&guarded, &plain] {
        for key in ["a", "b", "c", "d"] {
            wants.rows.push((table, RecordKey(key.into())));
        }
    }
    txn.prefetch(&wants).expect("prefetch");
    for table in [&guarded, &plain] {
        let name = &table.name;
        txn.store_change(table, &change(ChangeKind::Update, "a", Some(row("a", 2, "A")), 2)).expect("update a");
        assert_eq!(n(txn, table, "a"), Some(2), "{name}: a read after a write sees the write");
        txn.store_change(table, &change(ChangeKind::Delete, "b", None, 2)).expect("delete b");
        assert_eq!(n(txn, table, "b"), None, "{name}: a deleted row is gone");
        txn.savepoint().expect("savepoint");
        txn.store_change(table, &change(ChangeKind::Insert, "c", Some(row("c", 1, "C")), 1)).expect("insert c");
        txn.store_change(table, &change(ChangeKind::Update, "a", Some(row("a", 3, "A")), 3)).expect("update a");
        assert_eq!((n(txn, table, "c"), n(txn, table, "a")), (Some(1), Some(3)), "{name}: inside the savepoint");
        txn.rollback_to().expect("undo");
        assert_eq!(n(txn, table, "c"), None, "{name}: an undone insert is gone");
        assert_eq!(n(txn, table, "a"), Some(2), "{name}: an undone update is undone");
        assert_eq!(n(txn, table, "d"), None, "{name}: a row that never was");
        assert_eq!(n(txn, table, "a"), Some(2), "{name}: read twice");
    }
    assert!(txn.committed_event("s", "m1").expect("lookup").is_some(), "a logged mutation");
    assert!(txn.committed_event("t", "m1").expect("lookup").is_none(), "another sender's");
    assert!(txn.committed_event("s", "m2").expect("lookup").is_none(), "not logged yet");
    stamp(txn, "m2", change(ChangeKind::Update, "a", Some(row("a", 2, "A")), 2));
    assert!(txn.committed_event("s", "m2").expect("lookup").is_some(), "logged in this batch");
    tx.commit().expect("commit");
    for table in [&guarded, &plain] {
        let rows = read(&*opened.reads, |r| r.rows(table));
        let got: Vec<(&str, i64)> =
            rows.iter().map(|r| (r["id"].as_str().unwrap_or_default(), r["n"].as_i64().unwrap_or_default())).collect();
        let want: &[(&str, i64)] = if table.name == plain.name { &[("a", 2), ("z", 1)] } else { &[("a", 2)] };
        assert_eq!(got, want, "{}: what was committed", table.name);
    }
}
