//! The module registry (`mishkah.modules`), each module's schema, its internal tables, and the
//! tables generated from the schema with additive migration.

use mishkah_core::schema::{FieldType, Table};
use mishkah_store::layout::{fingerprint, is_safe_identifier, lacking_default, table_name, typed_fields};
use mishkah_store::schema_change::{self, TableImpact};
use mishkah_store::{OpenReport, StorageError};
use postgres::error::SqlState;

use crate::db;

/// The PostgreSQL type of a typed column. Text compares byte-wise (`COLLATE "C"`), as SQLite does.
pub(crate) fn pg_type(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Text | FieldType::Date | FieldType::Timestamp => "TEXT COLLATE \"C\"",
        FieldType::Integer | FieldType::Decimal => "NUMERIC",
        FieldType::Boolean => "BOOLEAN",
        FieldType::Json => "TEXT",
    }
}

/// A quoted, schema-qualified name.
pub(crate) fn qualified(schema: &str, name: &str) -> String {
    format!("\"{schema}\".\"{name}\"")
}

fn registry_exists(client: &mut postgres::Client) -> Result<bool, StorageError> {
    let row = client.query_one("SELECT to_regclass('mishkah.modules') IS NOT NULL", &[]).map_err(db)?;
    Ok(row.get(0))
}

/// Whether the module was initialized (seeded) on an earlier start.
pub(crate) fn initialized(client: &mut postgres::Client, branch: &str, module: &str) -> Result<bool, StorageError> {
    if !registry_exists(client)? {
        return Ok(false);
    }
    let row = client
        .query_opt("SELECT initialized_at FROM mishkah.modules WHERE branch = $1 AND module = $2", &[&branch, &module])
        .map_err(db)?;
    Ok(row.is_some_and(|r| r.get::<_, Option<String>>(0).is_some()))
}

/// What `tables` would do to the module's stored rows (`None`: never stored), for the tables
/// whose stored layout differs; one read-only transaction.
pub(crate) fn inspect(
    client: &mut postgres::Client,
    branch: &str,
    module: &str,
    tables: &[&Table],
) -> Result<Option<Vec<TableImpact>>, StorageError> {
    if !initialized(client, branch, module)? {
        return Ok(None);
    }
    let mut tx = client.build_transaction().read_only(true).start().map_err(db)?;
    let id: i64 = tx
        .query_one("SELECT id FROM mishkah.modules WHERE branch = $1 AND module = $2", &[&branch, &module])
        .map_err(db)?
        .get(0);
    let s = format!("m{id}");
    let mut out = Vec::new();
    for table in tables {
        let stored: Option<String> = tx
            .query_opt(
                &format!("SELECT columns FROM {} WHERE name = $1", qualified(&s, "mishkah_tables")),
                &[&table.name],
            )
            .map_err(db)?
            .map(|r| r.get(0));
        let Some(old) = stored.filter(|old| *old != fingerprint(table)) else { continue };
        let t = qualified(&s, &table_name(table));
        let impact = schema_change::impact(table, &old, &mut |f| each_doc(&mut tx, &t, f))?;
        if !impact.is_empty() {
            out.push(impact);
        }
    }
    Ok(Some(out))
}

/// Creates (when absent) and migrates the module's schema; returns its name and what was done.
/// Nodes opening the same module at once take turns (an advisory lock for the transaction). A
/// node opening a module another node claimed to seed calls `wait` first, before any of its DDL:
/// a migration's locks taken while the seeder writes could deadlock with it, and a seed write
/// aborted so would be lost from the seed.
pub(crate) fn open_module(
    client: &mut postgres::Client,
    branch: &str,
    module: &str,
    tables: &[&Table],
    wait: impl FnOnce(&mut postgres::Client) -> Result<(), StorageError>,
) -> Result<(String, OpenReport), StorageError> {
    let claimed = claim(client, branch, module)?;
    let schema = format!("m{}", claimed.id);
    if !claimed.seeds && !initialized(client, branch, module)? {
        wait(client)?;
    }
    let layout = layout_of(tables);
    let mut report = OpenReport { created: claimed.seeds, ..OpenReport::default() };
    if claimed.layout.as_deref() == Some(layout.as_str()) && !claimed.seeds {
        // Migrated to this very layout before: no DDL, so no lock on any of the module's tables
        // (`CREATE … IF NOT EXISTS` takes one even when nothing is created, and waits for, or
        // deadlocks with, another node's writes).
        report.adhoc_tables = adhoc_tables(client, &schema)?;
        return Ok((schema, report));
    }
    let mut tx = client.transaction().map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext('mishkah.ddl'))", &[]).map_err(db)?;
    create_internal(&mut tx, &schema)?;
    for table in tables {
        report.migrations.extend(migrate_table(&mut tx, &schema, table, false)?);
        crate::search::forget_if_changed(&mut tx, &schema, table)?;
    }
    report.adhoc_tables = adhoc_tables(&mut tx, &schema)?;
    tx.execute("UPDATE mishkah.modules SET layout = $2 WHERE id = $1", &[&claimed.id, &layout]).map_err(db)?;
    tx.commit().map_err(db)?;
    Ok((schema, report))
}

