//! The store's shared state: options, status, watchers, listeners, the socket and the core state.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use js_sys::Function;
use mishkah_core::query::Query;
use mishkah_core::{RecordKey, Row};
use serde::Deserialize;
use wasm_bindgen::prelude::*;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

use crate::persist::Persist;
use crate::state::ClientState;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Options {
    pub(crate) branch_id: String,
    pub(crate) module_id: String,
    #[serde(default)]
    pub(crate) ws_url: Option<String>,
    #[serde(default)]
    pub(crate) ws_path: Option<String>,
    #[serde(default)]
    pub(crate) http_url: Option<String>,
    #[serde(default)]
    pub(crate) role: Option<String>,
    #[serde(default)]
    pub(crate) auto_reconnect: Option<bool>,
    #[serde(default, alias = "useIndexedDb")]
    pub(crate) use_indexed_db: Option<bool>,
    #[serde(default)]
    pub(crate) db_name: Option<String>,
    /// `"subscriptions"`: hold only what live queries select; default: the whole module.
    #[serde(default)]
    pub(crate) sync: Option<String>,
    /// A bearer token, sent in `client:hello` (a server with `--auth required` needs one).
    #[serde(default)]
    pub(crate) token: Option<String>,
    /// The most rows a store with IndexedDB holds in memory; a larger module is read through
    /// IndexedDB ([`crate::reads`]).
    #[serde(default)]
    pub(crate) memory_rows: Option<u64>,
}

/// [`Options::memory_rows`] when not given.
const MEMORY_ROWS: u64 = 50_000;

impl Options {
    pub(crate) fn subscriptions_only(&self) -> bool {
        self.sync.as_deref() == Some("subscriptions")
    }

    /// The most rows held in memory; a store that syncs only its subscriptions holds them all.
    pub(crate) fn in_memory(&self) -> u64 {
        if self.subscriptions_only() {
            return u64::MAX;
        }
        self.memory_rows.unwrap_or(MEMORY_ROWS)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Idle,
    Connecting,
    Open,
    Ready,
    Offline,
    Closed,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Connecting => "connecting",
            Status::Open => "open",
            Status::Ready => "ready",
            Status::Offline => "offline",
            Status::Closed => "closed",
        }
    }
}

pub(crate) struct Watcher {
    pub(crate) id: u32,
    pub(crate) table: String,
    pub(crate) query: Query,
    pub(crate) cb: Function,
}

pub(crate) type Handlers = (Closure<dyn FnMut(MessageEvent)>, Closure<dyn FnMut(CloseEvent)>, Closure<dyn FnMut()>);

pub(crate) struct Inner {
    pub(crate) opts: Options,
    pub(crate) ws_url: String,
    pub(crate) http_base: String,
    pub(crate) db_name: String,
    pub(crate) state: ClientState,
    pub(crate) status: Status,
    pub(crate) ws: Option<WebSocket>,
    pub(crate) handlers: Option<Handlers>,
    /// When the socket last brought a frame ([`crate::heartbeat`]).
    pub(crate) last_heard: f64,
    /// Watches the open socket; none while disconnected.
    pub(crate) heartbeat: Option<crate::heartbeat::Heartbeat>,
    pub(crate) persist: Option<Rc<Persist>>,
    pub(crate) listeners: HashMap<String, Vec<Function>>,
    pub(crate) watchers: Vec<Watcher>,
    pub(crate) next_watcher: u32,
    pub(crate) waiters: HashMap<String, (Function, Function)>,
    /// `subscribe(...).ready` promises by subscription, settled by `server:subscribed` or an error.
    pub(crate) sub_waiters: HashMap<String, Vec<(Function, Function)>>,
    pub(crate) ready_waiters: Vec<Function>,
    pub(crate) attempt: u32,
    pub(crate) counter: u64,
    pub(crate) tab: String,
    /// Sent in `client:hello`: the server keeps this client's mutation ids apart from other
    /// anonymous clients'. Kept in IndexedDB with the outbox, so replays after a reload match.
    pub(crate) client: String,
    pub(crate) unsaved: Vec<(String, RecordKey, Option<Row>)>,
    /// A first sync in pages is under way ([`crate::first_sync`]): live events wait for the
    /// delta that completes it (it covers them).
    pub(crate) initial: bool,
    /// A walk of the pages is running (one at a time).
    pub(crate) walking: bool,
    /// What a finished walk holds, at its first page's sequence: shown only once the delta since
    /// has been laid over it (until then it is no state the server ever had).
    pub(crate) walked: Option<mishkah_core::sync::Replica>,
    /// The next save completes the first sync (its rows are no longer held back).
    pub(crate) finish_initial: bool,
    /// The store is ready once that save has committed.
    pub(crate) ready_when_saved: bool,
    pub(crate) replace_saved: bool,
    pub(crate) save_scheduled: bool,
    /// A partial store's last write waiting to be queued: the next one queues after it.
    pub(crate) write_chain: Option<js_sys::Promise>,
    /// Watchers of a partial store waiting to be answered again ([`crate::reads::refresh`]).
    pub(crate) watch_due: std::collections::BTreeSet<u32>,
    /// A task answers them (one at a time, so answers come in order).
    pub(crate) watching: bool,
    /// Releases this tab's Web Lock (see `tabs`).
    pub(crate) release_tab_lock: Option<Function>,
}

pub(crate) type Shared = Rc<RefCell<Inner>>;

impl Inner {
    /// A new write's id (unique across tabs and reloads) and its place in the outbox.
    pub(crate) fn next_write(&mut self) -> (String, f64) {
        self.counter += 1;
        let id = format!("{}-{}-{}", self.tab, js_sys::Date::now() as u64, self.counter);
        let seq = js_sys::Date::now() * 1000.0 + (self.counter % 1000) as f64;
        (id, seq)
    }

    /// Marks a queued write as this tab's to send.
    pub(crate) fn own(&mut self, mut pending: crate::state::Pending) -> crate::state::Pending {
        pending.tab = self.tab.clone();
        if let Some(queued) = self.state.outbox.iter_mut().find(|q| q.mutation_id == pending.mutation_id) {
            queued.tab = self.tab.clone();
        }
        pending
    }
}
