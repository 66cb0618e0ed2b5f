//! Which live queries hold which rows, for a store opened with `{sync: "subscriptions"}`: the
//! device keeps a row while at least one subscription holds it (or, after an unsubscribe with a
//! TTL, until the TTL runs out). Kept in IndexedDB beside the rows, so a reload resumes every
//! subscription from its cursor and `watch` works offline over what is held.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One subscription as the store remembers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubRecord {
    pub table: String,
    /// The `client:subscribe` fields besides ids (`filter`, `sort`, `limit`, `fields`).
    pub request: Value,
    pub keys: BTreeSet<String>,
    /// The last `cursor` the server gave: resume from it.
    #[serde(default)]
    pub cursor: Option<u64>,
    /// Keep released rows this long after unsubscribing.
    #[serde(default)]
    pub ttl_ms: Option<f64>,
}

/// Every subscription of the store, and rows kept past their last one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Membership {
    pub subs: BTreeMap<String, SubRecord>,
    /// `(table, key)` → when it may go.
    #[serde(default)]
    lingering: Vec<(String, String, f64)>,
}

impl Membership {
    /// Whether any subscription (or a TTL) keeps this row.
    pub fn holds(&self, table: &str, key: &str) -> bool {
        self.subs.values().any(|s| s.table == table && s.keys.contains(key))
            || self.lingering.iter().any(|(t, k, _)| t == table && k == key)
    }

    /// Starts (or restarts with a new request) a subscription.
    pub fn add(&mut self, sub_id: &str, table: &str, request: Value, ttl_ms: Option<f64>) {
        let entry = self.subs.entry(sub_id.to_owned()).or_insert_with(|| SubRecord {
            table: table.to_owned(),
            request: request.clone(),
            keys: BTreeSet::new(),
            cursor: None,
            ttl_ms,
        });
        if entry.request != request || entry.table != table {
            entry.request = request;
            entry.table = table.to_owned();
            entry.cursor = None;
        }
        entry.ttl_ms = ttl_ms;
    }

    /// `server:subscribed`. Mode `rows` replaces what the subscription holds; `changes` adds the
    /// changed rows and drops `removed`. Returns the keys no longer held by anything.
    pub fn on_result(
        &mut self,
        sub_id: &str,
        full: bool,
        keys: Vec<String>,
        removed: Vec<String>,
        cursor: u64,
    ) -> Vec<String> {
        let Some(sub) = self.subs.get_mut(sub_id) else { return Vec::new() };
        let mut left: Vec<String> = Vec::new();
        if full {
            let incoming: BTreeSet<String> = keys.into_iter().collect();
            left.extend(sub.keys.difference(&incoming).cloned());
            sub.keys = incoming;
        } else {
            sub.keys.extend(keys);
            for k in removed {
                if sub.keys.remove(&k) {
                    left.push(k);
                }
            }
        }
        sub.cursor = Some(cursor);
        let table = sub.table.clone();
        left.into_iter().filter(|k| !self.holds(&table, k)).collect()
    }

    /// `server:live`: an add or update holds the key, a remove releases it. Returns whether the
    /// row should leave the device.
    pub fn on_live(&mut self, sub_id: &str, remove: bool, key: &str, cursor: u64) -> bool {
        let Some(sub) = self.subs.get_mut(sub_id) else { return false };
        sub.cursor = Some(sub.cursor.unwrap_or(0).max(cursor));
        if !remove {
            sub.keys.insert(key.to_owned());
            return false;
        }
        sub.keys.remove(key);
        let table = sub.table.clone();
        !self.holds(&table, key)
    }

    /// The table of a subscription.
    pub fn table_of(&self, sub_id: &str) -> Option<&str> {
        self.subs.get(sub_id).map(|s| s.table.as_str())
    }

    /// Ends a subscription at time `now` (ms). Returns the keys that leave at once; with a TTL
    /// they linger until [`Membership::expire`] says so.
    pub fn remove(&mut self, sub_id: &str, now: f64) -> Vec<String> {
        let Some(sub) = self.subs.remove(sub_id) else { return Vec::new() };
        let mut gone = Vec::new();
        for key in sub.keys {
            if self.holds(&sub.table, &key) {
                continue;
            }
            match sub.ttl_ms {
                Some(ttl) if ttl > 0.0 => self.lingering.push((sub.table.clone(), key, now + ttl)),
                _ => gone.push(key),
            }
        }
        gone
    }

    /// Lingering rows whose time is up at `now`, as `(table, key)`, no longer held.
    pub fn expire(&mut self, now: f64) -> Vec<(String, String)> {
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.lingering).into_iter().partition(|l| l.2 <= now);
        self.lingering = keep;
        due.into_iter().map(|(t, k, _)| (t, k)).filter(|(t, k)| !self.holds(t, k)).collect()
    }

    /// When the next lingering row is due.
    pub fn next_expiry(&self) -> Option<f64> {
        self.lingering.iter().map(|l| l.2).reduce(f64::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_row_held_by_two_subscriptions_leaves_only_when_neither_holds_it() {
        let mut m = Membership::default();
        m.add("hot", "orders", json!({"filter": "section = \"hot\""}), None);
        m.add("open", "orders", json!({"filter": "status = \"open\""}), None);
        assert!(m.on_result("hot", true, keys(&["a", "b"]), vec![], 5).is_empty());
        assert!(m.on_result("open", true, keys(&["b", "c"]), vec![], 5).is_empty());
        assert!(!m.on_live("hot", true, "b", 6), "`open` still holds b");
        assert!(m.on_live("open", true, "b", 7), "now nothing does");
        assert_eq!(m.remove("hot", 0.0), ["a"]);
        assert_eq!(m.subs["open"].cursor, Some(7));
    }

    #[test]
    fn a_full_result_replaces_a_resumed_one_amends_and_a_ttl_keeps_rows_a_while() {
        let mut m = Membership::default();
        m.add("s", "orders", json!({}), Some(1000.0));
        m.on_result("s", true, keys(&["a", "b", "c"]), vec![], 1);
        assert_eq!(m.on_result("s", false, keys(&["d"]), keys(&["a"]), 2), ["a"]);
        assert_eq!(m.on_result("s", true, keys(&["b"]), vec![], 3), ["c", "d"]);
        assert!(m.remove("s", 10.0).is_empty(), "kept for the TTL");
        assert!(m.holds("orders", "b"));
        assert!(m.expire(500.0).is_empty());
        assert_eq!(m.expire(1010.0), [("orders".to_owned(), "b".to_owned())]);
        assert!(!m.holds("orders", "b"));
    }
}
