//! Sync: committed changes ([`ChangeEvent`]), cursors ([`Cursor`]), deltas ([`Delta`]) and a local
//! replica ([`Replica`]).
//!
//! Every committed change carries the gap-free module sequence number it was committed at. A client
//! remembers the last sequence it applied (its cursor); the delta since that cursor is the changes
//! after it coalesced per row — last change wins, deletes as tombstones — so a replica that applies
//! it converges on the authoritative state whatever it missed (property-tested in
//! `tests/sync_properties.rs`). Live queries ([`live`]) keep a subscription's result current from the
//! same committed changes.

mod cursor;
mod delta;
mod event;
pub mod live;
mod replica;

pub use cursor::{Cursor, TableCursor};
pub use delta::{Delta, DeltaError, TableDelta};
pub use event::ChangeEvent;
pub use replica::{Replica, ReplicaError};