/// Bumped whenever what [`open_module`] creates changes, so that every module is migrated again.
const LAYOUT_VERSION: u32 = 4;

/// What a module's DDL follows from: this file's version and the tables as declared (their
/// fields, keys, indexes, search fields). A digest, kept in `mishkah.modules`.
fn layout_of(tables: &[&Table]) -> String {
    let declared = serde_json::json!([LAYOUT_VERSION, mishkah_core::search::SEARCH_TEXT_VERSION, tables]).to_string();
    ring::digest::digest(&ring::digest::SHA256, declared.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn adhoc_tables(client: &mut impl postgres::GenericClient, schema: &str) -> Result<Vec<String>, StorageError> {
    let sql = format!("SELECT name FROM {} WHERE adhoc ORDER BY name", qualified(schema, "mishkah_tables"));
    Ok(client.query(&sql, &[]).map_err(db)?.iter().map(|r| r.get(0)).collect())
}

/// A module as registered: its id (schema `m<id>`), whether this node claimed to seed it, and the
/// layout it was last migrated to.
struct Claimed {
    id: i64,
    seeds: bool,
    layout: Option<String>,
}

/// Registers the module (when new) and says whether this node claimed to seed it.
fn claim(client: &mut postgres::Client, branch: &str, module: &str) -> Result<Claimed, StorageError> {
    let mut tx = client.transaction().map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext('mishkah.ddl'))", &[]).map_err(db)?;
    // The registry's own DDL only when it is missing something: `ALTER TABLE` locks the registry
    // against every reader even when the column exists.
    let complete: i64 = tx
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'mishkah'
             AND table_name = 'modules' AND column_name IN ('seeding_since', 'layout')",
            &[],
        )
        .map_err(db)?
        .get(0);
    if complete < 2 {
        tx.batch_execute(
            "CREATE SCHEMA IF NOT EXISTS mishkah;
             CREATE TABLE IF NOT EXISTS mishkah.modules (
                 id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                 branch TEXT NOT NULL, module TEXT NOT NULL, initialized_at TEXT,
                 UNIQUE (branch, module));
             ALTER TABLE mishkah.modules ADD COLUMN IF NOT EXISTS seeding_since TIMESTAMPTZ;
             ALTER TABLE mishkah.modules ADD COLUMN IF NOT EXISTS layout TEXT;",
        )
        .map_err(db)?;
    }
    tx.execute(
        "INSERT INTO mishkah.modules (branch, module) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&branch, &module],
    )
    .map_err(db)?;
    let row = tx
        .query_one(
            "SELECT id, initialized_at, layout FROM mishkah.modules WHERE branch = $1 AND module = $2",
            &[&branch, &module],
        )
        .map_err(db)?;
    let id: i64 = row.get(0);
    // Several nodes may open a new module at once: one of them seeds it (a claim left by a node
    // that died while seeding lapses after ten minutes).
    let seeds = row.get::<_, Option<String>>(1).is_none()
        && tx
            .execute(
                "UPDATE mishkah.modules SET seeding_since = now() WHERE id = $1 AND initialized_at IS NULL
                 AND (seeding_since IS NULL OR seeding_since < now() - interval '10 minutes')",
                &[&id],
            )
            .map_err(db)?
            == 1;
    let layout = row.get(2);
    tx.commit().map_err(db)?;
    Ok(Claimed { id, seeds, layout })
}

