//! A first sync in pages (`GET .../modules/{m}/pages`), each page written to IndexedDB with where
//! the sync stands in one transaction as it arrives: memory holds a page, not the module, and a
//! sync cut short (a closed tab, a crash, the network) resumes at its next page.
//!
//! The pages are read at different moments, so until the delta since the first page's sequence
//! is applied (the hello that follows the walk asks for it) the rows are no state the server ever
//! had: IndexedDB keeps them held back ([`crate::persist::Initial`]) and a reopened store shows
//! none of them; the delta's save releases them with its cursor in one transaction.

use std::collections::BTreeSet;

use js_sys::Reflect;
use mishkah_core::sync::Replica;
use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::inner::{Shared, Status};
use crate::interop::{error, from_js};

/// Stored rows a page holds at most.
const PAGE_ROWS: usize = 5_000;

/// Walks the pages (unless a walk is running already), then says hello on the open socket, or opens
/// one. A walk that stops (offline) leaves the hello of the next socket to resume it: the server
/// answers a store without a cursor with a resync directive.
pub(crate) fn start(shared: &Shared, fresh: bool) {
    if std::mem::replace(&mut shared.borrow_mut().walking, true) {
        return; // the running walk says hello when it is done
    }
    let shared = shared.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let walked = run(&shared, fresh).await;
        shared.borrow_mut().walking = false;
        if let Err(e) = &walked {
            web_sys::console::warn_2(&"mishkah: first sync stopped".into(), e);
        }
        let (open, none, closed) = {
            let inner = shared.borrow();
            let open = inner.ws.as_ref().is_some_and(|ws| ws.ready_state() == web_sys::WebSocket::OPEN);
            (open, inner.ws.is_none(), inner.status == Status::Closed)
        };
        if open && walked.is_ok() {
            crate::session::send_hello(&shared.borrow());
        } else if none && !closed {
            crate::session::open_socket(&shared);
        }
    });
}

/// Walks the module's pages into IndexedDB (resuming an unfinished walk unless `fresh`), then
/// loads what they hold, at the first page's sequence, to lay the delta over (`Inner::walked`) —
/// unless they are more rows than the store keeps in memory: it reads them through IndexedDB.
async fn run(shared: &Shared, fresh: bool) -> Result<(), JsValue> {
    let (persist, http_base, branch, module, token) = {
        let mut inner = shared.borrow_mut();
        inner.initial = true;
        (
            inner.persist.clone(),
            inner.http_base.clone(),
            inner.opts.branch_id.clone(),
            inner.opts.module_id.clone(),
            inner.opts.token.clone(),
        )
    };
    let Some(persist) = persist else { return Ok(()) };
    let mut initial = match persist.initial().await? {
        // A walk with every page stored but no sequence is no walk at all.
        Some(i) if !(fresh || i.paged && i.at.is_none()) => i,
        _ => persist.begin_initial().await?,
    };
    let request = |next: Option<&Value>| request_page(&http_base, &branch, &module, token.as_deref(), next);
    let mut coming = (!initial.paged).then(|| request(initial.next.as_ref())).transpose()?;
    while let Some(fetching) = coming.take() {
        if shared.borrow().status == Status::Closed {
            return Ok(());
        }
        let page = page_of(fetching).await?;
        let sequence = Reflect::get(&page, &"sequence".into())?.as_f64().unwrap_or(0.0) as u64;
        initial.at.get_or_insert(sequence);
        let next: Value = from_js(Reflect::get(&page, &"next".into())?)?;
        initial.paged = next.is_null();
        initial.next = Some(next).filter(|n| !n.is_null());
        // The next page is on its way while this one is stored: the server and the network work
        // while IndexedDB does.
        coming = initial.next.as_ref().map(|n| request(Some(n))).transpose()?;
        let schema = shared.borrow().state.schema.clone();
        persist.write_page(&page, &initial, schema.as_ref()).await?;
    }
    let mut replica = Replica::new();
    replica.cursor = initial.at.unwrap_or(0);
    // A module larger than the store keeps in memory stays in IndexedDB: nothing is read back.
    let partial = persist.count().await? > shared.borrow().opts.in_memory();
    if !partial {
        for (table, key, row) in persist.rows().await? {
            replica.tables.entry(table).or_default().insert(key, row);
        }
    }
    let mut inner = shared.borrow_mut();
    inner.state.partial = partial;
    inner.walked = Some(replica);
    Ok(())
}

/// The delta that completes a first sync arrived: the walk's rows become the store's, to lay the
/// delta over. Every table the store held or now holds is news to its watchers.
pub(crate) fn finish(shared: &Shared) -> BTreeSet<String> {
    let mut inner = shared.borrow_mut();
    let mut tables: BTreeSet<String> = inner.state.confirmed.tables.keys().cloned().collect();
    if let Some(walked) = inner.walked.take() {
        inner.state.confirmed = walked;
    }
    tables.extend(inner.state.confirmed.tables.keys().cloned());
    inner.finish_initial = true;
    tables
}

/// Starts fetching the page at `next` (the first without one): the request is under way when this
/// returns.
fn request_page(
    http_base: &str,
    branch: &str,
    module: &str,
    token: Option<&str>,
    next: Option<&Value>,
) -> Result<js_sys::Promise, JsValue> {
    let window = web_sys::window().ok_or_else(|| error("no-window", "no window to fetch from", Value::Null))?;
    let mut url = format!(
        "{http_base}/api/branches/{}/modules/{}/pages?limit={PAGE_ROWS}",
        js_sys::encode_uri_component(branch),
        js_sys::encode_uri_component(module)
    );
    if let Some(table) = next.and_then(|n| n["table"].as_str()) {
        url.push_str(&format!("&table={}", js_sys::encode_uri_component(table)));
    }
    if let Some(after) = next.and_then(|n| n["after"].as_str()) {
        url.push_str(&format!("&after={}", js_sys::encode_uri_component(after)));
    }
    let init = web_sys::RequestInit::new();
    if let Some(t) = token {
        let headers = web_sys::Headers::new()?;
        headers.set("Authorization", &format!("Bearer {t}"))?;
        init.set_headers(&headers);
    }
    let request = web_sys::Request::new_with_str_and_init(&url, &init)?;
    Ok(window.fetch_with_request(&request))
}

/// The page a [`request_page`] brings.
async fn page_of(fetching: js_sys::Promise) -> Result<JsValue, JsValue> {
    let response: web_sys::Response = JsFuture::from(fetching).await?.dyn_into()?;
    let status = response.status();
    // Parsed by the browser, and stored as parsed: no row is converted on its way to IndexedDB.
    let body = JsFuture::from(response.json()?).await?;
    if !response.ok() {
        let code = Reflect::get(&body, &"error".into()).ok().and_then(|c| c.as_string());
        let message = format!("a first-sync page was refused ({status})");
        return Err(error(code.as_deref().unwrap_or("page-refused"), &message, Value::Null));
    }
    Ok(body)
}
