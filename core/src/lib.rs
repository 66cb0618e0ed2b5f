//! # mishkah-core
//!
//! The pure engine of Mishkah. Everything that decides what a valid record, a conflict, a change or a
//! delta is lives here, once, and runs unchanged on the server (native) and in the browser (wasm).
//!
//! The crate does no I/O, spawns no threads, reads no clock and draws no random numbers: callers pass
//! the current time ([`time::Timestamp`]) and any generated identifiers in. That keeps every decision
//! deterministic and testable in memory, the way `quinn-proto` is to `quinn`.
//!
//! # Layout
//! - [`schema`]: the normalized table model, parsed from the three schema formats found in real
//!   deployments (designer, SQL-column, compact).
//! - [`record`]: records as JSON objects, their keys, and validation with coercion.
//! - [`mutation`]: the five write actions and [`mutation::apply`], the optimistic-concurrency rules.
//! - [`sync`]: committed changes, cursors, deltas and a local [`sync::Replica`].
//! - [`query`]: filter / sort / page / project over rows in memory.
//! - [`render`]: what a client may see of a row (hidden fields, locked tables, translations).
//! - [`rules`]: the security rules (who may list, view, create, update, delete which rows).
//! - [`search`]: text folded for full-text search (Arabic-aware).
//! - [`sequence`]: the original system's sequence rules (`DAR-001020`).
//! - [`wire`]: serde types for every WebSocket frame and REST body of the protocol.
//! - [`transaction`]: writes across tables that commit together if the reads they assume hold.
//! - [`time`]: ISO-8601 timestamps in the original's format (UTC, milliseconds).
//!
//! Errors are `thiserror` enums; each has a stable machine-readable `code()` that the server maps to
//! HTTP statuses and WebSocket error frames.

pub mod mutation;
pub mod query;
pub mod record;
pub mod render;
pub mod rules;
pub mod schema;
pub mod search;
pub mod sequence;
pub mod sync;
pub mod time;
pub mod transaction;
pub mod wire;

pub use mutation::{apply, Action, Change, ChangeKind, Mutation, MutationError, VersionClaim, VersionPolicy};
pub use record::{RecordKey, Row};
pub use schema::{Field, FieldType, Schema, Table};
pub use time::Timestamp;
