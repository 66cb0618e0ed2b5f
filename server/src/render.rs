//! The one way rows leave the server. Every REST body, WebSocket frame and topic publish that
//! carries stored data gets it from here, so hidden fields, locked tables, translations and the
//! security rules' `list` scope (a [`View`]) are applied in one place. The decisions themselves
//! are `mishkah_core::render`'s and `mishkah_core::rules`'; this module applies them to the
//! server's read models.
//!
//! Cost on the hot path: a table with nothing hidden is passed through without a copy; an event
//! is rendered once per commit, not once per subscriber (the hub serializes the rendered frame
//! once and shares it).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use mishkah_core::render::{client_event, client_row, client_rows, translate};
use mishkah_core::sync::{ChangeEvent, Delta};
use mishkah_core::wire::{CommitFrame, CommitSite};
use mishkah_core::{RecordKey, Row, Schema, Table};

use crate::access::View;
use crate::storage::{Before, LoggedEvent};

/// Rows of one table, as clients see them.
pub fn rows(table: &Table, rows: Vec<Row>) -> Vec<Row> {
    client_rows(table, rows)
}

/// One row, as clients see it; `None` when it must not be seen at all.
pub fn row<'r>(table: &Table, row: &'r Row) -> Option<Cow<'r, Row>> {
    client_row(table, row)
}

/// A committed change, as clients see it; `None` for a change nobody may see (locked table).
pub fn event<'e>(schema: &Schema, event: &'e ChangeEvent) -> Option<Cow<'e, ChangeEvent>> {
    client_event(schema.table(&event.change.table), event)
}

/// Events of the log, as `view` sees them: changes of locked tables left out, changes whose row
/// the view does not admit left out, and a delete only for a row the view admitted before it.
pub fn events(schema: &Schema, events: Vec<LoggedEvent>, view: &View) -> Vec<LoggedEvent> {
    events
        .into_iter()
        .filter(|l| match schema.table(&l.event.change.table) {
            Some(t) => match &l.event.change.row {
                Some(row) => view.admits(t, row),
                None => might_hold(t, &l.before, view),
            },
            None => true,
        })
        .filter_map(|mut l| {
            let rendered = event(schema, &l.event)?.into_owned();
            l.event = rendered;
            Some(l)
        })
        .collect()
}

/// Whether a client with `view` may hold the row as it was before a change.
fn might_hold(table: &Table, before: &Before, view: &View) -> bool {
    match before {
        Before::Absent => false,
        Before::Row(row) => view.admits(table, row),
        Before::NotKept => true,
    }
}

/// A delta, as `view` sees it: locked tables left out, hidden fields stripped, and a row the view
/// does not admit (any more) sent as a tombstone, since the client may hold it from before.
pub fn delta(schema: &Schema, mut delta: Delta, view: &View) -> Delta {
    delta.tables.retain(|name, _| !schema.table(name).is_some_and(|t| t.locked));
    for (name, changes) in &mut delta.tables {
        let Some(t) = schema.table(name) else { continue };
        if !view.sees_everything() {
            let unseen: Vec<_> =
                changes.rows.iter().filter(|(_, row)| !view.admits(t, row)).map(|(k, _)| k.clone()).collect();
            for key in unseen {
                changes.rows.remove(&key);
                changes.deleted.insert(key);
            }
        }
        if !t.hidden.is_empty() {
            for row in changes.rows.values_mut() {
                row.retain(|k, _| !t.hides(k));
            }
        }
    }
    delta
}

/// The rows of `events` (the log after a client's cursor) that the client cannot hold: the view
/// admitted them neither as they were at the cursor (the row before their first change after it)
/// nor in any change since. A removal of one of them would only tell the client it existed.
pub fn never_held(schema: &Schema, events: &[LoggedEvent], view: &View) -> HashSet<(String, RecordKey)> {
    if view.sees_everything() {
        return HashSet::new();
    }
    let mut held: HashMap<(String, RecordKey), bool> = HashMap::new();
    for l in events {
        let change = &l.event.change;
        let Some(t) = schema.table(&change.table) else { continue };
        let seen = change.row.as_ref().is_some_and(|row| view.admits(t, row));
        let entry =
            held.entry((change.table.clone(), change.key.clone())).or_insert_with(|| might_hold(t, &l.before, view));
        *entry = *entry || seen;
    }
    held.into_iter().filter(|(_, held)| !*held).map(|(key, _)| key).collect()
}