fn create_internal(tx: &mut postgres::Transaction<'_>, s: &str) -> Result<(), StorageError> {
    let fresh_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS \"{s}\";
         CREATE TABLE IF NOT EXISTS \"{s}\".mishkah_head (
             id INT PRIMARY KEY CHECK (id = 1), head BIGINT NOT NULL, compacted_through BIGINT NOT NULL,
             db_id TEXT NOT NULL);
         INSERT INTO \"{s}\".mishkah_head VALUES (1, 0, 0, '{fresh_id}') ON CONFLICT DO NOTHING;
         CREATE TABLE IF NOT EXISTS \"{s}\".mishkah_events (
             seq BIGINT PRIMARY KEY, event_id TEXT NOT NULL, mutation_id TEXT COLLATE \"C\" UNIQUE,
             tbl TEXT NOT NULL, action TEXT NOT NULL, record_key TEXT NOT NULL, version BIGINT NOT NULL,
             row TEXT, created_at TEXT NOT NULL, source TEXT NOT NULL, meta TEXT, actor TEXT,
             mutation_digest BYTEA, prev_row TEXT, sent_table TEXT, txn TEXT);
         ALTER TABLE \"{s}\".mishkah_events ADD COLUMN IF NOT EXISTS txn TEXT;
         CREATE TABLE IF NOT EXISTS \"{s}\".mishkah_counters (
             counter_key TEXT PRIMARY KEY, last BIGINT NOT NULL, updated_at TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS \"{s}\".mishkah_tables (
             name TEXT PRIMARY KEY, sql_name TEXT NOT NULL, columns TEXT NOT NULL, adhoc BOOLEAN NOT NULL);
         CREATE TABLE IF NOT EXISTS \"{s}\".mishkah_search (tbl TEXT PRIMARY KEY, fields TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS \"{s}\".mishkah_archive (
             n BIGINT GENERATED ALWAYS AS IDENTITY, archive TEXT NOT NULL, tbl TEXT NOT NULL,
             record_key TEXT NOT NULL, doc TEXT NOT NULL, archived_at TEXT NOT NULL,
             PRIMARY KEY (archive, tbl, record_key));"
    ))
    .map_err(db)
}

/// Every `(key, document)` of a stored table (`t`: its qualified name), in key order.
pub(crate) fn each_doc(
    client: &mut impl postgres::GenericClient,
    t: &str,
    f: &mut dyn FnMut(&str, &str) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    for row in
        client.query(&format!("SELECT mishkah_key, mishkah_doc FROM {t} ORDER BY mishkah_key"), &[]).map_err(db)?
    {
        f(row.get(0), row.get(1))?;
    }
    Ok(())
}

