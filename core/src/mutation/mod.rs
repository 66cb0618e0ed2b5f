//! Mutations and the optimistic-concurrency rules.
//!
//! [`apply`] is a pure function of (table, current row, mutation, clock, policy) → [`Change`] or
//! [`MutationError`]. The server calls it inside its write transaction with the stored row; the
//! browser store calls it on its replica for optimistic reads. Both therefore agree on every outcome.
//!
//! ```
//! use mishkah_core::{apply, Action, Mutation, Schema, Timestamp, VersionPolicy};
//! use mishkah_core::mutation::ApplyContext;
//! use serde_json::json;
//!
//! let schema = Schema::from_json(&json!({"tables": {"note": {"fields": {
//!     "id": {"type": "text", "primaryKey": true}, "body": {"type": "text"}}}}})).unwrap();
//! let table = schema.table("note").unwrap();
//! let policy = VersionPolicy::default();
//! let ctx = ApplyContext::new(Timestamp(0), &policy);
//! let insert = Mutation::new("note", Action::Insert, json!({"id": "n1", "body": "hi"}));
//! let change = apply(table, None, &insert, &ctx).unwrap();
//! assert_eq!(change.version, 1);
//! let edit = Mutation::new("note", Action::Merge, json!({"id": "n1", "body": "yo"})).expecting(1);
//! let change = apply(table, change.row.as_ref(), &edit, &ctx).unwrap();
//! assert_eq!(change.version, 2);
//! ```

mod action;
mod apply;
mod error;
mod version;

pub use action::Action;
pub use apply::{apply, row_version, ApplyContext, Change, ChangeKind, Mutation, Reinsert};
pub use error::{Conflict, ConflictReason, MutationError};
pub use version::{VersionClaim, VersionPolicy};