/// One table of a snapshot written as JSON, row by row, as [`snapshot`] renders it: rows the view
/// does not admit left out, hidden fields stripped, translations merged; a table with none of
/// these to do is copied as stored.
pub struct SnapshotTable<'a> {
    table: &'a Table,
    translations: Option<(&'a str, Vec<Row>)>,
    view: &'a View,
    out: &'a mut String,
    as_stored: bool,
    first: bool,
}

impl<'a> SnapshotTable<'a> {
    /// `translations`: the language, its `<t>_lang` table and that table's stored rows.
    pub fn new(
        table: &'a Table,
        translations: Option<(&'a str, &Table, Vec<Row>)>,
        view: &'a View,
        out: &'a mut String,
    ) -> SnapshotTable<'a> {
        let translations = translations.map(|(lang, lang_table, mut list)| {
            if !view.sees_everything() {
                list.retain(|row| view.admits(lang_table, row));
            }
            (lang, rows(lang_table, list))
        });
        let as_stored = !table.locked && table.hidden.is_empty() && view.sees_everything() && translations.is_none();
        SnapshotTable { table, translations, view, out, as_stored, first: true }
    }

    /// One stored row (its JSON document); whether it was written (the view may leave it out).
    pub fn push(&mut self, doc: &str) -> Result<bool, crate::storage::StorageError> {
        if self.table.locked {
            return Ok(false);
        }
        if self.as_stored {
            self.write(doc);
            return Ok(true);
        }
        let row: Row = serde_json::from_str(doc)
            .map_err(|e| crate::storage::StorageError::Corrupt(format!("stored record is not a JSON object: {e}")))?;
        if !self.view.admits(self.table, &row) {
            return Ok(false);
        }
        let mut list = rows(self.table, vec![row]);
        if let Some((lang, translations)) = &self.translations {
            translate::merge_translations(&self.table.name, &mut list, translations, lang);
        }
        for row in list {
            self.write(&serde_json::to_string(&row).expect("a JSON map serializes"));
        }
        Ok(true)
    }

    fn write(&mut self, json: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.out.push_str(json);
        self.first = false;
    }
}

/// Every table of a module snapshot, as `view` sees it: locked tables empty, rows the view does
/// not admit left out, hidden fields stripped, and with `lang` the translated fields of
/// `<t>_lang` merged at top level.
pub fn snapshot(
    schema: &Schema,
    tables: BTreeMap<String, Vec<Row>>,
    lang: Option<&str>,
    view: &View,
) -> BTreeMap<String, Vec<Row>> {
    let mut out: BTreeMap<String, Vec<Row>> = tables
        .into_iter()
        .map(|(name, mut list)| {
            let list = match schema.table(&name) {
                Some(t) => {
                    if !view.sees_everything() {
                        list.retain(|row| view.admits(t, row));
                    }
                    rows(t, list)
                }
                None => list,
            };
            (name, list)
        })
        .collect();
    if let Some(lang) = lang {
        let names: Vec<String> = out.keys().cloned().collect();
        for name in names {
            let Some(translations) = out.get(&translate::lang_table_name(&name)).cloned() else { continue };
            if let Some(list) = out.get_mut(&name) {
                translate::merge_translations(&name, list, &translations, lang);
            }
        }
    }
    out
}

/// The table route's translation join (`?lang=&fallback=`), over rows already rendered.
/// `translations` are the rows of `<t>_lang`, raw: they are rendered here first.
pub fn attach_translations(
    lang_table: &Table,
    base: &str,
    list: &mut [Row],
    translations: Vec<Row>,
    lang: &str,
    fallback: &str,
) {
    let translations = rows(lang_table, translations);
    translate::attach_i18n(base, list, &translations, lang, fallback);
}

/// The ack or event frame of a committed change; its `entry.record` (with `include_record`) is
/// the row as clients see it, and absent for a locked table.
pub fn commit_frame(
    schema: &Schema,
    committed: &ChangeEvent,
    site: CommitSite<'_>,
    source: &str,
    client_meta: serde_json::Value,
    primary_key: serde_json::Map<String, serde_json::Value>,
    include_record: bool,
) -> CommitFrame {
    match event(schema, committed) {
        Some(seen) => CommitFrame::from_event(&seen, site, source, client_meta, primary_key, include_record),
        None => CommitFrame::from_event(committed, site, source, client_meta, primary_key, false),
    }
}
