//! Row writes of a batch held until they must be in the database (a read of the whole table, a
//! savepoint, the commit), then sent per table in two statements: one round trip per batch instead
//! of one per write. Only tables no unique index can refuse a write to are staged (a refused write
//! must fail alone, when it is made). A row read back inside the batch is answered from here.

use std::collections::HashMap;

/// A row as written: its version, document, the columns its value did not fit, typed values.
pub(crate) struct Write {
    pub version: i64,
    pub doc: String,
    pub misfits: Option<String>,
    pub typed: Vec<Option<String>>,
    /// The words of its search index, when the table keeps one.
    pub words: Option<String>,
}

struct Entry {
    /// Deleted earlier in the batch, then written again: deleted first, so it is a new row.
    deleted_before: bool,
    /// `None`: deleted.
    write: Option<Write>,
}

/// One table's staged rows, in the order they were first written.
#[derive(Default)]
pub(crate) struct StagedTable {
    order: Vec<String>,
    rows: HashMap<String, Entry>,
}

impl StagedTable {
    pub(crate) fn stage(&mut self, key: &str, write: Option<Write>) {
        match self.rows.get_mut(key) {
            None => {
                self.order.push(key.to_owned());
                self.rows.insert(key.to_owned(), Entry { deleted_before: false, write });
            }
            Some(entry) => {
                if entry.write.is_none() && write.is_some() {
                    entry.deleted_before = true;
                    // Written again after a delete: a new row, at the end of insertion order.
                    self.order.retain(|k| k != key);
                    self.order.push(key.to_owned());
                }
                entry.write = write;
            }
        }
    }

    /// `Some(Some(doc))`: written in this batch; `Some(None)`: deleted; `None`: not staged.
    pub(crate) fn get(&self, key: &str) -> Option<Option<&str>> {
        self.rows.get(key).map(|e| e.write.as_ref().map(|w| w.doc.as_str()))
    }

    /// The keys to delete first, then the rows to write, in order.
    pub(crate) fn into_statements(mut self) -> (Vec<String>, Vec<(String, Write)>) {
        let deletes = self
            .order
            .iter()
            .filter(|k| self.rows.get(*k).is_some_and(|e| e.deleted_before || e.write.is_none()))
            .cloned()
            .collect();
        let writes = self
            .order
            .into_iter()
            .filter_map(|k| {
                let write = self.rows.remove(&k)?.write?;
                Some((k, write))
            })
            .collect();
        (deletes, writes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(doc: &str) -> Option<Write> {
        Some(Write { version: 1, doc: doc.into(), misfits: None, typed: Vec::new(), words: None })
    }

    #[test]
    fn the_last_write_of_a_key_wins_and_a_delete_in_between_makes_a_new_row() {
        let mut t = StagedTable::default();
        t.stage("a", write("a1"));
        t.stage("b", write("b1"));
        t.stage("a", write("a2"));
        t.stage("b", None);
        t.stage("c", None);
        t.stage("c", write("c1"));
        assert_eq!(t.get("a"), Some(Some("a2")));
        assert_eq!(t.get("b"), Some(None));
        assert_eq!(t.get("z"), None);
        let (deletes, writes) = t.into_statements();
        assert_eq!(deletes, ["b", "c"]);
        let written: Vec<(&str, &str)> = writes.iter().map(|(k, w)| (k.as_str(), w.doc.as_str())).collect();
        assert_eq!(written, [("a", "a2"), ("c", "c1")]);
    }
}
