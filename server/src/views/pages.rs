//! A first sync in pages: every table of a module walked by key, a page at a time, each page
//! rendered as the hello's snapshot renders (rules, hidden fields, translations). Memory on both
//! sides is bounded by a page, not by the module, and a client that stops resumes where it was.
//!
//! Pages are read at different commits. Each carries the log's head when it was read (`sequence`);
//! a client that walked every page then asks for the delta since the first page's head, which
//! brings each row changed meanwhile to its newest state (and removes the deleted ones), so the
//! whole becomes the module at that delta's end.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::access::{Caller, View};
use crate::engine::ModuleHandle;
use crate::storage::StorageError;

/// Where a walk stands: the next page starts in `table`, after the row keyed `after` (at the
/// table's start without one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub table: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// Why a page cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PagesError {
    #[error("`{0}` is not a table of this module")]
    UnknownTable(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl PagesError {
    /// `table-not-found` or the storage's code.
    pub fn code(&self) -> &'static str {
        match self {
            PagesError::UnknownTable(_) => "table-not-found",
            PagesError::Storage(e) => e.code(),
        }
    }
}

/// The JSON text of one page: `{branchId, moduleId, sequence, tables: {t: [rows]}, keys: {t: [keys]},
/// next}`, where `next` is the [`Position`] to ask for next, `null` once every table has been
/// walked. At most `limit` stored rows are read (fewer are sent when the caller's rules hide some).
pub async fn page(
    handle: &Arc<ModuleHandle>,
    from: Option<Position>,
    limit: usize,
    lang: Option<&str>,
    caller: &Caller,
) -> Result<String, PagesError> {
    // Tables in the schema's order; a locked table sends no rows and is skipped whole.
    let order: Vec<String> = handle.schema.tables.values().filter(|t| !t.locked).map(|t| t.name.clone()).collect();
    let start = match &from {
        None => 0,
        Some(p) => order.iter().position(|t| *t == p.table).ok_or_else(|| PagesError::UnknownTable(p.table.clone()))?,
    };
    let after = from.and_then(|p| p.after);
    let (branch, module) = (handle.branch.clone(), handle.module.clone());
    let lang = lang.map(str::to_owned);
    let view = View::of(handle, caller);
    let limit = limit.max(1);
    let text = handle
        .read(move |reader, schema| {
            let (_, head) = reader.bounds()?;
            let quoted = |v: &str| serde_json::to_string(v).expect("a string serializes");
            let mut out = format!(
                "{{\"branchId\":{},\"moduleId\":{},\"sequence\":{head},\"tables\":{{",
                quoted(&branch),
                quoted(&module)
            );
            // Each table's keys beside its rows, in the same order: a client stores a row under
            // its key without working it out (or parsing the row).
            let mut keys = String::from("{");
            let (mut left, mut after, mut next) = (limit, after, None);
            for (i, name) in order.iter().enumerate().skip(start) {
                let Some(table) = schema.table(name) else { continue };
                if left == 0 {
                    next = Some(Position { table: name.clone(), after: None });
                    break;
                }
                if i > start {
                    out.push(',');
                    keys.push(',');
                }
                out.push_str(&quoted(name));
                out.push_str(":[");
                keys.push_str(&quoted(name));
                keys.push_str(":[");
                let mut rendered = super::snapshot_table(reader, schema, table, lang.as_deref(), &view, &mut out)?;
                let (mut read, mut sent, mut last) = (0, 0, None);
                reader.docs_by_key(table, after.take().as_deref(), left, &mut |key, doc| {
                    read += 1;
                    if rendered.push(doc)? {
                        if sent > 0 {
                            keys.push(',');
                        }
                        keys.push_str(&quoted(key));
                        sent += 1;
                    }
                    last = Some(key.to_owned());
                    Ok(())
                })?;
                out.push(']');
                keys.push(']');
                left -= read;
                if left == 0 {
                    // Full: this table may hold more (the next page tells).
                    next = Some(Position { table: name.clone(), after: last });
                    break;
                }
            }
            keys.push('}');
            out.push_str("},\"keys\":");
            out.push_str(&keys);
            out.push_str(",\"next\":");
            out.push_str(&serde_json::to_string(&next).expect("a position serializes"));
            out.push('}');
            Ok(out)
        })
        .await?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_reads_as_clients_send_it() {
        let p: Position = serde_json::from_str(r#"{"table":"order_line"}"#).unwrap();
        assert_eq!(p, Position { table: "order_line".into(), after: None });
        let text = serde_json::to_string(&Position { table: "t".into(), after: Some("k".into()) }).unwrap();
        assert_eq!(text, r#"{"table":"t","after":"k"}"#);
    }
}
