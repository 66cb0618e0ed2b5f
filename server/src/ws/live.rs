//! A session's live queries: `client:subscribe` / `client:unsubscribe` and the reloads a window
//! asks for. Frames about a subscription arrive in commit order because the session registers it
//! with the hub before reading and hands the read back under the hub's lock
//! ([`crate::hub::live`]).

use std::collections::HashMap;
use std::sync::Arc;

use mishkah_core::wire::{LiveResult, LiveSubscribe, LiveUnsubscribe, ServerDirective, ServerFrame};
use serde_json::{json, Value};

use super::frames::text;
use super::session::Session;
use crate::engine::ModuleHandle;
use crate::hub::live::LiveFeed;
use crate::views::live::{key_of, read_window, LiveSpec};

/// One subscription of this connection.
pub(super) struct LiveSub {
    id: u64,
    handle: Arc<ModuleHandle>,
    spec: LiveSpec,
}

/// The live queries of one connection.
#[derive(Default)]
pub(super) struct LiveSubs {
    pub(super) feed: Option<LiveFeed>,
    by_name: HashMap<String, LiveSub>,
    names: HashMap<u64, String>,
}

impl LiveSubs {
    fn remove(&mut self, sub_id: &str) -> bool {
        let Some(old) = self.by_name.remove(sub_id) else { return false };
        self.names.remove(&old.id);
        if let Some(feed) = &self.feed {
            feed.unwatch(old.id);
        }
        true
    }
}

impl Session {
    pub(super) async fn live_subscribe(&mut self, req: LiveSubscribe) -> Vec<String> {
        let rid = req.request_id.clone();
        if self.branch.is_none() {
            return self.not_registered(rid);
        }
        let handle = match self.target(req.module_id.as_deref()).await {
            Ok(h) => h,
            Err((code, message)) => return self.error(&code, &message, json!({"subId": req.sub_id}), rid, None),
        };
        let Some(table) = handle.schema.resolve_table(&req.table).cloned() else {
            let message = format!("unknown table `{}`", req.table);
            return self.error(
                "table-not-found",
                &message,
                json!({"table": req.table, "subId": req.sub_id}),
                rid,
                None,
            );
        };
        let spec = match LiveSpec::prepare(&handle, &table, &req, self.state.max_page, &self.caller) {
            Ok(s) => s,
            Err(e) => return self.error(e.code(), &e.to_string(), with_sub(e.details(), &req.sub_id), rid, None),
        };
        self.live.remove(&req.sub_id);
        let hub = self.state.engine.hub().clone();
        let feed = self.live.feed.get_or_insert_with(|| hub.live().feed());
        // Registered before the read: whatever commits meanwhile is replayed after it.
        let Some(id) = feed.watch(&handle.branch, &handle.module, &req.sub_id, spec.query.clone(), spec.fields.clone())
        else {
            // The hub just dropped this feed for lagging: the session says so next.
            return Vec::new();
        };
        let read = match read_window(&handle, &spec, req.cursor).await {
            Ok(r) => r,
            Err(e) => {
                if let Some(feed) = &self.live.feed {
                    feed.unwatch(id);
                }
                return self.error(e.code(), &e.to_string(), with_sub(e.details(), &req.sub_id), rid, None);
            }
        };
        // A resume sends only what changed, when the log covers the cursor and the whole result
        // fits the window (then every row the client holds and nothing changed still belongs).
        let changes = read.changed.filter(|_| !read.more);
        let (mode, rows, removed) = match &changes {
            Some(changed) => {
                let rows: Vec<_> = read
                    .rows
                    .iter()
                    .filter(|r| key_of(&table, r).is_some_and(|k| changed.contains_key(&k)))
                    .cloned()
                    .collect();
                let current: std::collections::HashSet<String> =
                    read.rows.iter().filter_map(|r| key_of(&table, r)).collect();
                // Only a row the client may hold leaves: naming any other would tell it the row exists.
                let mut removed: Vec<String> = changed
                    .iter()
                    .filter(|(k, held)| **held && !current.contains(*k))
                    .map(|(k, _)| k.clone())
                    .collect();
                removed.sort();
                ("changes", rows, removed)
            }
            None => ("rows", read.rows.clone(), Vec::new()),
        };
        if let Some(feed) = &self.live.feed {
            feed.load(&table, id, read.rows, read.more, read.at);
        }
        let mut rows = crate::render::rows(&table, rows);
        if let Some(keep) = &spec.fields {
            for row in &mut rows {
                row.retain(|k, _| keep.iter().any(|f| f == k));
            }
        }
        let result = LiveResult {
            sub_id: req.sub_id.clone(),
            module_id: handle.module.clone(),
            table: table.name.clone(),
            mode: mode.into(),
            rows,
            removed,
            has_more: read.more,
            cursor: read.at,
            request_id: rid,
        };
        self.live.names.insert(id, req.sub_id.clone());
        self.live.by_name.insert(req.sub_id, LiveSub { id, handle, spec });
        vec![text(&ServerFrame::Subscribed(result))]
    }

    pub(super) fn live_unsubscribe(&mut self, req: LiveUnsubscribe) -> Vec<String> {
        if !self.live.remove(&req.sub_id) {
            let message = format!("no live query `{}` on this connection", req.sub_id);
            return self.error("unknown-subscription", &message, json!({"subId": req.sub_id}), req.request_id, None);
        }
        vec![text(&ServerFrame::Unsubscribed { sub_id: req.sub_id, request_id: req.request_id })]
    }

    /// A window lost a row while others may match beyond it: read it again.
    pub(super) async fn live_reload(&mut self, id: u64) -> Vec<String> {
        let Some(sub) = self.live.names.get(&id).and_then(|name| self.live.by_name.get(name)) else {
            return Vec::new();
        };
        let (handle, spec) = (sub.handle.clone(), sub.spec.clone());
        match read_window(&handle, &spec, None).await {
            Ok(read) => {
                if let Some(feed) = &self.live.feed {
                    feed.load(&spec.table, id, read.rows, read.more, read.at);
                }
                Vec::new()
            }
            Err(e) => {
                let name = self.live.names.get(&id).cloned().unwrap_or_default();
                self.live.remove(&name);
                self.error(e.code(), &e.to_string(), with_sub(e.details(), &name), None, None)
            }
        }
    }

    /// The hub ended this connection's live queries (it fell behind): the client subscribes
    /// again, with its cursors.
    pub(super) fn live_lost(&mut self) -> Vec<String> {
        let lagged = self.live.feed.take().is_some_and(|f| f.lagged.load(std::sync::atomic::Ordering::Acquire));
        let ended: Vec<String> = self.live.by_name.keys().cloned().collect();
        self.live.by_name.clear();
        self.live.names.clear();
        let reason = if lagged { "client fell behind its live queries" } else { "live queries closed" };
        let directive = ServerDirective {
            directive: "resubscribe".into(),
            branch_id: self.branch.clone().unwrap_or_default(),
            module_id: None,
            enabled: true,
            reason: format!("{reason}: {}", ended.join(", ")),
        };
        vec![text(&ServerFrame::Directive(directive))]
    }
}

fn with_sub(details: Value, sub_id: &str) -> Value {
    match details {
        Value::Object(mut map) => {
            map.insert("subId".into(), json!(sub_id));
            Value::Object(map)
        }
        _ => json!({"subId": sub_id}),
    }
}
