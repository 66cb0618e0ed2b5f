//! # mishkah-server
//!
//! The server: SQLite persistence, the one write path, and (in `http`/`ws`) the REST and WebSocket
//! gateway speaking the protocol of the system we replace.
//!
//! # Layout
//! - [`datadir`]: the data directory's configuration (modules, branches, sequence rules, seeds).
//! - [`storage`]: one SQLite database per branch+module: typed tables, event log, counters.
//! - [`engine`]: the one write path — a writer thread per module with group commit.
//! - [`hub`]: fan-out of committed changes to every subscriber of a branch.
//! - [`render`]: the one way rows leave the server (hidden fields, locked tables, translations).
//! - [`auth`]: who a request is (JWTs); [`access`]: what the security rules let them read.
//! - [`state`]: what every handler can reach; [`app`]: the router; [`listener`]: the accept loop.
//! - [`metrics`]: Prometheus metrics.
//! - [`transactions`]: writes across tables that commit together or not at all.
//! - [`webhooks`]: committed events POSTed, signed, in order, from durable cursors.
//! - [`backup`]: snapshots, the logs shipped as they commit, point-in-time restore;
//!   [`migrate`] and [`module_copy`]: a store copied into another; [`verify_log`]: tables
//!   checked against their own log.

pub mod access;
pub mod app;
pub mod auth;
pub mod backup;
pub mod clock;
pub mod config;
pub mod datadir;
pub mod engine;
pub mod http;
pub mod hub;
pub mod keys;
pub mod lease;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod migrate;
pub mod module_copy;
pub mod orders;
pub mod proxies;
pub mod render;
pub mod serve;
pub mod state;
pub mod storage;
pub mod transactions;
pub mod verify_log;
pub mod views;
pub mod webhooks;
pub mod ws;
