//! The reads of a live query: its window at one commit, and on resume which rows changed since the
//! client's cursor. The matching itself is `mishkah_core::sync::live`'s; the fan-out is
//! [`crate::hub::live`].

use std::collections::HashMap;
use std::sync::Arc;

use mishkah_core::query::{Bindings, Filter};
use mishkah_core::sync::live::{LiveQuery, Window};
use mishkah_core::sync::Delta;
use mishkah_core::wire::LiveSubscribe;
use mishkah_core::{RecordKey, Row, Table};

use super::page::{filter_of, parse_sort, prepare_filter, PageError};
use super::MAX_DELTA_EVENTS;
use crate::access::Caller;
use crate::engine::ModuleHandle;
use crate::storage::{Before, LoggedEvent, PageQuery};

/// A checked subscription.
#[derive(Debug, Clone)]
pub struct LiveSpec {
    pub table: Table,
    pub query: LiveQuery,
    pub fields: Option<Vec<String>>,
}

impl LiveSpec {
    /// Checks a `client:subscribe` against the table as the table route checks a page: a hidden
    /// field is `unknown-field`, the caller's `list` rule is
    /// ANDed in (so a row that stops passing it leaves the result as a removal), variables are
    /// bound now. Every live query is a window of at most `max_rows` (the server's page cap).
    pub fn prepare(
        handle: &ModuleHandle,
        table: &Table,
        req: &LiveSubscribe,
        max_rows: usize,
        caller: &Caller,
    ) -> Result<Self, PageError> {
        if table.locked {
            return Err(PageError::TableLocked(table.name.clone()));
        }
        let filter = filter_of(req.filter.as_ref())?;
        let filter = prepare_filter(handle, table, filter.as_ref(), caller)?.unwrap_or(Filter::And(Vec::new()));
        let sort = parse_sort(table, req.sort.as_deref())?;
        let limit = req.limit.unwrap_or(max_rows).clamp(1, max_rows.max(1));
        let query = LiveQuery { table: table.name.clone(), filter, window: Some(Window { sort, limit }) };
        Ok(LiveSpec { table: table.clone(), query, fields: req.fields.clone() })
    }

    fn window(&self) -> &Window {
        self.query.window.as_ref().expect("every live query has a window")
    }
}

/// A live query's rows at one commit.
#[derive(Debug)]
pub struct WindowRead {
    /// Stored form: the index needs every field; render before sending.
    pub rows: Vec<Row>,
    /// Rows beyond the window match too.
    pub more: bool,
    /// The sequence read at.
    pub at: u64,
    /// With a resume cursor the log still covers: the keys changed since it, each with whether
    /// the row as it was at the cursor matched the query (then the client may hold it).
    pub changed: Option<HashMap<String, bool>>,
}

/// Reads the window (and, given `since`, the keys of the table changed after it), all at one
/// commit.
pub async fn read_window(
    handle: &Arc<ModuleHandle>,
    spec: &LiveSpec,
    since: Option<u64>,
) -> Result<WindowRead, PageError> {
    let window = spec.window().clone();
    let query = PageQuery {
        limit: window.limit.saturating_add(1),
        filter: Some(spec.query.filter.clone()),
        sort: window.sort.clone(),
        ..PageQuery::default()
    };
    let table = spec.table.clone();
    let filter = spec.query.filter.clone();
    let read = handle
        .read(move |r, _| {
            let (oldest, head) = r.bounds()?;
            let mut rows = r.page(&table, &query)?;
            let more = rows.len() > window.limit;
            rows.truncate(window.limit);
            let covered = since.filter(|&cursor| {
                cursor <= head
                    && head - cursor <= MAX_DELTA_EVENTS
                    && Delta::since(cursor, oldest, head, std::iter::empty()).is_ok()
            });
            let changed = match covered {
                Some(cursor) => {
                    Some(changed_since(&r.logged_after(cursor, MAX_DELTA_EVENTS as usize)?, &table, &filter))
                }
                None => None,
            };
            Ok(WindowRead { rows, more, at: head, changed })
        })
        .await?;
    Ok(read)
}

/// The keys of `table` the log changed, each with whether its row before the first of those
/// changes matched `filter` (a row logged before the log kept it counts as matched).
fn changed_since(events: &[LoggedEvent], table: &Table, filter: &Filter) -> HashMap<String, bool> {
    let bindings = Bindings::at(crate::clock::now());
    let mut changed = HashMap::new();
    for l in events.iter().filter(|l| l.event.change.table == table.name) {
        changed.entry(l.event.change.key.0.clone()).or_insert_with(|| match &l.before {
            Before::Absent => false,
            Before::Row(row) => filter.eval_in(Some(table), row, &bindings),
            Before::NotKept => true,
        });
    }
    changed
}

/// The key of a stored row.
pub fn key_of(table: &Table, row: &Row) -> Option<String> {
    RecordKey::of(table, row).ok().map(|k| k.0)
}
