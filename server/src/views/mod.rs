//! Read models shared by REST and WebSocket: module snapshots and deltas, rendered for clients
//! ([`crate::render`]).

pub mod live;
pub mod page;

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
            let events = reader.events_after(cursor, MAX_DELTA_EVENTS as usize)?;
            Ok(Delta::since(cursor, oldest, head, &events).map(|d| crate::render::delta(schema, d, &view)))
        })
        .await
}
