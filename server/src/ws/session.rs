//! One WebSocket connection.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use mishkah_core::wire::{
    ClientFrame, ClientHello, DeltaFrame, ServerDirective, ServerFrame, ServerHello, ServerSnapshot, SnapshotMeta,
};
use serde_json::{json, Value};

use super::frames::{error_pair, log, text};
use super::identity::{caller_of, expiry_of, Alarm};
use super::outbound::{send_all, send_events};
use super::writes::Owed;
use crate::access::Caller;
use crate::clock::now_iso;
use crate::engine::ModuleHandle;
use crate::hub::live::{LiveFeed, LiveOut};
use crate::hub::{Delivery, Subscription};
use crate::state::AppState;
use crate::views;

pub(super) struct Session {
    pub(super) state: AppState,
    pub(super) branch: Option<String>,
    /// `client:hello {lang}`: snapshots merge this language's translations.
    pub(super) lang: Option<String>,
    pub(super) subscription: Option<Subscription>,
    pub(super) live: super::live::LiveSubs,
    /// Who this session is; `None` until authenticated (always `None` with `--auth off`).
    pub(super) identity: Option<crate::auth::Identity>,
    /// The identity as the rules see it (anonymous without one).
    pub(super) caller: Caller,
    /// When the session's credential expires; after that it delivers nothing until `client:auth`.
    pub(super) expires: Option<tokio::time::Instant>,
    pub(super) expired: bool,
    pub(super) ip: std::net::IpAddr,
    /// `client:hello {frames: "compact"}`: changes as `server:events`.
    pub(super) compact: bool,
    /// `client:hello {snapshot: "pages"}`: a resync directive where a snapshot would be sent.
    pub(super) paged: bool,
    pub(super) owed: Owed,
    /// When auth is required: the session closes at this instant unless it has an identity.
    pub(super) unauthenticated_until: Option<tokio::time::Instant>,
    alarm: Alarm,
    /// Held while a snapshot is built and sent ([`AppState::snapshots`]).
    pub(super) snapshot_turn: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// How long a session may stay without an identity when auth is required.
const AUTH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs a connection until it closes. `ip` is the peer's address (its rate-limit bucket while
/// anonymous); `slot` holds its place among the address's open connections until the session
/// ends.
///
/// A plain function around an async block, not an `async fn`: the socket is split and the session
/// built before the block captures them, so the task (one per connection, most of them idle)
/// holds each once instead of keeping room for both the arguments and what they became.
pub fn run(
    socket: WebSocket,
    state: AppState,
    identity: Option<crate::auth::Identity>,
    ip: std::net::IpAddr,
    slot: crate::limits::ConnectionSlot,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    state.metrics.connections.inc();
    let (mut sink, mut stream) = socket.split();
    let unauthenticated_until = state.auth.required().then(|| tokio::time::Instant::now() + AUTH_DEADLINE);
    let mut session = Session {
        branch: None,
        lang: None,
        subscription: None,
        live: Default::default(),
        caller: caller_of(identity.as_ref(), ip),
        expires: expiry_of(identity.as_ref()),
        expired: false,
        ip,
        compact: false,
        paged: false,
        identity,
        owed: Owed::default(),
        alarm: Alarm::default(),
        snapshot_turn: None,
        unauthenticated_until,
        state,
    };
    async move {
        let hello = ServerHello {
            server_id: session.state.server_id.clone(),
            now: now_iso(),
            defaults: json!({"branchId": session.state.engine.data().branches.branches.keys().next()}),
        };
        // Not a temporary of the send below: a frame held across an await would size every
        // connection's task by it, idle or not.
        let hello = text(&ServerFrame::Hello(hello));
        let mut open = sink.send(Message::Text(hello.into())).await.is_ok();
        let ping = session.state.ping_interval;
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + ping, ping);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = tokio::time::Instant::now();
        while open {
            let alarm_at = session.alarm_at();
            tokio::select! {
                // Acks first: the writer queues a publisher's ack before publishing its event.
                biased;
                Some(o) = session.owed.next() => {
                    let frames = session.render_answer(o);
                    open = send_all(&mut sink, &session.state, frames).await;
                }
                frame = next_event(&mut session.subscription), if !session.expired => match frame {
                    Some(frame) => {
                        open = send_events(&mut sink, &mut session, frame).await;
                    }
                    None => {
                        let frames = session.lost_subscription();
                        open = send_all(&mut sink, &session.state, frames).await;
                    }
                },
                () = session.alarm.at(alarm_at) => {
                    if session.identity.is_none() {
                        let frames = session.error("unauthenticated", "no identity within 5 s: send client:hello {token}", Value::Null, None, None);
                        let _ = send_all(&mut sink, &session.state, frames).await;
                        let _ = sink.send(Message::Close(None)).await;
                        open = false;
                    } else {
                        session.expired = true;
                        let frames = session.token_expired();
                        open = send_all(&mut sink, &session.state, frames).await;
                    }
                }
                out = next_live(&mut session.live.feed), if !session.expired => {
                    let frames = match out {
                        Some(LiveOut::Frame(frame)) => {
                            session.state.metrics.frames_out.inc();
                            let state = session.state.clone();
                            open = super::outbound::within(&state, async { sink.send(Message::Text(frame)).await.is_ok() }).await;
                            continue;
                        }
                        // Boxed, as the handling of a frame below: a large future that runs rarely
                        // would otherwise make every idle connection's task as large.
                        Some(LiveOut::Reload(id)) => Box::pin(session.live_reload(id)).await,
                        None => session.live_lost(),
                    };
                    open = send_all(&mut sink, &session.state, frames).await;
                }
                _ = heartbeat.tick() => {
                    // A peer that answered nothing (not even a pong) for three pings is gone:
                    // its network dropped without a word. Free what it holds.
                    if last_heard.elapsed() > session.state.ping_interval * 3 {
                        tracing::info!("closed a WebSocket whose peer stopped answering");
                        open = false;
                    } else {
                        let state = session.state.clone();
                        open = super::outbound::within(&state, async { sink.send(Message::Ping(Default::default())).await.is_ok() }).await;
                    }
                }
                // A connection with many writes in flight waits for their answers before it reads on.
                msg = stream.next(), if session.owed.has_room() => {
                    last_heard = tokio::time::Instant::now();
                    match msg {
                        Some(Ok(Message::Text(t))) => {
                            session.state.metrics.frames_in.inc();
                            let span = tracing::debug_span!("frame", branch = session.branch.as_deref().unwrap_or("-"), len = t.len());
                            let frames = tracing::Instrument::instrument(Box::pin(session.handle(t.as_str())), span).await;
                            open = send_all(&mut sink, &session.state, frames).await;
                            // A snapshot's turn ends once its client has it.
                            session.snapshot_turn = None;
                        }
                        Some(Ok(Message::Binary(_))) => {
                            let frames = error_pair(&session.state.server_id, "malformed-frame", "binary frames are not supported: send JSON text", Value::Null, None, None);
                            open = send_all(&mut sink, &session.state, frames.into()).await;
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => open = false,
                    }
                }
            }
        }
        session.state.metrics.connections.dec();
        drop(slot);
    }
}

async fn next_live(feed: &mut Option<LiveFeed>) -> Option<LiveOut> {
    match feed {
        Some(f) => f.rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_event(sub: &mut Option<Subscription>) -> Option<Delivery> {
    match sub {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

impl Session {
    /// A module of `branch`, as this session's caller may open it (creating the branch only if
    /// it may).
    async fn module(&self, branch: &str, module: &str) -> Result<Arc<ModuleHandle>, crate::engine::EngineError> {
        let opening = self.caller.opening(branch, self.state.auth.required());
        self.state.engine.module_as(branch, module, opening).await
    }

    pub(super) fn server_id(&self) -> &str {
        &self.state.server_id
    }

    pub(super) fn error(
        &self,
        code: &str,
        message: &str,
        details: Value,
        request_id: Option<Value>,
        mutation_id: Option<String>,
    ) -> Vec<String> {
        error_pair(self.server_id(), code, message, details, request_id, mutation_id).into()
    }

    /// The hub dropped us (lagging) or is gone: tell the client to resync.
    fn lost_subscription(&mut self) -> Vec<String> {
        let lagged = self.subscription.take().is_some_and(|s| s.lagged());
        // Still registered (it may keep publishing); it gets live events again after a new hello.
        let branch = self.branch.clone().unwrap_or_default();
        let reason = if lagged { "client fell behind the live stream" } else { "live stream closed" };
        let directive = ServerDirective {
            directive: "resync".into(),
            branch_id: branch,
            module_id: None,
            enabled: true,
            reason: reason.into(),
        };
        vec![text(&ServerFrame::Directive(directive))]
    }

    async fn handle(&mut self, raw: &str) -> Vec<String> {
        self.owed.reading = raw.len();
        if let Err(wait) = self.rate_limit() {
            let ms = wait.as_millis().max(1) as u64;
            let details = json!({"retryAfterMs": ms});
            return self.error(
                "rate-limited",
                "too many messages: this one was not run",
                details,
                ClientFrame::request_id_of(raw),
                None,
            );
        }
        let frame = match ClientFrame::parse(raw) {
            Ok(f) => f,
            Err(e) => return self.error(e.code(), &e.to_string(), Value::Null, ClientFrame::request_id_of(raw), None),
        };
        if self.state.auth.required() && self.identity.is_none() {
            match &frame {
                ClientFrame::Hello(h) => match h.token.as_deref().map(|t| self.state.auth.verify(t)) {
                    Some(Ok(identity)) => self.authenticated(identity),
                    Some(Err(e)) => {
                        return self.error(e.code(), &e.to_string(), Value::Null, h.request_id.clone(), None)
                    }
                    None => {
                        let e = crate::auth::AuthError::Missing;
                        return self.error(
                            e.code(),
                            "send client:hello {token}",
                            Value::Null,
                            h.request_id.clone(),
                            None,
                        );
                    }
                },
                ClientFrame::Ping | ClientFrame::Authenticate(_) => {}
                _ => {
                    let e = crate::auth::AuthError::Missing;
                    return self.error(e.code(), &e.to_string(), Value::Null, ClientFrame::request_id_of(raw), None);
                }
            }
        }
        if self.expired && !matches!(frame, ClientFrame::Authenticate(_) | ClientFrame::Ping) {
            let e = crate::auth::AuthError::Expired;
            let message = "the session's token expired: send client:auth {token}";
            return self.error(e.code(), message, Value::Null, ClientFrame::request_id_of(raw), None);
        }
        match frame {
            ClientFrame::Authenticate(auth) => self.renew(auth),
            ClientFrame::Hello(hello) => self.hello(hello).await,
            ClientFrame::Publish(p) => self.publish(p).await,
            ClientFrame::Transaction(t) => self.transaction(t).await,
            ClientFrame::RequestSnapshot(r) => match &self.branch {
                Some(branch) => {
                    let branch = branch.clone();
                    self.snapshot(&branch, "request", r.request_id, None).await
                }
                None => self.not_registered(r.request_id),
            },
            ClientFrame::Query(q) => self.query(q).await,
            ClientFrame::Ping => vec![text(&ServerFrame::Pong { ts: now_iso() })],
            ClientFrame::Auth => vec![text(&ServerFrame::TopicAck { event: "auth".into(), topic: None })],
            ClientFrame::Subscribe { topic } => self.subscribe_topic(topic).await,
            ClientFrame::Unsubscribe { topic } => {
                vec![text(&ServerFrame::TopicAck { event: "unsubscribe".into(), topic: Some(topic) })]
            }
            ClientFrame::TopicPublish(p) => self.publish_state(p).await,
            ClientFrame::LiveSubscribe(s) => self.live_subscribe(s).await,
            ClientFrame::LiveUnsubscribe(u) => self.live_unsubscribe(u),
        }
    }

    pub(super) fn not_registered(&self, request_id: Option<Value>) -> Vec<String> {
        self.error("not-registered", "send client:hello with a branchId first", Value::Null, request_id, None)
    }

    async fn hello(&mut self, hello: ClientHello) -> Vec<String> {
        if !self.caller.who.may_use_branch(&hello.branch_id) {
            let e = crate::auth::AuthError::BranchForbidden(hello.branch_id.clone());
            return self.error(e.code(), &e.to_string(), json!({"branchId": hello.branch_id}), hello.request_id, None);
        }
        let modules = match self.state.engine.modules_of(&hello.branch_id) {
            Ok(m) => m,
            Err(e) => {
                return self.error(
                    e.code(),
                    &e.to_string(),
                    json!({"branchId": hello.branch_id}),
                    hello.request_id,
                    None,
                )
            }
        };
        self.branch = Some(hello.branch_id.clone());
        if let Some(client) = hello.client_id.as_deref() {
            self.caller.set_client(client);
        }
        self.lang = hello.lang.clone().filter(|l| !l.is_empty());
        self.compact = hello.compact_frames();
        self.paged = hello.snapshot_in_pages();
        if hello.subscriptions_only() {
            // Only what its live queries select: no snapshot, no branch-wide events.
            self.subscription = None;
            let context = json!({"branchId": hello.branch_id, "role": hello.role, "sync": "subscriptions"});
            return vec![log(self.server_id(), "info", "Client registered", context)];
        }
        // Subscribe before reading, so nothing committed in between is missed (a duplicate event
        // is harmless: its sequence is not above the snapshot's version).
        self.subscription =
            Some(self.state.engine.hub().subscribe(&hello.branch_id, self.caller.who.clone(), self.compact));
        let mut out = vec![log(
            self.server_id(),
            "info",
            "Client registered",
            json!({"branchId": hello.branch_id, "role": hello.role}),
        )];
        if hello.request_snapshot == Some(false) {
            return out;
        }
        out.extend(self.snapshot(&hello.branch_id, "hello", hello.request_id, hello.cursor.as_ref()).await);
        let _ = modules;
        out
    }

    /// A snapshot of every module of the branch; with a cursor, a delta per module where the log
    /// still covers it.
    async fn snapshot(
        &mut self,
        branch: &str,
        reason: &str,
        request_id: Option<Value>,
        cursor: Option<&mishkah_core::wire::HelloCursor>,
    ) -> Vec<String> {
        let modules = match self.state.engine.modules_of(branch) {
            Ok(m) => m,
            Err(e) => return self.error(e.code(), &e.to_string(), Value::Null, request_id, None),
        };
        // Wait for a turn holding nothing: a never-reading client holds its turn until
        // `--send-timeout` closes it, and at most `--max-snapshots` are in memory at once.
        if self.snapshot_turn.is_none() {
            self.snapshot_turn = self.state.snapshots.clone().acquire_owned().await.ok();
        }
        let mut out = Vec::new();
        let mut snapshots = BTreeMap::new();
        for module in modules {
            let handle = match self.module(branch, &module).await {
                Ok(h) => h,
                Err(e) => {
                    out.extend(self.error(
                        e.code(),
                        &e.to_string(),
                        json!({"moduleId": module}),
                        request_id.clone(),
                        None,
                    ));
                    continue;
                }
            };
            if let Some(c) = cursor.and_then(|c| c.for_module(&module)) {
                match views::delta_since(&handle, c, &self.caller).await {
                    Ok(Ok(delta)) => {
                        let mut tables = BTreeMap::new();
                        let mut deleted = BTreeMap::new();
                        for (t, d) in delta.tables {
                            if !d.deleted.is_empty() {
                                deleted.insert(t.clone(), d.deleted.into_iter().map(|k| k.0).collect());
                            }
                            tables.insert(t, d.rows.into_values().collect());
                        }
                        let frame = DeltaFrame {
                            branch_id: branch.into(),
                            module_id: module.clone(),
                            from: delta.from,
                            to: delta.to,
                            tables,
                            deleted,
                            request_id: request_id.clone(),
                        };
                        out.push(text(&ServerFrame::Delta(frame)));
                        continue;
                    }
                    Ok(Err(_)) => {} // too old: full snapshot below
                    Err(e) => {
                        out.extend(self.error(e.code(), &e.to_string(), Value::Null, request_id.clone(), None));
                        continue;
                    }
                }
            }
            if self.paged {
                // The client walks the module's pages, then asks for the delta since.
                let directive = ServerDirective {
                    directive: "resync".into(),
                    branch_id: branch.into(),
                    module_id: Some(module),
                    enabled: true,
                    reason: "walk-pages".into(),
                };
                out.push(text(&ServerFrame::Directive(directive)));
                continue;
            }
            match views::module_snapshot_text(&handle, self.lang.as_deref(), &self.caller).await {
                Ok(s) => {
                    snapshots.insert(module, s);
                }
                Err(e) => out.extend(self.error(e.code(), &e.to_string(), Value::Null, request_id.clone(), None)),
            }
        }
        if !snapshots.is_empty() || out.is_empty() {
            let meta = SnapshotMeta {
                snapshot_at: now_iso(),
                server_id: self.server_id().into(),
                reason: reason.into(),
                request_id,
            };
            let modules = snapshots.iter().map(|(id, text)| (id.as_str(), text.as_str()));
            let frame = ServerSnapshot::frame_text(branch, modules, &meta);
            // Each module's text is in the frame now: free them before the frame is sent.
            drop(snapshots);
            out.push(frame);
        }
        out
    }

    /// The module a frame targets: the one it names, else the branch's only module.
    pub(super) async fn target(&self, named: Option<&str>) -> Result<Arc<ModuleHandle>, (String, String)> {
        let branch =
            self.branch.as_deref().ok_or(("not-registered".to_owned(), "send client:hello first".to_owned()))?;
        let module = match named {
            Some(m) => m.to_owned(),
            None => {
                match self.state.engine.modules_of(branch).map_err(|e| (e.code().to_owned(), e.to_string()))?.as_slice()
                {
                    [only] => only.clone(),
                    _ => {
                        return Err(("module-required".into(), "this branch has several modules: give moduleId".into()))
                    }
                }
            }
        };
        self.module(branch, &module).await.map_err(|e| (e.code().to_owned(), e.to_string()))
    }

    /// Legacy whole-state `publish` on a sync topic: the derived row changes go through the write
    /// path atomically (see `topics`); `{type: "ack", event: "publish"}` or `{type: "error"}`.
    async fn publish_state(&mut self, p: mishkah_core::wire::TopicPublish) -> Vec<String> {
        let topic_error =
            |code: &str, message: String| vec![text(&ServerFrame::TopicError { code: code.into(), message })];
        let Some((branch, module)) = super::topics::parse(&p.topic) else {
            return topic_error("invalid-topic", format!("unknown topic `{}`", p.topic));
        };
        if !self.caller.who.may_use_branch(&branch) {
            return topic_error("branch-forbidden", format!("this identity may not use branch `{branch}`"));
        }
        let Some(trans) = super::topics::trans_id(&p.data) else {
            return topic_error("missing-trans-id", "a sync publish needs data.trans_id".into());
        };
        let handle = match self.module(&branch, &module).await {
            Ok(h) => h,
            Err(e) => return topic_error("invalid-topic", e.to_string()),
        };
        let prefix = format!("{trans}:");
        let scope = self.caller.sender().dedup_scope().to_owned();
        match handle.read(move |r, _| r.has_mutation_prefix(&scope, &prefix)).await {
            // Already applied: acknowledge again, change nothing.
            Ok(true) => return vec![text(&ServerFrame::TopicAck { event: "publish".into(), topic: Some(p.topic) })],
            Ok(false) => {}
            Err(e) => return topic_error(e.code(), e.to_string()),
        }
        let names: Vec<String> = super::topics::tables(&handle.schema, &p.data).into_iter().map(|(n, _)| n).collect();
        // A publisher's state covers only the rows it may see: rows its rules hide from it are
        // neither compared nor deleted for being absent.
        let view = crate::access::View::of(&handle, &self.caller);
        let current = handle
            .read(move |r, schema| {
                let mut out = BTreeMap::new();
                for name in names {
                    if let Some(t) = schema.table(&name) {
                        let mut rows = r.rows(t)?;
                        if !view.sees_everything() {
                            rows.retain(|row| view.admits(t, row));
                        }
                        out.insert(name, rows);
                    }
                }
                Ok(out)
            })
            .await;
        let current = match current {
            Ok(c) => c,
            Err(e) => return topic_error(e.code(), e.to_string()),
        };
        let mutations = super::topics::plan(&handle.schema, &current, &p.data, &trans);
        match handle.import_atomic(mutations, "topic", self.caller.sender()).await {
            Ok(_) => vec![text(&ServerFrame::TopicAck { event: "publish".into(), topic: Some(p.topic) })],
            Err(e) => topic_error(e.code(), e.to_string()),
        }
    }

    /// Legacy pub/sub: `sync:<branch>::<module>` or `pos:sync:<branch>` → ack, then the module's
    /// current state as `publish`; from then on every committed write of the branch arrives as
    /// `server:event`.
    async fn subscribe_topic(&mut self, topic: String) -> Vec<String> {
        let Some((branch, module)) = super::topics::parse(&topic) else {
            return vec![text(&ServerFrame::TopicError {
                code: "invalid-topic".into(),
                message: format!("unknown topic `{topic}`"),
            })];
        };
        if !self.caller.who.may_use_branch(&branch) {
            let message = format!("this identity may not use branch `{branch}`");
            return vec![text(&ServerFrame::TopicError { code: "branch-forbidden".into(), message })];
        }
        let handle = match self.module(&branch, &module).await {
            Ok(h) => h,
            Err(e) => {
                return vec![text(&ServerFrame::TopicError { code: "invalid-topic".into(), message: e.to_string() })]
            }
        };
        // A topic subscriber hears every committed write of the branch like any other client (the
        // original reached sync-topic subscribers only on some write paths).
        if self.subscription.is_none() {
            self.subscription = Some(self.state.engine.hub().subscribe(&branch, self.caller.who.clone(), self.compact));
        }
        let mut out = vec![text(&ServerFrame::TopicAck { event: "subscribe".into(), topic: Some(topic.clone()) })];
        match views::module_snapshot(&handle, self.lang.as_deref(), &self.caller).await {
            Ok(s) => out
                .push(text(&ServerFrame::TopicPublish { topic, data: serde_json::to_value(s).unwrap_or(Value::Null) })),
            Err(e) => out.extend(self.error(e.code(), &e.to_string(), Value::Null, None, None)),
        }
        out
    }
}
