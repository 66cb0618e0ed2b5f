//! Reads that work at any size: `find`, `count` and `get` answer from the rows held in memory, or,
//! in a store whose module is larger than it keeps there ([`crate::state::ClientState::partial`]),
//! through IndexedDB's chunks: the summaries skip chunks that cannot hold a match and count
//! without reading rows; the chunks read are filtered by the core's evaluator, in key order,
//! stopping once a page is full when nothing else can change the answer.
//!
//! What IndexedDB does not hold yet is laid over it, newest last: confirmed changes not yet saved
//! (`Inner::unsaved`; a save under way is seen, its transaction began before the read's), then the
//! pending writes, over the rows they touch as held in memory (a write holds its row).

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use mishkah_core::query::Query;
use mishkah_core::{RecordKey, Row, Table};
use wasm_bindgen::prelude::*;

use crate::chunks::{count as summarized_count, may_match};
use crate::inner::Shared;
use crate::interop::now;
use crate::persist::Persist;

/// A partial store's view of one table at the moment a read starts.
struct Moment {
    persist: Rc<Persist>,
    table: String,
    schema: Option<Table>,
    /// Confirmed changes not yet in IndexedDB, the last one per key.
    unsaved: BTreeMap<String, Option<Row>>,
    /// Keys pending writes touch.
    pending: BTreeSet<RecordKey>,
}

impl Moment {
    /// `None` when the store holds every row in memory.
    fn of(shared: &Shared, table: &str) -> Option<Moment> {
        let inner = shared.borrow();
        if !inner.state.partial {
            return None;
        }
        let persist = inner.persist.clone()?;
        let unsaved = inner.unsaved.iter().filter(|(t, _, _)| t == table).map(|(_, k, r)| (k.0.clone(), r.clone()));
        Some(Moment {
            persist,
            table: table.to_owned(),
            schema: inner.state.schema.as_ref().and_then(|s| s.table(table)).cloned(),
            unsaved: unsaved.collect(),
            pending: inner.state.pending_keys(table),
        })
    }

    /// Holds the rows pending writes touch (a reopened store holds none yet), so the writes are
    /// laid over what they were checked against.
    async fn hold_pending(&self, shared: &Shared) -> Result<(), JsValue> {
        for key in &self.pending {
            hold(shared, &self.table, key).await?;
        }
        Ok(())
    }

    /// Nothing but IndexedDB has a say in this table's rows.
    fn quiet(&self) -> bool {
        self.unsaved.is_empty() && self.pending.is_empty()
    }

    /// The rows `query`'s filter selects as IndexedDB and the unsaved changes hold them, in key
    /// order; reading stops once `stop` rows are found.
    async fn scan(&self, query: &Query, stop: Option<usize>) -> Result<BTreeMap<RecordKey, Row>, JsValue> {
        let mut hits = BTreeMap::new();
        self.each(query, stop, |key, row| {
            hits.insert(key, row);
        })
        .await?;
        Ok(hits)
    }

    /// Calls `found` with each row [`Moment::scan`] selects, a chunk at a time: memory holds one
    /// chunk, not the matches.
    async fn each(
        &self,
        query: &Query,
        stop: Option<usize>,
        mut found: impl FnMut(RecordKey, Row),
    ) -> Result<(), JsValue> {
        let tx = self.persist.reading()?;
        let summaries = crate::chunked::summaries(&tx, &self.table).await?;
        let mut seen = 0;
        for summary in &summaries {
            if let (Some(t), Some(f)) = (&self.schema, &query.filter) {
                if !may_match(t, f, summary) {
                    continue;
                }
            }
            let Some(chunk) = crate::chunked::chunk_at(&tx, &self.table, &summary.first).await? else { continue };
            for (key, row) in chunk.keys.into_iter().zip(chunk.rows) {
                if !self.unsaved.contains_key(&key) && query.matches(&row) {
                    found(RecordKey(key), row);
                    seen += 1;
                }
            }
            if stop.is_some_and(|n| seen >= n) {
                break;
            }
        }
        for (key, row) in &self.unsaved {
            if let Some(row) = row.as_ref().filter(|r| query.matches(r)) {
                found(RecordKey(key.clone()), row.clone());
            }
        }
        Ok(())
    }

    /// `rows` with the pending writes laid over them.
    fn with_pending(&self, shared: &Shared, mut rows: BTreeMap<RecordKey, Row>) -> BTreeMap<RecordKey, Row> {
        let inner = shared.borrow();
        for key in &self.pending {
            match inner.state.confirmed.get(&self.table, key) {
                Some(held) => rows.insert(key.clone(), held.clone()),
                None => rows.remove(key),
            };
        }
        inner.state.overlay_view(&self.table, &mut rows, now());
        rows
    }
}

