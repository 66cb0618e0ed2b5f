//! Read models shared by REST and WebSocket: module snapshots and deltas, rendered for clients
//! ([`crate::render`]).

pub mod live;
pub mod page;
pub mod pages;

use std::collections::BTreeMap;
use std::sync::Arc;

use mishkah_core::sync::{Delta, DeltaError};
use mishkah_core::wire::ModuleSnapshot;
use serde_json::json;

use crate::access::{Caller, View};
use crate::engine::ModuleHandle;
use crate::storage::StorageError;

/// Beyond this many events behind, a client gets a snapshot instead of a delta (cheaper to send).
pub const MAX_DELTA_EVENTS: u64 = 50_000;

/// All tables of a module at one commit, as `caller` may see them; `version` is that commit's
/// sequence. With `lang`, rows carry their `<t>_lang` translation's fields.
pub async fn module_snapshot(
    handle: &Arc<ModuleHandle>,
    lang: Option<&str>,
    caller: &Caller,
) -> Result<ModuleSnapshot, StorageError> {
    let (branch, module) = (handle.branch.clone(), handle.module.clone());
    let lang = lang.map(str::to_owned);
    let view = View::of(handle, caller);
    handle
        .read(move |reader, schema| {
            let (_, head) = reader.bounds()?;
            let mut tables = BTreeMap::new();
            for table in schema.tables.values() {
                tables.insert(table.name.clone(), reader.rows(table)?);
            }
            Ok(ModuleSnapshot {
                module_id: module,
                branch_id: branch,
                version: head,
                tables: crate::render::snapshot(schema, tables, lang.as_deref(), &view),
                meta: json!({"sequence": head, "lastUpdatedAt": crate::clock::now_iso()}),
            })
        })
        .await
}

/// [`module_snapshot`] as the JSON text of its `ModuleSnapshot`, written table by table and row
/// by row: the rows pass through memory one at a time (a table with nothing to hide, filter or
/// translate is copied as stored), so a hello costs the text it sends, not the module's rows as
/// values on top of it.
pub async fn module_snapshot_text(
    handle: &Arc<ModuleHandle>,
    lang: Option<&str>,
    caller: &Caller,
) -> Result<String, StorageError> {
    let (branch, module) = (handle.branch.clone(), handle.module.clone());
    let lang = lang.map(str::to_owned);
    let view = View::of(handle, caller);
    handle
        .read(move |reader, schema| {
            let (_, head) = reader.bounds()?;
            let mut out = String::new();
            let text = |v: &str| serde_json::to_string(v).expect("a string serializes");
            out.push_str("{\"moduleId\":");
            out.push_str(&text(&module));
            out.push_str(",\"branchId\":");
            out.push_str(&text(&branch));
            out.push_str(&format!(",\"version\":{head},\"tables\":{{"));
            for (i, table) in schema.tables.values().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&text(&table.name));
                out.push_str(":[");
                stream_table(reader, schema, table, lang.as_deref(), &view, &mut out)?;
                out.push(']');
            }
            out.push_str("},\"meta\":");
            out.push_str(&json!({"sequence": head, "lastUpdatedAt": crate::clock::now_iso()}).to_string());
            out.push('}');
            Ok(out)
        })
        .await
}

/// One table's rows into `out`, comma-separated, rendered by [`crate::render::SnapshotTable`].
fn stream_table(
    reader: &dyn crate::storage::ModuleRead,
    schema: &mishkah_core::Schema,
    table: &mishkah_core::Table,
    lang: Option<&str>,
    view: &View,
    out: &mut String,
) -> Result<(), StorageError> {
    if table.locked {
        return Ok(());
    }
    let mut rendered = snapshot_table(reader, schema, table, lang, view, out)?;
    reader.each_doc(table, &mut |doc| rendered.push(doc).map(drop))
}

/// A table's renderer for a snapshot (or a page of one): with `lang`, its `<t>_lang` rows read to
/// merge.
pub(crate) fn snapshot_table<'a>(
    reader: &dyn crate::storage::ModuleRead,
    schema: &mishkah_core::Schema,
    table: &'a mishkah_core::Table,
    lang: Option<&'a str>,
    view: &'a View,
    out: &'a mut String,
) -> Result<crate::render::SnapshotTable<'a>, StorageError> {
    let translations = match (lang, schema.table(&mishkah_core::render::translate::lang_table_name(&table.name))) {
        (Some(lang), Some(lang_table)) => Some((lang, lang_table, reader.rows(lang_table)?)),
        _ => None,
    };
    Ok(crate::render::SnapshotTable::new(table, translations, view, out))
}

/// The changes after `cursor`, coalesced, as `caller` may see them; `Err(DeltaError)` when the
/// client must resync in full.
pub async fn delta_since(
    handle: &Arc<ModuleHandle>,
    cursor: u64,
    caller: &Caller,
) -> Result<Result<Delta, DeltaError>, StorageError> {
    let view = View::of(handle, caller);
    handle
        .read(move |reader, schema| {
            let (oldest, head) = reader.bounds()?;
            if head.saturating_sub(cursor) > MAX_DELTA_EVENTS || cursor > head {
                // Too far behind (or a cursor from another database): a snapshot is the answer.
                return Ok(Err(DeltaError::CursorExpired { cursor, oldest_retained: head.max(oldest) }));
            }
            // Ask the core whether the log still covers the cursor before reading any event.
            if let Err(expired) = Delta::since(cursor, oldest, head, std::iter::empty()) {
                return Ok(Err(expired));
            }
            let events = reader.logged_after(cursor, MAX_DELTA_EVENTS as usize)?;
            let never_sent = crate::render::never_held(schema, &events, &view);
            Ok(Delta::since(cursor, oldest, head, events.iter().map(|l| &l.event)).map(|d| {
                let mut delta = crate::render::delta(schema, d, &view);
                // A row the caller could not hold at its cursor and has not seen since needs no
                // removal: its key alone would tell the caller it existed.
                for (table, changes) in &mut delta.tables {
                    changes.deleted.retain(|key| !never_sent.contains(&(table.clone(), key.clone())));
                }
                delta.tables.retain(|_, changes| !changes.rows.is_empty() || !changes.deleted.is_empty());
                delta
            }))
        })
        .await
}
