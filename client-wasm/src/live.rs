//! The JS side of live queries (`store.subscribe`): the request checked before it is sent, the
//! subscription object handed back, and lingering rows dropped when their TTL runs out.

use std::rc::Rc;

use js_sys::Promise;
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::inner::Shared;
use crate::interop::error;
use crate::session::after_change;

/// The `client:subscribe` fields of a `subscribe` query, checked here first so a bad filter fails
/// at once (offline too).
pub(crate) fn live_request(query: &Value) -> Result<Value, JsValue> {
    let invalid = |e: &dyn std::fmt::Display| error("invalid-filter", &e.to_string(), Value::Null);
    let mut request = serde_json::Map::new();
    let filter = match query {
        Value::String(_) => Some(query.clone()),
        Value::Object(o) => o.get("where").or_else(|| o.get("filter")).cloned(),
        Value::Null => None,
        _ => return Err(error("invalid-argument", "a query is a filter string or an object", Value::Null)),
    };
    match &filter {
        Some(Value::String(text)) => {
            mishkah_core::query::Filter::parse(text).map_err(|e| invalid(&e))?;
        }
        Some(Value::Null) | None => {}
        Some(other) => {
            mishkah_core::query::Filter::from_json(other).map_err(|e| invalid(&e))?;
        }
    }
    if let Some(f) = filter.filter(|f| !f.is_null()) {
        request.insert("filter".into(), f);
    }
    if let Value::Object(o) = query {
        let sort = match o.get("sort").or_else(|| o.get("orderBy")) {
            Some(Value::Array(keys)) => Some(keys.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")),
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        if let Some(sort) = sort {
            request.insert("sort".into(), json!(sort));
        }
        for name in ["limit", "fields"] {
            if let Some(v) = o.get(name) {
                request.insert(name.into(), v.clone());
            }
        }
    }
    Ok(Value::Object(request))
}

pub(crate) fn subscription_object(id: &str, ready: Promise, unsubscribe: Closure<dyn FnMut()>) -> JsValue {
    let obj = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&obj, &"id".into(), &JsValue::from_str(id));
    let _ = js_sys::Reflect::set(&obj, &"ready".into(), &ready);
    let _ = js_sys::Reflect::set(&obj, &"unsubscribe".into(), &unsubscribe.into_js_value());
    obj.into()
}

/// Drops lingering rows when their TTL runs out.
pub(crate) fn schedule_expiry(shared: &Shared) {
    let Some(due) = shared.borrow().state.live.as_ref().and_then(|m| m.next_expiry()) else { return };
    let weak = Rc::downgrade(shared);
    let expire = Closure::once_into_js(move || {
        let Some(shared) = weak.upgrade() else { return };
        let changed = shared.borrow_mut().state.expire(js_sys::Date::now());
        after_change(&shared, changed, None);
        schedule_expiry(&shared);
    });
    let delay = (due - js_sys::Date::now()).max(0.0) + 1.0;
    if let Some(w) = web_sys::window() {
        let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(expire.unchecked_ref(), delay as i32);
    }
}