/// The rows of `table` `query` selects, as reads see them.
pub(crate) async fn find(shared: &Shared, table: &str, query: &Query) -> Result<Vec<Row>, JsValue> {
    let Some(moment) = Moment::of(shared, table) else {
        return Ok(query.run(shared.borrow().state.view_rows(table, now()).iter()));
    };
    // In key order a page is full after offset + limit matches, unless something else may add to
    // it or reorder it.
    let stop = query.limit.filter(|_| moment.quiet() && query.order_by.is_empty()).map(|l| l + query.offset);
    moment.hold_pending(shared).await?;
    let hits = moment.scan(query, stop).await?;
    let rows = moment.with_pending(shared, hits);
    Ok(query.run(rows.values()))
}

/// How many rows of `table` `query`'s filter selects (its limit and offset aside).
pub(crate) async fn count(shared: &Shared, table: &str, query: &Query) -> Result<u64, JsValue> {
    let whole = Query { limit: None, offset: 0, fields: Some(Vec::new()), ..query.clone() };
    let Some(moment) = Moment::of(shared, table) else {
        return Ok(whole.run(shared.borrow().state.view_rows(table, now()).iter()).len() as u64);
    };
    if moment.quiet() {
        if let Some(schema) = &moment.schema {
            let tx = moment.persist.reading()?;
            let summaries = crate::chunked::summaries(&tx, table).await?;
            if let Some(n) = summarized_count(schema, query.filter.as_ref(), &summaries) {
                return Ok(n);
            }
        }
        let mut n = 0;
        moment.each(&whole, None, |_, _| n += 1).await?;
        return Ok(n);
    }
    moment.hold_pending(shared).await?;
    let hits = moment.scan(&whole, None).await?;
    let rows = moment.with_pending(shared, hits);
    Ok(whole.run(rows.values()).len() as u64)
}

/// The row of `table` keyed `key`, as reads see it.
pub(crate) async fn get(shared: &Shared, table: &str, key: &RecordKey) -> Result<Option<Row>, JsValue> {
    let held = {
        let inner = shared.borrow();
        let held = inner.state.confirmed.get(table, key).is_some();
        (!inner.state.partial || held).then(|| inner.state.view_row(table, key, now()))
    };
    if let Some(row) = held {
        return Ok(row);
    }
    let Some(moment) = Moment::of(shared, table) else { return Ok(None) };
    moment.hold_pending(shared).await?;
    let stored = match moment.unsaved.get(&key.0) {
        Some(row) => row.clone(),
        None => crate::chunked::row(&moment.persist.reading()?, table, &key.0).await?,
    };
    let rows = stored.map(|r| BTreeMap::from([(key.clone(), r)])).unwrap_or_default();
    Ok(moment.with_pending(shared, rows).remove(key))
}

/// Holds the row a write of `table` keyed `key` is checked against (a partial store holds only
/// some), read as [`get`] reads it.
pub(crate) async fn hold(shared: &Shared, table: &str, key: &RecordKey) -> Result<(), JsValue> {
    let Some(moment) = Moment::of(shared, table) else { return Ok(()) };
    if shared.borrow().state.confirmed.get(table, key).is_some() {
        return Ok(());
    }
    let stored = match moment.unsaved.get(&key.0) {
        Some(row) => row.clone(),
        None => crate::chunked::row(&moment.persist.reading()?, table, &key.0).await?,
    };
    shared.borrow_mut().state.hold(table, key.clone(), stored);
    Ok(())
}

/// Answers again, through [`find`], the watchers of a partial store that watch `tables` (all of
/// them with `all`): later, in a task of their own, one query at a time and in order.
pub(crate) fn refresh(shared: &Shared, tables: &BTreeSet<String>, all: bool) {
    let mut inner = shared.borrow_mut();
    if !inner.state.partial {
        return;
    }
    let due: Vec<u32> = inner.watchers.iter().filter(|w| all || tables.contains(&w.table)).map(|w| w.id).collect();
    inner.watch_due.extend(due);
    if inner.watch_due.is_empty() || std::mem::replace(&mut inner.watching, true) {
        return;
    }
    let shared = shared.clone();
    wasm_bindgen_futures::spawn_local(async move {
        loop {
            // Changes of one burst of frames share one answer.
            let _ = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::resolve(&JsValue::NULL)).await;
            let due = std::mem::take(&mut shared.borrow_mut().watch_due);
            if due.is_empty() {
                shared.borrow_mut().watching = false;
                return;
            }
            for id in due {
                let watcher = {
                    let inner = shared.borrow();
                    inner.watchers.iter().find(|w| w.id == id).map(|w| (w.table.clone(), w.query.clone(), w.cb.clone()))
                };
                let Some((table, query, cb)) = watcher else { continue };
                match find(&shared, &table, &query).await {
                    Ok(rows) => crate::session::call_all(vec![(cb, crate::interop::to_js(&rows))]),
                    Err(e) => web_sys::console::warn_2(&"mishkah: a watch could not be answered".into(), &e),
                }
            }
        }
    });
}
