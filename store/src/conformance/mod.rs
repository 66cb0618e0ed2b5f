//! One conformance suite for every backend (feature `conformance`). A backend's crate runs it with
//! [`crate::conformance_suite!`], giving an expression that makes its backend; each check is then a
//! test of its own. What the engine relies on is checked here once, not per backend:
//! a refused write fails alone; sequences stay gap-free after an abandoned transaction; mutation
//! ids are unique per sender; compaction bounds the log; a read sees one commit while the writer
//! commits; documents come back byte for byte; the log keeps the row before each change; filters,
//! sorts and keyset cursors mean exactly what the core's evaluator means; a new schema is measured
//! against the stored rows, and a type change under them refused.

mod failing;
pub mod filters;
mod random;
pub mod schema_change;
pub mod writes;

pub use failing::Failing;

use std::sync::atomic::{AtomicUsize, Ordering};

use mishkah_core::schema::Table;
use mishkah_core::{Change, ChangeKind, RecordKey, Row, Schema};
use serde_json::json;

use crate::{consistent, Backend, ModuleAt, ModuleRead, ModuleReads, OpenOptions, Opened, StorageError};

/// Fresh modules on one backend, each under a name of its own (a server backend keeps every
/// module in one database) and a directory of its own (an embedded one keeps files there).
pub struct Harness<'b> {
    backend: &'b dyn Backend,
    dir: tempfile::TempDir,
    next: AtomicUsize,
}

impl<'b> Harness<'b> {
    pub fn new(backend: &'b dyn Backend) -> Harness<'b> {
        Harness { backend, dir: tempfile::tempdir().expect("a temporary directory"), next: AtomicUsize::new(0) }
    }

    /// Opens a new, empty module with `tables`.
    pub fn open(&self, tables: &[&Table]) -> Opened {
        self.open_with(tables, &OpenOptions::default())
    }

    /// Opens a new, empty module with `tables` and `options`.
    pub fn open_with(&self, tables: &[&Table], options: &OpenOptions) -> Opened {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.open_module(n, tables, options)
    }

    /// Opens one new module twice: two writers of it (two processes, or two nodes). The first
    /// marks it initialized before the second opens it, as a server does once it has seeded it
    /// (a backend shared by nodes may make the second wait for that).
    pub fn open_twice(&self, tables: &[&Table]) -> (Opened, Opened) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut first = self.open_module(n, tables, &OpenOptions::default());
        first.writer.mark_initialized("2026-12-05T00:00:00.000Z").expect("mark the module initialized");
        (first, self.open_module(n, tables, &OpenOptions::default()))
    }

    fn open_module(&self, n: usize, tables: &[&Table], options: &OpenOptions) -> Opened {
        self.at(n, |at| self.backend.open(at, tables, options)).expect("the backend opens a module")
    }