/// Creates or additively migrates one table. Returns what it did, for the log.
pub(crate) fn migrate_table(
    tx: &mut postgres::Transaction<'_>,
    s: &str,
    table: &Table,
    adhoc: bool,
) -> Result<Vec<String>, StorageError> {
    let name = table_name(table);
    let t = qualified(s, &name);
    let columns = typed_fields(table);
    let fingerprint = fingerprint(table);
    let mut actions = Vec::new();
    let previous: Option<String> = tx
        .query_opt(&format!("SELECT columns FROM {} WHERE name = $1", qualified(s, "mishkah_tables")), &[&table.name])
        .map_err(db)?
        .map(|r| r.get(0));
    if let Some(old) = &previous {
        schema_change::check_key(table, old)?;
        if schema_change::retypes(table, old)? {
            let impact = schema_change::impact(table, old, &mut |f| each_doc(tx, &t, f))?;
            return Err(impact
                .refusal()
                .unwrap_or_else(|| StorageError::Corrupt("a type change went unreported".into())));
        }
    }
    let mut ddl = format!(
        "CREATE TABLE IF NOT EXISTS {t} (mishkah_row BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE, \
         mishkah_key TEXT COLLATE \"C\" PRIMARY KEY, mishkah_version BIGINT NOT NULL, mishkah_doc TEXT NOT NULL, \
         mishkah_misfits TEXT"
    );
    for (column, _, ty) in &columns {
        ddl.push_str(&format!(", \"{column}\" {}", pg_type(*ty)));
    }
    ddl.push(')');
    tx.batch_execute(&ddl).map_err(db)?;
    let existing: Vec<String> = tx
        .query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
            &[&s, &name],
        )
        .map_err(db)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for (column, _, ty) in &columns {
        if !existing.iter().any(|c| c.eq_ignore_ascii_case(column)) {
            tx.batch_execute(&format!("ALTER TABLE {t} ADD COLUMN \"{column}\" {}", pg_type(*ty))).map_err(db)?;
            actions.push(format!("added column {}.{column}", table.name));
        }
    }
    // The rows holding values stored as sent: found at once when a filter asks (`evaluate.rs`).
    tx.batch_execute(&format!(
        "CREATE INDEX IF NOT EXISTS \"mf_{name}\" ON {t} (mishkah_row) WHERE mishkah_misfits IS NOT NULL"
    ))
    .map_err(db)?;
    let column_of = |field: &str| columns.iter().find(|(_, f, _)| f == field).map(|(c, _, _)| c.clone());
    for field in &table.fields {
        let Some(column) = column_of(&field.name) else { continue };
        if field.primary_key && table.key_fields().len() == 1 {
            continue;
        }
        let plain = format!("i_{name}_{column}");
        if field.unique {
            if let Some(action) = unique_or_kept_plain(tx, &t, &format!("u_{name}_{column}"), &plain, &column)? {
                actions.push(format!("{}.{}: {action}", table.name, field.name));
            }
        } else if field.indexed {
            tx.batch_execute(&format!("CREATE INDEX IF NOT EXISTS \"{plain}\" ON {t} (\"{column}\")")).map_err(db)?;
        }
    }
    for column in lacking_default(table, &column_of) {
        tx.batch_execute(&format!(
            "CREATE INDEX IF NOT EXISTS \"bf_{name}_{column}\" ON {t} (\"{column}\") WHERE \"{column}\" IS NULL"
        ))
        .map_err(db)?;
    }
    for index in &table.indexes {
        let cols: Option<Vec<String>> = index.fields.iter().map(|f| column_of(f)).collect();
        let Some(cols) = cols else { continue };
        if !is_safe_identifier(&index.name) {
            continue;
        }
        let unique = if index.unique { "UNIQUE " } else { "" };
        let list = cols.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
        tx.batch_execute(&format!("CREATE {unique}INDEX IF NOT EXISTS \"ix_{name}_{}\" ON {t} ({list})", index.name))
            .map_err(db)?;
    }
    if previous.as_ref() != Some(&fingerprint) {
        tx.execute(
            &format!(
                "INSERT INTO {} (name, sql_name, columns, adhoc) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET sql_name = excluded.sql_name, columns = excluded.columns",
                qualified(s, "mishkah_tables")
            ),
            &[&table.name, &name, &fingerprint, &adhoc],
        )
        .map_err(db)?;
        if previous.is_none() {
            actions.push(format!("created table {}", table.name));
        }
    }
    Ok(actions)
}

/// Makes `column` unique, unless the stored rows already share values: then it stays a plain
/// index, no row is lost, and what was kept is reported.
fn unique_or_kept_plain(
    tx: &mut postgres::Transaction<'_>,
    t: &str,
    unique: &str,
    plain: &str,
    column: &str,
) -> Result<Option<String>, StorageError> {
    let mut attempt = tx.transaction().map_err(db)?;
    match attempt.batch_execute(&format!("CREATE UNIQUE INDEX IF NOT EXISTS \"{unique}\" ON {t} (\"{column}\")")) {
        Ok(()) => {
            attempt.commit().map_err(db)?;
            Ok(None)
        }
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            drop(attempt);
            tx.batch_execute(&format!("CREATE INDEX IF NOT EXISTS \"{plain}\" ON {t} (\"{column}\")")).map_err(db)?;
            Ok(Some("stored rows share values: kept a plain index instead of a unique one".into()))
        }
        Err(e) => Err(db(e)),
    }
}

/// Whether a table has a unique constraint beyond its key (then a write to it may be refused by
/// the database, and runs in a savepoint of its own).
pub(crate) fn has_unique(table: &Table) -> bool {
    table.fields.iter().any(|f| f.unique && !(f.primary_key && table.key_fields().len() == 1))
        || table.indexes.iter().any(|i| i.unique)
}
