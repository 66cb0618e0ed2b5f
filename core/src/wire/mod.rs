//! Wire frames: serde types for every WebSocket frame and REST body of the protocol (spec §4–5),
//! shared by the server and the browser client so they cannot disagree on a shape.
//!
//! Parsing is tolerant of the aliases real clients send (`table`/`tableName`, `moduleId`/`module`,
//! `record`/`data`) and strict about what is required: [`ClientFrame::parse`] tells malformed JSON,
//! a missing or unknown `type`, and a frame missing a required field apart, and keeps the
//! `requestId` so the error can be addressed to the request that caused it.

mod client;
mod rest;
mod server;

pub use client::{
    ClientAuth, ClientFrame, ClientHello, ClientPublish, ClientQuery, FrameError, HelloCursor, LiveSubscribe,
    LiveUnsubscribe, QueryAggregate, RequestSnapshot, TopicPublish,
};
pub use rest::{
    DeltaRequest, DeltaResponse, DeltaTableCursor, DeltaTableStats, ErrorBody, EventsBatchRequest, SaveRequest,
    SequenceRequest, TableQueryParams, TransactionAck, TransactionRead, TransactionRequest, TransactionResult,
    TransactionWrite, WriteRequest,
};
pub use server::{
    AckMeta, CommitFrame, CommitSite, CompactChange, DeltaFrame, Entry, LiveChange, LiveResult, ModuleSnapshot, Notice,
    QueryResult, RecordRef, ServerDirective, ServerError, ServerFrame, ServerHello, ServerLog, ServerSnapshot,
    SnapshotMeta,
};