    /// A new module's number, for [`Harness::at`].
    pub fn new_module(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Where module `n` lives.
    pub fn at<T>(&self, n: usize, f: impl FnOnce(&ModuleAt<'_>) -> T) -> T {
        let module = format!("conformance_{}_{n}", std::process::id());
        let dir = self.dir.path().join(&module);
        f(&ModuleAt { branch: "conformance", module: &module, dir: &dir })
    }
}

/// Runs `f` on one of `reads`' readers inside one read snapshot.
pub fn read<T>(reads: &dyn ModuleReads, f: impl FnOnce(&dyn ModuleRead) -> Result<T, StorageError>) -> T {
    let mut f = Some(f);
    let mut out = None;
    reads
        .with(&mut |reader| {
            if let Some(f) = f.take() {
                out = Some(consistent(reader, f));
            }
        })
        .expect("a reader");
    out.expect("the reader ran").expect("the read succeeds")
}

/// A table `t` with a string key `id`, an integer `n`, a unique `code` and a JSON `name`.
pub fn simple_table() -> Table {
    let schema = Schema::from_json(&json!({"schema": {"tables": [{"name": "t", "fields": [
        {"name": "id", "type": "string", "primaryKey": true},
        {"name": "n", "type": "integer"},
        {"name": "code", "type": "string", "unique": true},
        {"name": "name", "type": "json"}]}]}}))
    .expect("a valid schema");
    schema.table("t").expect("table t").clone()
}

/// A change of `row` in table `t`.
pub fn change(kind: ChangeKind, key: &str, row: Option<Row>, version: i64) -> Change {
    Change {
        table: "t".into(),
        key: RecordKey(key.into()),
        kind,
        row,
        version,
        coerced: Vec::new(),
        unknown_fields: Vec::new(),
        tolerated: Vec::new(),
    }
}

/// [`simple_table`] without its unique index: no write to it can be refused.
pub fn plain_table() -> Table {
    let mut table = simple_table();
    table.name = "p".into();
    table.sql_name = "p".into();
    for field in &mut table.fields {
        field.unique = false;
    }
    table.indexes.clear();
    table
}

/// A row of [`simple_table`].
pub fn row(id: &str, n: i64, code: &str) -> Row {
    json!({"id": id, "n": n, "code": code}).as_object().expect("an object").clone()
}

/// Makes each check of the suite a `#[test]` of the calling crate, on the backend `$backend`
/// (an expression evaluated once per test).
#[macro_export]
macro_rules! conformance_suite {
    ($backend:expr) => {
        #[test]
        fn a_refused_write_fails_alone_and_the_rest_of_the_batch_commits() {
            $crate::conformance::writes::a_refused_write_fails_alone(&$backend)
        }
        #[test]
        fn sequences_stay_gap_free_after_an_abandoned_transaction() {
            $crate::conformance::writes::sequences_stay_gap_free(&$backend)
        }
        #[test]
        fn mutation_ids_are_unique_per_sender() {
            $crate::conformance::writes::mutation_ids_are_unique_per_sender(&$backend)
        }
        #[test]
        fn compaction_bounds_the_log() {
            $crate::conformance::writes::compaction_bounds_the_log(&$backend)
        }
        #[test]
        fn a_read_sees_one_commit_while_the_writer_commits() {
            $crate::conformance::writes::a_read_sees_one_commit(&$backend)
        }
        #[test]
        fn documents_come_back_byte_for_byte() {
            $crate::conformance::writes::documents_come_back_byte_for_byte(&$backend)
        }
        #[test]
        fn pages_by_key_walk_every_row_once_whatever_is_deleted_meanwhile() {
            $crate::conformance::writes::pages_by_key_walk_every_row_once(&$backend)
        }
        #[test]
        fn the_log_keeps_what_a_reader_that_did_not_write_needs() {
            $crate::conformance::writes::the_log_is_self_sufficient(&$backend)
        }
        #[test]
        fn two_writers_of_one_module_take_turns_and_number_without_gaps() {
            $crate::conformance::writes::two_writers_take_turns(&$backend)
        }
        #[test]
        fn a_copied_log_reads_back_as_the_original() {
            $crate::conformance::writes::a_copied_log_reads_back_as_the_original(&$backend)
        }
        #[test]
        fn a_store_failing_mid_batch_keeps_nothing_of_it() {
            $crate::conformance::writes::a_failure_mid_batch_keeps_nothing(&$backend)
        }
        #[test]
        fn a_prefetch_changes_no_read_whatever_the_batch_writes_or_undoes() {
            $crate::conformance::writes::a_prefetch_changes_no_read(&$backend)
        }
        #[test]
        fn filters_select_what_the_core_evaluator_selects() {
            $crate::conformance::filters::select_what_the_core_selects(&$backend)
        }
        #[test]
        fn contains_decides_as_the_core_in_pages_counts_and_aggregates() {
            $crate::conformance::filters::contains_decides_as_the_core(&$backend)
        }
        #[test]
        fn keyset_cursors_walk_the_sorted_order_once() {
            $crate::conformance::filters::cursors_walk_the_sorted_order_once(&$backend)
        }
        #[test]
        fn a_new_schema_is_measured_against_the_stored_rows_and_a_type_change_refused() {
            $crate::conformance::schema_change::measured_and_refused(&$backend)
        }
    };
}
