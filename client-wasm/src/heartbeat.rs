//! Notices a connection that died without saying so. A network that drops silently (a till's
//! Wi-Fi, a NAT that forgot the flow) never fires `close`, and browsers answer the server's pings
//! without telling the page. So while connected, the store asks (`ping`) whenever the socket has
//! been quiet for a while, and gives the socket up — then reconnects, with backoff — when nothing
//! at all came back: within [`DEAD_MS`] of the last frame, not a minute later.

use std::rc::Rc;

use serde_json::json;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::inner::Shared;

/// Quiet this long: ask the server for a `pong`.
const QUIET_MS: f64 = 3_000.0;
/// Silent this long (a ping unanswered for seconds): the connection is dead.
pub(crate) const DEAD_MS: f64 = 8_000.0;
const TICK_MS: i32 = 1_000;

/// A running heartbeat; stopped when dropped.
pub(crate) struct Heartbeat {
    id: i32,
    _tick: Closure<dyn FnMut()>,
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        if let Some(w) = web_sys::window() {
            w.clear_interval_with_handle(self.id);
        }
    }
}

/// Starts watching the open socket of `shared`.
pub(crate) fn start(shared: &Shared) {
    let weak = Rc::downgrade(shared);
    let tick = Closure::<dyn FnMut()>::new(move || {
        if let Some(shared) = weak.upgrade() {
            beat(&shared);
        }
    });
    let Some(window) = web_sys::window() else { return };
    let Ok(id) = window.set_interval_with_callback_and_timeout_and_arguments_0(tick.as_ref().unchecked_ref(), TICK_MS)
    else {
        return;
    };
    let mut inner = shared.borrow_mut();
    inner.last_heard = js_sys::Date::now();
    inner.heartbeat = Some(Heartbeat { id, _tick: tick });
}

fn beat(shared: &Shared) {
    let silent = {
        let inner = shared.borrow();
        if inner.ws.is_none() {
            return;
        }
        js_sys::Date::now() - inner.last_heard
    };
    if silent >= DEAD_MS {
        give_up(shared);
    } else if silent >= QUIET_MS {
        crate::session::send(&shared.borrow(), &json!({"type": "ping"}));
    }
}

/// Drops the dead socket without waiting for a close handshake that will never come, and goes
/// the way of any lost connection (offline, reconnect).
fn give_up(shared: &Shared) {
    {
        let mut inner = shared.borrow_mut();
        if let Some(ws) = inner.ws.take() {
            ws.set_onmessage(None);
            ws.set_onclose(None);
            ws.set_onopen(None);
            let _ = ws.close();
        }
        inner.handlers = None;
    }
    // Not from inside this tick: going offline stops the heartbeat, whose closure is running.
    let weak = Rc::downgrade(shared);
    let closed = Closure::once_into_js(move || {
        if let Some(shared) = weak.upgrade() {
            crate::session::on_closed(&shared);
        }
    });
    if let Some(w) = web_sys::window() {
        let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(closed.unchecked_ref(), 0);
    }
}
