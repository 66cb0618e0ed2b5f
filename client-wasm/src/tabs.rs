//! Several tabs on one IndexedDB database, without duplicated sends: every tab holds a Web Lock
//! named after itself for its lifetime, and sends only the outbox entries it owns. An entry whose
//! owner's lock is no longer held (the tab closed or crashed) is adopted by the next tab that
//! connects. Where Web Locks are missing, every entry counts as orphaned: it may then be sent by
//! two tabs, and the server's mutation-id dedup still applies it once.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

fn lock_name(tab: &str) -> String {
    format!("mishkah-tab:{tab}")
}

fn locks() -> Option<JsValue> {
    let navigator = web_sys::window()?.navigator();
    Reflect::get(&navigator, &"locks".into()).ok().filter(|l| !l.is_undefined() && !l.is_null())
}

/// Takes this tab's lock for as long as the returned function is not called.
pub fn hold(tab: &str) -> Option<Function> {
    let locks = locks()?;
    let request: Function = Reflect::get(&locks, &"request".into()).ok()?.dyn_into().ok()?;
    let release: Rc<RefCell<Option<Function>>> = Rc::new(RefCell::new(None));
    let slot = release.clone();
    let callback = Closure::once_into_js(move |_lock: JsValue| -> JsValue {
        // The lock is held until this promise settles.
        Promise::new(&mut |resolve, _reject| {
            *slot.borrow_mut() = Some(resolve);
        })
        .into()
    });
    request.call2(&locks, &JsValue::from_str(&lock_name(tab)), &callback).ok()?;
    // The callback runs when the lock is granted (at once: the name is unique to this tab); hand
    // back a function that releases it whenever that happened.
    let releaser = Closure::<dyn FnMut()>::new(move || {
        if let Some(resolve) = release.borrow_mut().take() {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    Some(releaser.into_js_value().unchecked_into())
}

/// The tabs whose locks are held now; `None` when the browser has no Web Locks.
pub async fn live_tabs() -> Option<HashSet<String>> {
    let locks = locks()?;
    let query: Function = Reflect::get(&locks, &"query".into()).ok()?.dyn_into().ok()?;
    let snapshot = JsFuture::from(query.call0(&locks).ok()?.dyn_into::<Promise>().ok()?).await.ok()?;
    let held = js_sys::Array::from(&Reflect::get(&snapshot, &"held".into()).ok()?);
    Some(
        held.iter()
            .filter_map(|l| Reflect::get(&l, &"name".into()).ok()?.as_string())
            .filter_map(|n| n.strip_prefix("mishkah-tab:").map(str::to_owned))
            .collect(),
    )
}
