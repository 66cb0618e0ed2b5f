//! # mishkah-client
//!
//! The browser store. Everything that decides something runs `mishkah-core` (validation,
//! optimistic apply, delta merge, queries) in [`state`] (and, for `{sync: "subscriptions"}`, which live
//! query holds which row in [`membership`]), which has no browser dependency and is
//! tested natively. The wasm side (`store`: the JS API; `session`: socket, frames, callbacks; `persist`: IndexedDB; `first_sync`: a first sync in pages;
//! `tabs`: one sender per pending write across tabs) only moves data:
//! WebSocket frames in and out, IndexedDB reads and writes, JS values across the boundary.

pub mod backoff;
#[cfg(target_arch = "wasm32")]
mod chunked;
pub mod chunks;
pub mod membership;
#[cfg(target_arch = "wasm32")]
mod reads;
pub mod state;
pub mod transaction;

#[cfg(target_arch = "wasm32")]
mod first_sync;
#[cfg(target_arch = "wasm32")]
mod heartbeat;
#[cfg(target_arch = "wasm32")]
mod inner;
#[cfg(target_arch = "wasm32")]
pub mod interop;
#[cfg(target_arch = "wasm32")]
pub mod js_transaction;
#[cfg(target_arch = "wasm32")]
mod live;
#[cfg(target_arch = "wasm32")]
pub mod persist;
#[cfg(target_arch = "wasm32")]
mod session;
#[cfg(target_arch = "wasm32")]
pub mod store;
#[cfg(target_arch = "wasm32")]
mod tabs;
#[cfg(target_arch = "wasm32")]
mod typescript;
#[cfg(target_arch = "wasm32")]
mod writes;
